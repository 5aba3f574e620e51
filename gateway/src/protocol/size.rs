//! Size bounds of `data` messages (DES-MSG-DATA-6): the wire size of one record, the
//! per-record and per-message limits, and the size of a dataset's profile header.
//!
//! A record's *wire size* is the larger of its two encodings in a data profile: the JSON array
//! `["…","…"]` exactly as the JSON profile writes it (DES-PROF-3, `serde_json` escaping), and
//! the XML element `<sgw:Record seq="…"><sgw:F>…</sgw:F>…</sgw:Record>` exactly as the XML
//! profile writes it (DES-PROF-5), counted with a 20-digit `seq` (the widest `u64`). With
//!
//! - every record at most [`MAX_RECORD_BYTES`] (checked at ingest: a file with a larger record
//!   is refused whole),
//! - the records of one message summing to at most [`MAX_MESSAGE_RECORD_BYTES`] and numbering
//!   at most `max_records_per_message` (1000),
//! - the dataset's profile header ([`profile_header_bytes`]) at most
//!   [`MAX_PROFILE_HEADER_BYTES`] (checked at configuration),
//!
//! every sealed `data` envelope stays within `MAX_ENVELOPE_BYTES` (256 KiB) in both formats;
//! `gateway/tests/data_size.rs` seals the widest such messages to show it.

use chrono::{DateTime, FixedOffset};

use crate::profile::{DataProfile, ProfileHeader};

use super::ids::SeqRange;

/// Largest wire size of one record (DES-MSG-DATA-6); a file with a larger record is refused.
pub const MAX_RECORD_BYTES: u32 = 65_536;

/// Largest sum of record wire sizes in one `data` message (DES-MSG-DATA-6): 112 KiB.
pub const MAX_MESSAGE_RECORD_BYTES: u64 = 114_688;

/// Largest [`profile_header_bytes`] of a dataset (DES-MSG-DATA-6), checked at configuration.
pub const MAX_PROFILE_HEADER_BYTES: u64 = 16_384;

const XML_RECORD_OPEN: &str = "<sgw:Record seq=\"";
const XML_RECORD_OPEN_END: &str = "\">";
const XML_RECORD_CLOSE: &str = "</sgw:Record>";
const XML_FIELD_OPEN: &str = "<sgw:F>";
const XML_FIELD_CLOSE: &str = "</sgw:F>";
/// Digits of the widest `seq` (`u64::MAX` has 20).
const SEQ_DIGITS: u64 = 20;

/// Bytes of `s` as a JSON string literal, quotes included, as `serde_json` writes it: `"` and
/// `\` and the two-letter escapes (`\b \f \n \r \t`) take 2 bytes, other control characters
/// 6 (`\u00XX`), everything else its UTF-8 length.
pub fn json_string_bytes(s: &str) -> u64 {
    let escaped: u64 = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum();
    2 + escaped
}

/// Bytes of `s` as XML character data, as the XML profile writes it: `&` 5 (`&amp;`), `<` and
/// `>` 4, CR 5 (`&#xD;`), everything else its UTF-8 length.
pub fn xml_text_bytes(s: &str) -> u64 {
    s.bytes()
        .map(|b| match b {
            b'&' | b'\r' => 5,
            b'<' | b'>' => 4,
            _ => 1,
        })
        .sum()
}

/// Bytes of a record as a JSON array of strings (DES-PROF-3).
pub fn json_record_bytes<S: AsRef<str>>(fields: &[S]) -> u64 {
    let commas = fields.len().saturating_sub(1) as u64;
    2 + commas
        + fields
            .iter()
            .map(|f| json_string_bytes(f.as_ref()))
            .sum::<u64>()
}

/// Bytes of a record as an XML `sgw:Record` element with a 20-digit `seq` (DES-PROF-5).
pub fn xml_record_bytes<S: AsRef<str>>(fields: &[S]) -> u64 {
    let frame = (XML_RECORD_OPEN.len() + XML_RECORD_OPEN_END.len() + XML_RECORD_CLOSE.len()) as u64
        + SEQ_DIGITS;
    let per_field = (XML_FIELD_OPEN.len() + XML_FIELD_CLOSE.len()) as u64;
    frame
        + fields
            .iter()
            .map(|f| per_field + xml_text_bytes(f.as_ref()))
            .sum::<u64>()
}

/// The wire size of a record (DES-MSG-DATA-6): the larger of [`json_record_bytes`] and
/// [`xml_record_bytes`], saturated to `u32` (anything that large is refused anyway). The
/// adapter computes it for every masked record and hands the sizes to
/// [`super::gateway_side::GatewayCore::handle_ingest`].
pub fn record_wire_bytes<S: AsRef<str>>(fields: &[S]) -> u32 {
    let w = json_record_bytes(fields).max(xml_record_bytes(fields));
    u32::try_from(w).unwrap_or(u32::MAX)
}

/// The size of a dataset's profile header (DES-MSG-DATA-6): the largest of its JSON encoding
/// (the `header` object of the JSON profile), its XML encoding (the `sgw:Header` element of the
/// XML profile) and that XML element escaped as a JSON string (quotes included), each with the
/// widest range (20-digit bounds) and the longest `createdAt` (35 characters: nanoseconds and a
/// numeric offset); `header.range` and `header.created_at` are ignored. At most
/// [`MAX_PROFILE_HEADER_BYTES`] for a dataset to be configured.
pub fn profile_header_bytes(header: &ProfileHeader) -> u64 {
    let widest = SeqRange {
        first: u64::MAX,
        last: u64::MAX,
    };
    // Invariant: a fixed, valid RFC 3339 timestamp.
    let longest: DateTime<FixedOffset> =
        DateTime::parse_from_rfc3339("2026-11-22T10:15:00.123456789+09:00")
            .expect("valid timestamp");
    let p = DataProfile {
        header: ProfileHeader {
            range: widest,
            created_at: longest,
            ..header.clone()
        },
        records: Vec::new(),
    };
    // `{"header":` + the header object + `,"records":[]}`.
    let json = p.to_json().len() - JSON_FRAME.len();
    let xml = p.to_xml();
    let start = xml.find(XML_HEADER_OPEN).unwrap_or(0);
    let end = xml
        .find(XML_HEADER_CLOSE)
        .map_or(xml.len(), |e| e + XML_HEADER_CLOSE.len());
    let xml_header = &xml[start..end];
    let as_json = json_string_bytes(xml_header);
    (json as u64).max(xml_header.len() as u64).max(as_json)
}

/// What the JSON profile adds around the header object when it holds no records.
const JSON_FRAME: &str = "{\"header\":,\"records\":[]}";
const XML_HEADER_OPEN: &str = "<sgw:Header ";
const XML_HEADER_CLOSE: &str = "</sgw:Header>";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Column, ColumnType};
    use crate::protocol::ids::{Dataset, GatewayId};

    fn header(columns: usize, first: u64, n: u64) -> ProfileHeader {
        ProfileHeader {
            gateway_id: GatewayId::new("GW0001").unwrap(),
            source_system: "ryokin-sys".into(),
            dataset: Dataset::new("billing").unwrap(),
            columns: (0..columns)
                .map(|i| Column {
                    name: format!("列{i}\"<&>"),
                    ty: ColumnType::String,
                    unit: Some("m3".into()),
                    masked: i % 2 == 0,
                })
                .collect(),
            range: SeqRange {
                first,
                last: first + (n - 1),
            },
            created_at: DateTime::parse_from_rfc3339("2026-11-22T10:15:00+09:00").unwrap(),
        }
    }

    /// The encodings of one record as `profile.rs` writes them: the JSON array (the profile's
    /// `records` member with one record, minus `[` and `]`) and the `sgw:Record` element.
    fn encoded(fields: &[String], seq: u64) -> (usize, usize) {
        let p = DataProfile {
            header: header(fields.len(), seq, 1),
            records: vec![fields.to_vec()],
        };
        let json = String::from_utf8(p.to_json()).unwrap();
        let at = json.find("\"records\":[").unwrap() + "\"records\":[".len();
        let json_rec = &json[at..json.len() - 2];
        let xml = p.to_xml();
        let s = xml.find("<sgw:Record ").unwrap();
        let e = xml.find("</sgw:Record>").unwrap() + "</sgw:Record>".len();
        (json_rec.len(), xml[s..e].len())
    }

    fn cases() -> Vec<(&'static str, Vec<String>)> {
        let controls: String = (0u8..0x20).map(char::from).collect();
        vec![
            (
                "ascii",
                vec!["m1.k1.abc".into(), "21.5".into(), String::new()],
            ),
            (
                "japanese",
                vec!["需要家番号".into(), "東京都千代田区①㈱髙".into()],
            ),
            (
                "escapes",
                vec![
                    "<>&\"'".repeat(7),
                    "\\\"\"".into(),
                    "a\r\nb\tc".into(),
                    controls,
                    "]]>".into(),
                ],
            ),
            ("empty record", vec![]),
        ]
    }

    #[test]
    fn the_two_encodings_are_counted_exactly_as_the_profile_writes_them() {
        for (name, fields) in cases() {
            // A 20-digit seq is the widest; a shorter one is written shorter.
            let (json, xml20) = encoded(&fields, u64::MAX);
            assert_eq!(json_record_bytes(&fields), json as u64, "{name}: json");
            assert_eq!(xml_record_bytes(&fields), xml20 as u64, "{name}: xml");
            let (_, xml1) = encoded(&fields, 1);
            assert_eq!(xml_record_bytes(&fields), xml1 as u64 + 19, "{name}: seq 1");
            assert_eq!(
                u64::from(record_wire_bytes(&fields)),
                (json as u64).max(xml20 as u64),
                "{name}: max"
            );
        }
    }

    #[test]
    fn either_encoding_can_be_the_wider_one() {
        // Control characters: 6 bytes in JSON, 1 in XML.
        let json_wide = vec!["\u{1}".repeat(100)];
        assert!(json_record_bytes(&json_wide) > xml_record_bytes(&json_wide));
        assert_eq!(
            u64::from(record_wire_bytes(&json_wide)),
            json_record_bytes(&json_wide)
        );
        // `&`: 5 bytes in XML, 1 in JSON.
        let xml_wide = vec!["&".repeat(100)];
        assert!(xml_record_bytes(&xml_wide) > json_record_bytes(&xml_wide));
        assert_eq!(
            u64::from(record_wire_bytes(&xml_wide)),
            xml_record_bytes(&xml_wide)
        );
    }

    #[test]
    fn a_profile_is_at_most_its_frame_header_and_records_plus_a_separator_each() {
        for (name, fields) in cases() {
            for n in [1u64, 2, 7] {
                let h = header(fields.len(), 1_000_000_000_000_000_000, n);
                let records = vec![fields.clone(); n as usize];
                let p = DataProfile {
                    header: h.clone(),
                    records,
                };
                // The frame around header and records: JSON `{"header":` `,"records":[` `]}`
                // (24 bytes); XML the root element's tags with the namespace declaration and
                // the `sgw:Body` tags (97 bytes).
                let frame = 97;
                let bound = frame
                    + profile_header_bytes(&h)
                    + n * (u64::from(record_wire_bytes(&fields)) + 1);
                assert!(p.to_json().len() as u64 <= bound, "{name} json n={n}");
                assert!(p.to_xml().len() as u64 <= bound, "{name} xml n={n}");
            }
        }
    }

    #[test]
    fn the_header_size_is_the_largest_of_its_three_encodings_with_the_widest_range_and_time() {
        let h = header(3, 1, 1);
        let empty = DataProfile {
            header: h.clone(),
            records: vec![],
        };
        let json = String::from_utf8(empty.to_json()).unwrap();
        let json_header: serde_json::Value =
            serde_json::from_str::<serde_json::Value>(&json).unwrap()["header"].clone();
        let json_len = serde_json::to_string(&json_header).unwrap().len() as u64;
        let xml = empty.to_xml();
        let xml_header = &xml[xml.find("<sgw:Header ").unwrap()
            ..xml.find("</sgw:Header>").unwrap() + "</sgw:Header>".len()];
        let escaped = serde_json::to_string(xml_header).unwrap().len() as u64;
        // These column names (`"`, `<`, `&`) make the escaped XML the largest.
        assert!(escaped > xml_header.len() as u64 && escaped > json_len);
        // Range bounds 1 → 20 digits (twice), createdAt +10 (".123456789").
        assert_eq!(profile_header_bytes(&h), escaped + 2 * 19 + 10);
        // More columns, larger header.
        assert!(profile_header_bytes(&header(4, 1, 1)) > profile_header_bytes(&h));
    }
}
