//! Sessions and token pairs: opening a session, rotating its refresh token, revoking it.

use std::sync::Arc;

use moltflow_core::clock::{Clock, DAY_MS, SECOND_MS};
use moltflow_core::ids::new_id;
use moltflow_core::secret::{new_token, sha256_hex};
use moltflow_store::accounts::{UserRow, find_user};
use moltflow_store::sessions::{
    RefreshTokenRow, SessionRow, find_refresh_token, find_session, insert_refresh_token, insert_session,
    mark_refresh_token_rotated, revoke_session, revoke_user_sessions,
};
use moltflow_store::{AsDbConn, Store, Tx};
use moltflow_types::{TokenPair, UserSummary};

use crate::auth::cache::AuthCache;
use crate::auth::jwt::{ACCESS_TOKEN_SECONDS, JwtKeys};
use crate::auth::revocation::Invalidation;
use crate::services::audit::{self, Actor, Entry};
use crate::services::failure::{Failure, Outcome};
use crate::services::origin::Origin;
use crate::services::principal::UserSession;

pub const REFRESH_TOKEN_LIFETIME_MS: i64 = 30 * DAY_MS;
/// A rotated refresh token presented again within this window is a client racing itself.
pub const REUSE_GRACE_MS: i64 = 10 * SECOND_MS;

/// What minting an access token works with: every sign-in ends here.
#[derive(Clone, Copy)]
pub struct Tokens<'a> {
    pub jwt: &'a JwtKeys,
    /// Tokens are issued on the injected clock (tests move it to expire them).
    pub clock: &'a Clock,
    /// A minted token is known valid from the start.
    pub auth_cache: &'a AuthCache,
}

/// What the session use cases (refresh, logout) work with.
pub struct Sessions<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    pub tokens: Tokens<'a>,
}

/// A session opened in a transaction; its tokens are minted once the transaction committed.
pub struct OpenedSession {
    pub session_id: String,
    pub refresh_token: String,
}

/// Inserts a session and its first refresh token, opened at `now`.
pub async fn open_session(
    tx: &mut Tx,
    user: &UserRow,
    method: &str,
    origin: &Origin,
    now: i64,
) -> moltflow_store::Result<OpenedSession> {
    let session_id = new_id();
    insert_session(
        tx,
        &SessionRow {
            id: session_id.clone(),
            user_id: user.id.clone(),
            tenant_id: user.tenant_id.clone(),
            method: method.to_owned(),
            ip: origin.ip_string(),
            user_agent: origin.user_agent.clone(),
            created_at: now,
            revoked_at: None,
        },
    )
    .await?;
    let refresh_token = add_refresh_token(tx, &session_id, now).await?;
    Ok(OpenedSession { session_id, refresh_token })
}

/// Opens a session for a successful sign-in and writes its `login.succeeded` audit entry.
pub async fn sign_in(
    tx: &mut Tx,
    user: &UserRow,
    method: &str,
    origin: &Origin,
    now: i64,
) -> moltflow_store::Result<OpenedSession> {
    let opened = open_session(tx, user, method, origin, now).await?;
    let entry = Entry {
        tenant_id: &user.tenant_id,
        actor: Actor::user(&user.id),
        action: "login.succeeded",
        target: Some(user.id.clone()),
        meta: origin,
        details: serde_json::json!({"method": method, "session_id": opened.session_id}),
    };
    audit::record_at(tx, entry, now).await?;
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
        role: user.role,
        tenant_id: user.tenant_id.clone(),
    }
}

impl Tokens<'_> {
    /// The token pair for an opened session.
    pub fn pair(&self, user: &UserRow, opened: OpenedSession) -> Outcome<TokenPair> {
        let (access_token, claims) =
            self.jwt.issue(&user.id, &user.tenant_id, user.role.as_str(), &opened.session_id, self.clock.now_ms())?;
        // Known valid from the start: the failed-authentication throttle never stands in its way.
        self.auth_cache.remember_token(&access_token, Arc::new(claims));
        Ok(TokenPair {
            access_token,
            refresh_token: opened.refresh_token,
            token_type: "bearer".to_owned(),
            expires_in: ACCESS_TOKEN_SECONDS,
            user: summary(user),
        })
    }
}

fn invalid_refresh() -> Failure {
    Failure::unauthenticated("invalid_token", "Invalid or expired refresh token")
}

impl Sessions<'_> {
    /// Rotates a refresh token (API.md §3). A token rotated more than 10 s ago is theft: the
    /// whole session is revoked and `refresh_token_reused` answered.
    pub async fn refresh(&self, raw: &str, origin: &Origin) -> Outcome<TokenPair> {
        if raw.is_empty() || raw.len() > 256 {
            return Err(invalid_refresh());
        }
        let hash = sha256_hex(raw);
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
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
                let entry = Entry {
                    tenant_id: &user.tenant_id,
                    actor: Actor { kind: "system", id: None },
                    action: "session.revoked_refresh_reuse",
                    target: Some(session.id.clone()),
                    meta: origin,
                    details: serde_json::json!({"user_id": user.id}),
                };
                audit::record_at(&mut tx, entry, now).await?;
                let change = Invalidation::default().sessions([session.id.clone()]);
                change.announce(&mut tx, self.store, self.tokens.auth_cache).await?;
                tx.commit().await?;
                change.apply(self.tokens.auth_cache).await;
                return Err(Failure::unauthenticated(
                    "refresh_token_reused",
                    "This refresh token was already used; the session has been revoked",
                ));
            }
        }
        let refresh_token = add_refresh_token(&mut tx, &session.id, now).await?;
        tx.commit().await?;
        self.tokens.pair(&user, OpenedSession { session_id: session.id, refresh_token })
    }

    /// Revokes the caller's session, or every session of the user.
    pub async fn logout(&self, p: &UserSession, all: bool, origin: &Origin) -> Outcome<()> {
        let session_id = p.require_user()?;
        let user = &p.user;
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let revoked = if all {
            revoke_user_sessions(&mut tx, &user.id, now).await?
        } else if revoke_session(&mut tx, session_id, now).await? {
            vec![session_id.to_owned()]
        } else {
            Vec::new()
        };
        let entry = Entry {
            tenant_id: &user.tenant_id,
            actor: Actor::user(&user.id),
            action: "logout",
            target: Some(user.id.clone()),
            meta: origin,
            details: serde_json::json!({"all_sessions": all, "sessions_revoked": revoked.len()}),
        };
        audit::record_at(&mut tx, entry, now).await?;
        let change = Invalidation::default().sessions(revoked);
        change.announce(&mut tx, self.store, self.tokens.auth_cache).await?;
        tx.commit().await?;
        change.apply(self.tokens.auth_cache).await;
        Ok(())
    }
}
