//! `sgw wipe`: disposal of a gateway (SM-DISPOSE, "at disposal, identifiers, credentials and
//! stored data can be made unreadable"). The plan names everything secret or stored that the
//! bundle points at: the state directory (primary storage, snapshot, reply memory, quarantine),
//! the evacuation archives, the utility's masking keys, every private key (TLS client, data
//! protection and its earlier keys, the FTPS server key) and `gateway.toml` (FTP password
//! hashes). Each regular file is overwritten with zeros and synced before it is unlinked;
//! directories are then removed. Symbolic links are removed, never followed.
//!
//! What overwriting does not reach, said plainly: copy-on-write and journaling file systems,
//! SSD wear levelling and backups may keep older blocks. For media that leave the utility, the
//! state directory belongs on an encrypted volume whose key is destroyed at disposal (see
//! SM-ATREST in `store`); `sgw wipe` is the step that makes the gateway's own files
//! unreadable through the file system.
//!
//! Requirement IDs: SM-DISPOSE.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::Config;

/// What `sgw wipe` removes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WipePlan {
    /// Existing files and directories to remove.
    pub paths: Vec<PathBuf>,
}

/// What a wipe did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WipeReport {
    /// Regular files overwritten and removed.
    pub files: u64,
    /// Bytes overwritten.
    pub bytes: u64,
}

/// The plan for the bundle in `bundle_dir` with configuration `cfg`.
pub fn plan(cfg: &Config, bundle_dir: &Path) -> WipePlan {
    let mut v: Vec<PathBuf> = vec![
        cfg.gateway.state_dir.path().to_owned(),
        cfg.storage.evacuation_dir.path().to_owned(),
        cfg.masking.keys_dir.path().to_owned(),
        cfg.tls.client_key.path().to_owned(),
        cfg.ftp.tls_key.path().to_owned(),
    ];
    // The data-protection key and the earlier keys kept beside it (`*.key`).
    let dp = cfg.data_protection.key.path();
    v.push(dp.to_owned());
    if let Some(dir) = dp.parent()
        && let Ok(rd) = fs::read_dir(dir)
    {
        let mut keys: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "key"))
            .collect();
        keys.sort();
        v.extend(keys);
    }
    v.push(bundle_dir.join("gateway.toml"));
    let mut seen = std::collections::HashSet::new();
    let paths = v
        .into_iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .filter(|p| seen.insert(p.clone()))
        .collect();
    WipePlan { paths }
}

/// Carries out `plan`: overwrite, sync and unlink every file, then remove the directories.
pub fn wipe(plan: &WipePlan) -> io::Result<WipeReport> {
    let mut report = WipeReport::default();
    for p in &plan.paths {
        remove(p, &mut report)?;
    }
    Ok(report)
}

fn remove(p: &Path, report: &mut WipeReport) -> io::Result<()> {
    let meta = match p.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        for e in fs::read_dir(p)? {
            remove(&e?.path(), report)?;
        }
        fs::remove_dir(p)
    } else if ft.is_file() {
        overwrite(p, meta.len())?;
        report.files += 1;
        report.bytes += meta.len();
        fs::remove_file(p)
    } else {
        fs::remove_file(p)
    }
}

fn overwrite(p: &Path, len: u64) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(p)?;
    let zeros = [0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipe_overwrites_and_removes_files_and_directories_but_not_what_a_link_points_to() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        fs::create_dir_all(state.join("quarantine")).unwrap();
        fs::write(state.join("store.sqlite3"), b"secret rows").unwrap();
        fs::write(state.join("quarantine/x.csv"), b"unmasked").unwrap();
        let outside = d.path().join("outside.txt");
        fs::write(&outside, b"keep me").unwrap();
        std::os::unix::fs::symlink(&outside, state.join("link")).unwrap();
        let key = d.path().join("client.key");
        fs::write(&key, b"-----BEGIN PRIVATE KEY-----").unwrap();
        let plan = WipePlan {
            paths: vec![state.clone(), key.clone()],
        };
        let r = wipe(&plan).unwrap();
        assert_eq!(r.files, 3);
        assert_eq!(r.bytes, 11 + 8 + 27);
        assert!(!state.exists() && !key.exists());
        assert_eq!(fs::read(&outside).unwrap(), b"keep me");
    }
}
