//! Who bills a subscription and how often: closed sets, stored and sent as their text.

/// The billing provider that holds a customer, checkout or subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Checkout and portal are pages of this service; no payment is taken.
    Local,
    Stripe,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Local => "local",
            Provider::Stripe => "stripe",
        }
    }
}

crate::text_enum!(Provider, "billing provider", [Provider::Local, Provider::Stripe]);

/// How often a subscription is billed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingCycle {
    /// The default wherever nothing says otherwise (a free plan, an event without a cycle).
    #[default]
    Monthly,
    Yearly,
}

impl BillingCycle {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingCycle::Monthly => "monthly",
            BillingCycle::Yearly => "yearly",
        }
    }
}

crate::text_enum!(BillingCycle, "billing cycle", [BillingCycle::Monthly, BillingCycle::Yearly]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_read_back_what_they_write() {
        assert_eq!(Provider::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["local", "stripe"]);
        for p in Provider::ALL {
            assert_eq!(Provider::try_from(p.to_string()), Ok(*p));
        }
        for bad in ["", "Stripe", "paypal"] {
            let err = bad.parse::<Provider>().unwrap_err();
            assert_eq!((err.what, err.value.as_str()), ("billing provider", bad));
        }
    }

    #[test]
    fn cycles_read_back_what_they_write() {
        assert_eq!(BillingCycle::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>(), ["monthly", "yearly"]);
        for c in BillingCycle::ALL {
            assert_eq!(BillingCycle::try_from(c.to_string()), Ok(*c));
        }
        assert_eq!(BillingCycle::default(), BillingCycle::Monthly);
        for bad in ["", "weekly", "Monthly", "month"] {
            assert_eq!(bad.parse::<BillingCycle>().unwrap_err().what, "billing cycle");
        }
    }
}
