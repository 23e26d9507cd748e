//! Getting back in by mail: password reset and magic links (API.md §3).
//!
//! A mail request is answered `202` at once: the way in checks the address
//! ([`parse_mail_request`]) and runs [`Recovery::mail_link`] off the request path, so that a
//! known and an unknown address look the same from outside, in body and in time.

use moltflow_core::Email;
use moltflow_core::clock::Clock;
use moltflow_core::password::check_new_password;
use moltflow_store::Store;
use moltflow_store::accounts::{UserRow, find_user_by_email, set_user_password};
use moltflow_store::sessions::revoke_user_sessions;
use moltflow_store::tokens::use_user_tokens;
use moltflow_types::{ResetPasswordRequest, TokenPair};

use crate::auth::lockout::LoginLockout;
use crate::auth::password::PasswordHasher;
use crate::auth::revocation::Invalidation;
use crate::mail::Mailer;
use crate::services::audit::{self, Actor, Entry};
use crate::services::failure::{Failure, Outcome};
use crate::services::mailbox_proof::{self, Proof};
use crate::services::mailing::{send_link, under_hourly_cap};
use crate::services::one_time::{self, TokenKind};
use crate::services::origin::Origin;
use crate::services::sessions::{Tokens, sign_in};

/// The body of every `202` of a mail request, whatever happened.
pub const ACCEPTED: &str = "If an account exists for this address, we have sent it an email.";

/// What the recovery use cases work with.
pub struct Recovery<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    pub hasher: &'a PasswordHasher,
    pub mailer: &'a Mailer,
    pub tokens: Tokens<'a>,
    /// A reset proves the mailbox: the account's failed-login count starts again.
    pub lockout: &'a LoginLockout,
}

/// The link a mail request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRequest {
    /// `POST /auth/forgot-password`.
    PasswordReset,
    /// `POST /auth/magic-link/request`.
    MagicLink,
}

impl LinkRequest {
    fn kind(self) -> TokenKind {
        match self {
            LinkRequest::PasswordReset => TokenKind::Reset,
            LinkRequest::MagicLink => TokenKind::Magic,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.kind().as_str()
    }
}

/// The address of a mail request, checked before the request is accepted.
pub fn parse_mail_request(raw: &str) -> Outcome<Email> {
    Email::parse(raw).map_err(|e| Failure::invalid("email", e.to_string(), "value_error"))
}

impl Recovery<'_> {
    /// Looks the address up and, for an account under the hourly cap, mails it a link. Unknown
    /// addresses get nothing: a magic link never creates an account. Runs off the request path.
    pub async fn mail_link(&self, email: &Email, request: LinkRequest) -> Outcome<()> {
        let kind = request.kind();
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let Some(user) = find_user_by_email(&mut tx, email.as_str()).await? else {
            return Ok(());
        };
        if !under_hourly_cap(&mut tx, &user, now).await? {
            tracing::info!(kind = kind.as_str(), user_id = %user.id, "hourly mail cap reached; nothing sent");
            return Ok(());
        }
        send_link(self.mailer, &mut tx, kind, &user, now).await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(())
    }

    /// `POST /auth/reset-password`: sets the password and ends every session of the user. When the
    /// email was not verified before, the reset is the first proof of the mailbox and also takes
    /// back every API key and pending invitation the account created (API.md §3).
    pub async fn reset_password(&self, req: ResetPasswordRequest, origin: &Origin) -> Outcome<()> {
        let user = {
            let mut conn = self.store.conn().await?;
            one_time::peek(&mut conn, TokenKind::Reset, &req.token, self.clock.now_ms()).await?
        };
        check_new_password(&req.new_password, &user.email, &[&user.full_name])
            .map_err(|e| Failure::invalid("new_password", e.to_string(), "value_error"))?;
        let hash = self.hasher.hash(&req.new_password).await?;
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let user = one_time::redeem(&mut tx, TokenKind::Reset, &req.token, now).await?;
        let taken = mailbox_proof::prove(&mut tx, self.mailer, &user, Proof::PasswordReset, origin, now)
            .await?
            .unwrap_or_default();
        set_user_password(&mut tx, &user.id, &hash, now).await?;
        // A verified account keeps its keys: only its sessions end.
        let mut revoked = taken.sessions.clone();
        revoked.extend(revoke_user_sessions(&mut tx, &user.id, now).await?);
        // A sign-in link mailed before the reset would bypass the new password.
        use_user_tokens(&mut tx, &user.id, TokenKind::Magic.as_str(), now).await?;
        let entry = Entry {
            tenant_id: &user.tenant_id,
            actor: Actor::user(&user.id),
            action: "password.reset",
            target: Some(user.id.clone()),
            meta: origin,
            details: serde_json::json!({
                "sessions_revoked": revoked.len(),
                "email_was_verified": user.email_verified,
                "keys_revoked": taken.keys,
                "invitations_revoked": taken.invitations,
            }),
        };
        audit::record_at(&mut tx, entry, now).await?;
        let change = taken.invalidation(&user.id).sessions(revoked);
        change.announce(&mut tx, self.store, self.tokens.auth_cache).await?;
        tx.commit().await?;
        change.apply(self.tokens.auth_cache).await;
        self.mailer.wake();
        self.lockout.clear(&user.email).await;
        Ok(())
    }

    /// `POST /auth/magic-link/verify`: signs the user in (session method `magic_link`). The first
    /// one on an unverified account proves the mailbox: everything set up before is taken back
    /// (the password included) before the new session opens.
    pub async fn verify_magic_link(&self, token: &str, origin: &Origin) -> Outcome<TokenPair> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let user = one_time::redeem(&mut tx, TokenKind::Magic, token, now).await?;
        let taken = mailbox_proof::prove(&mut tx, self.mailer, &user, Proof::MagicLink, origin, now).await?;
        let opened = sign_in(&mut tx, &user, "magic_link", origin, now).await?;
        let change = match &taken {
            Some(taken) => taken.invalidation(&user.id),
            None => Invalidation::default().user(&user.id),
        };
        change.announce(&mut tx, self.store, self.tokens.auth_cache).await?;
        tx.commit().await?;
        change.apply(self.tokens.auth_cache).await;
        if taken.is_some() {
            self.mailer.wake();
        }
        let password_hash = if taken.as_ref().is_some_and(|t| t.password) { None } else { user.password_hash.clone() };
        let user = UserRow { email_verified: true, password_hash, ..user };
        self.tokens.pair(&user, opened)
    }
}
