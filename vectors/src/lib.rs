//! Test vectors of the SGW as data files in the Wycheproof JSON shape, each group traced to
//! requirement IDs (SEC-*, SM-*), and the serde types to read them.
//!
//! Files live in `vectors/data/*.json` (see `vectors/README.md` for how each was made and
//! checked) and follow `vectors/schema/vectors.schema.json`. [`data_dir`] gives their path,
//! [`list`] their names, [`load`] a parsed file. A vector's `result` says what a conforming
//! implementation must do: `valid` (accept and produce the expected output), `invalid`
//! (refuse), `acceptable` (either, as long as it does not crash). In files whose cases name
//! an `error` ([`TestCase::error`], e.g. the XML files `xml-c14n.json`, `xml-dsig.json`,
//! `xml-enc.json`), every invalid case names one and no other case does.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a vector file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VectorError {
    /// The file could not be read.
    #[error("reading {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The file is not a vector file of this shape.
    #[error("parsing {0}: {1}")]
    Parse(PathBuf, serde_json::Error),
}

/// Expected outcome of one test case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    /// Must be accepted, with the expected output.
    Valid,
    /// Must be refused.
    Invalid,
    /// May be accepted or refused.
    Acceptable,
}

/// A flag's definition in the file's `notes` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// Bug class, e.g. `SIGNATURE_MALLEABILITY`, `MISSING_CHECK`, `KNOWN_VECTOR`.
    pub bug_type: String,
    /// What a failure of a case with this flag means.
    pub description: String,
}

/// One vector file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VectorFile {
    /// What is tested, e.g. `JWS-RS256`.
    pub algorithm: String,
    /// How the file was produced (script name and version).
    #[serde(default)]
    pub generator_version: String,
    /// Number of test cases over all groups.
    pub number_of_tests: usize,
    /// Free-text description lines.
    #[serde(default)]
    pub header: Vec<String>,
    /// Flag name → definition.
    pub notes: BTreeMap<String, Note>,
    /// The groups.
    pub test_groups: Vec<TestGroup>,
}

/// A group of cases sharing key material.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestGroup {
    /// Kind of test (what the harness must do), e.g. `JwsVerify`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Requirement IDs this group covers.
    pub requirements: Vec<String>,
    /// The cases.
    pub tests: Vec<TestCase>,
    /// Key material and other group parameters (PEM keys, certificates, `now`, …).
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

/// One test case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestCase {
    /// Unique within the file.
    pub tc_id: u32,
    /// What the case does.
    pub comment: String,
    /// Flags, each defined in the file's `notes`.
    pub flags: Vec<String>,
    /// Expected outcome.
    pub result: Expected,
    /// Inputs and expected outputs (token, payload, …).
    #[serde(flatten)]
    pub inputs: Map<String, Value>,
}

fn get_str<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

impl TestGroup {
    /// A string parameter of the group.
    pub fn param(&self, key: &str) -> Option<&str> {
        get_str(&self.params, key)
    }
}

impl TestCase {
    /// A string input of the case.
    pub fn input(&self, key: &str) -> Option<&str> {
        get_str(&self.inputs, key)
    }

    /// The error an implementation must report for an `invalid` case, where the file names one
    /// (the XML files `xml-*.json` do: the gateway's `XmlError` variant). Only invalid cases
    /// carry it.
    pub fn error(&self) -> Option<&str> {
        self.input("error")
    }
}

impl VectorFile {
    /// Iterate over (group, case).
    pub fn cases(&self) -> impl Iterator<Item = (&TestGroup, &TestCase)> {
        self.test_groups
            .iter()
            .flat_map(|g| g.tests.iter().map(move |t| (g, t)))
    }
}

/// Directory holding the vector files.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Path of the JSON Schema of vector files.
pub fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/vectors.schema.json")
}

/// File names of all vector files, sorted.
pub fn list() -> Result<Vec<String>, VectorError> {
    let dir = data_dir();
    let rd = std::fs::read_dir(&dir).map_err(|e| VectorError::Io(dir.clone(), e))?;
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| VectorError::Io(dir.clone(), e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            v.push(name);
        }
    }
    v.sort();
    Ok(v)
}

/// Read and parse one vector file by name (e.g. `jws_rs256.json`).
pub fn load(name: &str) -> Result<VectorFile, VectorError> {
    let path = data_dir().join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| VectorError::Io(path.clone(), e))?;
    serde_json::from_str(&text).map_err(|e| VectorError::Parse(path, e))
}
