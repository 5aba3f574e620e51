//! Errors of primary storage and the evacuation archives ([`StoreError`]), and what each
//! means for the FTP reply of the upload that caused an ingest (DES-FTP-6).

use std::path::PathBuf;

use crate::protocol::{Dataset, SeqRange};
use crate::security::SecurityError;

/// Why a store operation failed. Nothing was changed unless the variant says otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("ST-STORE-1: {context}: {source}")]
    Sqlite {
        /// What the store was doing.
        context: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("ST-STORE-1: {context} {}: {source}", path.display())]
    Io {
        /// What the store was doing.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store was written by a newer version of the gateway (its schema version is higher
    /// than this build knows). Nothing was changed; run the newer version or restore a backup.
    #[error(
        "ST-STORE-1: store schema version {found} is newer than this gateway supports ({supported}); \
         refusing to open it"
    )]
    SchemaTooNew {
        /// The store's schema version.
        found: i64,
        /// The highest this build reads.
        supported: i64,
    },
    /// The store's content contradicts its own invariants (not a SQLite file of ours, a
    /// damaged row, an unparsable snapshot, an index line that does not parse).
    #[error("ST-STORE-1: store is damaged: {0}")]
    Corrupt(String),
    /// Another process holds the store (DES-MQTT-2: one process per gateway).
    #[error("ST-STORE-1: store {} is in use by another process", .0.display())]
    Locked(PathBuf),
    /// DES-FTP-6: the quota of primary storage would be exceeded; nothing was stored (452).
    #[error(
        "DES-FTP-6: storage quota reached ({used} of {quota} bytes used, {needed} more needed)"
    )]
    QuotaExceeded {
        /// Bytes used before the refused ingest.
        used: u64,
        /// The quota.
        quota: u64,
        /// Bytes the refused ingest had reached when it was refused (at least one record).
        needed: u64,
    },
    /// DES-MSG-DATA-6: a record's wire size is over 65 536 bytes; nothing was stored (552).
    #[error("DES-MSG-DATA-6: record {index} has a wire size of {bytes} bytes, more than 65536")]
    RecordTooLarge {
        /// Index of the record in the file (0-based, data records only).
        index: usize,
        /// Its wire size.
        bytes: u32,
    },
    /// DES-CSV-1: an ingest without any record; nothing was stored.
    #[error("DES-CSV-1: no data record to ingest")]
    Empty,
    /// DES-ID-4: the sequence space this store can hold (seqs up to 2⁶³ − 1) is exhausted.
    #[error("DES-ID-4: sequence numbers exhausted")]
    Exhausted,
    /// A timestamp outside what the store can order (years 1678..=2261).
    #[error("DES-ENV-2: timestamp {0} is outside the range the store can order")]
    TimeOutOfRange(String),
    /// The records asked for are not (all) in primary storage: evacuated, or lost.
    #[error("ST-PROVIDE-1: records {}..={} of {dataset} are not all in primary storage", range.first, range.last)]
    RecordsMissing {
        /// The dataset asked for.
        dataset: Dataset,
        /// The range asked for.
        range: SeqRange,
    },
    /// DES-EVAC-5: an archive is missing or fails a check (SHA-256 against the index,
    /// decryption, signature, header); its records count as no longer held.
    #[error("DES-EVAC-5: archive {file}: {what}")]
    Archive {
        /// The archive file name.
        file: String,
        /// What is wrong.
        what: String,
    },
    /// DES-EVAC-3: signing, encrypting, decrypting or verifying an archive failed.
    #[error("DES-EVAC-3: archive {file}: {source}")]
    Security {
        /// The archive file name.
        file: String,
        /// The data-security error.
        #[source]
        source: SecurityError,
    },
    /// An ingest stream was abandoned by its producer before its end; nothing was stored.
    #[error("SC-ACQ-1: ingest abandoned by its producer")]
    Aborted,
    /// The store's owner thread is gone ([`super::StoreHandle`]).
    #[error("ST-STORE-1: the store thread has stopped")]
    Closed,
}

impl StoreError {
    /// The FTP reply code of DES-FTP-6 for an upload whose ingest failed with this error:
    /// 452 for the quota, 552 for an oversize record, 551 for an empty file, else 451 (local
    /// storage error, retry later).
    pub fn ftp_reply_code(&self) -> u16 {
        match self {
            StoreError::QuotaExceeded { .. } => 452,
            StoreError::RecordTooLarge { .. } => 552,
            StoreError::Empty => 551,
            _ => 451,
        }
    }

    pub(crate) fn sql(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sqlite { context, source }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io {
            context,
            path,
            source,
        }
    }
}

/// Why a streamed ingest failed: its producer reported an error (the CSV did not parse, a
/// value was refused…), or the store refused or failed. Either way nothing was stored and no
/// sequence number was used (DES-FTP-6).
#[derive(Debug, thiserror::Error)]
pub enum IngestFailure<E> {
    /// The record stream yielded this error.
    #[error("{0}")]
    Source(E),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
