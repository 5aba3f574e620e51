//! The platform's MQTT broker: embedded rumqttd 0.20 with mutual TLS and per-gateway topic
//! isolation, plus the platform's in-process link (SM-TLS, SM-MUTUAL, SM-ACL, SM-ID,
//! DES-MQTT-*).
//!
//! # How it is put together
//! rumqttd's `Broker::start` blocks and owns the broker, after which no further
//! `Broker::link` is possible. So this module assembles the same parts rumqttd's `Broker` does:
//! a [`rumqttd::Router`] (spawned on its own thread), one v4 [`rumqttd::Server`] listener run on
//! a dedicated `std::thread` with a current-thread tokio runtime, and a link factory holding
//! the router's channel so the platform can open in-process links at any time
//! ([`MqttBroker::platform_link`], [`MqttBroker::kick`]).
//!
//! Gateways do not reach rumqttd's listener directly: the TLS front ([`front`], own thread)
//! listens on the broker's address, terminates the gateways' mutual TLS with a handshake
//! deadline and the CA's current CRL, and relays each accepted client to rumqttd's internal
//! listener (loopback, its own port) over a second mutual-TLS connection whose certificate
//! carries the client's tenant. So a revoked gateway is refused **at the TLS handshake**
//! (DES-CERT-5), and a silent or slow client cannot stall anyone else (SM-SESSION).
//!
//! MQTT 3.1.1 over TLS. With the crate features `use-rustls` + `validate-tenant-prefix` (which
//! implies `verify-client-cert`) rumqttd takes the subject O of the (tenant) certificate as the
//! client's *tenant*: its client ID becomes `{O}.{clientId}` and every publish topic and
//! subscribe filter must start with `/tenants/{O}/`. The front gives rumqttd a tenant
//! certificate with the O of the gateway's own certificate; provisioned gateways have
//! O = CN = gateway ID, so a gateway is confined to `/tenants/{gatewayId}/…` (DES-MQTT-3). The
//! platform link has no tenant and subscribes `/tenants/+/sgw/v1/up/#`.
//!
//! # What rumqttd does on an ACL violation (observed, see `tests/broker_acl.rs`)
//! A publish outside the tenant prefix fails `append_to_commitlog` with `BadTenant`; the router
//! then *disconnects the client*. For QoS 1 the PUBACK is queued before the check; whether the
//! client still sees it before the connection drops is timing-dependent, so a PUBACK is not a
//! proof of delivery. A subscribe outside the prefix fails `validate_subscription`; no SUBACK
//! is sent and the client is disconnected. In both cases nothing is delivered to anyone.
//!
//! # rumqttd's limits, and where the simulator enforces instead
//! - **Blocking start, no shutdown**: listener threads live until the process exits, so one
//!   broker per process (tests share one broker per test binary, with distinct gateway IDs).
//! - **No port 0**: the internal listener's bound address cannot be read back;
//!   [`free_loopback_port`] probes a free port (bind-then-drop; a small race remains).
//! - **No CRL at the broker**: rumqttd builds its client verifier without CRLs. Enforced by the
//!   front instead (the CRL of the CA directory, re-read at every handshake), and behind it by
//!   the platform, which refuses messages of revoked gateways ([`Inbound::admit`] with
//!   [`crate::ca::Ca::is_gateway_revoked`]) and kicks a connected gateway at revocation
//!   ([`MqttBroker::kick`], by taking over its client ID `{gw}.{gw}`; works for gateways that
//!   use their gateway ID as MQTT client ID, DES-MQTT-2): a session open before the
//!   revocation is not closed by the front.
//! - **First CA only**: rumqttd trusts only the first certificate of its CA file (the front's
//!   internal anchor); the front trusts the CA's root.
//! - **Tenant from subject O only**: the CN is not checked by rumqttd, and the tenant is not
//!   tied to the MQTT client ID. The platform side checks envelope gateway ID == topic
//!   tenant == certificate identity (the topic tenant *is* the certificate O, by the prefix
//!   rule) when it opens a message ([`Inbound::admit`], called by the protocol layer).
//! - **One silent TCP connection stalls rumqttd's listener**: its accept loop awaits each TLS
//!   handshake before accepting the next connection, with no handshake timeout. Only the front
//!   connects to that listener, and it completes its handshakes promptly; clients meet the
//!   front, where each handshake is its own task with a deadline (`tests/broker_limits.rs`).
//! - **Files re-read per connection**: the front (and rumqttd) re-read the TLS files for every
//!   connection, so replacing them (or a new CRL) takes effect for new connections.
//! - rumqttd brings its own rustls 0.22, which is why its TLS takes PEM file paths only.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::protocol::ids::GatewayId;
use gateway::protocol::topic::{parse_topic, platform_subscription};
use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::{ConnectionSettings, Notification, RouterConfig, ServerSettings, TlsConfig};

use crate::ca::Ca;

mod front;
mod ports;

use ports::free_ports;
pub use ports::{REGISTRY_FILE, RESERVED_FOR};

pub use front::{CONNECTS_KEPT, ConnectFacts, PublishCounts, parse_connect};

/// Largest MQTT payload the broker accepts (DES-MQTT-7: 1 MiB) plus room for the topic/header.
pub const MAX_PACKET_BYTES: usize = 1024 * 1024 + 4096;

/// Why the broker could not start or a link failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// SM-TLS: a TLS file (CA, certificate, key) is missing.
    #[error("SM-TLS: missing TLS file {0}")]
    TlsFile(PathBuf),
    /// SM-PORTS: the listener did not come up on the chosen loopback port.
    #[error("SM-PORTS: MQTT listener on {0} did not start: {1}")]
    Listen(SocketAddr, String),
    /// DES-MQTT-4: the in-process platform link failed.
    #[error("DES-MQTT-4: platform link: {0}")]
    Link(String),
}

impl From<LinkError> for BrokerError {
    fn from(e: LinkError) -> Self {
        BrokerError::Link(e.to_string())
    }
}

/// A free TCP port on 127.0.0.1 for a listener started later (rumqttd cannot report the port
/// of a port-0 listener; a bundle names its FTP port). Below the kernel's ephemeral range, so
/// that no outgoing connection is given it before the listener binds it (a port from a port-0
/// probe could be: the probable cause of a gateway that did not listen for FTP once in ten full
/// conformance runs, two at a time), and apart from the passive ranges of
/// [`free_loopback_range`], so that a bundle's control port never falls into its own passive
/// range (DES-FTP-1). Reserved against every other draw on the machine for [`RESERVED_FOR`]
/// (module `ports`: a port free when drawn is bound only later).
pub fn free_loopback_port() -> std::io::Result<u16> {
    free_ports(1, 20_000..26_000)
}

/// The first of `n` consecutive loopback ports that are all free now, below the kernel's
/// ephemeral range (so that no outgoing connection is given one of them meanwhile) and apart
/// from [`free_loopback_port`]'s: for FTP passive ranges, which several gateways on one
/// machine must not share. Reserved as [`free_loopback_port`]'s.
pub fn free_loopback_range(n: u16) -> std::io::Result<u16> {
    free_ports(n, 26_000..32_000)
}

/// Where and with what the broker listens.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Listen address (loopback).
    pub listen: SocketAddr,
    /// CA file: the first certificate is the only trust anchor for client certificates.
    pub ca: PathBuf,
    /// Server certificate (SAN localhost, 127.0.0.1).
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// The CA's current CRL (DER), re-read at every handshake (DES-CERT-5).
    pub crl: PathBuf,
    /// Longest time a client's TLS handshake may take before the connection is dropped
    /// (SM-SESSION; default [`crate::https::HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Duration,
}

impl BrokerSettings {
    /// Settings from the simulator's CA on `127.0.0.1:port`.
    pub fn from_ca(ca: &Ca, port: u16) -> Self {
        let (cert, key) = ca.tls_server_paths();
        BrokerSettings {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            ca: ca.root_path(),
            cert,
            key,
            crl: ca.dir().join("crl.der"),
            handshake_timeout: crate::https::HANDSHAKE_TIMEOUT,
        }
    }
}

type LinkFactory = dyn Fn(&str) -> Result<(LinkTx, LinkRx), BrokerError> + Send + Sync;

/// A running broker (lives until the process exits; see the module doc).
#[derive(Clone)]
pub struct MqttBroker {
    addr: SocketAddr,
    links: Arc<LinkFactory>,
    connects: Arc<std::sync::Mutex<Vec<(front::ConnectFacts, std::time::Instant)>>>,
    outages: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
    publishes: Arc<std::sync::Mutex<std::collections::HashMap<String, front::PublishCounts>>>,
}

impl std::fmt::Debug for MqttBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttBroker")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn path_string(p: &std::path::Path) -> Result<String, BrokerError> {
    if !p.exists() {
        return Err(BrokerError::TlsFile(p.to_owned()));
    }
    Ok(p.to_string_lossy().into_owned())
}

/// Starts the router, rumqttd's internal mutual-TLS v4 listener and the TLS front on
/// `settings.listen`, and waits until both accept TCP connections (at most 10 s).
pub fn start(settings: &BrokerSettings) -> Result<MqttBroker, BrokerError> {
    for p in [&settings.ca, &settings.cert, &settings.key, &settings.crl] {
        path_string(p)?;
    }
    let internal = SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        free_loopback_port().map_err(|e| BrokerError::Listen(settings.listen, e.to_string()))?,
    ));
    let front = front::FrontSettings {
        root: settings.ca.clone(),
        cert: settings.cert.clone(),
        key: settings.key.clone(),
        crl: settings.crl.clone(),
        internal,
        handshake_timeout: settings.handshake_timeout,
        connects: Arc::default(),
        outages: Arc::default(),
        publishes: Arc::default(),
    };
    let connects = front.connects.clone();
    let outages = front.outages.clone();
    let publishes = front.publishes.clone();
    let anchor = front.anchor_path();
    front::spawn(settings.listen, front)?;
    let tls = TlsConfig::Rustls {
        capath: Some(path_string(&anchor)?),
        certpath: path_string(&settings.cert)?,
        keypath: path_string(&settings.key)?,
    };
    let router_config = RouterConfig {
        max_connections: 1000,
        max_outgoing_packet_count: 200,
        max_segment_size: 16 * 1024 * 1024,
        max_segment_count: 10,
        ..RouterConfig::default()
    };
    let server = ServerSettings {
        name: "sgw-v4-mtls-internal".into(),
        listen: internal,
        tls: Some(tls),
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: MAX_PACKET_BYTES,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            // Without dynamic filters rumqttd disconnects a client publishing on a topic no
            // one subscribes to yet (NoMatchingFilters).
            dynamic_filters: true,
        },
    };
    let router_tx = rumqttd::Router::new(0, router_config).spawn();
    let listener_tx = router_tx.clone();
    let listen = internal;
    on_own_thread("sgw-mqtt-listener", listen, move || async move {
        let mut server = rumqttd::Server::new(server, listener_tx, rumqttd::protocol::v4::V4);
        if let Err(e) = server.start(rumqttd::LinkType::Remote).await {
            tracing::error!(error = %e, %listen, "MQTT listener stopped");
        }
    })?;
    let links: Arc<LinkFactory> = Arc::new(move |client_id: &str| {
        let (tx, rx, _ack) = LinkBuilder::new(client_id, router_tx.clone())
            .dynamic_filters(true)
            .clean_session(true)
            .build()
            .map_err(BrokerError::from)?;
        Ok((tx, rx))
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Where the kernel's socket table is readable (Linux), look for the listening socket:
        // a probe connection would make rumqttd log a failed TLS accept at every start.
        // Elsewhere a plain TCP connect proves the listener is up.
        let up = match listening(listen.port()) {
            Some(up) => up,
            None => TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok(),
        };
        if up {
            break;
        }
        if Instant::now() > deadline {
            return Err(BrokerError::Listen(
                listen,
                "not listening after 10 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(MqttBroker {
        addr: settings.listen,
        links,
        connects,
        outages,
        publishes,
    })
}

/// Runs `task` on a thread of its own with a current-thread tokio runtime: the broker's parts
/// live until the process exits, whatever runtime started them.
fn on_own_thread<F, Fut>(name: &str, listen: SocketAddr, task: F) -> Result<(), BrokerError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let thread = name.to_owned();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(task()),
                Err(e) => tracing::error!(error = %e, %thread, "broker runtime"),
            }
        })
        .map(|_| ())
        .map_err(|e| BrokerError::Listen(listen, e.to_string()))
}

/// Whether a TCP socket listens on `port` (from `/proc/net/tcp{,6}`); `None` if unreadable.
fn listening(port: u16) -> Option<bool> {
    let mut any = None;
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        any = Some(false);
        let found = text.lines().skip(1).any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // local_address is ADDR:PORT (hex); st 0A is LISTEN.
            cols.get(3) == Some(&"0A")
                && cols
                    .get(1)
                    .and_then(|a| a.rsplit_once(':'))
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        });
        if found {
            return Some(true);
        }
    }
    any
}

impl MqttBroker {
    /// The MQTT CONNECT packets clients sent through the TLS front, oldest first (the last
    /// [`front::CONNECTS_KEPT`]): what a gateway's session asked for (DES-MQTT-1/2/5).
    pub fn connects(&self) -> Vec<front::ConnectFacts> {
        self.connects_timed().into_iter().map(|(f, _)| f).collect()
    }

    /// [`Self::connects`] with the time the front read each CONNECT.
    pub fn connects_timed(&self) -> Vec<(front::ConnectFacts, std::time::Instant)> {
        self.connects.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The PUBLISH packets the clients of `tenant` sent through the TLS front, by QoS and
    /// retain flag (DES-MQTT-6).
    pub fn publishes(&self, tenant: &str) -> front::PublishCounts {
        self.publishes
            .lock()
            .ok()
            .and_then(|p| p.get(tenant).copied())
            .unwrap_or_default()
    }

    /// The listener address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A raw in-process link (no tenant, dynamic filters) with the given client ID.
    pub fn link(&self, client_id: &str) -> Result<(LinkTx, LinkRx), BrokerError> {
        (self.links)(client_id)
    }

    /// The platform's link, subscribed to every gateway's uplink (`/tenants/+/sgw/v1/up/#`).
    pub fn platform_link(&self, client_id: &str) -> Result<PlatformLink, BrokerError> {
        let (mut tx, rx) = self.link(client_id)?;
        tx.subscribe(platform_subscription())?;
        Ok(PlatformLink { tx, rx })
    }

    /// A platform link subscribed to `filter` instead (e.g. one gateway's
    /// `/tenants/{gw}/sgw/v1/up/#`, so several platform runtimes can share one broker in tests).
    pub fn platform_link_with(
        &self,
        client_id: &str,
        filter: &str,
    ) -> Result<PlatformLink, BrokerError> {
        let (mut tx, rx) = self.link(client_id)?;
        tx.subscribe(filter)?;
        Ok(PlatformLink { tx, rx })
    }

    /// Disconnects the gateway's MQTT session, if it is connected with client ID = gateway ID:
    /// an in-process link takes over the client ID `{gw}.{gw}` (rumqttd drops the previous
    /// connection of a duplicate client ID) and then disconnects itself. A revoked gateway's
    /// reconnects are refused by the TLS front (the CA's new CRL).
    pub fn kick(&self, gw: &GatewayId) -> Result<(), BrokerError> {
        let (tx, rx) = self.link(&format!("{gw}.{gw}"))?;
        drop(tx);
        drop(rx);
        Ok(())
    }

    /// The broker restarts as gateway `gw` sees it: its connection is cut ([`Self::kick`])
    /// and the TLS front closes its next `refusals` connections unanswered once their CONNECT
    /// is read (kept with [`front::ConnectFacts::refused`]), as a TLS front does while the
    /// broker behind it restarts. What the platform publishes to the gateway meanwhile is
    /// lost (clean session, DES-MQTT-5). Other tenants are not touched.
    pub fn restart_for(&self, gw: &GatewayId, refusals: u32) -> Result<(), BrokerError> {
        self.refuse_connections(gw, refusals);
        self.kick(gw)
    }

    /// The TLS front closes the next `n` connections of gateway `gw` unanswered once their
    /// CONNECT is read ([`Self::restart_for`] without the cut: a broker restarting as the
    /// gateway starts).
    pub fn refuse_connections(&self, gw: &GatewayId, n: u32) {
        if let Ok(mut all) = self.outages.lock() {
            all.insert(gw.as_str().to_owned(), n);
        }
    }
}

/// A message received by the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The topic as published.
    pub topic: String,
    /// The tenant (gateway) named by the topic, which rumqttd guarantees is the subject O of the
    /// publisher's certificate; `None` if the topic is outside the SGW tree.
    pub gateway: Option<GatewayId>,
    /// The payload (a JWE compact, DES-SEAL).
    pub payload: Vec<u8>,
}

/// Why the platform refuses an inbound message before opening it (SM-ACL, SM-ID, SEC-CERT-2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// DES-MQTT-3: the topic is not `/tenants/{gw}/sgw/v1/up/{type}`.
    #[error("DES-MQTT-3: topic {0:?} is not an uplink topic of the SGW tree")]
    Topic(String),
    /// SEC-CERT-2: the gateway's certificates are revoked; its messages are refused.
    #[error("SEC-CERT-2: gateway {0} is revoked")]
    Revoked(GatewayId),
    /// SM-ID: the envelope names another gateway than the topic tenant (= certificate O).
    #[error("SM-ID: envelope gateway {envelope} differs from topic tenant {tenant}")]
    GatewayMismatch {
        /// The tenant of the topic, i.e. the publisher's certificate O.
        tenant: GatewayId,
        /// The gateway ID inside the envelope.
        envelope: GatewayId,
    },
}

impl Inbound {
    /// The platform's admission check, which stands in for what rumqttd cannot do: the topic is
    /// an uplink of the tree, its tenant (rumqttd guarantees: the publisher's certificate O) is
    /// not revoked (`revoked`, e.g. [`Ca::is_gateway_revoked`]), and, once the envelope is
    /// opened, the envelope's gateway ID equals that tenant. Pass `envelope = None` before
    /// opening, then again with the envelope's gateway ID.
    pub fn admit(
        &self,
        envelope: Option<&GatewayId>,
        revoked: impl Fn(&GatewayId) -> bool,
    ) -> Result<GatewayId, Refusal> {
        let parsed = parse_topic(&self.topic).map_err(|_| Refusal::Topic(self.topic.clone()))?;
        if parsed.direction != gateway::protocol::message::Direction::Up {
            return Err(Refusal::Topic(self.topic.clone()));
        }
        let tenant = parsed.gateway;
        if revoked(&tenant) {
            return Err(Refusal::Revoked(tenant));
        }
        match envelope {
            Some(e) if *e != tenant => Err(Refusal::GatewayMismatch {
                tenant,
                envelope: e.clone(),
            }),
            _ => Ok(tenant),
        }
    }
}

/// The platform's in-process MQTT link.
pub struct PlatformLink {
    tx: LinkTx,
    rx: LinkRx,
}

impl std::fmt::Debug for PlatformLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformLink").finish_non_exhaustive()
    }
}

impl PlatformLink {
    /// The next publish received (acks and other notifications are skipped).
    pub async fn next_inbound(&mut self) -> Result<Inbound, BrokerError> {
        loop {
            match self.rx.next().await? {
                Some(Notification::Forward(f)) => {
                    let topic = String::from_utf8_lossy(&f.publish.topic).into_owned();
                    let gateway = parse_topic(&topic).ok().map(|p| p.gateway);
                    return Ok(Inbound {
                        topic,
                        gateway,
                        payload: f.publish.payload.to_vec(),
                    });
                }
                Some(Notification::Disconnect(..)) => {
                    return Err(BrokerError::Link("disconnected by the router".into()));
                }
                Some(_) | None => continue,
            }
        }
    }

    /// Publishes `payload` on `topic` (delivered to subscribers at their subscription QoS).
    pub fn publish(&mut self, topic: &str, payload: Vec<u8>) -> Result<(), BrokerError> {
        self.tx.publish(topic.to_owned(), payload)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(s: &str) -> GatewayId {
        GatewayId::new(s).unwrap()
    }

    fn inbound(topic: &str) -> Inbound {
        Inbound {
            topic: topic.into(),
            gateway: parse_topic(topic).ok().map(|p| p.gateway),
            payload: vec![],
        }
    }

    #[test]
    fn an_uplink_of_a_live_gateway_with_a_matching_envelope_is_admitted() {
        let m = inbound("/tenants/GW1/sgw/v1/up/data");
        assert_eq!(m.admit(None, |_| false), Ok(gw("GW1")));
        assert_eq!(m.admit(Some(&gw("GW1")), |_| false), Ok(gw("GW1")));
    }

    #[test]
    fn a_revoked_tenant_is_refused_even_with_a_matching_envelope() {
        let m = inbound("/tenants/GW1/sgw/v1/up/data");
        let r = m.admit(Some(&gw("GW1")), |g| g.as_str() == "GW1");
        assert_eq!(r, Err(Refusal::Revoked(gw("GW1"))));
        assert_eq!(m.admit(None, |g| g.as_str() == "GW2"), Ok(gw("GW1")));
    }

    #[test]
    fn an_envelope_naming_another_gateway_is_refused() {
        let m = inbound("/tenants/GW1/sgw/v1/up/data");
        assert_eq!(
            m.admit(Some(&gw("GW2")), |_| false),
            Err(Refusal::GatewayMismatch {
                tenant: gw("GW1"),
                envelope: gw("GW2")
            })
        );
    }

    #[test]
    fn downlink_and_foreign_topics_are_refused() {
        for t in [
            "/tenants/GW1/sgw/v1/down/periodic.start",
            "/tenants/GW1/other",
            "/tenants/GW-1/sgw/v1/up/data",
        ] {
            assert!(
                matches!(inbound(t).admit(None, |_| false), Err(Refusal::Topic(_))),
                "{t}"
            );
        }
    }
}
