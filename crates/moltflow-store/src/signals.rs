//! Signals between the nodes that share one PostgreSQL database, over `LISTEN`/`NOTIFY`.
//!
//! A message is sent with [`notify`] inside the transaction of the change it announces:
//! PostgreSQL delivers it when (and only if) that transaction commits, so no node hears of a
//! change it could not yet read, and a rolled-back change is heard by nobody. Each node listens
//! on a connection of its own ([`Signals::listen`]). The channel is named after the schema, so
//! that several deployments (or test schemas) in one database do not hear each other.
//! SQLite has no such thing and needs none: one node owns the file.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Row};

use crate::{AsDbConn, DbConn, Result};

/// How long opening the listening connection may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The `application_name` of listening connections (so that operators can spot them).
pub const LISTENER_APPLICATION_NAME: &str = "moltflow-listener";
/// PostgreSQL refuses payloads of 8000 bytes or more; senders stay under this.
pub const MAX_PAYLOAD_BYTES: usize = 7900;

/// The channel of this schema and how to open a listening connection.
#[derive(Clone)]
pub struct Signals {
    channel: String,
    options: PgConnectOptions,
}

impl std::fmt::Debug for Signals {
    // The connect options hold the password: they are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").field("channel", &self.channel).finish_non_exhaustive()
    }
}

/// `moltflow_auth_<schema>`, or a digest of the schema when that would pass PostgreSQL's 63-byte
/// limit on names.
fn channel_for(schema: &str) -> String {
    let plain = format!("moltflow_auth_{schema}");
    if plain.len() <= 63 {
        plain
    } else {
        format!("moltflow_auth_{}", &moltflow_core::secret::sha256_hex(schema)[..32])
    }
}

impl Signals {
    pub(crate) async fn new(pool: &PgPool, options: PgConnectOptions) -> Result<Signals> {
        let schema: String = sqlx::query("SELECT current_schema()").fetch_one(pool).await?.try_get(0)?;
        Ok(Signals { channel: channel_for(&schema), options })
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// A new connection of its own (outside the request pool, so that it never waits for one)
    /// listening on the channel.
    pub async fn listen(&self) -> Result<Listener> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(CONNECT_TIMEOUT)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.options.clone().application_name(LISTENER_APPLICATION_NAME));
        let mut inner = tokio::time::timeout(CONNECT_TIMEOUT, PgListener::connect_with(&pool))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        // A lost connection is reported, not silently replaced: the caller must learn that it
        // may have missed messages.
        inner.eager_reconnect(false);
        tokio::time::timeout(CONNECT_TIMEOUT, inner.listen(&self.channel))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Listener { inner, _pool: pool })
    }
}

/// What a listening connection heard.
pub enum Heard {
    /// A message's payload.
    Message(String),
    /// The connection is gone; messages sent since may be lost. Open a new listener.
    Lost,
}

/// A connection listening on its schema's channel.
pub struct Listener {
    inner: PgListener,
    _pool: PgPool,
}

impl Listener {
    /// The next message, or [`Heard::Lost`]. Cancel-safe (it may run under a timeout).
    pub async fn recv(&mut self) -> Result<Heard> {
        Ok(match self.inner.try_recv().await? {
            Some(n) => Heard::Message(n.payload().to_owned()),
            None => Heard::Lost,
        })
    }
}

/// Sends `payload` on `channel`; inside a transaction it is delivered at commit, and never if the
/// transaction rolls back. Nothing on SQLite.
pub async fn notify(c: &mut impl AsDbConn, channel: &str, payload: &str) -> Result<()> {
    if let DbConn::Postgres(c) = c.db_conn() {
        sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(c).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_fit_postgresql_names() {
        assert_eq!(channel_for("public"), "moltflow_auth_public");
        let long = "s".repeat(60);
        let channel = channel_for(&long);
        assert!(channel.len() <= 63 && channel.starts_with("moltflow_auth_"), "{channel}");
        assert_ne!(channel, channel_for(&"t".repeat(60)));
    }
}
