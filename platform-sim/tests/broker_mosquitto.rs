//! The embedded broker with a third-party MQTT peer (SM-TLS, SM-MUTUAL, SM-ACL):
//! `mosquitto_pub` / `mosquitto_sub` (libmosquitto + OpenSSL) with a provisioned certificate
//! (`--cafile --cert --key`). One broker per test binary (rumqttd has no shutdown); every test
//! uses its own gateway IDs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Stdio;

use std::time::Duration;

use common::*;
use platform_sim::broker::PlatformLink;

use platform_sim::provision::Bundle;
use tokio::process::Command;

fn provisioned(id: &str) -> Bundle {
    let e = env();
    let mut ca = e.ca.lock().unwrap();
    bundle(&mut ca, id, e.dir.path(), e.broker.addr().port())
}

/// Common mosquitto arguments: TLS with the bundle's files (or without a client certificate).
fn mosq(tool: &str, b: &Bundle, with_cert: bool) -> Command {
    let mut c = Command::new(tool);
    c.arg("-h")
        .arg("localhost")
        .arg("-p")
        .arg(env().broker.addr().port().to_string())
        .arg("-V")
        .arg("mqttv311")
        .arg("-q")
        .arg("1")
        .arg("-i")
        .arg(b.config.gateway.id.as_str())
        .arg("--cafile")
        .arg(b.path("tls/ca.pem"));
    if with_cert {
        c.arg("--cert")
            .arg(b.path("tls/client.pem"))
            .arg("--key")
            .arg(b.path("tls/client.key"));
    }
    c.stdin(Stdio::null()).kill_on_drop(true);
    c
}

async fn platform_sees(link: &mut PlatformLink, gw: &str, t: Duration) -> Vec<(String, Vec<u8>)> {
    let prefix = format!("/tenants/{gw}/");
    let deadline = tokio::time::Instant::now() + t;
    let mut out = Vec::new();
    while let Ok(m) = tokio::time::timeout_at(deadline, link.next_inbound()).await {
        let m = m.unwrap();
        if m.topic.starts_with(&prefix) {
            out.push((m.topic, m.payload));
        }
    }
    out
}

async fn run(mut c: Command) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(20), c.output())
        .await
        .expect("mosquitto tool hung")
        .unwrap()
}

#[tokio::test]
async fn mosquitto_pub_with_a_provisioned_certificate_reaches_the_platform() {
    let b = provisioned("MOSQPUB");
    let mut link = env().broker.platform_link("platform-mosq-pub").unwrap();
    let mut c = mosq("mosquitto_pub", &b, true);
    c.arg("-t")
        .arg("/tenants/MOSQPUB/sgw/v1/up/data")
        .arg("-m")
        .arg("from-mosquitto");
    let out = run(c).await;
    assert!(out.status.success(), "{out:?}");
    let got = platform_sees(&mut link, "MOSQPUB", Duration::from_secs(2)).await;
    assert_eq!(
        got,
        vec![(
            "/tenants/MOSQPUB/sgw/v1/up/data".to_owned(),
            b"from-mosquitto".to_vec()
        )]
    );
}

#[tokio::test]
async fn mosquitto_sub_receives_what_the_platform_publishes_to_its_gateway() {
    let b = provisioned("MOSQSUB");
    let mut link = env().broker.platform_link("platform-mosq-sub").unwrap();
    let mut c = mosq("mosquitto_sub", &b, true);
    c.arg("-t")
        .arg("/tenants/MOSQSUB/sgw/v1/down/#")
        .arg("-C")
        .arg("1")
        .arg("-W")
        .arg("15")
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    // mosquitto_sub's stdout is block-buffered on a pipe, so the moment it has subscribed cannot
    // be read from it: the platform publishes until the subscriber (-C 1) exits with a message.
    let status = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            link.publish(
                "/tenants/MOSQSUB/sgw/v1/down/resend.request",
                b"to-mosquitto".to_vec(),
            )
            .unwrap();
            if let Ok(Ok(st)) = tokio::time::timeout(Duration::from_millis(300), child.wait()).await
            {
                return st;
            }
        }
    })
    .await
    .expect("mosquitto_sub received nothing");
    assert!(status.success());
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stdout.take().unwrap(), &mut out)
        .await
        .unwrap();
    assert_eq!(out, "to-mosquitto\n");
}

#[tokio::test]
async fn mosquitto_pub_under_another_tenant_loses_its_connection_and_nothing_is_delivered() {
    let a = provisioned("MOSQXA");
    provisioned("MOSQXB");
    let mut link = env().broker.platform_link("platform-mosq-xa").unwrap();
    let mut c = mosq("mosquitto_pub", &a, true);
    c.arg("-t")
        .arg("/tenants/MOSQXB/sgw/v1/up/data")
        .arg("-m")
        .arg("forged");
    let out = run(c).await;
    assert!(
        !out.status.success(),
        "mosquitto_pub reported success: {out:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connection was lost") || err.contains("eof"),
        "{err}"
    );
    assert_eq!(
        platform_sees(&mut link, "MOSQXB", Duration::from_millis(500)).await,
        vec![]
    );
}

#[tokio::test]
async fn mosquitto_sub_under_another_tenant_loses_its_connection_without_receiving() {
    let a = provisioned("MOSQYA");
    provisioned("MOSQYB");
    let mut c = mosq("mosquitto_sub", &a, true);
    c.arg("-t")
        .arg("/tenants/MOSQYB/sgw/v1/down/#")
        .arg("-W")
        .arg("10")
        .arg("-d");
    let started = std::time::Instant::now();
    let out = run(c).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{out:?}");
    assert!(stdout.contains("sending SUBSCRIBE"), "{stdout}");
    assert!(!stdout.contains("received SUBACK"), "{stdout}");
    // Disconnected by the broker, not ended by the -W 10 timeout.
    assert!(started.elapsed() < Duration::from_secs(8), "{stdout}");
}

#[tokio::test]
async fn mosquitto_pub_without_a_client_certificate_is_refused() {
    let b = provisioned("MOSQANON");
    let mut link = env().broker.platform_link("platform-mosq-anon").unwrap();
    let mut c = mosq("mosquitto_pub", &b, false);
    c.arg("-t")
        .arg("/tenants/MOSQANON/sgw/v1/up/data")
        .arg("-m")
        .arg("x");
    let out = run(c).await;
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(
        platform_sees(&mut link, "MOSQANON", Duration::from_millis(500)).await,
        vec![]
    );
}

#[tokio::test]
async fn mosquitto_pub_with_a_revoked_certificate_is_refused_at_the_handshake() {
    let b = provisioned("MOSQREV");
    let mut link = env().broker.platform_link("platform-mosq-rev").unwrap();
    let publish = |m: &str| {
        let mut c = mosq("mosquitto_pub", &b, true);
        c.arg("-t")
            .arg("/tenants/MOSQREV/sgw/v1/up/data")
            .arg("-m")
            .arg(m);
        c
    };
    let out = run(publish("before")).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        platform_sees(&mut link, "MOSQREV", Duration::from_secs(5)).await,
        vec![(
            "/tenants/MOSQREV/sgw/v1/up/data".to_owned(),
            b"before".to_vec()
        )]
    );
    env()
        .ca
        .lock()
        .unwrap()
        .revoke_gateway(&gateway::protocol::ids::GatewayId::new("MOSQREV").unwrap())
        .unwrap();
    let mut c = publish("after");
    c.arg("-d");
    let out = run(c).await;
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("CONNACK"),
        "{out:?}"
    );
    // mosquitto only says "connection lost"; OpenSSL's s_client names the server's alert
    // (TLS 1.2, so that the alert arrives within the handshake: under TLS 1.3 the client has
    // finished before the server judges its certificate).
    let mut s = Command::new("openssl");
    s.arg("s_client")
        .arg("-connect")
        .arg(env().broker.addr().to_string())
        .arg("-tls1_2")
        .arg("-CAfile")
        .arg(b.path("tls/ca.pem"))
        .arg("-cert")
        .arg(b.path("tls/client.pem"))
        .arg("-key")
        .arg(b.path("tls/client.key"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = run(s).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("certificate revoked"), "{text}");
    assert_eq!(
        platform_sees(&mut link, "MOSQREV", Duration::from_millis(500)).await,
        vec![]
    );
}
