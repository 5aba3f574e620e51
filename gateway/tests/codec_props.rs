//! Property tests of the envelope codec (DES-ENV-*, DES-MSG-*, DES-VER-*, DES-RC-1):
//! every message type round-trips (Japanese text included), and mutated messages never panic
//! the decoder: they fail with a `DecodeError` whose result code fits the mutation, or decode to
//! an envelope that is itself valid. Set `PROPTEST_CASES` for longer runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset};
use gateway::protocol::message::{
    Anomaly, AnomalyKind, Body, CertExpiry, Connect, ConnectResult, Data, DataAck, DataKind,
    Disconnect, Empty, Envelope, HealthState, MessageType, MonitorStatus, Outcome, PeriodicStart,
    PeriodicState, PeriodicStop, ProfileFormat, ResendRequest, ResendResult, ResultCode, Software,
    StorageStatus, TimeRange, peek,
};
use gateway::protocol::{Dataset, GatewayId, MessageId, SeqRange, StoreEpoch};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::Union;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Strategies

fn gateway_id() -> impl Strategy<Value = GatewayId> {
    "[A-Za-z0-9]{1,32}".prop_map(|s| GatewayId::new(s).unwrap())
}

fn message_id() -> impl Strategy<Value = MessageId> {
    "[A-Za-z0-9._:-]{1,64}".prop_map(|s| MessageId::new(s).unwrap())
}

fn dataset() -> impl Strategy<Value = Dataset> {
    "[a-z][a-z0-9_-]{0,31}".prop_map(|s| Dataset::new(s).unwrap())
}

fn epoch() -> impl Strategy<Value = StoreEpoch> {
    any::<[u8; 16]>().prop_map(StoreEpoch::from_bytes)
}

fn datasets() -> impl Strategy<Value = Vec<Dataset>> {
    prop::collection::vec(dataset(), 0..4)
}

fn u64_mixed() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..1000, any::<u64>()]
}

fn seq_range() -> impl Strategy<Value = SeqRange> {
    prop_oneof![1u64..10_000, 1u64..=u64::MAX]
        .prop_flat_map(|first| (Just(first), first..=first.saturating_add(1 << 40)))
        .prop_map(|(a, b)| SeqRange::new(a, b).unwrap())
}

/// Timestamps DES-ENV-2 can carry: local years 1970..=9999, offsets in whole minutes, 0, 3, 6 or
/// 9 fraction digits.
fn timestamp() -> impl Strategy<Value = DateTime<FixedOffset>> {
    const MAX: i64 = 253_402_300_799 - 86_400; // 9999-12-30T23:59:59Z
    let nanos = prop_oneof![
        Just(0u32),
        (0u32..1000).prop_map(|ms| ms * 1_000_000),
        (0u32..1_000_000).prop_map(|us| us * 1000),
        0u32..1_000_000_000,
    ];
    (0i64..=MAX, nanos, -1439i32..=1439).prop_map(|(secs, ns, min)| {
        DateTime::from_timestamp(secs, ns)
            .unwrap()
            .with_timezone(&FixedOffset::east_opt(min * 60).unwrap())
    })
}

/// Free text: Japanese, ASCII, or anything printable, within DES-ENV-6.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ぁ-んァ-ヶ一-龠。、・ー（）０-９]{0,40}",
        "[ -~]{0,60}",
        ".{0,30}",
        Just("需要家番号の検針値が範囲外です (SM-THRESHOLD)".to_string()),
    ]
}

fn format() -> impl Strategy<Value = ProfileFormat> {
    prop_oneof![Just(ProfileFormat::Json), Just(ProfileFormat::Xml)]
}

fn periodic_state() -> impl Strategy<Value = PeriodicState> {
    (
        any::<bool>(),
        datasets(),
        any::<u32>(),
        format(),
        u64_mixed(),
    )
        .prop_map(
            |(running, datasets, interval_sec, format, command_seq)| PeriodicState {
                running,
                datasets,
                interval_sec,
                format,
                command_seq,
            },
        )
}

fn result_code() -> impl Strategy<Value = ResultCode> {
    prop::sample::select(vec![
        ResultCode::Ok,
        ResultCode::Partial,
        ResultCode::Malformed,
        ResultCode::UnsupportedVersion,
        ResultCode::UnknownType,
        ResultCode::TooLarge,
        ResultCode::SecurityFailed,
        ResultCode::Unauthorized,
        ResultCode::Stale,
        ResultCode::Superseded,
        ResultCode::InvalidState,
        ResultCode::UnknownDataset,
        ResultCode::NotFound,
        ResultCode::Busy,
        ResultCode::Internal,
    ])
}

fn outcome() -> impl Strategy<Value = Outcome> {
    (result_code(), prop::option::of(text())).prop_map(|(code, reason)| Outcome { code, reason })
}

fn connect() -> impl Strategy<Value = Body> {
    (
        prop::collection::vec(any::<u32>(), 1..4),
        (text(), text(), text()),
        prop::collection::vec(format(), 1..3),
        (epoch(), u64_mixed()),
        u64_mixed(),
        periodic_state(),
    )
        .prop_map(
            |(
                versions,
                (vendor, product, version),
                formats,
                (epoch, boot_count),
                last_seq,
                periodic,
            )| {
                Body::Connect(Connect {
                    versions,
                    software: Software {
                        vendor,
                        product,
                        version,
                    },
                    formats,
                    epoch,
                    boot_count,
                    last_seq,
                    periodic,
                })
            },
        )
}

fn connect_result() -> impl Strategy<Value = Body> {
    (any::<u32>(), any::<u32>(), any::<u32>(), u64_mixed()).prop_map(|(v, m, a, t)| {
        Body::ConnectResult(ConnectResult {
            version: v,
            monitor_interval_sec: m,
            ack_timeout_sec: a,
            acked_through: t,
        })
    })
}

fn disconnect() -> impl Strategy<Value = Body> {
    text().prop_map(|reason| Body::Disconnect(Disconnect { reason }))
}

fn periodic_start() -> impl Strategy<Value = Body> {
    (1u64..=u64::MAX, datasets(), 1u32..=86_400, format()).prop_map(|(c, d, i, f)| {
        Body::PeriodicStart(PeriodicStart {
            command_seq: c,
            datasets: d,
            interval_sec: i,
            format: f,
        })
    })
}

fn periodic_stop() -> impl Strategy<Value = Body> {
    (1u64..=u64::MAX).prop_map(|command_seq| Body::PeriodicStop(PeriodicStop { command_seq }))
}

fn data() -> impl Strategy<Value = Body> {
    (
        prop::option::of(message_id()),
        (dataset(), epoch()),
        seq_range(),
        format(),
        prop_oneof!["[A-Za-z0-9_.-]{0,200}", ".{0,100}"],
    )
        .prop_map(|(request, (dataset, epoch), range, format, profile)| {
            Body::Data(Data {
                kind: if request.is_some() {
                    DataKind::Resend
                } else {
                    DataKind::Periodic
                },
                request,
                dataset,
                epoch,
                range,
                format,
                profile,
            })
        })
}

fn data_ack() -> impl Strategy<Value = Body> {
    seq_range().prop_map(|range| Body::DataAck(DataAck { range }))
}

fn time_range() -> impl Strategy<Value = TimeRange> {
    (timestamp(), timestamp()).prop_map(|(a, b)| {
        let (from, to) = if a <= b { (a, b) } else { (b, a) };
        TimeRange { from, to }
    })
}

fn resend_request() -> impl Strategy<Value = Body> {
    (
        prop::option::of(dataset()),
        prop_oneof![
            seq_range().prop_map(|s| (Some(s), None)),
            time_range().prop_map(|t| (None, Some(t)))
        ],
    )
        .prop_map(|(dataset, (seq, time))| {
            Body::ResendRequest(ResendRequest { dataset, seq, time })
        })
}

fn resend_result() -> impl Strategy<Value = Body> {
    (u64_mixed(), any::<u32>(), any::<Index>()).prop_map(|(records, messages, part)| {
        // archived <= records (DES-MSG-RS-2), both ends included.
        let archived = match records {
            u64::MAX => part.index(usize::MAX) as u64,
            r => part.index(usize::try_from(r + 1).unwrap_or(usize::MAX)) as u64,
        };
        Body::ResendResult(ResendResult {
            records,
            messages,
            archived,
        })
    })
}

fn monitor_status() -> impl Strategy<Value = Body> {
    (
        prop::sample::select(vec![
            HealthState::Ok,
            HealthState::Degraded,
            HealthState::Failed,
        ]),
        (u64_mixed(), periodic_state(), u64_mixed()),
        (
            u64_mixed(),
            u64_mixed(),
            u64_mixed(),
            u64_mixed(),
            u64_mixed(),
        ),
        (u64_mixed(), u64_mixed(), u64_mixed(), u64_mixed()),
        prop_oneof![0usize..4, 0usize..=16].prop_flat_map(|n| {
            prop::collection::vec(
                (text(), timestamp()).prop_map(|(name, not_after)| CertExpiry { name, not_after }),
                n,
            )
        }),
        prop::option::of(text()),
    )
        .prop_map(
            |(
                health,
                (uptime_sec, periodic, last_seq),
                (r, u, b, e, h),
                (fa, fr, an, ad),
                certificates,
                last_error,
            )| {
                Body::MonitorStatus(MonitorStatus {
                    health,
                    uptime_sec,
                    periodic,
                    last_seq,
                    storage: StorageStatus {
                        records: r,
                        unacked: u,
                        bytes: b,
                        evacuated: e,
                        held: h,
                        oldest_unacked_sec: h.wrapping_mul(7),
                        free_bytes: b.wrapping_add(e),
                    },
                    files_accepted: fa,
                    files_rejected: fr,
                    messages_sent: fa.wrapping_mul(3),
                    messages_retransmitted: fr.wrapping_add(1),
                    records_acked: an.wrapping_mul(7),
                    anomalies: an,
                    anomalies_dropped: ad,
                    certificates,
                    last_error,
                })
            },
        )
}

fn anomaly() -> impl Strategy<Value = Body> {
    (
        prop::sample::select(vec![
            AnomalyKind::Security,
            AnomalyKind::Malformed,
            AnomalyKind::Unauthorized,
            AnomalyKind::Stale,
            AnomalyKind::Ingest,
            AnomalyKind::Certificate,
            AnomalyKind::Storage,
        ]),
        text(),
        text(),
        prop::option::of(text()),
    )
        .prop_map(|(kind, rule, detail, topic)| {
            Body::Anomaly(Anomaly {
                kind,
                rule,
                detail,
                topic,
            })
        })
}

fn empty(ty: MessageType) -> impl Strategy<Value = Body> {
    Just(match ty {
        MessageType::Ack => Body::Ack(Empty {}),
        _ => Body::DisconnectResult(Empty {}),
    })
}

/// A body of the given type.
fn body(ty: MessageType) -> BoxedStrategy<Body> {
    match ty {
        MessageType::Connect => connect().boxed(),
        MessageType::ConnectResult => connect_result().boxed(),
        MessageType::Disconnect => disconnect().boxed(),
        MessageType::DisconnectResult | MessageType::Ack => empty(ty).boxed(),
        MessageType::PeriodicStart => periodic_start().boxed(),
        MessageType::PeriodicStartResult => {
            periodic_state().prop_map(Body::PeriodicStartResult).boxed()
        }
        MessageType::PeriodicStop => periodic_stop().boxed(),
        MessageType::PeriodicStopResult => {
            periodic_state().prop_map(Body::PeriodicStopResult).boxed()
        }
        MessageType::Data => data().boxed(),
        MessageType::DataAck => data_ack().boxed(),
        MessageType::ResendRequest => resend_request().boxed(),
        MessageType::ResendResult => resend_result().boxed(),
        MessageType::MonitorStatus => monitor_status().boxed(),
        MessageType::Anomaly => anomaly().boxed(),
    }
}

/// An envelope around a body of type `ty`, with correlation iff `ty` is a reply.
fn envelope_of(ty: MessageType) -> impl Strategy<Value = Envelope> {
    (
        message_id(),
        gateway_id(),
        timestamp(),
        message_id(),
        outcome(),
        body(ty),
    )
        .prop_map(
            move |(message_id, gateway_id, timestamp, irt, outcome, body)| {
                let reply = ty.is_reply();
                Envelope {
                    version: 1,
                    message_id,
                    gateway_id,
                    timestamp,
                    in_reply_to: reply.then_some(irt),
                    result: reply.then_some(outcome),
                    body,
                }
            },
        )
}

/// An envelope of any type.
fn any_envelope() -> impl Strategy<Value = Envelope> {
    Union::new(MessageType::ALL.iter().map(|&ty| envelope_of(ty).boxed()))
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(common::envelope_validator)
}

fn to_value(env: &Envelope) -> Value {
    serde_json::from_slice(&env.encode()).unwrap()
}

fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            prefix.push(k.clone());
            out.push(prefix.clone());
            paths(child, prefix, out);
            prefix.pop();
        }
    }
}

fn all_paths(v: &Value) -> Vec<Vec<String>> {
    let mut out = vec![];
    paths(v, &mut vec![], &mut out);
    out
}

fn at_mut<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(v, |cur, k| cur.get_mut(k).unwrap())
}

/// A decoded envelope is valid: it re-encodes to bytes that decode to the same envelope, and
/// the schema accepts it.
fn assert_still_valid(env: &Envelope) -> Result<(), TestCaseError> {
    let bytes = env.encode();
    prop_assert_eq!(&Envelope::decode(&bytes).unwrap(), env);
    prop_assert!(schema().is_valid(&serde_json::from_slice::<Value>(&bytes).unwrap()));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Round trips, one property per message type.

macro_rules! round_trip {
    ($($name:ident: $ty:ident;)*) => {
        proptest! {
            $(
                #[test]
                fn $name(env in envelope_of(MessageType::$ty)) {
                    let bytes = env.encode();
                    let back = Envelope::decode(&bytes);
                    prop_assert_eq!(back.as_ref(), Ok(&env));
                    // encoding is deterministic and canonical
                    prop_assert_eq!(back.unwrap().encode(), bytes.clone());
                    let value: Value = serde_json::from_slice(&bytes).unwrap();
                    prop_assert_eq!(value["type"].as_str(), Some(MessageType::$ty.as_str()));
                    prop_assert!(schema().is_valid(&value), "{:?}",
                        schema().iter_errors(&value).map(|e| e.to_string()).collect::<Vec<_>>());
                }
            )*
        }
    };
}

round_trip! {
    connect_envelopes_round_trip_and_match_the_schema: Connect;
    connect_result_envelopes_round_trip_and_match_the_schema: ConnectResult;
    disconnect_envelopes_round_trip_and_match_the_schema: Disconnect;
    disconnect_result_envelopes_round_trip_and_match_the_schema: DisconnectResult;
    periodic_start_envelopes_round_trip_and_match_the_schema: PeriodicStart;
    periodic_start_result_envelopes_round_trip_and_match_the_schema: PeriodicStartResult;
    periodic_stop_envelopes_round_trip_and_match_the_schema: PeriodicStop;
    periodic_stop_result_envelopes_round_trip_and_match_the_schema: PeriodicStopResult;
    data_envelopes_round_trip_and_match_the_schema: Data;
    data_ack_envelopes_round_trip_and_match_the_schema: DataAck;
    resend_request_envelopes_round_trip_and_match_the_schema: ResendRequest;
    resend_result_envelopes_round_trip_and_match_the_schema: ResendResult;
    monitor_status_envelopes_round_trip_and_match_the_schema: MonitorStatus;
    anomaly_envelopes_round_trip_and_match_the_schema: Anomaly;
    ack_envelopes_round_trip_and_match_the_schema: Ack;
}

#[test]
fn the_round_trip_properties_cover_every_message_type() {
    // The macro above lists one property per type; this fails when a type is added.
    assert_eq!(MessageType::ALL.len(), 15);
}

// ---------------------------------------------------------------------------------------------
// Mutations

proptest! {
    #[test]
    fn flipped_bytes_never_panic_and_never_yield_an_invalid_envelope(
        env in any_envelope(),
        flips in prop::collection::vec((any::<Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = env.encode();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        match Envelope::decode(&bytes) {
            Err(e) => {
                // every error maps to a code a peer can send (DES-RC-1)
                let _ = e.result_code().as_str();
                prop_assert!(!e.to_string().is_empty());
            }
            Ok(decoded) => {
                assert_still_valid(&decoded)?;
                // what the decoder accepts, the schema accepts
                let value: Value = serde_json::from_slice(&bytes).unwrap();
                prop_assert!(schema().is_valid(&value), "{}", value);
            }
        }
    }

    #[test]
    fn truncated_envelopes_are_malformed(env in any_envelope(), cut in any::<Index>()) {
        let bytes = env.encode();
        let cut = cut.index(bytes.len());
        let err = Envelope::decode(&bytes[..cut]).unwrap_err();
        prop_assert_eq!(err.result_code(), ResultCode::Malformed);
    }

    #[test]
    fn removing_a_member_either_is_malformed_or_leaves_a_valid_envelope(
        env in any_envelope(), pick in any::<Index>(),
    ) {
        let mut value = to_value(&env);
        let paths = all_paths(&value);
        let path = &paths[pick.index(paths.len())];
        let (last, parent) = path.split_last().unwrap();
        at_mut(&mut value, parent).as_object_mut().unwrap().remove(last);
        let decoded = Envelope::decode(&serde_json::to_vec(&value).unwrap());
        prop_assert_eq!(schema().is_valid(&value), decoded.is_ok(), "{:?} {:?}", path, decoded);
        match decoded {
            Err(e) => prop_assert_eq!(e.result_code(), ResultCode::Malformed),
            Ok(d) => {
                assert_still_valid(&d)?;
                // only optional members may go
                let optional = ["reason", "request", "dataset", "lastError", "topic"];
                prop_assert!(optional.contains(&last.as_str()), "{:?}", path);
            }
        }
    }

    #[test]
    fn an_unknown_member_is_malformed_wherever_it_is_inserted_except_ext(
        env in any_envelope(), pick in any::<Index>(), name in "[a-zA-Z][a-zA-Z0-9]{0,11}",
        member in prop_oneof![Just(json!(null)), Just(json!(1)), Just(json!("未知")), Just(json!({}))],
    ) {
        let mut value = to_value(&env);
        let mut objects: Vec<Vec<String>> = all_paths(&value)
            .into_iter()
            .filter(|p| at_mut(&mut value.clone(), p).is_object())
            .collect();
        objects.push(vec![]);
        let path = objects[pick.index(objects.len())].clone();
        let obj = at_mut(&mut value, &path).as_object_mut().unwrap();
        let is_ext = path.is_empty() && name == "ext";
        prop_assume!(!obj.contains_key(&name) && !is_ext);
        obj.insert(name, member);
        let decoded = Envelope::decode(&serde_json::to_vec(&value).unwrap());
        prop_assert_eq!(decoded.unwrap_err().result_code(), ResultCode::Malformed);
        prop_assert!(!schema().is_valid(&value));
    }

    #[test]
    fn a_member_of_another_json_type_is_malformed(env in any_envelope(), pick in any::<Index>()) {
        let mut value = to_value(&env);
        let paths = all_paths(&value);
        let path = &paths[pick.index(paths.len())];
        let slot = at_mut(&mut value, path);
        *slot = match slot {
            Value::String(_) => json!(12),
            Value::Number(_) => json!("12"),
            Value::Bool(_) => json!(0),
            Value::Array(_) => json!({"0": 1}),
            Value::Object(_) => json!([1]),
            Value::Null => json!(false),
        };
        let decoded = Envelope::decode(&serde_json::to_vec(&value).unwrap());
        prop_assert_eq!(decoded.unwrap_err().result_code(), ResultCode::Malformed, "{:?}", path);
        prop_assert!(!schema().is_valid(&value));
    }

    #[test]
    fn any_other_version_is_unsupported_version(
        env in any_envelope(), version in any::<u64>().prop_filter("not 1", |v| *v != 1),
    ) {
        let mut value = to_value(&env);
        value["version"] = json!(version);
        let err = Envelope::decode(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        prop_assert_eq!(err.result_code(), ResultCode::UnsupportedVersion);
    }

    #[test]
    fn an_unknown_type_is_unknown_type(env in any_envelope(), ty in "[a-z.]{0,24}|.{0,10}") {
        prop_assume!(MessageType::from_wire(&ty).is_none());
        let mut value = to_value(&env);
        value["type"] = json!(ty);
        let err = Envelope::decode(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        prop_assert_eq!(err.result_code(), ResultCode::UnknownType);
    }

    #[test]
    fn the_ext_member_is_ignored_whatever_it_holds(
        env in any_envelope(),
        ext in prop_oneof![Just(json!(null)), any::<i64>().prop_map(|i| json!(i)),
                           text().prop_map(|s| json!({"v2": s, "list": [s]}))],
    ) {
        let mut value = to_value(&env);
        value["ext"] = ext;
        prop_assert_eq!(Envelope::decode(&serde_json::to_vec(&value).unwrap()), Ok(env));
    }

    #[test]
    fn an_envelope_over_256_kib_is_too_large(env in any_envelope(), extra in 1usize..4096) {
        let mut value = to_value(&env);
        let len = serde_json::to_vec(&value).unwrap().len();
        value["ext"] = json!("x".repeat(256 * 1024 - len + extra));
        let err = Envelope::decode(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        prop_assert_eq!(err.result_code(), ResultCode::TooLarge);
    }

    #[test]
    fn swapping_correlation_between_request_and_reply_is_malformed(env in any_envelope()) {
        let mut value = to_value(&env);
        let obj = value.as_object_mut().unwrap();
        if env.message_type().is_reply() {
            obj.remove("inReplyTo");
        } else {
            obj.insert("result".into(), json!({"code": "OK"}));
        }
        let err = Envelope::decode(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        prop_assert_eq!(err.result_code(), ResultCode::Malformed);
    }

    #[test]
    fn a_timestamp_written_in_another_iso_8601_form_is_malformed(
        env in any_envelope(), form in 0usize..5,
    ) {
        let mut value = to_value(&env);
        let ts = value["timestamp"].as_str().unwrap().to_string();
        let other = match form {
            0 => ts.replacen('T', "t", 1),
            1 => ts.replacen('T', " ", 1),
            2 => ts.replace(':', ""),
            3 => format!("{ts} "),
            _ => ts[..19].to_string(), // no offset
        };
        value["timestamp"] = json!(other);
        let err = Envelope::decode(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        prop_assert_eq!(err.result_code(), ResultCode::Malformed);
        prop_assert!(!schema().is_valid(&value));
    }

    #[test]
    fn an_epoch_that_is_not_32_lower_case_hex_digits_is_malformed(
        env in prop_oneof![envelope_of(MessageType::Connect), envelope_of(MessageType::Data)],
        bad in prop_oneof![
            "[0-9a-f]{0,31}",
            "[0-9a-f]{33,40}",
            "[0-9a-f]{0,15}[A-FG-Zg-z:. _-][0-9a-f]{16}",
        ],
    ) {
        let mut value = to_value(&env);
        value["body"]["epoch"] = json!(bad);
        let err = Envelope::decode(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        prop_assert_eq!(err.result_code(), ResultCode::Malformed);
        prop_assert!(!schema().is_valid(&value));
    }

    #[test]
    fn archived_beyond_records_is_malformed(
        env in envelope_of(MessageType::ResendResult), over in 1u64..1000,
    ) {
        let mut value = to_value(&env);
        let records = value["body"]["records"].as_u64().unwrap();
        prop_assume!(records < u64::MAX);
        value["body"]["archived"] = json!(records.saturating_add(over));
        let err = Envelope::decode(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        prop_assert_eq!(err.result_code(), ResultCode::Malformed);
    }

    #[test]
    fn more_than_16_certificates_are_malformed(
        env in envelope_of(MessageType::MonitorStatus), n in 17usize..40,
    ) {
        let mut value = to_value(&env);
        let cert = json!({"name": "tls-client", "notAfter": "2027-03-31T23:59:59+09:00"});
        value["body"]["certificates"] = json!(vec![cert; n]);
        let err = Envelope::decode(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        prop_assert_eq!(err.result_code(), ResultCode::Malformed);
        prop_assert!(!schema().is_valid(&value));
    }

    #[test]
    fn peek_reads_type_id_and_data_range_of_valid_and_undecodable_envelopes(
        env in any_envelope(), version in 2u64..1000, mutation in 0usize..3,
    ) {
        let mut value = to_value(&env);
        match mutation {
            0 => {}
            1 => value["version"] = json!(version),
            _ => value["body"]["unknownMember"] = json!(1),
        }
        let p = peek(&serde_json::to_vec(&value).unwrap()).unwrap();
        prop_assert_eq!(p.message_type, env.message_type());
        prop_assert_eq!(&p.message_id, &env.message_id);
        let range = match &env.body {
            Body::Data(d) => Some(d.range),
            _ => None,
        };
        prop_assert_eq!(p.range, range);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(env) = Envelope::decode(&bytes) {
            assert_still_valid(&env)?;
        }
        let _ = peek(&bytes);
    }
}
