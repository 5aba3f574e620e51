//! The HTTPS client of the certificate endpoint (DES-CERT-1..3, DES-CERT-6): mutual TLS with
//! the gateway's TLS client certificate, the server's certificate checked against the TLS trust
//! anchor **and** the held CRL when the TLS and data-protection PKIs share their root
//! (DES-CERT-5), responses limited to 1 MiB (DES-CERT-2).
//!
//! [`CertFetcher::refresh`] does one round of DES-CERT-3: `root.pem` (never replaces the
//! provisioned root: a different one is only reported), the CRL (installed only if it is valid
//! and newer, rollback refused), `platform.pem` (installed only if it passes DES-CERT-4 with
//! the platform role), and the application certificates (validated with the application role,
//! listed). Every refusal is a [`Finding`] the runtime reports as `anomaly` kind `certificate`.
//! The data-security state is swapped atomically ([`arc_swap::ArcSwap`]): readers (the driver's
//! sealing and opening) never wait for a fetch.
//!
//! Requirement IDs: IF-CERT-1, SEC-CERT-1, SEC-CERT-2, SM-TLS, SM-MUTUAL.

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use super::mqtt::TlsFiles;
use crate::outbound;
use crate::security::{DataSecurity, Identity};

/// Largest response accepted (DES-CERT-2).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// DES-CERT-1: `https_base` is not an `https://host:port[/prefix]` URL.
    #[error("DES-CERT-1: bad https_base {0:?}")]
    BadBase(String),
    /// DES-CERT-1: TLS material could not be read.
    #[error("DES-CERT-1: TLS material: {0}")]
    Material(String),
    /// DES-CERT-1: connection or TLS handshake failed (a revoked or untrusted server, a closed
    /// port…).
    #[error("DES-CERT-1: {0}")]
    Connect(String),
    /// DES-CERT-1: the endpoint answered with another status than 200.
    #[error("DES-CERT-1: {path}: HTTP {status}")]
    Status {
        /// The path.
        path: String,
        /// The status.
        status: u16,
    },
    /// DES-CERT-2: the response is larger than 1 MiB.
    #[error("DES-CERT-2: {0}: response over 1 MiB")]
    TooLarge(String),
}

impl FetchError {
    /// The rule a refusal names: DES-CERT-2 for the size limit, DES-CERT-1 otherwise.
    pub fn rule(&self) -> &'static str {
        match self {
            FetchError::TooLarge(_) => "DES-CERT-2",
            _ => "DES-CERT-1",
        }
    }
}

/// The rule a refused response names: DES-CERT-2 for its form (a PEM block of another type,
/// not exactly one certificate), else `checks` (the rule whose checks refused it).
fn content_rule(e: &crate::security::SecurityError, checks: &'static str) -> &'static str {
    use crate::security::SecurityError as E;
    match e {
        E::PemBlock { .. } | E::NotOneCertificate(_) => "DES-CERT-2",
        _ => checks,
    }
}

/// One refusal of a refresh round (anomaly kind `certificate`, DES-CERT-3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was fetched (`crl`, `platform.pem`, `root.pem`, `apps/{appId}.pem`).
    pub what: String,
    /// The rule.
    pub rule: &'static str,
    /// Why it was refused or not used.
    pub detail: String,
}

fn find(what: &str, rule: &'static str, detail: String) -> Finding {
    Finding {
        what: what.to_owned(),
        rule,
        detail,
    }
}

/// The outcome of one refresh round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// The CRL was replaced by a newer one.
    pub crl_installed: bool,
    /// Another platform certificate than the one held was installed.
    pub platform_installed: bool,
    /// Application IDs whose certificates passed DES-CERT-4 (DES-CERT-6).
    pub apps: Vec<String>,
    /// Refusals and fetch failures.
    pub findings: Vec<Finding>,
}

/// The client of the certificate endpoint.
#[derive(Debug)]
pub struct CertFetcher {
    host: String,
    port: u16,
    prefix: String,
    tls: TlsFiles,
    /// The `foreign-root-installed` broken variant: a root that differs is installed.
    install_foreign_root: bool,
    /// The `crl-rollback-accepted` broken variant: a valid CRL that is not newer is installed.
    accept_crl_rollback: bool,
    /// The `crl-rollback-reported-installed` broken variant: such a CRL is reported and
    /// installed.
    report_crl_rollback_installed: bool,
    /// The `crl-dropped-on-fetch-failure` broken variant: a failed CRL fetch forgets the held
    /// CRL.
    drop_crl_on_failure: bool,
}

fn split_base(base: &str) -> Result<(String, u16, String), FetchError> {
    let bad = || FetchError::BadBase(base.to_owned());
    let rest = base.strip_prefix("https://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (authority, 443),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port, path.to_owned()))
}

impl CertFetcher {
    /// A client for `https_base` (DES-CERT-1) with the gateway's TLS files.
    pub fn new(https_base: &str, tls: TlsFiles) -> Result<Self, FetchError> {
        let (host, port, prefix) = split_base(https_base)?;
        Ok(Self {
            host,
            port,
            prefix,
            tls,
            install_foreign_root: false,
            accept_crl_rollback: false,
            report_crl_rollback_installed: false,
            drop_crl_on_failure: false,
        })
    }

    /// Broken as `broken` (conformance suite tests only).
    pub fn with_broken(mut self, broken: crate::broken::Broken) -> Self {
        self.install_foreign_root = broken.is(crate::broken::Variant::ForeignRootInstalled);
        self.accept_crl_rollback = broken.is(crate::broken::Variant::CrlRollbackAccepted);
        self.report_crl_rollback_installed =
            broken.is(crate::broken::Variant::CrlRollbackReportedInstalled);
        self.drop_crl_on_failure = broken.is(crate::broken::Variant::CrlDroppedOnFetchFailure);
        self
    }

    /// The TLS configuration: client identity, trust anchor, and `crl` (DER) for the server's
    /// certificate when given (the link's builder, [`super::mqtt::client_config_with_crl`]).
    fn client_config(&self, crl: Option<Vec<u8>>) -> Result<ClientConfig, FetchError> {
        super::mqtt::client_config_with_crl(&self.tls, crl)
            .map_err(|e| FetchError::Material(e.to_string()))
    }

    /// GET `path` (below the base), 200 only, at most 1 MiB. `crl` (DER) checks the server's
    /// certificate (DES-CERT-5).
    pub async fn get(&self, path: &str, crl: Option<Vec<u8>>) -> Result<Vec<u8>, FetchError> {
        let cfg = self.client_config(crl)?;
        let c = |e: &dyn std::fmt::Display| FetchError::Connect(e.to_string());
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| c(&e))?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| c(&e))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| c(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| c(&e))?;
        let driver = tokio::spawn(conn);
        let full = format!("{}{}", self.prefix, path);
        let req = hyper::Request::get(full.as_str())
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port))
            .body(Empty::<Bytes>::new())
            .map_err(|e| c(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| c(&e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            driver.abort();
            return Err(FetchError::Status { path: full, status });
        }
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|_| FetchError::TooLarge(full.clone()))?
            .to_bytes();
        driver.abort();
        Ok(body.to_vec())
    }

    /// The CRL, then `platform.pem` (DES-SEAL-6: a message signed under an unknown `kid`):
    /// the certificate is installed if it passes DES-CERT-4 with the platform role at `now`,
    /// against the freshest CRL.
    pub async fn refresh_platform(
        &self,
        cell: &ArcSwap<DataSecurity>,
        now: DateTime<Utc>,
    ) -> Refreshed {
        let mut out = Refreshed::default();
        self.crl_into(cell, now, &mut out).await;
        self.platform_into(cell, now, &mut out).await;
        out
    }

    async fn crl_into(
        &self,
        cell: &ArcSwap<DataSecurity>,
        now: DateTime<Utc>,
        out: &mut Refreshed,
    ) {
        let crl_der = self.tls_crl(&cell.load_full());
        // The CRL: valid and newer, else refused (rollback protection).
        match self.get("/sgw/v1/crl.pem", crl_der).await {
            Ok(pem) => {
                let mut next = (*cell.load_full()).clone();
                let before = next.keys().crl().and_then(|c| c.to_der().ok());
                match next.update_crl(&pem, now) {
                    Ok(()) => {
                        let after = next.keys().crl().and_then(|c| c.to_der().ok());
                        if after != before {
                            cell.store(Arc::new(next));
                            out.crl_installed = true;
                        }
                    }
                    #[cfg(feature = "broken-variants")]
                    Err(e @ crate::security::SecurityError::CrlRollback)
                        if (self.accept_crl_rollback || self.report_crl_rollback_installed)
                            && let Ok(crl) = openssl::x509::X509Crl::from_pem(&pem) =>
                    {
                        if self.report_crl_rollback_installed {
                            out.findings.push(find(
                                "crl",
                                content_rule(&e, "DES-CERT-3"),
                                e.to_string(),
                            ));
                        }
                        next.keys_mut().set_crl(crl);
                        cell.store(Arc::new(next));
                        out.crl_installed = true;
                    }
                    Err(e) => out.findings.push(find(
                        "crl",
                        content_rule(&e, "DES-CERT-3"),
                        e.to_string(),
                    )),
                }
            }
            Err(e) => {
                #[cfg(feature = "broken-variants")]
                if self.drop_crl_on_failure {
                    let mut next = (*cell.load_full()).clone();
                    next.keys_mut().broken_clear_crl();
                    cell.store(Arc::new(next));
                }
                out.findings.push(find("crl", e.rule(), e.to_string()));
            }
        }
    }

    async fn platform_into(
        &self,
        cell: &ArcSwap<DataSecurity>,
        now: DateTime<Utc>,
        out: &mut Refreshed,
    ) {
        let crl_der = self.tls_crl(&cell.load_full());
        // platform.pem, with the platform role (DES-CERT-4 step 3).
        match self.get("/sgw/v1/certs/platform.pem", crl_der).await {
            Ok(pem) => {
                let mut next = (*cell.load_full()).clone();
                let kid = |s: &DataSecurity| {
                    s.keys()
                        .peer(outbound::PLATFORM_PEER)
                        .ok()
                        .map(|p| p.kid.clone())
                };
                let before = kid(&next);
                match next.update_peer(Identity::platform(), &pem, now) {
                    // Installed only when it is another certificate than the one held.
                    Ok(()) if kid(&next) == before => {}
                    Ok(()) => {
                        cell.store(Arc::new(next));
                        out.platform_installed = true;
                    }
                    Err(e) => out.findings.push(find(
                        "platform.pem",
                        content_rule(&e, "DES-CERT-4"),
                        e.to_string(),
                    )),
                }
            }
            Err(e) => out
                .findings
                .push(find("platform.pem", e.rule(), e.to_string())),
        }
    }

    /// One round of DES-CERT-3 (and DES-CERT-6) against `cell`, at `now`.
    pub async fn refresh(&self, cell: &ArcSwap<DataSecurity>, now: DateTime<Utc>) -> Refreshed {
        let mut out = Refreshed::default();
        let held = cell.load_full();
        let crl_der = self.tls_crl(&held);
        #[cfg(feature = "broken-variants")]
        let mut foreign_root = None;
        // root.pem: never installed automatically (DES-CERT-3).
        match self.get("/sgw/v1/certs/root.pem", crl_der.clone()).await {
            Ok(pem) => {
                let same = openssl::x509::X509::from_pem(&pem)
                    .ok()
                    .and_then(|r| r.to_der().ok())
                    .zip(held.keys().root().to_der().ok())
                    .is_some_and(|(a, b)| a == b);
                #[cfg(feature = "broken-variants")]
                if !same && self.install_foreign_root {
                    foreign_root = openssl::x509::X509::from_pem(&pem).ok();
                }
                if !same {
                    out.findings.push(find(
                        "root.pem",
                        "DES-CERT-3",
                        "the endpoint's root differs from the provisioned one: ignored (re-provisioning needed)".into(),
                    ));
                }
            }
            Err(e) => out.findings.push(find("root.pem", e.rule(), e.to_string())),
        }
        self.crl_into(cell, now, &mut out).await;
        self.platform_into(cell, now, &mut out).await;
        // The variant installs the stranger after this round's platform certificate was
        // verified under the provisioned root: the next one is verified under the stranger.
        #[cfg(feature = "broken-variants")]
        if let Some(root) = foreign_root {
            let mut next = (*cell.load_full()).clone();
            next.keys_mut().broken_set_root(root);
            cell.store(Arc::new(next));
        }
        let crl_der = self.tls_crl(&cell.load_full());
        // Application certificates (DES-CERT-6): validated and listed, not used for sealing.
        match self.get("/sgw/v1/certs/apps", crl_der.clone()).await {
            Ok(json) => {
                let ids: Vec<String> = serde_json::from_slice::<Vec<serde_json::Value>>(&json)
                    .map(|v| {
                        v.iter()
                            .filter_map(|a| {
                                a.get("appId").and_then(|s| s.as_str()).map(str::to_owned)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                for id in ids {
                    let valid_name = !id.is_empty()
                        && id.len() <= 64
                        && id != "platform"
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if !valid_name {
                        out.findings
                            .push(find("apps", "DES-CERT-1", format!("bad appId {id:?}")));
                        continue;
                    }
                    let what = format!("apps/{id}.pem");
                    match self
                        .get(&format!("/sgw/v1/certs/{what}"), crl_der.clone())
                        .await
                    {
                        Ok(pem) => {
                            let mut next = (*cell.load_full()).clone();
                            match next.update_peer(Identity::application(&id), &pem, now) {
                                Ok(()) => {
                                    cell.store(Arc::new(next));
                                    out.apps.push(id);
                                }
                                Err(e) => out.findings.push(find(
                                    &what,
                                    content_rule(&e, "DES-CERT-6"),
                                    e.to_string(),
                                )),
                            }
                        }
                        Err(e) => out.findings.push(find(&what, e.rule(), e.to_string())),
                    }
                }
            }
            Err(e) => out.findings.push(find("apps", e.rule(), e.to_string())),
        }
        out
    }

    /// The held CRL as DER, for checking the server's TLS certificate, when the TLS trust
    /// anchor is the data-protection root (one root for both PKIs, DES-CERT-5).
    fn tls_crl(&self, sec: &DataSecurity) -> Option<Vec<u8>> {
        let tls_root = std::fs::read(&self.tls.ca)
            .ok()
            .and_then(|p| openssl::x509::X509::from_pem(&p).ok())
            .and_then(|r| r.to_der().ok())?;
        let dp_root = sec.keys().root().to_der().ok()?;
        if tls_root != dp_root {
            return None;
        }
        sec.keys().crl().and_then(|c| c.to_der().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_must_be_https_with_a_host() {
        assert_eq!(
            split_base("https://localhost:8443").unwrap(),
            ("localhost".into(), 8443, String::new())
        );
        assert_eq!(
            split_base("https://p.example/sgw/").unwrap(),
            ("p.example".into(), 443, "/sgw".into())
        );
        for bad in ["http://x:1", "https://:1", "https://x:notaport", "x:1"] {
            assert!(split_base(bad).is_err(), "{bad}");
        }
    }
}
