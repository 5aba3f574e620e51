//! CSV ingest (system connection, SC-ACQ-1, SEC-MASK-1): a synchronous, sans-IO decoder that
//! turns the bytes of one uploaded file into validated, canonical, masked records, or refuses
//! the file whole with the one reply DES-FTP-6 gives for the reason.
//!
//! Implements DES-CSV-1 (dialect: the strict parser of `csv.rs`), DES-CSV-2 (UTF-8 with BOM
//! skipped, or CP932 = WHATWG `Shift_JIS` with the NEC and IBM extensions, decoded
//! incrementally by `encoding_rs`, never with a replacement character), DES-CSV-3 (header row),
//! DES-CSV-4 (field count, types, canonical integers: `value.rs`), DES-MASK-4 (masked columns
//! masked with [`MaskingKeys`], empty fields stay empty), DES-MSG-DATA-6 (each record's wire
//! size after masking, [`record_wire_bytes`], at most [`MAX_RECORD_BYTES`]) and the reply codes
//! of DES-FTP-6 ([`IngestError::reply`], [`IngestError::anomaly`]), in the order of DES-CSV-5:
//! the first failure in file order wins.
//!
//! # Use
//!
//! ```text
//! let mut dec = Decoder::new(&spec, &keys).with_max_file_bytes(max);
//! for chunk in transfer { quarantine_copy(chunk); dec.feed(chunk)?; while let Some(r) = dec.poll_record() { tx.insert(r) } }
//! let done = dec.finish()?;  // the last record (no line end) comes here
//! for r in done.records { tx.insert(r) }  tx.commit();  reply 226
//! ```
//!
//! The caller (the FTP adapter) writes records into its one store transaction while the file
//! streams and commits only after [`Decoder::finish`] succeeds; on any error it rolls back, so
//! nothing of a refused file is stored (DES-FTP-6). After an error, further [`Decoder::feed`]
//! calls only count bytes and return the same error, except that passing `max_file_bytes`
//! turns it into [`IngestError::FileTooLarge`]: the size check belongs to the transfer and
//! comes before any content check (DES-FTP-6), so the caller keeps feeding the whole transfer
//! (it needs the bytes for quarantine anyway, DES-FTP-7) and replies with [`Decoder::finish`]'s
//! error.
//!
//! # Memory
//!
//! Flat whatever the file size: one decode buffer of [`DECODE_BUFFER_BYTES`], one field buffer
//! and the current record (both bounded, since a record whose decoded fields pass
//! [`MAX_RECORD_BYTES`] is refused at once), and the records completed during one `feed` call
//! until they are polled (bounded by the chunk size). [`Decoder::buffer_capacity`] measures it.

mod csv;
mod error;
mod value;

use std::collections::VecDeque;
use std::mem;

use encoding_rs::{DecoderResult, SHIFT_JIS, UTF_8};

use crate::profile::{Column, ColumnType};
use crate::protocol::size::{MAX_RECORD_BYTES, record_wire_bytes};
use crate::security::mask::MaskingKeys;

pub use error::{IngestError, Reply, SyntaxFault, ValueFault};

use csv::{At, Parser, Sink};

/// Bytes of decoded text produced per step of the text decoder.
pub const DECODE_BUFFER_BYTES: usize = 8192;

/// Character encoding of a dataset's CSV (DES-CSV-2, `encoding` in `gateway.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextEncoding {
    /// `"utf-8"`: UTF-8; a leading BOM is skipped.
    Utf8,
    /// `"cp932"`: Windows-31J, the WHATWG `Shift_JIS` decoder; no BOM.
    Cp932,
}

impl TextEncoding {
    /// The configuration spelling, `"utf-8"` or `"cp932"`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Cp932 => "cp932",
        }
    }

    /// Parses the configuration spelling (exactly `"utf-8"` or `"cp932"`, DES-PROV-2).
    pub fn from_label(s: &str) -> Option<Self> {
        match s {
            "utf-8" => Some(Self::Utf8),
            "cp932" => Some(Self::Cp932),
            _ => None,
        }
    }

    fn decoder(self) -> encoding_rs::Decoder {
        match self {
            // Removes one leading UTF-8 BOM, even when it is split across chunks.
            Self::Utf8 => UTF_8.new_decoder_with_bom_removal(),
            // No BOM sniffing: EF BB BF is CP932 text (and does not decode).
            Self::Cp932 => SHIFT_JIS.new_decoder_without_bom_handling(),
        }
    }
}

/// One configured column (a `columns` entry of a `[[datasets]]` table, DES-PROV-2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnSpec {
    /// The column name: the header text (DES-CSV-3) and the masking AAD (DES-MASK-1).
    pub name: String,
    /// The value type (DES-CSV-4).
    pub ty: ColumnType,
    /// Whether the column is masked at ingest (DES-MASK-4).
    pub masked: bool,
}

impl From<&Column> for ColumnSpec {
    fn from(c: &Column) -> Self {
        ColumnSpec {
            name: c.name.clone(),
            ty: c.ty,
            masked: c.masked,
        }
    }
}

/// What ingest needs of a dataset's configuration (a `[[datasets]]` table, DES-PROV-2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DatasetSpec {
    /// Character encoding (DES-CSV-2).
    pub encoding: TextEncoding,
    /// Whether the first record is a header row equal to the column names (DES-CSV-3).
    pub header_row: bool,
    /// Columns in CSV order.
    pub columns: Vec<ColumnSpec>,
}

/// One accepted record: validated, canonical, masked, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Line of the file on which the record begins (1-based).
    pub line: u64,
    /// Field texts in column order, as stored: integers canonical, masked columns in
    /// `m1.<keyId>.<b64>` form (empty fields stay empty).
    pub fields: Vec<String>,
    /// The record's wire size (DES-MSG-DATA-6), at most [`MAX_RECORD_BYTES`].
    pub wire_bytes: u32,
}

/// What an accepted file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Summary {
    /// Data records (the header row not counted).
    pub records: u64,
    /// Bytes of the file.
    pub bytes: u64,
}

/// The end of an accepted file: records not yet polled, and the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Records completed by the end of the file (at least the last one when it has no line
    /// end) and any not yet taken with [`Decoder::poll_record`], in file order.
    pub records: Vec<Record>,
    /// Counts.
    pub summary: Summary,
}

/// The streaming CSV decoder of one file (see the module documentation).
pub struct Decoder<'a> {
    text: encoding_rs::Decoder,
    encoding: TextEncoding,
    scratch: String,
    parser: Parser,
    records: Records<'a>,
    bytes: u64,
    max_file_bytes: Option<u64>,
    failed: Option<IngestError>,
}

/// The parser's sink: header check, values, masking, wire size, the queue of records.
#[derive(Debug)]
struct Records<'a> {
    spec: &'a DatasetSpec,
    keys: &'a MaskingKeys,
    fields: Vec<String>,
    ready: VecDeque<Record>,
    count: u64,
}

impl Sink for Records<'_> {
    fn field(&mut self, at: At, text: &mut String) -> Result<(), IngestError> {
        let Some(col) = self.spec.columns.get(at.column as usize - 1) else {
            // The parser refuses a field beyond the columns before it ends.
            return Ok(());
        };
        if at.header {
            if *text != col.name {
                return Err(IngestError::HeaderMismatch {
                    line: at.line,
                    column: at.column,
                    expected: col.name.clone(),
                });
            }
        } else {
            value::check(col.ty, text).map_err(|fault| IngestError::Value {
                line: at.line,
                column: at.column,
                name: col.name.clone(),
                fault,
            })?;
            self.fields.push(mem::take(text));
        }
        Ok(())
    }

    fn record(&mut self, at: At) -> Result<(), IngestError> {
        if at.header {
            return Ok(());
        }
        let mut fields = mem::take(&mut self.fields);
        for (i, (col, f)) in self.spec.columns.iter().zip(fields.iter_mut()).enumerate() {
            if col.masked && !f.is_empty() {
                *f = self
                    .keys
                    .mask(&col.name, f)
                    .map_err(|_| IngestError::Masking {
                        line: at.line,
                        column: i as u32 + 1,
                    })?;
            }
        }
        let wire_bytes = record_wire_bytes(&fields);
        if wire_bytes > MAX_RECORD_BYTES {
            return Err(IngestError::RecordTooLarge { line: at.line });
        }
        self.ready.push_back(Record {
            line: at.line,
            fields,
            wire_bytes,
        });
        self.fields = Vec::with_capacity(self.spec.columns.len());
        self.count += 1;
        Ok(())
    }
}

impl std::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("encoding", &self.encoding)
            .field("bytes", &self.bytes)
            .field("records", &self.records.count)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<'a> Decoder<'a> {
    /// A decoder for one file of the dataset `spec`, masking with `keys`.
    pub fn new(spec: &'a DatasetSpec, keys: &'a MaskingKeys) -> Self {
        let columns = u32::try_from(spec.columns.len()).unwrap_or(u32::MAX);
        Decoder {
            text: spec.encoding.decoder(),
            encoding: spec.encoding,
            scratch: "\0".repeat(DECODE_BUFFER_BYTES),
            parser: Parser::new(columns, spec.header_row),
            records: Records {
                spec,
                keys,
                fields: Vec::with_capacity(spec.columns.len()),
                ready: VecDeque::new(),
                count: 0,
            },
            bytes: 0,
            max_file_bytes: None,
            failed: None,
        }
    }

    /// Refuses the file with [`IngestError::FileTooLarge`] once more than `max` bytes are fed
    /// (`[ftp].max_file_bytes`, DES-FTP-6).
    pub fn with_max_file_bytes(mut self, max: u64) -> Self {
        self.max_file_bytes = Some(max);
        self
    }

    /// Takes the next chunk of the file. Records it completes can then be taken with
    /// [`Self::poll_record`]. After an error every call returns the error (see the module
    /// documentation for the size limit's precedence).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        self.bytes += chunk.len() as u64;
        if let Some(max) = self.max_file_bytes.filter(|max| self.bytes > *max) {
            if !matches!(self.failed, Some(IngestError::FileTooLarge { .. })) {
                self.fail(IngestError::FileTooLarge { max });
            }
        }
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if chunk.is_empty() {
            // encoding_rs (0.8.35) forgets a pending CP932 lead byte when it is given empty
            // input before the end: an empty chunk must not reach it.
            return Ok(());
        }
        self.run(chunk, false).inspect_err(|e| self.fail(e.clone()))
    }

    /// The next completed record, in file order.
    pub fn poll_record(&mut self) -> Option<Record> {
        self.records.ready.pop_front()
    }

    /// The end of the file: decodes what is left, ends the last record and checks that the
    /// file had a data record.
    pub fn finish(mut self) -> Result<Finished, IngestError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.run(&[], true)?;
        self.parser.finish(&mut self.records)?;
        if self.records.count == 0 {
            return Err(IngestError::NoDataRecord {
                line: self.parser.line(),
            });
        }
        Ok(Finished {
            records: self.records.ready.into_iter().collect(),
            summary: Summary {
                records: self.records.count,
                bytes: self.bytes,
            },
        })
    }

    /// Bytes of heap the decoder holds in its own buffers (decode buffer, field buffer,
    /// current record, records not yet polled): what stays flat whatever the file size.
    pub fn buffer_capacity(&self) -> usize {
        let strings = |v: &Vec<String>| {
            v.capacity() * mem::size_of::<String>() + v.iter().map(String::capacity).sum::<usize>()
        };
        self.scratch.capacity()
            + self.parser.capacity()
            + strings(&self.records.fields)
            + self.records.ready.capacity() * mem::size_of::<Record>()
            + self
                .records
                .ready
                .iter()
                .map(|r| strings(&r.fields))
                .sum::<usize>()
    }

    fn fail(&mut self, e: IngestError) {
        self.records.ready.clear();
        self.failed = Some(e);
    }

    /// Decodes `input` piece by piece into the scratch buffer and parses each piece; an
    /// undecodable byte is reported at the parser's position after the text before it.
    fn run(&mut self, input: &[u8], last: bool) -> Result<(), IngestError> {
        let mut src = input;
        loop {
            let (result, read, written) =
                self.text
                    .decode_to_str_without_replacement(src, &mut self.scratch, last);
            src = &src[read..];
            if let Some(text) = self.scratch.get(..written) {
                self.parser.push(text, &mut self.records)?;
            }
            match result {
                DecoderResult::InputEmpty => return Ok(()),
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(_, _) => {
                    let (line, column) = self.parser.position();
                    return Err(IngestError::Encoding {
                        line,
                        column,
                        encoding: self.encoding,
                    });
                }
            }
        }
    }
}
