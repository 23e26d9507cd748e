//! The composition root: each use case is built here from the parts of the [`App`] it needs, so
//! a use case sees its store, clock and collaborators and nothing else (and a test can build one
//! from just those).

use moltflow_core::Email;

use crate::services::api_keys::ApiKeys;
use crate::services::audit::AuditLog;
use crate::services::auth::Auth;
use crate::services::billing::Billing;
use crate::services::invitations::Invitations;
use crate::services::members::Members;
use crate::services::recovery::{LinkRequest, Recovery};
use crate::services::sessions::{Sessions, Tokens};
use crate::services::signup::Signup;
use crate::services::tenant::Settings;
use crate::services::usage::Usage;
use crate::services::users::Users;
use crate::services::verification::Verification;
use std::sync::Arc;

use crate::state::App;

impl App {
    pub fn api_keys(&self) -> ApiKeys<'_> {
        ApiKeys { store: &self.store, clock: &self.clock, auth_cache: &self.auth_cache }
    }

    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { jwt: &self.jwt, clock: &self.clock, auth_cache: &self.auth_cache }
    }

    pub fn auth(&self) -> Auth<'_> {
        Auth {
            store: &self.store,
            clock: &self.clock,
            hasher: &self.hasher,
            mailer: &self.mailer,
            tokens: self.tokens(),
            lockout: &self.rate_limits.login_lockout,
            audit_queue: &self.audit_queue,
        }
    }

    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { store: &self.store, clock: &self.clock, tokens: self.tokens() }
    }

    pub fn recovery(&self) -> Recovery<'_> {
        Recovery {
            store: &self.store,
            clock: &self.clock,
            hasher: &self.hasher,
            mailer: &self.mailer,
            tokens: self.tokens(),
            lockout: &self.rate_limits.login_lockout,
        }
    }

    pub fn verification(&self) -> Verification<'_> {
        Verification { store: &self.store, clock: &self.clock, mailer: &self.mailer, auth_cache: &self.auth_cache }
    }

    pub fn users(&self) -> Users<'_> {
        Users {
            store: &self.store,
            clock: &self.clock,
            hasher: &self.hasher,
            lockout: &self.rate_limits.login_lockout,
            auth_cache: &self.auth_cache,
            billing: self.billing(),
        }
    }

    pub fn members(&self) -> Members<'_> {
        Members { store: &self.store, clock: &self.clock, auth_cache: &self.auth_cache }
    }

    pub fn invitations(&self) -> Invitations<'_> {
        Invitations {
            store: &self.store,
            clock: &self.clock,
            hasher: &self.hasher,
            mailer: &self.mailer,
            tokens: self.tokens(),
        }
    }

    pub fn settings(&self) -> Settings<'_> {
        Settings { store: &self.store, clock: &self.clock }
    }

    pub fn audit_log(&self) -> AuditLog<'_> {
        AuditLog { store: &self.store }
    }

    pub fn usage(&self) -> Usage<'_> {
        Usage { store: &self.store, clock: &self.clock, plans: &self.plans, writer: &self.usage_writer }
    }

    pub fn billing(&self) -> Billing<'_> {
        Billing {
            store: &self.store,
            clock: &self.clock,
            plans: &self.plans,
            provider: &self.payments.provider,
            prices: &self.payments.prices,
            local_portals: &self.payments.local_portals,
            public_url: &self.config.server.public_url,
            redirect_origins: &self.config.billing.redirect_origins,
            auth_cache: &self.auth_cache,
            usage: self.usage(),
        }
    }

    pub fn signup(&self) -> Signup<'_> {
        Signup { auth: self.auth(), billing: self.billing() }
    }
}

impl App {
    /// Runs [`Recovery::mail_link`] off the request path: a mail request is answered at once, the
    /// same for a known and an unknown address, whatever the lookup finds or costs.
    pub fn mail_link_in_background(self: &Arc<Self>, email: Email, request: LinkRequest) {
        let state = self.clone();
        // Counted before the request answers, so that a pass of the outbox after it waits for this.
        let queueing = state.mailer.queueing.start();
        tokio::spawn(async move {
            let _queueing = queueing;
            if let Err(e) = state.recovery().mail_link(&email, request).await {
                tracing::error!(code = e.code(), kind = request.as_str(), "queueing a mail failed");
            }
        });
    }
}
