//! Bad input on demand: files and sessions a gateway must refuse or survive (SC-FTP-1, SC-ACQ-1,
//! SM-ACL, SM-LOCKOUT, SM-THRESHOLD, SM-RESEND). Each kind names the requirement it probes and
//! what the gateway is expected to do; the manifest records the reply the gateway actually gave,
//! for the conformance suite to judge. Nothing here decides pass or fail.

use crate::dataset::Dataset;
use crate::generate::{CsvOptions, Table, TextEncoding};
use crate::manifest::ManifestEntry;
use crate::push::{FtpTarget, RetryPolicy, Transfer, Upload, push_with};
use std::fmt;
use std::str::FromStr;

/// A kind of bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BadKind {
    /// A quoted field that is never closed.
    UnterminatedQuote,
    /// A record with one field too many and one with one too few.
    WrongColumnCount,
    /// A header row whose first column name is not the configured one (DES-CSV-3).
    WrongHeader,
    /// CP932 bytes in a file declared UTF-8.
    Cp932AsUtf8,
    /// Bytes that are not UTF-8 at all (0xFF, lone continuation byte) in a UTF-8 file.
    InvalidUtf8,
    /// The data connection is reset (TCP RST) after half the bytes; the STOR reply is recorded.
    Truncated,
    /// A valid CSV larger than the gateway should take (size from [`BadOptions::size`]).
    Oversized,
    /// A zero-byte file.
    Empty,
    /// The same file (name and content) sent twice.
    Duplicate,
    /// File names that try to leave the upload directory.
    PathTraversal,
    /// Login with a wrong password N times, then once with the right one.
    WrongPassword,
    /// A record whose wire size is over 65 536 bytes (DES-MSG-DATA-6) though its text is not:
    /// the first data row's first unmasked text column is [`LONG_FIELD_CHARS`] backslashes, in
    /// a file well under any file-size limit.
    LongRecord,
}

/// Backslashes in [`BadKind::LongRecord`]'s long field: 40 000 bytes as read, over 80 000 in
/// the record's JSON encoding, which escapes each as two bytes — the wire size of
/// DES-MSG-DATA-6 is the larger of the JSON and the XML encoding. A gateway that measures the
/// bytes it read, or the XML encoding only, takes the record.
pub const LONG_FIELD_CHARS: usize = 40_000;

impl BadKind {
    /// Every kind, in CLI order.
    pub const ALL: [BadKind; 12] = [
        Self::UnterminatedQuote,
        Self::WrongColumnCount,
        Self::WrongHeader,
        Self::Cp932AsUtf8,
        Self::InvalidUtf8,
        Self::Truncated,
        Self::Oversized,
        Self::Empty,
        Self::Duplicate,
        Self::PathTraversal,
        Self::WrongPassword,
        Self::LongRecord,
    ];

    /// The CLI / manifest name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::UnterminatedQuote => "unterminated-quote",
            Self::WrongColumnCount => "wrong-column-count",
            Self::WrongHeader => "wrong-header",
            Self::Cp932AsUtf8 => "cp932-as-utf8",
            Self::InvalidUtf8 => "invalid-utf8",
            Self::Truncated => "truncated",
            Self::Oversized => "oversized",
            Self::Empty => "empty",
            Self::Duplicate => "duplicate",
            Self::PathTraversal => "path-traversal",
            Self::WrongPassword => "wrong-password",
            Self::LongRecord => "long-record",
        }
    }

    /// Requirement IDs the kind probes.
    #[must_use]
    pub fn probes(self) -> &'static [&'static str] {
        match self {
            Self::UnterminatedQuote | Self::WrongColumnCount | Self::WrongHeader => {
                &["SC-FTP-1", "SC-ACQ-1"]
            }
            Self::Cp932AsUtf8 | Self::InvalidUtf8 => &["SC-FTP-1", "SC-ACQ-1"],
            Self::Truncated => &["SC-FTP-1", "SM-RESEND"],
            Self::Oversized => &["SC-FTP-1", "SM-THRESHOLD"],
            Self::Empty => &["SC-FTP-1"],
            Self::Duplicate => &["SC-FTP-1", "ST-STORE-1"],
            Self::PathTraversal => &["SM-ACL", "SC-FTP-1"],
            Self::WrongPassword => &["SM-LOCKOUT", "SM-SESSION", "SM-AUDIT"],
            Self::LongRecord => &["SC-FTP-1", "SC-ACQ-1"],
        }
    }

    /// What a conforming gateway is expected to do.
    #[must_use]
    pub fn expectation(self) -> &'static str {
        match self {
            Self::UnterminatedQuote | Self::WrongColumnCount => {
                "refuse the file with a 4xx/5xx completion reply (no 226); no record stored or sent; anomaly reported"
            }
            Self::WrongHeader => {
                "refuse the file (its header row is not the configured column names); no record stored or sent; anomaly reported"
            }
            Self::Cp932AsUtf8 | Self::InvalidUtf8 => {
                "refuse the file (bytes are not valid in the declared encoding); no mojibake stored or sent"
            }
            Self::Truncated => {
                "no 226 for the STOR; the partial content is discarded, nothing stored or sent"
            }
            Self::Oversized => {
                "refuse with 552 (or another 4xx/5xx) once over the configured limit; gateway stays up"
            }
            Self::Empty => "refuse or accept without creating any record; no 226 claiming data",
            Self::Duplicate => {
                "second copy accepted and ingested again with new seqs (DES-FTP-5: legacy systems re-send on purpose), noted as a duplicate in the audit log; no record lost"
            }
            Self::PathTraversal => {
                "refuse the name (553/550); nothing written outside the upload directory"
            }
            Self::WrongPassword => {
                "530 for each wrong password; after N failures the account or address is locked, so the final right password is refused too (530/421) for the lockout period"
            }
            Self::LongRecord => {
                "refuse the whole file with 552 (a record whose wire size is over 65 536 bytes, named by the line where it begins); no record stored or sent; anomaly reported"
            }
        }
    }
}

impl fmt::Display for BadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BadKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("unknown bad kind {s:?}; one of: {}", names.join(", "))
            })
    }
}

/// Parameters of a bad-input run.
#[derive(Debug, Clone)]
pub struct BadOptions {
    /// Dataset the (mostly valid) content is taken from.
    pub dataset: Dataset,
    /// Data rows of the base content.
    pub rows: usize,
    /// Generator seed.
    pub seed: u64,
    /// Target size in bytes for [`BadKind::Oversized`].
    pub size: u64,
    /// Wrong-password logins for [`BadKind::WrongPassword`].
    pub times: u32,
    /// Prefix of the remote file names (e.g. `billing_20261122T0930`).
    pub name_prefix: String,
}

impl Default for BadOptions {
    fn default() -> Self {
        Self {
            dataset: Dataset::Billing,
            rows: 20,
            seed: 1,
            size: 32 * 1024 * 1024,
            times: 5,
            name_prefix: "bad".into(),
        }
    }
}

/// The content of a single-file bad kind, with its row count and declared encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadContent {
    /// Bytes to send.
    pub bytes: Vec<u8>,
    /// Data rows it claims to have.
    pub rows: usize,
    /// The encoding it is declared with.
    pub encoding: TextEncoding,
}

/// Builds the bytes for `kind` (for kinds that are about sessions, the valid base file).
#[must_use]
pub fn content(kind: BadKind, opts: &BadOptions) -> BadContent {
    let utf8 = CsvOptions::default();
    let table = Table::generate(opts.dataset, opts.rows.max(2), opts.seed);
    let rows = table.rows.len();
    // Invariant: generated rows are always CP932-encodable and default options have no BOM
    // conflict, so to_csv cannot fail here; an empty vector would only make the probe weaker.
    let base = table.to_csv(&utf8).unwrap_or_default();
    let simple = |bytes| BadContent {
        bytes,
        rows,
        encoding: TextEncoding::Utf8,
    };
    match kind {
        BadKind::UnterminatedQuote => {
            let mut t = table.clone();
            if let Some(r) = t.rows.last_mut() {
                r[1] = format!("\"{}", r[1].replace('"', ""));
            }
            // Write the broken field raw: quote_field would escape it.
            let mut text =
                String::from_utf8_lossy(&t.to_csv(&utf8).unwrap_or_default()).into_owned();
            if let Some(r) = t.rows.last() {
                let quoted = crate::generate::quote_field(&r[1]).into_owned();
                text = text.replacen(&quoted, &r[1], 1);
            }
            simple(text.into_bytes())
        }
        BadKind::WrongHeader => {
            // `x` before the first column name: still plain CSV, another name.
            let mut text = b"x".to_vec();
            text.extend_from_slice(&base);
            simple(text)
        }
        BadKind::WrongColumnCount => {
            let mut t = table.clone();
            t.rows[0].push("余分な列".into());
            let last = t.rows.len() - 1;
            t.rows[last].pop();
            simple(t.to_csv(&utf8).unwrap_or_default())
        }
        BadKind::Cp932AsUtf8 => {
            let sjis = CsvOptions {
                encoding: TextEncoding::Cp932,
                ..utf8
            };
            simple(table.to_csv(&sjis).unwrap_or_default())
        }
        BadKind::InvalidUtf8 => {
            let mut bytes = base;
            // Put 0xFF and a lone continuation byte inside the first data record's name.
            let pos = bytes.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1) + 11;
            let pos = pos.min(bytes.len());
            bytes.splice(pos..pos, [0xFF, 0x80]);
            simple(bytes)
        }
        BadKind::Oversized => {
            let per_row = (base.len() / rows.max(1)).max(1) as u64;
            let mut want = (opts.size / per_row + 1) as usize;
            loop {
                let big = Table::generate(opts.dataset, want, opts.seed);
                let bytes = big.to_csv(&utf8).unwrap_or_default();
                if bytes.len() as u64 >= opts.size || bytes.is_empty() {
                    break BadContent {
                        bytes,
                        rows: big.rows.len(),
                        encoding: TextEncoding::Utf8,
                    };
                }
                want += want / 8 + 1;
            }
        }
        BadKind::LongRecord => {
            let mut t = table.clone();
            let col = opts
                .dataset
                .columns()
                .iter()
                .position(|c| c.ty == crate::dataset::ColumnType::String && !c.personal)
                .unwrap_or(0);
            if let Some(r) = t.rows.first_mut() {
                r[col] = "\\".repeat(LONG_FIELD_CHARS);
            }
            simple(t.to_csv(&utf8).unwrap_or_default())
        }
        BadKind::Empty => BadContent {
            bytes: Vec::new(),
            rows: 0,
            encoding: TextEncoding::Utf8,
        },
        BadKind::Truncated
        | BadKind::Duplicate
        | BadKind::PathTraversal
        | BadKind::WrongPassword => simple(base),
    }
}

/// Remote names that try to escape the upload directory (SM-ACL).
#[must_use]
pub fn traversal_names(dataset: Dataset) -> Vec<String> {
    let d = dataset.name();
    vec![
        format!("../../etc/{d}.csv"),
        format!("/etc/{d}.csv"),
        format!("..\\..\\windows\\{d}.csv"),
        format!("sub/../../{d}.csv"),
    ]
}

fn label(mut e: ManifestEntry, kind: BadKind) -> ManifestEntry {
    e.bad_kind = Some(kind.name().to_owned());
    e.probes = kind.probes().iter().map(|s| (*s).to_owned()).collect();
    e.expectation = Some(kind.expectation().to_owned());
    e
}

/// Runs one bad-input kind against `target` and returns a manifest entry per send or login.
///
/// Bad files are sent once (`max_attempts` 1: the reply itself is the result), except that
/// connection errors are still retried per `policy` for the sessions that are not about them.
pub async fn run(
    kind: BadKind,
    target: &FtpTarget,
    opts: &BadOptions,
    policy: &RetryPolicy,
) -> Vec<ManifestEntry> {
    let c = content(kind, opts);
    let once = RetryPolicy {
        max_attempts: 1,
        ..*policy
    };
    let upload = |name: String| Upload {
        file_name: name,
        content: c.bytes.clone(),
        dataset: opts.dataset.name().to_owned(),
        rows: c.rows,
        encoding: c.encoding.label().to_owned(),
    };
    let base_name = format!("{}_{}.csv", opts.name_prefix, kind.name());
    let mut out = Vec::new();
    match kind {
        BadKind::Cp932AsUtf8 => {
            let mut u = upload(base_name);
            u.encoding = TextEncoding::Utf8.label().to_owned(); // declared, not actual
            out.push(push_with(target, &target.password, &u, &once, Transfer::Whole).await);
        }
        BadKind::Truncated => {
            let keep = c.bytes.len() / 2;
            let u = upload(base_name);
            out.push(
                push_with(
                    target,
                    &target.password,
                    &u,
                    &once,
                    Transfer::TruncateAfter(keep),
                )
                .await,
            );
        }
        BadKind::Duplicate => {
            let u = upload(base_name);
            out.push(push_with(target, &target.password, &u, policy, Transfer::Whole).await);
            out.push(push_with(target, &target.password, &u, &once, Transfer::Whole).await);
        }
        BadKind::PathTraversal => {
            for name in traversal_names(opts.dataset) {
                out.push(
                    push_with(
                        target,
                        &target.password,
                        &upload(name),
                        &once,
                        Transfer::Whole,
                    )
                    .await,
                );
            }
        }
        BadKind::WrongPassword => {
            let wrong = format!("{}-wrong", target.password);
            for i in 0..opts.times {
                let u = upload(format!(
                    "{}_{}_{}.csv",
                    opts.name_prefix,
                    kind.name(),
                    i + 1
                ));
                out.push(push_with(target, &wrong, &u, &once, Transfer::Whole).await);
            }
            let u = upload(format!("{}_{}_right.csv", opts.name_prefix, kind.name()));
            out.push(push_with(target, &target.password, &u, &once, Transfer::Whole).await);
        }
        _ => {
            out.push(
                push_with(
                    target,
                    &target.password,
                    &upload(base_name),
                    &once,
                    Transfer::Whole,
                )
                .await,
            );
        }
    }
    out.into_iter().map(|e| label(e, kind)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_its_name_and_names_a_requirement() {
        for k in BadKind::ALL {
            assert_eq!(k.name().parse::<BadKind>().unwrap(), k);
            assert!(!k.probes().is_empty());
        }
        assert!("nonsense".parse::<BadKind>().is_err());
    }

    #[test]
    fn unterminated_quote_content_has_an_odd_number_of_quotes() {
        let c = content(BadKind::UnterminatedQuote, &BadOptions::default());
        let quotes = c.bytes.iter().filter(|&&b| b == b'"').count();
        assert_eq!(quotes % 2, 1);
    }

    #[test]
    fn invalid_utf8_and_cp932_contents_are_not_utf8() {
        let o = BadOptions::default();
        assert!(std::str::from_utf8(&content(BadKind::InvalidUtf8, &o).bytes).is_err());
        assert!(std::str::from_utf8(&content(BadKind::Cp932AsUtf8, &o).bytes).is_err());
        assert!(std::str::from_utf8(&content(BadKind::Duplicate, &o).bytes).is_ok());
    }

    #[test]
    fn the_long_record_is_the_first_data_line_and_the_file_stays_small() {
        for dataset in [Dataset::Billing, Dataset::PipeLedger, Dataset::MeterReading] {
            let o = BadOptions {
                dataset,
                ..BadOptions::default()
            };
            let c = content(BadKind::LongRecord, &o);
            let text = std::str::from_utf8(&c.bytes).unwrap();
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(
                lines[1].contains(&"\\".repeat(LONG_FIELD_CHARS)),
                "{dataset:?}"
            );
            assert!(lines[1].len() < 65_536, "{dataset:?}");
            assert!(lines.iter().skip(2).all(|l| l.len() < 1000), "{dataset:?}");
            assert!(c.bytes.len() < 100_000, "{}", c.bytes.len());
        }
    }

    #[test]
    fn oversized_content_reaches_the_requested_size() {
        let o = BadOptions {
            size: 200_000,
            ..BadOptions::default()
        };
        let c = content(BadKind::Oversized, &o);
        assert!(c.bytes.len() as u64 >= 200_000, "{}", c.bytes.len());
        assert!((c.bytes.len() as u64) < 400_000);
    }
}
