//! One-time tokens of the mailed links: 256 random bits, stored as SHA-256, single use, with a
//! lifetime per purpose (API.md §3). Invalid, used, superseded and expired tokens all answer the
//! same `400 invalid_token`.

use moltflow_core::clock::{DAY_MS, HOUR_MS, MINUTE_MS};
use moltflow_core::secret::{new_token, sha256_hex};
use moltflow_store::AsDbConn;
use moltflow_store::accounts::{UserRow, find_user};
use moltflow_store::tokens::{
    OneTimeTokenRow, find_one_time_token, insert_one_time_token, use_one_time_token, use_user_tokens,
};

use crate::services::failure::{Failure, Outcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Reset,
    Verify,
    Magic,
    Invite,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Reset => "reset",
            TokenKind::Verify => "verify",
            TokenKind::Magic => "magic",
            TokenKind::Invite => "invite",
        }
    }

    pub fn lifetime_ms(self) -> i64 {
        match self {
            TokenKind::Reset => HOUR_MS,
            TokenKind::Verify => 48 * HOUR_MS,
            TokenKind::Magic => 15 * MINUTE_MS,
            TokenKind::Invite => 7 * DAY_MS,
        }
    }

    /// The lifetime as the mail states it.
    pub fn lifetime_text(self) -> &'static str {
        match self {
            TokenKind::Reset => "1 hour",
            TokenKind::Verify => "48 hours",
            TokenKind::Magic => "15 minutes",
            TokenKind::Invite => "7 days",
        }
    }

    /// Whether a new token spends the user's older unused ones (newest wins). Reset and magic
    /// links are credentials, so only the latest may work; an older verification link stays
    /// harmless and keeps working until it expires.
    fn supersedes(self) -> bool {
        matches!(self, TokenKind::Reset | TokenKind::Magic)
    }
}

pub fn invalid_token() -> Failure {
    Failure::rejected("invalid_token", "This link is invalid, expired or already used")
}

/// Mints a token for a user's address (or, for an invitation, an address alone); returns the raw
/// token, which goes into the mail only.
pub async fn issue(
    c: &mut impl AsDbConn,
    kind: TokenKind,
    user_id: Option<&str>,
    email: &str,
    now: i64,
) -> moltflow_store::Result<String> {
    if let (true, Some(user_id)) = (kind.supersedes(), user_id) {
        use_user_tokens(c, user_id, kind.as_str(), now).await?;
    }
    let raw = new_token();
    insert_one_time_token(
        c,
        &OneTimeTokenRow {
            token_hash: sha256_hex(&raw),
            kind: kind.as_str().to_owned(),
            user_id: user_id.map(str::to_owned),
            email: email.to_owned(),
            created_at: now,
            expires_at: now + kind.lifetime_ms(),
            used_at: None,
        },
    )
    .await?;
    Ok(raw)
}

/// The user a token would act for, if it is valid now; nothing is spent (so a request refused
/// for its other fields does not burn the link).
pub async fn peek(c: &mut impl AsDbConn, kind: TokenKind, raw: &str, now: i64) -> Outcome<UserRow> {
    let row = find_valid(c, kind, raw, now).await?;
    let user_id = row.user_id.as_deref().ok_or_else(invalid_token)?;
    let user = find_user(c, user_id).await?.ok_or_else(invalid_token)?;
    // The link was sent to an address; it acts only while the account still has that address.
    if user.email != row.email {
        return Err(invalid_token());
    }
    Ok(user)
}

/// The token's row if it is of `kind`, unused and unexpired at `now`.
pub async fn find_valid(c: &mut impl AsDbConn, kind: TokenKind, raw: &str, now: i64) -> Outcome<OneTimeTokenRow> {
    let row = find_one_time_token(c, &hash_of(raw)?).await?.ok_or_else(invalid_token)?;
    if row.kind != kind.as_str() || row.used_at.is_some() || row.expires_at <= now {
        return Err(invalid_token());
    }
    Ok(row)
}

/// Spends a token (any valid one of `kind`); false when another request spent it first.
pub async fn spend(c: &mut impl AsDbConn, kind: TokenKind, raw: &str, now: i64) -> Outcome<bool> {
    Ok(use_one_time_token(c, &hash_of(raw)?, kind.as_str(), now).await?)
}

/// Spends a token and returns its user; of two requests racing with one token, one wins.
pub async fn redeem(c: &mut impl AsDbConn, kind: TokenKind, raw: &str, now: i64) -> Outcome<UserRow> {
    let user = peek(c, kind, raw, now).await?;
    if !spend(c, kind, raw, now).await? {
        return Err(invalid_token());
    }
    Ok(user)
}

fn hash_of(raw: &str) -> Outcome<String> {
    let raw = raw.trim();
    // A real token is 43 characters; anything far off is not worth a lookup.
    if raw.is_empty() || raw.len() > 128 {
        return Err(invalid_token());
    }
    Ok(sha256_hex(raw))
}
