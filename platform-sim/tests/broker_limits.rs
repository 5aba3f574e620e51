//! Limits of the embedded broker, observed with real peers (DES-MQTT payload size, SM-SESSION):
//! the 1 MiB payload bound, and the TLS front's per-connection handshake with a deadline (one
//! silent TCP connection stalled rumqttd's serial accept loop for everyone). Own binary and
//! broker, tests serialised.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use platform_sim::broker::PlatformLink;

use rumqttc::{Packet, QoS};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn provisioned(id: &str) -> platform_sim::provision::Bundle {
    let e = env();
    let mut ca = e.ca.lock().unwrap();
    bundle(&mut ca, id, e.dir.path(), e.broker.addr().port())
}

async fn platform_sees(link: &mut PlatformLink, gw: &str, t: Duration) -> Vec<usize> {
    let prefix = format!("/tenants/{gw}/");
    let deadline = tokio::time::Instant::now() + t;
    let mut out = Vec::new();
    while let Ok(m) = tokio::time::timeout_at(deadline, link.next_inbound()).await {
        let m = m.unwrap();
        if m.topic.starts_with(&prefix) {
            out.push(m.payload.len());
        }
    }
    out
}

#[tokio::test]
async fn a_one_mib_payload_is_delivered_and_a_larger_packet_disconnects_the_client() {
    let _g = SERIAL.lock().await;
    let b = provisioned("LIMBIG");
    let port = env().broker.addr().port();
    let mut link = env().broker.platform_link("platform-big").unwrap();
    let mut m = mqtt(port, "LIMBIG", bundle_client_config(&b));
    m.connected().await;
    m.client
        .publish(
            "/tenants/LIMBIG/sgw/v1/up/data",
            QoS::AtLeastOnce,
            false,
            vec![b'a'; 1 << 20],
        )
        .await
        .unwrap();
    assert_eq!(
        platform_sees(&mut link, "LIMBIG", Duration::from_secs(5)).await,
        vec![1 << 20]
    );
    m.client
        .publish(
            "/tenants/LIMBIG/sgw/v1/up/data",
            QoS::AtLeastOnce,
            false,
            vec![b'a'; (1 << 20) + 8192],
        )
        .await
        .unwrap();
    let (seen, closed) = m.until_closed(Duration::from_secs(5)).await;
    assert!(closed.is_some(), "oversized packet accepted: {seen:?}");
    assert_eq!(
        platform_sees(&mut link, "LIMBIG", Duration::from_millis(500)).await,
        Vec::<usize>::new()
    );
}

#[tokio::test]
async fn a_silent_tcp_connection_stalls_no_one_and_is_dropped_at_the_handshake_deadline() {
    let _g = SERIAL.lock().await;
    let b = provisioned("LIMSTALL");
    let port = env().broker.addr().port();
    let mut silent = tokio::net::TcpStream::connect(env().broker.addr())
        .await
        .unwrap();
    let opened = std::time::Instant::now();
    // rumqttd alone awaited the silent peer's TLS handshake before accepting anyone else; the
    // front handshakes each connection in its own task.
    let mut m = mqtt(port, "LIMSTALL", bundle_client_config(&b));
    match m.next(Duration::from_secs(5)).await {
        Some(Seen::Incoming(Packet::ConnAck(_))) => {}
        other => panic!("expected CONNACK beside the silent peer, saw {other:?}"),
    }
    // The silent peer is dropped once the handshake deadline has passed.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        platform_sim::https::HANDSHAKE_TIMEOUT + Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    )
    .await
    .expect("the silent connection was never closed");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the silent peer received data: {read:?}"
    );
    assert!(
        opened.elapsed() >= platform_sim::https::HANDSHAKE_TIMEOUT - Duration::from_millis(500),
        "dropped before the deadline: {:?}",
        opened.elapsed()
    );
}
