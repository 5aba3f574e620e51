//! Evacuation (ST-EVAC-1, DES-EVAC-1..6): acknowledged, not held records older than the
//! retention are written to archive files, indexed, and only then deleted from primary
//! storage; archived records are read back for a resend.
//!
//! One archive per dataset and run (DES-EVAC-2), named
//! `{gatewayId}_{dataset}_{epoch}_{first:020}-{last:020}.sgwa`, never overwritten. Content
//! (DES-EVAC-3): `records.jsonl` (header line, then one line per record), signed as a
//! DES-FILE-1 signed ZIP with the gateway's own data-protection key, that signed ZIP
//! (`records.sig.zip`) encrypted as a DES-FILE-2 encrypted ZIP to the gateway's own
//! certificate ([`crate::security::file`]: `sign_file`, `encrypt_file`, `decrypt_file`,
//! `verify_file`, which take keys directly). Reading back checks the own certificate by
//! DES-CERT-4 steps 1–4 only ([`crate::security::cert::validate_cert_timeless`], added for
//! this): an expired own certificate still proves the archive unchanged.
//!
//! Crash safety (DES-EVAC-4), per archive: (1) `{file}.tmp` written, fsynced, linked to
//! `{file}` (a hard link fails if the name exists: never overwritten), the temporary removed,
//! the directory fsynced; (2) the index line appended to `index.jsonl` and fsynced; (3) one
//! store transaction records the archive in `archives` and deletes its rows. At every moment
//! each record is in primary storage, or in a durable indexed archive, or both — never
//! neither. [`Store::recover_archives`], run at the start of every pass (and by a runtime right
//! after [`Store::open`]), repairs what a crash left, before anything new is evacuated:
//! temporaries (`*.tmp`) are deleted; a torn last index line (no LF: the crash hit the append)
//! is cut off; an archive with an index line but not in `archives` gets step (3) completed
//! (after its SHA-256 is checked against the line); an archive without an index line is
//! deleted if all its records are still in primary storage (they are evacuated again), and
//! kept and reported otherwise (never delete the only copy).

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use openssl::pkey::{PKey, Private, Public};
use openssl::x509::X509;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::{
    ROW_OVERHEAD_BYTES, Store, StoreError, fmt_time, parse_time, sq, sync_dir, time_ns, us,
};
use crate::profile::Column;
use crate::protocol::{Dataset, GatewayId, Seq, SeqRange, StoreEpoch, Time};
use crate::security::cert::validate_cert_timeless;
use crate::security::file::{decrypt_file, encrypt_file, sign_file, verify_file};
use crate::security::{AesCbc, Identity, KeyStore, SecurityError, ZipLimits};

/// The `format` of an archive's header line (DES-EVAC-3).
pub const ARCHIVE_FORMAT: &str = "sgw-archive-v1";
/// The index file in the evacuation directory (DES-EVAC-4).
pub const INDEX_FILE: &str = "index.jsonl";
/// The payload name inside the signed ZIP (DES-EVAC-3).
pub const PAYLOAD_NAME: &str = "records.jsonl";
/// The name of the signed ZIP inside the encrypted ZIP (DES-EVAC-3).
pub const SIGNED_NAME: &str = "records.sig.zip";
/// Largest `records.jsonl` of one archive (DES-EVAC-2, DES-FILE-4: 4 GiB); a longer run is
/// split.
pub const MAX_ARCHIVE_PAYLOAD_BYTES: u64 = 4 << 30;

/// One data-protection key pair of the gateway, for its own archives.
#[derive(Clone)]
pub struct ArchiveKey {
    key: PKey<Private>,
    cert: X509,
    public: PKey<Public>,
    kid: String,
}

impl std::fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl ArchiveKey {
    /// The key and its certificate (the kid is the hex SHA-256 of the certificate's DER, as
    /// everywhere in DES-FILE-*). Refused if the certificate is not the key's.
    pub fn new(key: PKey<Private>, cert: &X509) -> Result<Self, StoreError> {
        let sec = |source: SecurityError| StoreError::Security {
            file: String::new(),
            source,
        };
        let der = cert.to_der().map_err(|e| sec(e.into()))?;
        let public = cert.public_key().map_err(|e| sec(e.into()))?;
        if !key.public_eq(&public) {
            return Err(StoreError::Archive {
                file: String::new(),
                what: "the archive key does not belong to its certificate".into(),
            });
        }
        Ok(ArchiveKey {
            key,
            cert: cert.clone(),
            public,
            kid: hex::encode(openssl::sha::sha256(&der)),
        })
    }

    /// The gateway's own data-protection key and certificate from its key store.
    pub fn from_keystore(keys: &KeyStore) -> Result<Self, StoreError> {
        Self::new(keys.own_key().clone(), &keys.own().cert)
    }
}

/// The keys for archives: the current one writes; it and the earlier ones read (DES-EVAC-3:
/// earlier keys are kept as long as archives made with them exist). Reading checks the
/// certificate of the key that verifies by DES-CERT-4 steps 1–4 against `root` as the
/// gateway's own (`owner`), not its validity period or the CRL.
#[derive(Debug, Clone)]
pub struct ArchiveKeys {
    /// Signs and encrypts new archives.
    pub current: ArchiveKey,
    /// Earlier keys, for reading older archives.
    pub previous: Vec<ArchiveKey>,
    /// The data-protection root (DES-CERT-3).
    pub root: X509,
    /// The gateway itself: role gateway, CN = its ID (DES-CERT-4 step 3).
    pub owner: Identity,
}

impl ArchiveKeys {
    /// Only the current key, of gateway `gateway_id` under `root`.
    pub fn new(current: ArchiveKey, root: X509, gateway_id: &GatewayId) -> Self {
        ArchiveKeys {
            current,
            previous: Vec::new(),
            root,
            owner: Identity::gateway(gateway_id.as_str()),
        }
    }
    /// The own key, certificate and root of a key store.
    pub fn from_keystore(keys: &KeyStore, gateway_id: &GatewayId) -> Result<Self, StoreError> {
        Ok(Self::new(
            ArchiveKey::from_keystore(keys)?,
            keys.root().clone(),
            gateway_id,
        ))
    }
    fn all(&self) -> impl Iterator<Item = &ArchiveKey> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

/// The settings of an evacuation pass (DES-PROV-2 `[storage]`, DES-EVAC-1).
#[derive(Debug, Clone)]
pub struct Evacuation<'a> {
    /// This gateway (DES-ID-1), for archive names and headers.
    pub gateway_id: &'a GatewayId,
    /// `evacuation_dir`.
    pub dir: &'a Path,
    /// The gateway's data-protection keys.
    pub keys: &'a ArchiveKeys,
    /// The columns of each dataset (archive header, DES-PROF-2). A run of a dataset without
    /// columns here is skipped (reported, stays in primary storage).
    pub columns: &'a BTreeMap<Dataset, Vec<Column>>,
    /// `retention_days`: records ingested longer ago than this before the pass started.
    pub retention: chrono::Duration,
    /// Largest `records.jsonl` per archive ([`MAX_ARCHIVE_PAYLOAD_BYTES`]).
    pub max_payload_bytes: u64,
    /// Records still to be sent from primary storage (DES-EVAC-1): never evacuated.
    pub pinned: &'a [SeqRange],
}

/// One line of `index.jsonl` (DES-EVAC-4), members in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexLine {
    /// The archive's file name.
    pub file: String,
    /// Its dataset.
    pub dataset: Dataset,
    /// The epoch at evacuation.
    pub epoch: StoreEpoch,
    /// Its seqs.
    pub range: SeqRange,
    /// Earliest ingest time in it (DES-ENV-2).
    pub ingested_from: String,
    /// Latest ingest time in it.
    pub ingested_to: String,
    /// Number of records (`range` length).
    pub records: u64,
    /// Lower-case hex SHA-256 of the `.sgwa` file.
    pub sha256: String,
}

/// The header line of `records.jsonl` (DES-EVAC-3), members in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArchiveHeader {
    format: String,
    gateway_id: GatewayId,
    epoch: StoreEpoch,
    dataset: Dataset,
    columns: Vec<Column>,
    range: SeqRange,
    records: u64,
    created_at: String,
}

/// One record line of `records.jsonl` (DES-EVAC-3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RecordLine {
    seq: Seq,
    ingested_at: String,
    fields: Vec<String>,
}

/// A record read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedRecord {
    /// Its seq.
    pub seq: Seq,
    /// When it was ingested.
    pub ingested_at: Time,
    /// Its fields as stored (masked columns masked).
    pub fields: Vec<String>,
}

/// What [`Store::recover_archives`] repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Temporaries deleted.
    pub temporaries_removed: Vec<String>,
    /// A torn last index line was cut off.
    pub torn_index_line: bool,
    /// Archives whose step (3) was completed (rows deleted now).
    pub completed: Vec<String>,
    /// Archives without an index line, deleted (their records are still stored).
    pub unindexed_removed: Vec<String>,
    /// What could not be repaired and was left alone (anomaly kind `storage`).
    pub problems: Vec<String>,
}

/// What an evacuation pass did (DES-EVAC-6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvacuationReport {
    /// The repair at the start of the pass.
    pub recovery: RecoveryReport,
    /// The archives made, in order; `core.handle_evacuated(line.range)` for each.
    pub archives: Vec<IndexLine>,
    /// Records evacuated by this pass.
    pub records: u64,
    /// Runs left in primary storage, and why.
    pub skipped: Vec<String>,
}

/// Removes the listed files when dropped (temporaries of one archive).
struct TmpGuard(Vec<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

/// `{gatewayId}_{dataset}_{epoch}_{first:020}-{last:020}.sgwa` (DES-EVAC-2).
pub fn archive_name(gw: &GatewayId, dataset: &Dataset, epoch: &StoreEpoch, r: SeqRange) -> String {
    format!(
        "{}_{}_{}_{:020}-{:020}.sgwa",
        gw.as_str(),
        dataset.as_str(),
        epoch.as_str(),
        r.first,
        r.last
    )
}

/// The dataset and range of an archive name (DES-EVAC-2); `None` if it is not one.
fn parse_archive_name(name: &str) -> Option<(String, SeqRange)> {
    let stem = name.strip_suffix(".sgwa")?;
    let (_gw, rest) = stem.split_once('_')?;
    let (rest, range) = rest.rsplit_once('_')?;
    let (dataset, _epoch) = rest.rsplit_once('_')?;
    let (f, l) = range.split_once('-')?;
    Some((
        dataset.to_string(),
        SeqRange::new(f.parse().ok()?, l.parse().ok()?)?,
    ))
}

fn sha256_file(path: &Path) -> Result<String, StoreError> {
    let mut f = File::open(path).map_err(StoreError::io("open", path))?;
    let mut h = openssl::sha::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(StoreError::io("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finish()))
}

fn json_line<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("serialize: {e}")))
}

/// Reads `index.jsonl`, cutting off a torn last line (no LF) first.
fn read_index(dir: &Path, report: &mut RecoveryReport) -> Result<Vec<IndexLine>, StoreError> {
    let path = dir.join(INDEX_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("read", &path)(e)),
    };
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < bytes.len() {
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(StoreError::io("open", &path))?;
        f.set_len(complete as u64)
            .and_then(|()| f.sync_all())
            .map_err(StoreError::io("truncate torn line of", &path))?;
        report.torn_index_line = true;
    }
    let text = std::str::from_utf8(&bytes[..complete])
        .map_err(|_| StoreError::Corrupt(format!("{INDEX_FILE} is not UTF-8")))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<IndexLine>(l)
                .map_err(|e| StoreError::Corrupt(format!("{INDEX_FILE} line {}: {e}", i + 1)))
        })
        .collect()
}

impl Store {
    /// Repairs what a crash left in the evacuation directory `dir` (DES-EVAC-4, see the module
    /// doc). Idempotent; a damaged index (a complete line that does not parse) stops it
    /// before anything is deleted.
    pub fn recover_archives(&mut self, dir: &Path) -> Result<RecoveryReport, StoreError> {
        let mut report = RecoveryReport::default();
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(StoreError::io("create evacuation directory", dir))?;
            super::restrict_dir(dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(StoreError::io("list", dir))? {
            let entry = entry.map_err(StoreError::io("list", dir))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        for name in names.iter().filter(|n| n.ends_with(".tmp")) {
            let p = dir.join(name);
            fs::remove_file(&p).map_err(StoreError::io("remove", &p))?;
            report.temporaries_removed.push(name.clone());
        }
        let lines = read_index(dir, &mut report)?;
        let known: HashSet<String> = self.archive_rows()?.into_iter().map(|a| a.file).collect();
        for line in lines.iter().filter(|l| !known.contains(&l.file)) {
            let p = dir.join(&line.file);
            if !p.is_file() {
                report
                    .problems
                    .push(format!("{}: indexed but missing; its rows stay", line.file));
                continue;
            }
            if sha256_file(&p)? != line.sha256 {
                report.problems.push(format!(
                    "{}: SHA-256 differs from its index line; its rows stay",
                    line.file
                ));
                continue;
            }
            match self.complete_archive(line)? {
                Ok(()) => report.completed.push(line.file.clone()),
                Err(what) => report.problems.push(format!("{}: {what}", line.file)),
            }
        }
        let indexed: HashSet<&str> = lines.iter().map(|l| l.file.as_str()).collect();
        for name in names.iter().filter(|n| n.ends_with(".sgwa")) {
            if indexed.contains(name.as_str()) {
                continue;
            }
            let all_stored = match parse_archive_name(name) {
                Some((dataset, range)) => {
                    let n: i64 = self
                        .conn
                        .query_row(
                            "SELECT count(*) FROM records WHERE seq BETWEEN ?1 AND ?2 AND dataset = ?3",
                            params![sq(range.first), sq(range.last), dataset],
                            |r| r.get(0),
                        )
                        .map_err(StoreError::sql("count archived rows"))?;
                    us(n) == range.len()
                }
                None => false,
            };
            if all_stored {
                let p = dir.join(name);
                fs::remove_file(&p).map_err(StoreError::io("remove", &p))?;
                report.unindexed_removed.push(name.clone());
            } else {
                report.problems.push(format!(
                    "{name}: not indexed and its records are not all in primary storage; kept"
                ));
            }
        }
        if !report.temporaries_removed.is_empty() || !report.unindexed_removed.is_empty() {
            sync_dir(dir)?;
        }
        Ok(report)
    }

    /// One evacuation pass at `now` (DES-EVAC-1): repair ([`Self::recover_archives`]), then
    /// archive every run of acknowledged, not held records ingested before
    /// `now - retention`, each made in the three steps of DES-EVAC-4. Stops at the first
    /// failure (DES-EVAC-6): what was archived stays archived, the rest stays stored.
    pub fn evacuate(
        &mut self,
        now: Time,
        ev: &Evacuation<'_>,
    ) -> Result<EvacuationReport, StoreError> {
        let recovery = self.recover_archives(ev.dir)?;
        let cutoff = time_ns(&(now - ev.retention))?;
        let epoch = self.epoch()?;
        let mut report = EvacuationReport {
            recovery,
            ..EvacuationReport::default()
        };
        for (dataset, range) in self.evacuable_runs(cutoff, ev.max_payload_bytes, ev.pinned)? {
            let Some(columns) = ev.columns.get(&dataset) else {
                report.skipped.push(format!(
                    "{dataset} {}..={}: no columns configured for the dataset",
                    range.first, range.last
                ));
                continue;
            };
            let line = self.write_archive(now, ev, &epoch, &dataset, columns, range)?;
            if let Err(what) = self.complete_archive(&line)? {
                return Err(StoreError::Archive {
                    file: line.file,
                    what,
                });
            }
            report.records += line.records;
            report.archives.push(line);
        }
        Ok(report)
    }

    /// Maximal runs of consecutive seqs of one dataset that are acknowledged, not held and
    /// ingested before `cutoff_ns` and not `pinned` (DES-EVAC-1/2), split at `max_payload`
    /// bytes of JSONL.
    fn evacuable_runs(
        &self,
        cutoff_ns: i64,
        max_payload: u64,
        pinned: &[SeqRange],
    ) -> Result<Vec<(Dataset, SeqRange)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, dataset, length(fields) FROM records \
                 WHERE acked = 1 AND held = 0 AND ingested_ns < ?1 ORDER BY seq",
            )
            .map_err(StoreError::sql("prepare evacuation"))?;
        let rows = stmt
            .query_map(params![cutoff_ns], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(StoreError::sql("select evacuable"))?;
        let mut runs: Vec<(String, SeqRange, u64)> = Vec::new();
        for row in rows {
            let (seq, ds, len) = row.map_err(StoreError::sql("read evacuable"))?;
            let seq = us(seq);
            if pinned.iter().any(|p| p.first <= seq && seq <= p.last) {
                continue; // a gap: the run ends before it
            }
            // seq, ingestedAt (≤ 35 characters) and the keys: at most 100 bytes besides fields.
            let line = us(len) + 100;
            match runs.last_mut() {
                Some((d, r, bytes))
                    if *d == ds && r.last + 1 == seq && *bytes + line <= max_payload =>
                {
                    r.last = seq;
                    *bytes += line;
                }
                _ => runs.push((
                    ds,
                    SeqRange {
                        first: seq,
                        last: seq,
                    },
                    line,
                )),
            }
        }
        runs.into_iter()
            .map(|(d, r, _)| {
                Dataset::new(d)
                    .map(|d| (d, r))
                    .map_err(|e| StoreError::Corrupt(format!("record dataset: {e}")))
            })
            .collect()
    }

    /// Steps (1) and (2) of DES-EVAC-4 for one run: the durable archive file and its durable
    /// index line.
    pub(super) fn write_archive(
        &self,
        now: Time,
        ev: &Evacuation<'_>,
        epoch: &StoreEpoch,
        dataset: &Dataset,
        columns: &[Column],
        range: SeqRange,
    ) -> Result<IndexLine, StoreError> {
        let name = archive_name(ev.gateway_id, dataset, epoch, range);
        let final_path = ev.dir.join(&name);
        let jsonl_path = ev.dir.join(format!("{name}.jsonl.tmp"));
        let sig_path = ev.dir.join(format!("{name}.sig.tmp"));
        let tmp_path = ev.dir.join(format!("{name}.tmp"));
        let _guard = TmpGuard(vec![jsonl_path.clone(), sig_path.clone(), tmp_path.clone()]);
        let (from, to) = self.write_jsonl(
            &jsonl_path,
            now,
            ev.gateway_id,
            epoch,
            dataset,
            columns,
            range,
        )?;
        let key = &ev.keys.current;
        let sec = |source| StoreError::Security {
            file: name.clone(),
            source,
        };
        {
            let input = File::open(&jsonl_path).map_err(StoreError::io("open", &jsonl_path))?;
            let out = File::create(&sig_path).map_err(StoreError::io("create", &sig_path))?;
            sign_file(&key.key, &key.kid, PAYLOAD_NAME, input, out).map_err(sec)?;
        }
        {
            let input = File::open(&sig_path).map_err(StoreError::io("open", &sig_path))?;
            let out = File::create(&tmp_path).map_err(StoreError::io("create", &tmp_path))?;
            let out = encrypt_file(
                &key.public,
                &key.kid,
                AesCbc::Aes256,
                SIGNED_NAME,
                input,
                out,
            )
            .map_err(sec)?;
            out.sync_all().map_err(StoreError::io("fsync", &tmp_path))?;
        }
        let sha256 = sha256_file(&tmp_path)?;
        // A hard link never replaces an existing name (DES-EVAC-2: never overwritten).
        fs::hard_link(&tmp_path, &final_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::Archive {
                    file: name.clone(),
                    what: "a file of that name exists and is never overwritten".into(),
                }
            } else {
                StoreError::io("link", &final_path)(e)
            }
        })?;
        fs::remove_file(&tmp_path).map_err(StoreError::io("remove", &tmp_path))?;
        sync_dir(ev.dir)?;
        let line = IndexLine {
            file: name,
            dataset: dataset.clone(),
            epoch: epoch.clone(),
            range,
            ingested_from: from,
            ingested_to: to,
            records: range.len(),
            sha256,
        };
        let index = ev.dir.join(INDEX_FILE);
        let created = !index.exists();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&index)
            .map_err(StoreError::io("open", &index))?;
        let mut text = json_line(&line)?;
        text.push('\n');
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(StoreError::io("append to", &index))?;
        if created {
            sync_dir(ev.dir)?;
        }
        Ok(line)
    }

    /// Writes `records.jsonl` of a run; returns the earliest and latest ingest time.
    #[allow(clippy::too_many_arguments)]
    fn write_jsonl(
        &self,
        path: &Path,
        now: Time,
        gw: &GatewayId,
        epoch: &StoreEpoch,
        dataset: &Dataset,
        columns: &[Column],
        range: SeqRange,
    ) -> Result<(String, String), StoreError> {
        let file = File::create(path).map_err(StoreError::io("create", path))?;
        let mut w = BufWriter::new(file);
        let header = ArchiveHeader {
            format: ARCHIVE_FORMAT.into(),
            gateway_id: gw.clone(),
            epoch: epoch.clone(),
            dataset: dataset.clone(),
            columns: columns.to_vec(),
            range,
            records: range.len(),
            created_at: fmt_time(&now),
        };
        let io = |e| StoreError::io("write", path)(e);
        writeln!(w, "{}", json_line(&header)?).map_err(io)?;
        // Ingest times of the files the run spans.
        let mut times: Vec<(SeqRange, String, i64)> = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT first, last, ingested_at, ingested_ns FROM ingests \
                     WHERE last >= ?1 AND first <= ?2 ORDER BY first",
                )
                .map_err(StoreError::sql("prepare ingest times"))?;
            let rows = stmt
                .query_map(params![sq(range.first), sq(range.last)], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(StoreError::sql("read ingest times"))?;
            for row in rows {
                let (f, l, at, ns) = row.map_err(StoreError::sql("read ingest time"))?;
                if let Some(r) = SeqRange::new(us(f), us(l)) {
                    times.push((r, at, ns));
                }
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, dataset, fields, acked, held FROM records \
                 WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
            )
            .map_err(StoreError::sql("prepare archive rows"))?;
        let rows = stmt
            .query_map(params![sq(range.first), sq(range.last)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })
            .map_err(StoreError::sql("read archive rows"))?;
        let mut expect = range.first;
        let mut t = 0usize;
        let mut span: Option<((i64, String), (i64, String))> = None;
        for row in rows {
            let (seq, ds, fields, acked, held) =
                row.map_err(StoreError::sql("read archive row"))?;
            let seq = us(seq);
            if seq != expect || ds != dataset.as_str() || !acked || held {
                return Err(StoreError::Archive {
                    file: path.display().to_string(),
                    what: format!("seq {seq} is not an acknowledged, not held record of {dataset}"),
                });
            }
            while t < times.len() && times[t].0.last < seq {
                t += 1;
            }
            let Some((_, at, ns)) = times.get(t).filter(|(r, _, _)| r.contains(seq)) else {
                return Err(StoreError::Corrupt(format!("seq {seq} is in no ingest")));
            };
            span = Some(match span {
                None => ((*ns, at.clone()), (*ns, at.clone())),
                Some((lo, hi)) => (
                    if *ns < lo.0 { (*ns, at.clone()) } else { lo },
                    if *ns > hi.0 { (*ns, at.clone()) } else { hi },
                ),
            });
            // `fields` is the compact JSON array serde wrote at ingest.
            writeln!(
                w,
                "{{\"seq\":{seq},\"ingestedAt\":{},\"fields\":{fields}}}",
                json_line(at)?
            )
            .map_err(io)?;
            expect += 1;
        }
        if expect != range.last + 1 {
            return Err(StoreError::RecordsMissing {
                dataset: dataset.clone(),
                range,
            });
        }
        w.flush().map_err(io)?;
        let ((_, from), (_, to)) = span.expect("at least one record");
        Ok((from, to))
    }

    /// Step (3) of DES-EVAC-4: in one transaction, the archive is recorded and its rows are
    /// deleted. Idempotent. `Ok(Err(what))`: refused, nothing changed (a row of the range
    /// belongs to another dataset, or is not acknowledged or is held).
    fn complete_archive(&mut self, line: &IndexLine) -> Result<Result<(), String>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sql("begin archive"))?;
        let known: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM archives WHERE file = ?1",
                params![line.file],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::sql("find archive"))?;
        if known.is_some() {
            return Ok(Ok(()));
        }
        let (rows, bad, bytes): (i64, i64, i64) = tx
            .query_row(
                "SELECT count(*), coalesce(sum(dataset != ?3 OR acked = 0 OR held = 1), 0), \
                 coalesce(sum(length(fields)), 0) FROM records WHERE seq BETWEEN ?1 AND ?2",
                params![
                    sq(line.range.first),
                    sq(line.range.last),
                    line.dataset.as_str()
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(StoreError::sql("check archive rows"))?;
        if bad != 0 {
            return Ok(Err(format!(
                "{bad} rows of {}..={} are of another dataset, unacknowledged or held; kept",
                line.range.first, line.range.last
            )));
        }
        tx.execute(
            "INSERT INTO archives (file, dataset, epoch, first, last, ingested_from, ingested_to, \
             records, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                line.file,
                line.dataset.as_str(),
                line.epoch.as_str(),
                sq(line.range.first),
                sq(line.range.last),
                line.ingested_from,
                line.ingested_to,
                sq(line.records),
                line.sha256
            ],
        )
        .map_err(StoreError::sql("record archive"))?;
        tx.execute(
            "DELETE FROM records WHERE seq BETWEEN ?1 AND ?2",
            params![sq(line.range.first), sq(line.range.last)],
        )
        .map_err(StoreError::sql("delete archived rows"))?;
        let freed = us(bytes) + us(rows) * ROW_OVERHEAD_BYTES;
        tx.execute(
            "UPDATE meta SET stored_bytes = max(0, stored_bytes - ?1), evacuated = evacuated + ?2 \
             WHERE id = 1",
            params![sq(freed), rows],
        )
        .map_err(StoreError::sql("update meta"))?;
        tx.commit().map_err(StoreError::sql("commit archive"))?;
        self.commits.evacuations += 1;
        Ok(Ok(()))
    }

    /// The archived records `range` of `dataset`, read back from the archives in `dir`
    /// (DES-EVAC-5): per archive, its SHA-256 checked against the index, decrypted and
    /// verified with the gateway's own keys (no validity or CRL check), its header checked
    /// against the index; every seq of `range` must be found.
    pub fn read_archived(
        &self,
        dataset: &Dataset,
        range: SeqRange,
        dir: &Path,
        keys: &ArchiveKeys,
    ) -> Result<Vec<ArchivedRecord>, StoreError> {
        let mut out = Vec::new();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT file, epoch, first, last, records, sha256 FROM archives \
                 WHERE dataset = ?1 AND last >= ?2 AND first <= ?3 ORDER BY first",
            )
            .map_err(StoreError::sql("prepare archive lookup"))?;
        let rows = stmt
            .query_map(
                params![dataset.as_str(), sq(range.first), sq(range.last)],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .map_err(StoreError::sql("find archives"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::sql("read archive row"))?;
        for (file, epoch, f, l, n, sha) in rows {
            let arange = SeqRange::new(us(f), us(l))
                .ok_or_else(|| StoreError::Corrupt(format!("archive {file} range")))?;
            let epoch = StoreEpoch::new(epoch)
                .map_err(|e| StoreError::Corrupt(format!("archive {file} epoch: {e}")))?;
            let records =
                read_archive_file(dir, &file, &sha, keys, dataset, &epoch, arange, us(n))?;
            out.extend(records.into_iter().filter(|r| range.contains(r.seq)));
        }
        let complete = out.len() as u64 == range.len()
            && out.iter().zip(range.first..).all(|(r, s)| r.seq == s);
        if !complete {
            return Err(StoreError::RecordsMissing {
                dataset: dataset.clone(),
                range,
            });
        }
        Ok(out)
    }
}

/// Reads one archive back (DES-EVAC-5).
#[allow(clippy::too_many_arguments)]
fn read_archive_file(
    dir: &Path,
    file: &str,
    sha256: &str,
    keys: &ArchiveKeys,
    dataset: &Dataset,
    epoch: &StoreEpoch,
    range: SeqRange,
    records: u64,
) -> Result<Vec<ArchivedRecord>, StoreError> {
    let bad = |what: String| StoreError::Archive {
        file: file.to_string(),
        what,
    };
    let sec = |source| StoreError::Security {
        file: file.to_string(),
        source,
    };
    let path = dir.join(file);
    if !path.is_file() {
        return Err(bad("missing".into()));
    }
    if sha256_file(&path)? != sha256 {
        return Err(bad("SHA-256 differs from the index".into()));
    }
    let signed = dir.join(format!("{file}.open.tmp"));
    let jsonl = dir.join(format!("{file}.jsonl.open.tmp"));
    let _guard = TmpGuard(vec![signed.clone(), jsonl.clone()]);
    let limits = ZipLimits::default();
    let mut opened = None;
    for k in keys.all() {
        let input = File::open(&path).map_err(StoreError::io("open", &path))?;
        let out = File::create(&signed).map_err(StoreError::io("create", &signed))?;
        match decrypt_file(&k.key, &k.kid, input, out, &limits) {
            Ok(o) => {
                opened = Some(o);
                break;
            }
            Err(SecurityError::UnknownKid) => continue,
            Err(e) => return Err(sec(e)),
        }
    }
    let opened = opened.ok_or_else(|| sec(SecurityError::UnknownKid))?;
    if opened.name != SIGNED_NAME {
        return Err(bad(format!("encrypted file is named {:?}", opened.name)));
    }
    let mut verified = None;
    let mut last_err = SecurityError::SignerMismatch;
    for k in keys.all() {
        if let Err(e) = validate_cert_timeless(&k.cert, &keys.owner, &keys.root) {
            last_err = e;
            continue;
        }
        let input = File::open(&signed).map_err(StoreError::io("open", &signed))?;
        let out = File::create(&jsonl).map_err(StoreError::io("create", &jsonl))?;
        match verify_file(&k.public, &k.kid, input, out, &limits) {
            Ok(o) => {
                verified = Some(o);
                break;
            }
            Err(e @ (SecurityError::SignerMismatch | SecurityError::BadSignature)) => last_err = e,
            Err(e) => return Err(sec(e)),
        }
    }
    let verified = verified.ok_or_else(|| sec(last_err))?;
    if verified.name != PAYLOAD_NAME {
        return Err(bad(format!("signed payload is named {:?}", verified.name)));
    }
    let f = File::open(&jsonl).map_err(StoreError::io("open", &jsonl))?;
    let mut lines = BufReader::new(f).lines();
    let header_text = lines
        .next()
        .ok_or_else(|| bad("empty records.jsonl".into()))?
        .map_err(StoreError::io("read", &jsonl))?;
    let header: ArchiveHeader =
        serde_json::from_str(&header_text).map_err(|e| bad(format!("header: {e}")))?;
    if header.format != ARCHIVE_FORMAT
        || header.dataset != *dataset
        || header.epoch != *epoch
        || header.range != range
        || header.records != records
        || records != range.len()
    {
        return Err(bad("header differs from the index".into()));
    }
    let mut out = Vec::with_capacity(usize::try_from(records).unwrap_or(0));
    let mut expect = range.first;
    for line in lines {
        let line = line.map_err(StoreError::io("read", &jsonl))?;
        let r: RecordLine =
            serde_json::from_str(&line).map_err(|e| bad(format!("record line: {e}")))?;
        if r.seq != expect || expect > range.last || r.fields.len() != header.columns.len() {
            return Err(bad(format!("record line of seq {} out of place", r.seq)));
        }
        out.push(ArchivedRecord {
            seq: r.seq,
            ingested_at: parse_time(&r.ingested_at)?,
            fields: r.fields,
        });
        expect += 1;
    }
    if expect != range.last + 1 {
        return Err(bad("fewer record lines than the header says".into()));
    }
    Ok(out)
}
