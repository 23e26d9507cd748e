//! The caller as stored now, for changes that hand out power (a key, an invitation, a role).
//!
//! A principal is authenticated from a cache that may be up to a second old on this node (and a
//! revocation reaches other nodes within ~150 ms). For most actions that is fine. For these it is
//! not: a pre-registrant's key racing the first proof of the mailbox (`mailbox_proof`) could mint a
//! key or an invitation after the proof revoked everything, and keep it. So the use case takes the
//! caller's user row lock in its transaction (the proof holds the same lock while it takes back)
//! and checks that the credential is still live and the address's state as committed.

use moltflow_store::Tx;
use moltflow_store::accounts::{UserRow, find_user, lock_user};
use moltflow_store::api_keys::find_api_key;
use moltflow_store::sessions::find_session;

use crate::services::failure::{Failure, Outcome};
use crate::services::principal::{Credential, Principal};

/// The caller's user row, read after its lock, once its session or key is known to be live at
/// `now`; `401 not_authenticated` when it was revoked (or expired) since it was authenticated.
pub async fn current_caller(tx: &mut Tx, p: &Principal, now: i64) -> Outcome<UserRow> {
    lock_user(tx, &p.user.id).await?;
    let live = match &p.credential {
        Credential::Session { session_id, .. } => {
            find_session(tx, session_id).await?.is_some_and(|s| s.revoked_at.is_none() && s.user_id == p.user.id)
        }
        Credential::ApiKey { key_id } => find_api_key(tx, p.tenant_id(), key_id)
            .await?
            .is_some_and(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|at| at > now)),
    };
    if !live {
        return Err(Failure::not_authenticated());
    }
    find_user(tx, &p.user.id).await?.filter(|u| u.tenant_id == p.tenant_id()).ok_or_else(Failure::not_authenticated)
}

/// `403 email_unverified` unless the account proved its mailbox: until then it may not invite,
/// grant `owner`/`admin`, or make keys that manage members or billing (API.md §3).
pub fn require_verified(user: &UserRow, what: &str) -> Outcome<()> {
    if user.email_verified {
        Ok(())
    } else {
        Err(Failure::forbidden("email_unverified", format!("Verify your email address before {what}")))
    }
}
