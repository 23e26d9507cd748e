//! What keeps authentication off the database: verified access tokens (until they expire) and
//! session states (for one second, or until this node revokes them). Another node's revocation
//! therefore reaches this one within a second; this node's own takes effect on the next request.

use std::sync::Arc;
use std::time::Duration;

use moltflow_core::clock::now_ms;
use moltflow_store::Store;
use moltflow_store::accounts::{UserRow, find_user};
use moltflow_store::sessions::find_session;

use super::jwt::{ACCESS_TOKEN_SECONDS, Claims};

/// A session as authentication needs it: live or not, and its user as of now.
#[derive(Debug)]
pub struct SessionState {
    pub revoked: bool,
    pub user: Option<Arc<UserRow>>,
    pub method: String,
    pub created_at: i64,
}

pub struct AuthCache {
    tokens: moka::sync::Cache<Arc<str>, Arc<Claims>>,
    sessions: moka::future::Cache<String, Arc<SessionState>>,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            tokens: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(Duration::from_secs(ACCESS_TOKEN_SECONDS as u64))
                .build(),
            sessions: moka::future::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(Duration::from_secs(1))
                .support_invalidation_closures()
                .build(),
        }
    }
}

impl AuthCache {
    /// Claims of a token verified before, if it has not expired since.
    pub fn verified_token(&self, token: &str) -> Option<Arc<Claims>> {
        self.tokens.get(token).filter(|c| c.exp * 1000 > now_ms())
    }

    pub fn remember_token(&self, token: &str, claims: Arc<Claims>) {
        self.tokens.insert(Arc::from(token), claims);
    }

    /// The session's state, from memory or (once per second per session) from the database.
    pub async fn session(
        &self,
        store: &Store,
        session_id: &str,
    ) -> Result<Arc<SessionState>, Arc<moltflow_store::DbError>> {
        self.sessions
            .try_get_with_by_ref(session_id, async {
                let mut conn = store.conn().await?;
                let Some(session) = find_session(&mut conn, session_id).await? else {
                    return Ok(Arc::new(SessionState {
                        revoked: true,
                        user: None,
                        method: String::new(),
                        created_at: 0,
                    }));
                };
                let user = find_user(&mut conn, &session.user_id).await?.map(Arc::new);
                Ok::<_, moltflow_store::DbError>(Arc::new(SessionState {
                    revoked: session.revoked_at.is_some(),
                    user,
                    method: session.method,
                    created_at: session.created_at,
                }))
            })
            .await
    }

    /// Forgets sessions so that their next request reads the database (after a revocation).
    pub async fn forget_sessions(&self, ids: &[String]) {
        for id in ids {
            self.sessions.invalidate(id).await;
        }
    }

    /// Forgets every cached session of a user (after a change to the user).
    pub fn forget_user(&self, user_id: &str) {
        let user_id = user_id.to_owned();
        let _ = self.sessions.invalidate_entries_if(move |_, s| s.user.as_ref().is_some_and(|u| u.id == user_id));
    }
}
