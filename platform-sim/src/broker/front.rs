//! The broker's TLS front (SM-TLS, SM-MUTUAL, SM-SESSION, SEC-CERT-2, DES-CERT-5, DES-MQTT-9):
//! it terminates the gateways' mutual TLS in front of rumqttd, which can neither check a CRL
//! nor bound a handshake.
//!
//! # What it does for each connection
//! Every accepted TCP connection is its own task, so a silent or slow client holds only its
//! own task, never the listener.
//! 1. TLS handshake (rustls 0.23, aws-lc-rs) within the handshake deadline
//!    ([`super::BrokerSettings::handshake_timeout`]), else the connection is dropped. The client
//!    certificate must chain to the root and must not be revoked by the CRL **read at this
//!    handshake** from the CA's `crl.der` ([`super::BrokerSettings::crl`]): a revocation, also
//!    one made by another process (`platform-sim revoke`), refuses the gateway's next
//!    handshake. An unreadable CRL refuses every client (fail closed).
//! 2. Tenant: the client certificate's subject O, which must be present and alphanumeric (the
//!    rule rumqttd applies to a direct client).
//! 3. A second mutual-TLS connection to rumqttd's internal listener (loopback, own port, same
//!    deadline), presenting a *tenant certificate* with subject O = CN = that tenant. rumqttd's
//!    `validate-tenant-prefix` therefore confines the client to `/tenants/{O}/` exactly as if
//!    it had connected directly (DES-MQTT-3), and kicks by client ID keep working.
//! 4. The client's first MQTT packet is read (within the same deadline) and, if it is a
//!    CONNECT, what it says is kept ([`ConnectFacts`], DES-MQTT-1/2/5: what the conformance
//!    suite checks of a gateway's session); the packet is passed on unchanged whatever it is.
//! 5. Bytes are copied both ways until either side closes.
//!
//! A fault for the conformance suite, per tenant: while the broker behind the front "restarts"
//! for a tenant ([`super::MqttBroker::restart_for`]), step 3 is replaced by reading the CONNECT
//! (kept, marked refused) and closing the connection unanswered.
//!
//! # The internal anchor
//! Tenant certificates are issued by an internal anchor made from the broker's own TLS server
//! key (no new key material; the key never leaves the process): self-signed, fixed name and
//! validity, written next to the server certificate as `{stem}.front-anchor.pem` (public),
//! where rumqttd's internal listener reads it as its only client trust anchor. A real gateway
//! certificate connecting to the internal port directly is refused there, and a tenant
//! certificate cannot be had without the server key. Brokers sharing one CA directory write
//! the same anchor (same key, same name, deterministic RSA signature).
//!
//! All files (root, server certificate and key, CRL) are re-read for every connection; the
//! TLS configurations are rebuilt only when their bytes changed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::RootCertStore;
use rustls::client::ClientConfig;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

use super::BrokerError;

/// Files and addresses of the front.
#[derive(Debug, Clone)]
pub(super) struct FrontSettings {
    pub root: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub crl: PathBuf,
    /// rumqttd's internal listener.
    pub internal: SocketAddr,
    pub handshake_timeout: Duration,
    /// The CONNECT packets seen, oldest first, with when each was read (at most
    /// [`CONNECTS_KEPT`]).
    pub connects: Arc<Mutex<Vec<(ConnectFacts, Instant)>>>,
    /// Per tenant, how many of its next connections are closed once their CONNECT is read:
    /// the broker behind the front restarting ([`super::MqttBroker::restart_for`]).
    pub outages: Arc<Mutex<HashMap<String, u32>>>,
    /// Per tenant, the PUBLISH packets its clients sent.
    pub publishes: Arc<Mutex<HashMap<String, PublishCounts>>>,
}

/// How many PUBLISH packets of a tenant's clients the front saw, by QoS, and how many had the
/// retain flag (DES-MQTT-6: QoS 1, retain false).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishCounts {
    /// By QoS 0, 1, 2 (3 is malformed: counted as 2).
    pub by_qos: [u64; 3],
    /// With the retain flag set.
    pub retained: u64,
}

impl PublishCounts {
    fn count(&mut self, qos: u8, retain: bool) {
        self.by_qos[usize::from(qos.min(2))] += 1;
        self.retained += u64::from(retain);
    }
}

/// How many CONNECT packets the front remembers.
pub const CONNECTS_KEPT: usize = 1000;

/// What a client's MQTT CONNECT packet said (MQTT 3.1.1 §3.1), as the TLS front saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFacts {
    /// The tenant of the client certificate (subject O).
    pub tenant: String,
    /// The protocol level (4: MQTT 3.1.1).
    pub level: u8,
    /// The client identifier.
    pub client_id: String,
    /// The clean-session flag.
    pub clean_session: bool,
    /// The keep-alive in seconds.
    pub keep_alive_sec: u16,
    /// A will message is set.
    pub will: bool,
    /// A user name is present.
    pub username: bool,
    /// A password is present.
    pub password: bool,
    /// The front closed the connection unanswered after reading it: the broker was restarting
    /// for this tenant ([`super::MqttBroker::restart_for`]).
    pub refused: bool,
}

/// Reads one MQTT packet (fixed header, remaining length, body) from `r`, at most
/// `MAX_PACKET_BYTES` long: its bytes.
async fn read_packet(r: &mut (impl tokio::io::AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut out = vec![r.read_u8().await?];
    let (mut len, mut shift) = (0usize, 0u32);
    loop {
        let b = r.read_u8().await?;
        out.push(b);
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(std::io::Error::other("MQTT remaining length over 4 bytes"));
        }
    }
    if len > crate::broker::MAX_PACKET_BYTES {
        return Err(std::io::Error::other("MQTT packet over the limit"));
    }
    let start = out.len();
    out.resize(start + len, 0);
    r.read_exact(&mut out[start..]).await?;
    Ok(out)
}

/// The facts of `packet` if it is a well-formed MQTT 3.1.1 CONNECT.
pub fn parse_connect(tenant: &str, packet: &[u8]) -> Option<ConnectFacts> {
    if packet.first()? >> 4 != 1 {
        return None;
    }
    let mut i = 1;
    while packet.get(i)? & 0x80 != 0 {
        i += 1;
    }
    let mut rest = packet.get(i + 1..)?;
    let string = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let n = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let s = rest.get(2..2 + n)?.to_vec();
        *rest = rest.get(2 + n..)?;
        Some(s)
    };
    // The protocol name (`MQTT`); the level says which version.
    string(&mut rest)?;
    let level = *rest.first()?;
    let flags = *rest.get(1)?;
    let keep_alive_sec = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]);
    rest = rest.get(4..)?;
    let client_id = String::from_utf8(string(&mut rest)?).ok()?;
    Some(ConnectFacts {
        tenant: tenant.to_owned(),
        level,
        client_id,
        clean_session: flags & 0x02 != 0,
        keep_alive_sec,
        will: flags & 0x04 != 0,
        username: flags & 0x80 != 0,
        password: flags & 0x40 != 0,
        refused: false,
    })
}

impl FrontSettings {
    /// Keeps what a CONNECT said, with the time it was read.
    fn keep(&self, facts: ConnectFacts) {
        if let Ok(mut seen) = self.connects.lock() {
            seen.push((facts, Instant::now()));
            let over = seen.len().saturating_sub(CONNECTS_KEPT);
            seen.drain(..over);
        }
    }

    /// Whether the next connection of `tenant` is to be refused (and counts it).
    fn refuse_next(&self, tenant: &str) -> bool {
        let Ok(mut all) = self.outages.lock() else {
            return false;
        };
        match all.get_mut(tenant) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Where the internal anchor is written (next to the server certificate).
    pub fn anchor_path(&self) -> PathBuf {
        let stem = self
            .cert
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "broker".into());
        self.cert.with_file_name(format!("{stem}.front-anchor.pem"))
    }
}

/// Why one connection was not relayed.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// SEC-CERT-2: a TLS file or the CRL could not be read or parsed: every client is refused.
    #[error("SEC-CERT-2: TLS material: {0}")]
    Material(String),
    /// SM-ACL: the client certificate has no subject O or a non-alphanumeric one.
    #[error("SM-ACL: client certificate subject O {0:?} is not an alphanumeric tenant")]
    Tenant(Option<String>),
}

/// The bytes of every file the configurations are made from.
#[derive(PartialEq, Eq)]
struct Material {
    root: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
    crl: Vec<u8>,
}

/// Configurations built from one [`Material`].
struct Built {
    material: Material,
    server: Arc<ServerConfig>,
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Tenant → client configuration towards rumqttd's internal listener.
    tenants: HashMap<String, Arc<ClientConfig>>,
}

struct Front {
    settings: FrontSettings,
    built: Mutex<Option<Built>>,
}

fn read(p: &std::path::Path) -> Result<Vec<u8>, Refused> {
    std::fs::read(p).map_err(|e| Refused::Material(format!("{}: {e}", p.display())))
}

fn material_err(what: &str) -> impl FnOnce(String) -> Refused + '_ {
    move |e| Refused::Material(format!("{what}: {e}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(root_pem: &[u8]) -> Result<RootCertStore, Refused> {
    let mut roots = RootCertStore::empty();
    let root = CertificateDer::from_pem_slice(root_pem)
        .map_err(|e| material_err("root")(e.to_string()))?;
    roots
        .add(root)
        .map_err(|e| material_err("root")(e.to_string()))?;
    Ok(roots)
}

fn key_pem(m: &Material) -> Result<&str, Refused> {
    std::str::from_utf8(&m.key).map_err(|e| material_err("server key")(e.to_string()))
}

fn build(material: Material) -> Result<Built, Refused> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&material.root)?), provider())
            .with_crls(vec![CertificateRevocationListDer::from(
                material.crl.clone(),
            )])
            .build()
            .map_err(|e| material_err("client verifier (root, CRL)")(e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&material.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| material_err("server certificate")(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&material.key)
        .map_err(|e| material_err("server key")(e.to_string()))?;
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| material_err("TLS versions")(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| material_err("server configuration")(e.to_string()))?;
    let signing = KeyPair::from_pem(key_pem(&material)?)
        .map_err(|e| material_err("server key")(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name("SGW broker front anchor", None);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    fixed_validity(&mut params, 1);
    let issuer = CertifiedIssuer::self_signed(params, signing)
        .map_err(|e| material_err("internal anchor")(e.to_string()))?;
    Ok(Built {
        material,
        server: Arc::new(server),
        issuer,
        tenants: HashMap::new(),
    })
}

fn name(cn: &str, o: Option<&str>) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    if let Some(o) = o {
        d.push(DnType::OrganizationName, o);
    }
    d.push(DnType::CommonName, cn);
    d
}

/// Fixed validity and serial: the anchor is the same bytes for every broker with this key.
fn fixed_validity(p: &mut CertificateParams, serial: u64) {
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2100, 1, 1);
    p.serial_number = Some(SerialNumber::from(serial));
}

impl Front {
    /// The current configurations (rebuilt, and the anchor rewritten, if any file changed).
    fn with_built<T>(
        &self,
        f: impl FnOnce(&mut Built) -> Result<T, Refused>,
    ) -> Result<T, Refused> {
        let s = &self.settings;
        let material = Material {
            root: read(&s.root)?,
            cert: read(&s.cert)?,
            key: read(&s.key)?,
            crl: read(&s.crl)?,
        };
        let mut guard = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|b| b.material != material) {
            let built = build(material)?;
            crate::ca::write_public(&s.anchor_path(), built.issuer.pem().as_bytes())
                .map_err(|e| Refused::Material(e.to_string()))?;
            *guard = Some(built);
        }
        match guard.as_mut() {
            Some(b) => f(b),
            None => Err(Refused::Material("no configuration".into())),
        }
    }

    fn server_config(&self) -> Result<Arc<ServerConfig>, Refused> {
        self.with_built(|b| Ok(b.server.clone()))
    }

    fn tenant_config(&self, tenant: &str) -> Result<Arc<ClientConfig>, Refused> {
        self.with_built(|b| {
            if let Some(c) = b.tenants.get(tenant) {
                return Ok(c.clone());
            }
            let key = key_pem(&b.material)?;
            let public =
                KeyPair::from_pem(key).map_err(|e| material_err("server key")(e.to_string()))?;
            let mut params = CertificateParams::default();
            params.distinguished_name = name(tenant, Some(tenant));
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            fixed_validity(&mut params, 2);
            let cert = params
                .signed_by(&public, &b.issuer)
                .map_err(|e| material_err("tenant certificate")(e.to_string()))?;
            let key = PrivateKeyDer::from_pem_slice(&b.material.key)
                .map_err(|e| material_err("server key")(e.to_string()))?;
            let cfg = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| material_err("TLS versions")(e.to_string()))?
                .with_root_certificates(roots(&b.material.root)?)
                .with_client_auth_cert(vec![cert.der().clone()], key)
                .map_err(|e| material_err("tenant client configuration")(e.to_string()))?;
            let cfg = Arc::new(cfg);
            b.tenants.insert(tenant.to_owned(), cfg.clone());
            Ok(cfg)
        })
    }
}

/// The tenant of a verified client certificate: its subject O, present and alphanumeric.
fn tenant_of(der: &[u8]) -> Result<String, Refused> {
    let o = crate::https::ClientIdentity::from_der(der).and_then(|i| i.organization);
    match o {
        Some(o) if !o.is_empty() && o.chars().all(char::is_alphanumeric) => Ok(o),
        other => Err(Refused::Tenant(other)),
    }
}

/// Binds the front's listener (so the address is in use when [`super::start`] returns) and
/// serves it on a thread of its own.
pub(super) fn spawn(listen: SocketAddr, settings: FrontSettings) -> Result<(), BrokerError> {
    let std_listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| BrokerError::Listen(listen, e.to_string()))?;
    let front = Arc::new(Front {
        settings,
        built: Mutex::new(None),
    });
    // Build once now, so that bad material fails the start and rumqttd finds its anchor.
    front
        .server_config()
        .map_err(|e| BrokerError::Listen(listen, e.to_string()))?;
    super::on_own_thread("sgw-mqtt-front", listen, move || async move {
        let listener = match TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, %listen, "MQTT TLS front listener");
                return;
            }
        };
        loop {
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    tokio::spawn(relay(front.clone(), tcp, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "MQTT accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })?;
    Ok(())
}

/// One client connection: handshake, tenant, upstream, copy.
async fn relay(front: Arc<Front>, tcp: TcpStream, peer: SocketAddr) {
    let deadline = front.settings.handshake_timeout;
    let cfg = match front.server_config() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%peer, error = %e, "MQTT connection refused");
            return;
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let mut client = match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "SM-MUTUAL: MQTT TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, ?deadline, "SM-SESSION: MQTT TLS handshake timed out");
            return;
        }
    };
    let tenant = match client
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| tenant_of(c.as_ref()))
    {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            tracing::info!(%peer, error = %e, "MQTT client refused");
            return;
        }
        None => {
            // Unreachable with a verifier that requires client certificates.
            tracing::warn!(%peer, "MQTT client without a certificate");
            return;
        }
    };
    if front.settings.refuse_next(&tenant) {
        // The broker behind the front is restarting for this tenant: its CONNECT is read (and
        // kept, as refused) and the connection closed unanswered.
        if let Ok(Ok(first)) = tokio::time::timeout(deadline, read_packet(&mut client)).await
            && let Some(mut f) = parse_connect(&tenant, &first)
        {
            f.refused = true;
            front.settings.keep(f);
        }
        tracing::info!(%peer, %tenant, "MQTT connection closed unanswered: the broker is restarting (fault)");
        return;
    }
    let upstream_cfg = match front.tenant_config(&tenant) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%peer, %tenant, error = %e, "MQTT connection refused");
            return;
        }
    };
    let internal = front.settings.internal;
    let upstream = tokio::time::timeout(deadline, async move {
        let tcp = TcpStream::connect(internal).await?;
        let name = ServerName::try_from("localhost")
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        tokio_rustls::TlsConnector::from(upstream_cfg)
            .connect(name, tcp)
            .await
    })
    .await;
    let mut upstream = match upstream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!(%peer, %tenant, %internal, error = %e, "MQTT broker unreachable");
            return;
        }
        Err(_) => {
            tracing::error!(%peer, %tenant, %internal, "MQTT broker handshake timed out");
            return;
        }
    };
    // The first packet: kept if it is a CONNECT, passed on as it is in any case.
    match tokio::time::timeout(deadline, read_packet(&mut client)).await {
        Ok(Ok(first)) => {
            if let Some(f) = parse_connect(&tenant, &first) {
                front.settings.keep(f);
            }
            let sent = async {
                tokio::io::AsyncWriteExt::write_all(&mut upstream, &first).await?;
                tokio::io::AsyncWriteExt::flush(&mut upstream).await
            };
            if let Err(e) = sent.await {
                tracing::debug!(%peer, %tenant, error = %e, "MQTT relay ended");
                return;
            }
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, %tenant, error = %e, "MQTT client sent no packet");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, %tenant, ?deadline, "SM-SESSION: no MQTT CONNECT in time");
            return;
        }
    }
    tracing::debug!(%peer, %tenant, "MQTT client relayed");
    // Client → broker packet by packet (each PUBLISH's QoS and retain flag counted), broker →
    // client as bytes; when either direction ends, both do.
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut upstream_rx, mut upstream_tx) = tokio::io::split(upstream);
    let up = async {
        use tokio::io::AsyncWriteExt;
        loop {
            let p = read_packet(&mut client_rx).await?;
            if p[0] >> 4 == 3
                && let Ok(mut all) = front.settings.publishes.lock()
            {
                all.entry(tenant.clone())
                    .or_default()
                    .count((p[0] >> 1) & 3, p[0] & 1 == 1);
            }
            upstream_tx.write_all(&p).await?;
            upstream_tx.flush().await?;
        }
    };
    let down = tokio::io::copy(&mut upstream_rx, &mut client_tx);
    let ended: std::io::Result<()> = tokio::select! {
        r = up => r,
        r = down => r.map(|_| ()),
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, %tenant, error = %e, "MQTT relay ended");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn connect(flags: u8, keep_alive: u16, client_id: &str, tail: &[u8]) -> Vec<u8> {
        let mut body = vec![0, 4];
        body.extend_from_slice(b"MQTT");
        body.push(4);
        body.push(flags);
        body.extend_from_slice(&keep_alive.to_be_bytes());
        body.extend_from_slice(&u16::try_from(client_id.len()).unwrap_or(0).to_be_bytes());
        body.extend_from_slice(client_id.as_bytes());
        body.extend_from_slice(tail);
        let mut p = vec![0x10, u8::try_from(body.len()).unwrap_or(0)];
        p.extend(body);
        p
    }

    /// DES-MQTT-1/2/5 as the front reads them from a CONNECT; anything else is not one.
    #[test]
    fn a_connect_packet_tells_level_client_id_flags_and_keep_alive() {
        let f = parse_connect("GW0001", &connect(0x02, 60, "GW0001", &[])).unwrap();
        assert_eq!(
            f,
            ConnectFacts {
                tenant: "GW0001".into(),
                level: 4,
                client_id: "GW0001".into(),
                clean_session: true,
                keep_alive_sec: 60,
                will: false,
                username: false,
                password: false,
                refused: false,
            }
        );
        let f = parse_connect("GW0001", &connect(0xc4, 30, "x", b"\0\x01u\0\x01p")).unwrap();
        assert!(!f.clean_session && f.will && f.username && f.password);
        assert_eq!((f.keep_alive_sec, f.client_id.as_str()), (30, "x"));
        // A PINGREQ, a truncated CONNECT.
        assert_eq!(parse_connect("GW0001", &[0xc0, 0]), None);
        let p = connect(0x02, 60, "GW0001", &[]);
        assert_eq!(parse_connect("GW0001", &p[..p.len() - 3]), None);
    }

    #[tokio::test]
    async fn read_packet_reads_exactly_one_packet() {
        let mut bytes = connect(0x02, 60, "GW0001", &[]);
        let one = bytes.len();
        bytes.extend_from_slice(&[0xc0, 0]);
        let mut r = &bytes[..];
        assert_eq!(read_packet(&mut r).await.unwrap().len(), one);
        assert_eq!(read_packet(&mut r).await.unwrap(), vec![0xc0, 0]);
        assert!(read_packet(&mut r).await.is_err());
    }
}
