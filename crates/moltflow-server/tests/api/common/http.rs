//! `TestApp`'s HTTP: requests to its `/api/v2` routes, and what came back.

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::TestApp;

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn assert(&self, status: u16, code: &str) -> &Self {
        assert_eq!((self.status, self.code()), (status, code), "body: {}", self.body);
        self
    }
}

impl TestApp {
    /// `path` under the `/api/v2` prefix.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v2{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp { status, headers, body }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Resp {
        let mut req = self.client.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn put(&self, path: &str, body: Value, token: Option<&str>) -> Resp {
        let mut req = self.client.put(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// Posts raw bytes with a content type of the test's choosing.
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> Resp {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        self.send(req).await
    }

    /// Posts a raw JSON text with a bearer token.
    pub async fn post_raw_auth(&self, path: &str, token: &str, body: String) -> Resp {
        let req = self.client.post(self.url(path)).bearer_auth(token).header("content-type", "application/json");
        self.send(req.body(body)).await
    }

    /// A request with `X-API-Key`.
    pub async fn with_key(&self, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method, self.url(path)).header("x-api-key", key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn put_json(&self, method: reqwest::Method, path: &str, body: Value, token: Option<&str>) -> Resp {
        let mut req = self.client.request(method, self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }
}
