//! A small typed client of the Stripe REST API: form-encoded POSTs with an `Idempotency-Key`, a
//! pinned API version, and retries (same key, so they are safe) on timeouts, 429 and 5xx.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::ProviderError;

/// The Stripe API version every request is made with.
pub const API_VERSION: &str = "2024-06-20";
const ATTEMPTS: u32 = 3;

pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    secret: SecretString,
}

/// What a checkout session is created with.
pub struct CheckoutParams<'a> {
    pub customer_id: &'a str,
    pub price_id: &'a str,
    pub tenant_id: &'a str,
    pub plan_id: &'a str,
    pub billing_cycle: moltflow_core::billing::BillingCycle,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    pub idempotency_key: &'a str,
}

impl StripeClient {
    pub fn new(base: &str, secret: SecretString, timeout: Duration) -> anyhow::Result<StripeClient> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("moltflow-admin/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(StripeClient { http, base: base.trim_end_matches('/').to_owned(), secret })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(String, String)],
        key: &str,
    ) -> Result<Value, ProviderError> {
        let url = format!("{}{}", self.base, path);
        let mut last = ProviderError::Unavailable("no attempt made".into());
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(150 * 2u64.pow(attempt - 1))).await;
            }
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.secret.expose_secret())
                .header("Stripe-Version", API_VERSION)
                .header("Idempotency-Key", key);
            if !form.is_empty() {
                req = req.form(form);
            }
            let res = match req.send().await {
                Ok(res) => res,
                Err(e) => {
                    last = ProviderError::Unavailable(if e.is_timeout() {
                        "timed out".into()
                    } else {
                        "unreachable".into()
                    });
                    continue;
                }
            };
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(body);
            }
            let message = body["error"]["message"].as_str().unwrap_or("no message").to_owned();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Err(ProviderError::Missing(message));
            }
            if status.as_u16() == 429 {
                last = ProviderError::Unavailable(format!("rate limited: {message}"));
            } else if status.is_server_error() {
                last = ProviderError::Failed(format!("{status}: {message}"));
            } else {
                return Err(ProviderError::Failed(format!("{status}: {message}")));
            }
        }
        Err(last)
    }

    async fn post(&self, path: &str, form: Vec<(String, String)>, key: &str) -> Result<Value, ProviderError> {
        self.send(reqwest::Method::POST, path, &form, key).await
    }

    pub async fn create_customer(&self, tenant_id: &str, email: &str) -> Result<String, ProviderError> {
        let form = vec![("email".into(), email.to_owned()), ("metadata[tenant_id]".into(), tenant_id.to_owned())];
        let body = self.post("/v1/customers", form, &format!("customer-{tenant_id}")).await?;
        id_of(&body)
    }

    /// A Checkout Session in subscription mode that carries the tenant, plan and cycle on the
    /// session and on the subscription it creates.
    pub async fn create_checkout_session(&self, p: &CheckoutParams<'_>) -> Result<(String, String), ProviderError> {
        let mut form: Vec<(String, String)> = vec![
            ("mode".into(), "subscription".into()),
            ("customer".into(), p.customer_id.into()),
            ("client_reference_id".into(), p.tenant_id.into()),
            ("line_items[0][price]".into(), p.price_id.into()),
            ("line_items[0][quantity]".into(), "1".into()),
            ("success_url".into(), p.success_url.into()),
            ("cancel_url".into(), p.cancel_url.into()),
        ];
        for prefix in ["metadata", "subscription_data[metadata]"] {
            form.push((format!("{prefix}[tenant_id]"), p.tenant_id.into()));
            form.push((format!("{prefix}[plan_id]"), p.plan_id.into()));
            form.push((format!("{prefix}[billing_cycle]"), p.billing_cycle.as_str().into()));
        }
        let body = self.post("/v1/checkout/sessions", form, p.idempotency_key).await?;
        let url = body["url"].as_str().ok_or_else(|| ProviderError::Failed("checkout session without url".into()))?;
        Ok((id_of(&body)?, url.to_owned()))
    }

    pub async fn create_portal_session(
        &self,
        customer_id: &str,
        return_url: &str,
        key: &str,
    ) -> Result<String, ProviderError> {
        let form = vec![("customer".into(), customer_id.to_owned()), ("return_url".into(), return_url.to_owned())];
        let body = self.post("/v1/billing_portal/sessions", form, key).await?;
        body["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Failed("portal session without url".into()))
    }

    /// Returns the subscription's period end (ms) as Stripe reports it.
    pub async fn cancel_at_period_end(&self, subscription_id: &str) -> Result<Option<i64>, ProviderError> {
        let form = vec![("cancel_at_period_end".into(), "true".into())];
        let body = self
            .post(&format!("/v1/subscriptions/{subscription_id}"), form, &format!("cancel-{subscription_id}"))
            .await?;
        Ok(super::events::period_end_of_subscription(&body))
    }

    /// Ends a subscription now, without waiting for the period's end (a replaced one, after a
    /// checkout for another plan completed; or the subscription of a tenant being erased).
    pub async fn cancel_now(&self, subscription_id: &str) -> Result<(), ProviderError> {
        self.send(
            reqwest::Method::DELETE,
            &format!("/v1/subscriptions/{subscription_id}"),
            &[],
            &format!("delete-{subscription_id}"),
        )
        .await
        .map(|_| ())
    }
}

fn id_of(body: &Value) -> Result<String, ProviderError> {
    body["id"].as_str().map(str::to_owned).ok_or_else(|| ProviderError::Failed("response without id".into()))
}
