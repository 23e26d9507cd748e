//! A minimal browser for dashboard tests: keeps cookies, follows no redirect by itself (tests
//! assert where a page sends them), sends forms the way a browser does (urlencoded, with the
//! `Origin` of the page) and reads the CSRF token out of the page it got.

use std::collections::BTreeMap;

use crate::common::{PASSWORD, TestApp};
use crate::smtp::mail_files;

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Where a redirect goes.
    pub fn location(&self) -> &str {
        self.header("location").unwrap_or("")
    }

    /// The `Set-Cookie` header that sets cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).unwrap_or_else(|| panic!("no csrf field in {}", self.body)) + marker.len();
        self.body[start..].chars().take_while(|c| *c != '"').collect()
    }

    /// The message shown beside field `name`, if any.
    pub fn field_error(&self, name: &str) -> Option<String> {
        let marker = format!("id=\"f-{name}-error\">");
        let start = self.body.find(&marker)? + marker.len();
        Some(self.body[start..].chars().take_while(|c| *c != '<').collect())
    }

    /// The `value` of input `name` as the page renders it.
    pub fn input_value(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" ");
        let at = self.body.find(&marker)?;
        let tag_end = self.body[at..].find('>')? + at;
        let tag = &self.body[at..tag_end];
        let start = tag.find("value=\"")? + 7;
        Some(tag[start..].chars().take_while(|c| *c != '"').collect())
    }
}

pub struct Browser<'a> {
    pub app: &'a TestApp,
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Browser { app, client, cookies: BTreeMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn read(&mut self, req: reqwest::RequestBuilder) -> Page {
        let res = req.header("cookie", self.cookie_header()).send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        for set in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let first = set.split(';').next().unwrap_or("");
            if let Some((name, value)) = first.split_once('=') {
                if set.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let body = res.text().await.expect("body");
        Page { status, headers, body }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.app.base));
        self.read(req).await
    }

    /// Posts a form as a page of this site would (its `Origin`).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let req = self
            .client
            .post(format!("{}{path}", self.app.base))
            .header("origin", &self.app.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.read(req).await
    }

    /// Opens `page`, then sends `fields` to `action` with the page's CSRF token.
    pub async fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.get(page).await.csrf();
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    /// Registers through the register page with the test password; signed in afterwards.
    pub async fn register(&mut self, email: &str) -> Page {
        let page = self
            .submit("/register", "/register", &[("email", email), ("full_name", "Dash User"), ("password", PASSWORD)])
            .await;
        assert_eq!((page.status, page.location()), (303, "/?flash=registered"), "{}", page.body);
        page
    }

    pub async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        self.submit("/sign-in", "/sign-in", &[("email", email), ("password", password)]).await
    }

    /// Whether the session cookie still opens a signed-in page.
    pub async fn signed_in(&mut self) -> bool {
        let page = self.get("/profile").await;
        match page.status {
            200 => true,
            303 => false,
            other => panic!("GET /profile answered {other}: {}", page.body),
        }
    }
}

/// The path and query of the newest mailed link containing `marker` (e.g. `/verify-email?`).
pub fn mailed_link(app: &TestApp, marker: &str) -> String {
    let mails = mail_files(&app.mail_dir);
    let link = mails.iter().rev().map(|m| m.link()).find(|l| l.contains(marker)).expect("a mailed link");
    link.strip_prefix(&app.base).unwrap_or(&link).to_owned()
}

/// Runs the outbox once (it waits for mail still being queued) and reads the newest mailed link
/// that contains `marker`.
pub async fn wait_for_link(app: &TestApp, marker: &str) -> String {
    app.deliver_mail().await;
    mailed_link(app, marker)
}
