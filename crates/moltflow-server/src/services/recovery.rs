//! Getting back in by mail: password reset and magic links (API.md §3).
//!
//! The public request routes answer `202` at once and do the lookup, the token and the outbox row
//! in a task of their own, so that a known and an unknown address look the same from outside,
//! in body and in time.

use moltflow_core::Email;
use moltflow_core::clock::now_ms;
use moltflow_core::password::check_new_password;
use moltflow_store::accounts::{find_user_by_email, set_email_verified, set_user_password};
use moltflow_store::api_keys::revoke_user_api_keys;
use moltflow_store::invitations::revoke_pending_sent_by;
use moltflow_store::sessions::revoke_user_sessions;
use moltflow_store::tokens::use_user_tokens;
use moltflow_types::{ResetPasswordRequest, TokenPair};

use crate::auth::revocation::Invalidation;
use crate::auth::throttle::IpRates as _;
use crate::error::{ApiError, ApiResult};
use crate::services::audit::{self, Actor, Entry};
use crate::services::mailing::{send_link, under_hourly_cap};
use crate::services::one_time::{self, TokenKind};
use crate::services::origin::Origin;
use crate::services::sessions::{sign_in, token_pair};
use crate::state::{App, AppState};

/// The body of every `202` of a mail request, whatever happened.
pub const ACCEPTED: &str = "If an account exists for this address, we have sent it an email.";

/// `POST /auth/forgot-password`.
pub async fn forgot_password(state: &AppState, email: &str, meta: &Origin) -> ApiResult<()> {
    state.limits.forgot_password_ip.check(meta.ip, state.clock.now_ms()).await.map_err(|wait| {
        ApiError::too_many("rate_limited", "Too many password reset requests from this address", wait)
    })?;
    queue_in_background(state, parse_email(email)?, TokenKind::Reset);
    Ok(())
}

/// `POST /auth/magic-link/request`.
pub async fn request_magic_link(state: &AppState, email: &str, meta: &Origin) -> ApiResult<()> {
    state
        .limits
        .magic_link_ip
        .check(meta.ip, state.clock.now_ms())
        .await
        .map_err(|wait| ApiError::too_many("rate_limited", "Too many sign-in link requests from this address", wait))?;
    queue_in_background(state, parse_email(email)?, TokenKind::Magic);
    Ok(())
}

fn parse_email(raw: &str) -> ApiResult<Email> {
    Email::parse(raw).map_err(|e| ApiError::invalid(&["body", "email"], e.to_string(), "value_error"))
}

fn queue_in_background(state: &AppState, email: Email, kind: TokenKind) {
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = queue_for_known_address(&state, &email, kind).await {
            tracing::error!(code = e.code, kind = kind.as_str(), "queueing a mail failed");
        }
    });
}

/// Looks the address up and, for an account under the hourly cap, mails it a link. Unknown
/// addresses get nothing: a magic link never creates an account.
async fn queue_for_known_address(app: &App, email: &Email, kind: TokenKind) -> ApiResult<()> {
    let mut tx = app.store.begin().await?;
    let Some(user) = find_user_by_email(&mut tx, email.as_str()).await? else {
        return Ok(());
    };
    if !under_hourly_cap(&mut tx, &user).await? {
        tracing::info!(kind = kind.as_str(), user_id = %user.id, "hourly mail cap reached; nothing sent");
        return Ok(());
    }
    send_link(app, &mut tx, kind, &user).await?;
    tx.commit().await?;
    app.mailer.wake();
    Ok(())
}

/// `POST /auth/reset-password`: sets the password, verifies the email (the mail reached it) and
/// ends every session of the user; when the email was not verified before, also revokes every
/// API key and pending invitation the account created (API.md §3).
pub async fn reset_password(app: &App, req: ResetPasswordRequest, meta: &Origin) -> ApiResult<()> {
    let user = {
        let mut conn = app.store.conn().await?;
        one_time::peek(&mut conn, TokenKind::Reset, &req.token).await?
    };
    check_new_password(&req.new_password, &user.email, &[&user.full_name])
        .map_err(|e| ApiError::invalid(&["body", "new_password"], e.to_string(), "value_error"))?;
    let hash = app.hasher.hash(&req.new_password).await?;
    let now = now_ms();
    let mut tx = app.store.begin().await?;
    let user = one_time::redeem(&mut tx, TokenKind::Reset, &req.token).await?;
    set_user_password(&mut tx, &user.id, &hash, now).await?;
    set_email_verified(&mut tx, &user.id, now).await?;
    let revoked = revoke_user_sessions(&mut tx, &user.id, now).await?;
    // A sign-in link mailed before the reset would bypass the new password.
    use_user_tokens(&mut tx, &user.id, TokenKind::Magic.as_str(), now).await?;
    // Pre-hijacking: whoever registered an address they could not verify may have left keys and
    // invitations behind; the owner of the mailbox takes the account over without them.
    let (dead_keys, invitations) = if user.email_verified {
        (Vec::new(), 0)
    } else {
        let keys = revoke_user_api_keys(&mut tx, &user.id, now).await?;
        (keys, revoke_pending_sent_by(&mut tx, &user.id, false, now).await?)
    };
    audit::record(
        &mut tx,
        Entry {
            tenant_id: &user.tenant_id,
            actor: Actor::user(&user.id),
            action: "password.reset",
            target: Some(user.id.clone()),
            meta,
            details: serde_json::json!({
                "sessions_revoked": revoked.len(),
                "email_was_verified": user.email_verified,
                "keys_revoked": dead_keys.len(),
                "invitations_revoked": invitations,
            }),
        },
    )
    .await?;
    let change = Invalidation::default()
        .sessions(revoked)
        .dead_keys(dead_keys.into_iter().flat_map(|(current, previous)| std::iter::once(current).chain(previous)))
        .user(&user.id);
    change.announce(&mut tx, &app.store, &app.auth_cache).await?;
    tx.commit().await?;
    change.apply(&app.auth_cache).await;
    app.limits.login_lockout.clear(&user.email).await;
    Ok(())
}

/// `POST /auth/magic-link/verify`: signs the user in (session method `magic_link`) and verifies
/// the email.
pub async fn verify_magic_link(app: &App, token: &str, meta: &Origin) -> ApiResult<TokenPair> {
    let mut tx = app.store.begin().await?;
    let user = one_time::redeem(&mut tx, TokenKind::Magic, token).await?;
    set_email_verified(&mut tx, &user.id, now_ms()).await?;
    let opened = sign_in(&mut tx, &user, "magic_link", meta).await?;
    let change = Invalidation::default().user(&user.id);
    change.announce(&mut tx, &app.store, &app.auth_cache).await?;
    tx.commit().await?;
    change.apply(&app.auth_cache).await;
    let user = moltflow_store::accounts::UserRow { email_verified: true, ..user };
    token_pair(app, &user, opened)
}
