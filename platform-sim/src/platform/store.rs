//! The platform's durable store: one SQLite database (`platform.sqlite` in the state
//! directory) holding everything received and sent (IF-PSEND-3, MON-1, MON-2, SM-AUDIT):
//!
//! | table | what |
//! |---|---|
//! | `records` | one row per record: gateway, epoch, seq (primary key together), dataset, fields (JSON array of strings), received_at, message_id of the `data` message |
//! | `statuses` | every `monitor.status` body (JSON) with gateway and time |
//! | `anomalies` | anomalies reported by gateways or detected by the platform, with rule ID |
//! | `commands` | every command published (`periodic.start`, `periodic.stop`, `resend.request`), with the fault applied if any |
//! | `sessions` | per gateway: its current storage epoch, the highest boot count accepted in it, the highest seq reported in it and the periodic state (to restore the protocol core after a restart, DES-MSG-CONN-4) |
//!
//! Records are written in a transaction with `synchronous=FULL` **before** the `data.ack`
//! is published (DES-MSG-DATA-2: OK means stored durably). A record already held (same
//! gateway, epoch and seq) is not stored twice (DES-MSG-DATA-3); each storage epoch of a
//! gateway is its own sequence space (DES-ID-5, DES-MSG-CONN-4), so the same seq may be held
//! once per epoch.
//!
//! Schema versions (`PRAGMA user_version`): 0 — protocol revision 1.0 (records keyed by
//! gateway and seq, no epochs); 2 — revision 1.1. [`Store::open`] migrates a 1.0 database in
//! one transaction: its records and sessions get the empty epoch `""` ("before epochs"), which
//! no gateway's epoch equals, so the first 1.1 `connect` begins a new sequence space.

use std::path::Path;

use gateway::protocol::ids::{Dataset, GatewayId, Seq, SeqRange};
use rusqlite::{Connection, OptionalExtension, params};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// DES-MSG-DATA-2: the database could not be opened or written.
    #[error("DES-MSG-DATA-2: platform store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// DES-ID-4: a sequence number does not fit the store's integer.
    #[error("DES-ID-4: seq {0} out of the store's range")]
    Seq(u64),
}

/// A session row (for restoring the protocol core, DES-MSG-CONN-4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The gateway.
    pub gateway: GatewayId,
    /// Its current storage epoch (DES-ID-5; `""`: none known, a 1.0 database).
    pub epoch: String,
    /// The highest boot count accepted in that epoch.
    pub boot_count: u64,
    /// The highest seq it reported in that epoch.
    pub last_seq: Seq,
    /// Its periodic state (JSON of `PeriodicState`).
    pub periodic: String,
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    /// The storage epoch its seq belongs to (DES-ID-5).
    pub epoch: String,
    /// Its seq.
    pub seq: Seq,
    /// Its dataset.
    pub dataset: String,
    /// Its fields.
    pub fields: Vec<String>,
    /// The `data` message it came in.
    pub message_id: String,
}

/// One stored anomaly: (at, source, kind, rule, detail).
pub type AnomalyRow = (String, String, String, String, String);

/// The schema version written to `PRAGMA user_version` (see the module documentation).
const SCHEMA_VERSION: i64 = 2;

/// The tables of schema version [`SCHEMA_VERSION`].
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS records(
      gateway TEXT NOT NULL, epoch TEXT NOT NULL, seq INTEGER NOT NULL, dataset TEXT NOT NULL,
      fields TEXT NOT NULL, received_at TEXT NOT NULL, message_id TEXT NOT NULL,
      PRIMARY KEY (gateway, epoch, seq));
    CREATE TABLE IF NOT EXISTS statuses(
      id INTEGER PRIMARY KEY, gateway TEXT NOT NULL, received_at TEXT NOT NULL,
      status TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS anomalies(
      id INTEGER PRIMARY KEY, gateway TEXT, at TEXT NOT NULL, source TEXT NOT NULL,
      kind TEXT NOT NULL, rule TEXT NOT NULL, detail TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS commands(
      id INTEGER PRIMARY KEY, gateway TEXT NOT NULL, message_id TEXT NOT NULL,
      type TEXT NOT NULL, sent_at TEXT NOT NULL, envelope TEXT NOT NULL,
      fault TEXT);
    CREATE TABLE IF NOT EXISTS sessions(
      gateway TEXT PRIMARY KEY, boot_count INTEGER NOT NULL,
      last_seq INTEGER NOT NULL, periodic TEXT NOT NULL, epoch TEXT NOT NULL DEFAULT '');";

/// The SQLite store.
#[derive(Debug)]
pub struct Store {
    db: Connection,
}

fn seq_i64(s: Seq) -> Result<i64, StoreError> {
    i64::try_from(s).map_err(|_| StoreError::Seq(s))
}

impl Store {
    /// Opens (creating if needed) the database at `path`, migrating an older schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;",
        )?;
        let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            let tx = db.transaction()?;
            let old_records = tx
                .query_row(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'",
                    [],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if old_records {
                // Revision 1.0: records keyed by (gateway, seq), sessions without an epoch.
                tx.execute_batch(
                    "ALTER TABLE records RENAME TO records_v0;
                     ALTER TABLE sessions ADD COLUMN epoch TEXT NOT NULL DEFAULT '';",
                )?;
            }
            tx.execute_batch(SCHEMA)?;
            if old_records {
                tx.execute_batch(
                    "INSERT INTO records(gateway, epoch, seq, dataset, fields, received_at, message_id)
                       SELECT gateway, '', seq, dataset, fields, received_at, message_id FROM records_v0;
                     DROP TABLE records_v0;",
                )?;
            }
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
            tx.commit()?;
        }
        // The operator view reads each gateway's latest anomalies on every refresh.
        db.execute_batch(
            "CREATE INDEX IF NOT EXISTS anomalies_gateway ON anomalies(gateway, id);",
        )?;
        Ok(Store { db })
    }

    /// Stores records `first..` of one data message in one transaction; returns how many
    /// were new.
    #[allow(clippy::too_many_arguments)]
    pub fn insert_records(
        &mut self,
        gateway: &GatewayId,
        epoch: &str,
        dataset: &Dataset,
        first: Seq,
        rows: &[Vec<String>],
        received_at: &str,
        message_id: &str,
    ) -> Result<usize, StoreError> {
        let tx = self.db.transaction()?;
        let mut n = 0;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO records(gateway, epoch, seq, dataset, fields, received_at, message_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (i, row) in rows.iter().enumerate() {
                let seq = seq_i64(first.saturating_add(i as u64))?;
                let fields = serde_json::to_string(row).unwrap_or_else(|_| "[]".into());
                n += st.execute(params![
                    gateway.as_str(),
                    epoch,
                    seq,
                    dataset.as_str(),
                    fields,
                    received_at,
                    message_id
                ])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Records `gateway` holds in every epoch: epoch by epoch in the order their first record
    /// was stored, in seq order within one.
    pub fn records(&self, gateway: &GatewayId) -> Result<Vec<RecordRow>, StoreError> {
        let mut st = self.db.prepare(
            "SELECT rowid, epoch, seq, dataset, fields, message_id FROM records WHERE gateway = ?1
             ORDER BY epoch, seq",
        )?;
        let rows = st.query_map([gateway.as_str()], |r| {
            let fields: String = r.get(4)?;
            Ok((
                r.get::<_, i64>(0)?,
                RecordRow {
                    epoch: r.get(1)?,
                    seq: r.get::<_, i64>(2)?.max(0) as u64,
                    dataset: r.get(3)?,
                    fields: serde_json::from_str(&fields).unwrap_or_default(),
                    message_id: r.get(5)?,
                },
            ))
        })?;
        let rows: Vec<(i64, RecordRow)> = rows.collect::<Result<_, _>>()?;
        let mut first_stored: std::collections::BTreeMap<&str, i64> = Default::default();
        for (id, r) in &rows {
            let e = first_stored.entry(r.epoch.as_str()).or_insert(*id);
            *e = (*e).min(*id);
        }
        let mut order: Vec<(i64, String)> = first_stored
            .into_iter()
            .map(|(e, id)| (id, e.to_owned()))
            .collect();
        order.sort();
        let mut out = Vec::with_capacity(rows.len());
        let mut rest = rows;
        for (_, epoch) in order {
            let (mine, others): (Vec<_>, Vec<_>) =
                rest.into_iter().partition(|(_, r)| r.epoch == epoch);
            out.extend(mine.into_iter().map(|(_, r)| r));
            rest = others;
        }
        Ok(out)
    }

    /// Records `gateway` holds in `epoch`, in seq order.
    pub fn records_in(
        &self,
        gateway: &GatewayId,
        epoch: &str,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let mut st = self.db.prepare(
            "SELECT seq, dataset, fields, message_id FROM records WHERE gateway = ?1 AND epoch = ?2
             ORDER BY seq",
        )?;
        let rows = st.query_map(params![gateway.as_str(), epoch], |r| {
            let fields: String = r.get(2)?;
            Ok(RecordRow {
                epoch: epoch.to_owned(),
                seq: r.get::<_, i64>(0)?.max(0) as u64,
                dataset: r.get(1)?,
                fields: serde_json::from_str(&fields).unwrap_or_default(),
                message_id: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Contiguous runs of one dataset each, of the records held for `gateway` in `epoch`.
    pub fn runs(
        &self,
        gateway: &GatewayId,
        epoch: &str,
    ) -> Result<Vec<(Dataset, SeqRange)>, StoreError> {
        let mut st = self.db.prepare(
            "SELECT seq, dataset FROM records WHERE gateway = ?1 AND epoch = ?2 ORDER BY seq",
        )?;
        let mut out: Vec<(Dataset, SeqRange)> = Vec::new();
        let rows = st.query_map(params![gateway.as_str(), epoch], |r| {
            Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (seq, ds) = row?;
            let Ok(ds) = Dataset::new(ds) else { continue };
            match out.last_mut() {
                Some((d, r)) if *d == ds && r.last.saturating_add(1) == seq => r.last = seq,
                _ => out.push((
                    ds,
                    SeqRange {
                        first: seq,
                        last: seq,
                    },
                )),
            }
        }
        Ok(out)
    }

    /// Stores a `monitor.status` body.
    pub fn insert_status(
        &self,
        gateway: &GatewayId,
        at: &str,
        status: &str,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO statuses(gateway, received_at, status) VALUES (?1, ?2, ?3)",
            params![gateway.as_str(), at, status],
        )?;
        Ok(())
    }

    /// Stores an anomaly.
    pub fn insert_anomaly(
        &self,
        gateway: Option<&GatewayId>,
        at: &str,
        source: &str,
        kind: &str,
        rule: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO anomalies(gateway, at, source, kind, rule, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![gateway.map(GatewayId::as_str), at, source, kind, rule, detail],
        )?;
        Ok(())
    }

    /// Anomalies stored for `gateway`: (source, kind, rule, detail), oldest first.
    pub fn anomalies(
        &self,
        gateway: &GatewayId,
    ) -> Result<Vec<(String, String, String, String)>, StoreError> {
        let mut st = self.db.prepare(
            "SELECT source, kind, rule, detail FROM anomalies WHERE gateway = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([gateway.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last `limit` anomalies of `gateway`, oldest first.
    pub fn recent_anomalies(
        &self,
        gateway: &GatewayId,
        limit: u32,
    ) -> Result<Vec<AnomalyRow>, StoreError> {
        let mut st = self.db.prepare(
            "SELECT at, source, kind, rule, detail FROM anomalies WHERE gateway = ?1 \
             ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![gateway.as_str(), limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        let mut v: Vec<_> = rows.collect::<Result<_, _>>()?;
        v.reverse();
        Ok(v)
    }

    /// Stores a command sent.
    pub fn insert_command(
        &self,
        gateway: &GatewayId,
        message_id: &str,
        ty: &str,
        at: &str,
        envelope: &str,
        fault: Option<&str>,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO commands(gateway, message_id, type, sent_at, envelope, fault) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![gateway.as_str(), message_id, ty, at, envelope, fault],
        )?;
        Ok(())
    }

    /// Commands stored for `gateway`: (message ID, type, fault), oldest first.
    pub fn commands(
        &self,
        gateway: &GatewayId,
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let mut st = self.db.prepare(
            "SELECT message_id, type, fault FROM commands WHERE gateway = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([gateway.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of `monitor.status` rows of `gateway`.
    pub fn status_count(&self, gateway: &GatewayId) -> Result<u64, StoreError> {
        let n: i64 = self.db.query_row(
            "SELECT COUNT(*) FROM statuses WHERE gateway = ?1",
            [gateway.as_str()],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Records an accepted `connect` (DES-MSG-CONN-4): the gateway's epoch, boot count and
    /// periodic state; the last seq is the highest reported in the epoch (reset when the epoch
    /// changes).
    pub fn upsert_session(&self, row: &SessionRow) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO sessions(gateway, boot_count, last_seq, periodic, epoch) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(gateway) DO UPDATE SET boot_count = ?2,
               last_seq = CASE WHEN epoch = ?5 THEN MAX(last_seq, ?3) ELSE ?3 END,
               periodic = ?4, epoch = ?5",
            params![
                row.gateway.as_str(),
                seq_i64(row.boot_count)?,
                seq_i64(row.last_seq)?,
                row.periodic,
                row.epoch
            ],
        )?;
        Ok(())
    }

    /// Updates only the periodic state of a known gateway.
    pub fn set_periodic(&self, gateway: &GatewayId, periodic: &str) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE sessions SET periodic = ?2 WHERE gateway = ?1",
            params![gateway.as_str(), periodic],
        )?;
        Ok(())
    }

    /// Every session row.
    pub fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        let mut st = self
            .db
            .prepare("SELECT gateway, boot_count, last_seq, periodic, epoch FROM sessions")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (g, b, l, p, epoch) = row?;
            if let Ok(gateway) = GatewayId::new(g) {
                out.push(SessionRow {
                    gateway,
                    epoch,
                    boot_count: b.max(0) as u64,
                    last_seq: l.max(0) as u64,
                    periodic: p,
                });
            }
        }
        Ok(out)
    }

    /// Whether any record of `gateway` is stored with this seq (tests, diagnostics).
    pub fn has_record(&self, gateway: &GatewayId, seq: Seq) -> Result<bool, StoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT 1 FROM records WHERE gateway = ?1 AND seq = ?2",
                params![gateway.as_str(), seq_i64(seq)?],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(s: &str) -> GatewayId {
        GatewayId::new(s).unwrap()
    }

    #[test]
    fn records_are_stored_once_per_seq_and_grouped_into_runs_per_dataset() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(&d.path().join("p.sqlite")).unwrap();
        let (a, b) = (
            Dataset::new("billing").unwrap(),
            Dataset::new("pipe_ledger").unwrap(),
        );
        let rows = |n: usize| (0..n).map(|i| vec![format!("v{i}")]).collect::<Vec<_>>();
        assert_eq!(
            s.insert_records(&gw("G1"), "e1", &a, 1, &rows(3), "t", "m1")
                .unwrap(),
            3
        );
        // Overlapping resend: only seq 4 is new; seqs 2..3 keep their first message ID.
        assert_eq!(
            s.insert_records(&gw("G1"), "e1", &a, 2, &rows(3), "t", "m2")
                .unwrap(),
            1
        );
        s.insert_records(&gw("G1"), "e1", &b, 5, &rows(2), "t", "m3")
            .unwrap();
        s.insert_records(&gw("G1"), "e1", &a, 9, &rows(1), "t", "m4")
            .unwrap();
        s.insert_records(&gw("G2"), "e1", &a, 1, &rows(1), "t", "m5")
            .unwrap();
        let r = |f, l| SeqRange { first: f, last: l };
        assert_eq!(
            s.runs(&gw("G1"), "e1").unwrap(),
            vec![(a.clone(), r(1, 4)), (b, r(5, 6)), (a, r(9, 9))]
        );
        let recs = s.records(&gw("G1")).unwrap();
        assert_eq!(recs.len(), 7);
        assert_eq!(recs[1].message_id, "m1");
        assert_eq!(recs[3].message_id, "m2");
        assert_eq!(recs[3].fields, vec!["v2".to_owned()]);
        // Reopening sees the same (durable).
        drop(s);
        let s = Store::open(&d.path().join("p.sqlite")).unwrap();
        assert_eq!(s.records(&gw("G2")).unwrap().len(), 1);
    }

    #[test]
    fn each_epoch_is_its_own_sequence_space_and_the_session_row_follows_the_epoch() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(&d.path().join("p.sqlite")).unwrap();
        let a = Dataset::new("billing").unwrap();
        let rows = |n: usize, v: &str| (0..n).map(|i| vec![format!("{v}{i}")]).collect::<Vec<_>>();
        assert_eq!(
            s.insert_records(&gw("G1"), "e1", &a, 1, &rows(3, "old"), "t", "m1")
                .unwrap(),
            3
        );
        // The same seqs in a new epoch are new records, the old ones stay.
        assert_eq!(
            s.insert_records(&gw("G1"), "e2", &a, 1, &rows(2, "new"), "t", "m2")
                .unwrap(),
            2
        );
        let r = |f, l| SeqRange { first: f, last: l };
        assert_eq!(s.runs(&gw("G1"), "e1").unwrap(), vec![(a.clone(), r(1, 3))]);
        assert_eq!(s.runs(&gw("G1"), "e2").unwrap(), vec![(a.clone(), r(1, 2))]);
        let all = s.records(&gw("G1")).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(
            all.iter()
                .map(|r| (r.epoch.as_str(), r.seq))
                .collect::<Vec<_>>(),
            [("e1", 1), ("e1", 2), ("e1", 3), ("e2", 1), ("e2", 2)]
        );
        assert_eq!(s.records_in(&gw("G1"), "e2").unwrap()[0].fields, ["new0"]);

        let row = |epoch: &str, boot, last| SessionRow {
            gateway: gw("G1"),
            epoch: epoch.into(),
            boot_count: boot,
            last_seq: last,
            periodic: "{}".into(),
        };
        s.upsert_session(&row("e1", 4, 9)).unwrap();
        s.upsert_session(&row("e1", 5, 3)).unwrap();
        assert_eq!(
            s.sessions().unwrap(),
            vec![row("e1", 5, 9)],
            "last seq only rises"
        );
        s.upsert_session(&row("e2", 6, 2)).unwrap();
        assert_eq!(
            s.sessions().unwrap(),
            vec![row("e2", 6, 2)],
            "a new epoch starts from its own last seq"
        );
        drop(s);
        let s = Store::open(&d.path().join("p.sqlite")).unwrap();
        assert_eq!(s.sessions().unwrap(), vec![row("e2", 6, 2)]);
    }

    #[test]
    fn a_revision_1_0_database_is_migrated_with_its_records_in_the_empty_epoch() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("p.sqlite");
        {
            let db = Connection::open(&path).unwrap();
            db.execute_batch(
                "CREATE TABLE records(
                   gateway TEXT NOT NULL, seq INTEGER NOT NULL, dataset TEXT NOT NULL,
                   fields TEXT NOT NULL, received_at TEXT NOT NULL, message_id TEXT NOT NULL,
                   PRIMARY KEY (gateway, seq));
                 CREATE TABLE sessions(
                   gateway TEXT PRIMARY KEY, boot_count INTEGER NOT NULL,
                   last_seq INTEGER NOT NULL, periodic TEXT NOT NULL);
                 INSERT INTO records VALUES ('G1', 1, 'billing', '[\"x\"]', 't', 'm1');
                 INSERT INTO records VALUES ('G1', 2, 'billing', '[\"y\"]', 't', 'm1');
                 INSERT INTO sessions VALUES ('G1', 3, 2, '{}');",
            )
            .unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        let recs = s.records(&gw("G1")).unwrap();
        assert_eq!(recs.len(), 2);
        assert!(recs.iter().all(|r| r.epoch.is_empty()));
        assert_eq!(recs[1].fields, ["y"]);
        assert_eq!(s.sessions().unwrap()[0].epoch, "");
        assert_eq!(s.sessions().unwrap()[0].boot_count, 3);
        // The new key: seq 1 again in a real epoch is a new record.
        let a = Dataset::new("billing").unwrap();
        assert_eq!(
            s.insert_records(&gw("G1"), "e1", &a, 1, &[vec!["z".into()]], "t", "m2")
                .unwrap(),
            1
        );
        drop(s);
        // Opening again does not migrate again.
        let s = Store::open(&path).unwrap();
        assert_eq!(s.records(&gw("G1")).unwrap().len(), 3);
    }
}
