//! The gateway's MQTT link (DES-MQTT-*): rumqttc over mutual TLS (rustls) to any MQTT 3.1.1
//! broker, as a task that turns the event loop into [`LinkEvent`]s for the driver.
//!
//! - Mutual TLS with the bundle's client certificate and the TLS trust anchor (DES-MQTT-1);
//!   client ID = gateway ID, clean session, keep-alive from the configuration (DES-MQTT-2,
//!   DES-MQTT-5); maximum packet size 1 MiB + 1 KiB both ways (DES-MQTT-7).
//! - After every (re)connection the link subscribes to the gateway's down tree (DES-MQTT-4)
//!   and reports [`LinkEvent::Up`] only once the subscription is acknowledged, so the core
//!   publishes `connect` after subscribing (DES-MQTT-8).
//! - A lost or refused connection is retried after the DES-MQTT-8 back-off (transport count
//!   (a)), reset after a connection that lasted 60 s.
//! - Nothing handed to the link while it is down reaches the next connection (DES-MSG-CONN-3:
//!   before the session the gateway sends nothing but `connect`): [`Link::publish`] refuses
//!   from the moment the connection is lost until the next subscription is acknowledged, and
//!   what was queued in rumqttc's request channel in the meantime is dropped before
//!   reconnecting (the new connection is a clean session, DES-MQTT-5, so rumqttc does not
//!   replay it). Without this a message sealed as the connection dropped went out on the next
//!   connection ahead of `SUBSCRIBE` and `connect`.
//!
//! Requirement IDs: IF-CONN-1, SM-TLS, SM-MUTUAL, SM-SESSION.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use rustls::client::WebPkiServerVerifier;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio::sync::mpsc;

use crate::broken::Variant;
use crate::protocol::flow::Backoff;
use crate::protocol::ids::GatewayId;
use crate::protocol::message::MAX_PAYLOAD_BYTES;
use crate::protocol::topic::gateway_subscription;

/// Largest MQTT packet either way: the 1 MiB payload plus topic and header (DES-MQTT-7).
pub const MAX_PACKET_BYTES: usize = MAX_PAYLOAD_BYTES + 1024;

/// Why the link could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// DES-MQTT-1: a PEM file of the TLS identity or trust anchor could not be read.
    #[error("DES-MQTT-1: {path}: {why}")]
    Pem {
        /// The file.
        path: String,
        /// What was wrong.
        why: String,
    },
    /// DES-MQTT-1: rustls refused the client configuration.
    #[error("DES-MQTT-1: TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The TLS part of the link's settings (paths of PEM files).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Trust anchor of the broker's certificate.
    pub ca: std::path::PathBuf,
    /// The gateway's TLS client certificate.
    pub cert: std::path::PathBuf,
    /// Its private key (owner-only file, SEC-CERT-3).
    pub key: std::path::PathBuf,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// This gateway (client ID, subscription).
    pub gateway: GatewayId,
    /// Broker host name (checked against its certificate).
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT keep-alive, seconds (DES-MQTT-5).
    pub keep_alive_sec: u64,
    /// TLS identity and trust anchor.
    pub tls: TlsFiles,
    /// Seed of the reconnect jitter (DES-MQTT-8).
    pub backoff_seed: u64,
    /// A deliberately broken gateway (the conformance suite's variants; none in operation).
    pub broken: crate::broken::Broken,
}

/// What the link reports to the driver.
#[derive(Debug)]
pub enum LinkEvent {
    /// Connected and subscribed: the core may send `connect`.
    Up,
    /// The connection is gone (the link retries by itself).
    Down(String),
    /// A message arrived.
    Publish {
        /// Its topic.
        topic: String,
        /// Its payload (not yet opened).
        payload: Vec<u8>,
        /// The retain flag (DES-MQTT-6).
        retain: bool,
    },
}

fn pem_err(path: &Path, why: impl ToString) -> LinkError {
    LinkError::Pem {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// The rustls client configuration of the link (and of the HTTPS client): the trust anchor and
/// the client identity from PEM files (DES-MQTT-1, DES-CERT-1).
pub fn client_config(tls: &TlsFiles) -> Result<ClientConfig, LinkError> {
    client_config_with_crl(tls, None)
}

/// As [`client_config`], the server's certificate also checked against `crl` (DER) when given
/// (DES-CERT-5: the HTTPS client, when the TLS and data-protection PKIs share their root).
pub fn client_config_with_crl(
    tls: &TlsFiles,
    crl: Option<Vec<u8>>,
) -> Result<ClientConfig, LinkError> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&tls.ca).map_err(|e| pem_err(&tls.ca, e))? {
        roots
            .add(c.map_err(|e| pem_err(&tls.ca, e))?)
            .map_err(|e| pem_err(&tls.ca, e))?;
    }
    if roots.is_empty() {
        return Err(pem_err(&tls.ca, "no certificate"));
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| pem_err(&tls.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(&tls.cert, e))?;
    if chain.is_empty() {
        return Err(pem_err(&tls.cert, "no certificate"));
    }
    // Never log key material: the error names the file only.
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|_| pem_err(&tls.key, "no key"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if let Some(der) = crl {
        verifier = verifier.with_crls([CertificateRevocationListDer::from(der)]);
    }
    let verifier = verifier.build().map_err(|e| pem_err(&tls.ca, e))?;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain, key)?)
}

/// A running link: publish through [`Link::publish`], events from [`Link::events`].
pub struct Link {
    client: AsyncClient,
    events: mpsc::Receiver<LinkEvent>,
    task: tokio::task::JoinHandle<()>,
    /// Connected and subscribed: set just before [`LinkEvent::Up`], cleared as soon as the
    /// connection is lost, before [`LinkEvent::Down`] (DES-MSG-CONN-3).
    up: Arc<AtomicBool>,
}

impl Link {
    /// Starts the link task; it connects at once and keeps reconnecting until dropped.
    pub fn start(settings: &LinkSettings) -> Result<Self, LinkError> {
        let tls = client_config(&settings.tls)?;
        let mut opts = MqttOptions::new(settings.gateway.as_str(), &settings.host, settings.port);
        opts.set_keep_alive(Duration::from_secs(settings.keep_alive_sec.max(5)));
        opts.set_clean_session(true);
        opts.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls),
        )));
        let (client, mut el) = AsyncClient::new(opts, 64);
        let (tx, events) = mpsc::channel(256);
        let sub_client = client.clone();
        let filter = gateway_subscription(&settings.gateway);
        let mut backoff = Backoff::new(settings.backoff_seed);
        let broken = settings.broken;
        let up = Arc::new(AtomicBool::new(false));
        let link_up = up.clone();
        let task = tokio::spawn(async move {
            let mut up_since: Option<Instant> = None;
            loop {
                let ev = match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        up_since = Some(Instant::now());
                        // Subscribe before anything is published (DES-MQTT-8); `Up` on SubAck.
                        if sub_client
                            .try_subscribe(filter.clone(), QoS::AtLeastOnce)
                            .is_err()
                        {
                            continue;
                        }
                        continue;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        link_up.store(true, Ordering::Release);
                        LinkEvent::Up
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => LinkEvent::Publish {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    },
                    Ok(_) => continue,
                    Err(e) => {
                        // From now on `publish` refuses (DES-MSG-CONN-3).
                        link_up.store(false, Ordering::Release);
                        if let Some(t) = up_since.take() {
                            let lasted = chrono::Duration::from_std(t.elapsed())
                                .unwrap_or(chrono::Duration::zero());
                            if !broken.is(Variant::ReconnectBackoffNeverResets) {
                                backoff.session_ended(lasted);
                            }
                        }
                        if tx.send(LinkEvent::Down(e.to_string())).await.is_err() {
                            return;
                        }
                        let mut d = backoff.failed().to_std().unwrap_or(Duration::from_secs(1));
                        if broken.is(Variant::ReconnectAtOnce) {
                            d = Duration::from_millis(50);
                        }
                        tracing::warn!(rule = "DES-MQTT-8", error = %e, retry_in_ms = d.as_millis() as u64, "MQTT link down");
                        tokio::time::sleep(d).await;
                        // A publish that passed the check just before the connection was lost
                        // may have entered the request channel after rumqttc drained it: drain
                        // it again; the clean session's CONNACK discards what was drained.
                        el.clean();
                        continue;
                    }
                };
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            client,
            events,
            task,
            up,
        })
    }

    /// Publishes at QoS 1, not retained (DES-MQTT-6). Refused while the link is not up — from
    /// the loss of the connection (even before [`LinkEvent::Down`] is read) until the next
    /// [`LinkEvent::Up`] — so that nothing but `connect` opens the next session
    /// (DES-MSG-CONN-3); the core sends again what needs it after the reconnect.
    pub async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), String> {
        if !self.up.load(Ordering::Acquire) {
            return Err("DES-MSG-CONN-3: the MQTT link is down: not published".into());
        }
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| e.to_string())
    }

    /// The next event; `None` once the link task ended.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }

    /// Sends MQTT DISCONNECT (after the protocol's `disconnect`, DES-MSG-DISC-1).
    pub async fn close(&self) {
        let _ = self.client.disconnect().await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}
