//! The access history (SM-AUDIT, `docs/protocol.md` DES-AUDIT-1): who did what, when, from
//! where — FTP logins, failures and locks, every upload's outcome (with the reply line),
//! duplicates and quarantined files; MQTT link up and down, every command received from the
//! platform and every result the gateway answered; every anomaly. One JSON object per line in
//! `{state_dir}/audit.jsonl` (owner-only), appended by one writer thread so that no task waits
//! on the disk; never a field value, a password or a key.
//!
//! Requirement IDs: SM-AUDIT.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc;

use serde_json::{Map, Value};

/// The file name of the access history inside the state directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// A handle to the access history; cheap to clone. A disabled one records nothing.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: Option<mpsc::Sender<String>>,
}

/// The writer thread; joined (after every handle is dropped) to flush the last lines.
#[derive(Debug)]
pub struct AuditWriter(std::thread::JoinHandle<()>);

impl AuditWriter {
    /// Waits until every line sent before the last handle was dropped is written.
    pub fn join(self) {
        let _ = self.0.join();
    }
}

impl AuditLog {
    /// Opens (creating, mode 0600) `{dir}/audit.jsonl` for appending.
    pub fn open(dir: &Path) -> io::Result<(AuditLog, AuditWriter)> {
        let path = dir.join(AUDIT_FILE);
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)?;
        let (tx, rx) = mpsc::channel::<String>();
        let t = std::thread::Builder::new()
            .name("sgw-audit".into())
            .spawn(move || {
                let mut w = BufWriter::new(file);
                while let Ok(line) = rx.recv() {
                    let mut ok = writeln!(w, "{line}").is_ok();
                    // Whatever else is waiting, then one flush.
                    while let Ok(more) = rx.try_recv() {
                        ok &= writeln!(w, "{more}").is_ok();
                    }
                    if !(ok && w.flush().is_ok()) {
                        tracing::error!(rule = "SM-AUDIT", path = %path.display(), "access history not written");
                    }
                }
            })?;
        Ok((AuditLog { tx: Some(tx) }, AuditWriter(t)))
    }

    /// A handle that records nothing (tests, tools).
    pub fn disabled() -> AuditLog {
        AuditLog { tx: None }
    }

    /// Appends `{"at", "event", "rule", …fields}` (`fields` must be a JSON object of text,
    /// numbers and booleans; other values are dropped).
    pub fn record(&self, event: &str, rule: &str, fields: Value) {
        let Some(tx) = &self.tx else {
            return;
        };
        let mut m = Map::new();
        m.insert(
            "at".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        m.insert("event".into(), Value::String(event.to_owned()));
        m.insert("rule".into(), Value::String(rule.to_owned()));
        if let Value::Object(f) = fields {
            for (k, v) in f {
                if matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    m.insert(k, v);
                }
            }
        }
        let _ = tx.send(Value::Object(m).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_owner_only_and_survive_a_reopen() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let (log, w) = AuditLog::open(d.path()).unwrap();
        log.record(
            "ftp.login",
            "SM-AUDIT",
            serde_json::json!({"user": "billing", "addr": "127.0.0.1", "nested": {"x": 1}}),
        );
        drop(log);
        w.join();
        let (log, w) = AuditLog::open(d.path()).unwrap();
        log.record("mqtt.up", "DES-MQTT-8", serde_json::json!({}));
        drop(log);
        w.join();
        let p = d.path().join(AUDIT_FILE);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let lines: Vec<Value> = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "ftp.login");
        assert_eq!(lines[0]["user"], "billing");
        assert!(lines[0].get("nested").is_none());
        assert_eq!(lines[1]["rule"], "DES-MQTT-8");
        AuditLog::disabled().record("x", "y", serde_json::json!({}));
    }
}
