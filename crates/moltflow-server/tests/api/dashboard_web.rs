//! A browser's view of the dashboard for the page tests: cookies kept, the CSRF token of the
//! last page sent back with a form, redirects not followed; and readers of what a page shows.

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::common::{PASSWORD, TestApp};

/// A browser's view of the dashboard: cookies kept, redirects not followed (tests look at them).
pub struct Web<'a> {
    pub app: &'a TestApp,
    pub client: reqwest::Client,
    pub cookies: Mutex<BTreeMap<String, String>>,
    pub csrf: Mutex<String>,
}

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub html: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl<'a> Web<'a> {
    pub fn new(app: &'a TestApp) -> Web<'a> {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Web { app, client, cookies: Mutex::new(BTreeMap::new()), csrf: Mutex::new(String::new()) }
    }

    /// Signs in through the form, as `email` with the test password.
    pub async fn signed_in(app: &'a TestApp, email: &str) -> Web<'a> {
        let web = Web::new(app);
        web.get("/sign-in").await;
        let r = web.post("/sign-in", &[("email", email), ("password", PASSWORD)]).await;
        assert_eq!(r.status, 303, "sign in: {}", r.html);
        assert!(web.cookies.lock().unwrap().contains_key("mf_session"), "a session cookie");
        let overview = web.get("/").await;
        assert_eq!(overview.status, 200, "{}", overview.html);
        web
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Page {
        let cookie =
            self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let res = req.header(COOKIE, cookie).send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap_or("");
            if let Some((name, rest)) = text.split_once('=') {
                let value = rest.split(';').next().unwrap_or("");
                self.cookies.lock().unwrap().insert(name.to_owned(), value.to_owned());
            }
        }
        let html = res.text().await.expect("body");
        if let Some(csrf) = input_value(&html, "csrf") {
            *self.csrf.lock().unwrap() = csrf;
        }
        Page { status, headers, html }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.app.base))).await
    }

    /// Posts a form with the CSRF token of the last page seen.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.lock().unwrap().clone();
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", &csrf));
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(all).finish();
        let req = self
            .client
            .post(format!("{}{path}", self.app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }
}

/// The `value` of the first input named `name`.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(unescape(&rest[..rest.find('"')?]))
}

pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'").replace("&amp;", "&")
}

pub fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(out.trim())
}

/// The cells of the table whose caption is `caption`, row by row (the header row first).
pub fn table_cells(html: &str, caption: &str) -> Vec<Vec<String>> {
    let start = html.find(&format!(">{caption}</caption>")).unwrap_or_else(|| panic!("no table {caption:?}: {html}"));
    let end = start + html[start..].find("</table>").expect("table end");
    html[start..end]
        .split("<tr>")
        .skip(1)
        .map(|row| {
            let mut cells = Vec::new();
            let mut rest = row;
            while let Some(open) = rest.find(['<']).filter(|_| rest.contains("<t")) {
                let Some(cell_at) = rest[open..].find("<th").into_iter().chain(rest[open..].find("<td")).min() else {
                    break;
                };
                let cell = &rest[open + cell_at..];
                let close = cell.find("</t").expect("cell end");
                cells.push(strip_tags(&cell[..close]));
                rest = &cell[close + 5..];
            }
            cells
        })
        .collect()
}

pub fn csv_cells(text: &str) -> Vec<Vec<String>> {
    text.split("\r\n").filter(|l| !l.is_empty()).map(|l| l.split(',').map(str::to_owned).collect()).collect()
}

/// An owner and a member of one tenant, each signed in to the dashboard.
pub async fn owner_and_member(app: &TestApp) -> (serde_json::Value, serde_json::Value) {
    let owner = app.register("owner@example.com").await;
    app.store.execute_raw("UPDATE users SET email_verified = TRUE").await.unwrap();
    let member = app.add_member(&owner, "member@example.com", "member").await;
    (owner, member)
}
