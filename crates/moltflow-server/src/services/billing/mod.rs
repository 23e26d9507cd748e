//! Billing use cases, one module each: the plans on offer and the subscription view
//! (`plans`), checkout (`checkout`) and signing up with a plan (`signup`), the portal
//! (`portal`), cancelling at the period's end (`cancel`), applying provider events (`events`:
//! Stripe webhooks and the local provider go through the same `apply_event`), the local
//! provider's own steps (`local`), and ending a subscription before its tenant is erased
//! (`erasure`).

mod cancel;
mod checkout;
mod erasure;
mod events;
mod local;
mod plans;
mod portal;
mod signup;

pub use cancel::cancel;
pub use checkout::{Intent, checkout, store_checkout, validate_intent};
pub use erasure::{end_subscription_before_erasure, live_provider_subscription};
pub use events::{EventOutcome, Ignored, apply_event};
pub use local::{LocalCheckout, complete_local_checkout, end_due_local_subscriptions, local_checkout};
pub use plans::{limits_view, plan_view, subscription_view};
pub use portal::portal;
pub use signup::{SignupOutcome, signup_checkout};
