//! Simulated legacy business system (pipe ledger, billing, meter reading) that generates
//! realistic CSV, deterministic by seed, and pushes it to a gateway over FTP or explicit FTPS,
//! with a manifest of every send and bad inputs on demand (SC-FTP-1, SC-ACQ-1, SM-RESEND,
//! SM-LOCKOUT, SM-ACL).
//!
//! - [`dataset`]: the dataset descriptions (columns, types, units, personal columns), reusable
//!   by the gateway's provisioning.
//! - [`generate`]: CSV bytes (UTF-8 with/without BOM or CP932; CRLF or LF; RFC 4180 quoting).
//! - [`push`]: FTP/FTPS upload with retry, backoff and jitter; the `STOR` 226 is the ack.
//! - [`manifest`]: JSON Lines record of every file sent.
//! - [`bad`]: malformed files and hostile sessions, each labelled with the requirement it probes.
#![forbid(unsafe_code)]

pub mod bad;
pub mod dataset;
pub mod generate;
pub mod manifest;
pub mod push;

pub use dataset::{Column, ColumnType, Dataset, DatasetInfo};
pub use generate::{CsvOptions, GenerateError, HeaderStyle, LineEnding, Table, TextEncoding};
pub use manifest::ManifestEntry;
pub use push::{FtpTarget, FtpsTrust, PushError, RetryPolicy, Upload, install_crypto_provider};

/// A remote file name for `dataset`: `{dataset}_{YYYYMMDDTHHMMSS}_{seq:04}.csv` in JST
/// (the legacy system's local time), e.g. `billing_20261122T093000_0001.csv`.
#[must_use]
pub fn file_name(dataset: Dataset, at: chrono::DateTime<chrono::Utc>, seq: u32) -> String {
    let jst = chrono::FixedOffset::east_opt(9 * 3600);
    let stamp = match jst {
        Some(tz) => at.with_timezone(&tz).format("%Y%m%dT%H%M%S").to_string(),
        None => at.format("%Y%m%dT%H%M%S").to_string(),
    };
    format!("{}_{stamp}_{seq:04}.csv", dataset.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn file_names_carry_dataset_jst_time_and_sequence() {
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 22, 0, 30, 0)
            .unwrap();
        assert_eq!(
            file_name(Dataset::Billing, at, 1),
            "billing_20261122T093000_0001.csv"
        );
    }
}
