//! Mails that carry a one-time link, queued in the caller's transaction, and the per-address cap.

use moltflow_core::clock::HOUR_MS;
use moltflow_store::AsDbConn;
use moltflow_store::accounts::{UserRow, lock_user};
use moltflow_store::mail::count_mail_since;

use crate::mail::{MailKind, Mailer};
use crate::services::one_time::{self, TokenKind};

/// Mails a public request may cause per address per hour (API.md §3).
pub const MAILS_PER_ADDRESS_PER_HOUR: i64 = 3;

/// Whether the address may receive another requested mail at `now`. Takes the user's row lock
/// first, so concurrent requests for one account are counted one after the other.
pub async fn under_hourly_cap(c: &mut impl AsDbConn, user: &UserRow, now: i64) -> moltflow_store::Result<bool> {
    lock_user(c, &user.id).await?;
    // A notice we send on our own (the first proof's) uses up nobody's allowance.
    let sent = count_mail_since(c, &user.email, now - HOUR_MS, MailKind::AccountSecured.template()).await?;
    Ok(sent < MAILS_PER_ADDRESS_PER_HOUR)
}

/// Issues a token of `kind` for the user and queues the mail carrying its link.
pub async fn send_link(
    mailer: &Mailer,
    c: &mut impl AsDbConn,
    kind: TokenKind,
    user: &UserRow,
    now: i64,
) -> moltflow_store::Result<()> {
    let token = one_time::issue(c, kind, Some(&user.id), &user.email, now).await?;
    let (mail, path) = match kind {
        TokenKind::Reset => (MailKind::PasswordReset, "/reset-password"),
        TokenKind::Verify => (MailKind::VerifyEmail, "/verify-email"),
        TokenKind::Magic => (MailKind::MagicLink, "/magic-link"),
        TokenKind::Invite => (MailKind::Invitation, "/accept-invitation"),
    };
    let link = mailer.link(path, &token);
    let vars = [
        ("name", user.full_name.as_str()),
        ("email", user.email.as_str()),
        ("link", link.as_str()),
        ("expires_in", kind.lifetime_text()),
    ];
    mailer.enqueue(c, mail, &user.email, &vars, now).await
}
