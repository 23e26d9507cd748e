//! MoltFlow's domain: values that are valid by construction and the rules that need no IO.

pub mod api_key;
pub mod billing;
pub mod clock;
pub mod decode;
pub mod email;
pub mod failure_budget;
pub mod ids;
pub mod locale;
pub mod lockout;
pub mod password;
pub mod period;
pub mod plan;
pub mod role;
pub mod scope;
pub mod secret;
pub mod subscription;
pub mod usage;

pub use email::Email;
pub use role::Role;
pub use scope::Scope;
