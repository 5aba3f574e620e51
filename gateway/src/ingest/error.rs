//! Why a CSV file is refused at ingest, and the one mapping of each reason to the `STOR` reply
//! (DES-FTP-6) and the `anomaly` it raises.
//!
//! Every variant carries its position as data (line, column, column name) and never a field
//! value: the reply text goes to the legacy system, the audit log and the platform (`anomaly`
//! `detail`), and plaintext of masked columns must never leave the gateway (DES-CSV-4,
//! DES-CSV-5, DES-MASK-4).

use std::fmt;

use crate::profile::ColumnType;
use crate::protocol::message::{Anomaly, AnomalyKind};
use crate::protocol::size::MAX_RECORD_BYTES;

use super::TextEncoding;

/// A DES-CSV-1 syntax fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyntaxFault {
    /// A `"` inside a field that did not begin with `"`.
    QuoteInUnquotedField,
    /// Something other than `,`, a line end or the end of the file after a closing `"`.
    TextAfterClosingQuote,
    /// The file ends inside a quoted field.
    UnterminatedQuote,
    /// A CR outside quotes that is not followed by LF.
    BareCr,
    /// Nothing between two line ends, or a line end at the very start of the file.
    EmptyLine,
}

impl SyntaxFault {
    fn what(self) -> &'static str {
        match self {
            Self::QuoteInUnquotedField => "quote in an unquoted field",
            Self::TextAfterClosingQuote => "text after a closing quote",
            Self::UnterminatedQuote => "quoted field not closed",
            Self::BareCr => "CR not followed by LF",
            Self::EmptyLine => "empty line",
        }
    }
}

/// Why a field does not have its column's type (DES-CSV-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueFault {
    /// Text with a control character other than TAB, CR, LF, or U+FFFE/U+FFFF.
    NotCharacterData,
    /// Not `-?[0-9]+`.
    NotInteger,
    /// Not `-?[0-9]+(\.[0-9]+)?`.
    NotDecimal,
    /// Not a calendar-valid `YYYY-MM-DD`.
    NotDate,
    /// Not a DES-ENV-2 timestamp.
    NotDatetime,
}

impl ValueFault {
    /// The fault a value of `ty` has when it does not match the type's pattern.
    pub fn of(ty: ColumnType) -> Self {
        match ty {
            ColumnType::String => Self::NotCharacterData,
            ColumnType::Integer => Self::NotInteger,
            ColumnType::Decimal => Self::NotDecimal,
            ColumnType::Date => Self::NotDate,
            ColumnType::Datetime => Self::NotDatetime,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::NotCharacterData => "control character in text",
            Self::NotInteger => "not an integer",
            Self::NotDecimal => "not a decimal",
            Self::NotDate => "not a date",
            Self::NotDatetime => "not a datetime",
        }
    }
}

/// Why a file cannot be taken. Lines are 1-based physical lines of the file (LF-terminated,
/// counting the header and the line ends inside quoted fields); columns are 1-based field
/// numbers within the record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IngestError {
    /// DES-CSV-2: bytes that do not decode in the dataset's encoding (551).
    Encoding {
        /// Line of the first undecodable byte.
        line: u64,
        /// Field it falls in.
        column: u32,
        /// The dataset's encoding.
        encoding: TextEncoding,
    },
    /// DES-CSV-1: a quoting or line-end fault, or an empty line (551).
    Syntax {
        /// Line of the offending byte (for an unclosed quote: where the field began).
        line: u64,
        /// Field it falls in.
        column: u32,
        /// What is wrong.
        fault: SyntaxFault,
    },
    /// DES-CSV-1: the file has no data record (empty, or a header only) (551).
    NoDataRecord {
        /// The line after the last one.
        line: u64,
    },
    /// DES-CSV-3: a header field differs from the configured column name (551).
    HeaderMismatch {
        /// Line of the header field.
        line: u64,
        /// Its field number.
        column: u32,
        /// The configured column name it should equal (configuration, not file content).
        expected: String,
    },
    /// DES-CSV-3 (header) or DES-CSV-4 (data): a record with more fields than columns (551).
    TooManyFields {
        /// Whether the record is the header row.
        header: bool,
        /// Line where the first extra field begins.
        line: u64,
        /// The first extra field's number (columns + 1).
        column: u32,
        /// The configured number of columns.
        expected: u32,
    },
    /// DES-CSV-3 (header) or DES-CSV-4 (data): a record with fewer fields than columns (551).
    TooFewFields {
        /// Whether the record is the header row.
        header: bool,
        /// Line where the record ends.
        line: u64,
        /// The first missing field's number (found + 1).
        column: u32,
        /// Fields the record has.
        found: u32,
        /// The configured number of columns.
        expected: u32,
    },
    /// DES-CSV-4: a field that does not have its column's type (551).
    Value {
        /// Line where the field begins.
        line: u64,
        /// Its field number.
        column: u32,
        /// The column's configured name.
        name: String,
        /// What is wrong.
        fault: ValueFault,
    },
    /// DES-MSG-DATA-6: a record whose wire size after masking is over 65 536 bytes, or whose
    /// decoded fields already total more than that (552).
    RecordTooLarge {
        /// Line where the record begins.
        line: u64,
    },
    /// DES-FTP-6: the file is larger than `max_file_bytes` (552).
    FileTooLarge {
        /// The configured limit.
        max: u64,
    },
    /// DES-MASK-4: masking a field failed (a local fault, 451: the same file may succeed later).
    Masking {
        /// Line where the record begins.
        line: u64,
        /// The masked field's number.
        column: u32,
    },
}

/// The reply to `STOR` for a refused file (DES-FTP-6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reply {
    /// The FTP reply code: 4xx (retry later) or 5xx (never accepted).
    pub code: u16,
    /// The whole reply line without CRLF, code first: e.g.
    /// `551 DES-CSV-4: line 12, column 3: not a date`.
    pub text: String,
}

impl Reply {
    /// The reason text without the code (`DES-CSV-4: line 12, column 3: not a date`), for an
    /// FTP library that writes its own reply texts: it goes into the anomaly `detail` and the
    /// audit log (DES-FTP-6).
    pub fn reason(&self) -> &str {
        self.text.get(4..).unwrap_or("")
    }

    /// Whether the same file may succeed later (4xx): not quarantined (DES-FTP-7).
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl IngestError {
    /// The DES rule the refusal names in its reply.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Encoding { .. } => "DES-CSV-2",
            Self::Syntax { .. } | Self::NoDataRecord { .. } => "DES-CSV-1",
            Self::HeaderMismatch { .. } => "DES-CSV-3",
            Self::TooManyFields { header, .. } | Self::TooFewFields { header, .. } => {
                if *header {
                    "DES-CSV-3"
                } else {
                    "DES-CSV-4"
                }
            }
            Self::Value { .. } => "DES-CSV-4",
            Self::RecordTooLarge { .. } => "DES-MSG-DATA-6",
            Self::FileTooLarge { .. } | Self::Masking { .. } => "DES-FTP-6",
        }
    }

    /// The one mapping to the `STOR` reply (DES-FTP-6): code and reason text, with line and
    /// column and never a field value.
    pub fn reply(&self) -> Reply {
        let rule = self.rule();
        let content = |line: &u64, column: &u32, what: &str| Reply {
            code: 551,
            text: format!("551 {rule}: line {line}, column {column}: {what}"),
        };
        match self {
            Self::Encoding {
                line,
                column,
                encoding,
            } => content(line, column, &format!("not valid {}", encoding.label())),
            Self::Syntax {
                line,
                column,
                fault,
            } => content(line, column, fault.what()),
            Self::NoDataRecord { line } => content(line, &1, "no data record"),
            Self::HeaderMismatch { line, column, .. } => {
                content(line, column, "header field is not the column name")
            }
            Self::TooManyFields {
                line,
                column,
                expected,
                ..
            } => content(line, column, &format!("more than {expected} fields")),
            Self::TooFewFields {
                line,
                column,
                found,
                expected,
                ..
            } => content(
                line,
                column,
                &format!("{found} fields, expected {expected}"),
            ),
            Self::Value {
                line,
                column,
                fault,
                ..
            } => content(line, column, fault.what()),
            Self::RecordTooLarge { line } => Reply {
                code: 552,
                text: format!("552 {rule}: line {line}: record over {MAX_RECORD_BYTES} bytes"),
            },
            Self::FileTooLarge { max } => Reply {
                code: 552,
                text: format!("552 {rule}: file over {max} bytes"),
            },
            Self::Masking { .. } => Reply {
                code: 451,
                text: format!("451 {rule}: local storage error"),
            },
        }
    }

    /// The anomaly's rule (DES-FTP-6): `SC-FTP-1` for the file size and local faults,
    /// `SC-ACQ-1` for content (DES-CSV-1..4 and a record over 65 536 bytes).
    pub fn anomaly_rule(&self) -> &'static str {
        match self {
            Self::FileTooLarge { .. } | Self::Masking { .. } => "SC-FTP-1",
            _ => "SC-ACQ-1",
        }
    }

    /// The `anomaly` the refusal raises (DES-FTP-6): kind `ingest`, rule `SC-ACQ-1` for content
    /// (DES-CSV-1..4 and a record over 65 536 bytes) or `SC-FTP-1` for size and local faults,
    /// with the reply line as `detail`.
    pub fn anomaly(&self) -> Anomaly {
        Anomaly {
            kind: AnomalyKind::Ingest,
            rule: self.anomaly_rule().into(),
            detail: self.reply().text,
            topic: None,
        }
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reply().text)
    }
}

impl std::error::Error for IngestError {}
