//! BCP 47 language tags as a profile stores them: `en`, `pt-BR`, `zh-Hant-TW`, `es-419`.
//!
//! The check is structural (RFC 5646 §2.1: language, optional script, region, variants and
//! extensions), not a registry lookup; the tag comes back in its canonical case.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("value is not a BCP 47 language tag (e.g. en, pt-BR, zh-Hant-TW)")]
pub struct LocaleError;

/// Checks a tag and returns it with canonical case (`pt-br` → `pt-BR`, `zh-hant` → `zh-Hant`).
pub fn parse_locale(raw: &str) -> Result<String, LocaleError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 35 {
        return Err(LocaleError);
    }
    let subtags: Vec<&str> = raw.split('-').collect();
    if subtags.iter().any(|s| s.is_empty() || s.len() > 8 || !s.chars().all(|c| c.is_ascii_alphanumeric())) {
        return Err(LocaleError);
    }
    let alpha = |s: &str| s.chars().all(|c| c.is_ascii_alphabetic());
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let language = subtags[0];
    if !(alpha(language) && (2..=3).contains(&language.len()) || alpha(language) && (5..=8).contains(&language.len())) {
        return Err(LocaleError);
    }
    let mut out = vec![language.to_ascii_lowercase()];
    let mut i = 1;
    if let Some(s) = subtags.get(i).filter(|s| s.len() == 4 && alpha(s)) {
        let mut script = s.to_ascii_lowercase();
        script[..1].make_ascii_uppercase();
        out.push(script);
        i += 1;
    }
    if let Some(s) = subtags.get(i).filter(|s| (s.len() == 2 && alpha(s)) || (s.len() == 3 && digits(s))) {
        out.push(s.to_ascii_uppercase());
        i += 1;
    }
    while let Some(s) = subtags.get(i).filter(|s| s.len() >= 5 || (s.len() == 4 && s.as_bytes()[0].is_ascii_digit())) {
        out.push(s.to_ascii_lowercase());
        i += 1;
    }
    // Extensions (`u-ca-gregory`) and private use (`x-…`): a singleton followed by longer subtags.
    while let Some(singleton) = subtags.get(i).filter(|s| s.len() == 1) {
        let rest: Vec<&str> = subtags[i + 1..].iter().take_while(|s| s.len() > 1).copied().collect();
        let min = if singleton.eq_ignore_ascii_case("x") { 1 } else { 2 };
        if rest.is_empty() || rest.iter().any(|s| s.len() < min) {
            return Err(LocaleError);
        }
        out.push(singleton.to_ascii_lowercase());
        out.extend(rest.iter().map(|s| s.to_ascii_lowercase()));
        i += 1 + rest.len();
    }
    if i != subtags.len() {
        return Err(LocaleError);
    }
    Ok(out.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_canonicalises_tags() {
        for (raw, tag) in [
            ("en", "en"),
            ("pt-br", "pt-BR"),
            ("zh-hant-tw", "zh-Hant-TW"),
            ("es-419", "es-419"),
            ("de-CH-1996", "de-CH-1996"),
            ("en-US-u-ca-gregory", "en-US-u-ca-gregory"),
            (" fr-CA ", "fr-CA"),
        ] {
            assert_eq!(parse_locale(raw).as_deref(), Ok(tag), "{raw}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_tag() {
        for bad in ["", "e", "english_US", "en-", "-en", "en--US", "123", "en-US-", "en-a", "fr-CA\r\nX", "a1-US"] {
            assert_eq!(parse_locale(bad), Err(LocaleError), "{bad:?}");
        }
    }
}
