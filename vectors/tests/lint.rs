//! Lint of every vector file: JSON Schema shape, unique tcIds, accurate numberOfTests, every
//! flag defined in notes, every requirement ID present in the requirement catalogue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Find `shared/spec/requirements.md` beside the checkout (or any ancestor), or via
/// `SGW_REQUIREMENTS`.
fn requirements_path() -> PathBuf {
    if let Ok(p) = std::env::var("SGW_REQUIREMENTS") {
        return PathBuf::from(p);
    }
    let mut dir: Option<&Path> = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let cand = d.join("shared/spec/requirements.md");
        if cand.exists() {
            return cand;
        }
        dir = d.parent();
    }
    panic!("shared/spec/requirements.md not found beside the checkout; set SGW_REQUIREMENTS");
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
fn every_vector_file_passes_the_lint() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vectors::schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let ids = requirement_ids();
    let mut problems = Vec::new();
    for name in vectors::list().unwrap() {
        let text = std::fs::read_to_string(vectors::data_dir().join(&name)).unwrap();
        let raw: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{name}: not JSON: {e}"));
                continue;
            }
        };
        for e in validator.iter_errors(&raw) {
            problems.push(format!("{name}: schema: {e} at {}", e.instance_path()));
        }
        let file = match vectors::load(&name) {
            Ok(f) => f,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        let mut seen = BTreeSet::new();
        let mut count = 0;
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
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_lint_catches_a_broken_file() {
    // The checks above must be able to fail: a file with a duplicate tcId, a wrong count, an
    // undefined flag and an unknown requirement breaks the schema or the checks.
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vectors::schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let bad = serde_json::json!({"algorithm":"X","numberOfTests":0,"notes":{},"testGroups":[
        {"type":"T","requirements":["nope"],"tests":[{"tcId":1,"comment":"","flags":["Undefined"],"result":"maybe"}]}]});
    assert!(validator.iter_errors(&bad).count() >= 3);
    assert!(!requirement_ids().contains("SEC-NOPE-1"));
}
