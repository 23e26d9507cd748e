//! Email verification: the link mailed at registration (and on request), and following it.

use moltflow_core::clock::Clock;
use moltflow_store::Store;
use moltflow_store::accounts::{find_user, set_email_verified};
use moltflow_store::tokens::use_user_tokens;

use crate::auth::cache::AuthCache;
use crate::auth::revocation::Invalidation;
use crate::mail::Mailer;
use crate::services::audit::{self, Actor, Entry};
use crate::services::failure::{Failure, Outcome};
use crate::services::mailing::{send_link, under_hourly_cap};
use crate::services::one_time::{self, TokenKind};
use crate::services::origin::Origin;
use crate::services::principal::Principal;

/// What the verification use cases work with.
pub struct Verification<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    pub mailer: &'a Mailer,
    /// A verified address changes the cached user.
    pub auth_cache: &'a AuthCache,
}

impl Verification<'_> {
    /// `POST /auth/verify-email`.
    pub async fn verify_email(&self, token: &str, origin: &Origin) -> Outcome<()> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let user = one_time::redeem(&mut tx, TokenKind::Verify, token, now).await?;
        let newly = set_email_verified(&mut tx, &user.id, now).await?;
        // The purpose of the other verification links is fulfilled.
        use_user_tokens(&mut tx, &user.id, TokenKind::Verify.as_str(), now).await?;
        if newly {
            let entry = Entry {
                tenant_id: &user.tenant_id,
                actor: Actor::user(&user.id),
                action: "email.verified",
                target: Some(user.id.clone()),
                meta: origin,
                details: serde_json::json!({"email": user.email}),
            };
            audit::record_at(&mut tx, entry, now).await?;
        }
        let change = Invalidation::default().user(&user.id);
        change.announce(&mut tx, self.store, self.auth_cache).await?;
        tx.commit().await?;
        change.apply(self.auth_cache).await;
        Ok(())
    }

    /// `POST /auth/verify-email/resend`: a new link unless the email is verified already or the
    /// address had its 3 mails this hour.
    pub async fn resend(&self, p: &Principal) -> Outcome<()> {
        p.require_user()?;
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let user = find_user(&mut tx, &p.user.id).await?.ok_or_else(Failure::not_authenticated)?;
        if user.email_verified || !under_hourly_cap(&mut tx, &user, now).await? {
            return Ok(());
        }
        send_link(self.mailer, &mut tx, TokenKind::Verify, &user, now).await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(())
    }
}
