//! Sessions and token pairs: opening a session, rotating its refresh token, revoking it.

use std::sync::Arc;

use moltflow_core::clock::{DAY_MS, SECOND_MS, now_ms};
use moltflow_core::ids::new_id;
use moltflow_core::secret::{new_token, sha256_hex};
use moltflow_store::accounts::{UserRow, find_user};
use moltflow_store::sessions::{
    RefreshTokenRow, SessionRow, find_refresh_token, find_session, insert_refresh_token, insert_session,
    mark_refresh_token_rotated, revoke_session, revoke_user_sessions,
};
use moltflow_store::{AsDbConn, Tx};
use moltflow_types::{TokenPair, UserSummary};

use crate::auth::jwt::ACCESS_TOKEN_SECONDS;
use crate::auth::revocation::Invalidation;
use crate::error::{ApiError, ApiResult};
use crate::services::audit::{self, Actor, Entry};
use crate::services::origin::Origin;
use crate::state::App;

pub const REFRESH_TOKEN_LIFETIME_MS: i64 = 30 * DAY_MS;
/// A rotated refresh token presented again within this window is a client racing itself.
pub const REUSE_GRACE_MS: i64 = 10 * SECOND_MS;

/// A session opened in a transaction; its tokens are minted once the transaction committed.
pub struct OpenedSession {
    pub session_id: String,
    pub refresh_token: String,
}

/// Inserts a session and its first refresh token.
pub async fn open_session(
    tx: &mut Tx,
    user: &UserRow,
    method: &str,
    meta: &Origin,
) -> moltflow_store::Result<OpenedSession> {
    let now = now_ms();
    let session_id = new_id();
    insert_session(
        tx,
        &SessionRow {
            id: session_id.clone(),
            user_id: user.id.clone(),
            tenant_id: user.tenant_id.clone(),
            method: method.to_owned(),
            ip: meta.ip_string(),
            user_agent: meta.user_agent.clone(),
            created_at: now,
            revoked_at: None,
        },
    )
    .await?;
    let refresh_token = add_refresh_token(tx, &session_id, now).await?;
    Ok(OpenedSession { session_id, refresh_token })
}

/// Opens a session for a successful sign-in and writes its `login.succeeded` audit entry.
pub async fn sign_in(tx: &mut Tx, user: &UserRow, method: &str, meta: &Origin) -> ApiResult<OpenedSession> {
    let opened = open_session(tx, user, method, meta).await?;
    audit::record(
        tx,
        Entry {
            tenant_id: &user.tenant_id,
            actor: Actor::user(&user.id),
            action: "login.succeeded",
            target: Some(user.id.clone()),
            meta,
            details: serde_json::json!({"method": method, "session_id": opened.session_id}),
        },
    )
    .await?;
    Ok(opened)
}

async fn add_refresh_token(c: &mut impl AsDbConn, session_id: &str, now: i64) -> moltflow_store::Result<String> {
    let raw = new_token();
    insert_refresh_token(
        c,
        &RefreshTokenRow {
            token_hash: sha256_hex(&raw),
            session_id: session_id.to_owned(),
            created_at: now,
            expires_at: now + REFRESH_TOKEN_LIFETIME_MS,
            rotated_at: None,
        },
    )
    .await?;
    Ok(raw)
}

pub fn summary(user: &UserRow) -> UserSummary {
    UserSummary {
        id: user.id.clone(),
        email: user.email.clone(),
        full_name: user.full_name.clone(),
        role: user.role.clone(),
        tenant_id: user.tenant_id.clone(),
    }
}

/// The token pair for an opened session.
pub fn token_pair(app: &App, user: &UserRow, opened: OpenedSession) -> ApiResult<TokenPair> {
    let (access_token, claims) = app.jwt.issue(&user.id, &user.tenant_id, &user.role, &opened.session_id)?;
    // Known valid from the start: the failed-authentication throttle never stands in its way.
    app.auth_cache.remember_token(&access_token, std::sync::Arc::new(claims));
    Ok(TokenPair {
        access_token,
        refresh_token: opened.refresh_token,
        token_type: "bearer".to_owned(),
        expires_in: ACCESS_TOKEN_SECONDS,
        user: summary(user),
    })
}

fn invalid_refresh() -> ApiError {
    ApiError::unauthorized("invalid_token", "Invalid or expired refresh token")
}

/// Rotates a refresh token (API.md §3). A token rotated more than 10 s ago is theft: the whole
/// session is revoked and `401 refresh_token_reused` answered.
pub async fn refresh(app: &App, raw: &str, meta: &Origin) -> ApiResult<TokenPair> {
    if raw.is_empty() || raw.len() > 256 {
        return Err(invalid_refresh());
    }
    let hash = sha256_hex(raw);
    let now = now_ms();
    let mut tx = app.store.begin().await?;
    let token = find_refresh_token(&mut tx, &hash).await?.ok_or_else(invalid_refresh)?;
    let session = find_session(&mut tx, &token.session_id).await?.ok_or_else(invalid_refresh)?;
    if session.revoked_at.is_some() || token.expires_at <= now {
        return Err(invalid_refresh());
    }
    let user = find_user(&mut tx, &session.user_id).await?.ok_or_else(invalid_refresh)?;
    let rotated_now = token.rotated_at.is_none() && mark_refresh_token_rotated(&mut tx, &hash, now).await?;
    if !rotated_now {
        let rotated_at = token.rotated_at.unwrap_or(now);
        if now - rotated_at > REUSE_GRACE_MS {
            revoke_session(&mut tx, &session.id, now).await?;
            audit::record(
                &mut tx,
                Entry {
                    tenant_id: &user.tenant_id,
                    actor: Actor { kind: "system", id: None },
                    action: "session.revoked_refresh_reuse",
                    target: Some(session.id.clone()),
                    meta,
                    details: serde_json::json!({"user_id": user.id}),
                },
            )
            .await?;
            let change = Invalidation::default().sessions([session.id.clone()]);
            change.announce(&mut tx, &app.store, &app.auth_cache).await?;
            tx.commit().await?;
            change.apply(&app.auth_cache).await;
            return Err(ApiError::unauthorized(
                "refresh_token_reused",
                "This refresh token was already used; the session has been revoked",
            ));
        }
    }
    let refresh_token = add_refresh_token(&mut tx, &session.id, now).await?;
    tx.commit().await?;
    token_pair(app, &user, OpenedSession { session_id: session.id, refresh_token })
}

/// Revokes one session, or every session of the user.
pub async fn logout(app: &App, user: &Arc<UserRow>, session_id: &str, all: bool, meta: &Origin) -> ApiResult<()> {
    let now = now_ms();
    let mut tx = app.store.begin().await?;
    let revoked = if all {
        revoke_user_sessions(&mut tx, &user.id, now).await?
    } else if revoke_session(&mut tx, session_id, now).await? {
        vec![session_id.to_owned()]
    } else {
        Vec::new()
    };
    audit::record(
        &mut tx,
        Entry {
            tenant_id: &user.tenant_id,
            actor: Actor::user(&user.id),
            action: "logout",
            target: Some(user.id.clone()),
            meta,
            details: serde_json::json!({"all_sessions": all, "sessions_revoked": revoked.len()}),
        },
    )
    .await?;
    let change = Invalidation::default().sessions(revoked);
    change.announce(&mut tx, &app.store, &app.auth_cache).await?;
    tx.commit().await?;
    change.apply(&app.auth_cache).await;
    Ok(())
}
