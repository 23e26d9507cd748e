//! Signing up with a plan: a new tenant and owner, signed in on the free plan, or with a
//! checkout for a paid one. The account half is registration's (`services::auth`), the checkout
//! half billing's (`Billing::validate_intent`, `open_checkout`, `store_checkout`). The
//! per-address sign-up throttle runs at the way in, before this.

use moltflow_types::{RegisterRequest, SignupCheckoutRequest, SignupCheckoutResponse, TokenPair};

use crate::services::auth::{Auth, account_rows, ensure_email_free, insert_account, validate_registration};
use crate::services::billing::{Billing, check_cycle};
use crate::services::failure::{Issues, Outcome};
use crate::services::origin::Origin;
use crate::services::sessions::open_session;

/// What signing up with a plan works with: registration's parts and billing's.
pub struct Signup<'a> {
    pub auth: Auth<'a>,
    pub billing: Billing<'a>,
}

/// What signing up with a plan gives: a signed-in pair for `free`, a checkout otherwise.
pub enum SignupOutcome {
    Tokens(TokenPair),
    Checkout(SignupCheckoutResponse),
}

impl Signup<'_> {
    /// Creates a tenant and its owner like register, then a checkout for a paid plan. Provider
    /// calls happen before anything is written, so a provider failure leaves no account behind.
    pub async fn signup_checkout(&self, req: SignupCheckoutRequest, origin: &Origin) -> Outcome<SignupOutcome> {
        let (auth, billing) = (&self.auth, &self.billing);
        let account = validate_registration(RegisterRequest {
            email: req.email,
            password: req.password,
            full_name: req.full_name,
            tenant_name: req.tenant_name,
        })?;
        let free = billing.plans.get(&req.plan_id).is_some_and(|p| p.is_free());
        let intent = if free {
            let mut issues = Issues::default();
            check_cycle(&mut issues, &req.billing_cycle);
            issues.finish()?;
            None
        } else {
            Some(billing.validate_intent(
                &req.plan_id,
                &req.billing_cycle,
                req.success_url.as_deref(),
                req.cancel_url.as_deref(),
            )?)
        };
        ensure_email_free(&mut auth.store.conn().await?, &account.email).await?;
        let password_hash = match &account.password {
            Some(p) => Some(auth.hasher.hash(p).await?),
            None => None,
        };
        let now = auth.clock.now_ms();
        let (tenant, user) = account_rows(account, password_hash, now);
        let Some(intent) = intent else {
            let mut tx = auth.store.begin().await?;
            insert_account(&mut tx, auth.mailer, &tenant, &user, origin, now).await?;
            let opened = open_session(&mut tx, &user, "register", origin, now).await?;
            tx.commit().await?;
            auth.mailer.wake();
            return Ok(SignupOutcome::Tokens(auth.tokens.pair(&user, opened)?));
        };
        let opened = billing.open_checkout(&tenant.id, &user.email, &intent).await?;
        let mut tx = auth.store.begin().await?;
        insert_account(&mut tx, auth.mailer, &tenant, &user, origin, now).await?;
        billing.store_checkout(&mut tx, &opened).await?;
        tx.commit().await?;
        auth.mailer.wake();
        Ok(SignupOutcome::Checkout(SignupCheckoutResponse {
            checkout_url: opened.row.url,
            session_id: opened.row.id,
            tenant_id: tenant.id,
            user_id: user.id,
        }))
    }
}
