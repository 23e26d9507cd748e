//! The first proof of a mailbox (API.md §3). Anyone may register any address, and an unverified
//! account may act: sign in with the password it chose, make keys, queue invitations. So the first
//! time someone proves they hold the mailbox (a verification link, a magic link, a password reset,
//! an invitation mailed to the address), everything set up before that proof is taken back in the
//! same transaction: every session, every API key the account created, its pending invitations and
//! its password. Whoever pre-registered the address keeps nothing (Sudhodanan & Paverd, USENIX
//! Security 2022: the classic and the unexpired-session pre-hijacking attacks). The mailbox owner
//! is told what was removed.

use moltflow_store::Tx;
use moltflow_store::accounts::{UserRow, clear_user_password, set_email_verified};
use moltflow_store::api_keys::revoke_user_api_keys;
use moltflow_store::invitations::revoke_pending_sent_by;
use moltflow_store::sessions::revoke_user_sessions;
use serde_json::json;

use crate::auth::revocation::Invalidation;
use crate::mail::{MailKind, Mailer};
use crate::services::audit::{self, Actor, Entry};
use crate::services::failure::Outcome;
use crate::services::origin::Origin;

/// How the mailbox was proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    Verification,
    MagicLink,
    PasswordReset,
    Invitation,
}

impl Proof {
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::Verification => "verification",
            Proof::MagicLink => "magic_link",
            Proof::PasswordReset => "password_reset",
            Proof::Invitation => "invitation",
        }
    }

    /// The notice's opening words.
    fn sentence(self) -> &'static str {
        match self {
            Proof::Verification => "You confirmed your email address",
            Proof::MagicLink => "You signed in with a link we emailed",
            Proof::PasswordReset => "You reset the password",
            Proof::Invitation => "You opened an invitation mailed to this address",
        }
    }

    fn next_step(self) -> &'static str {
        match self {
            Proof::Verification | Proof::Invitation => {
                "To sign in, ask for an emailed sign-in link on the sign-in page, then choose a new password in your profile."
            }
            Proof::MagicLink => "You are signed in. Choose a new password in your profile to sign in with one again.",
            Proof::PasswordReset => "Sign in with the password you just chose.",
        }
    }
}

/// What a first proof took back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TakenBack {
    /// The sessions it ended.
    pub sessions: Vec<String>,
    /// Hashes of the key secrets that stopped working (a rotated key's previous one included).
    pub dead_keys: Vec<String>,
    /// How many keys it revoked.
    pub keys: usize,
    pub invitations: u64,
    /// Whether the account had a password, now removed.
    pub password: bool,
}

impl TakenBack {
    /// What every node must forget once the transaction committed.
    pub fn invalidation(&self, user_id: &str) -> Invalidation {
        Invalidation::default()
            .sessions(self.sessions.iter().cloned())
            .dead_keys(self.dead_keys.iter().cloned())
            .user(user_id)
    }

    /// The list the notice and the confirming page show, one line each.
    pub fn lines(&self) -> Vec<String> {
        let plural = |n: usize, one: &str, many: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {many}") };
        let mut lines = Vec::new();
        if !self.sessions.is_empty() {
            lines.push(format!(
                "{}, signed out",
                plural(self.sessions.len(), "signed-in session", "signed-in sessions")
            ));
        }
        if self.keys > 0 {
            lines.push(format!("{}, revoked", plural(self.keys, "API key", "API keys")));
        }
        if self.invitations > 0 {
            lines.push(format!(
                "{}, withdrawn",
                plural(self.invitations as usize, "pending invitation", "pending invitations")
            ));
        }
        if self.password {
            lines.push("the password set before this proof".to_owned());
        }
        lines
    }

    /// The list as one sentence ("nothing" when the account had nothing set up).
    pub fn summary(&self) -> String {
        let lines = self.lines();
        if lines.is_empty() { "nothing".to_owned() } else { lines.join("; ") }
    }
}

/// Marks the user's email verified. When it was not verified before, this is the first proof of
/// the mailbox: takes back everything set up before it, records `email.verified` with what was
/// removed and queues the notice, all in `tx`. `None` when the address was verified already (of
/// two proofs racing, the one whose update finds it unverified does the taking back).
pub async fn prove(
    tx: &mut Tx,
    mailer: &Mailer,
    user: &UserRow,
    proof: Proof,
    origin: &Origin,
    now: i64,
) -> Outcome<Option<TakenBack>> {
    if !set_email_verified(tx, &user.id, now).await? {
        return Ok(None);
    }
    let sessions = revoke_user_sessions(tx, &user.id, now).await?;
    let keys = revoke_user_api_keys(tx, &user.id, now).await?;
    let invitations = revoke_pending_sent_by(tx, &user.id, false, now).await?;
    let password = clear_user_password(tx, &user.id, now).await?;
    let taken = TakenBack {
        sessions,
        keys: keys.len(),
        dead_keys: keys.into_iter().flat_map(|(current, previous)| std::iter::once(current).chain(previous)).collect(),
        invitations,
        password,
    };
    let entry = Entry {
        tenant_id: &user.tenant_id,
        actor: Actor::user(&user.id),
        action: "email.verified",
        target: Some(user.id.clone()),
        meta: origin,
        details: json!({
            "email": user.email,
            "via": proof.as_str(),
            "sessions_revoked": taken.sessions.len(),
            "keys_revoked": taken.keys,
            "invitations_revoked": taken.invitations,
            "password_removed": taken.password,
        }),
    };
    audit::record_at(tx, entry, now).await?;
    let lines = taken.lines();
    let removed = if lines.is_empty() {
        "- nothing: the account had nothing set up yet".to_owned()
    } else {
        lines.iter().map(|l| format!("- {l}")).collect::<Vec<_>>().join("\n")
    };
    let vars = [
        ("name", user.full_name.as_str()),
        ("email", user.email.as_str()),
        ("proof", proof.sentence()),
        ("removed", removed.as_str()),
        ("next_step", proof.next_step()),
    ];
    mailer.enqueue(tx, MailKind::AccountSecured, &user.email, &vars, now).await?;
    Ok(Some(taken))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_each_thing_taken_back_once() {
        assert_eq!(TakenBack::default().summary(), "nothing");
        let taken = TakenBack {
            sessions: vec!["a".into(), "b".into()],
            dead_keys: vec!["h1".into(), "h2".into(), "h3".into()],
            keys: 1,
            invitations: 3,
            password: true,
        };
        assert_eq!(
            taken.summary(),
            "2 signed-in sessions, signed out; 1 API key, revoked; 3 pending invitations, withdrawn; \
             the password set before this proof"
        );
        let invalidation = taken.invalidation("u");
        assert_eq!((invalidation.sessions.len(), invalidation.dead_keys.len()), (2, 3));
        assert_eq!(invalidation.users, ["u"]);
    }
}
