//! Email verification: the link mailed at registration (and on request), and following it.

use moltflow_core::clock::now_ms;
use moltflow_store::accounts::{find_user, set_email_verified};
use moltflow_store::tokens::use_user_tokens;

use crate::auth::revocation::Invalidation;
use crate::error::{ApiError, ApiResult};
use crate::principal::Principal;
use crate::services::audit::{self, Actor, Entry};
use crate::services::mailing::{send_link, under_hourly_cap};
use crate::services::one_time::{self, TokenKind};
use crate::services::origin::Origin;
use crate::state::App;

/// `POST /auth/verify-email`.
pub async fn verify_email(app: &App, token: &str, meta: &Origin) -> ApiResult<()> {
    let now = now_ms();
    let mut tx = app.store.begin().await?;
    let user = one_time::redeem(&mut tx, TokenKind::Verify, token).await?;
    let newly = set_email_verified(&mut tx, &user.id, now).await?;
    // The purpose of the other verification links is fulfilled.
    use_user_tokens(&mut tx, &user.id, TokenKind::Verify.as_str(), now).await?;
    if newly {
        audit::record(
            &mut tx,
            Entry {
                tenant_id: &user.tenant_id,
                actor: Actor::user(&user.id),
                action: "email.verified",
                target: Some(user.id.clone()),
                meta,
                details: serde_json::json!({"email": user.email}),
            },
        )
        .await?;
    }
    let change = Invalidation::default().user(&user.id);
    change.announce(&mut tx, &app.store, &app.auth_cache).await?;
    tx.commit().await?;
    change.apply(&app.auth_cache).await;
    Ok(())
}

/// `POST /auth/verify-email/resend`: a new link unless the email is verified already or the
/// address had its 3 mails this hour.
pub async fn resend_verification(app: &App, principal: &Principal) -> ApiResult<()> {
    principal.require_user()?;
    let mut tx = app.store.begin().await?;
    let user = find_user(&mut tx, &principal.user.id).await?.ok_or_else(ApiError::not_authenticated)?;
    if user.email_verified || !under_hourly_cap(&mut tx, &user).await? {
        return Ok(());
    }
    send_link(app, &mut tx, TokenKind::Verify, &user).await?;
    tx.commit().await?;
    app.mailer.wake();
    Ok(())
}
