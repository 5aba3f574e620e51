//! Crash test of primary storage and evacuation (ST-STORE-1, ST-EVAC-1, DES-FTP-6,
//! DES-EVAC-4): "kill -9 at any point loses nothing".
//!
//! The test binary re-invokes itself as a child (`crash_child`, active only with
//! `SGW_STORE_CRASH_DIR` set) that ingests files, acknowledges and holds records and runs
//! evacuation passes (retention 0) in a loop, appending to a journal, after each call that
//! returned `Ok`, what it did. The parent kills the child with SIGKILL at a random point
//! (after it made progress, plus a random delay), reopens the store, runs the archive repair
//! and checks by counting that
//!
//! - every ingest that returned `Ok` is there, record for record, either in primary storage
//!   or in an indexed archive (never neither), and never in both after the repair;
//! - no seq was assigned twice (journaled ranges strictly increase, also across restarts),
//!   and the seq counter is never below a journaled seq; no row lies outside an ingest;
//! - a held, unacknowledged range was never evacuated;
//!
//! and at the end reads every archive back and compares its records with what was ingested.
//! Rounds: `SGW_STORE_CRASH_ROUNDS` (default 40); seed: `SGW_STORE_CRASH_SEED` (default from
//! the clock, printed). The waits only place the kill at a random point of the child's loop;
//! nothing is asserted about time.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::DateTime;
use gateway::profile::{Column, ColumnType};
use gateway::protocol::flow::SplitMix64;
use gateway::protocol::{Dataset, GatewayId, SeqRange, Time};
use gateway::security::Role;
use gateway::store::{ArchiveKey, ArchiveKeys, Evacuation, MAX_ARCHIVE_PAYLOAD_BYTES, Store};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::ExtendedKeyUsage;
use openssl::x509::{X509, X509Builder, X509NameBuilder};

const DIR_ENV: &str = "SGW_STORE_CRASH_DIR";
const SEED_ENV: &str = "SGW_STORE_CRASH_SEED";

fn base() -> Time {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00+09:00").unwrap()
}

fn columns() -> BTreeMap<Dataset, Vec<Column>> {
    let cols = vec![
        Column {
            name: "tag".into(),
            ty: ColumnType::String,
            unit: None,
            masked: false,
        },
        Column {
            name: "name".into(),
            ty: ColumnType::String,
            unit: None,
            masked: true,
        },
    ];
    ["billing", "pipe"]
        .iter()
        .map(|d| (Dataset::new(*d).unwrap(), cols.clone()))
        .collect()
}

/// The fields of record `k` of the file journaled as `tag`.
fn fields(tag: &str, k: u64) -> Vec<String> {
    vec![format!("{tag}.{k}"), format!("m1.k1.{k:x}")]
}

fn keys(dir: &Path) -> ArchiveKeys {
    let key = PKey::private_key_from_pem(&fs::read(dir.join("key.pem")).unwrap()).unwrap();
    let cert = X509::from_pem(&fs::read(dir.join("cert.pem")).unwrap()).unwrap();
    let root = X509::from_pem(&fs::read(dir.join("root.pem")).unwrap()).unwrap();
    let gw = GatewayId::new("GW0001").unwrap();
    ArchiveKeys::new(ArchiveKey::new(key, &cert).unwrap(), root, &gw)
}

fn journal(dir: &Path, line: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("journal.log"))
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
    f.sync_data().unwrap();
}

/// The child: ingest, acknowledge, hold, evacuate, forever (until killed).
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_ENV).map(PathBuf::from) else {
        return;
    };
    let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let mut rng = SplitMix64::new(seed);
    let mut store = Store::open(&dir.join("store")).unwrap();
    let boot = store.boot_count();
    let keys = keys(&dir);
    let cols = columns();
    let gw = GatewayId::new("GW0001").unwrap();
    let evac = dir.join("evac");
    let datasets = [
        Dataset::new("billing").unwrap(),
        Dataset::new("pipe").unwrap(),
    ];
    for i in 0u64.. {
        let ds = &datasets[(rng.next_u64() % 2) as usize];
        let n = 1 + rng.next_u64() % 40;
        let tag = format!("r{boot}.{i}");
        let last = store.last_seq().unwrap();
        let t = base() + chrono::Duration::seconds(last as i64);
        let records = (0..n).map(|k| Ok::<_, String>(fields(&tag, k)));
        let got = store.ingest_file(ds, t, records).unwrap();
        journal(
            &dir,
            &format!("ingest {} {} {ds} {tag}", got.range.first, got.range.last),
        );
        match rng.next_u64() % 10 {
            0 => {
                store.mark_held(got.range, true).unwrap();
                journal(
                    &dir,
                    &format!("held {} {}", got.range.first, got.range.last),
                );
            }
            1..=2 => {}
            _ => {
                store.mark_acked(got.range).unwrap();
            }
        }
        if rng.next_u64() % 3 == 0 {
            let now = base() + chrono::Duration::seconds(got.range.last as i64 + 10);
            store
                .evacuate(
                    now,
                    &Evacuation {
                        gateway_id: &gw,
                        dir: &evac,
                        keys: &keys,
                        columns: &cols,
                        retention: chrono::Duration::zero(),
                        max_payload_bytes: MAX_ARCHIVE_PAYLOAD_BYTES,
                        pinned: &[],
                    },
                )
                .unwrap();
        }
    }
}

struct Journaled {
    /// (range, dataset, tag) of every ingest that returned Ok, in order.
    ingests: Vec<(SeqRange, String, String)>,
    held: Vec<SeqRange>,
}

fn read_journal(dir: &Path) -> Journaled {
    let text = fs::read_to_string(dir.join("journal.log")).unwrap_or_default();
    let mut j = Journaled {
        ingests: Vec::new(),
        held: Vec::new(),
    };
    // A line without its LF was torn by the kill: the call returned Ok, that is all.
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    for line in complete.lines() {
        let p: Vec<&str> = line.split(' ').collect();
        let range = SeqRange::new(p[1].parse().unwrap(), p[2].parse().unwrap()).unwrap();
        match p[0] {
            "ingest" => j.ingests.push((range, p[3].to_string(), p[4].to_string())),
            "held" => j.held.push(range),
            other => panic!("journal line {other}"),
        }
    }
    j
}

#[derive(Default, Debug)]
struct Counts {
    ingests: usize,
    records: u64,
    stored: u64,
    archived: u64,
    archives: usize,
    completed_by_recovery: usize,
    unindexed_removed: usize,
    temporaries_removed: usize,
    torn_index_lines: usize,
}

/// Reopens the store after a kill and checks every invariant by counting; with `read_all`
/// (at the end) also reads every record back, from the store or its archive.
fn verify(dir: &Path, counts: &mut Counts, read_all: bool) {
    let mut store = Store::open(&dir.join("store")).unwrap();
    let evac = dir.join("evac");
    let rep = store.recover_archives(&evac).unwrap();
    assert!(
        rep.problems.is_empty(),
        "recovery problems: {:?}",
        rep.problems
    );
    counts.completed_by_recovery += rep.completed.len();
    counts.unindexed_removed += rep.unindexed_removed.len();
    counts.temporaries_removed += rep.temporaries_removed.len();
    counts.torn_index_lines += usize::from(rep.torn_index_line);
    let j = read_journal(dir);
    // No seq assigned twice: journaled ranges strictly increase.
    for w in j.ingests.windows(2) {
        assert!(
            w[0].0.last < w[1].0.first,
            "seq reused: {:?} then {:?}",
            w[0].0,
            w[1].0
        );
    }
    let last_seq = store.last_seq().unwrap();
    if let Some((r, _, _)) = j.ingests.last() {
        assert!(
            last_seq >= r.last,
            "seq counter {last_seq} below journaled {}",
            r.last
        );
    }
    let keys = keys(dir);
    counts.ingests = j.ingests.len();
    counts.records = 0;
    counts.stored = 0;
    counts.archived = 0;
    for (range, ds, tag) in &j.ingests {
        let dataset = Dataset::new(ds.as_str()).unwrap();
        counts.records += range.len();
        let sel = store
            .select_resend(
                &gateway::store::ResendQuery {
                    dataset: Some(dataset.clone()),
                    selector: gateway::store::Selector::Seq(*range),
                },
                Some(&evac),
            )
            .unwrap();
        assert!(
            sel.missing.is_empty(),
            "{ds} {range:?} lost: {:?}",
            sel.missing
        );
        assert!(sel.unknown.is_empty(), "{ds} {range:?} not indexed");
        assert_eq!(sel.records(), range.len(), "{ds} {range:?}");
        for run in &sel.runs {
            match &run.archive {
                None => {
                    counts.stored += run.range.len();
                    if read_all {
                        let got = store.read_records(&dataset, run.range).unwrap();
                        for rec in got {
                            assert_eq!(rec.fields, fields(tag, rec.seq - range.first));
                        }
                    }
                }
                Some(_) => {
                    counts.archived += run.range.len();
                    if read_all {
                        let got = store
                            .read_archived(&dataset, run.range, &evac, &keys)
                            .unwrap();
                        for rec in got {
                            assert_eq!(rec.fields, fields(tag, rec.seq - range.first));
                        }
                    }
                }
            }
        }
    }
    // Never both after the repair: a seq in an archive has no row any more.
    let usage = store.usage().unwrap();
    for (file, ds, range) in store.archives().unwrap() {
        let sel = store
            .select_resend(
                &gateway::store::ResendQuery {
                    dataset: Some(ds),
                    selector: gateway::store::Selector::Seq(range),
                },
                Some(&evac),
            )
            .unwrap();
        assert!(
            sel.runs
                .iter()
                .all(|r| r.archive.as_deref() == Some(file.as_str())),
            "{file}: records both archived and still stored after the repair"
        );
    }
    let all = store
        .select_resend(
            &gateway::store::ResendQuery {
                dataset: None,
                selector: gateway::store::Selector::Seq(SeqRange::new(1, last_seq.max(1)).unwrap()),
            },
            Some(&evac),
        )
        .unwrap();
    let stored_total: u64 = all
        .runs
        .iter()
        .filter(|r| r.archive.is_none())
        .map(|r| r.range.len())
        .sum();
    assert_eq!(
        stored_total, usage.records,
        "a stored row outside every ingest, or doubled"
    );
    assert_eq!(all.archived() + stored_total, all.records());
    if last_seq > 0 {
        assert!(all.missing.is_empty() && all.unknown.is_empty());
        assert_eq!(
            all.records(),
            last_seq,
            "every assigned seq is held somewhere"
        );
    }
    // Held (never acknowledged) records were never evacuated.
    for h in &j.held {
        let (_, ds, _) = j.ingests.iter().find(|(r, _, _)| r == h).unwrap();
        let got = store.read_records(&Dataset::new(ds.as_str()).unwrap(), *h);
        assert!(got.is_ok(), "held {h:?} left primary storage: {got:?}");
    }
    // After the repair every indexed archive has left primary storage (step 3 done), and
    // every archive of the store is indexed.
    let index = fs::read_to_string(evac.join("index.jsonl")).unwrap_or_default();
    let mut indexed: Vec<String> = index
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["file"].as_str().unwrap().to_string()
        })
        .collect();
    let mut recorded: Vec<String> = store.archives().unwrap().into_iter().map(|a| a.0).collect();
    indexed.sort();
    recorded.sort();
    assert_eq!(
        indexed, recorded,
        "index.jsonl and the store's archives differ after the repair"
    );
    counts.archives = indexed.len();
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

/// A root and the gateway's data-protection key and certificate (role gateway, CN GW0001).
fn write_keys(dir: &Path) {
    let root_key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut certs = Vec::new();
    for (k, cn) in [(&root_key, "root"), (&key, "GW0001")] {
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name(cn)).unwrap();
        b.set_issuer_name(&name("root")).unwrap();
        b.set_pubkey(k).unwrap();
        b.set_not_before(&Asn1Time::from_unix(1_700_000_000).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(2_000_000_000).unwrap())
            .unwrap();
        if cn != "root" {
            let eku = ExtendedKeyUsage::new()
                .other(Role::Gateway.eku_oid())
                .build()
                .unwrap();
            b.append_extension(eku).unwrap();
        }
        b.sign(&root_key, MessageDigest::sha256()).unwrap();
        certs.push(b.build());
    }
    fs::write(dir.join("key.pem"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    fs::write(dir.join("root.pem"), certs[0].to_pem().unwrap()).unwrap();
    fs::write(dir.join("cert.pem"), certs[1].to_pem().unwrap()).unwrap();
}

#[test]
fn sigkill_at_random_points_loses_nothing() {
    let rounds: u64 = std::env::var("SGW_STORE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("store crash test: {rounds} rounds, {SEED_ENV}={seed}");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_keys(dir);
    let exe = std::env::current_exe().unwrap();
    let mut rng = SplitMix64::new(seed);
    let mut counts = Counts::default();
    let started = Instant::now();
    for round in 0..rounds {
        let before = fs::metadata(dir.join("journal.log")).map_or(0, |m| m.len());
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir)
            .env(
                SEED_ENV,
                (seed ^ round.wrapping_mul(0x9e37_79b9)).to_string(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child made progress, then a random while longer.
        let deadline = Instant::now() + Duration::from_secs(30);
        while fs::metadata(dir.join("journal.log")).map_or(0, |m| m.len()) == before {
            assert!(Instant::now() < deadline, "the child made no progress");
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the child ended by itself: {status}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.next_u64() % 200));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended by itself (a store call failed): {status}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        verify(dir, &mut counts, false);
    }
    verify(dir, &mut counts, true);
    eprintln!(
        "store crash test: {:?} in {:.1} s",
        counts,
        started.elapsed().as_secs_f64()
    );
    assert!(
        counts.archived > 0,
        "no evacuation happened: the test proved nothing about it"
    );
    assert!(counts.stored > 0);
}
