//! The error of reading a closed set of values (a role, a subscription status…) from text.
//!
//! Stored text is decoded once, where it leaves the database: a value no variant names is an
//! error there (a corrupt or newer row), never a panic or a silent default further in.

/// A text that names none of a type's values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what}: {value:?}")]
pub struct UnknownValue {
    /// What was expected (`role`, `subscription status`…).
    pub what: &'static str,
    /// The text found, cut to 64 characters (it came from outside).
    pub value: String,
}

impl UnknownValue {
    pub fn new(what: &'static str, value: &str) -> UnknownValue {
        UnknownValue { what, value: value.chars().take(64).collect() }
    }
}

/// `FromStr`, `TryFrom<String>` (what the store's row decoding calls) and `Display` for a
/// closed enum from its `as_str` and its list of variants: the text of each is written once.
#[macro_export]
macro_rules! text_enum {
    ($ty:ty, $what:literal, [$($variant:expr),+ $(,)?]) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($variant),+];
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::decode::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$ty>::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::decode::UnknownValue::new($what, s))
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::decode::UnknownValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
