//! Pushes files to a gateway over FTP or explicit FTPS (SC-FTP-1, SM-TLS, SM-RESEND), with
//! `suppaftp` (tokio, rustls with aws-lc-rs).
//!
//! One attempt = connect, (FTPS: `AUTH TLS`, server certificate verified against the given CA,
//! `PBSZ 0`, `PROT P`), `USER`/`PASS`, `TYPE I`, passive mode, `STOR <final name>`, data, wait
//! for the completion reply, `QUIT`.
//!
//! **No temporary name + rename.** The file is stored directly under its final name, and the
//! `STOR` completion reply (226/250) is the gateway's acknowledgement: the gateway ingests inside
//! its storage back-end and answers 226 only once the file is durable, or refuses it with a reply
//! code. A rename step would split the acknowledgement from the transfer and leave the gateway
//! to guess which names are final. A file without a 2xx completion reply is not acknowledged and
//! is sent again (whole) on the next attempt.
//!
//! Retries (SM-RESEND): connection errors, timeouts and 4xx replies are transient and retried
//! with exponential backoff and jitter (delay `base·2^(n-1)` capped at `max`, then a uniformly
//! random value in `[delay/2, delay]`); 5xx replies (e.g. 530 wrong password, 550/553 refused
//! name) and TLS failures (certificate not trusted) are permanent: no retry, the reply recorded.
//! Within one attempt, a session that fails before `USER` (connect or TLS upgrade) is made again
//! at most twice more before the attempt counts as failed ([`Session::open_as`]).
//! A wrong password is never retried, so the simulator itself cannot cause a lockout (SM-LOCKOUT).

use crate::manifest::{Attempt, ManifestEntry, sha256_hex};
use chrono::Utc;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use suppaftp::tokio::{AsyncDataStream, AsyncRustlsStream};
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream, TransferStream};
use suppaftp::tokio_rustls::TlsConnector;
use suppaftp::tokio_rustls::rustls::{ClientConfig, RootCertStore};
use suppaftp::types::FileType;
use suppaftp::{FtpError, Status};
use tokio::io::AsyncWriteExt;

/// How long a truncated upload's part is on its way before the data connection is reset.
const TRUNCATE_AFTER_PART: Duration = Duration::from_millis(250);

/// The pauses before a session that failed before `USER` is made again ([`Session::open_as`]).
pub const RECONNECT_PAUSES: [Duration; 2] =
    [Duration::from_millis(200), Duration::from_millis(500)];

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct FtpTarget {
    /// Host name or IP address of the gateway's FTP service.
    pub host: String,
    /// Control port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Explicit FTPS (`AUTH TLS`) settings; `None` = plain FTP.
    pub tls: Option<FtpsTrust>,
    /// Limit for each step of an attempt (connect, each command, the data transfer).
    pub timeout: Duration,
}

/// Trust settings for explicit FTPS (SM-TLS).
#[derive(Debug, Clone)]
pub struct FtpsTrust {
    /// PEM bundle of the CA certificate(s) the server certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// Name checked against the server certificate (DNS name or IP); defaults to the host.
    pub server_name: Option<String>,
}

/// Retry schedule for transient failures (SM-RESEND).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the second attempt (before jitter).
    pub base_delay: Duration,
    /// Upper bound of the delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The un-jittered delay after failed attempt `n` (1-based).
    #[must_use]
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The delay after failed attempt `n` with jitter: uniform in `[d/2, d]`.
    #[must_use]
    pub fn jittered(&self, n: u32) -> Duration {
        let d = self.backoff(n);
        let half = d / 2;
        let extra = rand::rng().random_range(0..=half.as_micros().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_micros(extra)
    }
}

/// A file to send.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Remote file name (the `STOR` argument).
    pub file_name: String,
    /// The bytes.
    pub content: Vec<u8>,
    /// Dataset name for the manifest.
    pub dataset: String,
    /// Data rows for the manifest.
    pub rows: usize,
    /// Declared encoding label for the manifest.
    pub encoding: String,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The server answered with an unexpected reply (SC-FTP-1; 4xx transient, 5xx permanent).
    #[error("{stage}: server replied {code} {text}")]
    Reply {
        /// Command the reply answered.
        stage: String,
        /// Reply code.
        code: u32,
        /// Reply text.
        text: String,
    },
    /// Connection refused, reset or closed, or a step timed out (SM-RESEND: transient).
    #[error("{stage}: connection error: {text}")]
    Connection {
        /// Command in progress.
        stage: String,
        /// Description.
        text: String,
    },
    /// TLS set-up failed, e.g. the server certificate does not chain to the CA (SM-TLS: permanent).
    #[error("{stage}: TLS error: {text}")]
    Tls {
        /// Command in progress.
        stage: String,
        /// Description.
        text: String,
    },
    /// Local problem (bad CA file, bad arguments) (SC-FTP-1: permanent).
    #[error("local error: {0}")]
    Local(String),
}

impl PushError {
    /// Whether another attempt may succeed (4xx replies and connection errors).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Reply { code, .. } => (400..500).contains(code),
            Self::Connection { .. } => true,
            Self::Tls { .. } | Self::Local(_) => false,
        }
    }

    /// The reply code, if the server gave one.
    #[must_use]
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Reply { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The stage the attempt ended on.
    #[must_use]
    pub fn stage(&self) -> &str {
        match self {
            Self::Reply { stage, .. }
            | Self::Connection { stage, .. }
            | Self::Tls { stage, .. } => stage,
            Self::Local(_) => "LOCAL",
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Reply { text, .. } | Self::Connection { text, .. } | Self::Tls { text, .. } => {
                text.clone()
            }
            Self::Local(t) => t.clone(),
        }
    }
}

fn classify(stage: &str, e: FtpError) -> PushError {
    match e {
        FtpError::UnexpectedResponse(resp) => {
            let body = String::from_utf8_lossy(&resp.body).trim_end().to_owned();
            let code = body
                .get(..3)
                .and_then(|c| c.parse::<u32>().ok())
                .unwrap_or_else(|| resp.status.code());
            let text = body.get(4..).unwrap_or("").trim().to_owned();
            PushError::Reply {
                stage: stage.to_owned(),
                code,
                text,
            }
        }
        FtpError::SecureError(t) => PushError::Tls {
            stage: stage.to_owned(),
            text: t,
        },
        other => PushError::Connection {
            stage: stage.to_owned(),
            text: other.to_string(),
        },
    }
}

async fn step<T>(
    stage: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, FtpError>>,
) -> Result<T, PushError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(|e| classify(stage, e)),
        Err(_) => Err(PushError::Connection {
            stage: stage.to_owned(),
            text: format!("timed out after {limit:?}"),
        }),
    }
}

/// Installs aws-lc-rs as the process-wide rustls provider (an existing one is kept).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn tls_connector(trust: &FtpsTrust) -> Result<AsyncRustlsConnector, PushError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    install_crypto_provider();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&trust.ca_pem) {
        let cert = cert.map_err(|e| PushError::Local(format!("CA PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| PushError::Local(format!("CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(PushError::Local("CA PEM holds no certificate".into()));
    }
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(AsyncRustlsConnector::from(TlsConnector::from(Arc::new(
        config,
    ))))
}

/// A logged-in FTP(S) control connection, binary type, passive mode.
pub struct Session {
    ftp: AsyncRustlsFtpStream,
    timeout: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// Connects, secures (FTPS), logs in with `target.user`/`password`, selects `TYPE I`.
    ///
    /// # Errors
    /// [`PushError`] naming the stage that failed.
    pub async fn open(target: &FtpTarget) -> Result<Self, PushError> {
        Self::open_as(target, &target.password).await
    }

    /// As [`Session::open`] with another password (used to probe lockout, SM-LOCKOUT).
    ///
    /// # Errors
    /// [`PushError`] naming the stage that failed.
    ///
    /// A session that fails before `USER` — the TCP connect or the TLS upgrade — is made again,
    /// at most twice more (after [`RECONNECT_PAUSES`]), and the third failure is the result: it
    /// says nothing yet of the server's rules, no login was tried, and a legacy system simply
    /// connects again. (libunftp 0.24, which the reference gateway uses, can under load read a
    /// fast ClientHello as a command after its `234` and answer it in plain text: "received
    /// corrupt message"; a certificate that does not verify fails all three times.)
    pub async fn open_as(target: &FtpTarget, password: &str) -> Result<Self, PushError> {
        let mut r = Self::open_once(target, password).await;
        for pause in RECONNECT_PAUSES {
            match &r {
                Err(e) if matches!(e.stage(), "CONNECT" | "AUTH TLS") => {
                    tracing::warn!(error = %e, "session failed before USER; connecting again");
                    tokio::time::sleep(pause).await;
                    r = Self::open_once(target, password).await;
                }
                _ => break,
            }
        }
        r
    }

    async fn open_once(target: &FtpTarget, password: &str) -> Result<Self, PushError> {
        let t = target.timeout;
        let addr = format!("{}:{}", target.host, target.port);
        let mut ftp = step("CONNECT", t, AsyncRustlsFtpStream::connect(addr)).await?;
        if let Some(trust) = &target.tls {
            let connector = tls_connector(trust)?;
            let name = trust.server_name.as_deref().unwrap_or(&target.host);
            ftp = step("AUTH TLS", t, ftp.into_secure(connector, name)).await?;
        }
        step("USER/PASS", t, ftp.login(target.user.as_str(), password)).await?;
        step("TYPE I", t, ftp.transfer_type(FileType::Binary)).await?;
        ftp.set_mode(suppaftp::Mode::Passive);
        Ok(Self { ftp, timeout: t })
    }

    /// Sends one control command (no data connection) and returns the server's reply code and
    /// text, whatever the code (probing which commands a server refuses, SM-PORTS).
    ///
    /// # Errors
    /// [`PushError`] if the connection failed or no reply came.
    pub async fn command(&mut self, line: &str) -> Result<(u32, String), PushError> {
        let all: Vec<suppaftp::Status> = Vec::new();
        match step("COMMAND", self.timeout, self.ftp.custom_command(line, &all)).await {
            Ok(resp) => {
                let body = String::from_utf8_lossy(&resp.body).trim_end().to_owned();
                Ok((resp.status.code(), body))
            }
            Err(PushError::Reply { code, text, .. }) => Ok((code, text)),
            Err(e) => Err(e),
        }
    }

    async fn begin_stor(
        &mut self,
        name: &str,
    ) -> Result<TransferStream<AsyncRustlsStream>, PushError> {
        step("STOR", self.timeout, self.ftp.put_with_stream(name)).await
    }

    /// Stores `content` as `name` and waits for the completion reply (226/250 = acknowledged).
    ///
    /// # Errors
    /// [`PushError`] with the refusing reply, or the connection error.
    pub async fn store(&mut self, name: &str, content: &[u8]) -> Result<(), PushError> {
        let mut data = self.begin_stor(name).await?;
        // Send everything and close the data connection ourselves (TLS close_notify, FIN), so
        // that a data connection the server already closed is not mistaken for the outcome:
        // a server may refuse a STOR without reading its data (DES-FTP-6: 450/452/553 after
        // 150). The outcome is the reply on the control connection either way.
        let sent = step("STOR", self.timeout, async {
            data.write_all(content)
                .await
                .map_err(FtpError::ConnectionError)?;
            data.shutdown().await.map_err(FtpError::ConnectionError)
        })
        .await;
        match (self.reply_after_data(data).await, sent) {
            (Some(Err(e @ PushError::Reply { .. })), _) => Err(e),
            (Some(Ok(())), Ok(())) => Ok(()),
            // Acknowledged although not every byte could be sent: report the broken transfer.
            (Some(Ok(())), Err(e)) => Err(e),
            (Some(Err(e)), _) => Err(e),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Err(PushError::Local("no stand-in socket".into())),
        }
    }

    /// The server's reply to a `STOR` whose data were sent (or whose data connection broke):
    /// the data socket is swapped for a throw-away loopback connection, because suppaftp reads
    /// the completion reply only through `finish`, which closes the data connection; `None` if
    /// no stand-in could be made.
    async fn reply_after_data(
        &mut self,
        mut data: TransferStream<AsyncRustlsStream>,
    ) -> Option<Result<(), PushError>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok()?;
        let stand_in = tokio::net::TcpStream::connect(listener.local_addr().ok()?)
            .await
            .ok()?;
        drop(std::mem::replace(
            data.get_mut(),
            AsyncDataStream::Tcp(stand_in),
        ));
        Some(step("STOR", self.timeout, data.finish()).await)
    }

    /// Sends the first `keep` bytes of `content`, then resets the data connection (TCP RST,
    /// not FIN, so the server cannot take the part for a complete file) and reads the server's
    /// verdict on the `STOR` (truncated upload). Returns that reply: 426/451 is the expected
    /// refusal; 226/250 means the server acknowledged a truncated file.
    ///
    /// # Errors
    /// [`PushError`] for a refused `STOR` before any data, or a connection error.
    pub async fn store_truncated(
        &mut self,
        name: &str,
        content: &[u8],
        keep: usize,
    ) -> Result<(u32, String), PushError> {
        let mut data = self.begin_stor(name).await?;
        let part = content.get(..keep).unwrap_or(content);
        step("STOR", self.timeout, async {
            data.write_all(part)
                .await
                .map_err(FtpError::ConnectionError)?;
            data.flush().await.map_err(FtpError::ConnectionError)
        })
        .await?;
        // The connection breaks a moment after the part went out, so that the reset lands in
        // the transfer, not in the server's side of the data connection's TLS handshake, which
        // the client's side may have finished before the server's (libunftp 0.24 panics on a
        // reset there and answers the STOR only after its data timeout; docs/conformance.md).
        tokio::time::sleep(TRUNCATE_AFTER_PART).await;
        let _ = data.get_ref().get_ref().set_zero_linger();
        // suppaftp reads the completion reply only through `finish`, which closes the data
        // connection gracefully. So the real data socket is swapped for a throw-away loopback
        // connection and dropped (zero linger: RST); `finish` then closes the stand-in and
        // reads the server's reply to the STOR.
        let local = |e: std::io::Error| PushError::Local(format!("stand-in socket: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(local)?;
        let stand_in = tokio::net::TcpStream::connect(listener.local_addr().map_err(local)?)
            .await
            .map_err(local)?;
        let real = std::mem::replace(data.get_mut(), AsyncDataStream::Tcp(stand_in));
        drop(real);
        match step("STOR", self.timeout, data.finish()).await {
            Ok(()) => Ok((
                226,
                "completion reply 226/250 to a truncated upload".to_owned(),
            )),
            Err(PushError::Reply { code, text, .. }) => Ok((code, text)),
            Err(e) => Err(e),
        }
    }

    /// Sends a raw command and returns the reply code and text, whatever the code.
    ///
    /// # Errors
    /// A connection error.
    pub async fn raw(&mut self, command: &str) -> Result<(u32, String), PushError> {
        let all: Vec<Status> = (100..600).map(Status::from).collect();
        match step(
            command,
            self.timeout,
            self.ftp.custom_command(command, &all),
        )
        .await
        {
            Ok(resp) => {
                let body = String::from_utf8_lossy(&resp.body).trim_end().to_owned();
                let code = body.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                Ok((code, body.get(4..).unwrap_or("").trim().to_owned()))
            }
            Err(PushError::Reply { code, text, .. }) => Ok((code, text)),
            Err(e) => Err(e),
        }
    }

    /// Lists the names in the current directory (`NLST`).
    ///
    /// # Errors
    /// [`PushError`] with the refusing reply.
    pub async fn names(&mut self) -> Result<Vec<String>, PushError> {
        step("NLST", self.timeout, self.ftp.nlst(None)).await
    }

    /// Sends `QUIT` (errors ignored: the file outcome is already known).
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(self.timeout, self.ftp.quit()).await;
    }
}

/// How one attempt transfers the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// The whole content, then wait for the completion reply.
    Whole,
    /// Only the first `n` bytes, then reset the data connection and read the STOR verdict
    /// (acknowledged only if the server wrongly answers 226/250).
    TruncateAfter(usize),
}

async fn attempt_once(
    target: &FtpTarget,
    password: &str,
    upload: &Upload,
    transfer: Transfer,
) -> Result<Option<(u32, String)>, PushError> {
    let mut s = Session::open_as(target, password).await?;
    let r = match transfer {
        Transfer::Whole => s
            .store(&upload.file_name, &upload.content)
            .await
            .map(|()| None),
        Transfer::TruncateAfter(n) => s
            .store_truncated(&upload.file_name, &upload.content, n)
            .await
            .map(Some),
    };
    s.quit().await;
    r
}

/// Sends one file with retries and returns its manifest entry (SC-FTP-1, SM-RESEND).
pub async fn push(target: &FtpTarget, upload: &Upload, policy: &RetryPolicy) -> ManifestEntry {
    push_with(target, &target.password, upload, policy, Transfer::Whole).await
}

/// As [`push`], with an explicit password and transfer mode (used by bad inputs).
pub async fn push_with(
    target: &FtpTarget,
    password: &str,
    upload: &Upload,
    policy: &RetryPolicy,
    transfer: Transfer,
) -> ManifestEntry {
    let started_at = Utc::now();
    let mut log = Vec::new();
    let mut acknowledged = false;
    let max = policy.max_attempts.max(1);
    for n in 1..=max {
        let at = Utc::now();
        let result = attempt_once(target, password, upload, transfer).await;
        match result {
            Ok(reply) => {
                let (code, text, stage) = match reply {
                    // suppaftp checks the completion reply is 226 or 250 but does not hand it
                    // out; libunftp and most servers answer 226 to STOR.
                    None => {
                        acknowledged = true;
                        (Some(226), "transfer complete (226/250)".to_owned(), "STOR")
                    }
                    Some((code, text)) => {
                        acknowledged = (200..300).contains(&code);
                        (Some(code), text, "STOR")
                    }
                };
                log.push(Attempt {
                    n,
                    at,
                    reply_code: code,
                    reply_text: Some(text),
                    stage: stage.to_owned(),
                });
                break;
            }
            Err(e) => {
                tracing::warn!(attempt = n, file = %upload.file_name, error = %e, "push attempt failed");
                log.push(Attempt {
                    n,
                    at,
                    reply_code: e.code(),
                    reply_text: Some(e.text()),
                    stage: e.stage().to_owned(),
                });
                if !e.is_transient() || n == max || transfer != Transfer::Whole {
                    break;
                }
                tokio::time::sleep(policy.jittered(n)).await;
            }
        }
    }
    let last = log.last().cloned();
    ManifestEntry {
        file_name: upload.file_name.clone(),
        dataset: upload.dataset.clone(),
        rows: upload.rows,
        bytes: upload.content.len() as u64,
        sha256: sha256_hex(&upload.content),
        encoding: upload.encoding.clone(),
        bom: upload.content.starts_with(b"\xEF\xBB\xBF"),
        attempts: log.len() as u32,
        reply_code: last.as_ref().and_then(|a| a.reply_code),
        reply_text: last.and_then(|a| a.reply_text),
        acknowledged,
        started_at,
        finished_at: Utc::now(),
        attempt_log: log,
        bad_kind: None,
        probes: Vec::new(),
        expectation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(5), Duration::from_millis(1000));
        assert_eq!(p.backoff(40), Duration::from_millis(1000));
        for n in 1..8 {
            let j = p.jittered(n);
            assert!(j >= p.backoff(n) / 2 && j <= p.backoff(n), "{j:?}");
        }
    }

    #[test]
    fn four_hundreds_and_connection_errors_are_transient_five_hundreds_are_not() {
        let r = |code| PushError::Reply {
            stage: "STOR".into(),
            code,
            text: String::new(),
        };
        assert!(r(421).is_transient());
        assert!(r(450).is_transient());
        assert!(!r(530).is_transient());
        assert!(!r(553).is_transient());
        assert!(
            PushError::Connection {
                stage: "CONNECT".into(),
                text: String::new()
            }
            .is_transient()
        );
        assert!(
            !PushError::Tls {
                stage: "AUTH TLS".into(),
                text: String::new()
            }
            .is_transient()
        );
    }
}
