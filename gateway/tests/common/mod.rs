//! Helpers shared by the protocol integration tests: paths, schema validators and one sample
//! envelope of every message type (several for types with optional parts).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};
use gateway::protocol::message::{
    Anomaly, AnomalyKind, Body, CertExpiry, Connect, ConnectResult, Data, DataAck, DataKind,
    Disconnect, Empty, Envelope, HealthState, MessageType, MonitorStatus, Outcome, PeriodicStart,
    PeriodicState, PeriodicStop, ProfileFormat, ResendRequest, ResendResult, ResultCode, Software,
    StorageStatus, TimeRange,
};
use gateway::protocol::{Dataset, GatewayId, MessageId, SeqRange, StoreEpoch};
use serde_json::Value;

/// The workspace root (the directory holding `docs/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("gateway/ has a parent")
        .to_path_buf()
}

/// `docs/schemas/` of the workspace.
pub fn schema_dir() -> PathBuf {
    workspace_root().join("docs").join("schemas")
}

/// Reads a JSON file.
pub fn load_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator(file: &str) -> jsonschema::Validator {
    let schema = load_json(&schema_dir().join(file));
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Validator for `docs/schemas/envelope.schema.json`.
pub fn envelope_validator() -> jsonschema::Validator {
    validator("envelope.schema.json")
}

/// Validator for `docs/schemas/profile.schema.json`.
pub fn profile_validator() -> jsonschema::Validator {
    validator("profile.schema.json")
}

pub fn ts(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

pub fn gw() -> GatewayId {
    GatewayId::new("GW0001").unwrap()
}

pub fn mid(s: &str) -> MessageId {
    MessageId::new(s).unwrap()
}

pub fn ds(s: &str) -> Dataset {
    Dataset::new(s).unwrap()
}

pub fn epoch() -> StoreEpoch {
    StoreEpoch::new("3f2a9c0e5b7d41e6a8c2f0b19d4e6a73").unwrap()
}

pub fn range(a: u64, b: u64) -> SeqRange {
    SeqRange::new(a, b).unwrap()
}

pub fn state(running: bool) -> PeriodicState {
    PeriodicState {
        running,
        datasets: if running {
            vec![ds("billing"), ds("pipe_ledger")]
        } else {
            vec![]
        },
        interval_sec: if running { 300 } else { 0 },
        format: ProfileFormat::Json,
        command_seq: 8,
    }
}

/// Wraps a body in an envelope; replies get `inReplyTo` and an outcome.
pub fn envelope(body: Body, outcome: Option<Outcome>) -> Envelope {
    let reply = body.message_type().is_reply();
    Envelope {
        version: 1,
        message_id: mid("42:1001"),
        gateway_id: gw(),
        timestamp: ts("2026-11-22T10:15:00.250+09:00"),
        in_reply_to: reply.then(|| mid("7:88")),
        result: reply.then(|| outcome.unwrap_or_else(Outcome::ok)),
        body,
    }
}

/// At least one envelope of every message type, with optional parts present and absent.
pub fn samples() -> Vec<Envelope> {
    let monitor = MonitorStatus {
        health: HealthState::Degraded,
        uptime_sec: 86_400,
        periodic: state(true),
        last_seq: 1400,
        storage: StorageStatus {
            records: 1400,
            unacked: 10,
            bytes: 1 << 20,
            evacuated: 0,
            held: 3,
            oldest_unacked_sec: 3620,
            free_bytes: 41_943_040_000,
        },
        files_accepted: 12,
        files_rejected: 1,
        messages_sent: 4,
        messages_retransmitted: 1,
        records_acked: 1400,
        anomalies: 2,
        anomalies_dropped: 1,
        certificates: vec![CertExpiry {
            name: "data-protection".into(),
            not_after: ts("2027-03-31T23:59:59+09:00"),
        }],
        last_error: Some("DES-CERT-3: CRL 更新に失敗".into()),
    };
    let bodies: Vec<(Body, Option<Outcome>)> = vec![
        (
            Body::Connect(Connect {
                versions: vec![1],
                software: Software {
                    vendor: "水道ソフト株式会社".into(),
                    product: "sgw".into(),
                    version: "0.1.0".into(),
                },
                formats: vec![ProfileFormat::Json, ProfileFormat::Xml],
                epoch: epoch(),
                boot_count: 3,
                last_seq: 1400,
                periodic: state(true),
            }),
            None,
        ),
        (
            Body::ConnectResult(ConnectResult {
                version: 1,
                monitor_interval_sec: 60,
                ack_timeout_sec: 30,
                acked_through: 1200,
            }),
            None,
        ),
        (
            Body::Disconnect(Disconnect {
                reason: "shutdown（保守）".into(),
            }),
            None,
        ),
        (Body::DisconnectResult(Empty {}), None),
        (
            Body::PeriodicStart(PeriodicStart {
                command_seq: 9,
                datasets: vec![ds("billing")],
                interval_sec: 300,
                format: ProfileFormat::Xml,
            }),
            None,
        ),
        (
            Body::PeriodicStartResult(state(true)),
            Some(Outcome::new(ResultCode::Superseded, "DES-MSG-PS-4")),
        ),
        (Body::PeriodicStop(PeriodicStop { command_seq: 10 }), None),
        (Body::PeriodicStopResult(state(false)), None),
        (
            Body::Data(Data {
                kind: DataKind::Periodic,
                request: None,
                dataset: ds("billing"),
                epoch: epoch(),
                range: range(1201, 1400),
                format: ProfileFormat::Json,
                profile: "eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.a.b.c.d".into(),
            }),
            None,
        ),
        (
            Body::Data(Data {
                kind: DataKind::Resend,
                request: Some(mid("p:77")),
                dataset: ds("pipe_ledger"),
                epoch: epoch(),
                range: range(5, 5),
                format: ProfileFormat::Xml,
                profile: "<sgw:DataProfile xmlns:sgw=\"urn:sgw:profile:v1\"/>".into(),
            }),
            None,
        ),
        (
            Body::DataAck(DataAck {
                range: range(1201, 1400),
            }),
            None,
        ),
        (
            Body::ResendRequest(ResendRequest {
                dataset: Some(ds("billing")),
                seq: Some(range(100, 499)),
                time: None,
            }),
            None,
        ),
        (
            Body::ResendRequest(ResendRequest {
                dataset: None,
                seq: None,
                time: Some(TimeRange {
                    from: ts("2026-11-21T00:00:00+09:00"),
                    to: ts("2026-11-21T23:59:59.999Z"),
                }),
            }),
            None,
        ),
        (
            Body::ResendResult(ResendResult {
                records: 350,
                messages: 2,
                archived: 120,
            }),
            Some(Outcome::new(
                ResultCode::Partial,
                "一部は退避済み (ST-EVAC-1)",
            )),
        ),
        (Body::MonitorStatus(monitor.clone()), None),
        (
            Body::MonitorStatus(MonitorStatus {
                last_error: None,
                certificates: vec![],
                health: HealthState::Ok,
                ..monitor
            }),
            None,
        ),
        (
            Body::Anomaly(Anomaly {
                kind: AnomalyKind::Security,
                rule: "IF-PSTART-2".into(),
                detail: "SECURITY_FAILED: 署名検証NG".into(),
                topic: Some("/tenants/GW0001/sgw/v1/down/periodic.start".into()),
            }),
            None,
        ),
        (
            Body::Anomaly(Anomaly {
                kind: AnomalyKind::Ingest,
                rule: "SC-FTP-1".into(),
                detail: "bad CSV".into(),
                topic: None,
            }),
            None,
        ),
        (Body::Ack(Empty {}), None),
    ];
    let out: Vec<Envelope> = bodies.into_iter().map(|(b, o)| envelope(b, o)).collect();
    for ty in MessageType::ALL {
        assert!(
            out.iter().any(|e| e.message_type() == *ty),
            "no sample of {ty:?}"
        );
    }
    out
}
