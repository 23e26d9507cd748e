//! Page cursors. A cursor holds what a use case needs to find the page after the last row shown
//! (an audit entry's id; a key's creation time and id), base64url-encoded so that clients treat
//! it as opaque. Each use case reads its own position out of the decoded text.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::services::failure::Failure;

pub fn encode(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

/// The position a cursor of [`encode`] holds; `None` for anything else.
pub fn decode(cursor: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?).ok()
}

/// The refusal of a cursor that is not one of ours; `hint` says where good ones come from.
pub fn invalid(hint: &str) -> Failure {
    Failure::invalid("cursor", format!("Invalid cursor; {hint}"), "value_error")
}

/// Cuts `rows`, read with one row more than `limit`, to the page, and answers the cursor of the
/// next page when that extra row was there.
pub fn cut<T>(rows: &mut Vec<T>, limit: i64, position: impl Fn(&T) -> String) -> Option<String> {
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if more { rows.last().map(|row| encode(&position(row))) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_holds_its_position_and_the_page_is_cut_at_the_limit() {
        assert_eq!(decode(&encode("1700000000000.abc")).as_deref(), Some("1700000000000.abc"));
        assert_eq!(decode("not base64!"), None);
        let mut rows = vec![5, 4, 3];
        assert_eq!(cut(&mut rows, 2, |n| n.to_string()).and_then(|c| decode(&c)).as_deref(), Some("4"));
        assert_eq!(rows, [5, 4]);
        let mut rows = vec![5, 4];
        assert_eq!(cut(&mut rows, 2, |n| n.to_string()), None, "no row beyond the page: no next page");
    }
}
