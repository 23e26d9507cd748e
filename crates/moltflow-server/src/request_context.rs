//! What one request carries from its edge (`middleware::Observe`) to the code that serves it, in
//! one task-local: its id, which error bodies and logs name, and its principal's rate decision,
//! which becomes the `RateLimit-*` headers of its answer.

use std::cell::Cell;
use std::future::Future;

use tokio::task::futures::TaskLocalFuture;

use crate::request_id::RequestId;
use moltflow_app::auth::rate_limit::RateInfo;

pub struct RequestContext {
    id: RequestId,
    rate: Cell<Option<RateInfo>>,
}

impl RequestContext {
    pub fn new(id: RequestId) -> RequestContext {
        RequestContext { id, rate: Cell::new(None) }
    }

    pub fn id(&self) -> &RequestId {
        &self.id
    }

    /// The rate decision recorded while the request was served, if its principal was counted.
    pub fn rate(&self) -> Option<RateInfo> {
        self.rate.get()
    }
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// `fut` with `context` as the current request's (the value comes back with `take_value`).
pub fn scope<F: Future>(context: RequestContext, fut: F) -> TaskLocalFuture<RequestContext, F> {
    CURRENT.scope(context, fut)
}

/// The id of the request being served (empty outside a request).
pub fn current_request_id() -> String {
    CURRENT.try_with(|c| c.id.as_str().to_owned()).unwrap_or_default()
}

/// Records the rate decision of the request being served (called by the authenticating extractor).
pub fn record_rate(info: RateInfo) {
    let _ = CURRENT.try_with(|c| c.rate.set(Some(info)));
}
