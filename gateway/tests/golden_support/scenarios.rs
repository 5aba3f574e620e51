//! The scenarios recorded as `vectors/golden/transcripts/*.json`: each drives the real cores
//! through one flow with a fixed clock (start 2026-11-22 10:00 JST), fixed seeds and the golden
//! rows, and returns the transcript text. Only the regenerating test runs them; the default
//! tests replay the files.

use std::path::Path;

use gateway::protocol::gateway_side::GatewayConfig;
use gateway::protocol::message::{
    Body, CertExpiry, ConnectResult, Envelope, MessageType, Outcome, PROTOCOL_VERSION, ResultCode,
    Software,
};
use gateway::protocol::platform_side::PlatformConfig;
use gateway::protocol::{Dataset, GatewayId, MessageId};
use serde_json::json;

use super::{Content, GatewaySetup, Recorder, jst, masked_rows};

/// The storage epoch of the transcripts' gateway (DES-ID-5).
pub const EPOCH: &str = "7d1e5a9c3b2f4e6a8c0d1f2e3a4b5c6d";
/// The epoch `sgw new-epoch` draws in the transcripts that need one.
pub const NEW_EPOCH: &str = "c0ffee00d15ea5e0123456789abcdef0";
const START: &str = "2026-11-22T10:00:00+09:00";

pub fn setup() -> GatewaySetup {
    let mut cfg = GatewayConfig::new(
        GatewayId::new("GW0001").unwrap(),
        vec![Dataset::new("billing").unwrap()],
    );
    cfg.software = Software {
        vendor: "SGW project".into(),
        product: "sgw".into(),
        version: "1.1.0".into(),
    };
    cfg.backoff_seed = 2026;
    let cert = |name: &str, t: &str| CertExpiry {
        name: name.into(),
        not_after: jst(t),
    };
    GatewaySetup {
        cfg,
        epoch: EPOCH.parse().unwrap(),
        source_system: "ryokin-sys".into(),
        certificates: vec![
            cert("tls-client", "2027-11-01T00:00:00+09:00"),
            cert("data-protection", "2027-11-01T00:00:00+09:00"),
            cert("platform", "2027-11-01T00:00:00+09:00"),
            cert("root", "2036-01-01T00:00:00+09:00"),
            cert("crl", "2026-11-27T00:00:00+09:00"),
        ],
    }
}

pub fn platform() -> PlatformConfig {
    PlatformConfig {
        epoch: 1,
        ..PlatformConfig::default()
    }
}

fn recorder(
    dir: &Path,
    title: &str,
    description: &str,
    rules: &[&str],
    pcfg: PlatformConfig,
) -> Recorder {
    Recorder::new(dir, title, description, rules, setup(), pcfg, jst(START))
}

const UP_NOTE: &str = "TLS with mutual authentication, MQTT CONNECT with clean session, SUBSCRIBE /tenants/GW0001/sgw/v1/down/# before anything is published (DES-MQTT-1/4/5/8)";

fn transport_up(r: &mut Recorder) {
    r.event(json!({"event": "transport.up"}), UP_NOTE);
}

fn start_cmd(r: &mut Recorder, interval: u32, format: &str, note: &str) {
    r.event(
        json!({"event": "operator", "command": {"type": "periodic.start", "datasets": ["billing"], "intervalSec": interval, "format": format}}),
        note,
    );
}

fn ingest(r: &mut Recorder, dir: &Path, rows: std::ops::Range<usize>, first: u64, note: &str) {
    let all = masked_rows(dir);
    let records: Vec<_> = all[rows.clone()].to_vec();
    let last = first + records.len() as u64 - 1;
    r.event(
        json!({"event": "ingest", "dataset": "billing", "records": records, "seqs": {"first": first, "last": last}}),
        note,
    );
}

/// connect → start → data → data.ack → resend → stop → disconnect, nothing lost.
pub fn main_flow(dir: &Path) -> String {
    let mut r = recorder(
        dir,
        "Main flow: connect, start, data, acknowledgement, resend, stop, disconnect",
        "Nothing is lost. The gateway connects, the operator starts periodic sending of dataset billing (interval 60 s, JSON profiles), four masked rows are ingested and sent when the interval elapses, the platform acknowledges them, the operator asks for seqs 2..3 again, then stops periodic sending, and the gateway shuts down.",
        &[
            "DES-MQTT-3",
            "DES-MQTT-4",
            "DES-MQTT-8",
            "DES-ID-2",
            "DES-ID-4",
            "DES-ID-5",
            "DES-ENV-1",
            "DES-ENV-2",
            "DES-ENV-3",
            "DES-MSG-1",
            "DES-MSG-CONN-1",
            "DES-MSG-CONN-2",
            "DES-MSG-CONN-3",
            "DES-MSG-MON-1",
            "DES-MSG-MON-2",
            "DES-MSG-PS-1",
            "DES-MSG-PS-2",
            "DES-MSG-PS-3",
            "DES-MSG-PS-4",
            "DES-MSG-PS-5",
            "DES-MSG-DATA-1",
            "DES-MSG-DATA-2",
            "DES-MSG-DATA-4",
            "DES-MSG-RS-1",
            "DES-MSG-RS-2",
            "DES-MSG-RS-3",
            "DES-MSG-DISC-1",
            "DES-PROF-4",
        ],
        platform(),
    );
    r.note_next(MessageType::Connect, "connect: versions [1], epoch, bootCount 1, lastSeq 0, the periodic state it resumes with (DES-MSG-CONN-1)");
    r.note_next(MessageType::ConnectResult, "connect.result OK: the session is open; ackedThrough 0, nothing of this epoch is held yet (DES-MSG-CONN-2/3)");
    r.note_next(
        MessageType::MonitorStatus,
        "monitor.status right after the OK connect.result (DES-MSG-MON-2, DES-MSG-CONN-3)",
    );
    transport_up(&mut r);
    r.advance_to(r.t(5.0));
    r.note_next(
        MessageType::PeriodicStart,
        "periodic.start commandSeq 1 (DES-MSG-PS-1, DES-MSG-PS-4)",
    );
    r.note_next(MessageType::PeriodicStartResult, "periodic.start.result OK with the new PeriodicState, persisted before the reply (DES-MSG-PS-3/4)");
    r.note_next(
        MessageType::Ack,
        "ack: the communication result for the start result (DES-MSG-PS-5)",
    );
    start_cmd(
        &mut r,
        60,
        "json",
        "the operator starts periodic sending of billing every 60 s, JSON profiles (IF-PSTART-1)",
    );
    r.advance_to(r.t(10.0));
    ingest(
        &mut r,
        dir,
        0..4,
        1,
        "the legacy system's CSV (masking/billing.masked.csv after DES-MASK-4) is accepted: seqs 1..4 (DES-ID-4, DES-FTP-6 226)",
    );
    r.note_next(MessageType::Data, "data kind periodic, seqs 1..4 of billing, profile = JWE(JWS(profile JSON)) to the platform (DES-MSG-DATA-1/4, DES-PROF-4)");
    r.note_next(MessageType::DataAck, "data.ack OK with the same range: stored durably, the gateway marks 1..4 acknowledged (DES-MSG-DATA-2)");
    r.advance_to(r.t(90.0));
    r.note_next(
        MessageType::ResendRequest,
        "resend.request by seq range 2..3 of billing (DES-MSG-RS-1)",
    );
    r.note_next(
        MessageType::ResendResult,
        "resend.result OK: 2 records in 1 data message, none from archives (DES-MSG-RS-2)",
    );
    r.note_next(
        MessageType::Data,
        "data kind resend, request = the resend.request's messageId, seqs 2..3 (DES-MSG-RS-3)",
    );
    r.note_next(
        MessageType::DataAck,
        "data.ack OK for the resent range (DES-MSG-DATA-2)",
    );
    r.event(
        json!({"event": "operator", "command": {"type": "resend.request", "dataset": "billing", "seq": {"first": 2, "last": 3}}}),
        "the operator asks for seqs 2..3 again (IF-RESEND-1)",
    );
    r.advance_to(r.t(125.0));
    r.note_next(
        MessageType::PeriodicStop,
        "periodic.stop commandSeq 2 (DES-MSG-PS-2)",
    );
    r.note_next(MessageType::PeriodicStopResult, "periodic.stop.result OK: running false, datasets [], intervalSec 0, format unchanged (DES-MSG-PS-3)");
    r.event(
        json!({"event": "operator", "command": {"type": "periodic.stop"}}),
        "the operator stops periodic sending (IF-PSTOP-1)",
    );
    r.advance_to(r.t(130.0));
    r.note_next(
        MessageType::Disconnect,
        "disconnect reason shutdown; no command is accepted after it (DES-MSG-DISC-1)",
    );
    r.note_next(
        MessageType::DisconnectResult,
        "disconnect.result OK {} (DES-MSG-DISC-1)",
    );
    r.event(
        json!({"event": "shutdown"}),
        "the gateway process is asked to stop (IF-DISC-1)",
    );
    r.advance_to(r.t(131.0));
    r.event(
        json!({"event": "transport.down"}),
        "MQTT DISCONNECT, TLS close",
    );
    r.finish()
}

/// `monitorIntervalSec` 0 and `ackTimeoutSec` 0 mean 60 and 30 (DES-MSG-CONN-2).
pub fn connect_defaults(dir: &Path) -> String {
    let mut r = recorder(
        dir,
        "connect.result with monitorIntervalSec 0 and ackTimeoutSec 0",
        "The platform answers monitorIntervalSec 0 and ackTimeoutSec 0, which mean 60 s and 30 s: the second monitor.status follows the first after 60 s, and a data message that is lost is sent again, identical, 30 s after it was sent.",
        &["DES-MSG-CONN-2", "DES-MSG-MON-2", "DES-MSG-DATA-3"],
        PlatformConfig {
            monitor_interval_sec: 0,
            ack_timeout_sec: 0,
            ..platform()
        },
    );
    r.note_next(MessageType::ConnectResult, "connect.result OK with monitorIntervalSec 0 (means 60) and ackTimeoutSec 0 (means 30) (DES-MSG-CONN-2)");
    transport_up(&mut r);
    r.advance_to(r.t(1.0));
    start_cmd(&mut r, 10, "json", "periodic sending every 10 s");
    r.advance_to(r.t(2.0));
    ingest(&mut r, dir, 0..2, 1, "seqs 1..2 accepted");
    r.lose_next(
        "up",
        MessageType::Data,
        "lost in the network: the platform never sees this transmission",
    );
    r.note_next(MessageType::Data, "data seqs 1..2, first transmission");
    r.note_next(MessageType::Data, "the same data message again — same messageId, timestamp and profile bytes — 30 s after the first: ackTimeoutSec 0 means 30 (DES-MSG-DATA-3, DES-MSG-CONN-2)");
    r.advance_to(r.t(41.0));
    r.note_next(MessageType::MonitorStatus, "the second monitor.status, 60 s after the first (monitorIntervalSec 0 means 60, DES-MSG-MON-2)");
    r.advance_to(r.t(70.0));
    r.finish()
}

fn refusal(r: &Recorder, code: ResultCode, reason: &str, id: &str) -> Content {
    let connect = r
        .last_sent(MessageType::Connect)
        .expect("a connect was sent");
    Content::Envelope(Envelope {
        version: PROTOCOL_VERSION,
        message_id: MessageId::new(id).unwrap(),
        gateway_id: GatewayId::new("GW0001").unwrap(),
        timestamp: r.now,
        in_reply_to: Some(connect.message_id.clone()),
        result: Some(Outcome::new(code, reason)),
        body: Body::ConnectResult(ConnectResult {
            version: 1,
            monitor_interval_sec: 60,
            ack_timeout_sec: 30,
            acked_through: 0,
        }),
    })
}

/// Connect retries: a lost connect and a STALE refusal back off (jittered, DES-MQTT-8), the
/// lasting refusals UNAUTHORIZED and UNSUPPORTED_VERSION retry every 300 s.
pub fn connect_retry(dir: &Path) -> String {
    let mut r = recorder(
        dir,
        "connect retries: timeout and STALE back off, UNAUTHORIZED and UNSUPPORTED_VERSION retry every 300 s",
        "The first connect gets no answer within connect_timeout_sec (30 s): the next goes out d_1 later (DES-MQTT-8, 0.5..1 s; the jitter comes from the gateway's seeded generator, backoffSeed). A STALE refusal is retryable: the next connect d_2 later (1..2 s). UNAUTHORIZED and UNSUPPORTED_VERSION are lasting: no session, a new connect every 300 s on the same transport, without jitter (DES-MSG-CONN-3). The refusals are played by the harness in the platform's place; the last connect reaches the platform core, which accepts it. Every attempt has a new messageId (DES-ID-2).",
        &[
            "DES-MQTT-8",
            "DES-MSG-CONN-3",
            "DES-MSG-CONN-2",
            "DES-ID-2",
            "DES-ENV-3",
        ],
        platform(),
    );
    r.lose_next("up", MessageType::Connect, "lost: no connect.result comes");
    transport_up(&mut r);
    r.lose_next(
        "up",
        MessageType::Connect,
        "not delivered to the platform core: the harness answers in its place",
    );
    r.note_next(
        MessageType::Connect,
        "connect attempt 2, after connect_timeout_sec 30 s and the back-off d_1 (DES-MQTT-8)",
    );
    r.advance_to(r.t(40.0));
    let c = refusal(
        &r,
        ResultCode::Stale,
        "DES-ENV-7: timestamp more than 300 s from the platform's clock",
        "p9.1",
    );
    let topic = r.down_topic(MessageType::ConnectResult);
    r.inject(
        "down",
        &topic,
        c,
        "connect.result STALE: retryable, the next connect after d_2 (DES-MSG-CONN-3)",
    );
    r.lose_next(
        "up",
        MessageType::Connect,
        "not delivered to the platform core: the harness answers in its place",
    );
    r.note_next(
        MessageType::Connect,
        "connect attempt 3, d_2 after the STALE refusal",
    );
    r.advance_to(r.t(50.0));
    let c = refusal(
        &r,
        ResultCode::Unauthorized,
        "DES-ENV-4: the gateway is not registered",
        "p9.2",
    );
    r.inject("down", &topic, c, "connect.result UNAUTHORIZED: lasting, health failed, the next connect in 300 s (DES-MSG-CONN-3)");
    r.lose_next(
        "up",
        MessageType::Connect,
        "not delivered to the platform core: the harness answers in its place",
    );
    r.note_next(
        MessageType::Connect,
        "connect attempt 4, 300 s after the UNAUTHORIZED refusal, no jitter",
    );
    r.advance_to(r.t(351.0));
    let c = refusal(
        &r,
        ResultCode::UnsupportedVersion,
        "DES-VER-4: no common version",
        "p9.3",
    );
    r.inject(
        "down",
        &topic,
        c,
        "connect.result UNSUPPORTED_VERSION: lasting, the next connect in 300 s (DES-MSG-CONN-3)",
    );
    r.note_next(
        MessageType::Connect,
        "connect attempt 5, 300 s later; it reaches the platform core",
    );
    r.note_next(
        MessageType::ConnectResult,
        "connect.result OK from the platform core: the session opens",
    );
    r.advance_to(r.t(652.0));
    r.finish()
}

/// A platform that speaks only version 2 answers UNSUPPORTED_VERSION (DES-VER-4).
pub fn connect_unsupported_version(dir: &Path) -> String {
    let mut r = recorder(
        dir,
        "connect refused UNSUPPORTED_VERSION by a platform that speaks only version 2",
        "The platform core is configured with versions [2]: the gateway's versions [1] have no version in common, so connect.result is UNSUPPORTED_VERSION with version 2 (the platform's highest), the platform's defaults and ackedThrough 0 (DES-VER-4, DES-MSG-CONN-2). The refusal is lasting: the gateway sends a new connect every 300 s (DES-MSG-CONN-3).",
        &[
            "DES-VER-4",
            "DES-MSG-CONN-2",
            "DES-MSG-CONN-3",
            "DES-MQTT-8",
        ],
        PlatformConfig {
            versions: vec![2],
            ..platform()
        },
    );
    transport_up(&mut r);
    r.note_next(
        MessageType::Connect,
        "connect again 300 s after the lasting refusal, new messageId",
    );
    r.advance_to(r.t(301.0));
    r.finish()
}

/// DES-ENV-8 on both sides: stored replies re-sent with their original message IDs.
pub fn duplicates(dir: &Path) -> String {
    let mut r = recorder(
        dir,
        "Duplicates are answered from the reply memory (DES-ENV-8)",
        "The broker delivers a connect twice: the platform re-sends its stored connect.result (same messageId) and the gateway ignores it, since no connect is outstanding (DES-ENV-3). A periodic.start delivered again 400 s later — older than the ±300 s window but within the 600 s memory — gets the stored periodic.start.result with its original messageId, not STALE, and is not applied again; the platform, seeing that result again, re-sends its stored ack. A resend.request delivered twice gets its stored resend.result and the data is not sent again (DES-MSG-RS-3).",
        &[
            "DES-ENV-8",
            "DES-ENV-7",
            "DES-ENV-3",
            "DES-MSG-3",
            "DES-MSG-PS-5",
            "DES-MSG-RS-3",
            "DES-MQTT-6",
        ],
        PlatformConfig {
            monitor_interval_sec: 600,
            ..platform()
        },
    );
    transport_up(&mut r);
    r.advance_to(r.t(2.0));
    let connect = r.last_sent(MessageType::Connect).unwrap();
    let up = r.up_topic(MessageType::Connect);
    r.note_next(MessageType::ConnectResult, "the stored connect.result, re-sent unchanged (same messageId and timestamp); the gateway ignores it (DES-ENV-3)");
    r.inject(
        "up",
        &up,
        Content::Envelope(connect),
        "the same connect again (QoS 1 duplicate delivery)",
    );
    r.advance_to(r.t(5.0));
    start_cmd(&mut r, 3600, "json", "periodic sending every hour");
    let start = r.last_sent(MessageType::PeriodicStart).unwrap();
    r.advance_to(r.t(10.0));
    ingest(&mut r, dir, 0..2, 1, "seqs 1..2 accepted");
    r.advance_to(r.t(20.0));
    r.event(
        json!({"event": "operator", "command": {"type": "resend.request", "seq": {"first": 1, "last": 2}}}),
        "the operator asks for seqs 1..2",
    );
    let resend = r.last_sent(MessageType::ResendRequest).unwrap();
    r.advance_to(r.t(30.0));
    let down = r.down_topic(MessageType::ResendRequest);
    r.note_next(
        MessageType::ResendResult,
        "the stored resend.result, same messageId; no data follows (DES-ENV-8, DES-MSG-RS-3)",
    );
    r.inject(
        "down",
        &down,
        Content::Envelope(resend),
        "the same resend.request again",
    );
    r.advance_to(r.t(405.0));
    let down = r.down_topic(MessageType::PeriodicStart);
    r.note_next(MessageType::PeriodicStartResult, "the stored periodic.start.result with its original messageId and timestamp: not STALE, not applied again (DES-ENV-8 before DES-ENV-7)");
    r.note_next(
        MessageType::Ack,
        "the platform's stored ack for that result, re-sent unchanged (DES-ENV-8)",
    );
    r.inject(
        "down",
        &down,
        Content::Envelope(start),
        "the same periodic.start again, 400 s after it was sent",
    );
    r.advance_to(r.t(410.0));
    r.finish()
}

/// DES-MSG-2: undecodable requests answered with the reply type and the neutral body when
/// type and messageId can be read.
pub fn undecodable(dir: &Path) -> String {
    let mut r = recorder(
        dir,
        "Undecodable requests (DES-MSG-2): MALFORMED, UNSUPPORTED_VERSION, TOO_LARGE",
        "Payloads that opened but fail the decode steps 5-8 of §6.10. When type and messageId can be read (peek) and the receiver answers that request, it answers with the reply type, the decode step's code and the neutral body (the gateway's unchanged PeriodicState, resend {0,0,0}, the platform's defaults for connect, data.ack only with a readable range); otherwise it only reports (anomaly at the gateway, log at the platform). UNKNOWN_TYPE is never a reply. The gateway also reports an anomaly for each refused down message.",
        &[
            "DES-MSG-2",
            "DES-MSG-3",
            "DES-ENV-1",
            "DES-ENV-5",
            "DES-VER-2",
            "DES-MSG-1",
            "DES-MSG-AN-1",
            "DES-RC-1",
        ],
        PlatformConfig {
            monitor_interval_sec: 600,
            ..platform()
        },
    );
    let up_connect = r.up_topic(MessageType::Connect);
    r.note_next(MessageType::ConnectResult, "connect.result UNSUPPORTED_VERSION with the platform's defaults and ackedThrough 0 (DES-MSG-2); the gateway has no outstanding connect and ignores it");
    r.inject(
        "up",
        &up_connect,
        Content::Raw {
            text: r#"{"version":2,"messageId":"GW0001.9.1","gatewayId":"GW0001","type":"connect","timestamp":"2026-11-22T10:00:00+09:00","body":{"versions":[2,1],"hello":"v2"}}"#.into(),
            pad_to: None,
        },
        "a connect of protocol version 2 (from a newer gateway build)",
    );
    r.advance_to(r.t(1.0));
    transport_up(&mut r);
    r.advance_to(r.t(2.0));
    start_cmd(
        &mut r,
        3600,
        "json",
        "periodic sending every hour (commandSeq 1)",
    );
    r.advance_to(r.t(10.0));
    let topic = r.down_topic(MessageType::PeriodicStart);
    r.note_next(
        MessageType::Anomaly,
        "anomaly kind malformed for the refused command (DES-MSG-2, DES-MSG-AN-1)",
    );
    r.note_next(MessageType::PeriodicStartResult, "periodic.start.result UNSUPPORTED_VERSION with the unchanged PeriodicState (neutral body, DES-MSG-2)");
    r.inject(
        "down",
        &topic,
        Content::Raw {
            text: r#"{"version":2,"messageId":"p1.90","gatewayId":"GW0001","type":"periodic.start","timestamp":"2026-11-22T10:00:10+09:00","body":{"commandSeq":5,"datasets":[],"intervalSec":60,"format":"json","priority":"high"}}"#.into(),
            pad_to: None,
        },
        "a periodic.start with version 2 (DES-VER-2: read before the strict parse)",
    );
    r.advance_to(r.t(11.0));
    let topic = r.down_topic(MessageType::PeriodicStop);
    r.note_next(
        MessageType::PeriodicStopResult,
        "periodic.stop.result MALFORMED with the unchanged PeriodicState (DES-MSG-2)",
    );
    r.inject(
        "down",
        &topic,
        Content::Raw {
            text: r#"{"version":1,"messageId":"p1.91","gatewayId":"GW0001","type":"periodic.stop","timestamp":"2026-11-22T10:00:11+09:00","body":{"commandSeq":6,"force":true}}"#.into(),
            pad_to: None,
        },
        "a periodic.stop with an unknown body member (DES-ENV-1 strict decode: MALFORMED)",
    );
    r.advance_to(r.t(12.0));
    let topic = r.down_topic(MessageType::ResendRequest);
    r.note_next(
        MessageType::ResendResult,
        "resend.result TOO_LARGE with {records 0, messages 0, archived 0} (DES-MSG-2)",
    );
    r.inject(
        "down",
        &topic,
        Content::Raw {
            text: r#"{"version":1,"messageId":"p1.92","gatewayId":"GW0001","type":"resend.request","timestamp":"2026-11-22T10:00:12+09:00","body":{"seq":{"first":1,"last":2}},"pad":""}"#.into(),
            pad_to: Some(262_145),
        },
        "a resend.request of 262 145 bytes, one more than 256 KiB (DES-ENV-5); padTo: the pad member's value is filled with x up to that size",
    );
    r.advance_to(r.t(13.0));
    let topic = "/tenants/GW0001/sgw/v1/down/periodic.pause".to_owned();
    r.inject(
        "down",
        &topic,
        Content::Raw {
            text: r#"{"version":1,"messageId":"p1.93","gatewayId":"GW0001","type":"periodic.pause","timestamp":"2026-11-22T10:00:13+09:00","body":{}}"#.into(),
            pad_to: None,
        },
        "an unknown type: UNKNOWN_TYPE is never a reply, only an anomaly (DES-MSG-1)",
    );
    r.advance_to(r.t(14.0));
    let topic = r.down_topic(MessageType::PeriodicStart);
    r.inject(
        "down",
        &topic,
        Content::Raw {
            text: r#"{"version":1,"gatewayId":"GW0001","type":"periodic.start","body":{"commandSeq":7"#.into(),
            pad_to: None,
        },
        "not JSON (truncated) and no messageId: not peekable, so only an anomaly (DES-MSG-2)",
    );
    r.advance_to(r.t(15.0));
    let up = r.up_topic(MessageType::Data);
    r.note_next(MessageType::DataAck, "data.ack MALFORMED with the peeked range (DES-MSG-2); the gateway has no such data in flight and ignores it");
    r.inject(
        "up",
        &up,
        Content::Raw {
            text: format!(r#"{{"version":1,"messageId":"GW0001.1.77","gatewayId":"GW0001","type":"data","timestamp":"2026-11-22T10:00:15+09:00","body":{{"kind":"periodic","dataset":"billing","epoch":"{EPOCH}","range":{{"first":5,"last":6}},"format":"json","profile":"x","compressed":false}}}}"#),
            pad_to: None,
        },
        "a data with an unknown body member but a readable range",
    );
    r.advance_to(r.t(16.0));
    let up = r.up_topic(MessageType::MonitorStatus);
    r.inject(
        "up",
        &up,
        Content::Raw {
            text: r#"{"version":1,"messageId":"GW0001.1.78","gatewayId":"GW0001","type":"monitor.status","timestamp":"2026-11-22T10:00:16+09:00","body":{}}"#.into(),
            pad_to: None,
        },
        "a monitor.status without its body members: MALFORMED, never answered (no reply type), logged by the platform",
    );
    r.advance_to(r.t(20.0));
    r.finish()
}

/// DES-MSG-CONN-4: a bootCount that went backwards is refused INVALID_STATE; the operator
/// remedy `sgw new-epoch` starts a new epoch, which is accepted.
pub fn boot_count_backwards(dir: &Path) -> String {
    let mut r = recorder(
        dir,
        "INVALID_STATE for a bootCount that went backwards, and the new-epoch remedy",
        "The gateway starts three times (bootCount 1, 2, 3). Then its state is restored from a backup made at boot 1, so the next start has bootCount 2 again in the same epoch: the platform refuses with INVALID_STATE naming DES-MSG-CONN-4, a lasting refusal retried every 300 s. The operator runs `sgw new-epoch` (a new random epoch, boot count and records kept): the next connect carries the new epoch and is accepted with ackedThrough 0 (DES-ID-5).",
        &[
            "DES-MSG-CONN-4",
            "DES-ID-5",
            "DES-ID-2",
            "DES-MSG-CONN-3",
            "DES-RC-1",
        ],
        PlatformConfig {
            monitor_interval_sec: 600,
            ..platform()
        },
    );
    r.event(
        json!({"event": "snapshot", "name": "backup"}),
        "an operator backup of the state at boot 1",
    );
    transport_up(&mut r);
    for (i, name) in ["boot2", "boot3"].into_iter().enumerate() {
        let t = 60.0 * (i as f64 + 1.0);
        r.advance_to(r.t(t - 1.0));
        r.event(
            json!({"event": "snapshot", "name": name}),
            "the persisted state at shutdown",
        );
        r.event(json!({"event": "transport.down"}), "the process stops");
        r.advance_to(r.t(t));
        r.event(
            json!({"event": "restart", "from": name}),
            "the process starts again: bootCount + 1",
        );
        transport_up(&mut r);
    }
    r.advance_to(r.t(179.0));
    r.event(json!({"event": "transport.down"}), "the process stops");
    r.advance_to(r.t(180.0));
    r.event(
        json!({"event": "restart", "from": "backup"}),
        "the store is restored from the backup of boot 1 and the process starts: bootCount 2 again",
    );
    r.note_next(MessageType::ConnectResult, "connect.result INVALID_STATE: bootCount went backwards within the epoch (DES-MSG-CONN-4), a lasting refusal");
    transport_up(&mut r);
    r.note_next(
        MessageType::Connect,
        "a new connect 300 s later on the same transport (DES-MSG-CONN-3)",
    );
    r.advance_to(r.t(500.0));
    r.event(
        json!({"event": "snapshot", "name": "restored"}),
        "the state at shutdown",
    );
    r.event(
        json!({"event": "transport.down"}),
        "the operator stops the gateway",
    );
    r.advance_to(r.t(510.0));
    r.event(
        json!({"event": "restart", "from": "restored", "newEpoch": NEW_EPOCH}),
        "`sgw new-epoch` replaced the epoch (keeping the boot count and the records), then the process starts",
    );
    r.note_next(MessageType::ConnectResult, "connect.result OK: a new epoch starts a new sequence space, ackedThrough 0 (DES-MSG-CONN-4)");
    transport_up(&mut r);
    r.advance_to(r.t(511.0));
    r.finish()
}

/// DES-MSG-CONN-4: a lastSeq that went backwards within the epoch is refused.
pub fn last_seq_backwards(dir: &Path) -> String {
    let mut r = recorder(
        dir,
        "INVALID_STATE for a lastSeq that went backwards (restored store), and the new-epoch remedy",
        "The platform holds seqs 1..3 of the gateway's epoch. The gateway's store is then restored from a backup made before those records existed: its next connect has the same epoch and a bootCount not below the highest seen, but lastSeq 0 < 3, and is refused INVALID_STATE (DES-MSG-CONN-4). Without this the gateway would number new records 1, 2, 3 again and the platform would acknowledge and throw them away. `sgw new-epoch` is the remedy: the new epoch is a new sequence space (DES-ID-5).",
        &[
            "DES-MSG-CONN-4",
            "DES-ID-5",
            "DES-ID-4",
            "DES-MSG-DATA-3",
            "DES-MSG-CONN-3",
        ],
        PlatformConfig {
            monitor_interval_sec: 600,
            ..platform()
        },
    );
    r.event(
        json!({"event": "snapshot", "name": "backup"}),
        "an operator backup of the state at boot 1, before any record",
    );
    transport_up(&mut r);
    r.advance_to(r.t(2.0));
    start_cmd(&mut r, 10, "json", "periodic sending every 10 s");
    r.advance_to(r.t(3.0));
    ingest(&mut r, dir, 0..3, 1, "seqs 1..3 accepted");
    r.advance_to(r.t(59.0));
    r.event(
        json!({"event": "snapshot", "name": "boot2"}),
        "the persisted state at shutdown",
    );
    r.event(json!({"event": "transport.down"}), "the process stops");
    r.advance_to(r.t(60.0));
    r.event(
        json!({"event": "restart", "from": "boot2"}),
        "the process starts again (bootCount 2, lastSeq 3)",
    );
    transport_up(&mut r);
    r.advance_to(r.t(61.0));
    r.event(json!({"event": "transport.down"}), "the process stops");
    r.advance_to(r.t(62.0));
    r.event(
        json!({"event": "restart", "from": "backup"}),
        "the store is restored from the backup and the process starts: bootCount 2 (equal to the highest seen), lastSeq 0",
    );
    r.note_next(
        MessageType::ConnectResult,
        "connect.result INVALID_STATE: lastSeq went backwards within the epoch (DES-MSG-CONN-4)",
    );
    transport_up(&mut r);
    r.advance_to(r.t(363.0));
    r.event(
        json!({"event": "snapshot", "name": "restored"}),
        "the state at shutdown",
    );
    r.event(
        json!({"event": "transport.down"}),
        "the operator stops the gateway",
    );
    r.advance_to(r.t(370.0));
    r.event(
        json!({"event": "restart", "from": "restored", "newEpoch": NEW_EPOCH}),
        "`sgw new-epoch`, then the process starts",
    );
    r.note_next(
        MessageType::ConnectResult,
        "connect.result OK in the new epoch, ackedThrough 0",
    );
    transport_up(&mut r);
    r.advance_to(r.t(371.0));
    r.finish()
}

/// DES-MSG-AN-2: the offline queue (100, oldest dropped) and the rate limit (10 per kind per
/// 60 s window), counted in anomaliesDropped.
pub fn anomaly_limits(dir: &Path) -> String {
    let mut r = recorder(
        dir,
        "Anomaly offline queue and rate limit (DES-MSG-AN-2)",
        "While its first connect is unanswered, the gateway receives 101 down payloads that fail to open (DES-SEAL-5): each is an anomaly; not connected, it queues them, at most 100, dropping the oldest. After the OK connect.result it sends monitor.status, then the queue subject to the rate limit: 10 of kind security in the window, the other 90 dropped. Later, in a new window, 12 more arrive: 10 are sent, 2 dropped. monitor.status counts all of them in anomalies (113) and the unsent ones in anomaliesDropped (93).",
        &[
            "DES-MSG-AN-2",
            "DES-MSG-AN-1",
            "DES-SEAL-5",
            "DES-MSG-CONN-3",
            "DES-MSG-MON-1",
        ],
        platform(),
    );
    r.lose_next("up", MessageType::Connect, "lost: no connect.result comes");
    transport_up(&mut r);
    r.advance_to(r.t(1.0));
    let topic = r.down_topic(MessageType::PeriodicStart);
    for i in 0..101 {
        r.inject("down", &topic, Content::Unopenable, &format!("payload {} of 101 that fails to open (SECURITY_FAILED); queued while not connected", i + 1));
    }
    r.note_next(
        MessageType::Connect,
        "connect attempt 2 after the timeout and back-off d_1",
    );
    r.advance_to(r.t(32.0));
    r.advance_to(r.t(100.0));
    for i in 0..12 {
        r.inject(
            "down",
            &topic,
            Content::Unopenable,
            &format!("payload {} of 12 that fails to open, in session", i + 1),
        );
    }
    r.advance_to(r.t(160.0));
    r.finish()
}

/// DES-MSG-DATA-3/5 with XML profiles: retransmission with doubling timeout, give-up after 9
/// transmissions, held records, resend.
pub fn data_give_up(dir: &Path) -> String {
    let mut r = recorder(
        dir,
        "Data retransmission, give-up after 9 transmissions, held records served by a resend (XML profiles)",
        "ackTimeoutSec is 5. A data message (XML profile) that is never acknowledged is sent again, identical (same messageId, timestamp and profile bytes), after 5, 10, 20, 40, 40, 40, 40, 40 s (DES-MSG-DATA-3). After the 9th transmission's timeout it is given up: anomaly kind malformed rule DES-MSG-DATA-5, and its records are held (monitor.status storage.held). A resend.request selects them; the OK data.ack of the resend message clears held.",
        &[
            "DES-MSG-DATA-3",
            "DES-MSG-DATA-5",
            "DES-MSG-RS-2",
            "DES-MSG-RS-3",
            "DES-PROF-1",
            "DES-PROF-6",
            "DES-MSG-MON-1",
        ],
        PlatformConfig {
            ack_timeout_sec: 5,
            gap_grace_sec: 3600,
            ..platform()
        },
    );
    transport_up(&mut r);
    r.advance_to(r.t(1.0));
    start_cmd(
        &mut r,
        30,
        "xml",
        "periodic sending every 30 s, XML profiles",
    );
    r.advance_to(r.t(2.0));
    ingest(&mut r, dir, 2..4, 1, "seqs 1..2 accepted");
    for i in 0..9 {
        r.lose_next("up", MessageType::Data, "lost: never acknowledged");
        if i > 0 {
            r.note_next(
                MessageType::Data,
                &format!(
                    "transmission {} of 9: identical to the first (DES-MSG-DATA-3)",
                    i + 1
                ),
            );
        } else {
            r.note_next(
                MessageType::Data,
                "data seqs 1..2, XML profile (DES-PROF-6), transmission 1 of 9",
            );
        }
    }
    r.note_next(MessageType::Anomaly, "anomaly: the data message is given up after 9 transmissions, seqs 1..2 held (DES-MSG-DATA-5)");
    r.advance_to(r.t(310.0));
    r.note_next(
        MessageType::ResendResult,
        "resend.result OK: the held records are selected like any other (DES-MSG-RS-2)",
    );
    r.note_next(
        MessageType::Data,
        "data kind resend with the held records; its OK data.ack clears held (DES-MSG-DATA-5)",
    );
    r.event(
        json!({"event": "operator", "command": {"type": "resend.request", "dataset": "billing", "seq": {"first": 1, "last": 2}}}),
        "the operator asks for seqs 1..2",
    );
    r.advance_to(r.t(300.0));
    r.finish()
}

/// Every transcript: file name and generator.
pub type Gen = fn(&Path) -> String;
pub const ALL: &[(&str, Gen)] = &[
    ("main-flow.json", main_flow),
    ("connect-defaults.json", connect_defaults),
    ("connect-retry.json", connect_retry),
    (
        "connect-unsupported-version.json",
        connect_unsupported_version,
    ),
    ("duplicates.json", duplicates),
    ("anomaly-limits.json", anomaly_limits),
    ("undecodable.json", undecodable),
    ("boot-count-backwards.json", boot_count_backwards),
    ("last-seq-backwards.json", last_seq_backwards),
    ("data-give-up.json", data_give_up),
];
