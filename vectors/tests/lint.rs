//! Lint of every vector file, the XML ones (`xml-*.json`) included: JSON Schema shape, unique
//! tcIds, accurate numberOfTests, every flag defined in notes, every requirement ID present in
//! the requirement catalogue, and — in files that name errors — an `error` on exactly the
//! invalid cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The requirement catalogue of the repository (`docs/requirements.md`).
fn requirements_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/requirements.md")
}

fn requirement_ids() -> BTreeSet<String> {
    let text = std::fs::read_to_string(requirements_path()).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .map(|s| s.trim().to_string())
        .filter(|s| {
            s.contains('-')
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
        })
        .collect()
}

#[test]
fn the_requirement_catalogue_is_found_and_parsed() {
    let ids = requirement_ids();
    assert!(
        ids.contains("SEC-JSON-SIG-1") && ids.contains("SM-CERTEXP"),
        "{ids:?}"
    );
}

#[test]
fn there_are_vector_files() {
    assert!(vectors::list().unwrap().len() >= 7);
}

#[test]
fn the_xml_vector_files_are_linted_and_name_an_error_on_every_invalid_case() {
    let names = vectors::list().unwrap();
    for xml in ["xml-c14n.json", "xml-dsig.json", "xml-enc.json"] {
        assert!(names.iter().any(|n| n == xml), "{xml} is not listed");
        let file = vectors::load(xml).unwrap();
        let invalid: Vec<_> = file
            .cases()
            .filter(|(_, t)| t.result == vectors::Expected::Invalid)
            .collect();
        assert!(!invalid.is_empty(), "{xml} has no invalid case");
        for (_, t) in invalid {
            assert!(
                t.error().is_some(),
                "{xml}: tcId {} names no error",
                t.tc_id
            );
        }
    }
}

/// Every problem of one vector file's text.
fn lint(
    name: &str,
    text: &str,
    validator: &jsonschema::Validator,
    ids: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let raw: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![format!("{name}: not JSON: {e}")],
    };
    for e in validator.iter_errors(&raw) {
        problems.push(format!("{name}: schema: {e} at {}", e.instance_path()));
    }
    let file: vectors::VectorFile = match serde_json::from_value(raw) {
        Ok(f) => f,
        Err(e) => {
            problems.push(format!("{name}: {e}"));
            return problems;
        }
    };
    let mut seen = BTreeSet::new();
    let mut count = 0;
    // A file that names errors names one on every invalid case and on no other case.
    let names_errors = file.cases().any(|(_, t)| t.inputs.contains_key("error"));
    for (g, t) in file.cases() {
        count += 1;
        if !seen.insert(t.tc_id) {
            problems.push(format!("{name}: duplicate tcId {}", t.tc_id));
        }
        for f in &t.flags {
            if !file.notes.contains_key(f) {
                problems.push(format!("{name}: tcId {} flag {f} not in notes", t.tc_id));
            }
        }
        if names_errors {
            let invalid = t.result == vectors::Expected::Invalid;
            match (invalid, t.error()) {
                (true, None) => problems.push(format!(
                    "{name}: tcId {} is invalid but names no error",
                    t.tc_id
                )),
                (false, _) if t.inputs.contains_key("error") => problems.push(format!(
                    "{name}: tcId {} is not invalid but has an error member",
                    t.tc_id
                )),
                _ => {}
            }
        }
        for r in &g.requirements {
            if !ids.contains(r) {
                problems.push(format!("{name}: requirement {r} not in the catalogue"));
            }
        }
    }
    if count != file.number_of_tests {
        problems.push(format!(
            "{name}: numberOfTests {} but {count} cases",
            file.number_of_tests
        ));
    }
    problems
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vectors::schema_path()).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn every_vector_file_passes_the_lint() {
    let (v, ids) = (validator(), requirement_ids());
    let mut problems = Vec::new();
    for name in vectors::list().unwrap() {
        let text = std::fs::read_to_string(vectors::data_dir().join(&name)).unwrap();
        problems.extend(lint(&name, &text, &v, &ids));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_lint_catches_each_kind_of_broken_file() {
    let (v, ids) = (validator(), requirement_ids());
    let good = serde_json::json!({"algorithm":"X","numberOfTests":2,"notes":{"F":{"bugType":"B","description":"d"}},
        "testGroups":[{"type":"T","requirements":["SEC-MASK-1"],"tests":[
            {"tcId":1,"comment":"","flags":["F"],"result":"valid"},
            {"tcId":2,"comment":"","flags":[],"result":"invalid"}]}]});
    assert!(lint("good", &good.to_string(), &v, &ids).is_empty());
    let mut with_error = good.clone();
    with_error["testGroups"][0]["tests"][1]["error"] = "Decryption".into();
    assert!(lint("good", &with_error.to_string(), &v, &ids).is_empty());
    let mut bad = Vec::new();
    let mut dup = good.clone();
    dup["testGroups"][0]["tests"][1]["tcId"] = 1.into();
    bad.push(("duplicate tcId", dup));
    let mut count = good.clone();
    count["numberOfTests"] = 3.into();
    bad.push(("numberOfTests", count));
    let mut flag = good.clone();
    flag["testGroups"][0]["tests"][1]["flags"] = serde_json::json!(["Undefined"]);
    bad.push(("not in notes", flag));
    let mut req = good.clone();
    req["testGroups"][0]["requirements"] = serde_json::json!(["SEC-NOPE-1"]);
    bad.push(("not in the catalogue", req));
    let mut shape = good.clone();
    shape["testGroups"][0]["tests"][0]["result"] = "maybe".into();
    bad.push(("schema", shape));
    let mut null_error = good.clone();
    null_error["testGroups"][0]["tests"][1]["error"] = Value::Null;
    bad.push(("schema", null_error));
    let mut missing_error = good.clone();
    missing_error["testGroups"][0]["tests"][0]["error"] = "Decryption".into();
    bad.push(("is not invalid but has an error", missing_error.clone()));
    let mut no_error = good.clone();
    no_error["testGroups"][0]["tests"][0]["result"] = "invalid".into();
    no_error["testGroups"][0]["tests"][1]["error"] = "Decryption".into();
    bad.push(("is invalid but names no error", no_error));
    for (what, doc) in bad {
        let p = lint("bad", &doc.to_string(), &v, &ids);
        assert!(p.iter().any(|m| m.contains(what)), "{what}: {p:?}");
    }
}
