//! Email verification: the link mailed at registration (and on request), and following it.

use moltflow_core::clock::Clock;
use moltflow_store::Store;
use moltflow_store::accounts::find_user;
use moltflow_store::tokens::use_user_tokens;

use crate::auth::cache::AuthCache;
use crate::auth::revocation::Invalidation;
use crate::mail::Mailer;
use crate::services::failure::{Failure, Outcome};
use crate::services::mailbox_proof::{self, Proof, TakenBack};
use crate::services::mailing::{send_link, under_hourly_cap};
use crate::services::one_time::{self, TokenKind};
use crate::services::origin::Origin;
use crate::services::principal::UserSession;

/// What the verification use cases work with.
pub struct Verification<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    pub mailer: &'a Mailer,
    /// A verified address changes the cached user.
    pub auth_cache: &'a AuthCache,
}

/// A valid verification link's account, as [`Verification::inspect`] found it.
#[derive(Clone, Debug)]
pub struct LinkState {
    pub email: String,
    pub already_verified: bool,
}

impl Verification<'_> {
    /// Whether a verification link is valid now, and for whom; nothing is spent (the page a GET of
    /// the link shows, which a mail scanner may fetch).
    pub async fn inspect(&self, token: &str) -> Outcome<LinkState> {
        let mut conn = self.store.conn().await?;
        let user = one_time::peek(&mut conn, TokenKind::Verify, token, self.clock.now_ms()).await?;
        Ok(LinkState { email: user.email, already_verified: user.email_verified })
    }

    /// `POST /auth/verify-email`. The first verification of an address proves the mailbox: what
    /// it took back is returned (`None` when the address was verified already).
    pub async fn verify_email(&self, token: &str, origin: &Origin) -> Outcome<Option<TakenBack>> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let user = one_time::redeem(&mut tx, TokenKind::Verify, token, now).await?;
        let taken = mailbox_proof::prove(&mut tx, self.mailer, &user, Proof::Verification, origin, now).await?;
        // The purpose of the other verification links is fulfilled.
        use_user_tokens(&mut tx, &user.id, TokenKind::Verify.as_str(), now).await?;
        let change = match &taken {
            Some(taken) => taken.invalidation(&user.id),
            None => Invalidation::default().user(&user.id),
        };
        change.announce(&mut tx, self.store, self.auth_cache).await?;
        tx.commit().await?;
        change.apply(self.auth_cache).await;
        if taken.is_some() {
            self.mailer.wake();
        }
        Ok(taken)
    }

    /// `POST /auth/verify-email/resend`: a new link unless the email is verified already or the
    /// address had its 3 mails this hour.
    pub async fn resend(&self, p: &UserSession) -> Outcome<()> {
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
