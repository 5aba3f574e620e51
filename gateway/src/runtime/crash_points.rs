//! Crash points for the `sgw` process (feature `crash-points`, which nothing but the
//! conformance crate's tests enables — never a release build): the process target's side of
//! the conformance suite's aimed crash (docs/conformance.md, "Crash points").
//!
//! The suite writes the file [`CrashPoint::ARM_FILE`] into the bundle with one crash point's
//! name ([`CrashPoint::name`]). A watcher thread reads it within [`LOOK_EVERY`], arms the
//! store's crash point ([`crate::store::StoreThread::halt_at`]) and renames the file to
//! [`CrashPoint::ARMED_FILE`], which tells the suite the point is armed. Right after the next
//! commit of that kind the store runs no more jobs — nothing more becomes durable, the core's
//! snapshot that would index the commit never runs — and the watcher aborts the process
//! ([`std::process::abort`]: no destructor, no clean shutdown, as a kill -9) after
//! [`REPLY_GRACE`], in which the commit's own reply (the FTP `226`) goes out, as a process can
//! die just after answering. The state a restart finds is exactly the one after that commit:
//! what ST-STORE-1, DES-ID-4 and DES-EVAC-4/5 require a restart to recover.

use std::path::Path;
use std::time::Duration;

use crate::store::{CrashPoint, CrashSwitch};

/// How often the watcher looks for [`CrashPoint::ARM_FILE`].
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// How often it looks whether an armed point was reached.
const LOOK_ARMED_EVERY: Duration = Duration::from_millis(2);

/// From the store's stop at the crash point to the abort: the commit's reply goes out.
const REPLY_GRACE: Duration = Duration::from_millis(300);

/// Starts the watcher of `bundle`'s [`CrashPoint::ARM_FILE`] for the store thread of `switch`; it
/// ends with that store thread.
pub fn watch(bundle: &Path, switch: CrashSwitch) {
    let (file, armed) = (
        bundle.join(CrashPoint::ARM_FILE),
        bundle.join(CrashPoint::ARMED_FILE),
    );
    let spawned = std::thread::Builder::new()
        .name("sgw-crash-points".into())
        .spawn(move || {
            let mut aimed: Option<CrashPoint> = None;
            loop {
                match (switch.halted(), aimed) {
                    (None, _) => return,
                    (Some(true), Some(point)) => {
                        std::thread::sleep(REPLY_GRACE);
                        let _ = std::fs::remove_file(&armed);
                        tracing::error!(
                            point = point.name(),
                            "crash point reached: the process aborts (a test build's aimed crash)"
                        );
                        std::process::abort();
                    }
                    _ => {}
                }
                if aimed.is_none()
                    && let Ok(name) = std::fs::read_to_string(&file)
                {
                    match CrashPoint::from_name(name.trim()) {
                        Some(point) => {
                            if !switch.arm(point) {
                                return;
                            }
                            match std::fs::rename(&file, &armed) {
                                Ok(()) => {
                                    tracing::warn!(
                                        point = point.name(),
                                        "crash point armed: the process aborts right after \
                                         the next commit of this kind"
                                    );
                                    aimed = Some(point);
                                }
                                Err(e) => tracing::error!(
                                    error = %e,
                                    "crash point armed but {} not written",
                                    CrashPoint::ARMED_FILE
                                ),
                            }
                        }
                        None => {
                            let known: Vec<&str> =
                                CrashPoint::ALL.iter().map(|p| p.name()).collect();
                            tracing::error!(
                                name = name.trim(),
                                "{} names no crash point ({}): ignored and removed",
                                CrashPoint::ARM_FILE,
                                known.join(", ")
                            );
                            let _ = std::fs::remove_file(&file);
                        }
                    }
                }
                std::thread::sleep(match aimed {
                    Some(_) => LOOK_ARMED_EVERY,
                    None => LOOK_EVERY,
                });
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "no crash point watcher");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreHandle};

    /// Whether `f` holds within 5 s.
    fn within_5s(f: impl Fn() -> bool) -> bool {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < until {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn a_file_naming_no_crash_point_is_removed_unarmed_and_a_named_one_is_armed() {
        let (state, bundle) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (h, thread) = StoreHandle::spawn(Store::open(state.path()).unwrap()).unwrap();
        watch(bundle.path(), thread.crash_switch());
        let (file, armed) = (
            bundle.path().join("CRASH-AT"),
            bundle.path().join("CRASH-AT.armed"),
        );
        std::fs::write(&file, "after-lunch\n").unwrap();
        assert!(within_5s(|| !file.exists()), "an unknown name is removed");
        assert!(!armed.exists(), "and arms nothing");
        // A name as the suite writes it (no commit follows here, so nothing aborts).
        std::fs::write(&file, "after-evacuation-commit\n").unwrap();
        assert!(within_5s(|| armed.exists() && !file.exists()));
        assert_eq!(
            std::fs::read_to_string(&armed).unwrap(),
            "after-evacuation-commit\n"
        );
        assert_eq!(thread.crash_switch().halted(), Some(false));
        drop(h);
        thread.join().unwrap();
    }
}
