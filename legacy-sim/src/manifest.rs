//! The sender's manifest (SC-FTP-1, SM-RESEND, SM-AUDIT): one JSON object per line (JSON Lines)
//! for every file the simulator tried to send — what was sent (name, dataset, rows, bytes,
//! SHA-256, encoding), how (attempts with each reply) and how it ended (final reply code and
//! text, acknowledged or not). The conformance suite compares it with what the platform received.
//!
//! `acknowledged` is true exactly when the `STOR` completed with a 2xx completion reply (226 or
//! 250): the gateway treats that reply as its acknowledgement of the file (no temp-name + rename).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// One attempt to deliver a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based attempt number.
    pub n: u32,
    /// When the attempt started (UTC).
    pub at: DateTime<Utc>,
    /// The FTP reply code that ended the attempt, if the server gave one.
    pub reply_code: Option<u32>,
    /// The reply text, or a description of the connection error.
    pub reply_text: Option<String>,
    /// Which command the attempt ended on (`CONNECT`, `AUTH`, `USER`/`PASS`, `TYPE`, `STOR`, …).
    pub stage: String,
}

/// What happened to one file (one JSON line of the manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The remote file name used in `STOR`.
    pub file_name: String,
    /// Dataset name (`billing`, …), or `bad` for content that belongs to no dataset.
    pub dataset: String,
    /// Data rows in the file (header excluded), as generated.
    pub rows: usize,
    /// Size of the content in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// Encoding label the file is declared with (`utf-8`, `cp932`).
    pub encoding: String,
    /// Whether the content starts with a UTF-8 BOM.
    pub bom: bool,
    /// Number of attempts made.
    pub attempts: u32,
    /// Final FTP reply code, if the server gave one.
    pub reply_code: Option<u32>,
    /// Final reply text or connection error description.
    pub reply_text: Option<String>,
    /// True when the `STOR` got its 226/250 completion reply (the gateway's acknowledgement).
    pub acknowledged: bool,
    /// When the first attempt started (UTC).
    pub started_at: DateTime<Utc>,
    /// When the last attempt ended (UTC).
    pub finished_at: DateTime<Utc>,
    /// Every attempt, in order.
    pub attempt_log: Vec<Attempt>,
    /// The bad-input kind (`--bad`), absent for good files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_kind: Option<String>,
    /// Requirement / rule IDs this send probes, e.g. `SM-LOCKOUT`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<String>,
    /// What the gateway is expected to do with it (human-readable), for bad inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expectation: Option<String>,
}

/// SHA-256 of `bytes`, lower-case hex.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Appends `entry` as one JSON line to the manifest at `path` (created if missing).
///
/// # Errors
/// I/O errors from opening or writing the file.
pub fn append(path: &Path, entry: &ManifestEntry) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&line)?;
    f.flush()
}

/// Reads every entry of a JSON Lines manifest.
///
/// # Errors
/// I/O errors, or a line that is not a manifest entry.
pub fn read(path: &Path) -> std::io::Result<Vec<ManifestEntry>> {
    std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_is_the_fips_180_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
