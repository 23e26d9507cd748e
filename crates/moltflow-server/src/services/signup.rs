//! Signing up with a plan: a new tenant and owner, signed in on the free plan, or with a
//! checkout for a paid one. The account half is registration's (`services::auth`), the checkout
//! half billing's (`Billing::validate_intent`, `open_checkout`, `store_checkout`). The
//! per-address sign-up throttle runs at the HTTP edge, before this.

use moltflow_core::clock::now_ms;
use moltflow_types::{RegisterRequest, SignupCheckoutRequest, SignupCheckoutResponse, TokenPair};

use crate::error::ApiResult;
use crate::services::auth::{account_rows, ensure_email_free, insert_account, validate_registration};
use crate::services::billing::check_cycle;
use crate::services::failure::Issues;
use crate::services::origin::Origin;
use crate::services::sessions::{open_session, token_pair};
use crate::state::App;

/// What signing up with a plan gives: a signed-in pair for `free`, a checkout otherwise.
pub enum SignupOutcome {
    Tokens(TokenPair),
    Checkout(SignupCheckoutResponse),
}

/// Creates a tenant and its owner like register, then a checkout for a paid plan. Provider calls
/// happen before anything is written, so a provider failure leaves no account behind.
pub async fn signup_checkout(app: &App, req: SignupCheckoutRequest, origin: &Origin) -> ApiResult<SignupOutcome> {
    let billing = app.billing();
    let account = validate_registration(RegisterRequest {
        email: req.email,
        password: req.password,
        full_name: req.full_name,
        tenant_name: req.tenant_name,
    })?;
    let free = app.plans.get(&req.plan_id).is_some_and(|p| p.is_free());
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
    ensure_email_free(app, &account.email).await?;
    let password_hash = match &account.password {
        Some(p) => Some(app.hasher.hash(p).await?),
        None => None,
    };
    let (tenant, user) = account_rows(account, password_hash, now_ms());
    let Some(intent) = intent else {
        let mut tx = app.store.begin().await?;
        insert_account(app, &mut tx, &tenant, &user, origin).await?;
        let opened = open_session(&mut tx, &user, "register", origin).await?;
        tx.commit().await?;
        app.mailer.wake();
        return Ok(SignupOutcome::Tokens(token_pair(app, &user, opened)?));
    };
    let opened = billing.open_checkout(&tenant.id, &user.email, &intent).await?;
    let mut tx = app.store.begin().await?;
    insert_account(app, &mut tx, &tenant, &user, origin).await?;
    billing.store_checkout(&mut tx, &opened).await?;
    tx.commit().await?;
    app.mailer.wake();
    Ok(SignupOutcome::Checkout(SignupCheckoutResponse {
        checkout_url: opened.row.url,
        session_id: opened.row.id,
        tenant_id: tenant.id,
        user_id: user.id,
    }))
}
