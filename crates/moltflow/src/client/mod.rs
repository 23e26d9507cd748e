//! `moltflow` as a client of the admin API: an HTTP client of `MOLTFLOW_API_URL`, authenticated
//! by `MOLTFLOW_API_KEY` or the stored `moltflow login`. The CLI and the stdio MCP server use it.

pub mod failure;
pub mod render;
pub mod stored_login;

use std::time::Duration;

use moltflow_types::RefreshRequest;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use failure::{Class, CliResult, Failure};
use stored_login::{StoredLogin, now_secs};

pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8080/api/v2";

/// An answer of the API: the parsed body, and the text as it came (for `--json`).
pub struct Reply {
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The body as the contract's type for this answer (`moltflow_types`): a field the server
    /// renamed or dropped is said here, not found missing later.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> CliResult<T> {
        serde_json::from_value(self.body.clone()).map_err(|e| {
            Failure::new(Class::Server, format!("the server's answer is not what this client expects: {e}"))
        })
    }
}

#[derive(Clone)]
enum Credential {
    None,
    ApiKey(String),
    Bearer(String),
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    credential: Credential,
    /// Sent with every request, so that audit entries tell the CLI from the MCP server.
    user_agent: &'static str,
}

pub const CLI_USER_AGENT: &str = concat!("moltflow-cli/", env!("CARGO_PKG_VERSION"));
pub const MCP_USER_AGENT: &str = concat!("moltflow-mcp/", env!("CARGO_PKG_VERSION"), " (stdio)");

impl Api {
    /// A client of `api_url` without credentials (for sign-in and public routes).
    pub fn anonymous(api_url: &str) -> CliResult<Api> {
        moltflow_app::tls::install_crypto_provider();
        let parsed = url::Url::parse(api_url)
            .map_err(|e| Failure::usage(format!("MOLTFLOW_API_URL {api_url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Failure::usage(format!("MOLTFLOW_API_URL {api_url:?} must be http or https")));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .redirect(same_origin_only())
            .build()
            .map_err(|e| Failure::new(failure::Class::Server, format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            http,
            base: api_url.trim_end_matches('/').to_owned(),
            credential: Credential::None,
            user_agent: CLI_USER_AGENT,
        })
    }

    /// The same client, introducing itself as `user_agent`.
    pub fn with_user_agent(mut self, user_agent: &'static str) -> Api {
        self.user_agent = user_agent;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A client authenticated by `api_key` when given, otherwise by the stored login (refreshed
    /// when its access token is about to expire). Neither → `not signed in`.
    pub async fn authenticated(api_url: &str, api_key: Option<&str>) -> CliResult<Api> {
        let mut api = Api::anonymous(api_url)?;
        if let Some(key) = api_key.map(str::trim).filter(|k| !k.is_empty()) {
            api.credential = Credential::ApiKey(key.to_owned());
            return Ok(api);
        }
        let login = StoredLogin::load(&api.base)?.ok_or_else(Failure::not_signed_in)?;
        let login = if login.access_expires_at > now_secs() + 30 { login } else { api.refresh(login).await? };
        api.credential = Credential::Bearer(login.access_token);
        Ok(api)
    }

    /// Trades the stored refresh token for a new pair and stores it (the old one is spent).
    async fn refresh(&self, login: StoredLogin) -> CliResult<StoredLogin> {
        let reply = self
            .post("/auth/refresh", &RefreshRequest { refresh_token: login.refresh_token.clone() })
            .await
            .map_err(|f| {
                if f.class == failure::Class::Auth {
                    let _ = StoredLogin::remove();
                    Failure::new(
                        failure::Class::Auth,
                        format!("your login has ended ({f}); run `moltflow login` again"),
                    )
                } else {
                    f
                }
            })?;
        let stored = self.store_pair(&login.email, &reply.body)?;
        Ok(stored)
    }

    /// Keeps a token pair answered by login, refresh or magic-link verify.
    pub fn store_pair(&self, email: &str, pair: &Value) -> CliResult<StoredLogin> {
        let (Some(access), Some(refresh)) = (pair["access_token"].as_str(), pair["refresh_token"].as_str()) else {
            return Err(Failure::new(failure::Class::Server, "the server answered without a token pair"));
        };
        let login = StoredLogin {
            api_url: self.base.clone(),
            email: email.to_owned(),
            refresh_token: refresh.to_owned(),
            access_token: access.to_owned(),
            access_expires_at: now_secs() + pair["expires_in"].as_i64().unwrap_or(0),
        };
        login.save()?;
        Ok(login)
    }

    pub async fn get(&self, path: &str) -> CliResult<Reply> {
        self.send(Method::GET, path, None).await
    }

    /// A `POST` of a request body (a `moltflow_types` request, or a `Value` read from a file).
    pub async fn post(&self, path: &str, body: &impl Serialize) -> CliResult<Reply> {
        self.send(Method::POST, path, Some(to_body(body)?)).await
    }

    /// A `POST` without a body (routes that take none, like `/billing/cancel`).
    pub async fn post_empty(&self, path: &str) -> CliResult<Reply> {
        self.send(Method::POST, path, None).await
    }

    pub async fn patch(&self, path: &str, body: &impl Serialize) -> CliResult<Reply> {
        self.send(Method::PATCH, path, Some(to_body(body)?)).await
    }

    pub async fn delete(&self, path: &str) -> CliResult<Reply> {
        self.send(Method::DELETE, path, None).await
    }

    /// One request; any answer outside 2xx becomes a [`Failure`] of its class.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> CliResult<Reply> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).header(reqwest::header::USER_AGENT, self.user_agent);
        request = match &self.credential {
            Credential::None => request,
            Credential::ApiKey(key) => request.header("X-API-Key", key),
            Credential::Bearer(token) => request.bearer_auth(token),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| Failure::network(&e, &url))?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = response.text().await.map_err(|e| Failure::network(&e, &url))?;
        let body: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        if (200..300).contains(&status) {
            return Ok(Reply { body, text });
        }
        if body.is_null() {
            let mut f = Failure::new(
                failure::Class::from_status(status),
                format!("HTTP {status} from {url} without a JSON body"),
            );
            f.status = Some(status);
            return Err(f);
        }
        Err(Failure::from_api(status, &body, text, retry_after.as_deref()))
    }
}

/// Redirects within the API's origin are followed (at most [`MAX_REDIRECTS`]); one to another
/// origin (scheme, host or port) is refused before anything is sent there. reqwest drops only
/// `Authorization` and cookies on such a hop: `X-API-Key` and, on a 307 or 308, the body (a
/// login's password, a refresh token) would go along.
fn same_origin_only() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let to = attempt.url().origin();
        let from = attempt.previous().first().map(url::Url::origin);
        match from {
            Some(from) if from != to => {
                let other = failure::OtherOrigin { from: from.ascii_serialization(), to: describe(attempt.url()) };
                attempt.error(other)
            }
            _ if attempt.previous().len() > MAX_REDIRECTS => attempt.error("too many redirects"),
            _ => attempt.follow(),
        }
    })
}

/// reqwest's own limit.
const MAX_REDIRECTS: usize = 10;

/// Where a redirect pointed: its origin, or the whole address when it has none (`file:`, `data:`).
fn describe(url: &url::Url) -> String {
    match url.origin() {
        origin @ url::Origin::Tuple(..) => origin.ascii_serialization(),
        url::Origin::Opaque(_) => url.as_str().chars().take(100).collect(),
    }
}

/// A path segment given on the command line, percent-encoded so that an id cannot change the route.
pub fn segment(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect::<String>().replace('+', "%20")
}

/// A request body as JSON (a typed request cannot fail to serialise; said plainly if it did).
fn to_body(body: &impl Serialize) -> CliResult<Value> {
    serde_json::to_value(body).map_err(|e| Failure::usage(format!("cannot write the request body: {e}")))
}
