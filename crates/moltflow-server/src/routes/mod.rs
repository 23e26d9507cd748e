//! The routes, one module per resource, collected with their OpenAPI description.

use std::sync::LazyLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::error::{ApiError, ApiResult};
use crate::extract::Origin;
use crate::state::AppState;
use moltflow_app::auth::throttle::{IpRates as _, IpThrottle};

pub mod api_keys;
pub mod auth;
pub mod auth_mail;
pub mod billing;
pub mod openapi;
pub mod ops;
pub mod tenant;
pub mod usage;
pub mod users;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MoltFlow Admin API",
        description = "Authentication, API keys with scopes, billing, usage metering, tenant settings, \
                       members and audit log of MoltFlow. Every route answers under `/api/v2` and without the prefix.",
    ),
    servers((url = "/api/v2"), (url = "/")),
    modifiers(&SecuritySchemes),
    tags(
        (name = "api-keys", description = "API keys and their scopes"),
        (name = "tenant", description = "Tenant settings and GDPR consent records"),
        (name = "members", description = "Team members and their roles"),
        (name = "audit", description = "The audit log"),
        (name = "billing", description = "Plans, subscription, checkout, portal, Stripe webhooks"),
        (name = "billing-local", description = "Pages of the local billing provider"),
        (name = "auth", description = "Sign-up, login, sessions, password reset, email verification, magic links"),
        (name = "users", description = "The caller's own profile and account"),
        (name = "ops", description = "Health, metrics, keys and this document"),
        (name = "usage", description = "Usage metering and plan quotas"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

/// The prefix every route also answers under (API.md §1).
pub const API_PREFIX: &str = "/api/v2";

/// Adding the API's documented routes.
pub trait ApiRoutes {
    /// Adds a documented route at its path and at the same path under [`API_PREFIX`].
    ///
    /// Registered twice rather than `Router::nest`ed: a nested route rewrites each request's URI
    /// (a `format!` and a new `Uri`) and wraps the route in two more boxed services (what that
    /// costs: BENCHMARKS.md, "the request path"). Keep every route added through here, so that
    /// both paths answer the same (API.md §1).
    fn api_routes(self, routes: UtoipaMethodRouter<AppState>) -> Self;
}

impl ApiRoutes for OpenApiRouter<AppState> {
    fn api_routes(self, routes: UtoipaMethodRouter<AppState>) -> Self {
        let (_, paths, method_router) = &routes;
        let prefixed = paths
            .paths
            .keys()
            .fold(self, |router, path| router.route(&format!("{API_PREFIX}{path}"), method_router.clone()));
        prefixed.routes(routes)
    }
}

/// Every route of the API with its description, each at its path and under [`API_PREFIX`].
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::routes())
        .merge(api_keys::routes())
        .merge(tenant::routes())
        .merge(billing::routes())
        .merge(auth_mail::routes())
        .merge(users::routes())
        .merge(usage::routes())
        .merge(ops::routes())
}

/// The OpenAPI document, serialised once.
pub fn openapi_json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let (_, spec) = api().split_for_parts();
        let mut doc = serde_json::to_value(&spec).unwrap_or_default();
        openapi::complete(&mut doc);
        serde_json::to_string(&doc).unwrap_or_else(|_| "{}".to_owned())
    });
    &JSON
}

/// A per-address throttle of a public route (`429 rate_limited` with `Retry-After`), checked at
/// the edge before the use case runs: throttling by address is a concern of the way in, not of
/// the use case.
pub async fn throttle(limiter: &IpThrottle, origin: &Origin, detail: &'static str, now: i64) -> ApiResult<()> {
    limiter.check(origin.ip, now).await.map_err(|wait| ApiError::too_many("rate_limited", detail, wait))
}
