//! Helpers shared by the integration tests: fresh CAs, provisioned bundles, rustls client
//! configurations built from a bundle, and an rumqttc client whose events are collected.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gateway::protocol::ids::GatewayId;
use platform_sim::ca::Ca;
use platform_sim::provision::{Bundle, Endpoints, ProvisionOptions, provision};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, TlsConfiguration, Transport};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;

pub mod fixture;
pub mod real;
pub mod scripted;

pub fn gw(s: &str) -> GatewayId {
    GatewayId::new(s).unwrap()
}

pub fn new_ca() -> (tempfile::TempDir, Ca) {
    platform_sim::install_crypto_provider();
    let d = tempfile::tempdir().unwrap();
    let ca = Ca::create(&d.path().join("ca")).unwrap();
    (d, ca)
}

/// A bundle for gateway `id` under `parent`; `mqtt_port` 0 means "not used by the test" (the
/// bundle then names 8883: a configuration has a real port).
pub fn bundle(ca: &mut Ca, id: &str, parent: &Path, mqtt_port: u16) -> Bundle {
    let opts = ProvisionOptions {
        endpoints: Endpoints {
            mqtt_host: "localhost".into(),
            mqtt_port: if mqtt_port == 0 { 8883 } else { mqtt_port },
            https_url: "https://localhost:8443".into(),
        },
        ..ProvisionOptions::default()
    };
    provision(ca, &gw(id), &parent.join(format!("bundle-{id}")), &opts).unwrap()
}

pub fn roots(pem_path: &Path) -> RootCertStore {
    let mut r = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pem_path).unwrap() {
        r.add(c.unwrap()).unwrap();
    }
    r
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Client config trusting `ca` and presenting `cert`/`key`.
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> ClientConfig {
    let chain = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_client_auth_cert(chain, key)
        .unwrap()
}

/// Client config from a provisioned bundle (its tls/ files).
pub fn bundle_client_config(b: &Bundle) -> ClientConfig {
    client_config(
        b.config.tls.ca.path(),
        b.config.tls.client_cert.path(),
        b.config.tls.client_key.path(),
    )
}

/// Client config trusting `ca` and presenting no certificate.
pub fn anonymous_client_config(ca: &Path) -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_no_client_auth()
}

/// What the MQTT client's event loop saw.
#[derive(Debug)]
pub enum Seen {
    Incoming(Packet),
    /// The event loop failed (connection refused/closed); it is not polled again.
    Closed(String),
}

/// An rumqttc client (MQTT 3.1.1, clean session, keep-alive 60 s) whose event loop is driven
/// by a task forwarding incoming packets and the first error.
pub struct Mqtt {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<Seen>,
}

pub fn mqtt(port: u16, client_id: &str, cfg: ClientConfig) -> Mqtt {
    let mut opts = MqttOptions::new(client_id, "localhost", port);
    opts.set_keep_alive(Duration::from_secs(60));
    opts.set_clean_session(true);
    // Large enough to send packets the broker must refuse (its limit is ~1 MiB).
    opts.set_max_packet_size(4 << 20, 4 << 20);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(cfg),
    )));
    let (client, mut el) = AsyncClient::new(opts, 10);
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(p)) => {
                    if tx.send(Seen::Incoming(p)).is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(_)) => {}
                Err(e) => {
                    let _ = tx.send(Seen::Closed(e.to_string()));
                    return;
                }
            }
        }
    });
    Mqtt { client, events }
}

impl Mqtt {
    /// The next event within `t`, `None` on timeout.
    pub async fn next(&mut self, t: Duration) -> Option<Seen> {
        tokio::time::timeout(t, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the CONNACK; panics with what was seen instead.
    pub async fn connected(&mut self) {
        match self.next(Duration::from_secs(10)).await {
            Some(Seen::Incoming(Packet::ConnAck(a))) => {
                assert_eq!(a.code, rumqttc::ConnectReturnCode::Success)
            }
            other => panic!("expected CONNACK, saw {other:?}"),
        }
    }

    /// Collects events until the connection closes or `t` elapses; returns them and whether
    /// the connection closed.
    pub async fn until_closed(&mut self, t: Duration) -> (Vec<Packet>, Option<String>) {
        let deadline = tokio::time::Instant::now() + t;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Seen::Incoming(p))) => seen.push(p),
                Ok(Some(Seen::Closed(e))) => return (seen, Some(e)),
                Ok(None) | Err(_) => return (seen, None),
            }
        }
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_platform-sim"))
}

/// One CA and one broker per test binary (rumqttd cannot be shut down, so tests of a binary
/// share them and use distinct gateway IDs).
pub struct Env {
    /// The CA's state directory.
    pub dir: tempfile::TempDir,
    /// The CA.
    pub ca: std::sync::Mutex<Ca>,
    /// The broker.
    pub broker: platform_sim::broker::MqttBroker,
}

/// The binary's shared [`Env`], started on first use.
pub fn env() -> &'static Env {
    static ENV: std::sync::OnceLock<Env> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let (dir, ca) = new_ca();
        let port = platform_sim::broker::free_loopback_port().unwrap();
        let broker =
            platform_sim::broker::start(&platform_sim::broker::BrokerSettings::from_ca(&ca, port))
                .unwrap();
        Env {
            dir,
            ca: std::sync::Mutex::new(ca),
            broker,
        }
    })
}
