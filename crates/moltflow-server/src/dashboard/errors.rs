//! What a page answers when it cannot do its job: a redirect to sign in, a refused form (bad CSRF
//! token), a wait (429, saying when to retry), or a friendly page with the request id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::dashboard::layout;
use crate::dashboard::next::safe_next;
use crate::error::ApiError;
use crate::request_context::current_request_id;
use moltflow_app::services::failure::Failure;

#[derive(Debug)]
pub enum PageError {
    /// Not signed in (or the session ended): go to the sign-in page, then back to `next`.
    SignIn { next: String },
    /// The form's CSRF token is missing or wrong, or the form came from another origin.
    Csrf,
    /// A use case failed in a way no form field names.
    Api(ApiError),
}

pub type PageResult<T = Response> = Result<T, PageError>;

impl From<ApiError> for PageError {
    fn from(err: ApiError) -> Self {
        PageError::Api(err)
    }
}

impl From<moltflow_store::StoreError> for PageError {
    fn from(err: moltflow_store::StoreError) -> Self {
        PageError::Api(err.into())
    }
}

impl From<Failure> for PageError {
    fn from(failure: Failure) -> Self {
        PageError::Api(failure.into())
    }
}

/// Whether a request that matched no route came from a browser looking for a page: it asks for
/// HTML, and not under the API's prefix (an API client gets the contract's JSON whatever it
/// accepts there).
pub fn wants_page(uri: &axum::http::Uri, headers: &axum::http::HeaderMap) -> bool {
    let accepts_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|part| part.trim().starts_with("text/html")));
    accepts_html && !uri.path().starts_with("/api/")
}

/// "Try again in 2 minutes": how long a 429 asks to wait, in words.
pub fn retry_text(seconds: u64) -> String {
    match seconds {
        0..=1 => "in a second".to_owned(),
        2..=90 => format!("in {seconds} seconds"),
        _ => format!("in {} minutes", seconds.div_ceil(60)),
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn { next } => {
                // The sign-in page judges `next` again; judging it here too keeps a request line
                // such as `//evil.example/…` out of the link this redirect writes.
                let next = safe_next(Some(&next));
                let to = if next == "/" { "/sign-in".to_owned() } else { format!("/sign-in?next={}", encode(&next)) };
                Redirect::to(&to).into_response()
            }
            PageError::Csrf => {
                let body = html! {
                    p { "This form has expired or did not come from this site, so nothing was changed." }
                    p { "Go back, reload the page and send the form again." }
                    p { a href="/" { "Back to the dashboard" } }
                };
                (StatusCode::FORBIDDEN, layout::public("Form refused", None, body)).into_response()
            }
            PageError::Api(err) => api_error_page(err),
        }
    }
}

fn api_error_page(err: ApiError) -> Response {
    let status = err.status;
    let detail = match &err.detail {
        crate::error::Detail::Message(m) => m.clone(),
        crate::error::Detail::Items(items) => items.iter().map(|i| i.msg.clone()).collect::<Vec<_>>().join("; "),
    };
    let (title, body) = if status == StatusCode::TOO_MANY_REQUESTS {
        let wait = retry_text(err.retry_after.unwrap_or(60));
        ("Too many requests", html! { p { (detail) "." } p { "Try again " (wait) "." } })
    } else if status.is_server_error() {
        let id = current_request_id();
        (
            "Something went wrong",
            html! {
                p { "We could not finish this. Nothing you sent was lost: go back and try again in a moment." }
                p { "If it keeps happening, give this request id to your administrator: " code { (id) } }
            },
        )
    } else if status == StatusCode::NOT_FOUND {
        ("Not found", html! { p { (detail) "." } })
    } else if status == StatusCode::FORBIDDEN {
        ("Not allowed", html! { p { (detail) "." } p { "Ask an owner or admin of your workspace." } })
    } else {
        ("That did not work", html! { p { (detail) "." } })
    };
    let body = html! { (body) p { a href="/" { "Back to the dashboard" } } };
    let mut response = (status, layout::public(title, None, body)).into_response();
    if let Some(seconds) = err.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Percent-encodes a path for a query parameter.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
