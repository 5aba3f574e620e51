//! The golden files of `vectors/golden/` — what a vendor checks an implementation against
//! without running ours — checked against the reference (DES-ENV-*, DES-MSG-*, DES-SEAL-*,
//! DES-PROF-*, DES-CERT-3/4, DES-MASK-*, DES-FILE-*, DES-EVAC-*; `docs/protocol.md` §17).
//!
//! - Our code accepts every golden file: each envelope decodes and re-encodes to the same
//!   bytes; each sealed message and profile opens with the golden keys to its plaintext, and
//!   the one signed by the revoked gateway is refused; the masked CSV is what our masking
//!   makes and unmasks to the plain CSV; the archive decrypts, verifies and matches its index
//!   line; the PKI validates.
//! - Each transcript replays through the real cores (`golden_support::replay`): the files
//!   cannot drift from the code.
//! - The independent Python checker `scripts/crosscheck/golden.py` (jsonschema, jwcrypto,
//!   cryptography, python-xmlsec, zipfile) accepts the set.
//! - Each check is shown able to fail on a damaged copy.
//!
//! Regenerate (after `python3 scripts/vectors/gen_golden.py`, see `vectors/golden/README.md`):
//! `cargo test -p gateway --test golden -- --ignored regenerate_golden_files`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod golden_support;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use gateway::profile::{DataProfile, ProfileHeader};
use gateway::protocol::message::{Body, Envelope, MessageType};
use gateway::protocol::{GatewayId, SeqRange};
use gateway::security::{DataSecurity, SecurityError, ZipLimits, file};
use golden_support::*;
use serde_json::{Value, json};

// ------------------------------------------------------------------------------ helpers

/// The message types in the order of DES-MSG-1.
fn all_types() -> &'static [MessageType] {
    MessageType::ALL
}

fn direction(t: MessageType) -> &'static str {
    match t.direction() {
        gateway::protocol::message::Direction::Up => "up",
        gateway::protocol::message::Direction::Down => "down",
    }
}

/// A copy of the golden directory in a temporary directory, for the mutation tests.
fn copy_golden() -> (tempfile::TempDir, PathBuf) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("golden");
    copy(&golden_dir(), &dst);
    (tmp, dst)
}

/// Flips one bit of byte `at` (from the end if negative) of `rel` under `dir`.
fn flip(dir: &Path, rel: &str, at: isize) {
    let p = dir.join(rel);
    let mut b = std::fs::read(&p).unwrap();
    let i = if at < 0 {
        b.len() - at.unsigned_abs()
    } else {
        at as usize
    };
    b[i] ^= 0x01;
    std::fs::write(p, b).unwrap();
}

/// Runs the independent checker on `dir` (`--only` some parts); returns (ok, stdout+stderr).
fn python_check(dir: &Path, only: &[&str]) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(root.join("scripts/crosscheck/golden.py"))
        .arg("--golden")
        .arg(dir)
        .arg("--schemas")
        .arg(root.join("docs/schemas"));
    if !only.is_empty() {
        cmd.arg("--only").arg(only.join(","));
    }
    let out = cmd
        .output()
        .expect("python3 must be installed for the cross-checks (see scripts/requirements.txt)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn sealed_index(dir: &Path) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&read(dir, "sealed/index.json")).unwrap();
    v["vectors"].as_array().unwrap().clone()
}

/// Opens sealed vector `v` of the index with our data security; the plaintext or the error.
fn open_vector(dir: &Path, v: &Value) -> Result<Vec<u8>, SecurityError> {
    let file = v["file"].as_str().unwrap();
    let text = String::from_utf8(read(dir, &format!("sealed/{file}"))).unwrap();
    let (me, signer) = (
        v["recipient"].as_str().unwrap(),
        v["signer"].as_str().unwrap(),
    );
    let ds = match me {
        "platform" => platform_security(dir),
        "GW0001" => gateway_security(dir),
        other => panic!("recipient {other}"),
    };
    let now = check_time();
    match v["kind"].as_str().unwrap() {
        "message" => ds.open_message(signer, text.trim(), now),
        "json-profile" => ds.open_json_profile(signer, text.trim(), now),
        "xml-profile" => ds
            .open_xml_profile(signer, &text, now)
            .map(String::into_bytes),
        k => panic!("kind {k}"),
    }
}

/// Decrypts and verifies the golden archive with GW0001's own keys (DES-EVAC-3: the signature
/// is checked with its own certificate named by signerKid, without the validity and CRL
/// steps); returns `records.jsonl`.
fn open_archive(dir: &Path, name: &str) -> Result<Vec<u8>, SecurityError> {
    let ds = gateway_security(dir);
    let sgwa = read(dir, &format!("archive/{name}"));
    let mut signed = Vec::new();
    let opened = ds.decrypt_file(Cursor::new(sgwa), &mut signed)?;
    assert_eq!(opened.name, "records.sig.zip");
    let own = ds.keys().own();
    let key = own.cert.public_key()?;
    let mut records = Vec::new();
    let f = file::verify_file(
        &key,
        &own.kid,
        Cursor::new(signed),
        &mut records,
        &ZipLimits::default(),
    )?;
    assert_eq!(f.name, "records.jsonl");
    Ok(records)
}

// ------------------------------------------------------------------------------ checks

#[test]
fn every_message_type_has_a_golden_envelope_that_decodes_and_re_encodes_to_the_same_bytes() {
    let dir = golden_dir();
    for t in all_types() {
        let bytes = read(&dir, &format!("envelopes/{}.json", t.as_str()));
        let env = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", t.as_str()));
        assert_eq!(env.message_type(), *t);
        assert_eq!(
            String::from_utf8(env.encode()).unwrap(),
            String::from_utf8(bytes).unwrap(),
            "{} is not what our encoder writes (DES-ENV-1 member order, DES-ENV-2 times)",
            t.as_str()
        );
    }
}

#[test]
fn every_sealed_golden_file_opens_to_its_plaintext_and_the_revoked_signer_is_refused() {
    let dir = golden_dir();
    let index = sealed_index(&dir);
    assert_eq!(
        index.len(),
        all_types().len() + 3,
        "every type, two profiles, the revoked signer"
    );
    for v in &index {
        let name = v["file"].as_str().unwrap();
        let got = open_vector(&dir, v);
        match v["expect"].as_str().unwrap() {
            "open" => {
                let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                let want = read(&dir, v["plaintext"].as_str().unwrap());
                if v["kind"] == "xml-profile" {
                    // The opened XML is the plain profile: the same data as the plain file.
                    let a = DataProfile::from_xml(std::str::from_utf8(&got).unwrap()).unwrap();
                    let b = DataProfile::from_xml(std::str::from_utf8(&want).unwrap()).unwrap();
                    assert_eq!(a, b, "{name}");
                } else {
                    assert_eq!(got, want, "{name}");
                }
            }
            "refuse" => {
                let e = got.expect_err(name);
                assert!(
                    matches!(e, SecurityError::CertRevoked),
                    "{name}: refused for another reason: {e:?}"
                );
                assert_eq!(e.wire_code(), "SECURITY_FAILED");
            }
            other => panic!("{name}: expect {other}"),
        }
    }
}

#[test]
fn the_golden_profiles_are_valid_and_carry_the_masked_rows() {
    let dir = golden_dir();
    let json = DataProfile::from_json(&read(&dir, "sealed/profile.json")).unwrap();
    let xml = DataProfile::from_xml(&String::from_utf8(read(&dir, "sealed/profile.xml")).unwrap())
        .unwrap();
    assert_eq!(json, xml, "the JSON and XML profiles carry the same data");
    assert_eq!(json.records, masked_rows(&dir));
    assert_eq!(json.header.columns, columns(&dir));
    assert_eq!(json.to_json(), read(&dir, "sealed/profile.json"));
}

#[test]
fn the_golden_masked_csv_is_what_our_masking_makes_and_unmasks_to_the_plain_csv() {
    let dir = golden_dir();
    let keys = masking_keys(&dir);
    let cols = columns(&dir);
    let plain = String::from_utf8(read(&dir, "masking/billing.csv")).unwrap();
    let masked = String::from_utf8(read(&dir, "masking/billing.masked.csv")).unwrap();
    let lines = |s: &str| -> Vec<Vec<String>> {
        s.split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect()
    };
    let (p, m) = (lines(&plain), lines(&masked));
    assert_eq!(p[0], m[0], "same header row");
    assert_eq!(p.len(), m.len());
    for (pr, mr) in p.iter().zip(&m).skip(1) {
        for ((c, pv), mv) in cols.iter().zip(pr).zip(mr) {
            if c.masked {
                assert_eq!(
                    &keys.mask(&c.name, pv).unwrap(),
                    mv,
                    "DES-MASK-2 determinism"
                );
                assert_eq!(&keys.unmask(&c.name, mv).unwrap(), pv);
            } else {
                assert_eq!(pv, mv, "unmasked columns are copied");
            }
        }
    }
}

#[test]
fn the_golden_archive_decrypts_verifies_and_matches_its_index_line() {
    let dir = golden_dir();
    let index = String::from_utf8(read(&dir, "archive/index.jsonl")).unwrap();
    let lines: Vec<&str> = index.lines().collect();
    assert_eq!(lines.len(), 1);
    let line: Value = serde_json::from_str(lines[0]).unwrap();
    let name = line["file"].as_str().unwrap();
    let sgwa = read(&dir, &format!("archive/{name}"));
    use sha2::Digest as _;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&sgwa)),
        line["sha256"].as_str().unwrap()
    );
    let records = open_archive(&dir, name).unwrap();
    assert_eq!(records, read(&dir, "archive/expected-records.jsonl"));
    let text = String::from_utf8(records).unwrap();
    let mut rows = text.lines();
    let header: Value = serde_json::from_str(rows.next().unwrap()).unwrap();
    assert_eq!(header["format"], "sgw-archive-v1");
    for k in ["dataset", "epoch", "range", "records"] {
        assert_eq!(header[k], line[k], "header {k} = index {k}");
    }
    let first = header["range"]["first"].as_u64().unwrap();
    let last = header["range"]["last"].as_u64().unwrap();
    assert_eq!(
        name,
        format!(
            "{}_{}_{}_{first:020}-{last:020}.sgwa",
            header["gatewayId"].as_str().unwrap(),
            header["dataset"].as_str().unwrap(),
            header["epoch"].as_str().unwrap()
        ),
        "DES-EVAC-2 file name"
    );
    let recs: Vec<Value> = rows.map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(recs.len() as u64, last - first + 1);
    let fields: Vec<Vec<String>> = recs
        .iter()
        .map(|r| serde_json::from_value(r["fields"].clone()).unwrap())
        .collect();
    assert_eq!(
        fields,
        masked_rows(&dir),
        "masked values stay masked (DES-MASK-4)"
    );
    assert_eq!(recs[0]["ingestedAt"], line["ingestedFrom"]);
    assert_eq!(recs[recs.len() - 1]["ingestedAt"], line["ingestedTo"]);
}

#[test]
fn the_golden_pki_validates_by_role_and_the_revoked_gateway_is_refused() {
    let dir = golden_dir();
    let now = check_time();
    let gw = gateway_security(&dir);
    gw.validate_peer("platform", now).unwrap();
    let pf = platform_security(&dir);
    pf.validate_peer("GW0001", now).unwrap();
    assert!(matches!(
        pf.validate_peer("GW0002", now).err(),
        Some(SecurityError::CertRevoked)
    ));
    // The CRL is the one that must be in force: one day after nextUpdate it is stale.
    let late = now + chrono::Duration::days(6);
    assert!(matches!(
        pf.validate_peer("GW0001", late).err(),
        Some(SecurityError::CrlStale)
    ));
}

#[test]
fn every_golden_transcript_replays_through_the_cores() {
    let dir = golden_dir();
    let mut names: Vec<String> = std::fs::read_dir(dir.join("transcripts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let want: Vec<String> = {
        let mut v: Vec<String> = scenarios::ALL
            .iter()
            .map(|(n, _)| (*n).to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names, want, "one transcript per scenario");
    for n in &names {
        let text = String::from_utf8(read(&dir, &format!("transcripts/{n}"))).unwrap();
        replay(&dir, &text).unwrap_or_else(|e| panic!("{n}: {e}"));
    }
}

#[test]
fn the_independent_python_checker_accepts_the_golden_files() {
    let (ok, out) = python_check(&golden_dir(), &[]);
    assert!(ok, "{out}");
}

// ------------------------------------------------------------------------------ mutations

#[test]
fn a_flipped_byte_in_a_sealed_message_is_refused_by_us_and_by_the_python_checker() {
    let (_tmp, dir) = copy_golden();
    // The JWE's authentication tag (last part) and the XML profile's SignatureValue region.
    flip(&dir, "sealed/down-periodic.start.jwe", -3);
    let v = sealed_index(&dir)
        .into_iter()
        .find(|v| v["file"] == "down-periodic.start.jwe")
        .unwrap();
    assert!(open_vector(&dir, &v).is_err());
    let xml = String::from_utf8(read(&dir, "sealed/profile.protected.xml")).unwrap();
    let at = xml.find("<ds:SignatureValue>").unwrap() + 30;
    flip(&dir, "sealed/profile.protected.xml", at as isize);
    let v = sealed_index(&dir)
        .into_iter()
        .find(|v| v["file"] == "profile.protected.xml")
        .unwrap();
    assert!(open_vector(&dir, &v).is_err());
    let (ok, out) = python_check(&dir, &["sealed"]);
    assert!(!ok, "the checker must refuse: {out}");
    assert!(out.contains("down-periodic.start.jwe"), "{out}");
    assert!(out.contains("profile.protected.xml"), "{out}");
}

#[test]
fn a_changed_transcript_line_is_detected_by_the_replay() {
    let dir = golden_dir();
    let text = String::from_utf8(read(&dir, "transcripts/main-flow.json")).unwrap();
    assert!(replay(&dir, &text).is_ok());
    // An envelope field the core computes.
    let changed = text.replacen(r#""ackedThrough":0"#, r#""ackedThrough":1"#, 1);
    assert_ne!(changed, text);
    assert!(replay(&dir, &changed).is_err(), "changed envelope");
    // A timer one millisecond early.
    let changed = text.replacen(
        r#""at":"2026-11-22T10:01:05+09:00","event":"timer""#,
        r#""at":"2026-11-22T10:01:04.999+09:00","event":"timer""#,
        1,
    );
    assert_ne!(changed, text);
    assert!(replay(&dir, &changed).is_err(), "timer off its deadline");
    // A message step removed: the core sends something the transcript does not show.
    let lines: Vec<&str> = text.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains(r#""direction":"down""#) && l.contains("data.ack"))
        .unwrap();
    let mut fewer = lines.clone();
    fewer.remove(i);
    assert!(replay(&dir, &fewer.join("\n")).is_err(), "missing step");
    // The seqs an ingest got.
    let changed = text.replacen(
        r#""seqs":{"first":1,"last":4}"#,
        r#""seqs":{"first":2,"last":5}"#,
        1,
    );
    assert_ne!(changed, text);
    assert!(replay(&dir, &changed).is_err(), "ingest seqs");
}

#[test]
fn a_damaged_envelope_profile_archive_or_masked_csv_is_refused_by_us_and_by_the_python_checker() {
    let (_tmp, dir) = copy_golden();
    // An envelope with a member renamed: our decoder and the schema refuse it.
    let p = dir.join("envelopes/connect.result.json");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, s.replace("ackedThrough", "ackedThru")).unwrap();
    assert!(Envelope::decode(&std::fs::read(&p).unwrap()).is_err());
    // A UTC time written with `Z`: a decoder accepts it, but encoders write `+00:00`
    // (DES-ENV-2), so it is not what an encoder produces.
    let p = dir.join("envelopes/monitor.status.json");
    let s = std::fs::read_to_string(&p).unwrap();
    let z = s.replacen(
        r#""notAfter":"2036-01-01T00:00:00+09:00""#,
        r#""notAfter":"2035-12-31T15:00:00Z""#,
        1,
    );
    assert_ne!(z, s);
    std::fs::write(&p, &z).unwrap();
    let env = Envelope::decode(z.as_bytes()).unwrap();
    assert_ne!(env.encode(), z.as_bytes(), "our encoder does not write Z");
    // A plain profile with a field missing from a record (DES-PROF-3).
    let p = dir.join("sealed/profile.json");
    let s = std::fs::read_to_string(&p).unwrap();
    let short = s.replacen(r#","3410"]"#, "]", 1);
    assert_ne!(short, s);
    std::fs::write(&p, &short).unwrap();
    assert!(DataProfile::from_json(short.as_bytes()).is_err());
    // The archive: one byte of the encrypted payload.
    let index: Value =
        serde_json::from_str(std::str::from_utf8(&read(&dir, "archive/index.jsonl")).unwrap())
            .unwrap();
    let name = index["file"].as_str().unwrap().to_owned();
    let sgwa = read(&dir, &format!("archive/{name}"));
    let at = sgwa.windows(11).position(|w| w == b"payload.enc").unwrap() + 11 + 30 + 40;
    flip(&dir, &format!("archive/{name}"), at as isize);
    assert!(open_archive(&dir, &name).is_err());
    // The masked CSV: one character of a masked value.
    let p = dir.join("masking/billing.masked.csv");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, s.replacen("m1.k2026a.21-1", "m1.k2026a.21-2", 1)).unwrap();
    let keys = masking_keys(&dir);
    let bad = masked_rows(&dir)[0][0].clone();
    assert!(keys.unmask("需要家番号", &bad).is_err());
    let (ok, out) = python_check(&dir, &["envelopes", "archive", "masking", "sealed"]);
    assert!(!ok, "{out}");
    for f in [
        "connect.result.json",
        "monitor.status.json",
        "profile.json",
        name.as_str(),
        "billing.masked.csv",
    ] {
        assert!(out.contains(f), "the checker names {f}: {out}");
    }
}

#[test]
fn the_python_checker_detects_a_transcript_that_breaks_the_protocol() {
    let (_tmp, dir) = copy_golden();
    let edit = |name: &str, f: &dyn Fn(String) -> String| {
        let p = dir.join("transcripts").join(name);
        let s = std::fs::read_to_string(&p).unwrap();
        let t = f(s.clone());
        assert_ne!(s, t, "{name}: the mutation changes nothing");
        std::fs::write(&p, t).unwrap();
    };
    // A reply naming a request that was never sent, and a data profile that no longer opens.
    edit("main-flow.json", &|s| {
        let s = s.replacen(
            r#""inReplyTo":"GW0001.1.1""#,
            r#""inReplyTo":"GW0001.1.99""#,
            1,
        );
        let start = s.find(r#""profile":"ey"#).unwrap() + 11;
        let i = start + s[start..].find('"').unwrap() - 5;
        let mut b = s.into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    });
    // The second connect 1 s later than the back-off allows.
    edit("connect-retry.json", &|s| {
        s.replace("10:00:30.928+09:00", "10:00:31.928+09:00")
    });
    // ackTimeoutSec 20 in the connect.result, while the data is re-sent after 30 s.
    edit("connect-defaults.json", &|s| {
        let i = s
            .find(r#""body":{"version":1,"monitorIntervalSec":0"#)
            .unwrap();
        format!(
            "{}{}",
            &s[..i],
            s[i..].replacen(r#""ackTimeoutSec":0"#, r#""ackTimeoutSec":20"#, 1)
        )
    });
    let (ok, out) = python_check(&dir, &["transcripts"]);
    assert!(!ok, "{out}");
    for needle in [
        "GW0001.1.99",
        "profile: JWE does not decrypt",
        "DES-MQTT-8",
        "DES-MSG-DATA-3",
    ] {
        assert!(out.contains(needle), "the checker reports {needle}: {out}");
    }
}

// ------------------------------------------------------------------------------ generator

fn write(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// The plain golden profile: the masked rows as seqs 1..4 of billing.
fn golden_profile(dir: &Path) -> DataProfile {
    DataProfile {
        header: ProfileHeader {
            gateway_id: GatewayId::new("GW0001").unwrap(),
            source_system: "ryokin-sys".into(),
            dataset: "billing".parse().unwrap(),
            columns: columns(dir),
            range: SeqRange::new(1, 4).unwrap(),
            created_at: jst("2026-11-22T10:01:05+09:00"),
        },
        records: masked_rows(dir),
    }
}

#[test]
#[ignore = "writes vectors/golden/{transcripts,envelopes,sealed}; run to regenerate"]
fn regenerate_golden_files() {
    let dir = golden_dir();
    // Transcripts, recorded from the cores.
    let mut texts = Vec::new();
    for (name, generate) in scenarios::ALL {
        let text = generate(&dir);
        replay(&dir, &text).unwrap_or_else(|e| panic!("{name} does not replay: {e}"));
        write(&dir, &format!("transcripts/{name}"), text.as_bytes());
        texts.push(text);
    }
    // One envelope per type: the first a core sent in the transcripts, in file order.
    for t in all_types() {
        let env = texts
            .iter()
            .flat_map(|text| {
                let doc: Value = serde_json::from_str(text).unwrap();
                doc["steps"].as_array().unwrap().clone()
            })
            .filter(|s| s.get("injected").is_none())
            .filter_map(|s| s.get("envelope").cloned())
            .find(|e| e["type"] == t.as_str())
            .unwrap_or_else(|| panic!("no transcript sends {}", t.as_str()));
        let env = Envelope::decode(&serde_json::to_vec(&env).unwrap()).unwrap();
        write(
            &dir,
            &format!("envelopes/{}.json", t.as_str()),
            &env.encode(),
        );
    }
    // Sealed messages: every envelope in its direction.
    let gw = gateway_security(&dir);
    let pf = platform_security(&dir);
    let now = check_time();
    let mut index = Vec::new();
    for t in all_types() {
        let plain = format!("envelopes/{}.json", t.as_str());
        let bytes = read(&dir, &plain);
        let dirn = direction(*t);
        let file = format!("{dirn}-{}.jwe", t.as_str());
        let (sealer, to, from): (&DataSecurity, &str, &str) = match dirn {
            "up" => (&gw, "platform", "GW0001"),
            _ => (&pf, "GW0001", "platform"),
        };
        let token = sealer.seal_message(to, &bytes, now).unwrap();
        write(
            &dir,
            &format!("sealed/{file}"),
            format!("{token}\n").as_bytes(),
        );
        index.push(json!({
            "file": file, "kind": "message", "direction": dirn, "recipient": to, "signer": from,
            "plaintext": plain, "expect": "open",
            "rules": ["DES-SEAL-1", "DES-SEAL-2", "DES-SEAL-3", "DES-SEAL-5", "DES-SEAL-6"],
        }));
    }
    // Data profiles, JSON and XML.
    let profile = golden_profile(&dir);
    write(&dir, "sealed/profile.json", &profile.to_json());
    write(&dir, "sealed/profile.xml", profile.to_xml().as_bytes());
    let jwe = gw
        .seal_json_profile("platform", &profile.to_json(), now)
        .unwrap();
    write(&dir, "sealed/profile.jwe", format!("{jwe}\n").as_bytes());
    index.push(json!({
        "file": "profile.jwe", "kind": "json-profile", "direction": "up", "recipient": "platform",
        "signer": "GW0001", "plaintext": "sealed/profile.json", "expect": "open",
        "rules": ["DES-PROF-2", "DES-PROF-3", "DES-PROF-4", "DES-SEAL-2", "DES-SEAL-3"],
    }));
    let xml = gw
        .seal_xml_profile(
            "platform",
            &profile.to_xml(),
            gateway::security::xml::XmlCipher::Aes128Cbc,
            now,
        )
        .unwrap();
    write(&dir, "sealed/profile.protected.xml", xml.as_bytes());
    index.push(json!({
        "file": "profile.protected.xml", "kind": "xml-profile", "direction": "up",
        "recipient": "platform", "signer": "GW0001", "plaintext": "sealed/profile.xml",
        "expect": "open",
        "rules": ["DES-PROF-5", "DES-PROF-6", "DES-PROF-7", "DES-PROF-8"],
    }));
    // A connect of GW0002, whose certificate the CRL revokes.
    let connect = read(&dir, "envelopes/connect.json");
    let mut env = Envelope::decode(&connect).unwrap();
    env.gateway_id = GatewayId::new("GW0002").unwrap();
    env.message_id = "GW0002.1.1".parse().unwrap();
    if let Body::Connect(c) = &mut env.body {
        c.epoch = "00112233445566778899aabbccddeeff".parse().unwrap();
    }
    write(&dir, "sealed/revoked-up-connect.json", &env.encode());
    let token = revoked_gateway_security(&dir)
        .seal_message("platform", &env.encode(), now)
        .unwrap();
    write(
        &dir,
        "sealed/revoked-up-connect.jwe",
        format!("{token}\n").as_bytes(),
    );
    index.push(json!({
        "file": "revoked-up-connect.jwe", "kind": "message", "direction": "up",
        "recipient": "platform", "signer": "GW0002", "plaintext": "sealed/revoked-up-connect.json",
        "expect": "refuse",
        "why": "the signer's certificate (GW0002, serial 4) is on the CRL: DES-CERT-4 step 7 (CertRevoked), SECURITY_FAILED; the platform drops it unanswered (§6.10 platform step 3/4)",
        "rules": ["DES-CERT-4", "DES-CERT-5", "DES-SEAL-5", "DES-SEAL-6"],
    }));
    let doc = json!({
        "checkTime": ts(&now.with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())),
        "vectors": index,
    });
    write(
        &dir,
        "sealed/index.json",
        format!("{}\n", serde_json::to_string_pretty(&doc).unwrap()).as_bytes(),
    );
}
