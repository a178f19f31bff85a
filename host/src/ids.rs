//! Typed identifiers. A job id, a schedule id and an attempt's token are all 64-bit numbers;
//! as distinct types the compiler refuses `finish(token, id)` with the two swapped.
//!
//! Each is `#[serde(transparent)]`, so stored records keep the plain number they always had.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            pub const MAX: $name = $name(u64::MAX);

            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl From<u64> for $name {
            fn from(n: u64) -> Self {
                $name(n)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            /// A decimal number, as the API and the CLI print it: digits only (`u64`'s own
            /// parser also takes a leading `+`, which the API's documented pattern does not).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                digits
                    .then(|| s.parse().ok())
                    .flatten()
                    .map($name)
                    .ok_or_else(|| format!("`{}` is not a {} (a decimal number)", crate::text::clip(s), $what))
            }
        }
    };
}

id_type!(
    /// A job: unique for the life of a store, never reused, increasing with submission order.
    JobId,
    "job id"
);
id_type!(
    /// A schedule: unique for the life of a store, like job ids.
    ScheduleId,
    "schedule id"
);
id_type!(
    /// One attempt's claim on its job (the lease's fencing token): differs per attempt, so an
    /// outcome carrying an older attempt's token is stale and discarded.
    AttemptToken,
    "attempt token"
);

impl AttemptToken {
    /// A fresh token. Random rather than from a sequence, so that no counter has to survive
    /// restarts: it only has to differ from the same job's earlier attempts' (1 in 2^64 that
    /// it does not).
    pub fn random() -> Self {
        AttemptToken(fastrand::u64(1..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_as_decimal_numbers_and_encode_as_the_bare_number() {
        assert_eq!(JobId(42).to_string(), "42");
        assert_eq!("42".parse::<JobId>(), Ok(JobId(42)));
        assert_eq!("x".parse::<ScheduleId>().unwrap_err(), "`x` is not a schedule id (a decimal number)");
        assert_eq!(serde_json::to_string(&JobId(7)).unwrap(), "7");
        let config = bincode::config::standard();
        assert_eq!(
            bincode::serde::encode_to_vec(JobId(300), config).unwrap(),
            bincode::serde::encode_to_vec(300u64, config).unwrap()
        );
    }
}
