//! The DES-CSV-1 dialect as an incremental state machine over decoded text: RFC 4180 with
//! `,` and `"`, `""` inside quotes, CR/LF/`,` as data inside quotes, records ending in CRLF or
//! LF, the last line end optional — and, unlike lenient readers, every deviation refused with
//! its position: a `"` in an unquoted field, text after a closing quote, a quote never closed,
//! a CR not followed by LF outside quotes, an empty line anywhere.
//!
//! Why not `csv-core`: it "will never return an error and will always find *a* parse" (its own
//! documentation): it skips empty lines, keeps stray quotes and text after a closing quote as
//! data, closes an unterminated quote at the end of input, ends records at a lone CR and strips
//! a leading BOM — each of which DES-CSV-1/2 requires to be refused. `csv-core` is the
//! test oracle instead: on valid files both must split fields identically
//! (`gateway/tests/ingest_csv.rs`).
//!
//! Input arrives as `&str` pieces of any size (the text decoder's output), so a quoted field, a
//! CRLF pair or a `""` may be split anywhere. Memory: one field buffer, bounded by the record
//! size limit (a record whose decoded fields pass [`MAX_RECORD_BYTES`] is refused at once).

use crate::protocol::size::MAX_RECORD_BYTES;

use super::error::{IngestError, SyntaxFault};

/// Where a field or record is, for the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    /// Whether the record is the header row.
    pub header: bool,
    /// Line where the field (for [`Sink::field`]) or record (for [`Sink::record`]) begins.
    pub line: u64,
    /// Field number, 1-based (for [`Sink::record`]: the number of fields).
    pub column: u32,
}

/// Receives fields and record ends as the parser finds them.
pub(crate) trait Sink {
    /// A field ended; `text` is its unquoted text (take it to keep it).
    fn field(&mut self, at: At, text: &mut String) -> Result<(), IngestError>;
    /// A record ended with exactly the configured number of fields.
    fn record(&mut self, at: At) -> Result<(), IngestError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a record (of the file, or after a line end).
    RecordStart,
    /// After a CR at the start of a record: only LF may follow (and that is an empty line).
    RecordStartCr,
    /// At the start of a field after `,`.
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// After a `"` inside a quoted field: `"` (escaped quote), `,`, a line end or the end.
    QuoteInQuoted,
    /// After a CR outside quotes: only LF may follow.
    Cr,
}

/// The strict DES-CSV-1 parser.
#[derive(Debug)]
pub(crate) struct Parser {
    state: State,
    /// Configured number of columns.
    columns: u32,
    /// Whether the first record is a header row.
    header_row: bool,
    /// Records completed so far (header included).
    records: u64,
    /// Current line (1 + LFs consumed).
    line: u64,
    /// Field number of the current field.
    column: u32,
    /// Line where the current field began.
    field_line: u64,
    /// Line where the current record began.
    record_line: u64,
    /// Decoded bytes of the current record's fields so far.
    record_bytes: u64,
    /// The current field's text.
    field: String,
}

impl Parser {
    pub(crate) fn new(columns: u32, header_row: bool) -> Self {
        Parser {
            state: State::RecordStart,
            columns,
            header_row,
            records: 0,
            line: 1,
            column: 1,
            field_line: 1,
            record_line: 1,
            record_bytes: 0,
            field: String::new(),
        }
    }

    /// Current line and field number (for an error found by the text decoder).
    pub(crate) fn position(&self) -> (u64, u32) {
        (self.line, self.column)
    }

    /// Current line (for the end of the file).
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// Bytes held by the parser's own buffer.
    pub(crate) fn capacity(&self) -> usize {
        self.field.capacity()
    }

    fn in_header(&self) -> bool {
        self.header_row && self.records == 0
    }

    fn syntax(&self, line: u64, fault: SyntaxFault) -> IngestError {
        IngestError::Syntax {
            line,
            column: self.column,
            fault,
        }
    }

    /// Appends data to the current field, refusing the record once its decoded fields pass
    /// [`MAX_RECORD_BYTES`] (its wire size can only be larger, DES-MSG-DATA-6).
    fn append(&mut self, s: &str) -> Result<(), IngestError> {
        self.record_bytes += s.len() as u64;
        if self.record_bytes > u64::from(MAX_RECORD_BYTES) {
            return Err(IngestError::RecordTooLarge {
                line: self.record_line,
            });
        }
        self.field.push_str(s);
        Ok(())
    }

    /// Ends the current field; with `record_end`, also the record (the LF that ends it, if
    /// any, is not yet counted in `self.line`).
    fn end_field(&mut self, sink: &mut impl Sink, record_end: bool) -> Result<(), IngestError> {
        let header = self.in_header();
        let at = At {
            header,
            line: self.field_line,
            column: self.column,
        };
        sink.field(at, &mut self.field)?;
        // The sink took the text, or it is dropped here: the next field starts empty.
        self.field.clear();
        if record_end {
            if self.column < self.columns {
                return Err(IngestError::TooFewFields {
                    header,
                    line: self.line,
                    column: self.column + 1,
                    found: self.column,
                    expected: self.columns,
                });
            }
            sink.record(At {
                header,
                line: self.record_line,
                column: self.column,
            })?;
            self.records += 1;
            self.column = 1;
            self.record_bytes = 0;
            self.state = State::RecordStart;
        } else {
            if self.column >= self.columns {
                return Err(IngestError::TooManyFields {
                    header,
                    line: self.line,
                    column: self.columns + 1,
                    expected: self.columns,
                });
            }
            self.column += 1;
            self.field_line = self.line;
            self.state = State::FieldStart;
        }
        Ok(())
    }

    /// Counts an LF that ended a record: the next record begins on the next line.
    fn next_line(&mut self) {
        self.line += 1;
        self.record_line = self.line;
        self.field_line = self.line;
    }

    /// Parses the next piece of decoded text.
    pub(crate) fn push(&mut self, text: &str, sink: &mut impl Sink) -> Result<(), IngestError> {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            // Runs of plain data are appended in one go; they end at an ASCII byte, so the
            // slice boundaries are character boundaries.
            let plain: fn(u8) -> bool = match self.state {
                State::Unquoted | State::RecordStart | State::FieldStart => {
                    |b| !matches!(b, b',' | b'"' | b'\r' | b'\n')
                }
                State::Quoted => |b| !matches!(b, b'"' | b'\n'),
                _ => |_| false,
            };
            let start = i;
            while i < bytes.len() && plain(bytes[i]) {
                i += 1;
            }
            if i > start {
                if let Some(run) = text.get(start..i) {
                    self.append(run)?;
                }
                if matches!(self.state, State::RecordStart | State::FieldStart) {
                    self.state = State::Unquoted;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.step(b, sink)?;
        }
        Ok(())
    }

    /// One special byte (`,` `"` CR LF, or anything after a closing quote or a CR).
    fn step(&mut self, b: u8, sink: &mut impl Sink) -> Result<(), IngestError> {
        match (self.state, b) {
            (State::RecordStart, b'\n') | (State::RecordStartCr, b'\n') => {
                return Err(IngestError::Syntax {
                    line: self.line,
                    column: 1,
                    fault: SyntaxFault::EmptyLine,
                });
            }
            (State::RecordStart, b'\r') => self.state = State::RecordStartCr,
            (State::Cr, b'\n') => {
                self.end_field(sink, true)?;
                self.next_line();
            }
            (State::RecordStartCr, _) | (State::Cr, _) => {
                return Err(self.syntax(self.line, SyntaxFault::BareCr));
            }
            (State::RecordStart | State::FieldStart, b'"') => self.state = State::Quoted,
            (State::RecordStart | State::FieldStart | State::Unquoted, b',') => {
                self.end_field(sink, false)?;
            }
            (State::FieldStart | State::Unquoted, b'\r') => self.state = State::Cr,
            (State::FieldStart | State::Unquoted, b'\n') => {
                self.end_field(sink, true)?;
                self.next_line();
            }
            (State::Unquoted, b'"') => {
                return Err(self.syntax(self.line, SyntaxFault::QuoteInUnquotedField));
            }
            (State::Quoted, b'"') => self.state = State::QuoteInQuoted,
            (State::Quoted, b'\n') => {
                self.append("\n")?;
                self.line += 1;
            }
            (State::QuoteInQuoted, b'"') => {
                self.append("\"")?;
                self.state = State::Quoted;
            }
            (State::QuoteInQuoted, b',') => self.end_field(sink, false)?,
            (State::QuoteInQuoted, b'\r') => self.state = State::Cr,
            (State::QuoteInQuoted, b'\n') => {
                self.end_field(sink, true)?;
                self.next_line();
            }
            (State::QuoteInQuoted, _) => {
                return Err(self.syntax(self.line, SyntaxFault::TextAfterClosingQuote));
            }
            // `,` and CR are data inside quotes. Other bytes of these states are plain data
            // and never get here (see `push`); kept total, an ASCII byte is data.
            (State::RecordStart | State::FieldStart | State::Unquoted | State::Quoted, _) => {
                let mut buf = [0u8; 4];
                self.append(char::from(b).encode_utf8(&mut buf))?;
                if self.state != State::Quoted {
                    self.state = State::Unquoted;
                }
            }
        }
        Ok(())
    }

    /// The end of the file: the last record may lack its line end; a quote must be closed.
    pub(crate) fn finish(&mut self, sink: &mut impl Sink) -> Result<(), IngestError> {
        match self.state {
            State::RecordStart => Ok(()),
            State::FieldStart | State::Unquoted | State::QuoteInQuoted => {
                self.end_field(sink, true)
            }
            State::Quoted => Err(IngestError::Syntax {
                line: self.field_line,
                column: self.column,
                fault: SyntaxFault::UnterminatedQuote,
            }),
            State::RecordStartCr | State::Cr => Err(self.syntax(self.line, SyntaxFault::BareCr)),
        }
    }
}
