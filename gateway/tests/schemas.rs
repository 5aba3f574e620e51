//! The JSON Schemas in `docs/schemas/` against the codec (`Envelope::encode` / `decode`), and
//! `docs/protocol.md` against the code and the requirement catalogue.
//!
//! Covers DES-ENV-1..6, DES-MSG-*, DES-VER-2/3, DES-PROV-2 and the traceability of
//! requirements.md (IF-*, SEC-*, ST-*, SC-*, MON-*, SM-*).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use common::*;
use gateway::protocol::message::{DecodeError, Envelope, ResultCode};
use serde_json::{Value, json};

fn to_value(env: &Envelope) -> Value {
    serde_json::from_slice(&env.encode()).unwrap()
}

fn decode_value(v: &Value) -> Result<Envelope, DecodeError> {
    Envelope::decode(&serde_json::to_vec(v).unwrap())
}

fn schema_errors(validator: &jsonschema::Validator, v: &Value) -> Vec<String> {
    validator.iter_errors(v).map(|e| e.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Schemas are schemas, and accept what the codec writes.

#[test]
fn every_schema_file_is_a_valid_draft_2020_12_schema() {
    let mut n = 0;
    for entry in std::fs::read_dir(schema_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let schema = load_json(&path);
            assert_eq!(
                schema["$schema"],
                "https://json-schema.org/draft/2020-12/schema",
                "{}",
                path.display()
            );
            jsonschema::draft202012::meta::validate(&schema)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(
        n >= 2,
        "expected the envelope and profile schemas, found {n}"
    );
}

#[test]
fn every_message_type_written_by_the_codec_is_valid_against_the_envelope_schema() {
    let v = envelope_validator();
    for env in samples() {
        let value = to_value(&env);
        let errors = schema_errors(&v, &value);
        assert!(errors.is_empty(), "{value}\n{errors:#?}");
        // and the codec reads back what it wrote
        assert_eq!(Envelope::decode(&env.encode()).unwrap(), env);
    }
}

#[test]
fn the_envelope_schema_selects_the_body_schema_by_type() {
    let v = envelope_validator();
    let samples = samples();
    let by_type: HashMap<_, _> = samples.iter().map(|e| (e.message_type(), e)).collect();
    // Put each body under every other type whose correlation matches: the schema and the
    // decoder must both refuse unless the two types share a body shape.
    let mut refused = 0;
    for (ty_a, a) in &by_type {
        for (ty_b, b) in &by_type {
            if ty_a == ty_b || ty_a.is_reply() != ty_b.is_reply() {
                continue;
            }
            let mut value = to_value(a);
            value["body"] = to_value(b)["body"].clone();
            let schema_ok = v.is_valid(&value);
            let decoded = decode_value(&value);
            assert_eq!(
                schema_ok,
                decoded.is_ok(),
                "schema and decoder disagree on {} body under type {}: {decoded:?}",
                ty_b.as_str(),
                ty_a.as_str()
            );
            refused += usize::from(!schema_ok);
        }
    }
    assert!(refused > 50, "only {refused} swaps refused");
}

#[test]
fn the_ext_member_is_ignored_by_the_decoder_and_allowed_by_the_schema() {
    let v = envelope_validator();
    for env in samples() {
        let mut value = to_value(&env);
        value["ext"] = json!({"future": [1, "二"], "nested": {"x": null}});
        assert!(v.is_valid(&value));
        assert_eq!(decode_value(&value).unwrap(), env);
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations: the schema and the decoder agree on refusing them.

/// Paths (lists of object keys) to every member of `v`, outside `ext`.
fn member_paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            if prefix.is_empty() && k == "ext" {
                continue;
            }
            prefix.push(k.clone());
            out.push(prefix.clone());
            member_paths(child, prefix, out);
            prefix.pop();
        }
    }
}

fn parent_mut<'a>(v: &'a mut Value, path: &[String]) -> &'a mut serde_json::Map<String, Value> {
    let mut cur = v;
    for k in &path[..path.len() - 1] {
        cur = cur.get_mut(k).unwrap();
    }
    cur.as_object_mut().unwrap()
}

/// A value of a different JSON type than `v`.
fn other_type(v: &Value) -> Value {
    match v {
        Value::String(_) => json!(7),
        Value::Number(_) => json!("7"),
        Value::Bool(_) => json!("true"),
        Value::Array(_) => json!({}),
        Value::Object(_) => json!([]),
        Value::Null => json!(0),
    }
}

fn assert_agree(v: &jsonschema::Validator, value: &Value, what: &str) -> bool {
    let schema_ok = v.is_valid(value);
    let decoded = decode_value(value);
    assert_eq!(
        schema_ok,
        decoded.is_ok(),
        "{what}: schema {} but decoder {decoded:?}\n{value}",
        if schema_ok { "accepts" } else { "refuses" },
    );
    !schema_ok
}

#[test]
fn an_unknown_member_anywhere_but_ext_is_refused_by_schema_and_decoder_as_malformed() {
    let v = envelope_validator();
    for env in samples() {
        let base = to_value(&env);
        let mut objects = vec![vec![]];
        let mut paths = vec![];
        member_paths(&base, &mut vec![], &mut paths);
        objects.extend(paths.into_iter().filter(|p| {
            let mut cur = &base;
            for k in p {
                cur = &cur[k];
            }
            cur.is_object()
        }));
        for obj_path in objects {
            let mut value = base.clone();
            let mut cur = &mut value;
            for k in &obj_path {
                cur = cur.get_mut(k).unwrap();
            }
            cur.as_object_mut()
                .unwrap()
                .insert("unknownMember".into(), json!("x"));
            assert!(assert_agree(
                &v,
                &value,
                &format!("unknown member in {obj_path:?}")
            ));
            assert_eq!(
                decode_value(&value).unwrap_err().result_code(),
                ResultCode::Malformed
            );
        }
    }
}

#[test]
fn a_member_of_the_wrong_json_type_is_refused_by_schema_and_decoder() {
    let v = envelope_validator();
    let mut n = 0;
    for env in samples() {
        let base = to_value(&env);
        let mut paths = vec![];
        member_paths(&base, &mut vec![], &mut paths);
        for path in paths {
            let mut value = base.clone();
            let parent = parent_mut(&mut value, &path);
            let last = path.last().unwrap();
            let swapped = other_type(&parent[last]);
            parent.insert(last.clone(), swapped);
            if path == ["version"] {
                // "7" is not an integer: malformed, not an unsupported version.
                assert_eq!(
                    decode_value(&value).unwrap_err().result_code(),
                    ResultCode::Malformed
                );
            }
            assert!(assert_agree(&v, &value, &format!("wrong type at {path:?}")));
            n += 1;
        }
    }
    assert!(n > 200, "{n}");
}

#[test]
fn removing_any_member_is_judged_the_same_by_schema_and_decoder() {
    let v = envelope_validator();
    let (mut refused, mut accepted) = (0, 0);
    for env in samples() {
        let base = to_value(&env);
        let mut paths = vec![];
        member_paths(&base, &mut vec![], &mut paths);
        for path in paths {
            let mut value = base.clone();
            parent_mut(&mut value, &path).remove(path.last().unwrap());
            if assert_agree(&v, &value, &format!("removed {path:?}")) {
                refused += 1;
            } else {
                accepted += 1;
            }
        }
    }
    // Optional members (dataset of a resend request, reason, lastError, topic) may go.
    assert!(
        refused > 150 && accepted >= 4,
        "{refused} refused, {accepted} accepted"
    );
}

#[test]
fn null_for_an_optional_member_is_refused_by_schema_and_decoder() {
    let v = envelope_validator();
    let cases: Vec<(usize, &[&str])> = vec![
        (1, &["inReplyTo"]),
        (0, &["inReplyTo"]),
        (1, &["result"]),
        (5, &["result", "reason"]),
        (8, &["body", "request"]),
        (11, &["body", "dataset"]),
        (14, &["body", "lastError"]),
        (16, &["body", "topic"]),
    ];
    let samples = samples();
    for (i, path) in cases {
        let mut value = to_value(&samples[i]);
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        parent_mut(&mut value, &path).insert(path.last().unwrap().clone(), Value::Null);
        assert!(assert_agree(&v, &value, &format!("null at {path:?}")));
    }
}

#[test]
fn malformed_timestamps_are_refused_by_schema_and_decoder() {
    let v = envelope_validator();
    let samples = samples();
    let bad = [
        "2026-11-22T10:15:00",        // no offset
        "2026-11-22 10:15:00+09:00",  // space
        "2026-11-22t10:15:00+09:00",  // lower-case t
        "2026-11-22T10:15:00z",       // lower-case z
        "2026-11-22T10:15+09:00",     // no seconds
        "2026-11-22T10:15:00.+09:00", // empty fraction
        "2026-11-22T10:15:00.1234567890+09:00",
        "2026-11-22T10:15:00+0900",
        "2026-11-22T10:15:00+09",
        "26-11-22T10:15:00Z",
        "2026-11-22T25:15:00Z",
        "2026-13-22T10:15:00Z",
        "１２３４-11-22T10:15:00Z",
        "",
    ];
    for s in bad {
        let mut value = to_value(&samples[0]);
        value["timestamp"] = json!(s);
        assert!(assert_agree(&v, &value, s), "{s}");
        assert!(matches!(
            decode_value(&value),
            Err(DecodeError::Timestamp(_))
        ));
        // the same inside a body
        let mut value = to_value(&samples[12]);
        value["body"]["time"]["from"] = json!(s);
        assert!(assert_agree(&v, &value, s), "time.from {s}");
    }
    // What is valid: Z, fractions of 1..=9 digits, negative offsets.
    for s in [
        "2026-11-22T10:15:00Z",
        "2026-11-22T10:15:00.1-03:30",
        "2026-11-22T10:15:00.123456789+14:00",
    ] {
        let mut value = to_value(&samples[0]);
        value["timestamp"] = json!(s);
        assert!(!assert_agree(&v, &value, s), "{s}");
    }
}

#[test]
fn malformed_identifiers_are_refused_by_schema_and_decoder() {
    let v = envelope_validator();
    let samples = samples();
    let cases: Vec<(usize, &[&str], Value)> = vec![
        (0, &["gatewayId"], json!("GW-0001")),
        (0, &["gatewayId"], json!("")),
        (0, &["gatewayId"], json!("G".repeat(33))),
        (0, &["gatewayId"], json!("ＧＷ１")),
        (0, &["messageId"], json!("a b")),
        (0, &["messageId"], json!("a/b")),
        (0, &["messageId"], json!("a#")),
        (0, &["messageId"], json!("x".repeat(65))),
        (1, &["inReplyTo"], json!("+")),
        (9, &["body", "request"], json!("")),
        (8, &["body", "dataset"], json!("Billing")),
        (8, &["body", "dataset"], json!("1billing")),
        (8, &["body", "dataset"], json!("b".repeat(33))),
        (4, &["body", "datasets"], json!(["ok", "Not ok"])),
        (8, &["body", "range", "first"], json!(0)),
        (10, &["body", "range", "last"], json!(-1)),
        (11, &["body", "seq", "first"], json!(0)),
        (4, &["body", "commandSeq"], json!(0)),
        (6, &["body", "commandSeq"], json!(0)),
        (4, &["body", "intervalSec"], json!(0)),
        (4, &["body", "intervalSec"], json!(86_401)),
        (1, &["body", "version"], json!(4_294_967_296_u64)),
        (0, &["body", "versions"], json!([])),
        (0, &["body", "formats"], json!([])),
        (0, &["body", "formats"], json!(["csv"])),
        (1, &["result", "code"], json!("NOT_A_CODE")),
        (16, &["body", "kind"], json!("Security")),
        (14, &["body", "health"], json!("fine")),
        // DES-ID-5: exactly 32 lower-case hex digits.
        (
            0,
            &["body", "epoch"],
            json!("3F2A9C0E5B7D41E6A8C2F0B19D4E6A73"),
        ),
        (
            0,
            &["body", "epoch"],
            json!("3f2a9c0e5b7d41e6a8c2f0b19d4e6a7"),
        ),
        (
            0,
            &["body", "epoch"],
            json!("3f2a9c0e5b7d41e6a8c2f0b19d4e6a730"),
        ),
        (
            0,
            &["body", "epoch"],
            json!("3f2a9c0e5b7d41e6a8c2f0b19d4e6a7g"),
        ),
        (8, &["body", "epoch"], json!("")),
        (9, &["body", "epoch"], json!(42)),
    ];
    for (i, path, bad) in cases {
        let mut value = to_value(&samples[i]);
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        parent_mut(&mut value, &path).insert(path.last().unwrap().clone(), bad.clone());
        assert!(
            assert_agree(&v, &value, &format!("{path:?} = {bad}")),
            "{path:?} = {bad}"
        );
        assert_eq!(
            decode_value(&value).unwrap_err().result_code(),
            ResultCode::Malformed,
            "{path:?} = {bad}"
        );
    }
}

#[test]
fn correlation_members_on_the_wrong_kind_of_message_are_refused_by_schema_and_decoder() {
    let v = envelope_validator();
    for env in samples() {
        let mut value = to_value(&env);
        if env.message_type().is_reply() {
            value.as_object_mut().unwrap().remove("inReplyTo");
            assert!(assert_agree(&v, &value, "reply without inReplyTo"));
            let mut value = to_value(&env);
            value.as_object_mut().unwrap().remove("result");
            assert!(assert_agree(&v, &value, "reply without result"));
        } else {
            value["inReplyTo"] = json!("x:1");
            assert!(assert_agree(&v, &value, "request with inReplyTo"));
            let mut value = to_value(&env);
            value["result"] = json!({"code": "OK"});
            assert!(assert_agree(&v, &value, "request with result"));
        }
    }
}

#[test]
fn resend_requests_need_exactly_one_selector_in_schema_and_decoder() {
    let v = envelope_validator();
    let samples = samples();
    let mut both = to_value(&samples[11]);
    both["body"]["time"] = to_value(&samples[12])["body"]["time"].clone();
    assert!(assert_agree(&v, &both, "both selectors"));
    let mut neither = to_value(&samples[11]);
    neither["body"].as_object_mut().unwrap().remove("seq");
    assert!(assert_agree(&v, &neither, "no selector"));
}

#[test]
fn other_versions_and_unknown_types_get_their_own_result_codes() {
    let v = envelope_validator();
    let base = to_value(&samples()[0]);
    for version in [0_u64, 2, 99, u64::from(u32::MAX) + 1] {
        let mut value = base.clone();
        value["version"] = json!(version);
        value["newV2Member"] = json!(true); // a later version's fields do not matter
        assert!(assert_agree(&v, &value, "version"));
        assert_eq!(
            decode_value(&value).unwrap_err().result_code(),
            ResultCode::UnsupportedVersion
        );
    }
    for ty in ["connect.v2", "Data", "", "data.nack"] {
        let mut value = base.clone();
        value["type"] = json!(ty);
        assert!(assert_agree(&v, &value, ty));
        assert_eq!(
            decode_value(&value).unwrap_err().result_code(),
            ResultCode::UnknownType
        );
    }
}

#[test]
fn duplicate_member_names_and_non_objects_are_malformed() {
    let env = &samples()[10];
    let text = String::from_utf8(env.encode()).unwrap();
    // serde accepts arrays for structs; the decoder must not (DES-ENV-1)
    let array_range = text.replacen("{\"first\":1201,\"last\":1400}", "[1201,1400]", 1);
    assert_ne!(array_range, text);
    let mut value: Value = serde_json::from_str(&text).unwrap();
    let positional = json!([1, "a:1", "GW0001", "data.ack", "2026-11-22T10:15:00Z", "7:88",
        {"code": "OK"}, value["body"].take(), null]);
    let dup_top = text.replacen("{\"version\":1,", "{\"version\":1,\"version\":1,", 1);
    let dup_body = text.replacen("\"range\":{", "\"range\":{\"first\":9,", 1);
    let result_array = text.replacen("{\"code\":\"OK\"}", "[\"OK\"]", 1);
    for bad in [
        dup_top,
        dup_body,
        array_range,
        result_array,
        positional.to_string(),
        "[]".into(),
        "null".into(),
        "{".into(),
    ] {
        let err = Envelope::decode(bad.as_bytes()).unwrap_err();
        assert_eq!(err.result_code(), ResultCode::Malformed, "{bad}: {err}");
    }
}

#[test]
fn envelopes_over_256_kib_are_too_large_before_parsing() {
    let mut bytes = b"{\"version\":1,\"pad\":\"".to_vec();
    bytes.resize(256 * 1024 + 1, b'x');
    assert_eq!(
        Envelope::decode(&bytes).unwrap_err().result_code(),
        ResultCode::TooLarge
    );
}

#[test]
fn text_limits_count_bytes_in_the_decoder_and_characters_in_the_schema() {
    let v = envelope_validator();
    let samples = samples();
    // 400 kana = 1200 bytes: the decoder refuses (DES-ENV-6), the schema cannot see bytes.
    let mut value = to_value(&samples[2]);
    value["body"]["reason"] = json!("あ".repeat(400));
    assert!(v.is_valid(&value));
    assert!(decode_value(&value).is_err());
    // 1025 ASCII characters: both refuse.
    for (i, path) in [
        (2, vec!["body", "reason"]),
        (5, vec!["result", "reason"]),
        (14, vec!["body", "lastError"]),
        (16, vec!["body", "detail"]),
        (16, vec!["body", "topic"]),
        (0, vec!["body", "software", "vendor"]),
    ] {
        let mut value = to_value(&samples[i]);
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        parent_mut(&mut value, &path).insert(path.last().unwrap().clone(), json!("x".repeat(1025)));
        assert!(assert_agree(&v, &value, &format!("{path:?}")));
    }
}

#[test]
fn resend_results_archive_at_most_their_records_in_the_decoder() {
    let v = envelope_validator();
    let samples = samples();
    let mut value = to_value(&samples[13]);
    // archived == records is fine.
    value["body"]["archived"] = value["body"]["records"].clone();
    assert!(!assert_agree(&v, &value, "archived = records"));
    // archived > records: the schema cannot compare two members, the decoder refuses.
    value["body"]["archived"] = json!(351);
    assert!(v.is_valid(&value));
    assert_eq!(
        decode_value(&value).unwrap_err().result_code(),
        ResultCode::Malformed
    );
}

#[test]
fn monitor_status_lists_at_most_16_certificates_in_schema_and_decoder() {
    let v = envelope_validator();
    let samples = samples();
    let mut value = to_value(&samples[14]);
    let cert = value["body"]["certificates"][0].clone();
    value["body"]["certificates"] = json!(vec![cert.clone(); 16]);
    assert!(!assert_agree(&v, &value, "16 certificates"));
    value["body"]["certificates"] = json!(vec![cert; 17]);
    assert!(assert_agree(&v, &value, "17 certificates"));
    assert_eq!(
        decode_value(&value).unwrap_err().result_code(),
        ResultCode::Malformed
    );
}

// ---------------------------------------------------------------------------------------------
// The JSON data profile schema.

fn profile_example() -> Value {
    json!({
        "header": {
            "profileId": "sgw-profile-v1", "gatewayId": "GW0001", "sourceSystem": "ryokin-sys",
            "dataset": "billing",
            "columns": [
                {"name": "需要家番号", "type": "string", "masked": true},
                {"name": "使用水量", "type": "decimal", "unit": "m3", "masked": false}
            ],
            "range": {"first": 1201, "last": 1202},
            "createdAt": "2026-11-22T10:15:00+09:00"
        },
        "records": [["m1.k2026a.q83vE", "21.5"], ["m1.k2026a.Zp0cX", "18.0"]]
    })
}

#[test]
fn the_profile_schema_accepts_a_profile_and_refuses_its_mutations() {
    let v = profile_validator();
    let good = profile_example();
    assert!(v.is_valid(&good), "{:#?}", schema_errors(&v, &good));
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "unknown header member",
            Box::new(|p| p["header"]["extra"] = json!(1)),
        ),
        (
            "unknown top member",
            Box::new(|p| p["signature"] = json!("x")),
        ),
        (
            "wrong profileId",
            Box::new(|p| p["header"]["profileId"] = json!("sgw-profile-v2")),
        ),
        (
            "bad column type",
            Box::new(|p| p["header"]["columns"][0]["type"] = json!("money")),
        ),
        (
            "column without masked",
            Box::new(|p| {
                p["header"]["columns"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("masked");
            }),
        ),
        (
            "number in a record",
            Box::new(|p| p["records"][0][1] = json!(21.5)),
        ),
        (
            "no records",
            Box::new(|p| {
                p.as_object_mut().unwrap().remove("records");
            }),
        ),
        (
            "bad timestamp",
            Box::new(|p| p["header"]["createdAt"] = json!("2026/11/22")),
        ),
        (
            "bad gateway",
            Box::new(|p| p["header"]["gatewayId"] = json!("GW_1")),
        ),
        (
            "range from 0",
            Box::new(|p| p["header"]["range"]["first"] = json!(0)),
        ),
    ];
    for (what, m) in mutations {
        let mut p = good.clone();
        m(&mut p);
        assert!(!v.is_valid(&p), "{what} accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// docs/protocol.md against the code and the requirement catalogue.

fn protocol_md() -> String {
    std::fs::read_to_string(workspace_root().join("docs/protocol.md")).unwrap()
}

/// DES IDs in `text`, with `DES-X-1..4` expanded to 1, 2, 3, 4 and `DES-X-1/2` to 1 and 2.
fn des_ids(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("DES-") {
        let start = i + pos;
        let mut end = start + 4;
        while end < b.len()
            && (b[end].is_ascii_uppercase() || b[end].is_ascii_digit() || b[end] == b'-')
        {
            end += 1;
        }
        let mut id = &text[start..end];
        id = id.trim_end_matches('-');
        i = end.max(start + 4);
        let Some(dash) = id.rfind('-') else { continue };
        let (stem, num) = (&id[..dash], &id[dash + 1..]);
        let Ok(first) = num.parse::<u32>() else {
            continue;
        };
        out.insert(id.to_string());
        // ranges "..N" and alternatives "/N"
        let rest = &text[end..];
        if let Some(r) = rest.strip_prefix("..") {
            let last: String = r.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(last) = last.parse::<u32>() {
                out.extend((first..=last).map(|n| format!("{stem}-{n}")));
            }
        } else if let Some(r) = rest.strip_prefix('/') {
            let other: String = r.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(other) = other.parse::<u32>() {
                out.insert(format!("{stem}-{other}"));
            }
        }
    }
    out
}

/// DES IDs defined (in bold) by docs/protocol.md, each exactly once.
fn defined_des_ids() -> BTreeSet<String> {
    let doc = protocol_md();
    let mut defined = BTreeSet::new();
    for part in doc.split("**").skip(1).step_by(2) {
        if part.starts_with("DES-") && des_ids(part).len() == 1 {
            assert!(defined.insert(part.to_string()), "{part} is defined twice");
        }
    }
    defined
}

fn rs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_des_id_scanner_expands_ranges_and_alternatives() {
    let ids = des_ids("see DES-ID-1..3 and DES-MSG-CONN-1/2, DES-X-*, DES-ENV-6: x");
    let expected: BTreeSet<String> = [
        "DES-ID-1",
        "DES-ID-2",
        "DES-ID-3",
        "DES-MSG-CONN-1",
        "DES-MSG-CONN-2",
        "DES-ENV-6",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(ids, expected);
}

/// Names that start with `DES-` but end in something other than a number (`DES-MSG-DUP`,
/// `DES-PROF-*` → `DES-PROF`): each must be a family of defined rules (`DES-PROF` is, as
/// `DES-PROF-1` exists); anything else names a rule the document does not have.
fn des_words(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("DES-") {
        let start = i + pos;
        let mut end = start + 4;
        while end < b.len()
            && (b[end].is_ascii_uppercase() || b[end].is_ascii_digit() || b[end] == b'-')
        {
            end += 1;
        }
        i = end;
        let id = text[start..end].trim_end_matches('-');
        let last = id.rsplit('-').next().unwrap_or("");
        if id.len() > 4 && last.parse::<u32>().is_err() {
            out.insert(id.to_string());
        }
    }
    out
}

/// Asserts every DES ID cited in the `.rs` files under `dir` is defined in docs/protocol.md
/// (and every other `DES-…` name is a family of defined rules); returns the IDs cited.
fn assert_cited_des_ids_are_defined(dir: &Path, defined: &BTreeSet<String>) -> BTreeSet<String> {
    let mut files = vec![];
    rs_files(dir, &mut files);
    assert!(!files.is_empty(), "no sources under {}", dir.display());
    let mut cited = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for id in des_ids(&text) {
            assert!(
                defined.contains(&id),
                "{id} cited in {} is not defined",
                f.display()
            );
            cited.insert(id);
        }
        for word in des_words(&text) {
            let family = format!("{word}-");
            assert!(
                defined.iter().any(|d| d.starts_with(&family)),
                "{word} cited in {} is neither a defined rule nor a family of rules",
                f.display()
            );
        }
    }
    cited
}

#[test]
fn the_des_name_scanner_finds_families_and_unnumbered_names() {
    let words = des_words("DES-PROF-* and DES-MSG-DUP, DES-ENV-3, DES-MQTT: x");
    let expected: BTreeSet<String> = ["DES-PROF", "DES-MSG-DUP", "DES-MQTT"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(words, expected);
}

#[test]
fn every_des_id_cited_in_the_gateway_sources_is_defined_in_the_protocol_document() {
    let defined = defined_des_ids();
    assert!(defined.len() >= 60, "{} rules defined", defined.len());
    let cited = assert_cited_des_ids_are_defined(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &defined,
    );
    // The rules the brief lists as cited by the code today.
    for id in [
        "DES-ID-4",
        "DES-ENV-6",
        "DES-VER-3",
        "DES-MSG-RS-2",
        "DES-MQTT-7",
        "DES-SEAL-1",
        "DES-ENV-7",
        "DES-ENV-8",
        "DES-MSG-CONN-3",
        "DES-MSG-DATA-1",
        "DES-MSG-DATA-3",
    ] {
        assert!(cited.contains(id), "{id} is no longer cited in gateway/src");
    }
}

#[test]
fn every_des_id_cited_in_the_simulator_sources_is_defined_in_the_protocol_document() {
    let defined = defined_des_ids();
    for sim in ["platform-sim/src", "legacy-sim/src"] {
        let cited = assert_cited_des_ids_are_defined(&workspace_root().join(sim), &defined);
        assert!(!cited.is_empty(), "{sim} cites no DES ID");
    }
}

#[test]
fn every_des_id_mentioned_in_the_protocol_document_is_defined_there() {
    let defined = defined_des_ids();
    for id in des_ids(&protocol_md()) {
        assert!(defined.contains(&id), "{id} is mentioned but not defined");
    }
}

/// First column of the table rows of `text` that look like requirement IDs.
fn requirement_rows(text: &str) -> BTreeSet<String> {
    const PREFIXES: [&str; 6] = ["IF-", "SEC-", "ST-", "SC-", "MON-", "SM-"];
    text.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .map(str::trim)
        .filter(|c| PREFIXES.iter().any(|p| c.starts_with(p)))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_traceability_table_covers_exactly_the_requirements_of_the_catalogue() {
    // The catalogue lives in the repository (docs/requirements.md): nothing outside it is read.
    let req_path = workspace_root().join("docs/requirements.md");
    let catalogue = std::fs::read_to_string(&req_path)
        .unwrap_or_else(|e| panic!("{}: {e}", req_path.display()));
    let catalogue_ids = requirement_rows(&catalogue);
    assert!(catalogue_ids.len() >= 50, "{catalogue_ids:?}");
    let doc = protocol_md();
    let table = &doc[doc
        .find("## 17. Traceability")
        .expect("traceability section")..];
    let traced = requirement_rows(table);
    let unknown: Vec<_> = traced.difference(&catalogue_ids).collect();
    assert!(unknown.is_empty(), "not in requirements.md: {unknown:?}");
    let missing: Vec<_> = catalogue_ids.difference(&traced).collect();
    assert!(missing.is_empty(), "not traced: {missing:?}");
    // every row names at least one defined rule and some code or the issue that builds it
    let defined = defined_des_ids();
    for line in table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| requirement"))
    {
        let cols: Vec<&str> = line.split(" | ").collect();
        if cols.len() < 3 {
            continue;
        }
        let ids = des_ids(cols[1]);
        assert!(!ids.is_empty(), "{line}");
        assert!(ids.iter().all(|i| defined.contains(i)), "{line}");
        assert!(
            cols[2].contains(".rs") || cols[2].contains("runtime issue"),
            "{line}"
        );
    }
}

#[test]
fn the_example_gateway_toml_parses_and_equals_the_block_in_the_protocol_document() {
    let file =
        std::fs::read_to_string(workspace_root().join("docs/examples/gateway.toml")).unwrap();
    let doc = protocol_md();
    let begin = doc
        .find("<!-- example:gateway.toml:begin -->\n```toml\n")
        .unwrap();
    let block = &doc[begin..];
    let block = &block[block.find("```toml\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    assert_eq!(block, file);
    let parsed: toml::Table = toml::from_str(&file).unwrap();
    assert_eq!(parsed["gateway"]["id"].as_str(), Some("GW0001"));
    assert!(gateway::protocol::GatewayId::new(parsed["gateway"]["id"].as_str().unwrap()).is_ok());
    let datasets = parsed["datasets"].as_array().unwrap();
    for d in datasets {
        assert!(gateway::protocol::Dataset::new(d["name"].as_str().unwrap()).is_ok());
        for c in d["columns"].as_array().unwrap() {
            assert!(
                ["string", "integer", "decimal", "date", "datetime"]
                    .contains(&c["type"].as_str().unwrap())
            );
        }
    }
    let key = parsed["masking"]["active_key"].as_str().unwrap();
    assert!((1..=16).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric()));
}

#[test]
fn the_json_examples_in_the_protocol_document_are_valid() {
    let doc = protocol_md();
    let blocks: Vec<&str> = doc
        .split("```json\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()])
        .collect();
    // Every example is an envelope the codec decodes and the schema accepts (DES-ENV-1 and the
    // flows of §6), or a profile (DES-PROF-3, the one with a `header`).
    let (mut envelopes, mut profiles) = (0, 0);
    let (ev, pv) = (envelope_validator(), profile_validator());
    for block in blocks {
        let value: Value = serde_json::from_str(block).unwrap_or_else(|e| panic!("{e}: {block}"));
        if value.get("header").is_some() {
            assert!(pv.is_valid(&value), "{:#?}", schema_errors(&pv, &value));
            profiles += 1;
        } else {
            assert!(ev.is_valid(&value), "{:#?}", schema_errors(&ev, &value));
            decode_value(&value).unwrap_or_else(|e| panic!("{e}: {block}"));
            envelopes += 1;
        }
    }
    assert!(envelopes >= 2 && profiles == 1, "{envelopes} {profiles}");
}

// ---------------------------------------------------------------------------------------------
// Independent check with Python `jsonschema` (scripts/requirements.txt).

const PY_CHECK: &str = r#"
import json, sys, pathlib
from jsonschema import Draft202012Validator
schemas = sorted(pathlib.Path(sys.argv[1]).glob("*.schema.json"))
assert len(schemas) >= 2, schemas
for p in schemas:
    s = json.loads(p.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(s)
env = Draft202012Validator(json.loads((pathlib.Path(sys.argv[1]) / "envelope.schema.json").read_text(encoding="utf-8")))
good, bad = json.loads(pathlib.Path(sys.argv[2]).read_text(encoding="utf-8"))
for m in good:
    errs = [e.message for e in env.iter_errors(m)]
    assert not errs, (m, errs)
for m in bad:
    assert not env.is_valid(m), m
print("ok", len(schemas), len(good), len(bad))
"#;

#[test]
fn python_jsonschema_agrees_the_schemas_are_valid_and_judges_messages_like_the_rust_validator() {
    let good: Vec<Value> = samples().iter().map(to_value).collect();
    let mut bad = vec![];
    for g in &good {
        let mut b = g.clone();
        b["body"]["unknownMember"] = json!(1);
        bad.push(b);
        let mut b = g.clone();
        b["timestamp"] = json!("2026-11-22 10:15:00");
        bad.push(b);
    }
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.json");
    std::fs::write(&cases, serde_json::to_vec(&json!([good, bad])).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(PY_CHECK)
        .arg(schema_dir())
        .arg(&cases)
        .output()
        .expect("python3 must be installed (scripts/requirements.txt: jsonschema)");
    assert!(
        out.status.success(),
        "python check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok "));
}
