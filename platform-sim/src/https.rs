//! The platform's HTTPS certificate endpoint (IF-CERT-1, SEC-CERT-1, SEC-CERT-2, SM-TLS,
//! SM-MUTUAL, SM-ACL, SM-AUDIT).
//!
//! Mutual TLS (rustls 0.23, aws-lc-rs) with the gateway's client certificate, checked against
//! the root *and the current CRL* at every handshake ([`WebPkiClientVerifier`] with CRLs). The
//! CRL can be swapped at runtime ([`HttpsServer::publish`]): a revoked gateway's next handshake
//! fails, while connections already open keep going until closed. Its own accept loop
//! (tokio-rustls + hyper-util, HTTP/1.1) puts the client's identity ([`ClientIdentity`], subject
//! O/CN and serial) into each request's extensions, where handlers and the access check read it.
//! Only gateway-shaped identities (O = CN = a valid gateway ID, DES-ID-1) are served; others get
//! 403.
//!
//! Paths (DESIGN.md):
//!
//! | path | body |
//! |---|---|
//! | `GET /sgw/v1/certs/root.pem` | root certificate |
//! | `GET /sgw/v1/certs/platform.pem` | platform data-protection certificate |
//! | `GET /sgw/v1/certs/apps` | JSON `[{"appId","kid","notAfter"}]` (live certificates) |
//! | `GET /sgw/v1/certs/apps/{appId}.pem` | that application's certificate; 404 JSON error if unknown or revoked |
//! | `GET /sgw/v1/crl.pem`, `GET /sgw/v1/crl.der` | the current CRL |
//! | `GET /sgw/v1/whoami` | JSON of the client identity seen by the server (diagnostics) |
//!
//! Errors are JSON `{"error": CODE, "message": text}`.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use gateway::protocol::ids::GatewayId;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::ca::{AppCertInfo, AppId, Ca, CaError};

/// Longest time a TLS handshake may take before the connection is dropped (SM-SESSION).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the HTTPS endpoint could not start or reconfigure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpsError {
    /// SM-TLS: a certificate, key or CRL could not be parsed.
    #[error("SM-TLS: bad PEM/DER material: {0}")]
    Material(String),
    /// SEC-CERT-2: rustls refused the trust anchor or the CRL.
    #[error("SEC-CERT-2: TLS configuration: {0}")]
    Tls(String),
    /// SEC-CERT-1: reading the CA's published material failed.
    #[error("SEC-CERT-1: {0}")]
    Ca(#[from] CaError),
    /// SM-PORTS: the listener failed.
    #[error("SM-PORTS: listener: {0}")]
    Io(#[from] std::io::Error),
}

/// The identity of the TLS client, from its (verified) certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIdentity {
    /// Subject O.
    pub organization: Option<String>,
    /// Subject CN.
    pub common_name: Option<String>,
    /// Serial number, lower-case hex.
    pub serial: String,
}

impl ClientIdentity {
    /// Parses the identity of a certificate (DER).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let x = openssl::x509::X509::from_der(der).ok()?;
        let field = |nid| {
            x.subject_name()
                .entries_by_nid(nid)
                .next()
                .and_then(|e| e.data().to_string().ok())
        };
        // Same form as the CA index: hex of the integer's big-endian bytes (our serials have a
        // non-zero first byte, so no leading zero is lost).
        let serial = hex::encode(x.serial_number().to_bn().ok()?.to_vec());
        Some(ClientIdentity {
            organization: field(openssl::nid::Nid::ORGANIZATIONNAME),
            common_name: field(openssl::nid::Nid::COMMONNAME),
            serial,
        })
    }

    /// The gateway this identity stands for: O and CN equal and a valid gateway ID.
    pub fn gateway(&self) -> Option<GatewayId> {
        match (&self.organization, &self.common_name) {
            (Some(o), Some(cn)) if o == cn => GatewayId::new(o.as_str()).ok(),
            _ => None,
        }
    }
}

/// What the endpoint serves: a snapshot of the CA's public material.
#[derive(Debug, Clone)]
pub struct Published {
    /// Root certificate PEM.
    pub root_pem: String,
    /// Platform data-protection certificate PEM.
    pub platform_pem: String,
    /// Live application certificates with their PEM.
    pub apps: Vec<(AppCertInfo, String)>,
    /// Current CRL, PEM.
    pub crl_pem: String,
    /// Current CRL, DER (also used to check client certificates).
    pub crl_der: Vec<u8>,
}

impl Published {
    /// The CA's current public material.
    pub fn from_ca(ca: &Ca) -> Result<Self, HttpsError> {
        let (platform, _) = ca.platform_dp_paths();
        let platform_pem = std::fs::read_to_string(&platform)?;
        let mut apps = Vec::new();
        for info in ca.apps() {
            let id = AppId::new(info.app_id.clone())?;
            if let Some(pem) = ca.app_cert_pem(&id) {
                apps.push((info, pem));
            }
        }
        Ok(Published {
            root_pem: ca.root_pem().to_owned(),
            platform_pem,
            apps,
            crl_pem: ca.crl_pem()?,
            crl_der: ca.crl_der()?,
        })
    }
}

/// The server's own TLS material.
#[derive(Clone)]
pub struct TlsMaterial {
    /// Trust anchor for client certificates (PEM).
    pub root_pem: String,
    /// Server certificate chain (PEM).
    pub cert_pem: String,
    /// Server private key (PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// The platform TLS server certificate of the CA.
    pub fn from_ca(ca: &Ca) -> Result<Self, HttpsError> {
        let (cert, key) = ca.tls_server_paths();
        Ok(TlsMaterial {
            root_pem: ca.root_pem().to_owned(),
            cert_pem: std::fs::read_to_string(cert)?,
            key_pem: std::fs::read_to_string(key)?,
        })
    }
}

fn server_config(tls: &TlsMaterial, crl_der: &[u8]) -> Result<Arc<ServerConfig>, HttpsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    let root = CertificateDer::from_pem_slice(tls.root_pem.as_bytes())
        .map_err(|e| HttpsError::Material(format!("root: {e}")))?;
    roots
        .add(root)
        .map_err(|e| HttpsError::Tls(format!("root: {e}")))?;
    let crl = CertificateRevocationListDer::from(crl_der.to_vec());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(vec![crl])
        .build()
        .map_err(|e| HttpsError::Tls(format!("client verifier: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HttpsError::Material(format!("server certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|e| HttpsError::Material(format!("server key: {e}")))?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpsError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| HttpsError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

struct Shared {
    tls_material: TlsMaterial,
    tls: RwLock<Arc<ServerConfig>>,
    published: RwLock<Arc<Published>>,
    /// (client organisation, path) of every request, oldest first, at most 1 000.
    requests: std::sync::Mutex<std::collections::VecDeque<(String, String)>>,
    /// Unreachable (fault `https-unreachable`): every connection is closed as it is accepted.
    unreachable: std::sync::atomic::AtomicBool,
    /// Connections closed so far for that fault.
    closed: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn published(&self) -> Arc<Published> {
        // A poisoned lock only means a writer panicked after a full assignment of an Arc;
        // the value inside is still a complete snapshot.
        match self.published.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
    fn tls(&self) -> Arc<ServerConfig> {
        match self.tls.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// A running HTTPS endpoint. Dropping it does not stop it; call [`HttpsServer::shutdown`].
pub struct HttpsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for HttpsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: code,
            message: message.into(),
        }),
    )
        .into_response()
}

fn pem(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-pem-file"),
        )],
        body,
    )
        .into_response()
}

async fn root_pem(State(s): State<Arc<Shared>>) -> Response {
    pem(s.published().root_pem.clone())
}

async fn platform_pem(State(s): State<Arc<Shared>>) -> Response {
    pem(s.published().platform_pem.clone())
}

async fn apps(State(s): State<Arc<Shared>>) -> Response {
    let list: Vec<AppCertInfo> = s.published().apps.iter().map(|(i, _)| i.clone()).collect();
    Json(list).into_response()
}

async fn app_pem(State(s): State<Arc<Shared>>, UrlPath(file): UrlPath<String>) -> Response {
    let Some(id) = file.strip_suffix(".pem") else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{file:?} is not an application certificate (…/{{appId}}.pem)"),
        );
    };
    let published = s.published();
    match published.apps.iter().find(|(i, _)| i.app_id == id) {
        Some((_, body)) => pem(body.clone()),
        None => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no live certificate for application {id:?}"),
        ),
    }
}

async fn crl_pem(State(s): State<Arc<Shared>>) -> Response {
    let body = s.published().crl_pem.clone();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-pem-file"),
        )],
        body,
    )
        .into_response()
}

async fn crl_der(State(s): State<Arc<Shared>>) -> Response {
    let body = s.published().crl_der.clone();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pkix-crl"),
        )],
        body,
    )
        .into_response()
}

async fn whoami(Extension(id): Extension<ClientIdentity>) -> Response {
    Json(id).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such resource")
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/sgw/v1/certs/root.pem", get(root_pem))
        .route("/sgw/v1/certs/platform.pem", get(platform_pem))
        .route("/sgw/v1/certs/apps", get(apps))
        .route("/sgw/v1/certs/apps/{file}", get(app_pem))
        .route("/sgw/v1/crl.pem", get(crl_pem))
        .route("/sgw/v1/crl.der", get(crl_der))
        .route("/sgw/v1/whoami", get(whoami))
        .fallback(not_found)
        .with_state(shared)
}

/// Starts serving on `listener` (bind it to a loopback address first).
pub async fn serve(
    listener: TcpListener,
    tls: TlsMaterial,
    published: Published,
) -> Result<HttpsServer, HttpsError> {
    let cfg = server_config(&tls, &published.crl_der)?;
    let shared = Arc::new(Shared {
        tls_material: tls,
        tls: RwLock::new(cfg),
        published: RwLock::new(Arc::new(published)),
        requests: Default::default(),
        unreachable: Default::default(),
        closed: Default::default(),
    });
    let addr = listener.local_addr()?;
    let app = router(shared.clone());
    let loop_shared = shared.clone();
    let log_shared = shared.clone();
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTPS accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if loop_shared
                .unreachable
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                loop_shared
                    .closed
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tracing::info!(%peer, "HTTPS connection closed: endpoint unreachable (fault)");
                drop(tcp);
                continue;
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(loop_shared.tls());
            let app = app.clone();
            let log_shared = log_shared.clone();
            tokio::spawn(async move {
                let stream =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "HTTPS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%peer, "HTTPS handshake timed out");
                            return;
                        }
                    };
                let identity = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| ClientIdentity::from_der(c.as_ref()));
                let Some(identity) = identity else {
                    // Unreachable with a verifier that requires client certificates.
                    tracing::warn!(%peer, "HTTPS client without a certificate");
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        let app = app.clone();
                        let identity = identity.clone();
                        let log_shared = log_shared.clone();
                        async move {
                            // Logged once answered: a request in the log was served with what
                            // was published when it was answered (a test that changes what is
                            // published after seeing a fetch cannot race the answer).
                            let served = (
                                identity.organization.clone().unwrap_or_default(),
                                req.uri().path().to_owned(),
                            );
                            tracing::info!(
                                %peer, client = ?identity.organization, serial = %identity.serial,
                                method = %req.method(), path = %req.uri().path(), "HTTPS request"
                            );
                            if identity.gateway().is_none() {
                                return Ok::<_, std::convert::Infallible>(error(
                                    StatusCode::FORBIDDEN,
                                    "FORBIDDEN",
                                    "client certificate is not a gateway's (O = CN = gateway ID)",
                                ));
                            }
                            req.extensions_mut().insert(identity);
                            let answer = app.oneshot(req).await;
                            if let Ok(mut l) = log_shared.requests.lock() {
                                if l.len() >= 1000 {
                                    l.pop_front();
                                }
                                l.push_back(served);
                            }
                            answer
                        }
                    },
                );
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "HTTPS connection ended");
                }
            });
        }
    });
    Ok(HttpsServer { addr, shared, task })
}

impl HttpsServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the served material and the CRL used to check client certificates; new TLS
    /// handshakes use the new CRL at once.
    pub fn publish(&self, published: Published) -> Result<(), HttpsError> {
        let cfg = server_config(&self.shared.tls_material, &published.crl_der)?;
        match self.shared.tls.write() {
            Ok(mut g) => *g = cfg,
            Err(p) => *p.into_inner() = cfg,
        }
        match self.shared.published.write() {
            Ok(mut g) => *g = Arc::new(published),
            Err(p) => *p.into_inner() = Arc::new(published),
        }
        Ok(())
    }

    /// (client organisation, path) of the requests served so far (the last 1 000), oldest
    /// first: what a gateway fetched (IF-CERT-1).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.shared
            .requests
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Makes the endpoint unreachable (every new connection closed as it is accepted, before
    /// TLS) or reachable again.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.shared
            .unreachable
            .store(unreachable, std::sync::atomic::Ordering::SeqCst);
    }

    /// Connections closed unanswered while the endpoint was unreachable.
    pub fn closed_connections(&self) -> u64 {
        self.shared.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops accepting connections.
    pub fn shutdown(self) {
        self.task.abort();
    }
}
