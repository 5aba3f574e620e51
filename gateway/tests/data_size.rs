//! End to end for DES-MSG-DATA-6: the widest data messages the gateway core plans — records of
//! up to `MAX_RECORD_BYTES` summing to `MAX_MESSAGE_RECORD_BYTES`, with a profile header of up
//! to `MAX_PROFILE_HEADER_BYTES` — are built with the real profile encoders, sealed through
//! [`DataSecurity`] in both formats, and every `data` envelope is at most `MAX_ENVELOPE_BYTES`
//! (256 KiB) and decodes. Escape-heavy fields make each format's encoding as wide as it gets:
//! control characters for JSON (`\u00XX`, 6 bytes for 1), `&` for XML (`&amp;`, 5 for 1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use chrono::{DateTime, Utc};
use gateway::profile::{Column, ColumnType, DataProfile, ProfileHeader};
use gateway::protocol::flow::Time;
use gateway::protocol::gateway_side::{GatewayConfig, GatewayCore, Inbound, Transmit};
use gateway::protocol::message::{
    Body, ConnectResult, Envelope, MAX_ENVELOPE_BYTES, Outcome, PROTOCOL_VERSION, PeriodicStart,
    ProfileFormat,
};
use gateway::protocol::size::{
    MAX_MESSAGE_RECORD_BYTES, MAX_PROFILE_HEADER_BYTES, MAX_RECORD_BYTES, profile_header_bytes,
    record_wire_bytes,
};
use gateway::protocol::topic::topic_for;
use gateway::protocol::{Dataset, GatewayId, MessageId, SeqRange, StoreEpoch};
use gateway::security::xml::XmlCipher;
use security_common::{gateway_ds, platform_ds};

fn t0() -> Time {
    DateTime::parse_from_rfc3339("2026-11-22T09:00:00+09:00").unwrap()
}
fn gw() -> GatewayId {
    GatewayId::new("GW0001").unwrap()
}
fn billing() -> Dataset {
    Dataset::new("billing").unwrap()
}

fn header(columns: Vec<Column>) -> ProfileHeader {
    ProfileHeader {
        gateway_id: gw(),
        source_system: "ryokin-sys".into(),
        dataset: billing(),
        columns,
        range: SeqRange { first: 1, last: 1 },
        created_at: t0(),
    }
}

/// `count` columns whose header is as close to `MAX_PROFILE_HEADER_BYTES` as whole columns
/// allow: names of `name` characters, e.g. `"` (`&quot;` in XML, `\"` in JSON, `&quot;` again
/// in the escaped XML) or a control character (`\u0001` in JSON, JSON format only), units of
/// `<`.
fn widest_columns(count: usize, name: &str) -> Vec<Column> {
    let column = |len: usize| Column {
        name: name.repeat(len),
        ty: ColumnType::String,
        unit: Some("<".repeat(32)),
        masked: true,
    };
    let mut cols: Vec<Column> = (0..count).map(|_| column(1)).collect();
    // Lengthen names, widest first, while the header stays within the bound.
    for i in 0..count {
        let (mut lo, mut hi) = (1usize, 128usize);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            cols[i] = column(mid);
            if profile_header_bytes(&header(cols.clone())) <= MAX_PROFILE_HEADER_BYTES {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        cols[i] = column(lo);
    }
    let h = profile_header_bytes(&header(cols.clone()));
    assert!(h <= MAX_PROFILE_HEADER_BYTES);
    assert!(
        h + 64 > MAX_PROFILE_HEADER_BYTES,
        "header of {h} bytes is not near the bound"
    );
    cols
}

/// A core, connected and started in `format`, with `records` ingested; the data it plans.
fn planned(
    format: ProfileFormat,
    records: &[Vec<String>],
) -> Vec<gateway::protocol::gateway_side::DataRequest> {
    let mut g = GatewayCore::new(
        GatewayConfig::new(gw(), vec![billing()]),
        StoreEpoch::from_bytes([7; 16]),
        t0(),
    );
    g.handle_connected(t0());
    let connect = match g.poll_transmit() {
        Some(Transmit::Message { envelope, .. }) => envelope.message_id,
        other => panic!("{other:?}"),
    };
    let down = |id: &str, body: Body, reply: Option<(MessageId, Outcome)>| {
        let envelope = Envelope {
            version: PROTOCOL_VERSION,
            message_id: MessageId::new(id).unwrap(),
            gateway_id: gw(),
            timestamp: t0(),
            in_reply_to: reply.as_ref().map(|(m, _)| m.clone()),
            result: reply.map(|(_, o)| o),
            body,
        };
        Inbound::Opened {
            topic: topic_for(&gw(), envelope.message_type()),
            envelope,
        }
    };
    let cr = Body::ConnectResult(ConnectResult {
        version: 1,
        monitor_interval_sec: 3600,
        ack_timeout_sec: 30,
        acked_through: 0,
    });
    g.handle_inbound(t0(), down("p.c", cr, Some((connect, Outcome::ok()))));
    let start = Body::PeriodicStart(PeriodicStart {
        command_seq: 1,
        datasets: vec![],
        interval_sec: 10,
        format,
    });
    g.handle_inbound(t0(), down("p.s", start, None));
    let sizes: Vec<u32> = records.iter().map(|r| record_wire_bytes(r)).collect();
    assert!(sizes.iter().all(|s| *s <= MAX_RECORD_BYTES));
    g.handle_ingest(t0(), &billing(), &sizes).unwrap();
    g.handle_timeout(t0() + chrono::Duration::seconds(10));
    std::iter::from_fn(|| g.poll_transmit())
        .filter_map(|t| match t {
            Transmit::Data(d) => Some(d),
            Transmit::Message { .. } => None,
        })
        .collect()
}

/// Builds, seals and checks every planned message; returns the largest envelope and the
/// largest share of the record budget a message used.
fn seal_all(format: ProfileFormat, columns: &[Column], records: &[Vec<String>]) -> (usize, u64) {
    let gds = gateway_ds();
    let pds = platform_ds();
    let now: DateTime<Utc> = Utc::now();
    let mut largest = 0;
    let mut fullest = 0;
    let requests = planned(format, records);
    assert!(!requests.is_empty());
    for req in requests {
        let recs: Vec<Vec<String>> = (req.range.first..=req.range.last)
            .map(|s| records[(s - 1) as usize].clone())
            .collect();
        let bytes: u64 = recs.iter().map(|r| u64::from(record_wire_bytes(r))).sum();
        assert!(bytes <= MAX_MESSAGE_RECORD_BYTES);
        fullest = fullest.max(bytes);
        let p = DataProfile {
            header: ProfileHeader {
                range: req.range,
                ..header(columns.to_vec())
            },
            records: recs,
        };
        let sealed = match format {
            ProfileFormat::Json => gds
                .seal_json_profile("platform", &p.to_json(), now)
                .unwrap(),
            ProfileFormat::Xml => gds
                .seal_xml_profile("platform", &p.to_xml(), XmlCipher::Aes256Cbc, now)
                .unwrap(),
        };
        let env = req.into_envelope(sealed);
        let wire = env.encode();
        assert!(
            wire.len() <= MAX_ENVELOPE_BYTES,
            "{format:?}: envelope of {} bytes",
            wire.len()
        );
        largest = largest.max(wire.len());
        // It decodes, and the platform opens the same profile.
        let back = Envelope::decode(&wire).unwrap();
        let Body::Data(d) = back.body else {
            panic!("not data")
        };
        let opened = match format {
            ProfileFormat::Json => {
                DataProfile::from_json(&pds.open_json_profile("GW0001", &d.profile, now).unwrap())
                    .unwrap()
            }
            ProfileFormat::Xml => {
                DataProfile::from_xml(&pds.open_xml_profile("GW0001", &d.profile, now).unwrap())
                    .unwrap()
            }
        };
        assert_eq!(opened, p);
    }
    (largest, fullest)
}

/// Records of `columns.len()` fields, each field `unit` repeated, as many as make the wire
/// sizes fill the budget `messages` times over (each record about `record_bytes`).
fn records_of(columns: usize, unit: &str, record_bytes: u64, messages: u64) -> Vec<Vec<String>> {
    let one = |reps: usize| -> Vec<String> {
        let mut f = vec![String::new(); columns];
        f[0] = unit.repeat(reps);
        f
    };
    // The most repetitions that keep the record within `record_bytes`.
    let mut reps = 0;
    while u64::from(record_wire_bytes(&one(reps + 1))) <= record_bytes {
        reps += 1;
    }
    let rec = one(reps);
    let w = u64::from(record_wire_bytes(&rec));
    let per_message = (MAX_MESSAGE_RECORD_BYTES / w).min(1000);
    vec![rec; (per_message * messages) as usize]
}

fn check(name: &str, formats: &[ProfileFormat], columns: &[Column], records: &[Vec<String>]) {
    for format in formats {
        let (largest, fullest) = seal_all(*format, columns, records);
        println!(
            "{name} {format:?}: largest envelope {largest} bytes, fullest message {fullest} record bytes"
        );
        assert!(
            fullest * 100 >= MAX_MESSAGE_RECORD_BYTES * 97,
            "{name}: the widest message uses {fullest} bytes only"
        );
    }
}

const BOTH: [ProfileFormat; 2] = [ProfileFormat::Json, ProfileFormat::Xml];

#[test]
fn many_json_heavy_records_with_the_widest_header_fit_the_envelope() {
    let cols = widest_columns(20, "\u{1}");
    // Control characters: 6 bytes each in JSON. XML 1.0 cannot carry them at all (the XML
    // profile refuses them), so they are the JSON format's worst case only.
    let recs = records_of(cols.len(), "\u{1}", 700, 2);
    assert!(recs[0].iter().map(String::len).sum::<usize>() > 50);
    check("control characters", &[ProfileFormat::Json], &cols, &recs);
    let cols = widest_columns(20, "\"");
    // Quotes, backslashes, TAB and LF: 2 bytes each in JSON, valid in XML.
    let recs = records_of(cols.len(), "\"\\\t\n", 700, 2);
    check("quotes and backslashes", &BOTH, &cols, &recs);
}

#[test]
fn records_of_the_largest_size_fit_the_envelope() {
    for (name, unit, formats) in [
        (
            "largest control characters",
            "\u{1}",
            &[ProfileFormat::Json][..],
        ),
        ("largest quotes", "\"\\", &BOTH[..]),
        ("largest ampersands", "&<", &BOTH[..]),
    ] {
        let cols = widest_columns(20, if formats.len() == 1 { unit } else { "\"" });
        // 65 536 + 49 152 = 114 688: one record of the limit and one filling the budget.
        let mut recs = records_of(cols.len(), unit, u64::from(MAX_RECORD_BYTES), 1);
        recs.truncate(1);
        recs.extend(records_of(cols.len(), unit, 49_152, 1).into_iter().take(1));
        check(name, formats, &cols, &recs);
    }
}

#[test]
fn xml_heavy_and_japanese_records_fit_the_envelope_in_both_formats() {
    let cols = widest_columns(20, "\"");
    check(
        "ampersands",
        &BOTH,
        &cols,
        &records_of(cols.len(), "&", 1000, 2),
    );
    check(
        "japanese",
        &BOTH,
        &cols,
        &records_of(cols.len(), "髙①", 800, 2),
    );
}
