//! Error bodies, FastAPI-compatible.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error but validation: `{"detail", "code", "request_id"}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"detail": "Invalid email or password", "code": "invalid_credentials", "request_id": "0193a6c1-7d2e-7b51-9c1e-3f5a8e2d4b60"}))]
pub struct ErrorBody {
    pub detail: String,
    pub code: String,
    pub request_id: String,
}

/// One failed check of a request: where (`["body", "email"]`), what, and its kind.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidationItem {
    #[schema(value_type = Vec<String>)]
    pub loc: Vec<serde_json::Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// `422`: `{"detail": [ {loc, msg, type}, … ], "code": "validation_error", "request_id"}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"detail": [{"loc": ["body", "email"], "msg": "value is not a valid email address", "type": "value_error"}], "code": "validation_error", "request_id": "0193a6c1-7d2e-7b51-9c1e-3f5a8e2d4b60"}))]
pub struct ValidationErrorBody {
    pub detail: Vec<ValidationItem>,
    pub code: String,
    pub request_id: String,
}
