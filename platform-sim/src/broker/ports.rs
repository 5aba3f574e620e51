//! Loopback ports for listeners started later (the broker, a gateway's FTP control port and
//! passive range, an HTTPS endpoint), reserved so that two draws never hand out the same port.
//!
//! A port drawn here is free when drawn but bound only later, by whoever the port is for (a
//! gateway started from a bundle that names it). Checking that it is free is not enough: a
//! second draw in that window — another case of the same conformance run, another run or test
//! process on the machine, or any draw while a gateway is down between a kill and its restart
//! on the same port — may find it free too, and then one of the two listeners cannot bind it
//! (seen once in a twenty-run determinism series, two runs at a time: a case's gateway "cannot
//! listen for FTP … Address already in use"). So every port handed out is reserved for
//! [`RESERVED_FOR`], longer than such a window lasts, in a registry every drawing process on the
//! machine shares: a file in the temporary directory ([`REGISTRY_FILE`]), read and rewritten
//! under an exclusive `flock`, one `port expiry` line (Unix seconds) per reservation. Expired
//! lines are dropped when it is rewritten. A process that cannot use the file (another user's,
//! an unwritable directory) still reserves within itself.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a port handed out stays reserved against other draws: longer than a conformance
/// case lasts by default (its deadline is 90 s), so a gateway killed and restarted within its
/// case finds its ports again; short enough that two full runs at a time, each drawing some
/// 2 000 passive ports in four minutes from the 6 000 of their range, never run out.
pub const RESERVED_FOR: Duration = Duration::from_secs(120);

/// The registry's file name in the temporary directory.
pub const REGISTRY_FILE: &str = "sgw-loopback-ports";

/// This process's reservations (the registry's, when the file cannot be used).
static OWN: Mutex<BTreeMap<u16, u64>> = Mutex::new(BTreeMap::new());

/// The machine-wide registry's path.
fn registry() -> PathBuf {
    std::env::temp_dir().join(REGISTRY_FILE)
}

/// `n` consecutive loopback ports free now and reserved by no one, the first drawn at random
/// from `within` (then the next ones, until a run is found); reserved for [`RESERVED_FOR`].
pub(crate) fn free_ports(n: u16, within: std::ops::Range<u16>) -> std::io::Result<u16> {
    free_ports_in(&registry(), n, within)
}

/// As [`free_ports`], with the registry at `path`.
pub(crate) fn free_ports_in(
    path: &Path,
    n: u16,
    within: std::ops::Range<u16>,
) -> std::io::Result<u16> {
    use rand::Rng;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut own = OWN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    own.retain(|_, until| *until > now);
    let mut shared = Shared::open(path, now);
    // Every possible first port once, from a random one on: a free run is found if there is one.
    let span = (u32::from(within.end) + 1)
        .saturating_sub(u32::from(n))
        .saturating_sub(u32::from(within.start));
    let offset = if span > 0 {
        rand::rng().random_range(0..span)
    } else {
        0
    };
    for i in 0..span {
        let first =
            u16::try_from(u32::from(within.start) + (offset + i) % span).unwrap_or(within.start);
        let ports = first..first + n;
        if ports.clone().any(|p| {
            own.contains_key(&p) || shared.as_ref().is_some_and(|s| s.taken.contains_key(&p))
        }) {
            continue;
        }
        let held: Result<Vec<TcpListener>, _> = ports
            .clone()
            .map(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)))
            .collect();
        if held.is_ok() {
            let until = now + RESERVED_FOR.as_secs();
            for p in ports {
                own.insert(p, until);
                if let Some(s) = shared.as_mut() {
                    s.taken.insert(p, until);
                }
            }
            if let Some(s) = shared.take() {
                s.save();
            }
            return Ok(first);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!(
            "no {n} consecutive free and unreserved loopback ports in {}..{}",
            within.start, within.end
        ),
    ))
}

/// The registry file, locked while this value lives, and its unexpired reservations.
struct Shared {
    file: std::fs::File,
    taken: BTreeMap<u16, u64>,
}

impl Shared {
    /// Opens and locks the registry at `path`; `None` if it cannot be used.
    fn open(path: &Path, now: u64) -> Option<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o644)
            .open(path)
            .ok()?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).ok()?;
        let mut text = String::new();
        file.read_to_string(&mut text).ok()?;
        let taken = text
            .lines()
            .filter_map(|l| {
                let (p, u) = l.split_once(' ')?;
                Some((p.parse().ok()?, u.parse().ok()?))
            })
            .filter(|(_, until)| *until > now)
            .collect();
        Some(Self { file, taken })
    }

    /// Rewrites the registry with the unexpired reservations (the lock goes with the file).
    fn save(mut self) {
        let text: String = self
            .taken
            .iter()
            .map(|(p, until)| format!("{p} {until}\n"))
            .collect();
        // Best effort: a registry that cannot be written leaves the reservation in this process.
        let _ = self
            .file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .and_then(|()| self.file.write_all(text.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ports below the kernel's ephemeral range (32768) that nothing else here draws from.
    const RANGE: std::ops::Range<u16> = 32_100..32_120;

    #[test]
    fn every_free_port_of_a_range_is_handed_out_once_and_then_none() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path().join("ports");
        let mut seen: Vec<u16> = (0..20)
            .map(|_| free_ports_in(&reg, 1, RANGE).unwrap())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (32_100..32_120).collect::<Vec<u16>>());
        let e = free_ports_in(&reg, 1, RANGE).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains("unreserved"), "{e}");
    }

    #[test]
    fn another_process_s_reservations_in_the_registry_are_kept_and_expired_ones_reused() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path().join("ports");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // As another process left it: 32200..=32208 reserved, 32209 expired.
        let mut text: String = (32_200..32_209)
            .map(|p| format!("{p} {}\n", now + 300))
            .collect();
        text.push_str(&format!("32209 {}\n", now - 1));
        std::fs::write(&reg, text).unwrap();
        let p = free_ports_in(&reg, 1, 32_200..32_210).unwrap();
        assert_eq!(p, 32_209);
        // The registry now holds the nine and 32209 until about ten minutes from now.
        let kept: BTreeMap<u16, u64> = std::fs::read_to_string(&reg)
            .unwrap()
            .lines()
            .map(|l| {
                let (p, u) = l.split_once(' ').unwrap();
                (p.parse().unwrap(), u.parse().unwrap())
            })
            .collect();
        assert_eq!(
            kept.keys().copied().collect::<Vec<u16>>(),
            (32_200..32_210).collect::<Vec<u16>>()
        );
        assert_eq!(kept[&32_200], now + 300);
        assert!(kept[&32_209] >= now + RESERVED_FOR.as_secs(), "{kept:?}");
        // And nothing is left to hand out.
        assert!(free_ports_in(&reg, 1, 32_200..32_210).is_err());
    }
}
