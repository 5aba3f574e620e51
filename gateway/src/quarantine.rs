//! Quarantine of refused uploads (`docs/protocol.md` DES-FTP-7), synchronous file operations
//! called from the ingest pipeline's blocking task.
//!
//! Every upload that passes the checks made when `STOR` arrives is copied, while it streams
//! through the decoder, into `{state_dir}/quarantine/.incoming/` (an owner-only file, at most
//! `max_file_bytes` of it). After the outcome the copy is either removed (accepted: the rows are
//! in the store, masked; refused with a 4xx code: the legacy system sends it again) or, for a
//! 5xx refusal, renamed to `{yyyymmddThhmmssZ}_{user}_{name}` beside a `{same}.reason` file (the
//! reply line and the client address). The quarantine holds unmasked data: the directory is
//! mode 0700, its files 0600, and nothing in it is ever sent. A copy left in `.incoming/` by a
//! crash belongs to an upload that got no reply, so the legacy system sends it again: start-up
//! removes it ([`Quarantine::open`]).
//!
//! Requirement IDs: SC-FTP-1, SM-ATREST, SM-AUDIT.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::protocol::flow::Time;

/// The quarantine directory of one gateway.
#[derive(Debug, Clone)]
pub struct Quarantine {
    dir: PathBuf,
}

/// The copy of one upload while it streams (DES-FTP-7).
#[derive(Debug)]
pub struct Incoming {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    limit: u64,
    /// Whether every byte received is in the copy (false: over the limit, or a write failed).
    complete: bool,
}

impl Quarantine {
    /// Opens (creating with mode 0700) `dir` and its `.incoming/`, and removes copies that a
    /// crash left in `.incoming/`; returns how many were removed.
    pub fn open(dir: &Path) -> io::Result<(Self, usize)> {
        let incoming = dir.join(".incoming");
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&incoming)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        let mut removed = 0;
        for e in fs::read_dir(&incoming)? {
            let p = e?.path();
            if p.is_file() {
                fs::remove_file(&p)?;
                removed += 1;
            }
        }
        Ok((
            Self {
                dir: dir.to_owned(),
            },
            removed,
        ))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new owner-only copy in `.incoming/` taking at most `limit` bytes.
    pub fn incoming(&self, limit: u64) -> io::Result<Incoming> {
        let name: u128 = rand::random();
        let path = self.dir.join(".incoming").join(format!("{name:032x}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Incoming {
            path,
            file: Some(file),
            written: 0,
            limit,
            complete: true,
        })
    }

    /// Keeps a refused upload (DES-FTP-7): the copy becomes `{at}_{user}_{name}` (a `~n` suffix
    /// if that exists), beside `.reason` with `reply` and `addr`. `user` and `name` passed the
    /// DES-FTP-3/DES-FTP-5 rules (no path separators). Returns the kept file's path.
    pub fn keep(
        &self,
        copy: Incoming,
        at: Time,
        user: &str,
        name: &str,
        reply: &str,
        addr: &str,
    ) -> io::Result<PathBuf> {
        let Incoming {
            path,
            file,
            written,
            complete,
            ..
        } = copy;
        if let Some(mut f) = file {
            f.flush()?;
        }
        let stamp = at.with_timezone(&chrono::Utc).format("%Y%m%dT%H%M%SZ");
        let base = format!("{stamp}_{user}_{name}");
        let mut target = self.dir.join(&base);
        let mut n = 1;
        while target.exists() || reason_path(&target).exists() {
            n += 1;
            target = self.dir.join(format!("{base}~{n}"));
        }
        fs::rename(&path, &target)?;
        let mut reason = format!("{reply}\nclient {addr}\n");
        if !complete {
            reason.push_str(&format!(
                "copy holds the first {written} bytes received (DES-FTP-7)\n"
            ));
        }
        let mut r = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(reason_path(&target))?;
        r.write_all(reason.as_bytes())?;
        r.sync_all()?;
        Ok(target)
    }

    /// Every kept file (not the `.reason` files), sorted by name.
    pub fn kept(&self) -> io::Result<Vec<PathBuf>> {
        let mut v = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let p = e?.path();
            if p.is_file() && p.extension().is_none_or(|x| x != "reason") {
                v.push(p);
            }
        }
        v.sort();
        Ok(v)
    }
}

fn reason_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".reason");
    PathBuf::from(s)
}

impl Incoming {
    /// Appends `bytes` up to the limit; a write error stops the copy (the upload goes on: the
    /// copy only serves the quarantine).
    pub fn write(&mut self, bytes: &[u8]) {
        let room = self.limit.saturating_sub(self.written);
        let take = (bytes.len() as u64).min(room) as usize;
        if take < bytes.len() {
            self.complete = false;
        }
        if take == 0 {
            return;
        }
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.write_all(&bytes[..take]) {
                tracing::warn!(rule = "DES-FTP-7", error = %e, "quarantine copy stopped");
                self.file = None;
                self.complete = false;
            } else {
                self.written += take as u64;
            }
        }
    }

    /// Removes the copy (accepted, or refused with 4xx).
    pub fn discard(self) {
        drop(self.file);
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(rule = "DES-FTP-7", error = %e, path = %self.path.display(), "quarantine copy not removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Time {
        chrono::DateTime::parse_from_rfc3339("2026-12-04T09:30:05+09:00").unwrap()
    }

    #[test]
    fn a_refused_copy_is_kept_owner_only_with_its_reason_and_an_accepted_one_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let (q, removed) = Quarantine::open(&d.path().join("quarantine")).unwrap();
        assert_eq!(removed, 0);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(q.dir()), 0o700);

        let mut c = q.incoming(1 << 20).unwrap();
        c.write(b"a,b\n1,2\n");
        let kept = q
            .keep(
                c,
                t(),
                "billing",
                "b.csv",
                "551 DES-CSV-3: line 2",
                "127.0.0.1",
            )
            .unwrap();
        assert_eq!(
            kept.file_name().unwrap().to_str().unwrap(),
            "20261204T003005Z_billing_b.csv"
        );
        assert_eq!(fs::read(&kept).unwrap(), b"a,b\n1,2\n");
        assert_eq!(mode(&kept), 0o600);
        let reason = fs::read_to_string(reason_path(&kept)).unwrap();
        assert_eq!(reason, "551 DES-CSV-3: line 2\nclient 127.0.0.1\n");

        // The same name in the same second is not overwritten.
        let c = q.incoming(1 << 20).unwrap();
        let again = q.keep(c, t(), "billing", "b.csv", "551 x", "::1").unwrap();
        assert_ne!(again, kept);
        assert_eq!(q.kept().unwrap(), vec![kept.clone(), again]);

        let c = q.incoming(1 << 20).unwrap();
        c.discard();
        assert_eq!(fs::read_dir(q.dir().join(".incoming")).unwrap().count(), 0);
    }

    #[test]
    fn the_copy_stops_at_the_limit_and_says_so() {
        let d = tempfile::tempdir().unwrap();
        let (q, _) = Quarantine::open(d.path()).unwrap();
        let mut c = q.incoming(5).unwrap();
        c.write(b"abc");
        c.write(b"defg");
        let kept = q.keep(c, t(), "u", "big.csv", "552 x", "a").unwrap();
        assert_eq!(fs::read(&kept).unwrap(), b"abcde");
        assert!(
            fs::read_to_string(reason_path(&kept))
                .unwrap()
                .contains("first 5 bytes")
        );
    }

    #[test]
    fn copies_left_by_a_crash_are_removed_at_start() {
        let d = tempfile::tempdir().unwrap();
        let (q, _) = Quarantine::open(d.path()).unwrap();
        let mut c = q.incoming(100).unwrap();
        c.write(b"x");
        drop(c); // a crash: neither kept nor discarded
        let (_, removed) = Quarantine::open(d.path()).unwrap();
        assert_eq!(removed, 1);
    }
}
