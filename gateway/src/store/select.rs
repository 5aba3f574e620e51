//! Resend selection from primary storage and the archives (ST-PROVIDE-1, DES-MSG-RS-1/2,
//! DES-EVAC-5).
//!
//! The record index is the `ingests` table (kept forever): every seq in `1..=lastSeq` that
//! belongs to an accepted file has a dataset and an ingest time there, whether its record is
//! stored, archived or lost. A selected seq is provided from the store if its row is there,
//! else from an archive listed in `archives` (whose file exists, when an archive directory is
//! given), else it is *missing* (no longer held). A seq of the range in no file is *unknown*.

use std::path::Path;

use rusqlite::params;

use super::{Store, StoreError, sq, time_ns, us};
use crate::protocol::message::ResultCode;
use crate::protocol::{Dataset, RangeSet, Seq, SeqRange, Time};

/// What a `resend.request` selects by (DES-MSG-RS-1: exactly one of the two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Records whose seq is in the range (inclusive).
    Seq(SeqRange),
    /// Records whose ingest time is in `from..=to`.
    Time {
        /// From (inclusive).
        from: Time,
        /// To (inclusive).
        to: Time,
    },
}

/// A resend request's selection (DES-MSG-RS-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResendQuery {
    /// Only this dataset; `None`: every dataset.
    pub dataset: Option<Dataset>,
    /// By seq or by time.
    pub selector: Selector,
}

/// A contiguous run of selected records of one dataset from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedRun {
    /// The dataset.
    pub dataset: Dataset,
    /// The seqs.
    pub range: SeqRange,
    /// `None`: from primary storage; `Some(file)`: from this evacuation archive.
    pub archive: Option<String>,
}

/// What a resend request selects, and what it cannot provide (DES-MSG-RS-2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Whether the request was by seq range (the code rules differ).
    pub by_seq: bool,
    /// The provided runs, ascending by seq.
    pub runs: Vec<SelectedRun>,
    /// Seqs of the selected dataset(s) that are indexed but no longer held (rows lost,
    /// archive missing).
    pub missing: Vec<SeqRange>,
    /// Seqs of the (clipped) range that belong to no accepted file: their dataset is unknown,
    /// so they may be missing (by seq only).
    pub unknown: Vec<SeqRange>,
    /// The part of the range beyond `lastSeq` (by seq only).
    pub beyond: Option<SeqRange>,
}

impl Selection {
    /// Records provided (`resend.result.records`).
    pub fn records(&self) -> u64 {
        self.runs.iter().map(|r| r.range.len()).sum()
    }
    /// Of those, read from archives (`resend.result.archived`).
    pub fn archived(&self) -> u64 {
        self.runs
            .iter()
            .filter(|r| r.archive.is_some())
            .map(|r| r.range.len())
            .sum()
    }
    /// The result code of DES-MSG-RS-2 (after the UNKNOWN_DATASET and BUSY checks, which are
    /// the core's): NOT_FOUND when nothing is provided; by time OK otherwise; by seq OK only
    /// if nothing lies beyond `lastSeq`, nothing selected is missing and no seq is unknown,
    /// else PARTIAL. Seqs of other datasets never count as missing.
    pub fn code(&self) -> ResultCode {
        if self.records() == 0 {
            ResultCode::NotFound
        } else if self.by_seq
            && (self.beyond.is_some() || !self.missing.is_empty() || !self.unknown.is_empty())
        {
            ResultCode::Partial
        } else {
            ResultCode::Ok
        }
    }
}

pub(super) struct ArchiveRow {
    pub(super) file: String,
    pub(super) dataset: String,
    pub(super) range: SeqRange,
}

impl Store {
    /// The resend selection of `query` (DES-MSG-RS-2): seq ranges are clipped to
    /// `1..=lastSeq`; the runs come from primary storage or, for evacuated records, from the
    /// archives (if `archive_dir` is given, an archive whose file is not there counts as
    /// missing; its content is checked only when read, [`Store::read_archived`]).
    pub fn select_resend(
        &self,
        query: &ResendQuery,
        archive_dir: Option<&Path>,
    ) -> Result<Selection, StoreError> {
        let last_seq = self.last_seq()?;
        let mut sel = Selection::default();
        // (dataset, range) of every selected piece of the index.
        let mut pieces: Vec<(String, SeqRange)> = Vec::new();
        match &query.selector {
            Selector::Seq(r) => {
                sel.by_seq = true;
                if r.last > last_seq {
                    sel.beyond = SeqRange::new(r.first.max(last_seq + 1), r.last);
                }
                let Some(clipped) = SeqRange::new(r.first, r.last.min(last_seq)) else {
                    return Ok(sel);
                };
                let mut covered = RangeSet::new();
                for (ds, range) in self.ingests_overlapping(clipped)? {
                    let x =
                        SeqRange::new(range.first.max(clipped.first), range.last.min(clipped.last))
                            .expect("overlapping");
                    covered.insert(x);
                    pieces.push((ds, x));
                }
                sel.unknown = covered.missing_in(clipped);
            }
            Selector::Time { from, to } => {
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT first, last, dataset FROM ingests \
                         WHERE ingested_ns BETWEEN ?1 AND ?2 ORDER BY first",
                    )
                    .map_err(StoreError::sql("prepare time selection"))?;
                let rows = stmt
                    .query_map(params![time_ns(from)?, time_ns(to)?], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    })
                    .map_err(StoreError::sql("select by time"))?;
                for row in rows {
                    let (f, l, ds) = row.map_err(StoreError::sql("read ingest"))?;
                    if let Some(range) = SeqRange::new(us(f), us(l)) {
                        pieces.push((ds, range));
                    }
                }
            }
        }
        for (ds, x) in pieces {
            if query.dataset.as_ref().is_some_and(|d| d.as_str() != ds) {
                continue;
            }
            let dataset = Dataset::new(ds.clone())
                .map_err(|e| StoreError::Corrupt(format!("ingest dataset: {e}")))?;
            let stored = self.stored_in(x)?;
            for r in stored.ranges() {
                push_run(&mut sel.runs, &dataset, *r, None);
            }
            let mut provided = stored.clone();
            for a in self.archives_overlapping(&ds, x)? {
                let Some(y) = SeqRange::new(a.range.first.max(x.first), a.range.last.min(x.last))
                else {
                    continue;
                };
                if archive_dir.is_some_and(|d| !d.join(&a.file).is_file()) {
                    continue;
                }
                for z in stored.missing_in(y) {
                    push_run(&mut sel.runs, &dataset, z, Some(&a.file));
                    provided.insert(z);
                }
            }
            sel.missing.extend(provided.missing_in(x));
        }
        sel.runs.sort_by_key(|r| r.range.first);
        sel.runs = merge_runs(std::mem::take(&mut sel.runs));
        Ok(sel)
    }

    /// `(dataset, range)` of the ingests overlapping `range`, ascending.
    pub(crate) fn ingests_overlapping(
        &self,
        range: SeqRange,
    ) -> Result<Vec<(String, SeqRange)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT first, last, dataset FROM ingests WHERE last >= ?1 AND first <= ?2 \
                 ORDER BY first",
            )
            .map_err(StoreError::sql("prepare ingests"))?;
        let rows = stmt
            .query_map(params![sq(range.first), sq(range.last)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(StoreError::sql("read ingests"))?;
        let mut out = Vec::new();
        for row in rows {
            let (f, l, ds) = row.map_err(StoreError::sql("read ingest"))?;
            if let Some(r) = SeqRange::new(us(f), us(l)) {
                out.push((ds, r));
            }
        }
        Ok(out)
    }

    /// The seqs of `range` that have a row in primary storage.
    fn stored_in(&self, range: SeqRange) -> Result<RangeSet, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq FROM records WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq")
            .map_err(StoreError::sql("prepare stored seqs"))?;
        let rows = stmt
            .query_map(params![sq(range.first), sq(range.last)], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(StoreError::sql("read stored seqs"))?;
        let mut set = RangeSet::new();
        let mut run: Option<(Seq, Seq)> = None;
        for row in rows {
            let seq = us(row.map_err(StoreError::sql("read seq"))?);
            run = match run {
                Some((f, l)) if l + 1 == seq => Some((f, seq)),
                Some((f, l)) => {
                    set.insert(SeqRange { first: f, last: l });
                    Some((seq, seq))
                }
                None => Some((seq, seq)),
            };
        }
        if let Some((f, l)) = run {
            set.insert(SeqRange { first: f, last: l });
        }
        Ok(set)
    }

    /// The archives whose records left primary storage (DES-EVAC-4 step 3 done):
    /// `(file, dataset, range)`, ascending by seq.
    pub fn archives(&self) -> Result<Vec<(String, Dataset, SeqRange)>, StoreError> {
        self.archive_rows()?
            .into_iter()
            .map(|a| {
                Dataset::new(a.dataset)
                    .map(|d| (a.file, d, a.range))
                    .map_err(|e| StoreError::Corrupt(format!("archive dataset: {e}")))
            })
            .collect()
    }

    /// The archives of `dataset` overlapping `range`, ascending.
    fn archives_overlapping(
        &self,
        dataset: &str,
        range: SeqRange,
    ) -> Result<Vec<ArchiveRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT file, first, last FROM archives \
                 WHERE dataset = ?1 AND last >= ?2 AND first <= ?3 ORDER BY first",
            )
            .map_err(StoreError::sql("prepare archives"))?;
        let rows = stmt
            .query_map(params![dataset, sq(range.first), sq(range.last)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(StoreError::sql("read archives"))?;
        let mut out = Vec::new();
        for row in rows {
            let (file, f, l) = row.map_err(StoreError::sql("read archive"))?;
            let range = SeqRange::new(us(f), us(l))
                .ok_or_else(|| StoreError::Corrupt(format!("archive {file} range")))?;
            out.push(ArchiveRow {
                file,
                dataset: dataset.to_string(),
                range,
            });
        }
        Ok(out)
    }

    pub(super) fn archive_rows(&self) -> Result<Vec<ArchiveRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT file, dataset, first, last FROM archives ORDER BY first")
            .map_err(StoreError::sql("prepare archives"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(StoreError::sql("read archives"))?;
        let mut out = Vec::new();
        for row in rows {
            let (file, dataset, f, l) = row.map_err(StoreError::sql("read archive"))?;
            let range = SeqRange::new(us(f), us(l))
                .ok_or_else(|| StoreError::Corrupt(format!("archive {file} range")))?;
            out.push(ArchiveRow {
                file,
                dataset,
                range,
            });
        }
        Ok(out)
    }
}

fn push_run(runs: &mut Vec<SelectedRun>, dataset: &Dataset, range: SeqRange, file: Option<&str>) {
    runs.push(SelectedRun {
        dataset: dataset.clone(),
        range,
        archive: file.map(str::to_string),
    });
}

/// Merges adjacent runs of one dataset and one source (`runs` ascending).
fn merge_runs(runs: Vec<SelectedRun>) -> Vec<SelectedRun> {
    let mut out: Vec<SelectedRun> = Vec::with_capacity(runs.len());
    for r in runs {
        if let Some(last) = out.last_mut()
            && last.dataset == r.dataset
            && last.archive == r.archive
            && last.range.last + 1 == r.range.first
        {
            last.range.last = r.range.last;
            continue;
        }
        out.push(r);
    }
    out
}
