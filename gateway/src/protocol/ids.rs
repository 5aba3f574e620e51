//! Identifiers on the wire: gateway IDs, message IDs, dataset names, record sequence
//! numbers and storage epochs (DES-ID-1..5; realises SM-ID).
//!
//! Every identifier is validated when it is constructed, so a value of one of these types is
//! always well formed; decoding a message with a malformed identifier fails with a specific
//! [`IdError`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// DES-ID-1: a gateway ID is 1..=32 ASCII letters or digits (it is also the MQTT tenant).
    #[error("DES-ID-1: gateway ID {0:?} must be 1..=32 ASCII letters or digits")]
    Gateway(String),
    /// DES-ID-2: a message ID is 1..=64 characters from `A-Z a-z 0-9 . _ : -`.
    #[error("DES-ID-2: message ID {0:?} must be 1..=64 characters of [A-Za-z0-9._:-]")]
    Message(String),
    /// DES-ID-3: a dataset name is 1..=32 characters, lower-case letters, digits, `_` or `-`,
    /// starting with a letter.
    #[error("DES-ID-3: dataset name {0:?} must match [a-z][a-z0-9_-]{{0,31}}")]
    Dataset(String),
    /// DES-ID-5: a storage epoch is exactly 32 lower-case hexadecimal digits.
    #[error("DES-ID-5: storage epoch {0:?} must be exactly 32 lower-case hex digits")]
    Epoch(String),
}

fn is_gateway_id(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_message_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn is_dataset(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'))
}

fn is_epoch(s: &str) -> bool {
    s.len() == EPOCH_HEX_DIGITS && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Hex digits of a storage epoch (DES-ID-5): 128 bits.
pub const EPOCH_HEX_DIGITS: usize = 32;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:ident, $err:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                if $check(&s) { Ok(Self(s)) } else { Err(IdError::$err(s)) }
            }
            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A gateway's unique identifier (DES-ID-1, SM-ID). It is the subject O and CN of the
    /// gateway's client certificate, its MQTT client ID and its topic tenant.
    GatewayId,
    is_gateway_id,
    Gateway
);
string_id!(
    /// A message's identifier, unique per sender (DES-ID-2). Results name it in `inReplyTo`.
    MessageId,
    is_message_id,
    Message
);
string_id!(
    /// The name of a dataset (one kind of CSV a legacy system sends, e.g. `billing`) (DES-ID-3).
    Dataset,
    is_dataset,
    Dataset
);

string_id!(
    /// The storage epoch of a gateway (DES-ID-5): 128 random bits written as exactly 32
    /// lower-case hex digits. Made when the gateway's store is created (first start,
    /// reinstall) and by the operator command `sgw new-epoch` after a restore from backup;
    /// persisted. Sequence numbers (DES-ID-4) are numbered within an epoch; `connect` and
    /// `data` carry it (DES-MSG-CONN-4).
    StoreEpoch,
    is_epoch,
    Epoch
);

impl StoreEpoch {
    /// The epoch whose 128 bits are `bytes` (the caller draws them from a CSPRNG).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(hex::encode(bytes))
    }
}

/// A record sequence number (DES-ID-4): assigned by the gateway at ingest, starting at 1,
/// strictly increasing per gateway across all datasets and never reused, also across restarts.
pub type Seq = u64;

/// An inclusive range of record sequence numbers, `first <= last` (DES-ID-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqRange {
    /// First sequence number in the range.
    pub first: Seq,
    /// Last sequence number in the range (inclusive).
    pub last: Seq,
}

impl SeqRange {
    /// A range if `1 <= first <= last`.
    pub fn new(first: Seq, last: Seq) -> Option<Self> {
        (first >= 1 && first <= last).then_some(Self { first, last })
    }
    /// Whether `seq` is inside the range.
    pub fn contains(&self, seq: Seq) -> bool {
        self.first <= seq && seq <= self.last
    }
    /// Number of sequence numbers in the range.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }
    /// Always false: a range holds at least one number.
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_ids_are_alphanumeric_and_bounded() {
        assert!(GatewayId::new("GW0001").is_ok());
        assert!(GatewayId::new("").is_err());
        assert!(GatewayId::new("GW-1").is_err());
        assert!(GatewayId::new("a".repeat(33)).is_err());
        assert!(GatewayId::new("ＧＷ").is_err());
    }

    #[test]
    fn message_ids_refuse_topic_wildcards_and_spaces() {
        assert!(MessageId::new("g-1:42").is_ok());
        for bad in ["", "a b", "a/b", "a+b", "a#", &"x".repeat(65)] {
            assert!(MessageId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dataset_names_start_with_a_lowercase_letter() {
        assert!(Dataset::new("billing").is_ok());
        assert!(Dataset::new("pipe_ledger-2").is_ok());
        assert!(Dataset::new("1billing").is_err());
        assert!(Dataset::new("Billing").is_err());
    }

    #[test]
    fn epochs_are_exactly_32_lower_case_hex_digits() {
        let ok = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            StoreEpoch::new(ok).map(|e| e.to_string()),
            Ok(ok.to_string())
        );
        assert_eq!(
            StoreEpoch::from_bytes([0xab; 16]).as_str(),
            "abababababababababababababababab"
        );
        for bad in [
            "",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef0123456789abcdeg",
            " 123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(
                StoreEpoch::new(bad),
                Err(IdError::Epoch(bad.into())),
                "{bad:?}"
            );
        }
        assert!(
            serde_json::from_str::<StoreEpoch>("\"0123456789ABCDEF0123456789abcdef\"").is_err()
        );
        assert_eq!(
            serde_json::to_string(&StoreEpoch::from_bytes([0; 16])).ok(),
            Some(format!("\"{}\"", "0".repeat(32)))
        );
    }

    #[test]
    fn seq_ranges_start_at_one_and_are_ordered() {
        assert!(SeqRange::new(0, 3).is_none());
        assert!(SeqRange::new(4, 3).is_none());
        assert_eq!(SeqRange::new(3, 5).map(|r| r.len()), Some(3));
    }
}
