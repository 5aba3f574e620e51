//! The data profile as a type (DES-PROF-1..3, DES-PROF-5): the records of one `data` message
//! with their header, and its two plain encodings — the JSON of `docs/schemas/profile.schema.json`
//! ([`DataProfile::to_json`] / [`DataProfile::from_json`]) and the `urn:sgw:profile:v1` XML layout
//! ([`DataProfile::to_xml`] / [`DataProfile::from_xml`]). Protection (DES-PROF-4 sign-then-encrypt
//! for JSON, DES-PROF-6 encrypt-then-sign for XML) is done by [`crate::security`] over these
//! plain bytes.
//!
//! Decoding is strict (DES-PROF-2/3): unknown or repeated members, a wrong `profileId`, invalid
//! IDs, timestamps or ranges, a record count other than `range.last - range.first + 1`, a
//! record whose field count differs from the columns, XML record `seq` attributes out of order
//! — each is refused with a [`ProfileError`] naming the rule. Realises IF-PSEND-2, SC-ACQ-1.

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde::{Deserialize, Serialize};

use crate::protocol::ids::{Dataset, GatewayId, SeqRange};
use crate::protocol::message::is_timestamp_shape;
use crate::security::xml::ns::SGW;
use crate::security::xml::tree::{self, Element, Node, escape_attr, escape_text};

/// The only profile identifier of protocol v1 (DES-PROF-2).
pub const PROFILE_ID: &str = "sgw-profile-v1";
/// Most columns in a profile (DES-PROF-2).
pub const MAX_COLUMNS: usize = 256;

/// Why a profile was refused (all map to `data.ack` MALFORMED or SECURITY_FAILED upstream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// DES-PROF-3: the JSON is not a profile object (syntax, unknown/duplicate/missing member).
    #[error("DES-PROF-3: invalid profile JSON: {0}")]
    Json(String),
    /// DES-PROF-5: the XML does not follow the `urn:sgw:profile:v1` layout.
    #[error("DES-PROF-5: invalid profile XML: {0}")]
    Xml(String),
    /// DES-PROF-2: `profileId` is not `sgw-profile-v1`.
    #[error("DES-PROF-2: profileId {0:?} is not sgw-profile-v1")]
    ProfileId(String),
    /// DES-PROF-2: `sourceSystem` must match `^[A-Za-z0-9._-]{{1,64}}$`.
    #[error("DES-PROF-2: sourceSystem {0:?} is invalid")]
    SourceSystem(String),
    /// DES-PROF-2: 1..=256 columns, names of 1..=128 characters, units of 1..=32.
    #[error("DES-PROF-2: invalid columns: {0}")]
    Columns(String),
    /// DES-ID-4: the range must satisfy `1 <= first <= last`.
    #[error("DES-ID-4: invalid range {first}..={last}")]
    Range {
        /// First.
        first: u64,
        /// Last.
        last: u64,
    },
    /// DES-ENV-2: `createdAt` is not an ISO 8601 timestamp with offset.
    #[error("DES-ENV-2: createdAt {0:?} is not a timestamp with offset")]
    CreatedAt(String),
    /// DES-PROF-3: the number of records differs from the range length.
    #[error("DES-PROF-3: {records} records for a range of {expected}")]
    RecordCount {
        /// Records present.
        records: u64,
        /// `range.last - range.first + 1`.
        expected: u64,
    },
    /// DES-PROF-3: a record's field count differs from the column count.
    #[error("DES-PROF-3: record {index} has {fields} fields, expected {columns}")]
    FieldCount {
        /// Index of the record (0-based).
        index: usize,
        /// Fields present.
        fields: usize,
        /// Columns declared.
        columns: usize,
    },
    /// DES-PROF-5: an XML record's `seq` is not the next seq of the range.
    #[error("DES-PROF-5: record {index} has seq {found:?}, expected {expected}")]
    RecordSeq {
        /// Index of the record (0-based).
        index: usize,
        /// The attribute as written.
        found: Option<String>,
        /// The seq it must carry.
        expected: u64,
    },
}

/// A column's value type (DES-PROF-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Free text.
    String,
    /// Integer, canonical decimal text.
    Integer,
    /// Decimal with `.`.
    Decimal,
    /// `YYYY-MM-DD`.
    Date,
    /// DES-ENV-2 timestamp.
    Datetime,
}

impl ColumnType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Integer => "integer",
            ColumnType::Decimal => "decimal",
            ColumnType::Date => "date",
            ColumnType::Datetime => "datetime",
        }
    }

    /// Parses the wire spelling.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "string" => ColumnType::String,
            "integer" => ColumnType::Integer,
            "decimal" => ColumnType::Decimal,
            "date" => ColumnType::Date,
            "datetime" => ColumnType::Datetime,
            _ => return None,
        })
    }
}

/// One column of the profile header (DES-PROF-2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// The CSV header text (1..=128 characters).
    pub name: String,
    /// Value type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Unit, e.g. `m3`, `JPY`, `mm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Whether the values are masked (DES-MASK-1).
    pub masked: bool,
}

/// The profile header (DES-PROF-2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileHeader {
    /// The gateway (equals the envelope's).
    pub gateway_id: GatewayId,
    /// The legacy system's name.
    pub source_system: String,
    /// The dataset (equals `data.dataset`).
    pub dataset: Dataset,
    /// Columns in CSV order.
    pub columns: Vec<Column>,
    /// Record seqs (equals `data.range`).
    pub range: SeqRange,
    /// When the profile was built.
    pub created_at: DateTime<FixedOffset>,
}

/// A data profile: header and records (DES-PROF-2/3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataProfile {
    /// The header.
    pub header: ProfileHeader,
    /// One array of field texts per record, in seq order.
    pub records: Vec<Vec<String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonHeader {
    profile_id: String,
    gateway_id: GatewayId,
    source_system: String,
    dataset: Dataset,
    columns: Vec<Column>,
    range: SeqRange,
    created_at: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonProfile {
    header: JsonHeader,
    records: Vec<Vec<String>>,
}

fn format_time(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn parse_time(s: &str) -> Result<DateTime<FixedOffset>, ProfileError> {
    if !is_timestamp_shape(s) {
        return Err(ProfileError::CreatedAt(s.to_owned()));
    }
    DateTime::parse_from_rfc3339(s).map_err(|_| ProfileError::CreatedAt(s.to_owned()))
}

fn valid_source_system(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl DataProfile {
    /// Checks every rule the schema cannot state (DES-PROF-2/3).
    pub fn validate(&self) -> Result<(), ProfileError> {
        let h = &self.header;
        if !valid_source_system(&h.source_system) {
            return Err(ProfileError::SourceSystem(h.source_system.clone()));
        }
        if h.columns.is_empty() || h.columns.len() > MAX_COLUMNS {
            return Err(ProfileError::Columns(format!(
                "{} columns, expected 1..=256",
                h.columns.len()
            )));
        }
        for c in &h.columns {
            let n = c.name.chars().count();
            if !(1..=128).contains(&n) {
                return Err(ProfileError::Columns(format!("name of {n} characters")));
            }
            if let Some(u) = &c.unit
                && !(1..=32).contains(&u.chars().count())
            {
                return Err(ProfileError::Columns(format!("unit {u:?}")));
            }
        }
        let r = h.range;
        if SeqRange::new(r.first, r.last).is_none() {
            return Err(ProfileError::Range {
                first: r.first,
                last: r.last,
            });
        }
        let expected = r.len();
        if self.records.len() as u64 != expected {
            return Err(ProfileError::RecordCount {
                records: self.records.len() as u64,
                expected,
            });
        }
        for (index, rec) in self.records.iter().enumerate() {
            if rec.len() != h.columns.len() {
                return Err(ProfileError::FieldCount {
                    index,
                    fields: rec.len(),
                    columns: h.columns.len(),
                });
            }
        }
        Ok(())
    }

    /// The JSON encoding (DES-PROF-3, `docs/schemas/profile.schema.json`).
    pub fn to_json(&self) -> Vec<u8> {
        let h = &self.header;
        let j = JsonProfile {
            header: JsonHeader {
                profile_id: PROFILE_ID.to_owned(),
                gateway_id: h.gateway_id.clone(),
                source_system: h.source_system.clone(),
                dataset: h.dataset.clone(),
                columns: h.columns.clone(),
                range: h.range,
                created_at: format_time(&h.created_at),
            },
            records: self.records.clone(),
        };
        // Invariant: plain structs of strings, integers and booleans always serialize.
        serde_json::to_vec(&j).expect("profile JSON serializes")
    }

    /// Decodes and validates the JSON encoding (DES-PROF-2/3).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProfileError> {
        let j: JsonProfile =
            serde_json::from_slice(bytes).map_err(|e| ProfileError::Json(e.to_string()))?;
        if j.header.profile_id != PROFILE_ID {
            return Err(ProfileError::ProfileId(j.header.profile_id));
        }
        let p = DataProfile {
            header: ProfileHeader {
                created_at: parse_time(&j.header.created_at)?,
                gateway_id: j.header.gateway_id,
                source_system: j.header.source_system,
                dataset: j.header.dataset,
                columns: j.header.columns,
                range: j.header.range,
            },
            records: j.records,
        };
        p.validate()?;
        Ok(p)
    }

    /// The plain XML encoding (DES-PROF-5), without XML declaration, ready for
    /// [`crate::security::xml::protect_profile`].
    pub fn to_xml(&self) -> String {
        let h = &self.header;
        let mut s = String::with_capacity(256 + self.records.len() * 64);
        s.push_str("<sgw:DataProfile xmlns:sgw=\"urn:sgw:profile:v1\"><sgw:Header Id=\"header\">");
        let elem = |s: &mut String, name: &str, text: &str| {
            s.push_str("<sgw:");
            s.push_str(name);
            s.push('>');
            escape_text(text, s);
            s.push_str("</sgw:");
            s.push_str(name);
            s.push('>');
        };
        elem(&mut s, "ProfileId", PROFILE_ID);
        elem(&mut s, "GatewayId", h.gateway_id.as_str());
        elem(&mut s, "SourceSystem", &h.source_system);
        elem(&mut s, "Dataset", h.dataset.as_str());
        s.push_str("<sgw:Columns>");
        for c in &h.columns {
            s.push_str("<sgw:Column name=\"");
            escape_attr(&c.name, &mut s);
            s.push_str("\" type=\"");
            s.push_str(c.ty.as_str());
            s.push('"');
            if let Some(u) = &c.unit {
                s.push_str(" unit=\"");
                escape_attr(u, &mut s);
                s.push('"');
            }
            s.push_str(if c.masked {
                " masked=\"true\"/>"
            } else {
                " masked=\"false\"/>"
            });
        }
        s.push_str("</sgw:Columns>");
        s.push_str(&format!(
            "<sgw:Range first=\"{}\" last=\"{}\"/>",
            h.range.first, h.range.last
        ));
        elem(&mut s, "CreatedAt", &format_time(&h.created_at));
        s.push_str("</sgw:Header><sgw:Body Id=\"body\">");
        for (i, rec) in self.records.iter().enumerate() {
            s.push_str(&format!(
                "<sgw:Record seq=\"{}\">",
                h.range.first.saturating_add(i as u64)
            ));
            for f in rec {
                elem(&mut s, "F", f);
            }
            s.push_str("</sgw:Record>");
        }
        s.push_str("</sgw:Body></sgw:DataProfile>");
        s
    }

    /// Decodes and validates the plain XML encoding (DES-PROF-5), e.g. the output of
    /// [`crate::security::xml::open_profile`].
    pub fn from_xml(xml: &str) -> Result<Self, ProfileError> {
        let doc = tree::parse(xml).map_err(|e| ProfileError::Xml(e.to_string()))?;
        let root = &doc.root;
        if !root.is(SGW, "DataProfile") || !root.attrs.is_empty() {
            return Err(xml_err("root must be sgw:DataProfile without attributes"));
        }
        no_text(root)?;
        let kids: Vec<&Element> = root.child_elements().collect();
        let [header, body] = kids.as_slice() else {
            return Err(xml_err("sgw:DataProfile must hold Header and Body"));
        };
        only_attrs(header, "Header", &["Id"])?;
        if !header.is(SGW, "Header") || header.attr("Id") != Some("header") {
            return Err(xml_err("first child must be sgw:Header Id=\"header\""));
        }
        only_attrs(body, "Body", &["Id"])?;
        if !body.is(SGW, "Body") || body.attr("Id") != Some("body") {
            return Err(xml_err("second child must be sgw:Body Id=\"body\""));
        }
        no_text(header)?;
        let hk: Vec<&Element> = header.child_elements().collect();
        let [pid, gw, src, ds, cols, range, created] = hk.as_slice() else {
            return Err(xml_err(
                "sgw:Header must hold ProfileId, GatewayId, SourceSystem, Dataset, Columns, Range, CreatedAt",
            ));
        };
        let pid = leaf(pid, "ProfileId")?;
        if pid != PROFILE_ID {
            return Err(ProfileError::ProfileId(pid));
        }
        let gateway_id =
            GatewayId::new(leaf(gw, "GatewayId")?).map_err(|e| ProfileError::Xml(e.to_string()))?;
        let source_system = leaf(src, "SourceSystem")?;
        let dataset =
            Dataset::new(leaf(ds, "Dataset")?).map_err(|e| ProfileError::Xml(e.to_string()))?;
        if !cols.is(SGW, "Columns") || !cols.attrs.is_empty() {
            return Err(xml_err("expected sgw:Columns"));
        }
        no_text(cols)?;
        let mut columns = Vec::new();
        for c in cols.child_elements() {
            if !c.is(SGW, "Column") || !c.children.is_empty() {
                return Err(xml_err("sgw:Columns holds empty sgw:Column elements only"));
            }
            only_attrs(c, "Column", &["name", "type", "unit", "masked"])?;
            let name = c
                .attr("name")
                .ok_or_else(|| xml_err("sgw:Column without name"))?;
            let ty = c
                .attr("type")
                .and_then(ColumnType::from_wire)
                .ok_or_else(|| xml_err("sgw:Column type missing or unknown"))?;
            let masked = match c.attr("masked") {
                Some("true") => true,
                Some("false") => false,
                _ => return Err(xml_err("sgw:Column masked must be true or false")),
            };
            columns.push(Column {
                name: name.to_owned(),
                ty,
                unit: c.attr("unit").map(str::to_owned),
                masked,
            });
        }
        if !range.is(SGW, "Range") || !range.children.is_empty() {
            return Err(xml_err("expected empty sgw:Range"));
        }
        only_attrs(range, "Range", &["first", "last"])?;
        let num = |n: &str| -> Result<u64, ProfileError> {
            let v = range
                .attr(n)
                .ok_or_else(|| xml_err("sgw:Range needs first and last"))?;
            canonical_u64(v).ok_or_else(|| xml_err("sgw:Range bound is not a canonical integer"))
        };
        let (first, last) = (num("first")?, num("last")?);
        let created_at = parse_time(&leaf(created, "CreatedAt")?)?;
        no_text(body)?;
        let mut records = Vec::new();
        for (index, r) in body.child_elements().enumerate() {
            if !r.is(SGW, "Record") {
                return Err(xml_err("sgw:Body holds sgw:Record elements only"));
            }
            only_attrs(r, "Record", &["seq"])?;
            let expected = first.saturating_add(index as u64);
            let seq = r.attr("seq");
            if seq.and_then(canonical_u64) != Some(expected) {
                return Err(ProfileError::RecordSeq {
                    index,
                    found: seq.map(str::to_owned),
                    expected,
                });
            }
            no_text(r)?;
            let mut fields = Vec::new();
            for f in r.child_elements() {
                fields.push(leaf(f, "F")?);
            }
            records.push(fields);
        }
        let p = DataProfile {
            header: ProfileHeader {
                gateway_id,
                source_system,
                dataset,
                columns,
                range: SeqRange { first, last },
                created_at,
            },
            records,
        };
        p.validate()?;
        Ok(p)
    }
}

fn xml_err(msg: &str) -> ProfileError {
    ProfileError::Xml(msg.to_owned())
}

/// Only whitespace text directly inside `e`.
fn no_text(e: &Element) -> Result<(), ProfileError> {
    if e.only_whitespace_text() {
        Ok(())
    } else {
        Err(xml_err(&format!("text directly inside sgw:{}", e.local)))
    }
}

/// Every attribute of `e` is unprefixed and in `allowed`, none repeated.
fn only_attrs(e: &Element, what: &str, allowed: &[&str]) -> Result<(), ProfileError> {
    let mut seen = Vec::new();
    for a in &e.attrs {
        if a.ns.is_some() || !allowed.contains(&a.local.as_str()) || seen.contains(&&a.local) {
            return Err(ProfileError::Xml(format!(
                "unexpected attribute {} on sgw:{what}",
                a.local
            )));
        }
        seen.push(&a.local);
    }
    Ok(())
}

/// The text of a leaf element `sgw:{name}` (no attributes, no child elements).
fn leaf(e: &Element, name: &str) -> Result<String, ProfileError> {
    if !e.is(SGW, name) || !e.attrs.is_empty() {
        return Err(ProfileError::Xml(format!("expected sgw:{name}")));
    }
    if e.children.iter().any(|n| matches!(n, Node::Element(_))) {
        return Err(ProfileError::Xml(format!("sgw:{name} holds elements")));
    }
    Ok(e.text())
}

/// A decimal integer without sign or leading zeros.
fn canonical_u64(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DataProfile {
        DataProfile {
            header: ProfileHeader {
                gateway_id: GatewayId::new("GW0001").unwrap(),
                source_system: "ryokin-sys".into(),
                dataset: Dataset::new("billing").unwrap(),
                columns: vec![
                    Column {
                        name: "需要家番号".into(),
                        ty: ColumnType::String,
                        unit: None,
                        masked: true,
                    },
                    Column {
                        name: "使用水量".into(),
                        ty: ColumnType::Decimal,
                        unit: Some("m3".into()),
                        masked: false,
                    },
                ],
                range: SeqRange {
                    first: 1201,
                    last: 1202,
                },
                created_at: DateTime::parse_from_rfc3339("2026-11-22T10:15:00+09:00").unwrap(),
            },
            records: vec![
                vec!["m1.k1.abc".into(), "21.5".into()],
                vec!["<&\"'>]]>".into(), "".into()],
            ],
        }
    }

    #[test]
    fn json_round_trips_and_matches_the_schema() {
        let p = sample();
        let bytes = p.to_json();
        assert_eq!(DataProfile::from_json(&bytes).unwrap(), p);
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/schemas/profile.schema.json")).unwrap();
        let v = jsonschema::validator_for(&schema).unwrap();
        let inst: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(v.is_valid(&inst), "{inst}");
        // The schema itself refuses what the decoder refuses, e.g. an unknown member.
        let mut bad = inst.clone();
        bad["header"]["extra"] = serde_json::json!(1);
        assert!(!v.is_valid(&bad));
        assert!(DataProfile::from_json(&serde_json::to_vec(&bad).unwrap()).is_err());
    }

    #[test]
    fn json_decoding_refuses_each_broken_rule_with_its_own_error() {
        let good: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        let check = |f: &dyn Fn(&mut serde_json::Value), want: &dyn Fn(&ProfileError) -> bool| {
            let mut v = good.clone();
            f(&mut v);
            let e = DataProfile::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
            assert!(want(&e), "{e:?}");
        };
        check(
            &|v| v["header"]["profileId"] = "sgw-profile-v2".into(),
            &|e| matches!(e, ProfileError::ProfileId(_)),
        );
        check(&|v| v["header"]["sourceSystem"] = "a b".into(), &|e| {
            matches!(e, ProfileError::SourceSystem(_))
        });
        check(&|v| v["header"]["range"]["last"] = 1203.into(), &|e| {
            matches!(e, ProfileError::RecordCount { .. })
        });
        check(&|v| v["header"]["range"]["first"] = 1300.into(), &|e| {
            matches!(e, ProfileError::Range { .. })
        });
        check(&|v| v["records"][1] = serde_json::json!(["x"]), &|e| {
            matches!(e, ProfileError::FieldCount { index: 1, .. })
        });
        check(
            &|v| v["header"]["createdAt"] = "2026-11-22 10:15:00".into(),
            &|e| matches!(e, ProfileError::CreatedAt(_)),
        );
        check(&|v| v["header"]["columns"] = serde_json::json!([]), &|e| {
            matches!(e, ProfileError::Columns(_))
        });
        check(&|v| v["header"]["gatewayId"] = "GW-1".into(), &|e| {
            matches!(e, ProfileError::Json(_))
        });
        let dup = br#"{"header":{},"header":{},"records":[]}"#;
        assert!(matches!(
            DataProfile::from_json(dup),
            Err(ProfileError::Json(_))
        ));
    }

    #[test]
    fn xml_round_trips_with_escaping_and_has_the_documented_layout() {
        let p = sample();
        let x = p.to_xml();
        assert!(x.starts_with(
            "<sgw:DataProfile xmlns:sgw=\"urn:sgw:profile:v1\"><sgw:Header Id=\"header\"><sgw:ProfileId>sgw-profile-v1</sgw:ProfileId>"
        ));
        assert!(x.contains(
            "<sgw:Column name=\"使用水量\" type=\"decimal\" unit=\"m3\" masked=\"false\"/>"
        ));
        assert!(x.contains("<sgw:Record seq=\"1202\"><sgw:F>&lt;&amp;\"'&gt;]]&gt;</sgw:F><sgw:F></sgw:F></sgw:Record>"));
        assert_eq!(DataProfile::from_xml(&x).unwrap(), p);
    }

    #[test]
    fn xml_decoding_refuses_layout_deviations() {
        let x = sample().to_xml();
        let cases = [
            (x.replace("seq=\"1202\"", "seq=\"1203\""), "seq"),
            (x.replace("seq=\"1202\"", "seq=\"01202\""), "seq"),
            (x.replace("Id=\"body\"", "Id=\"b\""), "body"),
            (x.replace("sgw-profile-v1<", "sgw-profile-v2<"), "profileId"),
            (x.replace("masked=\"true\"", "masked=\"yes\""), "masked"),
            (x.replace("last=\"1202\"", "last=\"1203\""), "count"),
            (
                x.replace("<sgw:F>21.5</sgw:F>", "<sgw:F>21.5</sgw:F><sgw:F>1</sgw:F>"),
                "fields",
            ),
            (x.replace("<sgw:Columns>", "<sgw:Columns>x"), "text"),
            (
                x.replace("<sgw:Range ", "<sgw:Range extra=\"1\" "),
                "attribute",
            ),
            (format!("<!DOCTYPE x>{x}"), "dtd"),
        ];
        for (doc, what) in cases {
            assert!(DataProfile::from_xml(&doc).is_err(), "{what}: {doc}");
        }
    }

    #[test]
    fn a_profile_protected_as_xml_opens_to_the_same_profile() {
        use crate::security::xml::{XmlCipher, open_profile, protect_profile};
        let (key, cert) = crate::security::test_util::self_signed("t");
        let p = sample();
        let sealed =
            protect_profile(&p.to_xml(), &key, &cert, &cert, XmlCipher::Aes128Cbc).unwrap();
        assert!(!sealed.contains("21.5"));
        let opened = open_profile(&sealed, &key, &cert).unwrap();
        assert_eq!(DataProfile::from_xml(&opened).unwrap(), p);
    }
}
