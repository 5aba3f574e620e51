//! Primary storage of the gateway (ST-STORE-1, ST-PROVIDE-1, ST-EVAC-1; DES-ID-4/5,
//! DES-FTP-6, DES-CSV-5, DES-MSG-DATA-2/5, DES-MSG-RS-2, DES-EVAC-1..6, DES-ENV-8).
//!
//! A synchronous store in one SQLite database (`{dir}/store.sqlite3`, rusqlite with the
//! bundled SQLite), WAL journal, `synchronous = FULL` (every commit is on disk when it
//! returns), exclusive locking (a second process cannot open the same store, DES-MQTT-2).
//! [`Store`] is used by exactly one thread; [`StoreHandle`] runs it on an owner thread reached
//! through a channel, so that no SQLite call ever runs on an async worker and no lock is held
//! across SQL, I/O or crypto.
//!
//! # What is stored
//!
//! | table | content |
//! |---|---|
//! | `meta` | storage epoch (DES-ID-5), boot count, next seq (DES-ID-4), bytes used, records evacuated |
//! | `ingests` | one row per accepted file: its seq range, dataset, epoch and ingest time (kept forever: the record index that resend selection and `lastSeq` use, also for evacuated records, DES-EVAC-5) |
//! | `records` | primary storage: one row per record — seq, dataset, ingest time, masked fields (JSON array of strings), wire size (DES-MSG-DATA-6), acked and held flags |
//! | `archives` | one row per evacuation archive whose records left `records` (DES-EVAC-4 step 3): file, dataset, range, ingest times, count, SHA-256 |
//! | `snapshot` | the [`GatewaySnapshot`] of the protocol core, JSON |
//!
//! The schema version is SQLite's `user_version` ([`SCHEMA_VERSION`]); a store with a higher
//! one is refused ([`StoreError::SchemaTooNew`]), never changed.
//!
//! # Rules
//!
//! - **Durable ingest** ([`Store::ingest_file`], DES-FTP-6, DES-CSV-5): the records of one file
//!   arrive one by one (streamed, never as a whole file) and are written inside ONE
//!   transaction together with the seq counter and the `ingests` row; the quota is checked in
//!   the same transaction. The call returns only after the commit is durable; any error (the
//!   producer's, the quota's, an oversize record, SQLite's) rolls back everything: no row, no
//!   seq used. Only then may the FTP upload be answered 226.
//! - **Sequence numbers survive restarts** (DES-ID-4): the counter is in `meta`, committed with
//!   the rows; it only grows ([`Store::save_snapshot`] takes the maximum of the core's and its
//!   own); a seq is never reused, also when its record was evacuated.
//! - **Boot count** (DES-MSG-CONN-1): [`Store::open`] increments and commits it before anything
//!   else, so two processes never share one (message IDs, DES-ID-2).
//! - **Acknowledged and held** (DES-MSG-DATA-2/5): the rows' flags follow the core's record
//!   index: [`Store::save_snapshot`] writes the snapshot and brings the flags of every batch
//!   the core changed in line with it, in one transaction ([`Store::mark_acked`] /
//!   [`Store::mark_held`] set them directly).
//! - **Restart** ([`Store::load_snapshot`]): the snapshot as saved, repaired against the rows:
//!   epoch and boot count from `meta`, `next_seq` never below the store's, files ingested but
//!   not yet in the snapshot's index (a crash between [`Store::ingest_file`] and
//!   [`Store::save_snapshot`]) added as unacknowledged batches (split into message units like
//!   the core does), and evacuated ranges marked archived (a crash between an evacuation and
//!   the next snapshot).
//! - **Nothing is dropped to make room** (DES-FTP-6, DES-MSG-MON-1): when the quota would be
//!   exceeded the ingest is refused ([`StoreError::QuotaExceeded`], FTP 452); nothing stored
//!   is ever deleted except by evacuation, which only takes acknowledged, not held records
//!   older than the retention and deletes them only after their archive is durable and
//!   indexed ([`archive`]). [`StorageUsage::alarm`] is raised above 80 % of the quota (health
//!   `degraded`).
//! - **Resend** ([`Store::select_resend`], DES-MSG-RS-2): selection by seq or time range with
//!   a dataset filter, reporting what is provided from the store and from archives, what is
//!   missing, what belongs to no record and what lies beyond `lastSeq`, so that OK / PARTIAL
//!   / NOT_FOUND follow ([`Selection::code`]). [`Store::read_records`] and
//!   [`Store::read_archived`] return the records of one message.
//!
//! How a runtime uses it, per FTP upload: check `core.periodic().covers(dataset)` (450) and
//! [`Store::check_quota`] (452) when `STOR` arrives; [`Store::ingest_file`] (or
//! [`StoreHandle::ingest_file`]) with the parsed, masked records — the store assigns the seqs
//! inside its commit; then `core.handle_stored(dataset, ingested.range,
//! &ingested.record_bytes, ingested_at)` and [`Store::save_snapshot`]`(&core.snapshot())`;
//! then 226. Commits are serialized on the owner thread, so they reach the core in seq
//! order. After every other input that changed the core's persisted state:
//! [`Store::save_snapshot`]. Every `evacuation_interval_sec`: [`Store::evacuate`], then
//! `core.handle_evacuated(line.range)` for each archive made and [`Store::save_snapshot`]. At
//! start: [`Store::open`], [`Store::recover_archives`], `GatewayCore::restore(cfg,
//! store.load_snapshot(cfg.max_records_per_message)?, now)` (its boot count then equals
//! [`Store::boot_count`]), [`Store::save_snapshot`].
//!
//! # At rest (SM-ATREST)
//!
//! SM-ATREST ("stored data encrypted", a SHOULD) is met like this, plainly:
//!
//! - **Masked columns are masked**: the store only ever receives and keeps the masked text of
//!   every column configured `masked` (DES-MASK-4: AES-256-GCM under the utility's masking key,
//!   which the store never sees). Their plaintext is never stored.
//! - **The rows are not encrypted by the store.** The database file holds the other columns
//!   (meter readings, amounts, dates …), the ingest times and the core snapshot in clear.
//!   Why: the gateway runs unattended and must read its rows after every restart without an
//!   operator, so a key to encrypt them would sit on the same disk, next to the database, and
//!   would protect against nothing an attacker with the disk could not undo; the columns that
//!   need confidentiality are the masked ones, and those are protected by a key the gateway
//!   holds only to mask (the utility's). Protection of the whole disk is the host's: full-disk
//!   encryption and file permissions (the store directory is created 0700, the database 0600).
//! - **Evacuation archives are encrypted and signed** (DES-EVAC-3) with the gateway's own
//!   data-protection key: they leave the database and may be copied to other media.
//! - Deleted rows can linger in free SQLite pages until they are reused; `secure_delete` is
//!   not enabled (the data are the same as the archives', which are encrypted, and the masked
//!   columns are masked anyway).

mod archive;
mod error;
mod export;
mod handle;
mod select;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, SecondsFormat};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::protocol::RangeSet;
use crate::protocol::gateway_side::{Batch, GatewaySnapshot, PeriodicSetting};
use crate::protocol::size::{MAX_MESSAGE_RECORD_BYTES, MAX_RECORD_BYTES, record_wire_bytes};
use crate::protocol::{Dataset, Seq, SeqRange, StoreEpoch, Time};

pub use archive::{
    ARCHIVE_FORMAT, ArchiveKey, ArchiveKeys, ArchivedRecord, Evacuation, EvacuationReport,
    INDEX_FILE, IndexLine, MAX_ARCHIVE_PAYLOAD_BYTES, RecoveryReport, archive_name,
};
pub use error::{IngestFailure, StoreError};
pub use export::{ExportRecord, ExportSummary};
pub use handle::{CrashSwitch, StoreHandle, StoreThread};
pub use select::{ResendQuery, SelectedRun, Selection, Selector};

/// The schema version this build writes and reads (SQLite `user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// Name of the database file inside the store directory.
pub const DB_FILE: &str = "store.sqlite3";

/// Bytes counted per stored record on top of its fields' JSON text, for the quota: the
/// row's other columns and SQLite's per-row and index overhead, rounded up.
pub const ROW_OVERHEAD_BYTES: u64 = 64;

/// Share of the quota above which [`StorageUsage::alarm`] is raised (DES-MSG-MON-1: health
/// `degraded` above 80 %).
pub const QUOTA_ALARM_PERCENT: u64 = 80;

const SCHEMA: &str = "
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch TEXT NOT NULL,
    boot_count INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL,
    evacuated INTEGER NOT NULL
);
CREATE TABLE ingests (
    first INTEGER PRIMARY KEY,
    last INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    epoch TEXT NOT NULL,
    ingested_ns INTEGER NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE INDEX ingests_time ON ingests (ingested_ns);
CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    ingested_ns INTEGER NOT NULL,
    fields TEXT NOT NULL,
    wire_bytes INTEGER NOT NULL,
    acked INTEGER NOT NULL DEFAULT 0,
    held INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX records_evacuable ON records (acked, held, ingested_ns);
CREATE TABLE archives (
    file TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    epoch TEXT NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    ingested_from TEXT NOT NULL,
    ingested_to TEXT NOT NULL,
    records INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX archives_first ON archives (first);
CREATE TABLE snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL
);
";

/// The gateway's primary storage (see the module doc).
pub struct Store {
    conn: Connection,
    dir: PathBuf,
    quota: Option<u64>,
    boot_count: u64,
    /// The batches of the last snapshot saved or loaded: [`Store::save_snapshot`] only
    /// touches the rows of batches that differ.
    saved_batches: HashSet<Batch>,
    /// Commits since the store was opened, by kind (the owner thread's crash points,
    /// [`CrashPoint`]).
    commits: Commits,
}

/// Durable commits of one kind since a [`Store`] was opened ([`Store::commits`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Commits {
    /// Uploads committed by [`Store::ingest_file`].
    pub ingests: u64,
    /// Archives committed by [`Store::evacuate`] (one per archive).
    pub evacuations: u64,
}

/// Where the store's owner thread can be made to stop as if the process died there
/// ([`StoreThread::halt_at`]): right after a durable commit of this kind, before any later job
/// (the core's next snapshot among them) runs. The conformance suite's aimed kill of the
/// in-process gateway: the window between a commit and the snapshot that indexes it is what the
/// restart must recover (`Store::load_snapshot`), and a kill from outside, which sees only the
/// FTP reply — sent as the snapshot is queued, which the store runs microseconds later — almost
/// never hits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrashPoint {
    /// After the next upload's commit (ST-STORE-1, DES-ID-4).
    AfterIngestCommit,
    /// After the next archive's commit (DES-EVAC-1, DES-EVAC-4).
    AfterEvacuationCommit,
}

impl CrashPoint {
    /// The file in a process target's bundle that arms a crash point (its content:
    /// [`Self::name`]); docs/conformance.md, "Crash points".
    pub const ARM_FILE: &str = "CRASH-AT";

    /// What the target renames [`Self::ARM_FILE`] to once the point is armed.
    pub const ARMED_FILE: &str = "CRASH-AT.armed";

    /// Every crash point.
    pub const ALL: [CrashPoint; 2] = [
        CrashPoint::AfterIngestCommit,
        CrashPoint::AfterEvacuationCommit,
    ];

    /// Its name in a process target's `CRASH-AT` file (docs/conformance.md, "Crash points").
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterIngestCommit => "after-ingest-commit",
            CrashPoint::AfterEvacuationCommit => "after-evacuation-commit",
        }
    }

    /// The crash point named `name` ([`Self::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether a commit of this kind happened between `before` and `after`.
    pub fn passed(self, before: Commits, after: Commits) -> bool {
        match self {
            CrashPoint::AfterIngestCommit => after.ingests != before.ingests,
            CrashPoint::AfterEvacuationCommit => after.evacuations != before.evacuations,
        }
    }
}

/// The result of a committed ingest ([`Store::ingest_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// The consecutive seqs the file's records got (DES-ID-4).
    pub range: SeqRange,
    /// The wire size of each record (DES-MSG-DATA-6), in seq order: the input of
    /// `GatewayCore::handle_ingest`.
    pub record_bytes: Vec<u32>,
    /// Bytes of primary storage used after the ingest (for the quota).
    pub stored_bytes: u64,
}

/// One record read from primary storage for a data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its seq.
    pub seq: Seq,
    /// Its fields, masked columns masked (DES-PROF-3).
    pub fields: Vec<String>,
}

/// How full primary storage is (MON-1, `monitor.status.storage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUsage {
    /// Records in primary storage.
    pub records: u64,
    /// Of those, not acknowledged.
    pub unacked: u64,
    /// Of those, held (DES-MSG-DATA-5).
    pub held: u64,
    /// Bytes used, as counted for the quota (fields' JSON + [`ROW_OVERHEAD_BYTES`] per record).
    pub bytes: u64,
    /// The quota, if any.
    pub quota: Option<u64>,
    /// Records evacuated over the store's life (DES-EVAC-6).
    pub evacuated: u64,
    /// Highest seq assigned, 0 none.
    pub last_seq: Seq,
    /// Bytes free for this process on the store's file system (statvfs `f_bavail × f_frsize`;
    /// 0 when it cannot be read), `monitor.status.storage.freeBytes`.
    pub free_bytes: u64,
}

impl StorageUsage {
    /// The monitoring alarm: more than [`QUOTA_ALARM_PERCENT`] % of the quota used (health
    /// `degraded`, DES-MSG-MON-1), raised before uploads are refused.
    pub fn alarm(&self) -> bool {
        self.quota.is_some_and(|q| {
            u128::from(self.bytes) * 100 > u128::from(q) * u128::from(QUOTA_ALARM_PERCENT)
        })
    }
}

#[derive(Debug, Clone)]
struct Meta {
    epoch: StoreEpoch,
    boot_count: u64,
    next_seq: Seq,
    stored_bytes: u64,
    evacuated: u64,
}

pub(crate) fn fmt_time(t: &Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

pub(crate) fn parse_time(s: &str) -> Result<Time, StoreError> {
    DateTime::<FixedOffset>::parse_from_rfc3339(s)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {s:?} does not parse")))
}

pub(crate) fn time_ns(t: &Time) -> Result<i64, StoreError> {
    t.timestamp_nanos_opt()
        .ok_or_else(|| StoreError::TimeOutOfRange(fmt_time(t)))
}

/// A seq as SQLite stores it (INTEGER is i64; seqs above 2⁶³ − 1 are never assigned).
pub(crate) fn sq(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub(crate) fn us(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn read_meta(conn: &Connection) -> Result<Meta, StoreError> {
    let (epoch, boot, next, bytes, evac): (String, i64, i64, i64, i64) = conn
        .query_row(
            "SELECT epoch, boot_count, next_seq, stored_bytes, evacuated FROM meta WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .map_err(StoreError::sql("read meta"))?;
    Ok(Meta {
        epoch: StoreEpoch::new(epoch)
            .map_err(|e| StoreError::Corrupt(format!("meta epoch: {e}")))?,
        boot_count: us(boot),
        next_seq: us(next).max(1),
        stored_bytes: us(bytes),
        evacuated: us(evac),
    })
}

/// Splits the records `first..` with wire sizes `sizes` into message units exactly as
/// `GatewayCore::handle_ingest` does (DES-MSG-DATA-6): at most `cap` records whose sizes sum
/// to at most `MAX_MESSAGE_RECORD_BYTES`. Returns each unit's range and byte sum.
pub(crate) fn message_units(first: Seq, sizes: &[u32], cap: u64) -> Vec<(SeqRange, u64)> {
    let cap = cap.max(1);
    let mut out = Vec::new();
    let (mut start, mut count, mut bytes) = (first, 0u64, 0u64);
    for w in sizes.iter().map(|w| u64::from(*w)) {
        if count > 0 && (count == cap || bytes + w > MAX_MESSAGE_RECORD_BYTES) {
            out.push((
                SeqRange::new(start, start + count - 1).expect("count >= 1"),
                bytes,
            ));
            start += count;
            count = 0;
            bytes = 0;
        }
        count += 1;
        bytes += w;
    }
    if count > 0 {
        out.push((
            SeqRange::new(start, start + count - 1).expect("count >= 1"),
            bytes,
        ));
    }
    out
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(StoreError::io("restrict permissions of", dir))
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// fsyncs a directory, so that entries created, renamed or removed in it are durable.
/// Bytes free for an unprivileged process on the file system of `dir` (0 if unknown).
fn free_bytes(dir: &Path) -> u64 {
    match rustix::fs::statvfs(dir) {
        Ok(v) => v.f_bavail.saturating_mul(v.f_frsize),
        Err(e) => {
            tracing::warn!(rule = "MON-1", error = %e, dir = %dir.display(), "free space unknown");
            0
        }
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(StoreError::io("fsync directory", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn is_locked(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Store {
    /// Opens (or creates) the store in `dir`: WAL, `synchronous = FULL`, exclusive lock,
    /// schema created or checked ([`SCHEMA_VERSION`]; a newer one is refused). A new store
    /// gets a new random storage epoch (DES-ID-5). The boot count is incremented and
    /// committed before this returns ([`Self::boot_count`]).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, true)
    }

    /// Opens an existing store for the operator's tools (`sgw status`, `sgw export`): the
    /// same exclusive lock (so [`StoreError::Locked`] while the gateway runs), nothing
    /// created and the boot count left as it is.
    pub fn open_existing(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::Io {
                context: "open store",
                path,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        Self::open_with(dir, false)
    }

    fn open_with(dir: &Path, boot: bool) -> Result<Self, StoreError> {
        let fresh_dir = !dir.exists();
        fs::create_dir_all(dir).map_err(StoreError::io("create store directory", dir))?;
        if fresh_dir {
            restrict_dir(dir)?;
        }
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open(&path).map_err(StoreError::sql("open database"))?;
        let locked = |e: rusqlite::Error| {
            if is_locked(&e) {
                StoreError::Locked(path.clone())
            } else {
                StoreError::Sqlite {
                    context: "configure database",
                    source: e,
                }
            }
        };
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(locked)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(locked)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "journal mode {mode} instead of WAL"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(locked)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(locked)?;
        match version {
            0 => {
                let tables: i64 = conn
                    .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                    .map_err(locked)?;
                if tables != 0 {
                    return Err(StoreError::Corrupt(
                        "database without a schema version holds tables".into(),
                    ));
                }
                let mut epoch = [0u8; 16];
                openssl::rand::rand_bytes(&mut epoch).map_err(|e| {
                    StoreError::Corrupt(format!("no random bytes for the epoch: {e}"))
                })?;
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(locked)?;
                tx.execute_batch(SCHEMA)
                    .map_err(StoreError::sql("create schema"))?;
                tx.execute(
                    "INSERT INTO meta (id, epoch, boot_count, next_seq, stored_bytes, evacuated) \
                     VALUES (1, ?1, 0, 1, 0, 0)",
                    params![StoreEpoch::from_bytes(epoch).as_str()],
                )
                .map_err(StoreError::sql("create meta"))?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(StoreError::sql("set schema version"))?;
                tx.commit().map_err(StoreError::sql("commit schema"))?;
                sync_dir(dir)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                        .map_err(StoreError::io("restrict permissions of", &path))?;
                }
            }
            SCHEMA_VERSION => {}
            v if v > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            v => {
                return Err(StoreError::Corrupt(format!(
                    "schema version {v} is not one this gateway knows"
                )));
            }
        }
        if !boot {
            let boot_count = read_meta(&conn)?.boot_count;
            return Ok(Store {
                conn,
                dir: dir.to_path_buf(),
                quota: None,
                boot_count,
                saved_batches: HashSet::new(),
                commits: Commits::default(),
            });
        }
        // The boot count of this process, durable before anything else happens.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(locked)?;
        let meta = read_meta(&tx)?;
        let boot = meta.boot_count.saturating_add(1);
        tx.execute(
            "UPDATE meta SET boot_count = ?1 WHERE id = 1",
            params![sq(boot)],
        )
        .map_err(StoreError::sql("increment boot count"))?;
        tx.commit().map_err(StoreError::sql("commit boot count"))?;
        Ok(Store {
            conn,
            dir: dir.to_path_buf(),
            quota: None,
            boot_count: boot,
            saved_batches: HashSet::new(),
            commits: Commits::default(),
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets the quota of primary storage in bytes (`quota_bytes`, DES-FTP-6); `None`: none.
    pub fn set_quota(&mut self, quota: Option<u64>) {
        self.quota = quota;
    }

    /// The durable commits since this store was opened, by kind ([`CrashPoint`]).
    pub fn commits(&self) -> Commits {
        self.commits
    }

    /// The boot count of this process (incremented by [`Self::open`]).
    pub fn boot_count(&self) -> u64 {
        self.boot_count
    }

    /// The storage epoch (DES-ID-5).
    pub fn epoch(&self) -> Result<StoreEpoch, StoreError> {
        Ok(read_meta(&self.conn)?.epoch)
    }

    /// The highest seq assigned, 0 none (DES-ID-4).
    pub fn last_seq(&self) -> Result<Seq, StoreError> {
        Ok(read_meta(&self.conn)?.next_seq - 1)
    }

    /// Operator command `sgw new-epoch` (DES-MSG-CONN-4): replaces the epoch with a new
    /// random one; keeps the boot count, the seq counter and every record. The saved
    /// snapshot carries the new epoch from now on.
    pub fn new_epoch(&mut self) -> Result<StoreEpoch, StoreError> {
        let mut bytes = [0u8; 16];
        openssl::rand::rand_bytes(&mut bytes)
            .map_err(|e| StoreError::Corrupt(format!("no random bytes for the epoch: {e}")))?;
        let epoch = StoreEpoch::from_bytes(bytes);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sql("begin new epoch"))?;
        tx.execute(
            "UPDATE meta SET epoch = ?1 WHERE id = 1",
            params![epoch.as_str()],
        )
        .map_err(StoreError::sql("write epoch"))?;
        let body: Option<String> = tx
            .query_row("SELECT body FROM snapshot WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(StoreError::sql("read snapshot"))?;
        if let Some(body) = body {
            let mut s: GatewaySnapshot = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("snapshot: {e}")))?;
            s.epoch = epoch.clone();
            write_snapshot(&tx, &s)?;
        }
        tx.commit().map_err(StoreError::sql("commit new epoch"))?;
        Ok(epoch)
    }

    /// How full primary storage is.
    pub fn usage(&self) -> Result<StorageUsage, StoreError> {
        let meta = read_meta(&self.conn)?;
        let (records, unacked, held): (i64, i64, i64) = self
            .conn
            .query_row(
                "SELECT count(*), coalesce(sum(acked = 0), 0), coalesce(sum(held), 0) FROM records",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(StoreError::sql("count records"))?;
        Ok(StorageUsage {
            records: us(records),
            unacked: us(unacked),
            held: us(held),
            bytes: meta.stored_bytes,
            quota: self.quota,
            evacuated: meta.evacuated,
            last_seq: meta.next_seq - 1,
            free_bytes: free_bytes(&self.dir),
        })
    }

    /// When the oldest unacknowledged record was ingested, if any (`sgw status`).
    pub fn oldest_unacked_at(&self) -> Result<Option<Time>, StoreError> {
        let ns: Option<i64> = self
            .conn
            .query_row(
                "SELECT min(ingested_ns) FROM records WHERE acked = 0",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::sql("oldest unacknowledged record"))?;
        Ok(ns.map(|n| chrono::DateTime::from_timestamp_nanos(n).fixed_offset()))
    }

    /// The check when `STOR` arrives (DES-FTP-6): refused with
    /// [`StoreError::QuotaExceeded`] (452) once the quota is reached.
    pub fn check_quota(&self) -> Result<(), StoreError> {
        let used = read_meta(&self.conn)?.stored_bytes;
        match self.quota {
            Some(quota) if used >= quota => Err(StoreError::QuotaExceeded {
                used,
                quota,
                needed: 0,
            }),
            _ => Ok(()),
        }
    }

    /// Ingests one accepted file (DES-FTP-6, DES-CSV-5): each item of `records` is one record's
    /// fields, masked columns already masked, in file order. In ONE transaction: every record
    /// gets the next consecutive seq and is stored unacknowledged with its wire size; the seq
    /// counter, the `ingests` row and the bytes used are updated; the quota is checked as the
    /// records arrive. Returns after the durable commit. Any error — the producer's
    /// ([`IngestFailure::Source`]), an oversize record, the quota, an empty file, SQLite's —
    /// leaves nothing stored and no seq used.
    pub fn ingest_file<I, E>(
        &mut self,
        dataset: &Dataset,
        ingested_at: Time,
        records: I,
    ) -> Result<Ingested, IngestFailure<E>>
    where
        I: IntoIterator<Item = Result<Vec<String>, E>>,
    {
        let ns = time_ns(&ingested_at)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sql("begin ingest"))?;
        let meta = read_meta(&tx)?;
        let first = meta.next_seq;
        let mut next = first;
        let mut bytes = meta.stored_bytes;
        let mut sizes = Vec::new();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO records (seq, dataset, ingested_ns, fields, wire_bytes) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(StoreError::sql("prepare ingest"))?;
            for (index, item) in records.into_iter().enumerate() {
                let fields = item.map_err(IngestFailure::Source)?;
                let wire = record_wire_bytes(&fields);
                if wire > MAX_RECORD_BYTES {
                    return Err(StoreError::RecordTooLarge { index, bytes: wire }.into());
                }
                let json = serde_json::to_string(&fields)
                    .map_err(|e| StoreError::Corrupt(format!("fields: {e}")))?;
                bytes = bytes.saturating_add(ROW_OVERHEAD_BYTES + json.len() as u64);
                if let Some(quota) = self.quota.filter(|q| bytes > *q) {
                    return Err(StoreError::QuotaExceeded {
                        used: meta.stored_bytes,
                        quota,
                        needed: bytes - meta.stored_bytes,
                    }
                    .into());
                }
                if next >= i64::MAX as u64 {
                    return Err(StoreError::Exhausted.into());
                }
                insert
                    .execute(params![
                        sq(next),
                        dataset.as_str(),
                        ns,
                        json,
                        i64::from(wire)
                    ])
                    .map_err(StoreError::sql("insert record"))?;
                sizes.push(wire);
                next += 1;
            }
        }
        if sizes.is_empty() {
            return Err(StoreError::Empty.into());
        }
        let range = SeqRange::new(first, next - 1).expect("at least one record");
        tx.execute(
            "INSERT INTO ingests (first, last, dataset, epoch, ingested_ns, ingested_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                sq(range.first),
                sq(range.last),
                dataset.as_str(),
                meta.epoch.as_str(),
                ns,
                fmt_time(&ingested_at)
            ],
        )
        .map_err(StoreError::sql("insert ingest"))?;
        tx.execute(
            "UPDATE meta SET next_seq = ?1, stored_bytes = ?2 WHERE id = 1",
            params![sq(next), sq(bytes)],
        )
        .map_err(StoreError::sql("advance seq counter"))?;
        tx.commit().map_err(StoreError::sql("commit ingest"))?;
        self.commits.ingests += 1;
        Ok(Ingested {
            range,
            record_bytes: sizes,
            stored_bytes: bytes,
        })
    }

    /// The records `range` of `dataset` from primary storage, in seq order, for a data
    /// message. [`StoreError::RecordsMissing`] unless every seq of the range is stored and of
    /// `dataset` (evacuated records are read with [`Self::read_archived`]).
    pub fn read_records(
        &self,
        dataset: &Dataset,
        range: SeqRange,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, dataset, fields FROM records WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
            )
            .map_err(StoreError::sql("prepare read"))?;
        let rows = stmt
            .query_map(params![sq(range.first), sq(range.last)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(StoreError::sql("read records"))?;
        let missing = || StoreError::RecordsMissing {
            dataset: dataset.clone(),
            range,
        };
        let mut out = Vec::new();
        for (expect, row) in (range.first..).zip(rows) {
            let (seq, ds, fields) = row.map_err(StoreError::sql("read record"))?;
            if us(seq) != expect || ds != dataset.as_str() {
                return Err(missing());
            }
            let fields: Vec<String> = serde_json::from_str(&fields)
                .map_err(|e| StoreError::Corrupt(format!("fields of seq {seq}: {e}")))?;
            out.push(StoredRecord {
                seq: us(seq),
                fields,
            });
        }
        if out.len() as u64 != range.len() {
            return Err(missing());
        }
        Ok(out)
    }

    /// Marks the stored records of `range` acknowledged (DES-MSG-DATA-2) and no longer held.
    /// Returns how many rows changed.
    pub fn mark_acked(&mut self, range: SeqRange) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE records SET acked = 1, held = 0 \
                 WHERE seq BETWEEN ?1 AND ?2 AND (acked = 0 OR held = 1)",
                params![sq(range.first), sq(range.last)],
            )
            .map_err(StoreError::sql("mark acknowledged"))?;
        Ok(n as u64)
    }

    /// Marks the unacknowledged stored records of `range` held (`held`, DES-MSG-DATA-5) or
    /// not. Returns how many rows changed.
    pub fn mark_held(&mut self, range: SeqRange, held: bool) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE records SET held = ?3 \
                 WHERE seq BETWEEN ?1 AND ?2 AND acked = 0 AND held != ?3",
                params![sq(range.first), sq(range.last), held],
            )
            .map_err(StoreError::sql("mark held"))?;
        Ok(n as u64)
    }

    /// Persists the core's state (DES-ENV-8: with its reply memory) in one durable
    /// transaction with the state changes it reflects: the acked and held flags of the rows of
    /// every batch that differs from the last snapshot saved or loaded are set as the batch
    /// says; the boot count and seq counter never go down.
    pub fn save_snapshot(&mut self, snapshot: &GatewaySnapshot) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sql("begin snapshot"))?;
        {
            let mut update = tx
                .prepare_cached(
                    "UPDATE records SET acked = ?3, held = ?4 \
                     WHERE seq BETWEEN ?1 AND ?2 AND (acked != ?3 OR held != ?4)",
                )
                .map_err(StoreError::sql("prepare flags"))?;
            for b in &snapshot.batches {
                if b.archived || self.saved_batches.contains(b) {
                    continue;
                }
                update
                    .execute(params![
                        sq(b.range.first),
                        sq(b.range.last),
                        b.acked,
                        b.held && !b.acked
                    ])
                    .map_err(StoreError::sql("update flags"))?;
            }
        }
        write_snapshot(&tx, snapshot)?;
        tx.execute(
            "UPDATE meta SET next_seq = max(next_seq, ?1), boot_count = max(boot_count, ?2) \
             WHERE id = 1",
            params![sq(snapshot.next_seq), sq(snapshot.boot_count)],
        )
        .map_err(StoreError::sql("update meta"))?;
        tx.commit().map_err(StoreError::sql("commit snapshot"))?;
        self.saved_batches = snapshot.batches.iter().cloned().collect();
        Ok(())
    }

    /// Broken variant `seq-reused-after-restart` (feature `broken-variants` only, never a
    /// release): forgets the acknowledged records and sets the seq counter to one past the
    /// highest seq still stored, as a gateway that derives its counter from its rows does
    /// (against DES-ID-4). Returns the next seq it will assign.
    #[cfg(feature = "broken-variants")]
    pub fn broken_forget_acknowledged(&mut self) -> Result<Seq, StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(StoreError::sql("begin forget"))?;
        tx.execute("DELETE FROM records WHERE acked = 1", [])
            .map_err(StoreError::sql("forget records"))?;
        tx.execute(
            "DELETE FROM ingests WHERE NOT EXISTS \
             (SELECT 1 FROM records WHERE seq BETWEEN ingests.first AND ingests.last)",
            [],
        )
        .map_err(StoreError::sql("forget ingests"))?;
        let next: i64 = tx
            .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM records", [], |r| {
                r.get(0)
            })
            .map_err(StoreError::sql("highest seq"))?;
        tx.execute("UPDATE meta SET next_seq = ?1 WHERE id = 1", params![next])
            .map_err(StoreError::sql("reset seq counter"))?;
        tx.commit().map_err(StoreError::sql("commit forget"))?;
        Ok(us(next))
    }

    /// The state to restart the core from (`GatewayCore::restore`): the last saved snapshot
    /// (an empty one for a new store), repaired against the store as the module doc says.
    /// Its `boot_count` is this process's minus one, so that `restore`, which increments it,
    /// yields [`Self::boot_count`]. `max_records_per_message` is the core's
    /// (`GatewayConfig::max_records_per_message`), for splitting recovered files into batches.
    pub fn load_snapshot(
        &mut self,
        max_records_per_message: u64,
    ) -> Result<GatewaySnapshot, StoreError> {
        let meta = read_meta(&self.conn)?;
        let body: Option<String> = self
            .conn
            .query_row("SELECT body FROM snapshot WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(StoreError::sql("read snapshot"))?;
        let mut s = match body {
            Some(b) => serde_json::from_str::<GatewaySnapshot>(&b)
                .map_err(|e| StoreError::Corrupt(format!("snapshot: {e}")))?,
            None => GatewaySnapshot {
                epoch: meta.epoch.clone(),
                boot_count: 0,
                next_seq: 1,
                periodic: PeriodicSetting::default(),
                batches: Vec::new(),
                reply_memory: Vec::new(),
            },
        };
        self.saved_batches = s.batches.iter().cloned().collect();
        s.epoch = meta.epoch.clone();
        s.boot_count = self.boot_count.saturating_sub(1);
        s.next_seq = s.next_seq.max(meta.next_seq);
        self.add_missing_batches(&mut s, max_records_per_message)?;
        self.mark_archived_batches(&mut s)?;
        s.batches.sort_by_key(|b| b.range.first);
        Ok(s)
    }

    /// Files committed by [`Self::ingest_file`] whose batches the snapshot lacks.
    fn add_missing_batches(&self, s: &mut GatewaySnapshot, cap: u64) -> Result<(), StoreError> {
        let mut covered = RangeSet::new();
        for b in &s.batches {
            covered.insert(b.range);
        }
        let from = covered.contiguous_from_one();
        let mut stmt = self
            .conn
            .prepare("SELECT first, last, dataset, ingested_at FROM ingests WHERE last > ?1 ORDER BY first")
            .map_err(StoreError::sql("prepare ingests"))?;
        let ingests = stmt
            .query_map(params![sq(from)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(StoreError::sql("read ingests"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::sql("read ingest"))?;
        for (first, last, dataset, at) in ingests {
            let range = SeqRange::new(us(first), us(last))
                .ok_or_else(|| StoreError::Corrupt(format!("ingest {first}..={last}")))?;
            let dataset = Dataset::new(dataset)
                .map_err(|e| StoreError::Corrupt(format!("ingest dataset: {e}")))?;
            let ingested_at = parse_time(&at)?;
            for piece in covered.missing_in(range) {
                let sizes = self.wire_sizes(piece)?;
                for (r, bytes) in message_units(piece.first, &sizes, cap) {
                    s.batches.push(Batch {
                        dataset: dataset.clone(),
                        range: r,
                        ingested_at,
                        acked: false,
                        bytes,
                        held: false,
                        archived: false,
                    });
                }
            }
        }
        Ok(())
    }

    /// Wire sizes of the seqs of `range` (0 for a seq without a row).
    fn wire_sizes(&self, range: SeqRange) -> Result<Vec<u32>, StoreError> {
        let mut sizes = vec![0u32; usize::try_from(range.len()).unwrap_or(0)];
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, wire_bytes FROM records WHERE seq BETWEEN ?1 AND ?2")
            .map_err(StoreError::sql("prepare sizes"))?;
        let rows = stmt
            .query_map(params![sq(range.first), sq(range.last)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(StoreError::sql("read sizes"))?;
        for row in rows {
            let (seq, w) = row.map_err(StoreError::sql("read size"))?;
            if let Some(slot) = usize::try_from(us(seq) - range.first)
                .ok()
                .and_then(|i| sizes.get_mut(i))
            {
                *slot = u32::try_from(w).unwrap_or(u32::MAX);
            }
        }
        Ok(sizes)
    }

    /// Batches whose records are in an archive (`archives`) but not marked archived.
    fn mark_archived_batches(&self, s: &mut GatewaySnapshot) -> Result<(), StoreError> {
        let mut archived = RangeSet::new();
        for a in self.archive_rows()? {
            archived.insert(a.range);
        }
        if archived.is_empty() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(s.batches.len());
        for b in s.batches.drain(..) {
            if b.archived {
                out.push(b);
                continue;
            }
            let outside = archived.missing_in(b.range);
            if outside.len() == 1 && outside[0] == b.range {
                out.push(b);
                continue;
            }
            let mut pieces: Vec<(SeqRange, bool)> = outside.iter().map(|r| (*r, false)).collect();
            let mut out_set = RangeSet::new();
            for r in &outside {
                out_set.insert(*r);
            }
            // The rest of the batch lies in archives.
            pieces.extend(out_set.missing_in(b.range).into_iter().map(|r| (r, true)));
            pieces.sort_by_key(|(r, _)| r.first);
            for (r, arch) in pieces {
                out.push(Batch {
                    range: r,
                    acked: b.acked || arch,
                    held: b.held && !arch,
                    archived: arch,
                    ..b.clone()
                });
            }
        }
        s.batches = out;
        Ok(())
    }
}

fn write_snapshot(conn: &Connection, s: &GatewaySnapshot) -> Result<(), StoreError> {
    let body =
        serde_json::to_string(s).map_err(|e| StoreError::Corrupt(format!("snapshot: {e}")))?;
    conn.execute(
        "INSERT INTO snapshot (id, body) VALUES (1, ?1) \
         ON CONFLICT (id) DO UPDATE SET body = excluded.body",
        params![body],
    )
    .map_err(StoreError::sql("write snapshot"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
