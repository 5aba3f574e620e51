//! Tests of primary storage and evacuation, as sentences. Times come from a manual clock
//! (fixed instants), never from the wall clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use chrono::{DateTime, Duration};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::ExtendedKeyUsage;
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use rusqlite::params;

use super::*;
use crate::profile::{Column, ColumnType};
use crate::protocol::gateway_side::GatewayConfig;
use crate::protocol::message::ResultCode;
use crate::protocol::{GatewayCore, GatewayId};
use crate::security::{Role, SecurityError};

fn at(s: i64) -> Time {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00+09:00").unwrap() + Duration::seconds(s)
}

const DAY: i64 = 86_400;

fn ds(s: &str) -> Dataset {
    Dataset::new(s).unwrap()
}

fn rows(n: usize, tag: &str) -> Vec<Result<Vec<String>, String>> {
    (0..n)
        .map(|i| Ok(vec![format!("{tag}{i}"), "m1.k1.abc".to_string()]))
        .collect()
}

fn ingest(s: &mut Store, d: &str, t: Time, n: usize) -> SeqRange {
    s.ingest_file(&ds(d), t, rows(n, d)).unwrap().range
}

fn r(first: u64, last: u64) -> SeqRange {
    SeqRange::new(first, last).unwrap()
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

/// A certificate for `key` named `cn`, issued by `issuer` (`None`: self-signed), with the
/// gateway role's EKU unless `ca`.
fn cert(
    key: &PKey<Private>,
    cn: &str,
    issuer: Option<(&PKey<Private>, &X509)>,
    ca: bool,
    not_after: i64,
) -> X509 {
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name(cn)).unwrap();
    match issuer {
        Some((_, c)) => b.set_issuer_name(c.subject_name()).unwrap(),
        None => b.set_issuer_name(&name(cn)).unwrap(),
    }
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(1_600_000_000).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(not_after).unwrap())
        .unwrap();
    if !ca {
        let eku = ExtendedKeyUsage::new()
            .other(Role::Gateway.eku_oid())
            .build()
            .unwrap();
        b.append_extension(eku).unwrap();
    }
    b.sign(issuer.map_or(key, |(k, _)| k), MessageDigest::sha256())
        .unwrap();
    b.build()
}

fn rsa() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

/// The gateway's data-protection key, its certificate — already expired: archives are read
/// back without a validity check (DES-EVAC-3) — and the root.
fn key_and_cert() -> &'static (PKey<Private>, X509, X509) {
    static K: OnceLock<(PKey<Private>, X509, X509)> = OnceLock::new();
    K.get_or_init(|| {
        let root_key = rsa();
        let root = cert(&root_key, "root", None, true, 2_000_000_000);
        let key = rsa();
        let leaf = cert(
            &key,
            "GW0001",
            Some((&root_key, &root)),
            false,
            1_600_086_400,
        );
        (key, leaf, root)
    })
}

fn keys() -> ArchiveKeys {
    let (k, c, root) = key_and_cert();
    ArchiveKeys::new(ArchiveKey::new(k.clone(), c).unwrap(), root.clone(), &gw())
}

fn columns() -> BTreeMap<Dataset, Vec<Column>> {
    let cols = vec![
        Column {
            name: "meter".into(),
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
        .map(|d| (ds(d), cols.clone()))
        .collect()
}

fn gw() -> GatewayId {
    GatewayId::new("GW0001").unwrap()
}

/// What an evacuation pass needs besides the store: the gateway, its archive keys and the
/// datasets' columns.
struct Evac {
    g: GatewayId,
    k: ArchiveKeys,
    c: BTreeMap<Dataset, Vec<Column>>,
}

impl Evac {
    fn new() -> Self {
        Evac {
            g: gw(),
            k: keys(),
            c: columns(),
        }
    }

    /// A pass into `dir` with a retention of one day.
    fn pass<'a>(
        &'a self,
        dir: &'a Path,
        max_payload_bytes: u64,
        pinned: &'a [SeqRange],
    ) -> Evacuation<'a> {
        Evacuation {
            gateway_id: &self.g,
            dir,
            keys: &self.k,
            columns: &self.c,
            retention: Duration::days(1),
            max_payload_bytes,
            pinned,
        }
    }

    /// Steps (1) and (2) of DES-EVAC-4 for `range` of billing, at two days.
    fn write(&self, s: &Store, dir: &Path, range: SeqRange) -> Result<IndexLine, StoreError> {
        let epoch = s.epoch().unwrap();
        s.write_archive(
            at(2 * DAY),
            &self.pass(dir, MAX_ARCHIVE_PAYLOAD_BYTES, &[]),
            &epoch,
            &ds("billing"),
            &self.c[&ds("billing")],
            range,
        )
    }
}

/// A store in a temporary directory and the path of its evacuation directory (not created).
fn store_with_archive_dir() -> (tempfile::TempDir, std::path::PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("evac");
    let s = Store::open(&dir.path().join("store")).unwrap();
    (dir, arch, s)
}

/// Runs an evacuation pass at `now` with a retention of one day.
fn evacuate(s: &mut Store, dir: &Path, now: Time) -> EvacuationReport {
    evacuate_pinned(s, dir, now, &[])
}

/// Evacuates all but `pinned` (records a data message still reads, DES-EVAC-1).
fn evacuate_pinned(s: &mut Store, dir: &Path, now: Time, pinned: &[SeqRange]) -> EvacuationReport {
    let e = Evac::new();
    s.evacuate(now, &e.pass(dir, MAX_ARCHIVE_PAYLOAD_BYTES, pinned))
        .unwrap()
}

fn stored_seqs(s: &Store) -> Vec<u64> {
    let mut st = s
        .conn
        .prepare("SELECT seq FROM records ORDER BY seq")
        .unwrap();
    st.query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|x| x.unwrap() as u64)
        .collect()
}

#[test]
fn a_restart_keeps_the_seq_counter_and_increments_the_boot_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.boot_count(), 1);
    let epoch = s.epoch().unwrap();
    assert_eq!(ingest(&mut s, "billing", at(0), 3), r(1, 3));
    drop(s);
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.boot_count(), 2);
    assert_eq!(s.epoch().unwrap(), epoch);
    assert_eq!(s.last_seq().unwrap(), 3);
    assert_eq!(ingest(&mut s, "pipe", at(1), 2), r(4, 5));
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.boot_count(), 3);
    assert_eq!(stored_seqs(&s), vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_new_store_gets_a_random_epoch_and_new_epoch_keeps_records_and_counters() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut s = Store::open(a.path()).unwrap();
    let other = Store::open(b.path()).unwrap();
    let e1 = s.epoch().unwrap();
    assert_ne!(e1, other.epoch().unwrap());
    ingest(&mut s, "billing", at(0), 2);
    let snap = s.load_snapshot(1000).unwrap();
    s.save_snapshot(&snap).unwrap();
    let e2 = s.new_epoch().unwrap();
    assert_ne!(e1, e2);
    assert_eq!(s.epoch().unwrap(), e2);
    assert_eq!(s.load_snapshot(1000).unwrap().epoch, e2);
    assert_eq!(ingest(&mut s, "billing", at(1), 1), r(3, 3));
    assert_eq!(s.boot_count(), 1);
}

#[test]
fn an_error_in_the_middle_of_the_stream_leaves_nothing_stored_and_no_seq_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let stream = vec![
        Ok(vec!["a".to_string()]),
        Ok(vec!["b".to_string()]),
        Err("551 DES-CSV-4: line 3, column 1: not a date".to_string()),
        Ok(vec!["never".to_string()]),
    ];
    match s.ingest_file(&ds("billing"), at(0), stream) {
        Err(IngestFailure::Source(e)) => assert!(e.starts_with("551")),
        other => panic!("expected the source error, got {other:?}"),
    }
    assert_eq!(s.usage().unwrap().records, 0);
    assert_eq!(s.usage().unwrap().bytes, 0);
    assert_eq!(s.last_seq().unwrap(), 0);
    drop(s);
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.last_seq().unwrap(), 0);
    assert_eq!(ingest(&mut s, "billing", at(1), 1), r(1, 1));
}

#[test]
fn an_oversize_record_or_an_empty_file_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let big = "x".repeat(70_000);
    let stream: Vec<Result<Vec<String>, String>> = vec![Ok(vec!["a".into()]), Ok(vec![big])];
    let e = match s.ingest_file(&ds("billing"), at(0), stream) {
        Err(IngestFailure::Store(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(e, StoreError::RecordTooLarge { index: 1, .. }),
        "{e}"
    );
    assert_eq!(e.ftp_reply_code(), 552);
    let empty: Vec<Result<Vec<String>, String>> = Vec::new();
    let e = match s.ingest_file(&ds("billing"), at(0), empty) {
        Err(IngestFailure::Store(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(matches!(e, StoreError::Empty));
    assert_eq!(s.last_seq().unwrap(), 0);
    assert_eq!(s.usage().unwrap().records, 0);
}

#[test]
fn the_quota_refuses_a_file_that_would_exceed_it_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    // One record ["billing0","m1.k1.abc"] is 24 bytes of JSON + 64 = 88 bytes.
    s.set_quota(Some(1000));
    ingest(&mut s, "billing", at(0), 9); // 792 bytes: 79.2 %
    let u = s.usage().unwrap();
    assert_eq!(u.bytes, 792);
    assert!(!u.alarm(), "79.2 % is not above 80 %");
    s.check_quota().unwrap();
    let e = match s.ingest_file(&ds("billing"), at(1), rows(3, "billing")) {
        Err(IngestFailure::Store(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(
            e,
            StoreError::QuotaExceeded {
                used: 792,
                quota: 1000,
                needed: 264
            }
        ),
        "{e}"
    );
    assert_eq!(e.ftp_reply_code(), 452);
    assert_eq!(s.last_seq().unwrap(), 9);
    assert_eq!(s.usage().unwrap().records, 9);
    assert_eq!(s.usage().unwrap().bytes, 792);
    // One more record fits (880 bytes: 88 %): the alarm comes before the refusal.
    assert_eq!(ingest(&mut s, "billing", at(2), 1), r(10, 10));
    let u = s.usage().unwrap();
    assert!(u.alarm());
    s.check_quota().unwrap();
    ingest(&mut s, "billing", at(3), 1); // 968
    let e = s
        .ingest_file(&ds("billing"), at(4), rows(1, "billing"))
        .unwrap_err();
    assert!(matches!(
        e,
        IngestFailure::Store(StoreError::QuotaExceeded { .. })
    ));
}

#[test]
fn the_quota_check_at_stor_refuses_once_the_quota_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.set_quota(Some(176));
    ingest(&mut s, "billing", at(0), 2); // 176 bytes
    let e = s.check_quota().unwrap_err();
    assert_eq!(e.ftp_reply_code(), 452);
}

#[test]
fn records_of_a_range_are_read_in_seq_order_and_a_gap_or_other_dataset_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    ingest(&mut s, "billing", at(0), 3);
    ingest(&mut s, "pipe", at(1), 1);
    let got = s.read_records(&ds("billing"), r(2, 3)).unwrap();
    assert_eq!(
        got,
        vec![
            StoredRecord {
                seq: 2,
                fields: vec!["billing1".into(), "m1.k1.abc".into()]
            },
            StoredRecord {
                seq: 3,
                fields: vec!["billing2".into(), "m1.k1.abc".into()]
            },
        ]
    );
    assert!(matches!(
        s.read_records(&ds("billing"), r(3, 4)),
        Err(StoreError::RecordsMissing { .. })
    ));
    assert!(matches!(
        s.read_records(&ds("billing"), r(3, 5)),
        Err(StoreError::RecordsMissing { .. })
    ));
}

/// billing 1..=3 at t0, pipe 4..=5 at t100, billing 6..=8 at t200.
fn three_files(s: &mut Store) {
    ingest(s, "billing", at(0), 3);
    ingest(s, "pipe", at(100), 2);
    ingest(s, "billing", at(200), 3);
}

fn by_seq(d: Option<&str>, first: u64, last: u64) -> ResendQuery {
    ResendQuery {
        dataset: d.map(ds),
        selector: Selector::Seq(r(first, last)),
    }
}

fn ranges(sel: &Selection) -> Vec<(String, u64, u64, bool)> {
    sel.runs
        .iter()
        .map(|x| {
            (
                x.dataset.to_string(),
                x.range.first,
                x.range.last,
                x.archive.is_some(),
            )
        })
        .collect()
}

#[test]
fn resend_by_seq_skips_other_datasets_without_counting_them_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    three_files(&mut s);
    let sel = s
        .select_resend(&by_seq(Some("billing"), 1, 8), None)
        .unwrap();
    assert_eq!(
        ranges(&sel),
        vec![
            ("billing".into(), 1, 3, false),
            ("billing".into(), 6, 8, false)
        ]
    );
    assert_eq!((sel.records(), sel.archived()), (6, 0));
    assert_eq!(sel.code(), ResultCode::Ok);
    let sel = s.select_resend(&by_seq(None, 2, 7), None).unwrap();
    assert_eq!(
        ranges(&sel),
        vec![
            ("billing".into(), 2, 3, false),
            ("pipe".into(), 4, 5, false),
            ("billing".into(), 6, 7, false)
        ]
    );
    assert_eq!(sel.code(), ResultCode::Ok);
}

#[test]
fn resend_by_seq_beyond_last_seq_is_partial_and_only_other_datasets_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    three_files(&mut s);
    let sel = s
        .select_resend(&by_seq(Some("billing"), 6, 12), None)
        .unwrap();
    assert_eq!(sel.beyond, Some(r(9, 12)));
    assert_eq!(sel.records(), 3);
    assert_eq!(sel.code(), ResultCode::Partial);
    let sel = s
        .select_resend(&by_seq(Some("billing"), 4, 5), None)
        .unwrap();
    assert_eq!(sel.records(), 0);
    assert_eq!(sel.code(), ResultCode::NotFound);
    let sel = s.select_resend(&by_seq(None, 9, 12), None).unwrap();
    assert_eq!(sel.beyond, Some(r(9, 12)));
    assert_eq!(sel.code(), ResultCode::NotFound);
}

#[test]
fn resend_by_seq_is_partial_when_a_record_is_lost_or_a_seq_is_in_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    three_files(&mut s);
    // A lost row (damaged store): billing 2 is indexed but no longer held.
    s.conn
        .execute("DELETE FROM records WHERE seq = 2", [])
        .unwrap();
    let sel = s
        .select_resend(&by_seq(Some("billing"), 1, 3), None)
        .unwrap();
    assert_eq!(sel.missing, vec![r(2, 2)]);
    assert_eq!(sel.records(), 2);
    assert_eq!(sel.code(), ResultCode::Partial);
    // A lost index entry: seqs 4..=5 belong to no file, their dataset is unknown.
    s.conn
        .execute("DELETE FROM ingests WHERE first = 4", [])
        .unwrap();
    let sel = s
        .select_resend(&by_seq(Some("billing"), 6, 8), None)
        .unwrap();
    assert_eq!(sel.code(), ResultCode::Ok);
    let sel = s
        .select_resend(&by_seq(Some("billing"), 3, 8), None)
        .unwrap();
    assert_eq!(sel.unknown, vec![r(4, 5)]);
    assert_eq!(sel.code(), ResultCode::Partial);
}

#[test]
fn adjacent_files_of_one_dataset_are_selected_as_one_run_per_source() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 2); // 1..=2
    ingest(&mut s, "billing", at(10), 2); // 3..=4
    ingest(&mut s, "billing", at(2 * DAY), 2); // 5..=6
    ingest(&mut s, "billing", at(2 * DAY + 10), 2); // 7..=8
    let sel = s.select_resend(&by_seq(None, 1, 8), None).unwrap();
    assert_eq!(ranges(&sel), vec![("billing".into(), 1, 8, false)]);
    // 1..=4 archived (two files, one archive), 5..=8 stored: one run from each source.
    s.mark_acked(r(1, 4)).unwrap();
    evacuate(&mut s, &arch, at(2 * DAY + 20));
    let sel = s.select_resend(&by_seq(None, 1, 8), Some(&arch)).unwrap();
    assert_eq!(
        ranges(&sel),
        vec![
            ("billing".into(), 1, 4, true),
            ("billing".into(), 5, 8, false)
        ]
    );
}

#[test]
fn resend_by_time_selects_the_files_ingested_in_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    three_files(&mut s);
    let q = |d: Option<&str>, from: i64, to: i64| ResendQuery {
        dataset: d.map(ds),
        selector: Selector::Time {
            from: at(from),
            to: at(to),
        },
    };
    let sel = s.select_resend(&q(None, 100, 200), None).unwrap();
    assert_eq!(
        ranges(&sel),
        vec![
            ("pipe".into(), 4, 5, false),
            ("billing".into(), 6, 8, false)
        ]
    );
    assert_eq!(sel.code(), ResultCode::Ok);
    let sel = s.select_resend(&q(Some("billing"), 1, 199), None).unwrap();
    assert_eq!(sel.code(), ResultCode::NotFound);
    // The same instant written with another offset is the same instant.
    let utc = DateTime::parse_from_rfc3339("2026-11-22T01:01:40+00:00").unwrap();
    let sel = s
        .select_resend(
            &ResendQuery {
                dataset: None,
                selector: Selector::Time { from: utc, to: utc },
            },
            None,
        )
        .unwrap();
    assert_eq!(ranges(&sel), vec![("pipe".into(), 4, 5, false)]);
}

#[test]
fn evacuation_takes_only_acknowledged_not_held_records_older_than_the_retention() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 6); // 1..=6
    ingest(&mut s, "billing", at(2 * DAY), 2); // 7..=8, young
    s.mark_acked(r(1, 2)).unwrap();
    s.mark_held(r(3, 3), true).unwrap(); // unacked and held
    s.mark_acked(r(4, 4)).unwrap();
    s.mark_held(r(4, 4), true).unwrap(); // acked records are never held: no change
    s.mark_acked(r(6, 8)).unwrap(); // 5 stays unacknowledged, not held
    let report = evacuate(&mut s, &arch, at(2 * DAY + 10));
    let got: Vec<_> = report.archives.iter().map(|l| l.range).collect();
    assert_eq!(got, vec![r(1, 2), r(4, 4), r(6, 6)]);
    assert_eq!(report.records, 4);
    // 3 (held) and 5 (unacknowledged) stay; 7..=8 are younger than the retention.
    assert_eq!(stored_seqs(&s), vec![3, 5, 7, 8]);
    let u = s.usage().unwrap();
    assert_eq!((u.records, u.evacuated, u.held, u.unacked), (4, 4, 1, 2));
    assert_eq!(u.bytes, 4 * 88);
    // The archive reads back with the records as stored.
    let back = s
        .read_archived(&ds("billing"), r(1, 2), &arch, &keys())
        .unwrap();
    let fields: Vec<_> = back.iter().map(|x| (x.seq, x.fields[0].clone())).collect();
    assert_eq!(fields, vec![(1, "billing0".into()), (2, "billing1".into())]);
    assert_eq!(back[0].ingested_at, at(0));
}

#[test]
fn an_archive_has_the_name_index_line_and_content_of_des_evac_2_to_4() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 2);
    ingest(&mut s, "pipe", at(0), 1);
    ingest(&mut s, "billing", at(60), 1);
    s.mark_acked(r(1, 4)).unwrap();
    let report = evacuate(&mut s, &arch, at(2 * DAY));
    let epoch = s.epoch().unwrap();
    let names: Vec<_> = report.archives.iter().map(|l| l.file.clone()).collect();
    assert_eq!(
        names,
        vec![
            format!("GW0001_billing_{epoch}_00000000000000000001-00000000000000000002.sgwa"),
            format!("GW0001_pipe_{epoch}_00000000000000000003-00000000000000000003.sgwa"),
            format!("GW0001_billing_{epoch}_00000000000000000004-00000000000000000004.sgwa"),
        ]
    );
    let index = std::fs::read_to_string(arch.join("index.jsonl")).unwrap();
    let first = index.lines().next().unwrap();
    let sha = hex::encode(openssl::sha::sha256(
        &std::fs::read(arch.join(&names[0])).unwrap(),
    ));
    assert_eq!(
        first,
        format!(
            "{{\"file\":\"{}\",\"dataset\":\"billing\",\"epoch\":\"{epoch}\",\
             \"range\":{{\"first\":1,\"last\":2}},\"ingestedFrom\":\"2026-11-22T10:00:00+09:00\",\
             \"ingestedTo\":\"2026-11-22T10:00:00+09:00\",\"records\":2,\"sha256\":\"{sha}\"}}",
            names[0]
        )
    );
    assert_eq!(index.lines().count(), 3);
    assert!(index.ends_with('\n'));
    let text = open_by_hand(&arch.join(&names[0]));
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "{{\"format\":\"sgw-archive-v1\",\"gatewayId\":\"GW0001\",\"epoch\":\"{epoch}\",\
             \"dataset\":\"billing\",\"columns\":[{{\"name\":\"meter\",\"type\":\"string\",\
             \"masked\":false}},{{\"name\":\"name\",\"type\":\"string\",\"masked\":true}}],\
             \"range\":{{\"first\":1,\"last\":2}},\"records\":2,\
             \"createdAt\":\"2026-11-24T10:00:00+09:00\"}}"
        )
    );
    assert_eq!(
        lines[1],
        "{\"seq\":1,\"ingestedAt\":\"2026-11-22T10:00:00+09:00\",\"fields\":[\"billing0\",\"m1.k1.abc\"]}"
    );
    assert_eq!(lines.len(), 3);
    assert!(text.ends_with('\n'));
}

/// The own key's kid: the SHA-256 of the certificate (DES-SEAL-2), computed here.
fn own_kid() -> String {
    let (_, c, _) = key_and_cert();
    hex::encode(openssl::sha::sha256(&c.to_der().unwrap()))
}

/// Opens an archive by hand with the security functions: encrypted ZIP → signed ZIP → JSONL.
fn open_by_hand(path: &Path) -> String {
    let (k, c, _) = key_and_cert();
    let kid = own_kid();
    let mut signed = Vec::new();
    let f = std::fs::File::open(path).unwrap();
    let o =
        crate::security::file::decrypt_file(k, &kid, f, &mut signed, &Default::default()).unwrap();
    assert_eq!(o.name, "records.sig.zip");
    let mut jsonl = Vec::new();
    let pk = c.public_key().unwrap();
    let o = crate::security::file::verify_file(
        &pk,
        &kid,
        std::io::Cursor::new(signed),
        &mut jsonl,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(o.name, "records.jsonl");
    String::from_utf8(jsonl).unwrap()
}

/// Replaces the archive `file` by `jsonl` signed and encrypted with the own key (as the
/// gateway makes archives) and sets its SHA-256 in the index: what only the holder of the
/// key can make.
fn reseal(s: &Store, arch: &Path, file: &str, jsonl: &str) {
    let (k, c, _) = key_and_cert();
    let kid = own_kid();
    let signed = crate::security::file::sign_file(
        k,
        &kid,
        "records.jsonl",
        jsonl.as_bytes(),
        std::io::Cursor::new(Vec::new()),
    )
    .unwrap()
    .into_inner();
    let sealed = crate::security::file::encrypt_file(
        &c.public_key().unwrap(),
        &kid,
        crate::security::AesCbc::Aes256,
        "records.sig.zip",
        signed.as_slice(),
        std::io::Cursor::new(Vec::new()),
    )
    .unwrap()
    .into_inner();
    std::fs::write(arch.join(file), &sealed).unwrap();
    let sha = hex::encode(openssl::sha::sha256(&sealed));
    s.conn
        .execute(
            "UPDATE archives SET sha256 = ?1 WHERE file = ?2",
            params![sha, file],
        )
        .unwrap();
}

#[test]
fn an_archive_key_shows_its_kid_and_never_its_private_key_when_logged() {
    let (k, c, _) = key_and_cert();
    let key = ArchiveKey::new(k.clone(), c).unwrap();
    let shown = format!("{key:?} {:?}", keys());
    assert!(shown.starts_with("ArchiveKey"), "{shown}");
    assert!(shown.contains(&own_kid()), "{shown}");
    let pem = String::from_utf8(k.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let body: String = pem.lines().nth(1).unwrap().to_owned();
    assert!(!shown.contains(&body), "a line of the private key is shown");
    assert!(!shown.contains("PRIVATE"), "{shown}");
}

#[test]
fn an_archive_sealed_with_the_own_key_that_differs_from_its_index_is_refused() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 3);
    s.mark_acked(r(1, 3)).unwrap();
    let report = evacuate(&mut s, &arch, at(2 * DAY));
    let file = report.archives[0].file.clone();
    let text = open_by_hand(&arch.join(&file));
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 4, "{text}");
    let epoch = s.epoch().unwrap();
    let header = |from: &str, to: &str| vec![lines[0].replacen(from, to, 1)];
    let with = |head: Vec<String>, body: &[usize]| {
        let mut v = head;
        v.extend(body.iter().map(|&i| lines[i].clone()));
        v.join("\n") + "\n"
    };
    let all = [1, 2, 3];
    let cases: Vec<(&str, String)> = vec![
        (
            "header of another dataset",
            with(
                header("\"dataset\":\"billing\"", "\"dataset\":\"pipe\""),
                &all,
            ),
        ),
        (
            "header of another epoch",
            with(
                header(
                    &format!("\"epoch\":\"{epoch}\""),
                    "\"epoch\":\"00000000000000000000000000000000\"",
                ),
                &all,
            ),
        ),
        (
            "header of another range",
            with(header("\"first\":1", "\"first\":2"), &all),
        ),
        (
            "header counting 2 records",
            with(header("\"records\":3", "\"records\":2"), &all),
        ),
        (
            "header of another format",
            with(header("sgw-archive-v1", "sgw-archive-v0"), &all),
        ),
        (
            "a record line missing",
            with(vec![lines[0].clone()], &[1, 2]),
        ),
        (
            "record lines swapped",
            with(vec![lines[0].clone()], &[2, 1, 3]),
        ),
        (
            "a record line too many",
            with(vec![lines[0].clone()], &[1, 2, 3, 3]),
        ),
        (
            "a record with a field too few",
            with(vec![lines[0].clone()], &[1, 2])
                + &lines[3].replacen("\"fields\":[\"billing2\",", "\"fields\":[", 1)
                + "\n",
        ),
    ];
    for (what, jsonl) in &cases {
        assert_ne!(jsonl, &text, "{what}: the forgery changed nothing");
        reseal(&s, &arch, &file, jsonl);
        let e = s
            .read_archived(&ds("billing"), r(1, 3), &arch, &keys())
            .expect_err(what);
        assert!(matches!(e, StoreError::Archive { .. }), "{what}: {e}");
    }
    // The same content sealed again the same way reads back: the refusals were the content's.
    reseal(&s, &arch, &file, &text);
    let back = s
        .read_archived(&ds("billing"), r(1, 3), &arch, &keys())
        .unwrap();
    assert_eq!(back.len(), 3);
}

#[test]
fn a_tampered_or_missing_archive_is_refused_and_counts_as_no_longer_held() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 3);
    s.mark_acked(r(1, 3)).unwrap();
    let report = evacuate(&mut s, &arch, at(2 * DAY));
    let path = arch.join(&report.archives[0].file);
    let sel = s.select_resend(&by_seq(None, 1, 3), Some(&arch)).unwrap();
    assert_eq!(ranges(&sel), vec![("billing".into(), 1, 3, true)]);
    assert_eq!((sel.archived(), sel.code()), (3, ResultCode::Ok));
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let e = s
        .read_archived(&ds("billing"), r(1, 3), &arch, &keys())
        .unwrap_err();
    assert!(matches!(e, StoreError::Archive { .. }), "{e}");
    std::fs::remove_file(&path).unwrap();
    let sel = s.select_resend(&by_seq(None, 1, 3), Some(&arch)).unwrap();
    assert_eq!(sel.missing, vec![r(1, 3)]);
    assert_eq!(sel.code(), ResultCode::NotFound);
}

#[test]
fn reading_an_archive_back_checks_the_own_certificate_against_the_root_but_not_its_dates() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 2);
    s.mark_acked(r(1, 2)).unwrap();
    evacuate(&mut s, &arch, at(2 * DAY));
    // The expired own certificate reads (the fixture's certificate expired in 2020).
    assert_eq!(
        s.read_archived(&ds("billing"), r(1, 2), &arch, &keys())
            .unwrap()
            .len(),
        2
    );
    // The own certificate under another root of the same name is refused (DES-CERT-4
    // step 2), and so is it as another gateway's (step 3).
    let (k, c, _) = key_and_cert();
    let rogue_key = rsa();
    let rogue_root = cert(&rogue_key, "root", None, true, 2_000_000_000);
    let own = ArchiveKey::new(k.clone(), c).unwrap();
    let bad = ArchiveKeys::new(own.clone(), rogue_root, &gw());
    let e = s
        .read_archived(&ds("billing"), r(1, 2), &arch, &bad)
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Security {
                source: SecurityError::CertUntrusted,
                ..
            }
        ),
        "{e}"
    );
    let other = GatewayId::new("GW0002").unwrap();
    let bad = ArchiveKeys::new(own, key_and_cert().2.clone(), &other);
    let e = s
        .read_archived(&ds("billing"), r(1, 2), &arch, &bad)
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Security {
                source: SecurityError::CertWrongRole,
                ..
            }
        ),
        "{e}"
    );
}

/// Steps (1) and (2) of DES-EVAC-4 without step (3): what a crash right after the index
/// line leaves.
fn archive_without_step_3(s: &mut Store, arch: &Path, range: SeqRange) -> IndexLine {
    s.recover_archives(arch).unwrap();
    Evac::new().write(s, arch, range).unwrap()
}

#[test]
fn recovery_completes_an_indexed_archive_whose_rows_are_still_stored() {
    let (dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 3);
    s.mark_acked(r(1, 3)).unwrap();
    let line = archive_without_step_3(&mut s, &arch, r(1, 3));
    // Both: rows and indexed archive. A resend takes the stored copy.
    assert_eq!(stored_seqs(&s), vec![1, 2, 3]);
    let sel = s.select_resend(&by_seq(None, 1, 3), Some(&arch)).unwrap();
    assert_eq!(ranges(&sel), vec![("billing".into(), 1, 3, false)]);
    drop(s);
    let mut s = Store::open(&dir.path().join("store")).unwrap();
    let rep = s.recover_archives(&arch).unwrap();
    assert_eq!(rep.completed, vec![line.file.clone()]);
    assert_eq!(stored_seqs(&s), Vec::<u64>::new());
    assert_eq!(s.usage().unwrap().evacuated, 3);
    let back = s
        .read_archived(&ds("billing"), r(1, 3), &arch, &keys())
        .unwrap();
    assert_eq!(back.len(), 3);
    // Idempotent.
    let rep = s.recover_archives(&arch).unwrap();
    assert_eq!(rep, RecoveryReport::default());
}

#[test]
fn recovery_deletes_an_unindexed_archive_and_temporaries_and_cuts_a_torn_index_line() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 3);
    s.mark_acked(r(1, 3)).unwrap();
    let line = archive_without_step_3(&mut s, &arch, r(1, 3));
    // The crash hit the index append: only part of the line reached the disk.
    let index = arch.join("index.jsonl");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(&index, &text[..text.len() / 2]).unwrap();
    std::fs::write(arch.join(format!("{}.tmp", line.file)), b"partial").unwrap();
    let rep = s.recover_archives(&arch).unwrap();
    assert!(rep.torn_index_line);
    assert_eq!(rep.unindexed_removed, vec![line.file.clone()]);
    assert_eq!(rep.temporaries_removed, vec![format!("{}.tmp", line.file)]);
    assert!(!arch.join(&line.file).exists());
    assert_eq!(std::fs::read_to_string(&index).unwrap(), "");
    assert_eq!(stored_seqs(&s), vec![1, 2, 3]);
    // The records are evacuated again, under the same name.
    let report = evacuate(&mut s, &arch, at(2 * DAY));
    assert_eq!(report.archives[0].file, line.file);
    assert_eq!(stored_seqs(&s), Vec::<u64>::new());
}

#[test]
fn recovery_keeps_an_unindexed_archive_whose_records_are_not_stored() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 3);
    s.mark_acked(r(1, 3)).unwrap();
    let report = evacuate(&mut s, &arch, at(2 * DAY));
    // An operator lost index.jsonl: the archive is the only copy and must stay.
    std::fs::remove_file(arch.join("index.jsonl")).unwrap();
    let rep = s.recover_archives(&arch).unwrap();
    assert!(rep.unindexed_removed.is_empty());
    assert_eq!(rep.problems.len(), 1);
    assert!(arch.join(&report.archives[0].file).exists());
}

#[test]
fn evacuation_never_overwrites_an_existing_archive_name() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 1);
    s.mark_acked(r(1, 1)).unwrap();
    std::fs::create_dir_all(&arch).unwrap();
    let name = archive_name(&gw(), &ds("billing"), &s.epoch().unwrap(), r(1, 1));
    // A file under that name appeared after the pass's repair (written straight to step 1).
    std::fs::write(arch.join(&name), b"not ours").unwrap();
    let e = Evac::new().write(&s, &arch, r(1, 1)).unwrap_err();
    assert!(matches!(e, StoreError::Archive { .. }), "{e}");
    assert_eq!(std::fs::read(arch.join(&name)).unwrap(), b"not ours");
    assert_eq!(stored_seqs(&s), vec![1]);
}

#[test]
fn a_long_run_is_split_into_archives_of_at_most_the_payload_limit() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 5);
    s.mark_acked(r(1, 5)).unwrap();
    let e = Evac::new();
    // Each line counts 24 + 100 bytes: three per archive (372 ≤ 400 < 496).
    let report = s.evacuate(at(2 * DAY), &e.pass(&arch, 400, &[])).unwrap();
    let got: Vec<_> = report.archives.iter().map(|l| l.range).collect();
    assert_eq!(got, vec![r(1, 3), r(4, 5)]);
    let back = s
        .read_archived(&ds("billing"), r(2, 5), &arch, &e.k)
        .unwrap();
    assert_eq!(
        back.iter().map(|x| x.seq).collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );
}

#[test]
fn an_archive_over_several_ingests_gives_each_record_its_ingest_time_and_the_index_their_span() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    // The second file ingested after the clock was set back a minute: the span is the
    // earliest and latest ingest, not the first and last.
    ingest(&mut s, "billing", at(60), 2);
    ingest(&mut s, "billing", at(0), 1);
    ingest(&mut s, "billing", at(120), 2);
    s.mark_acked(r(1, 5)).unwrap();
    let report = evacuate(&mut s, &arch, at(2 * DAY));
    assert_eq!(report.archives.len(), 1, "{report:?}");
    let line = &report.archives[0];
    assert_eq!(line.range, r(1, 5));
    assert_eq!(line.ingested_from, "2026-11-22T10:00:00+09:00");
    assert_eq!(line.ingested_to, "2026-11-22T10:02:00+09:00");
    let back = s
        .read_archived(&ds("billing"), r(1, 5), &arch, &keys())
        .unwrap();
    let times: Vec<_> = back.iter().map(|x| (x.seq, x.ingested_at)).collect();
    assert_eq!(
        times,
        vec![
            (1, at(60)),
            (2, at(60)),
            (3, at(0)),
            (4, at(120)),
            (5, at(120))
        ]
    );
}

#[test]
fn no_archive_is_written_over_an_unacknowledged_record_or_another_dataset() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    std::fs::create_dir_all(&arch).unwrap();
    ingest(&mut s, "billing", at(0), 3);
    ingest(&mut s, "pipe", at(0), 1);
    let ev = Evac::new();
    let write = |s: &Store, range| ev.write(s, &arch, range);
    // Seq 2 not acknowledged (DES-EVAC-1). (Held records are unacknowledged by construction:
    // `mark_held` only touches unacknowledged rows and `mark_acked` clears `held`.)
    s.mark_acked(r(1, 1)).unwrap();
    s.mark_acked(r(3, 4)).unwrap();
    let e = write(&s, r(1, 3)).unwrap_err();
    assert!(matches!(e, StoreError::Archive { .. }), "{e:?}");
    s.mark_acked(r(2, 2)).unwrap();
    // Seq 4 is pipe's.
    let e = write(&s, r(2, 4)).unwrap_err();
    assert!(matches!(e, StoreError::Archive { .. }), "{e:?}");
    let left: Vec<_> = std::fs::read_dir(&arch).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let line = write(&s, r(1, 3)).unwrap();
    assert_eq!(line.records, 3);
}

fn running_core(cap: u64) -> GatewayCore {
    let mut cfg = GatewayConfig::new(gw(), vec![ds("billing"), ds("pipe")]);
    cfg.max_records_per_message = cap;
    let mut snap = GatewayCore::new(cfg.clone(), StoreEpoch::from_bytes([7; 16]), at(0)).snapshot();
    snap.periodic.running = true;
    snap.periodic.interval_sec = 60;
    GatewayCore::restore(cfg, snap, at(0))
}

#[test]
fn message_units_split_like_the_core() {
    // Sizes that cross the count cap and the byte bound in every way; the first two sum to
    // exactly MAX_MESSAGE_RECORD_BYTES (one unit), the third starts the next.
    let mut sizes = vec![65_536, 49_152, 1];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sizes.push(match x % 4 {
            0 => 65_536,
            1 => (x % 60_000) as u32,
            _ => (x % 300) as u32,
        });
    }
    for cap in [1, 7, 1000] {
        let mut core = running_core(cap);
        let range = core.handle_ingest(at(0), &ds("billing"), &sizes).unwrap();
        let ours = message_units(range.first, &sizes, cap);
        let core_units: Vec<_> = core.batches().iter().map(|b| (b.range, b.bytes)).collect();
        assert_eq!(ours, core_units, "cap {cap}");
    }
}

#[test]
fn the_snapshot_carries_acked_and_held_to_the_rows_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let mut core = running_core(2);
    let ing = s.ingest_file(&ds("billing"), at(0), rows(4, "b")).unwrap();
    assert_eq!(
        core.handle_ingest(at(0), &ds("billing"), &ing.record_bytes)
            .unwrap(),
        ing.range
    );
    let mut snap = core.snapshot();
    snap.batches[0].acked = true; // 1..=2 acknowledged
    snap.batches[1].held = true; // 3..=4 given up
    s.save_snapshot(&snap).unwrap();
    let flags: Vec<(i64, bool, bool)> = s
        .conn
        .prepare("SELECT seq, acked, held FROM records ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|x| x.unwrap())
        .collect();
    assert_eq!(
        flags,
        vec![
            (1, true, false),
            (2, true, false),
            (3, false, true),
            (4, false, true)
        ]
    );
    assert_eq!(s.usage().unwrap().held, 2);
    drop(s);
    let mut s = Store::open(dir.path()).unwrap();
    let back = s.load_snapshot(2).unwrap();
    assert_eq!(back.batches, snap.batches);
    // The saved core counted boot 2 (made by `restore`), which the store adopted: this
    // process is boot 3, and the loaded snapshot says 2 so that `restore` yields 3.
    assert_eq!(s.boot_count(), 3);
    assert_eq!(back.boot_count, 2);
    let core = GatewayCore::restore(GatewayConfig::new(gw(), vec![ds("billing")]), back, at(9));
    assert_eq!(core.boot_count(), s.boot_count());
}

#[test]
fn after_a_crash_between_ingest_and_snapshot_the_loaded_snapshot_indexes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let mut core = running_core(3);
    let a = s.ingest_file(&ds("billing"), at(0), rows(2, "a")).unwrap();
    core.handle_ingest(at(0), &ds("billing"), &a.record_bytes)
        .unwrap();
    s.save_snapshot(&core.snapshot()).unwrap();
    // Committed, then killed before the snapshot.
    let b = s.ingest_file(&ds("pipe"), at(5), rows(7, "p")).unwrap();
    drop(s);
    let mut s = Store::open(dir.path()).unwrap();
    let loaded = s.load_snapshot(3).unwrap();
    core.handle_ingest(at(5), &ds("pipe"), &b.record_bytes)
        .unwrap();
    let expected = core.snapshot();
    assert_eq!(loaded.batches, expected.batches);
    assert_eq!(loaded.next_seq, 10);
}

/// A loaded batch as (first, last, acked, archived).
type BatchFlags = (u64, u64, bool, bool);

/// Ingests 5 records into a store and a core of message cap `cap`, saves a snapshot with the
/// first `acked` batches acknowledged, evacuates all but `pinned` and — as after a crash before
/// the next snapshot — opens the store again. Returns the archives written and the loaded
/// snapshot's batches.
fn crash_between_evacuation_and_snapshot(
    cap: u64,
    acked: usize,
    pinned: &[SeqRange],
) -> (Vec<SeqRange>, Vec<BatchFlags>) {
    let (dir, arch, mut s) = store_with_archive_dir();
    let mut core = running_core(cap);
    let a = s.ingest_file(&ds("billing"), at(0), rows(5, "a")).unwrap();
    core.handle_ingest(at(0), &ds("billing"), &a.record_bytes)
        .unwrap();
    let mut snap = core.snapshot();
    for b in &mut snap.batches[..acked] {
        b.acked = true;
    }
    s.save_snapshot(&snap).unwrap();
    let report = evacuate_pinned(&mut s, &arch, at(2 * DAY), pinned);
    drop(s);
    let mut s = Store::open(&dir.path().join("store")).unwrap();
    let loaded = s.load_snapshot(cap).unwrap();
    let archives = report.archives.iter().map(|l| l.range).collect();
    let flags = loaded
        .batches
        .iter()
        .map(|b| (b.range.first, b.range.last, b.acked, b.archived))
        .collect();
    (archives, flags)
}

#[test]
fn after_a_crash_between_evacuation_and_snapshot_the_loaded_snapshot_marks_archived() {
    // Batches of 2: 1..=2 and 3..=4 acknowledged and archived together.
    let (archives, flags) = crash_between_evacuation_and_snapshot(2, 2, &[]);
    assert_eq!(archives, vec![r(1, 4)]);
    assert_eq!(
        flags,
        vec![(1, 2, true, true), (3, 4, true, true), (5, 5, false, false)]
    );
}

#[test]
fn after_a_crash_between_evacuation_and_snapshot_a_batch_archived_in_part_is_split() {
    // One batch 1..=4 acknowledged; 3..=4 still pinned (read by a resend): only 1..=2 goes.
    let (archives, flags) = crash_between_evacuation_and_snapshot(4, 1, &[r(3, 4)]);
    assert_eq!(archives, vec![r(1, 2)]);
    assert_eq!(
        flags,
        vec![
            (1, 2, true, true),
            (3, 4, true, false),
            (5, 5, false, false)
        ]
    );
}

#[test]
fn a_newer_schema_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    {
        let c = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        c.pragma_update(None, "user_version", 2).unwrap();
    }
    let e = Store::open(dir.path()).err().unwrap();
    assert!(
        matches!(
            e,
            StoreError::SchemaTooNew {
                found: 2,
                supported: 1
            }
        ),
        "{e}"
    );
    let c = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let boot: i64 = c
        .query_row("SELECT boot_count FROM meta", params![], |r| r.get(0))
        .unwrap();
    assert_eq!(boot, 1, "the refused open did not count a boot");
}

#[test]
fn records_still_to_be_sent_are_not_evacuated_and_split_the_run() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 8); // 1..=8
    s.mark_acked(r(1, 8)).unwrap();
    let report = evacuate_pinned(&mut s, &arch, at(2 * DAY), &[r(3, 4), r(7, 7)]);
    let got: Vec<_> = report.archives.iter().map(|l| l.range).collect();
    assert_eq!(got, vec![r(1, 2), r(5, 6), r(8, 8)]);
    assert_eq!(stored_seqs(&s), vec![3, 4, 7]);
    // Unpinned later, they go at the next pass.
    evacuate(&mut s, &arch, at(2 * DAY + 1));
    assert!(stored_seqs(&s).is_empty());
}

#[test]
fn export_interleaves_archived_and_stored_records_in_seq_order_and_refuses_a_tampered_archive() {
    let (dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 6); // 1..=6
    ingest(&mut s, "billing", at(2 * DAY), 2); // 7..=8
    s.mark_acked(r(1, 2)).unwrap();
    s.mark_acked(r(4, 4)).unwrap();
    let report = evacuate(&mut s, &arch, at(2 * DAY + 10));
    assert_eq!(report.records, 3); // 1, 2, 4
    let mut got = Vec::new();
    let sum = s
        .export(&arch, &keys(), |rec| {
            got.push((rec.seq, rec.place, rec.acked, rec.fields[0].clone()));
            Ok(())
        })
        .unwrap();
    assert_eq!((sum.primary, sum.archived), (5, 3));
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert_eq!(got[0], (1, "archive", true, "billing0".into()));
    assert_eq!(got[2], (3, "primary", false, "billing2".into()));
    assert_eq!(got[3].1, "archive");
    assert_eq!(got[6].3, "billing0", "second file's first row");

    // A tool open does not count a boot and sees the gateway's lock.
    let boots = s.boot_count();
    drop(s);
    let t = Store::open_existing(&dir.path().join("store")).unwrap();
    assert_eq!(t.boot_count(), boots);
    assert!(matches!(
        Store::open_existing(&dir.path().join("store")),
        Err(StoreError::Locked(_))
    ));
    assert!(Store::open_existing(&dir.path().join("nothing")).is_err());

    // A damaged archive stops the export with the archive's rule.
    let file = std::fs::read_dir(&arch)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "sgwa"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let e = t.export(&arch, &keys(), |_| Ok(())).unwrap_err();
    assert!(e.to_string().contains("DES-EVAC"), "{e}");
}

#[test]
fn export_of_a_store_whose_records_are_all_archived_reads_every_archive() {
    let (_dir, arch, mut s) = store_with_archive_dir();
    ingest(&mut s, "billing", at(0), 3); // 1..=3
    ingest(&mut s, "pipe", at(0), 2); // 4..=5
    s.mark_acked(r(1, 5)).unwrap();
    let report = evacuate(&mut s, &arch, at(2 * DAY));
    assert_eq!((report.records, report.archives.len()), (5, 2));
    assert!(stored_seqs(&s).is_empty());
    let mut got = Vec::new();
    let sum = s
        .export(&arch, &keys(), |rec| {
            got.push((rec.seq, rec.dataset.clone(), rec.place));
            Ok(())
        })
        .unwrap();
    assert_eq!((sum.primary, sum.archived), (0, 5));
    assert_eq!(
        got,
        vec![
            (1, "billing".to_owned(), "archive"),
            (2, "billing".to_owned(), "archive"),
            (3, "billing".to_owned(), "archive"),
            (4, "pipe".to_owned(), "archive"),
            (5, "pipe".to_owned(), "archive"),
        ]
    );
}

#[test]
fn a_second_process_cannot_open_a_store_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _s = Store::open(dir.path()).unwrap();
    let e = Store::open(dir.path()).err().unwrap();
    assert!(matches!(e, StoreError::Locked(_)), "{e}");
}

#[test]
fn a_halted_owner_thread_runs_nothing_after_the_job_it_was_running() {
    let dir = tempfile::tempdir().unwrap();
    let (h, thread) = StoreHandle::spawn(Store::open(dir.path()).unwrap()).unwrap();
    h.ingest_file(ds("billing"), at(0), rows(3, "x")).unwrap();
    // The thread is halted while a job runs (as a crash between two jobs); the ingest queued
    // behind that job never runs, its caller sees Closed.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    h.submit(move |_| wait.recv().unwrap(), |_| {}).unwrap();
    let queued = {
        let h = h.clone();
        std::thread::spawn(move || h.ingest_file(ds("billing"), at(1), rows(4, "y")))
    };
    // Queued before or after the halt, or submitted once the thread is gone: never run.
    thread.halt();
    go.send(()).unwrap();
    assert!(matches!(
        queued.join().unwrap(),
        Err(IngestFailure::Store(StoreError::Closed))
    ));
    assert!(matches!(h.call(|s| s.last_seq()), Err(StoreError::Closed)));
    drop(h);
    thread.join().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.last_seq().unwrap(), 3);
}

#[test]
fn an_owner_thread_armed_at_the_next_ingest_commit_runs_nothing_after_that_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (h, thread) = StoreHandle::spawn(Store::open(dir.path()).unwrap()).unwrap();
    thread.halt_at(CrashPoint::AfterIngestCommit);
    // Jobs that commit no upload do not reach the crash point.
    assert_eq!(h.call(|s| s.last_seq()).unwrap().unwrap(), 0);
    let failing = vec![Ok(vec!["a".to_owned()]), Err("551".to_owned())];
    assert!(matches!(
        h.ingest_file(ds("billing"), at(0), failing),
        Err(IngestFailure::Source(_))
    ));
    assert_eq!(h.call(|s| s.commits()).unwrap(), Commits::default());
    // The commit's own reply goes out; the job after it (the core's snapshot, in the
    // gateway) never runs.
    let done = h.ingest_file(ds("billing"), at(1), rows(3, "x")).unwrap();
    assert_eq!(done.range, r(1, 3));
    assert!(matches!(h.call(|s| s.usage()), Err(StoreError::Closed)));
    drop(h);
    thread.join().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.last_seq().unwrap(), 3);
    // No snapshot was saved after the commit: the loaded one indexes the file from the
    // ingest table (the restart's recovery, `add_missing_batches`).
    let loaded = s.load_snapshot(1000).unwrap();
    assert_eq!(
        loaded.batches.iter().map(|b| b.range).collect::<Vec<_>>(),
        vec![r(1, 3)]
    );
}

#[test]
fn an_owner_thread_armed_at_the_next_evacuation_commit_runs_nothing_after_it() {
    let (dir, arch, s) = store_with_archive_dir();
    let (h, thread) = StoreHandle::spawn(s).unwrap();
    h.ingest_file(ds("billing"), at(0), rows(3, "x")).unwrap();
    h.call(|s| s.mark_acked(r(1, 3))).unwrap().unwrap();
    thread.halt_at(CrashPoint::AfterEvacuationCommit);
    let a = arch.clone();
    let report = h.call(move |s| evacuate(s, &a, at(2 * DAY))).unwrap();
    assert_eq!(report.archives.len(), 1);
    assert!(matches!(h.call(|s| s.last_seq()), Err(StoreError::Closed)));
    drop(h);
    thread.join().unwrap();
    let s = Store::open(&dir.path().join("store")).unwrap();
    assert_eq!(s.usage().unwrap().evacuated, 3);
}

#[test]
fn the_owner_thread_streams_an_ingest_and_rolls_back_a_failed_one() {
    let dir = tempfile::tempdir().unwrap();
    let (h, thread) = StoreHandle::spawn(Store::open(dir.path()).unwrap()).unwrap();
    let ok = h
        .ingest_file(ds("billing"), at(0), rows(1000, "x"))
        .unwrap();
    assert_eq!(ok.range, r(1, 1000));
    let failing = (0..2000).map(|i| {
        if i == 1500 {
            Err("551 line 1501".to_string())
        } else {
            Ok(vec![format!("y{i}")])
        }
    });
    match h.ingest_file(ds("billing"), at(1), failing) {
        Err(IngestFailure::Source(e)) => assert_eq!(e, "551 line 1501"),
        other => panic!("{other:?}"),
    }
    let h2 = h.clone();
    let usage = std::thread::spawn(move || h2.call(|s| s.usage()).unwrap().unwrap())
        .join()
        .unwrap();
    assert_eq!((usage.records, usage.last_seq), (1000, 1000));
    let (tx, rx) = std::sync::mpsc::channel();
    h.submit(|s| s.last_seq().unwrap(), move |v| tx.send(v).unwrap())
        .unwrap();
    assert_eq!(rx.recv().unwrap(), 1000);
    drop(h);
    thread.join().unwrap();
}
