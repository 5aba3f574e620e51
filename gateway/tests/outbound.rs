//! `gateway::outbound`, the synchronous edge between the core and data security: what it hands
//! the core for every kind of received payload (DES-MSG-3 steps 1, 2, 4–8; IF-PSTART-2), and
//! that the data it builds is what the platform opens (DES-PROF-4/6, DES-SEAL-1,
//! DES-MSG-DATA-6). The platform side is the real `DataSecurity` with the platform's keys.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod security_common;

use chrono::Utc;
use gateway::outbound::{
    DatasetProfile, OutboundError, build_profile, open_inbound, seal_data, seal_envelope,
};
use gateway::profile::{Column, ColumnType, DataProfile};
use gateway::protocol::InboundError;
use gateway::protocol::gateway_side::{DataRequest, Inbound};
use gateway::protocol::ids::{Dataset, GatewayId, MessageId, SeqRange, StoreEpoch};
use gateway::protocol::message::{
    Body, DataKind, DecodeError, Envelope, MAX_PAYLOAD_BYTES, PeriodicStop, ProfileFormat,
};
use gateway::protocol::topic::topic_for;
use gateway::security::xml::XmlCipher;
use security_common::{gateway_ds, platform_ds};

const TOPIC: &str = "/tenants/GW0001/sgw/v1/down/periodic.stop";

fn stop_envelope() -> Envelope {
    Envelope {
        version: 1,
        message_id: MessageId::new("p-1").unwrap(),
        gateway_id: GatewayId::new("GW0001").unwrap(),
        timestamp: Utc::now().fixed_offset(),
        in_reply_to: None,
        result: None,
        body: Body::PeriodicStop(PeriodicStop { command_seq: 3 }),
    }
}

#[test]
fn a_platform_sealed_command_is_opened_and_decoded_for_the_core() {
    let env = stop_envelope();
    let token = platform_ds()
        .seal_message("GW0001", &env.encode(), Utc::now())
        .unwrap();
    match open_inbound(
        &gateway_ds(),
        TOPIC.into(),
        token.as_bytes(),
        false,
        Utc::now(),
    ) {
        Inbound::Opened { topic, envelope } => {
            assert_eq!(topic, TOPIC);
            assert_eq!(envelope, env);
        }
        other => panic!("not opened: {other:?}"),
    }
}

#[test]
fn a_payload_over_one_mib_is_refused_too_large_before_anything_is_opened() {
    // Valid sealing would not matter: the size is checked first (DES-MSG-3 step 1). An
    // adapter that opened first would report SECURITY_FAILED for these bytes instead.
    let payload = vec![b'A'; MAX_PAYLOAD_BYTES + 1];
    match open_inbound(&gateway_ds(), TOPIC.into(), &payload, false, Utc::now()) {
        Inbound::Refused {
            error: e @ InboundError::Decode(DecodeError::PayloadTooLarge(_)),
            peek: None,
            ..
        } => {
            assert_eq!(
                e.to_string(),
                format!(
                    "DES-MQTT-7: payload of {} bytes exceeds 1048576",
                    MAX_PAYLOAD_BYTES + 1
                )
            );
            assert_eq!(
                (e.rule(), e.result_code().as_str()),
                ("DES-MQTT-7", "TOO_LARGE")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_retained_command_is_refused_even_when_authentic() {
    let token = platform_ds()
        .seal_message("GW0001", &stop_envelope().encode(), Utc::now())
        .unwrap();
    match open_inbound(
        &gateway_ds(),
        TOPIC.into(),
        token.as_bytes(),
        true,
        Utc::now(),
    ) {
        Inbound::Refused {
            error: InboundError::Decode(DecodeError::Rule(r)),
            ..
        } => assert!(r.starts_with("DES-MQTT-6"), "{r}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_command_signed_by_anyone_but_the_platform_or_tampered_is_one_security_failure() {
    // Sealed by the gateway's own key (another certificate of the same root).
    let by_gateway = gateway_ds()
        .seal_message("platform", &stop_envelope().encode(), Utc::now())
        .unwrap();
    let mut tampered = platform_ds()
        .seal_message("GW0001", &stop_envelope().encode(), Utc::now())
        .unwrap()
        .into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    for payload in [by_gateway.into_bytes(), tampered, b"not a JWE".to_vec()] {
        match open_inbound(&gateway_ds(), TOPIC.into(), &payload, false, Utc::now()) {
            Inbound::Refused {
                error: InboundError::Security,
                peek: None,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_authentic_but_undecodable_command_is_refused_with_what_the_peek_read() {
    let bad = br#"{"version":1,"messageId":"p-9","gatewayId":"GW0001","type":"periodic.stop","timestamp":"2026-12-04T10:00:00+09:00","body":{"commandSeq":"x"}}"#;
    let token = platform_ds()
        .seal_message("GW0001", bad, Utc::now())
        .unwrap();
    match open_inbound(
        &gateway_ds(),
        TOPIC.into(),
        token.as_bytes(),
        false,
        Utc::now(),
    ) {
        Inbound::Refused {
            error: InboundError::Decode(_),
            peek: Some(p),
            ..
        } => assert_eq!(p.message_id.as_str(), "p-9"),
        other => panic!("{other:?}"),
    }
}

fn dataset() -> DatasetProfile {
    DatasetProfile {
        source_system: "billing-system".into(),
        columns: vec![
            Column {
                name: "customer".into(),
                ty: ColumnType::String,
                unit: None,
                masked: false,
            },
            Column {
                name: "amount".into(),
                ty: ColumnType::Integer,
                unit: Some("JPY".into()),
                masked: false,
            },
        ],
        xml_cipher: XmlCipher::Aes256Cbc,
    }
}

fn request(first: u64, last: u64, format: ProfileFormat) -> DataRequest {
    let gw = GatewayId::new("GW0001").unwrap();
    DataRequest {
        topic: topic_for(&gw, gateway::protocol::MessageType::Data),
        message_id: MessageId::new("GW0001.1.9").unwrap(),
        gateway_id: gw,
        timestamp: Utc::now().fixed_offset(),
        retransmission: false,
        dataset: Dataset::new("billing").unwrap(),
        epoch: StoreEpoch::from_bytes([1; 16]),
        range: SeqRange { first, last },
        kind: DataKind::Periodic,
        request: None,
        format,
        archived: false,
    }
}

fn rows(n: u64, width: usize) -> Vec<Vec<String>> {
    (0..n)
        .map(|i| {
            vec![
                format!("顧客{i}{}", "x".repeat(width)),
                format!("{}", i * 100),
            ]
        })
        .collect()
}

#[test]
fn sealed_json_and_xml_data_open_at_the_platform_to_exactly_the_records_given() {
    let gw = GatewayId::new("GW0001").unwrap();
    for format in [ProfileFormat::Json, ProfileFormat::Xml] {
        let req = request(5, 9, format);
        let records = rows(5, 3);
        let profile = build_profile(&gw, &req, &dataset(), records.clone(), req.timestamp).unwrap();
        let (env, sealed) =
            seal_data(&gateway_ds(), req, &profile, &dataset(), Utc::now()).unwrap();
        let p = platform_ds();
        let opened =
            Envelope::decode(&p.open_message("GW0001", &sealed, Utc::now()).unwrap()).unwrap();
        assert_eq!(opened, env);
        let Body::Data(d) = opened.body else {
            panic!("not data")
        };
        assert_eq!(d.range, SeqRange { first: 5, last: 9 });
        let got = match format {
            ProfileFormat::Json => DataProfile::from_json(
                &p.open_json_profile("GW0001", &d.profile, Utc::now())
                    .unwrap(),
            )
            .unwrap(),
            ProfileFormat::Xml => DataProfile::from_xml(
                &p.open_xml_profile("GW0001", &d.profile, Utc::now())
                    .unwrap(),
            )
            .unwrap(),
        };
        assert_eq!(got.records, records, "{format:?}");
        assert_eq!(got.header.range, SeqRange { first: 5, last: 9 });
        assert_eq!(got.header.source_system, "billing-system");
    }
}

#[test]
fn records_that_do_not_match_the_range_or_the_columns_are_not_built() {
    let gw = GatewayId::new("GW0001").unwrap();
    let req = request(1, 3, ProfileFormat::Json);
    match build_profile(&gw, &req, &dataset(), rows(2, 1), req.timestamp) {
        Err(OutboundError::RecordCount {
            want: 3, got: 2, ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let mut r = rows(3, 1);
    r[1].push("extra".into());
    match build_profile(&gw, &req, &dataset(), r, req.timestamp) {
        Err(OutboundError::FieldCount {
            seq: 2,
            want: 2,
            got: 3,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_data_envelope_over_256_kib_is_refused_not_sent() {
    // Three records of ~100 KB: beyond the DES-MSG-DATA-6 budget the core would never plan,
    // so the sealed-size check is the last guard (the caller gives the message up).
    let gw = GatewayId::new("GW0001").unwrap();
    let req = request(1, 3, ProfileFormat::Json);
    let profile = build_profile(&gw, &req, &dataset(), rows(3, 100_000), req.timestamp).unwrap();
    match seal_data(&gateway_ds(), req, &profile, &dataset(), Utc::now()) {
        Err(OutboundError::EnvelopeTooLarge(n)) => assert!(n > 262_144, "{n}"),
        other => panic!("{other:?}"),
    }
    // An up envelope seals to something the platform opens.
    let token = seal_envelope(&gateway_ds(), &stop_envelope(), Utc::now()).unwrap();
    assert!(
        platform_ds()
            .open_message("GW0001", &token, Utc::now())
            .is_ok()
    );
}
