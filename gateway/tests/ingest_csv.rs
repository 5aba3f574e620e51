//! The CSV ingest decoder (DES-CSV-1..5, DES-MASK-4, DES-MSG-DATA-6, DES-FTP-6) on real files:
//! legacy-sim's generated datasets and bad inputs, hand-written CP932 bytes, and files fed in
//! every chunking.
#![allow(clippy::unwrap_used)]

use gateway::ingest::{
    ColumnSpec, DatasetSpec, Decoder, IngestError, Record, Summary, TextEncoding,
};
use gateway::profile::ColumnType;
use gateway::protocol::message::AnomalyKind;
use gateway::security::mask::MaskingKeys;
use legacy_sim::bad::{self, BadKind, BadOptions};
use legacy_sim::generate::write_csv;
use legacy_sim::{CsvOptions, Dataset, HeaderStyle, LineEnding, Table};
use proptest::prelude::*;

const KEY_ID: &str = "k2026a";

fn keys() -> MaskingKeys {
    let key: Vec<u8> = (0u8..32).collect();
    MaskingKeys::new(KEY_ID, &key).unwrap()
}

/// The dataset as the gateway would be configured for legacy-sim's files: header text = the
/// Japanese labels, personal columns masked.
fn spec_of(d: Dataset, encoding: TextEncoding) -> DatasetSpec {
    DatasetSpec {
        encoding,
        header_row: true,
        columns: d
            .columns()
            .iter()
            .map(|c| ColumnSpec {
                name: c.label.to_owned(),
                ty: c.ty,
                masked: c.personal,
            })
            .collect(),
    }
}

fn text_spec(names: &[&str], encoding: TextEncoding, masked: bool) -> DatasetSpec {
    DatasetSpec {
        encoding,
        header_row: true,
        columns: names
            .iter()
            .map(|n| ColumnSpec {
                name: (*n).to_owned(),
                ty: ColumnType::String,
                masked,
            })
            .collect(),
    }
}

fn sim_options(encoding: TextEncoding, bom: bool, line_ending: LineEnding) -> CsvOptions {
    CsvOptions {
        encoding: match encoding {
            TextEncoding::Utf8 => legacy_sim::TextEncoding::Utf8,
            TextEncoding::Cp932 => legacy_sim::TextEncoding::Cp932,
        },
        bom,
        line_ending,
        header: HeaderStyle::Japanese,
    }
}

/// Feeds `bytes` in chunks of `chunk` bytes, taking records as they come.
fn decode_chunked(
    spec: &DatasetSpec,
    keys: &MaskingKeys,
    bytes: &[u8],
    chunk: usize,
) -> Result<(Vec<Record>, Summary), IngestError> {
    let mut dec = Decoder::new(spec, keys);
    let mut out = Vec::new();
    for c in bytes.chunks(chunk.max(1)) {
        dec.feed(c)?;
        while let Some(r) = dec.poll_record() {
            out.push(r);
        }
    }
    let done = dec.finish()?;
    out.extend(done.records);
    Ok((out, done.summary))
}

fn decode(spec: &DatasetSpec, bytes: &[u8]) -> Result<Vec<Record>, IngestError> {
    decode_chunked(spec, &keys(), bytes, 4096).map(|(r, _)| r)
}

fn refusal(spec: &DatasetSpec, bytes: &[u8]) -> String {
    decode(spec, bytes).unwrap_err().reply().text
}

fn fields(records: &[Record]) -> Vec<Vec<String>> {
    records.iter().map(|r| r.fields.clone()).collect()
}

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
        .collect()
}

/// Unmasks the masked columns of decoded records, checking each is in masked form.
fn unmasked(spec: &DatasetSpec, records: &[Record]) -> Vec<Vec<String>> {
    let k = keys();
    records
        .iter()
        .map(|r| {
            r.fields
                .iter()
                .zip(&spec.columns)
                .map(|(f, c)| {
                    if c.masked && !f.is_empty() {
                        assert!(f.starts_with("m1.k2026a."), "masked form: {f}");
                        k.unmask(&c.name, f).unwrap()
                    } else {
                        f.clone()
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn a_decoder_can_be_held_across_awaits_of_a_multi_threaded_runtime() {
    fn send<T: Send>() {}
    send::<Decoder<'static>>();
    send::<IngestError>();
}

// ---------------------------------------------------------------------------------------------
// Accepted files

#[test]
fn generated_files_of_every_dataset_encoding_bom_and_line_end_decode_to_the_generated_rows() {
    for d in Dataset::ALL {
        for (encoding, bom) in [
            (TextEncoding::Utf8, false),
            (TextEncoding::Utf8, true),
            (TextEncoding::Cp932, false),
        ] {
            for eol in [LineEnding::Crlf, LineEnding::Lf] {
                let table = Table::generate(d, 300, 11);
                let bytes = table.to_csv(&sim_options(encoding, bom, eol)).unwrap();
                let spec = spec_of(d, encoding);
                let (records, summary) = decode_chunked(&spec, &keys(), &bytes, 4096).unwrap();
                let what = format!("{d} {encoding:?} bom={bom} {eol:?}");
                assert_eq!(unmasked(&spec, &records), table.rows, "{what}");
                assert_eq!(summary.records, 300, "{what}");
                assert_eq!(summary.bytes, bytes.len() as u64, "{what}");
                assert!(records.iter().all(|r| r.wire_bytes > 0), "{what}");
            }
        }
    }
}

#[test]
fn masked_columns_never_appear_in_clear_and_unmask_back_with_the_masking_keys() {
    let table = Table::generate(Dataset::Billing, 200, 5);
    let bytes = table
        .to_csv(&sim_options(TextEncoding::Cp932, false, LineEnding::Crlf))
        .unwrap();
    let spec = spec_of(Dataset::Billing, TextEncoding::Cp932);
    let records = decode(&spec, &bytes).unwrap();
    // name and address (columns 2 and 3) are personal.
    let all_output: String = records
        .iter()
        .flat_map(|r| r.fields.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("\u{0}");
    for (row, rec) in table.rows.iter().zip(&records) {
        for col in [1, 2] {
            assert!(
                !all_output.contains(row[col].as_str()),
                "{} in clear",
                row[col]
            );
            assert!(rec.fields[col].starts_with("m1.k2026a."));
        }
        // Columns not masked are stored as they came.
        assert_eq!(rec.fields[0], row[0]);
        assert_eq!(rec.fields[4], row[4]);
    }
    assert_eq!(unmasked(&spec, &records), table.rows);
    // Deterministic (DES-MASK-2): the same name masks the same way wherever it occurs.
    let r1 = decode(&spec, &bytes).unwrap();
    assert_eq!(fields(&records), fields(&r1));
}

#[test]
fn an_empty_masked_field_stays_empty_and_text_already_in_masked_form_is_masked_again() {
    let spec = text_spec(&["a", "b"], TextEncoding::Utf8, true);
    let k = keys();
    let premasked = k.mask("b", "secret").unwrap();
    let file = format!("a,b\r\n,{premasked}\r\n");
    let records = decode(&spec, file.as_bytes()).unwrap();
    assert_eq!(records[0].fields[0], "");
    assert_ne!(records[0].fields[1], premasked);
    assert_eq!(k.unmask("b", &records[0].fields[1]).unwrap(), premasked);
}

#[test]
fn cp932_nec_and_ibm_extension_characters_decode_to_their_unicode_characters() {
    // Hand-written Windows-31J bytes (not made by the encoder under test):
    // ① 87 40, ㈱ 87 8A, № 87 82 (NEC row 13); 髙 EE E0, ⅰ EE EF, 﨑 ED 95 (NEC-selected IBM
    // extensions); 髙 FB FC, ⅰ FA 40, 﨑 FA B1 (IBM extensions); ｱ B1 (half-width katakana).
    // A JIS X 0208-only Shift_JIS decoder has none of these codes.
    let mut file = b"name,company\r\n".to_vec();
    file.extend_from_slice(&[0x87, 0x40, 0xEE, 0xE0, 0xFB, 0xFC, b',']);
    file.extend_from_slice(&[0x87, 0x8A, 0xEE, 0xEF, 0xFA, 0x40, 0xED, 0x95, 0xFA, 0xB1]);
    file.extend_from_slice(&[0x87, 0x82, 0xB1, b'\r', b'\n']);
    let spec = text_spec(&["name", "company"], TextEncoding::Cp932, false);
    for chunk in [1, 2, 3, 4096] {
        let (records, _) = decode_chunked(&spec, &keys(), &file, chunk).unwrap();
        assert_eq!(
            fields(&records),
            strings(&[&["①髙髙", "㈱ⅰⅰ﨑﨑№ｱ"]]),
            "chunk {chunk}"
        );
    }
    // The same bytes declared UTF-8 are refused at the first of them.
    let utf8 = text_spec(&["name", "company"], TextEncoding::Utf8, false);
    assert_eq!(
        refusal(&utf8, &file),
        "551 DES-CSV-2: line 2, column 1: not valid utf-8"
    );
}

#[test]
fn an_empty_chunk_between_a_lead_byte_and_its_trail_byte_changes_nothing() {
    // い is 82 A2 in CP932; A2 alone is the half-width ｢. encoding_rs 0.8.35 forgets a pending
    // lead byte when called with empty input before the end, which would store ｢ for い.
    let spec = text_spec(&["a"], TextEncoding::Cp932, false);
    let k = keys();
    let mut dec = Decoder::new(&spec, &k);
    dec.feed(b"a\r\n\x82").unwrap();
    dec.feed(b"").unwrap();
    dec.feed(b"\xA2\r\n").unwrap();
    assert_eq!(dec.poll_record().unwrap().fields, ["い"]);
    // And a lead byte left at the end of the file is refused, not dropped.
    let mut dec = Decoder::new(&spec, &k);
    dec.feed(b"a\r\nx\x82").unwrap();
    dec.feed(b"").unwrap();
    assert_eq!(
        dec.finish().unwrap_err().reply().text,
        "551 DES-CSV-2: line 2, column 1: not valid cp932"
    );
}

#[test]
fn cp932_bytes_that_do_not_decode_refuse_the_file_and_no_replacement_character_is_stored() {
    let spec = text_spec(&["a", "b"], TextEncoding::Cp932, false);
    // 0xA0 is unassigned; 0x85 0x40 is an unassigned double-byte code; a lone lead byte at the
    // end of the file is truncated.
    for (file, want) in [
        (&b"a,b\r\nx,\xA0\r\n"[..], "line 2, column 2"),
        (&b"a,b\r\n\x85\x40,y\r\n"[..], "line 2, column 1"),
        (&b"a,b\r\nx,y\r\nz,\x82"[..], "line 3, column 2"),
    ] {
        assert_eq!(
            refusal(&spec, file),
            format!("551 DES-CSV-2: {want}: not valid cp932")
        );
    }
}

#[test]
fn utf8_overlong_forms_surrogates_and_truncated_sequences_are_refused() {
    let spec = text_spec(&["a", "b"], TextEncoding::Utf8, false);
    for bad_bytes in [
        &[0xC0, 0xAF][..],       // overlong '/'
        &[0xED, 0xA0, 0x80][..], // surrogate U+D800
        &[0xE3, 0x81][..],       // truncated あ at the end
    ] {
        let mut file = b"a,b\r\nx,".to_vec();
        file.extend_from_slice(bad_bytes);
        assert_eq!(
            refusal(&spec, &file),
            "551 DES-CSV-2: line 2, column 2: not valid utf-8"
        );
    }
}

#[test]
fn a_utf8_bom_is_skipped_once_and_a_cp932_file_with_one_is_refused() {
    let spec = text_spec(&["a", "b"], TextEncoding::Utf8, false);
    let with_bom = b"\xEF\xBB\xBFa,b\r\n1,2\r\n";
    assert_eq!(
        fields(&decode(&spec, with_bom).unwrap()),
        strings(&[&["1", "2"]])
    );
    // A second BOM is text (U+FEFF) and fails the header.
    let two = b"\xEF\xBB\xBF\xEF\xBB\xBFa,b\r\n1,2\r\n";
    assert_eq!(
        refusal(&spec, two),
        "551 DES-CSV-3: line 1, column 1: header field is not the column name"
    );
    // CP932 has no BOM: EF BB is no CP932 code.
    let cp = text_spec(&["a", "b"], TextEncoding::Cp932, false);
    assert_eq!(
        refusal(&cp, with_bom),
        "551 DES-CSV-2: line 1, column 1: not valid cp932"
    );
}

#[test]
fn crlf_and_lf_may_mix_the_last_line_end_is_optional_and_quoted_line_ends_are_data() {
    let spec = text_spec(&["a", "b"], TextEncoding::Utf8, false);
    let file = b"a,b\r\n\"x\r\ny\",\"say \"\"hi\"\", ok\"\n\"multi\nline\",\"\"\r\nlast,one";
    let records = decode(&spec, file).unwrap();
    assert_eq!(
        fields(&records),
        strings(&[
            &["x\r\ny", "say \"hi\", ok"],
            &["multi\nline", ""],
            &["last", "one"]
        ])
    );
    // Lines count the line ends inside quotes: the records begin on lines 2, 4 and 6.
    assert_eq!(
        records.iter().map(|r| r.line).collect::<Vec<_>>(),
        [2, 4, 6]
    );
}

#[test]
fn without_a_header_row_every_record_is_data() {
    let mut spec = text_spec(&["a", "b"], TextEncoding::Utf8, false);
    spec.header_row = false;
    let records = decode(&spec, b"a,b\r\n1,2\r\n").unwrap();
    assert_eq!(fields(&records), strings(&[&["a", "b"], &["1", "2"]]));
    assert_eq!(records[0].line, 1);
}

#[test]
fn values_are_stored_in_canonical_form() {
    let spec = DatasetSpec {
        encoding: TextEncoding::Utf8,
        header_row: true,
        columns: [
            ("i", ColumnType::Integer),
            ("d", ColumnType::Decimal),
            ("t", ColumnType::Date),
            ("ts", ColumnType::Datetime),
        ]
        .iter()
        .map(|(n, ty)| ColumnSpec {
            name: (*n).into(),
            ty: *ty,
            masked: false,
        })
        .collect(),
    };
    let file = "i,d,t,ts\n007,018.0,2026-10-01,2026-10-01T09:00:00+09:00\n-0,,,\n-010,-0.50,,\n";
    assert_eq!(
        fields(&decode(&spec, file.as_bytes()).unwrap()),
        strings(&[
            &["7", "018.0", "2026-10-01", "2026-10-01T09:00:00+09:00"],
            &["0", "", "", ""],
            &["-10", "-0.50", "", ""],
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// Refused files: one reply each (DES-FTP-6)

#[test]
fn every_syntax_fault_is_refused_with_its_line_and_column() {
    let spec = text_spec(&["a", "b"], TextEncoding::Utf8, false);
    for (file, want) in [
        (
            "a,b\r\nx,y\"z\r\n",
            "line 2, column 2: quote in an unquoted field",
        ),
        (
            "a,b\r\n\"x\"y,z\r\n",
            "line 2, column 1: text after a closing quote",
        ),
        (
            "a,b\r\nx,\"y\" \r\n",
            "line 2, column 2: text after a closing quote",
        ),
        (
            "a,b\r\nx,y\r\nu,\"v\r\nw\r\n",
            "line 3, column 2: quoted field not closed",
        ),
        (
            "a,b\r\nx\ry,z\r\n",
            "line 2, column 1: CR not followed by LF",
        ),
        ("a,b\r\nx,y\r", "line 2, column 2: CR not followed by LF"),
        ("a,b\r\n\r\nx,y\r\n", "line 2, column 1: empty line"),
        ("a,b\nx,y\n\n", "line 3, column 1: empty line"),
        ("\na,b\nx,y\n", "line 1, column 1: empty line"),
        (
            "a,b\r\nx,y\r\n\r",
            "line 3, column 1: CR not followed by LF",
        ),
        ("", "line 1, column 1: no data record"),
        ("a,b\r\n", "line 2, column 1: no data record"),
        ("a,b", "line 1, column 1: no data record"),
    ] {
        assert_eq!(
            refusal(&spec, file.as_bytes()),
            format!("551 DES-CSV-1: {want}"),
            "{file:?}"
        );
    }
}

#[test]
fn the_header_must_equal_the_column_names_exactly() {
    let spec = text_spec(&["需要家番号", "氏名"], TextEncoding::Utf8, false);
    assert!(decode(&spec, "需要家番号,氏名\n1,x\n".as_bytes()).is_ok());
    for (file, want) in [
        (
            "需要家番号,氏名 \n1,x\n",
            "line 1, column 2: header field is not the column name",
        ),
        (
            " 需要家番号,氏名\n1,x\n",
            "line 1, column 1: header field is not the column name",
        ),
        (
            "\"需要家番号\",氏\n1,x\n",
            "line 1, column 2: header field is not the column name",
        ),
        (
            "需要家番号\n1,x\n",
            "line 1, column 2: 1 fields, expected 2",
        ),
        (
            "需要家番号,氏名,\n1,x\n",
            "line 1, column 3: more than 2 fields",
        ),
    ] {
        assert_eq!(
            refusal(&spec, file.as_bytes()),
            format!("551 DES-CSV-3: {want}"),
            "{file:?}"
        );
    }
    let ascii = text_spec(&["Name"], TextEncoding::Utf8, false);
    assert_eq!(
        refusal(&ascii, b"name\nx\n"),
        "551 DES-CSV-3: line 1, column 1: header field is not the column name"
    );
}

#[test]
fn a_record_with_too_many_or_too_few_fields_is_refused() {
    let spec = text_spec(&["a", "b", "c"], TextEncoding::Utf8, false);
    assert_eq!(
        refusal(&spec, b"a,b,c\n1,2,3\n1,2,3,4\n"),
        "551 DES-CSV-4: line 3, column 4: more than 3 fields"
    );
    assert_eq!(
        refusal(&spec, b"a,b,c\n1,2,3\n1,2\n"),
        "551 DES-CSV-4: line 3, column 3: 2 fields, expected 3"
    );
    assert_eq!(
        refusal(&spec, b"a,b,c\n1,\"2\n\",3,\n"),
        "551 DES-CSV-4: line 3, column 4: more than 3 fields"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_refused_with_line_and_column_and_never_the_value() {
    let spec = DatasetSpec {
        encoding: TextEncoding::Utf8,
        header_row: true,
        columns: [
            ("s", ColumnType::String, true),
            ("i", ColumnType::Integer, false),
            ("d", ColumnType::Decimal, false),
            ("t", ColumnType::Date, false),
            ("ts", ColumnType::Datetime, false),
        ]
        .iter()
        .map(|(n, ty, masked)| ColumnSpec {
            name: (*n).into(),
            ty: *ty,
            masked: *masked,
        })
        .collect(),
    };
    let good = [
        "氏名",
        "12",
        "1.5",
        "2026-10-01",
        "2026-10-01T09:00:00+09:00",
    ];
    for (column, bad, what) in [
        (1, "秘密\u{7}値", "control character in text"),
        (2, "12a9", "not an integer"),
        (3, "1.5e3", "not a decimal"),
        (4, "2026-02-30", "not a date"),
        (5, "2026-10-01T09:00:00", "not a datetime"),
    ] {
        let mut row: Vec<&str> = good.to_vec();
        row[column - 1] = bad;
        let file = format!("s,i,d,t,ts\n{}\n{}\n", good.join(","), row.join(","));
        let err = decode(&spec, file.as_bytes()).unwrap_err();
        let reply = err.reply().text;
        assert_eq!(
            reply,
            format!("551 DES-CSV-4: line 3, column {column}: {what}")
        );
        assert!(!reply.contains(bad), "{reply}");
        assert!(!format!("{err:?}").contains(bad), "{err:?}");
    }
}

#[test]
fn the_first_failure_in_file_order_wins() {
    let spec = DatasetSpec {
        encoding: TextEncoding::Utf8,
        header_row: true,
        columns: vec![
            ColumnSpec {
                name: "d".into(),
                ty: ColumnType::Date,
                masked: false,
            },
            ColumnSpec {
                name: "s".into(),
                ty: ColumnType::String,
                masked: false,
            },
        ],
    };
    // A bad date on line 2 before a syntax fault and an undecodable byte on line 3.
    assert_eq!(
        refusal(&spec, b"d,s\nnope,x\n2026-01-01,a\"b\xFF\n"),
        "551 DES-CSV-4: line 2, column 1: not a date"
    );
    // An undecodable byte before a later bad value in the same record.
    assert_eq!(
        refusal(&spec, b"d,s\n2026-01-01,\xFF\n2026-13-01,x\n"),
        "551 DES-CSV-2: line 2, column 2: not valid utf-8"
    );
}

/// Wire size of a one-column record of `n` ASCII letters: the XML form
/// `<sgw:Record seq="…20 digits…"><sgw:F>…</sgw:F></sgw:Record>` is 67 bytes + n, longer than
/// the JSON form `["…"]` (4 + n) (DES-MSG-DATA-6).
const ONE_COLUMN_OVERHEAD: usize = 67;

#[test]
fn a_record_over_65536_wire_bytes_is_refused_552_and_one_at_the_limit_is_accepted() {
    let spec = text_spec(&["a"], TextEncoding::Utf8, false);
    let at_limit = "x".repeat(65_536 - ONE_COLUMN_OVERHEAD);
    let records = decode(&spec, format!("a\n{at_limit}\n").as_bytes()).unwrap();
    assert_eq!(records[0].wire_bytes, 65_536);
    let over = "x".repeat(65_536 - ONE_COLUMN_OVERHEAD + 1);
    let err = decode(&spec, format!("a\n1\n{over}\n").as_bytes()).unwrap_err();
    assert_eq!(
        err.reply().text,
        "552 DES-MSG-DATA-6: line 3: record over 65536 bytes"
    );
    assert_eq!(err.reply().code, 552);
}

#[test]
fn the_wire_size_is_taken_after_masking() {
    // 50 000 letters: 50 067 wire bytes in clear, about 66 800 once masked (base64 of
    // nonce, ciphertext and tag, DES-MASK-1).
    let value = "x".repeat(50_000);
    let file = format!("a\n{value}\n");
    let clear = text_spec(&["a"], TextEncoding::Utf8, false);
    assert!(decode(&clear, file.as_bytes()).is_ok());
    let masked = text_spec(&["a"], TextEncoding::Utf8, true);
    assert_eq!(
        refusal(&masked, file.as_bytes()),
        "552 DES-MSG-DATA-6: line 2: record over 65536 bytes"
    );
}

#[test]
fn a_huge_record_is_refused_while_it_streams_and_memory_stays_bounded() {
    let spec = text_spec(&["a", "b"], TextEncoding::Utf8, false);
    let k = keys();
    let mut dec = Decoder::new(&spec, &k);
    dec.feed(b"a,b\r\n1,2\r\n3,\"").unwrap();
    let chunk = [b'x'; 4096];
    let mut fed = 0;
    let err = loop {
        match dec.feed(&chunk) {
            Ok(()) => fed += chunk.len(),
            Err(e) => break e,
        }
        assert!(
            dec.buffer_capacity() < 4 * 65_536,
            "{}",
            dec.buffer_capacity()
        );
        assert!(fed < 10_000_000, "never refused");
    };
    assert_eq!(
        err.reply().text,
        "552 DES-MSG-DATA-6: line 3: record over 65536 bytes"
    );
    // Refused as soon as the decoded record passed 65 536 bytes.
    assert!(fed <= 65_536, "{fed}");
}

#[test]
fn a_file_over_max_file_bytes_is_refused_552_even_after_an_earlier_content_fault() {
    let spec = text_spec(&["a", "b"], TextEncoding::Utf8, false);
    let k = keys();
    let file = b"a,b\r\n1,2\r\n3,4\r\n";
    let n = file.len() as u64;
    // Exactly the limit is accepted.
    let mut dec = Decoder::new(&spec, &k).with_max_file_bytes(n);
    dec.feed(file).unwrap();
    assert!(dec.finish().is_ok());
    // One byte over is refused.
    let mut dec = Decoder::new(&spec, &k).with_max_file_bytes(n - 1);
    let err = dec.feed(file).unwrap_err();
    assert_eq!(
        err.reply().text,
        format!("552 DES-FTP-6: file over {} bytes", n - 1)
    );
    // A content fault found early gives way to the size found later (size is checked during
    // the transfer, content after it).
    let mut dec = Decoder::new(&spec, &k).with_max_file_bytes(20);
    let first = dec.feed(b"a,b\r\n1,\"2\"x\r\n").unwrap_err();
    assert_eq!(first.reply().code, 551);
    assert_eq!(dec.feed(b"3,4\r\n").unwrap_err().reply().code, 551);
    let late = dec.feed(b"5,6\r\n7,8\r\n").unwrap_err();
    assert_eq!(late.reply().text, "552 DES-FTP-6: file over 20 bytes");
    assert_eq!(dec.finish().unwrap_err(), late);
}

#[test]
fn each_refusal_maps_to_its_reply_code_and_anomaly_rule() {
    let content = IngestError::Syntax {
        line: 3,
        column: 2,
        fault: gateway::ingest::SyntaxFault::EmptyLine,
    };
    let cases = [
        (content, 551, "SC-ACQ-1"),
        (IngestError::RecordTooLarge { line: 9 }, 552, "SC-ACQ-1"),
        (IngestError::FileTooLarge { max: 100 }, 552, "SC-FTP-1"),
        (IngestError::Masking { line: 2, column: 1 }, 451, "SC-FTP-1"),
    ];
    for (err, code, rule) in cases {
        let reply = err.reply();
        assert_eq!(reply.code, code, "{err:?}");
        assert!(reply.text.starts_with(&format!("{code} ")), "{reply}");
        assert_eq!(format!("{code} {}", reply.reason()), reply.text);
        assert!(reply.reason().starts_with("DES-"), "{reply}");
        assert_eq!(reply.is_transient(), code < 500);
        let a = err.anomaly();
        assert_eq!(a.kind, AnomalyKind::Ingest);
        assert_eq!(a.rule, rule, "{err:?}");
        assert_eq!(a.detail, reply.text);
    }
    assert_eq!(
        IngestError::Masking { line: 2, column: 1 }.reply().text,
        "451 DES-FTP-6: local storage error"
    );
}

// ---------------------------------------------------------------------------------------------
// legacy-sim's bad inputs: every kind that concerns content gets its specific refusal

#[test]
fn every_legacy_sim_bad_content_kind_gets_its_specific_refusal() {
    let opts = BadOptions {
        dataset: Dataset::Billing,
        rows: 20,
        seed: 3,
        size: 300_000,
        ..BadOptions::default()
    };
    let spec = spec_of(Dataset::Billing, TextEncoding::Utf8);
    let k = keys();
    for kind in BadKind::ALL {
        let c = bad::content(kind, &opts);
        let result = |max: Option<u64>| {
            let mut dec = Decoder::new(&spec, &k);
            if let Some(m) = max {
                dec = dec.with_max_file_bytes(m);
            }
            let mut last = Ok(());
            for chunk in c.bytes.chunks(4096) {
                last = dec.feed(chunk);
            }
            last.and_then(|()| dec.finish().map(|f| f.summary))
        };
        match kind {
            BadKind::UnterminatedQuote => {
                // The last record's name opens a quote that never closes.
                let last_no = format!("\n{:010},", 1_000_000 + (c.rows as u64 - 1) * 7);
                let at = c
                    .bytes
                    .windows(last_no.len())
                    .position(|w| w == last_no.as_bytes());
                let line = 2 + c.bytes[..at.unwrap()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                assert_eq!(
                    result(None).unwrap_err().reply().text,
                    format!("551 DES-CSV-1: line {line}, column 2: quoted field not closed")
                );
            }
            BadKind::WrongHeader => assert_eq!(
                result(None).unwrap_err().reply().text,
                "551 DES-CSV-3: line 1, column 1: header field is not the column name"
            ),
            BadKind::WrongColumnCount => assert_eq!(
                result(None).unwrap_err().reply().text,
                "551 DES-CSV-4: line 2, column 8: more than 7 fields"
            ),
            BadKind::Cp932AsUtf8 => assert_eq!(
                result(None).unwrap_err().reply().text,
                "551 DES-CSV-2: line 1, column 1: not valid utf-8"
            ),
            BadKind::InvalidUtf8 => assert_eq!(
                result(None).unwrap_err().reply().text,
                "551 DES-CSV-2: line 2, column 2: not valid utf-8"
            ),
            BadKind::Empty => assert_eq!(
                result(None).unwrap_err().reply().text,
                "551 DES-CSV-1: line 1, column 1: no data record"
            ),
            BadKind::Oversized => {
                assert!(c.bytes.len() >= 300_000);
                assert_eq!(
                    result(Some(262_144)).unwrap_err().reply().text,
                    "552 DES-FTP-6: file over 262144 bytes"
                );
                // Under a larger limit the same content is a valid file.
                assert_eq!(result(Some(1 << 20)).unwrap().records, c.rows as u64);
            }
            // 40 000 backslashes: under 65 536 bytes as read, over it as the record's JSON
            // encoding (DES-MSG-DATA-6's wire size).
            BadKind::LongRecord => assert_eq!(
                result(None).unwrap_err().reply().text,
                "552 DES-MSG-DATA-6: line 2: record over 65536 bytes"
            ),
            BadKind::Duplicate => {
                // Content-identical files are each accepted (DES-FTP-5: no de-duplication).
                assert_eq!(result(None).unwrap().records, c.rows as u64);
                assert_eq!(result(None).unwrap().records, c.rows as u64);
            }
            // Transfer, name and login faults are the FTP server's, not the content's:
            // `truncated` is an aborted transfer (no 226 whatever its prefix holds), `path-
            // traversal` a name (553), `wrong-password` a login (530); their content is valid.
            BadKind::Truncated | BadKind::PathTraversal | BadKind::WrongPassword => {
                assert_eq!(result(None).unwrap().records, c.rows as u64, "{kind}");
            }
            other => panic!("bad kind {other} is not classified by this test"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Chunking: the same output whatever the chunk boundaries

/// A file with every hard case: a BOM, multibyte characters (3-byte UTF-8 / 2-byte CP932),
/// quoted CRLF, LF and CR, doubled quotes, commas, an empty quoted field, mixed line ends and no
/// final line end.
fn hard_rows() -> Vec<Vec<String>> {
    strings(&[
        &["①㈱髙ⅰ﨑", "a,b", "say \"x\""],
        &["x\r\ny", "", "ｱｲｳ"],
        &["\"", "\r", "\n"],
        &["末尾", "k", "v"],
    ])
}

fn write_rows(rows: &[Vec<String>], encoding: TextEncoding, bom: bool, eol: LineEnding) -> Vec<u8> {
    let header: Vec<String> = ["列1", "列2", "列3"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    write_csv(Some(&header), rows, &sim_options(encoding, bom, eol)).unwrap()
}

#[test]
fn a_file_fed_in_chunks_of_1_2_3_7_and_4096_bytes_gives_the_same_records() {
    for (encoding, bom) in [
        (TextEncoding::Utf8, true),
        (TextEncoding::Utf8, false),
        (TextEncoding::Cp932, false),
    ] {
        for eol in [LineEnding::Crlf, LineEnding::Lf] {
            let rows = hard_rows();
            let mut bytes = write_rows(&rows, encoding, bom, eol);
            // No line end after the last record.
            bytes.truncate(bytes.len() - if eol == LineEnding::Crlf { 2 } else { 1 });
            let spec = text_spec(&["列1", "列2", "列3"], encoding, true);
            let (whole, _) = decode_chunked(&spec, &keys(), &bytes, bytes.len()).unwrap();
            assert_eq!(unmasked(&spec, &whole), rows);
            for chunk in [1, 2, 3, 7, 4096] {
                let (split, _) = decode_chunked(&spec, &keys(), &bytes, chunk).unwrap();
                assert_eq!(split, whole, "{encoding:?} bom={bom} {eol:?} chunk {chunk}");
            }
        }
    }
}

/// Splits `bytes` at the given cut points (sorted, deduplicated, within range).
fn feed_at_cuts(
    spec: &DatasetSpec,
    bytes: &[u8],
    cuts: &[usize],
) -> Result<Vec<Record>, IngestError> {
    let k = keys();
    let mut dec = Decoder::new(spec, &k);
    let mut out = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut prev = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        dec.feed(&bytes[prev..p])?;
        while let Some(r) = dec.poll_record() {
            out.push(r);
        }
        prev = p;
    }
    let done = dec.finish()?;
    out.extend(done.records);
    Ok(out)
}

/// Fields as csv-core (the lenient reference parser) splits them, for valid files.
fn csv_core_fields(text: &[u8]) -> Vec<Vec<String>> {
    let mut rdr = csv_core::Reader::new();
    let mut records = Vec::new();
    let mut input = text;
    let mut out = vec![0u8; 1 << 16];
    let mut ends = vec![0usize; 64];
    loop {
        let (res, nin, nout, nend) = rdr.read_record(input, &mut out, &mut ends);
        input = &input[nin..];
        match res {
            csv_core::ReadRecordResult::Record => {
                let mut start = 0;
                let rec = ends[..nend]
                    .iter()
                    .map(|&e| {
                        let f = String::from_utf8(out[start..e].to_vec()).unwrap();
                        start = e;
                        f
                    })
                    .collect();
                let _ = nout;
                records.push(rec);
            }
            csv_core::ReadRecordResult::End => break,
            csv_core::ReadRecordResult::InputEmpty => {}
            other => panic!("{other:?}"),
        }
    }
    records
}

fn field_text() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'Z', '0', ' ', '\t', ',', '"', '\r', '\n', '①', '㈱', '髙', 'ⅰ', '﨑', 'ｱ', '水', '№',
    ]);
    prop::collection::vec(chars, 0..12).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_valid_file_split_anywhere_decodes_to_its_rows_as_csv_core_splits_them(
        rows in prop::collection::vec(prop::collection::vec(field_text(), 3), 1..8),
        cp932 in any::<bool>(),
        bom in any::<bool>(),
        lf in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let encoding = if cp932 { TextEncoding::Cp932 } else { TextEncoding::Utf8 };
        let eol = if lf { LineEnding::Lf } else { LineEnding::Crlf };
        let bytes = write_rows(&rows, encoding, bom && !cp932, eol);
        let spec = text_spec(&["列1", "列2", "列3"], encoding, false);
        let got = feed_at_cuts(&spec, &bytes, &cuts).unwrap();
        prop_assert_eq!(&fields(&got), &rows);
        // The reference parser agrees on the UTF-8 text (header included).
        let utf8 = write_rows(&rows, TextEncoding::Utf8, false, eol);
        let reference = csv_core_fields(&utf8);
        prop_assert_eq!(&reference[1..], &rows[..]);
        // And a record's line is 1 + the line ends before it.
        let mut line = 2u64;
        for (r, row) in got.iter().zip(&rows) {
            prop_assert_eq!(r.line, line);
            line += 1 + row.iter().map(|f| f.matches('\n').count() as u64).sum::<u64>();
        }
    }

    #[test]
    fn a_refusal_is_the_same_wherever_the_file_is_split(
        rows in prop::collection::vec(prop::collection::vec(field_text(), 3), 1..6),
        flip in any::<usize>(),
        byte in any::<u8>(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut bytes = write_rows(&rows, TextEncoding::Cp932, false, LineEnding::Crlf);
        let at = flip % bytes.len();
        bytes[at] = byte;
        let spec = text_spec(&["列1", "列2", "列3"], TextEncoding::Cp932, false);
        let whole = feed_at_cuts(&spec, &bytes, &[]);
        let split = feed_at_cuts(&spec, &bytes, &cuts);
        prop_assert_eq!(whole, split);
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

/// Streams `target` bytes of generated billing CSV (CP932, personal columns masked) through a
/// decoder in 4096-byte chunks — a header, then one generated batch of 500 rows over and over
/// (the file is never held whole) — and returns the file size, the largest
/// [`Decoder::buffer_capacity`] seen and the records.
fn stream_generated(target: usize) -> (u64, usize, u64) {
    let spec = spec_of(Dataset::Billing, TextEncoding::Cp932);
    let k = keys();
    let mut dec = Decoder::new(&spec, &k);
    let opts = sim_options(TextEncoding::Cp932, false, LineEnding::Crlf);
    let table = Table::generate(Dataset::Billing, 500, 9);
    let header = write_csv(table.header(HeaderStyle::Japanese).as_deref(), &[], &opts).unwrap();
    let batch = write_csv(None, &table.rows, &opts).unwrap();
    let mut fed = 0usize;
    let mut max_capacity = 0usize;
    let mut polled = 0u64;
    let mut first = true;
    while fed < target {
        let bytes = if first { &header } else { &batch };
        first = false;
        for chunk in bytes.chunks(4096) {
            dec.feed(chunk).unwrap();
            max_capacity = max_capacity.max(dec.buffer_capacity());
            while dec.poll_record().is_some() {
                polled += 1;
            }
        }
        fed += bytes.len();
    }
    let done = dec.finish().unwrap();
    polled += done.records.len() as u64;
    assert_eq!(polled, done.summary.records);
    (done.summary.bytes, max_capacity, polled)
}

#[test]
fn memory_stays_flat_whatever_the_file_size() {
    let (small_bytes, small_cap, _) = stream_generated(256 << 10);
    let (big_bytes, big_cap, records) = stream_generated(4 << 20);
    eprintln!(
        "256 KiB: {small_bytes} bytes, max buffer {small_cap} B; 4 MiB: {big_bytes} bytes, \
         {records} records, max buffer {big_cap} B"
    );
    assert!(big_bytes >= 4 << 20);
    // A constant number of chunk-sized buffers, however large the file.
    assert!(big_cap <= 64 * 1024, "{big_cap}");
    assert!(big_cap <= small_cap + 16 * 1024, "{small_cap} -> {big_cap}");
}

#[test]
#[ignore = "50 MB: run with --ignored (about a minute in debug builds)"]
fn memory_stays_flat_for_a_50_mb_file() {
    let (bytes, cap, records) = stream_generated(50 << 20);
    eprintln!("{bytes} bytes, {records} records, max buffer {cap} B");
    assert!(cap <= 64 * 1024, "{cap}");
}
