//! The subscription state machine: which provider events move a subscription where, and what
//! plan the tenant then has. Events carry their provider timestamp; an event older than the
//! state it would overwrite is ignored, so out-of-order delivery never rolls state back.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Incomplete,
    Trialing,
    Active,
    PastDue,
    /// The provider stopped retrying (Stripe `unpaid`, or `paused` after a trial without a
    /// payment method): the tenant is held to the free plan until an invoice is paid.
    Unpaid,
    Canceled,
}

/// Which plan's limits the tenant has while its subscription is in a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanInForce {
    /// The subscribed plan.
    Subscribed,
    /// The free plan (`plan::DEFAULT_PLAN`).
    Free,
    /// Whatever the tenant had before (a subscription that has not started yet).
    Unchanged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Incomplete => "incomplete",
            Status::Trialing => "trialing",
            Status::Active => "active",
            Status::PastDue => "past_due",
            Status::Unpaid => "unpaid",
            Status::Canceled => "canceled",
        }
    }

    /// Stripe's subscription statuses mapped onto ours. `past_due` means Stripe is still retrying
    /// the payment; `unpaid` and `paused` mean it gave up (or the trial ended without a payment
    /// method), so both are our `unpaid`; `incomplete_expired` never started.
    pub fn from_stripe(s: &str) -> Option<Status> {
        Some(match s {
            "incomplete" => Status::Incomplete,
            "trialing" => Status::Trialing,
            "active" => Status::Active,
            "past_due" => Status::PastDue,
            "unpaid" | "paused" => Status::Unpaid,
            "canceled" | "incomplete_expired" => Status::Canceled,
            _ => return None,
        })
    }

    /// Whether the tenant has the subscribed plan's limits in this state: while the provider
    /// retries a payment (`past_due`) it keeps them; once it gave up (`unpaid`) it does not.
    pub fn grants_plan(self) -> bool {
        self.plan_in_force() == PlanInForce::Subscribed
    }

    pub fn plan_in_force(self) -> PlanInForce {
        match self {
            Status::Trialing | Status::Active | Status::PastDue => PlanInForce::Subscribed,
            Status::Unpaid | Status::Canceled => PlanInForce::Free,
            Status::Incomplete => PlanInForce::Unchanged,
        }
    }
}

crate::text_enum!(
    Status,
    "subscription status",
    [Status::Incomplete, Status::Trialing, Status::Active, Status::PastDue, Status::Unpaid, Status::Canceled]
);

/// What a provider event says about a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A checkout finished: a (new) subscription exists; `paid` when the first invoice is paid.
    CheckoutCompleted {
        paid: bool,
    },
    /// The provider's view of the subscription (created or updated).
    Updated {
        status: Status,
    },
    /// The subscription ended.
    Deleted,
    InvoicePaid,
    InvoicePaymentFailed,
}

/// The outcome of applying an event to the state it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Move to this status.
    Move(Status),
    /// Nothing to change (stale, or no effect in this state).
    Ignore,
}

/// The transition table. `current` is the stored status of the same subscription (None: none
/// stored yet); `stale` is whether the event is older than the stored state.
pub fn transition(current: Option<Status>, event: &Event, stale: bool) -> Outcome {
    use Outcome::{Ignore, Move};
    use Status::*;
    if stale {
        return Ignore;
    }
    match (current, event) {
        // A canceled subscription stays canceled: a new one starts with a new checkout.
        (Some(Canceled), Event::CheckoutCompleted { .. } | Event::Updated { .. } | Event::InvoicePaid) => Ignore,
        (Some(Canceled), Event::InvoicePaymentFailed | Event::Deleted) => Ignore,
        (_, Event::CheckoutCompleted { paid: true }) => Move(Active),
        (None | Some(Incomplete), Event::CheckoutCompleted { paid: false }) => Move(Incomplete),
        (Some(_), Event::CheckoutCompleted { paid: false }) => Ignore,
        (_, Event::Updated { status }) => Move(*status),
        (_, Event::Deleted) => Move(Canceled),
        (None, Event::InvoicePaid | Event::InvoicePaymentFailed) => Ignore,
        (Some(Incomplete | Trialing | Active | PastDue | Unpaid), Event::InvoicePaid) => Move(Active),
        (Some(Trialing | Active | PastDue), Event::InvoicePaymentFailed) => Move(PastDue),
        // Another failed retry does not bring an unpaid subscription back to `past_due` (which
        // would grant the plan again): only a paid invoice does.
        (Some(Incomplete | Unpaid), Event::InvoicePaymentFailed) => Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome::{Ignore, Move};
    use super::Status::*;
    use super::*;

    /// Every status (and none) against every event kind.
    #[test]
    fn transition_table() {
        let upd = |s| Event::Updated { status: s };
        let paid = Event::CheckoutCompleted { paid: true };
        let pending = Event::CheckoutCompleted { paid: false };
        let table: &[(Option<Status>, Event, Outcome)] = &[
            (None, paid.clone(), Move(Active)),
            (None, pending.clone(), Move(Incomplete)),
            (None, upd(Active), Move(Active)),
            (None, upd(Trialing), Move(Trialing)),
            (None, Event::Deleted, Move(Canceled)),
            (None, Event::InvoicePaid, Ignore),
            (None, Event::InvoicePaymentFailed, Ignore),
            (Some(Incomplete), paid.clone(), Move(Active)),
            (Some(Incomplete), pending.clone(), Move(Incomplete)),
            (Some(Incomplete), Event::InvoicePaid, Move(Active)),
            (Some(Incomplete), Event::InvoicePaymentFailed, Ignore),
            (Some(Incomplete), upd(Active), Move(Active)),
            (Some(Incomplete), Event::Deleted, Move(Canceled)),
            (Some(Trialing), Event::InvoicePaid, Move(Active)),
            (Some(Trialing), Event::InvoicePaymentFailed, Move(PastDue)),
            (Some(Trialing), upd(Active), Move(Active)),
            (Some(Trialing), Event::Deleted, Move(Canceled)),
            (Some(Active), paid.clone(), Move(Active)),
            (Some(Active), pending.clone(), Ignore),
            (Some(Active), Event::InvoicePaid, Move(Active)),
            (Some(Active), Event::InvoicePaymentFailed, Move(PastDue)),
            (Some(Active), upd(PastDue), Move(PastDue)),
            (Some(Active), upd(Canceled), Move(Canceled)),
            (Some(Active), Event::Deleted, Move(Canceled)),
            (Some(PastDue), Event::InvoicePaid, Move(Active)),
            (Some(PastDue), Event::InvoicePaymentFailed, Move(PastDue)),
            (Some(PastDue), upd(Active), Move(Active)),
            (Some(PastDue), Event::Deleted, Move(Canceled)),
            (Some(PastDue), upd(Unpaid), Move(Unpaid)),
            (Some(Active), upd(Unpaid), Move(Unpaid)),
            (Some(Unpaid), Event::InvoicePaid, Move(Active)),
            (Some(Unpaid), Event::InvoicePaymentFailed, Ignore),
            (Some(Unpaid), upd(Active), Move(Active)),
            (Some(Unpaid), upd(PastDue), Move(PastDue)),
            (Some(Unpaid), paid.clone(), Move(Active)),
            (Some(Unpaid), pending.clone(), Ignore),
            (Some(Unpaid), Event::Deleted, Move(Canceled)),
            (Some(Canceled), paid.clone(), Ignore),
            (Some(Canceled), upd(Active), Ignore),
            (Some(Canceled), Event::InvoicePaid, Ignore),
            (Some(Canceled), Event::InvoicePaymentFailed, Ignore),
            (Some(Canceled), Event::Deleted, Ignore),
        ];
        for (current, event, expected) in table {
            assert_eq!(transition(*current, event, false), *expected, "{current:?} + {event:?}");
        }
    }

    #[test]
    fn stale_events_never_change_state() {
        for current in [None, Some(Active), Some(PastDue), Some(Canceled)] {
            for event in [Event::Deleted, Event::InvoicePaid, Event::Updated { status: Active }] {
                assert_eq!(transition(current, &event, true), Ignore);
            }
        }
    }

    #[test]
    fn only_paying_states_grant_the_plan() {
        assert!(Active.grants_plan() && Trialing.grants_plan() && PastDue.grants_plan());
        assert!(!Incomplete.grants_plan() && !Canceled.grants_plan() && !Unpaid.grants_plan());
        assert_eq!(Unpaid.plan_in_force(), PlanInForce::Free);
        assert_eq!(Canceled.plan_in_force(), PlanInForce::Free);
        assert_eq!(Incomplete.plan_in_force(), PlanInForce::Unchanged);
        assert_eq!(Status::from_stripe("past_due"), Some(PastDue));
        assert_eq!(Status::from_stripe("unpaid"), Some(Unpaid));
        assert_eq!(Status::from_stripe("paused"), Some(Unpaid));
        assert_eq!(Status::from_stripe("bogus"), None);
        assert_eq!("past_due".parse::<Status>(), Ok(PastDue));
        assert_eq!("unpaid".parse::<Status>(), Ok(Unpaid));
        assert!("paused".parse::<Status>().is_err(), "a stored status is ours, not Stripe's");
    }

    #[test]
    fn stored_statuses_read_back_what_they_write() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(*status));
            assert_eq!(Status::try_from(status.to_string()), Ok(*status));
        }
        assert_eq!(Status::ALL.len(), 6);
        let texts: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(texts, ["incomplete", "trialing", "active", "past_due", "unpaid", "canceled"]);
        let err = Status::try_from("Active".to_owned()).unwrap_err();
        assert_eq!(err.to_string(), "unknown subscription status: \"Active\"");
    }
}
