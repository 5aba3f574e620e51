//! `sgw export`: every record the gateway holds — in primary storage and in the evacuation
//! archives (read back and verified, DES-EVAC-5) — in seq order, as stored (masked columns
//! masked, DES-MASK-4), for a hand-over before disposal (SM-DISPOSE) or an audit.
//!
//! Requirement IDs: SM-DISPOSE, ST-PROVIDE-1.

use std::path::Path;

use rusqlite::params;
use serde::Serialize;

use super::{ArchiveKeys, Store, StoreError, fmt_time, parse_time, us};
use crate::protocol::ids::{Dataset, SeqRange};

/// One exported record (a JSON line of `sgw export`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRecord {
    /// Its seq (DES-ID-4).
    pub seq: u64,
    /// Its dataset.
    pub dataset: String,
    /// When it was ingested (DES-ENV-2 timestamp).
    pub ingested_at: String,
    /// `primary` or `archive` (DES-EVAC-1).
    pub place: &'static str,
    /// Acknowledged by the platform (archived records always are).
    pub acked: bool,
    /// Its fields as stored (masked columns masked).
    pub fields: Vec<String>,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Records from primary storage.
    pub primary: u64,
    /// Records from archives.
    pub archived: u64,
}

impl Store {
    /// Calls `sink` with every record in seq order: archived ranges (each archive read back and
    /// verified with `keys`) interleaved with the rows of primary storage.
    pub fn export(
        &self,
        evacuation_dir: &Path,
        keys: &ArchiveKeys,
        mut sink: impl FnMut(&ExportRecord) -> std::io::Result<()>,
    ) -> Result<ExportSummary, StoreError> {
        let mut archives: Vec<(Dataset, SeqRange)> = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT dataset, first, last FROM archives ORDER BY first")
                .map_err(StoreError::sql("prepare archive list"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(StoreError::sql("list archives"))?;
            for row in rows {
                let (ds, first, last) = row.map_err(StoreError::sql("list archive"))?;
                let ds = Dataset::new(&ds)
                    .map_err(|e| StoreError::Corrupt(format!("archive dataset {ds:?}: {e}")))?;
                let range = SeqRange::new(us(first), us(last))
                    .ok_or_else(|| StoreError::Corrupt(format!("archive range {first}..{last}")))?;
                archives.push((ds, range));
            }
        }
        let mut archives = archives.into_iter().peekable();
        let mut sum = ExportSummary::default();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.seq, r.dataset, r.fields, r.acked, \
                 (SELECT i.ingested_at FROM ingests i WHERE i.first <= r.seq \
                  ORDER BY i.first DESC LIMIT 1) \
                 FROM records r ORDER BY r.seq",
            )
            .map_err(StoreError::sql("prepare export"))?;
        let mut rows = stmt
            .query(params![])
            .map_err(StoreError::sql("export records"))?;
        while let Some(row) = rows.next().map_err(StoreError::sql("export record"))? {
            let seq = us(row.get(0).map_err(StoreError::sql("export seq"))?);
            while let Some((ds, range)) = archives.next_if(|(_, r)| r.first < seq) {
                sum.archived += self.export_archive(&ds, range, evacuation_dir, keys, &mut sink)?;
            }
            let dataset: String = row.get(1).map_err(StoreError::sql("export dataset"))?;
            let fields: String = row.get(2).map_err(StoreError::sql("export fields"))?;
            let acked: i64 = row.get(3).map_err(StoreError::sql("export acked"))?;
            let at: Option<String> = row.get(4).map_err(StoreError::sql("export time"))?;
            let at = at.ok_or_else(|| StoreError::Corrupt(format!("seq {seq} has no ingest")))?;
            let fields: Vec<String> = serde_json::from_str(&fields)
                .map_err(|e| StoreError::Corrupt(format!("fields of seq {seq}: {e}")))?;
            sink(&ExportRecord {
                seq,
                dataset,
                ingested_at: fmt_time(&parse_time(&at)?),
                place: "primary",
                acked: acked != 0,
                fields,
            })
            .map_err(write_error)?;
            sum.primary += 1;
        }
        for (ds, range) in archives {
            sum.archived += self.export_archive(&ds, range, evacuation_dir, keys, &mut sink)?;
        }
        Ok(sum)
    }

    fn export_archive(
        &self,
        dataset: &Dataset,
        range: SeqRange,
        evacuation_dir: &Path,
        keys: &ArchiveKeys,
        sink: &mut impl FnMut(&ExportRecord) -> std::io::Result<()>,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for r in self.read_archived(dataset, range, evacuation_dir, keys)? {
            sink(&ExportRecord {
                seq: r.seq,
                dataset: dataset.as_str().to_owned(),
                ingested_at: fmt_time(&r.ingested_at),
                place: "archive",
                acked: true,
                fields: r.fields,
            })
            .map_err(write_error)?;
            n += 1;
        }
        Ok(n)
    }
}

fn write_error(e: std::io::Error) -> StoreError {
    StoreError::Io {
        context: "write export",
        path: "-".into(),
        source: e,
    }
}
