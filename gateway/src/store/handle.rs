//! The store's owner thread ([`StoreHandle`]): one thread owns the [`Store`] (and with it the
//! `rusqlite::Connection`) and runs the jobs sent to it, one at a time, in order; callers
//! reach it through a std channel and get the answer on a reply channel or callback. Nothing
//! here depends on an async runtime: an async adapter passes a callback that completes its
//! own oneshot ([`StoreHandle::submit`]), so no SQLite call ever runs on an async worker and
//! no lock is held across SQL, I/O or crypto (the pattern of tokio-rusqlite, without tokio).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use super::{CrashPoint, IngestFailure, Ingested, Store, StoreError};
use crate::protocol::{Dataset, Time};

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// Records queued between an ingest's producer and the owner thread.
const INGEST_QUEUE: usize = 256;

/// A cloneable handle to the store's owner thread.
#[derive(Clone)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle")
    }
}

/// The owner thread; [`StoreThread::join`] waits until every handle is dropped and the
/// queued jobs ran.
pub struct StoreThread {
    thread: JoinHandle<()>,
    halted: Arc<AtomicBool>,
    crash_at: Arc<Mutex<Option<CrashPoint>>>,
}

impl StoreThread {
    /// Waits for the owner thread to end (after the last [`StoreHandle`] is dropped).
    pub fn join(self) -> Result<(), StoreError> {
        self.thread.join().map_err(|_| StoreError::Closed)
    }

    /// Runs no job after the one running now, as if the process died between two jobs (an
    /// in-process crash): the queued and later jobs are dropped, their callers see `Closed`;
    /// an ingest running now still ends in its commit or, once its producer is gone, its
    /// rollback.
    pub fn halt(&self) {
        self.halted.store(true, Ordering::SeqCst);
    }

    /// Whether the thread was halted ([`Self::halt`], or a crash point of [`Self::halt_at`]
    /// reached).
    pub fn is_halted(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }

    /// [`Self::halt`] once the job that makes the next commit of `point`'s kind has run (that
    /// job's own reply still goes out, as a process can die just after answering): the store's
    /// aimed crash. Replaces a crash point armed before and not yet reached.
    pub fn halt_at(&self, point: CrashPoint) {
        if let Ok(mut p) = self.crash_at.lock() {
            *p = Some(point);
        }
    }

    /// [`Self::halt_at`] and [`Self::is_halted`] for another thread (the `sgw` binary's crash
    /// point watcher, `runtime::crash_points`); it holds the thread's flags weakly, so it
    /// outlives the store thread harmlessly.
    pub fn crash_switch(&self) -> CrashSwitch {
        CrashSwitch {
            halted: Arc::downgrade(&self.halted),
            crash_at: Arc::downgrade(&self.crash_at),
        }
    }
}

/// A store thread's crash point, armed and watched from another thread
/// ([`StoreThread::crash_switch`]).
#[derive(Clone)]
pub struct CrashSwitch {
    halted: std::sync::Weak<AtomicBool>,
    crash_at: std::sync::Weak<Mutex<Option<CrashPoint>>>,
}

impl CrashSwitch {
    /// [`StoreThread::halt_at`]; false once the store thread's gateway has ended.
    pub fn arm(&self, point: CrashPoint) -> bool {
        match self.crash_at.upgrade() {
            Some(p) => {
                if let Ok(mut p) = p.lock() {
                    *p = Some(point);
                }
                true
            }
            None => false,
        }
    }

    /// `Some(halted)` while the store thread's gateway lives, `None` after.
    pub fn halted(&self) -> Option<bool> {
        self.halted.upgrade().map(|h| h.load(Ordering::SeqCst))
    }
}

enum Feed {
    Record(Vec<String>),
    End,
}

/// The owner thread's view of an ingest stream: records until `End`; a producer that went
/// away without `End` aborts the ingest.
struct FeedIter(mpsc::Receiver<Feed>);

impl Iterator for FeedIter {
    type Item = Result<Vec<String>, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.0.recv() {
            Ok(Feed::Record(r)) => Some(Ok(r)),
            Ok(Feed::End) => None,
            Err(_) => Some(Err(StoreError::Aborted)),
        }
    }
}

impl StoreHandle {
    /// Moves `store` to a new owner thread named `sgw-store`.
    pub fn spawn(store: Store) -> Result<(StoreHandle, StoreThread), StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let halted = Arc::new(AtomicBool::new(false));
        let halt = halted.clone();
        let crash_at: Arc<Mutex<Option<CrashPoint>>> = Arc::default();
        let armed = crash_at.clone();
        let thread = std::thread::Builder::new()
            .name("sgw-store".into())
            .spawn(move || {
                let mut store = store;
                for job in rx {
                    if halt.load(Ordering::SeqCst) {
                        break;
                    }
                    let before = store.commits();
                    // A panicking job is dropped (its transaction rolls back while unwinding,
                    // its caller sees `Closed`); the thread goes on with the next one.
                    let _ = catch_unwind(AssertUnwindSafe(|| job(&mut store)));
                    if let Ok(mut point) = armed.lock()
                        && point.is_some_and(|p| p.passed(before, store.commits()))
                    {
                        *point = None;
                        halt.store(true, Ordering::SeqCst);
                    }
                }
            })
            .map_err(StoreError::io("spawn store thread", "sgw-store"))?;
        Ok((
            StoreHandle { jobs: tx },
            StoreThread {
                thread,
                halted,
                crash_at,
            },
        ))
    }

    /// Runs `f` on the owner thread; `reply` gets its result there (keep it short: complete a
    /// oneshot, send on a channel). `Err(Closed)` if the thread is gone.
    pub fn submit<T, F, R>(&self, f: F, reply: R) -> Result<(), StoreError>
    where
        F: FnOnce(&mut Store) -> T + Send + 'static,
        R: FnOnce(T) + Send + 'static,
    {
        self.jobs
            .send(Box::new(move |s| reply(f(s))))
            .map_err(|_| StoreError::Closed)
    }

    /// Runs `f` on the owner thread and waits for its result (blocking the caller: from
    /// async code use [`Self::submit`] or a blocking task).
    pub fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Store) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(f, move |v| {
            let _ = tx.send(v);
        })?;
        rx.recv().map_err(|_| StoreError::Closed)
    }

    /// [`Store::ingest_file`] on the owner thread, streaming: `records` is consumed on the
    /// caller's thread (parsing, masking) and each record is passed on through a bounded
    /// queue while the owner thread writes it into the open transaction. Blocks until the
    /// durable commit or the rollback.
    pub fn ingest_file<I, E>(
        &self,
        dataset: Dataset,
        ingested_at: Time,
        records: I,
    ) -> Result<Ingested, IngestFailure<E>>
    where
        I: IntoIterator<Item = Result<Vec<String>, E>>,
    {
        let (feed_tx, feed_rx) = mpsc::sync_channel::<Feed>(INGEST_QUEUE);
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.submit(
            move |s: &mut Store| {
                let r = s.ingest_file(&dataset, ingested_at, FeedIter(feed_rx));
                r.map_err(|e| match e {
                    IngestFailure::Source(e) | IngestFailure::Store(e) => e,
                })
            },
            move |r| {
                let _ = reply_tx.send(r);
            },
        )?;
        let mut source_error = None;
        for item in records {
            match item {
                Ok(fields) => {
                    if feed_tx.send(Feed::Record(fields)).is_err() {
                        // The store refused already (quota, oversize record, SQL error).
                        break;
                    }
                }
                Err(e) => {
                    source_error = Some(e);
                    break;
                }
            }
        }
        if source_error.is_none() {
            let _ = feed_tx.send(Feed::End);
        }
        drop(feed_tx);
        let result = reply_rx.recv().map_err(|_| StoreError::Closed)?;
        match (source_error, result) {
            (Some(e), Err(_)) => Err(IngestFailure::Source(e)),
            // Cannot happen: the stream ended without `End`, so the store aborted.
            (Some(e), Ok(_)) => Err(IngestFailure::Source(e)),
            (None, r) => r.map_err(IngestFailure::Store),
        }
    }
}
