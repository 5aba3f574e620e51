//! The gateway's FTP server (system connection, `docs/protocol.md` §12): libunftp with a
//! virtual, upload-only storage back-end whose `put` **is** the ingest, so the reply to `STOR`
//! is its outcome (DES-FTP-6: `226` only after the durable commit).
//!
//! - Passive mode only, explicit FTPS (`AUTH TLS`) offered when a certificate is configured and
//!   required for control and data channels when `ftps_required` (DES-FTP-1, DES-FTP-2).
//! - Accounts from the configuration, passwords verified against their Argon2id PHC strings,
//!   lockout per (user, address) with [`crate::south::Lockout`] (DES-FTP-3); an unknown user
//!   is answered and counted like a wrong password.
//! - Each user's session is its dataset's virtual directory `/`: nothing can be read, listed
//!   (an empty listing), deleted, renamed or created (DES-FTP-4, DES-FTP-7).
//! - `STOR`: name rule and same-name check (DES-FTP-5) first, then the [`UploadSink`] — the
//!   ingest pipeline (decode, check, mask, commit) — whose [`Refusal`] becomes the reply code
//!   of DES-FTP-6. Every refusal and lock is logged with its rule and handed to the
//!   [`SouthEvents`] receiver (anomaly `ingest`, audit log). libunftp fixes its reply texts,
//!   so the DES-FTP-6 text is in the anomaly and the log (DES-FTP-6).
//!
//! **Known limitation (libunftp 0.24).** After replying `234` to `AUTH TLS`, libunftp switches
//! the control channel to TLS from a spawned task's message, and its control loop `select!`s
//! between that message and the next bytes from the client without bias. Under CPU load the
//! client's ClientHello can be read first, as a command: the plain-text error reply then breaks
//! the client's handshake ("received corrupt message"). The session fails before `USER`, so no
//! login or upload is affected and the client's next session succeeds (seen once in a full CI
//! run of the workspace's tests on a 2-core machine). The fix is upstream (switch before the
//! reply is sent, or a biased `select!`); legacy-sim's `Session::open_as` makes a session that
//! failed before `USER` again, at most twice more.
//!
//! Requirement IDs: SC-FTP-1, SC-ACQ-1, SM-TLS, SM-LOCKOUT, SM-ACL, SM-AUDIT, SM-PORTS.

use std::fmt::{self, Debug, Display};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use chrono::Utc;
use libunftp::ServerBuilder;
use libunftp::options::FtpsRequired;
use unftp_core::auth::{
    AuthenticationError, Authenticator, Credentials, Principal, UserDetail, UserDetailError,
    UserDetailProvider,
};
use unftp_core::storage::{
    Error, ErrorKind, Fileinfo, Metadata, Result as SResult, StorageBackend,
};

use crate::protocol::flow::Time;
use crate::protocol::ids::{Dataset, SeqRange};
use crate::south::{
    FailureOutcome, Lockout, LoginGate, Running, upload_name_allowed, verify_password,
};

/// One legacy system's FTP account (DES-FTP-3): it uploads `dataset`. Its `Debug` leaves the
/// password hash out (libraries log their state).
#[derive(Clone)]
pub struct Account {
    /// The FTP user name.
    pub user: String,
    /// Argon2id PHC string of its password.
    pub password_phc: String,
    /// The dataset its uploads belong to (DES-FTP-4).
    pub dataset: Dataset,
}

impl Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("user", &self.user)
            .field("dataset", &self.dataset)
            .finish_non_exhaustive()
    }
}

/// How the FTP server runs.
#[derive(Debug, Clone)]
pub struct FtpSettings {
    /// Listen address (`[ftp].listen`).
    pub listen: SocketAddr,
    /// Passive data ports (`[ftp].passive_ports`).
    pub passive_ports: RangeInclusive<u16>,
    /// FTPS certificate chain and key (PEM), if FTPS is offered.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Whether `AUTH TLS` and `PROT P` are required (DES-FTP-2).
    pub ftps_required: bool,
    /// The accounts.
    pub accounts: Vec<Account>,
}

/// The authenticated user of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpUser {
    /// FTP user name.
    pub name: String,
    /// Its dataset.
    pub dataset: Dataset,
    /// The client's address at login (for the audit log and quarantine `.reason`, DES-FTP-7).
    pub addr: String,
}

impl Display for FtpUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.dataset)
    }
}

impl UserDetail for FtpUser {}

/// An accepted upload (DES-FTP-6 `226`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Records ingested.
    pub records: u64,
    /// Their seqs.
    pub range: SeqRange,
}

/// The reply codes of DES-FTP-6 other than `226`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalCode {
    /// 450: storing stopped, or the same name is being uploaded (retry later).
    Busy450,
    /// 451: local storage error (retry later).
    LocalError451,
    /// 452: storage quota reached (retry later).
    Quota452,
    /// 551: content refused (DES-CSV-1..4).
    Content551,
    /// 552: file or record too large.
    TooLarge552,
    /// 553: file name not allowed.
    Name553,
    /// 426: the data connection was reset before the transfer ended.
    Aborted426,
}

impl RefusalCode {
    /// The numeric FTP reply code.
    pub fn code(self) -> u16 {
        match self {
            RefusalCode::Busy450 => 450,
            RefusalCode::LocalError451 => 451,
            RefusalCode::Quota452 => 452,
            RefusalCode::Content551 => 551,
            RefusalCode::TooLarge552 => 552,
            RefusalCode::Name553 => 553,
            RefusalCode::Aborted426 => 426,
        }
    }

    /// The libunftp error kind that makes libunftp send this code (the one mapping).
    fn error_kind(self) -> ErrorKind {
        match self {
            RefusalCode::Busy450 => ErrorKind::TransientFileNotAvailable,
            RefusalCode::LocalError451 => ErrorKind::LocalError,
            RefusalCode::Quota452 => ErrorKind::InsufficientStorageSpaceError,
            RefusalCode::Content551 => ErrorKind::PageTypeUnknown,
            RefusalCode::TooLarge552 => ErrorKind::ExceededStorageAllocationError,
            RefusalCode::Name553 => ErrorKind::FileNameNotAllowedError,
            RefusalCode::Aborted426 => ErrorKind::ConnectionClosed,
        }
    }
}

/// Why an upload was not taken: the code and the DES-FTP-6 text (`{rule}: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reply code.
    pub code: RefusalCode,
    /// The rule (`SC-FTP-1` for transfer, name, size, storage; `SC-ACQ-1` for content, as the
    /// anomaly's rule).
    pub rule: &'static str,
    /// The DES-FTP-6 reason text without the code, e.g. `DES-CSV-4: line 12, column 3: not a
    /// date` (never a field value).
    pub text: String,
}

/// The ingest pipeline behind `STOR`.
#[async_trait]
pub trait UploadSink: Send + Sync + Debug + 'static {
    /// Ingests `input`, the upload `name` of `user`: returns only once the records are
    /// durably committed (then `226` is sent), or refuses with nothing stored.
    async fn upload(
        &self,
        user: &FtpUser,
        name: &str,
        input: Pin<Box<dyn tokio::io::AsyncRead + Send + Sync>>,
    ) -> Result<Accepted, Refusal>;
}

/// What the FTP server tells the rest of the gateway (anomalies, audit log, counters).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SouthEvent {
    /// A login succeeded (audit).
    LoggedIn {
        /// User.
        user: String,
        /// Client address.
        addr: String,
    },
    /// A login failed (wrong password, unknown user, or locked) (audit, DES-FTP-3).
    LoginFailed {
        /// User (as sent).
        user: String,
        /// Client address.
        addr: String,
    },
    /// A (user, address) pair was locked (anomaly `ingest`, rule SM-LOCKOUT).
    Locked {
        /// User (as sent).
        user: String,
        /// Client address.
        addr: String,
        /// Until when.
        until: Time,
    },
    /// An upload was accepted (`filesAccepted`).
    Accepted {
        /// User.
        user: String,
        /// Client address at login.
        addr: String,
        /// File name.
        name: String,
        /// What was stored.
        accepted: Accepted,
    },
    /// An upload was refused (`filesRejected`, anomaly `ingest`).
    Refused {
        /// User.
        user: String,
        /// Client address at login.
        addr: String,
        /// File name.
        name: String,
        /// Why.
        refusal: Refusal,
    },
}

/// Receives [`SouthEvent`]s (synchronously; implementations forward to a channel).
pub trait SouthEvents: Send + Sync + Debug + 'static {
    /// One event.
    fn event(&self, event: SouthEvent);
}

fn now() -> Time {
    Utc::now().fixed_offset()
}

/// Separates the user name from the login address inside a [`Principal`].
const PRINCIPAL_SEP: char = '\n';

#[derive(Debug)]
struct Auth {
    accounts: Vec<Account>,
    lockout: Mutex<Lockout>,
    events: Arc<dyn SouthEvents>,
}

/// A PHC string that no password matches, checked for an unknown user so that it takes the
/// same time as a wrong password (DES-FTP-3).
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2dtLXVua25vd24tdXNlcg$2aP7K0m1aVv9b8lbX7bq0v0iH2bq9qXn0m0X8n2h3cM";

#[async_trait]
impl Authenticator for Auth {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        let ip = creds.source_ip;
        let gate = self
            .lockout
            .lock()
            .map(|l| l.gate(username, ip, now()))
            .unwrap_or(LoginGate::Check);
        if let LoginGate::Locked(_) = gate {
            tracing::warn!(rule = "SM-LOCKOUT", user = username, addr = %ip, "FTP login while locked");
            self.events.event(SouthEvent::LoginFailed {
                user: username.to_owned(),
                addr: ip.to_string(),
            });
            return Err(AuthenticationError::BadPassword);
        }
        let account = self.accounts.iter().find(|a| a.user == username);
        let phc = account
            .map_or(DUMMY_PHC, |a| a.password_phc.as_str())
            .to_owned();
        let password = creds.password.clone().unwrap_or_default();
        // Argon2 is deliberately slow: off the async workers.
        let ok = tokio::task::spawn_blocking(move || verify_password(&phc, &password))
            .await
            .unwrap_or(false)
            && account.is_some();
        let mut lockout = match self.lockout.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if ok {
            lockout.succeeded(username, ip);
            drop(lockout);
            tracing::info!(rule = "SM-AUDIT", user = username, addr = %ip, "FTP login");
            self.events.event(SouthEvent::LoggedIn {
                user: username.to_owned(),
                addr: ip.to_string(),
            });
            // libunftp hands only the principal to the user-detail provider: the login's
            // address travels with it (a LF cannot occur in a USER argument).
            return Ok(Principal {
                username: format!("{username}{PRINCIPAL_SEP}{ip}"),
            });
        }
        let outcome = lockout.failed(username, ip, now());
        drop(lockout);
        tracing::warn!(rule = "DES-FTP-3", user = username, addr = %ip, "FTP login failed");
        self.events.event(SouthEvent::LoginFailed {
            user: username.to_owned(),
            addr: ip.to_string(),
        });
        if let FailureOutcome::LockedUntil(until) = outcome {
            tracing::warn!(rule = "SM-LOCKOUT", user = username, addr = %ip, %until, "FTP login locked");
            self.events.event(SouthEvent::Locked {
                user: username.to_owned(),
                addr: ip.to_string(),
                until,
            });
        }
        Err(AuthenticationError::BadPassword)
    }
}

#[derive(Debug)]
struct Users {
    accounts: Vec<Account>,
}

#[async_trait]
impl UserDetailProvider for Users {
    type User = FtpUser;

    async fn provide_user_detail(&self, principal: &Principal) -> Result<FtpUser, UserDetailError> {
        let (name, addr) = principal
            .username
            .rsplit_once(PRINCIPAL_SEP)
            .unwrap_or((principal.username.as_str(), ""));
        self.accounts
            .iter()
            .find(|a| a.user == name)
            .map(|a| FtpUser {
                name: a.user.clone(),
                dataset: a.dataset.clone(),
                addr: addr.to_owned(),
            })
            .ok_or_else(|| UserDetailError::UserNotFound {
                username: name.to_owned(),
            })
    }
}

/// The metadata of the only thing a session can see: its root directory.
#[derive(Debug, Clone, Copy)]
pub struct RootMeta;

impl Metadata for RootMeta {
    fn len(&self) -> u64 {
        0
    }
    fn is_dir(&self) -> bool {
        true
    }
    fn is_file(&self) -> bool {
        false
    }
    fn is_symlink(&self) -> bool {
        false
    }
    fn modified(&self) -> SResult<SystemTime> {
        Ok(SystemTime::UNIX_EPOCH)
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
}

fn is_root(p: &Path) -> bool {
    matches!(p.to_str(), Some("/" | "" | "."))
}

#[derive(Debug)]
struct Backend {
    sink: Arc<dyn UploadSink>,
    running: Arc<Mutex<Running>>,
    events: Arc<dyn SouthEvents>,
}

impl Backend {
    fn refused(&self, user: &FtpUser, name: &str, refusal: Refusal) -> Error {
        tracing::warn!(
            rule = refusal.rule,
            user = %user.name,
            addr = %user.addr,
            file = name,
            code = refusal.code.code(),
            reason = %refusal.text,
            "upload refused"
        );
        let kind = refusal.code.error_kind();
        self.events.event(SouthEvent::Refused {
            user: user.name.clone(),
            addr: user.addr.clone(),
            name: name.to_owned(),
            refusal,
        });
        Error::from(kind)
    }
}

#[async_trait]
impl StorageBackend<FtpUser> for Backend {
    type Metadata = RootMeta;

    async fn metadata<P: AsRef<Path> + Send + Debug>(
        &self,
        _u: &FtpUser,
        p: P,
    ) -> SResult<RootMeta> {
        if is_root(p.as_ref()) {
            Ok(RootMeta)
        } else {
            Err(Error::from(ErrorKind::PermanentFileNotAvailable))
        }
    }

    async fn list<P: AsRef<Path> + Send + Debug>(
        &self,
        _u: &FtpUser,
        _p: P,
    ) -> SResult<Vec<Fileinfo<PathBuf, RootMeta>>> {
        // Uploaded files are not kept (DES-FTP-7): an empty listing.
        Ok(Vec::new())
    }

    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        _u: &FtpUser,
        _p: P,
        _start: u64,
    ) -> SResult<Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>> {
        Err(Error::from(ErrorKind::CommandNotImplemented))
    }

    async fn put<
        P: AsRef<Path> + Send + Debug,
        R: tokio::io::AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        user: &FtpUser,
        input: R,
        path: P,
        start: u64,
    ) -> SResult<u64> {
        let name = path.as_ref().to_string_lossy().into_owned();
        let name = name.strip_prefix('/').unwrap_or(&name).to_owned();
        if start != 0 {
            return Err(Error::from(ErrorKind::CommandNotImplemented));
        }
        if !upload_name_allowed(&name) {
            return Err(self.refused(
                user,
                &name,
                Refusal {
                    code: RefusalCode::Name553,
                    rule: "SC-FTP-1",
                    text: "DES-FTP-5: file name not allowed".into(),
                },
            ));
        }
        let begun = self
            .running
            .lock()
            .map(|mut r| r.begin(&user.name, &name))
            .unwrap_or(false);
        if !begun {
            return Err(self.refused(
                user,
                &name,
                Refusal {
                    code: RefusalCode::Busy450,
                    rule: "SC-FTP-1",
                    text: format!("DES-FTP-5: {name} is being uploaded"),
                },
            ));
        }
        let outcome = self.sink.upload(user, &name, Box::pin(input)).await;
        if let Ok(mut r) = self.running.lock() {
            r.end(&user.name, &name);
        }
        match outcome {
            Ok(accepted) => {
                tracing::info!(
                    rule = "SM-AUDIT",
                    user = %user.name,
                    addr = %user.addr,
                    file = %name,
                    records = accepted.records,
                    "upload accepted"
                );
                let n = accepted.records;
                self.events.event(SouthEvent::Accepted {
                    user: user.name.clone(),
                    addr: user.addr.clone(),
                    name,
                    accepted,
                });
                Ok(n)
            }
            Err(refusal) => Err(self.refused(user, &name, refusal)),
        }
    }

    async fn del<P: AsRef<Path> + Send + Debug>(&self, _u: &FtpUser, _p: P) -> SResult<()> {
        Err(Error::from(ErrorKind::CommandNotImplemented))
    }

    async fn mkd<P: AsRef<Path> + Send + Debug>(&self, _u: &FtpUser, _p: P) -> SResult<()> {
        Err(Error::from(ErrorKind::CommandNotImplemented))
    }

    async fn rename<P: AsRef<Path> + Send + Debug>(
        &self,
        _u: &FtpUser,
        _f: P,
        _t: P,
    ) -> SResult<()> {
        Err(Error::from(ErrorKind::CommandNotImplemented))
    }

    async fn rmd<P: AsRef<Path> + Send + Debug>(&self, _u: &FtpUser, _p: P) -> SResult<()> {
        Err(Error::from(ErrorKind::CommandNotImplemented))
    }

    async fn cwd<P: AsRef<Path> + Send + Debug>(&self, _u: &FtpUser, p: P) -> SResult<()> {
        if is_root(p.as_ref()) {
            Ok(())
        } else {
            Err(Error::from(ErrorKind::PermanentDirectoryNotAvailable))
        }
    }
}

/// Why the FTP server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FtpError {
    /// DES-FTP-2: FTPS is required but no certificate is configured.
    #[error("DES-FTP-2: ftps_required = true but no [ftp] tls_cert/tls_key")]
    NoCertificate,
    /// SC-FTP-1: libunftp refused the configuration.
    #[error("SC-FTP-1: FTP server: {0}")]
    Server(String),
}

/// Builds the FTP server; [`FtpServer::listen`] runs it.
pub struct FtpServer {
    server: libunftp::Server<Backend, FtpUser>,
    listen: SocketAddr,
}

impl FtpServer {
    /// The server for `settings`, ingesting through `sink`, reporting to `events`.
    pub fn new(
        settings: &FtpSettings,
        sink: Arc<dyn UploadSink>,
        events: Arc<dyn SouthEvents>,
    ) -> Result<Self, FtpError> {
        let running = Arc::new(Mutex::new(Running::default()));
        let ev = events.clone();
        let generator = Box::new(move || Backend {
            sink: sink.clone(),
            running: running.clone(),
            events: ev.clone(),
        });
        let mut builder = ServerBuilder::with_user_detail_provider(
            generator,
            Arc::new(Users {
                accounts: settings.accounts.clone(),
            }),
        )
        .authenticator(Arc::new(Auth {
            accounts: settings.accounts.clone(),
            lockout: Mutex::new(Lockout::new()),
            events,
        }))
        .greeting("SGW system connection (DES-FTP-1)")
        .passive_ports(settings.passive_ports.clone())
        .active_passive_mode(libunftp::options::ActivePassiveMode::PassiveOnly);
        match (&settings.tls, settings.ftps_required) {
            (Some((cert, key)), required) => {
                builder = builder.ftps(cert.clone(), key.clone());
                if required {
                    builder = builder.ftps_required(FtpsRequired::All, FtpsRequired::All);
                }
            }
            (None, true) => return Err(FtpError::NoCertificate),
            (None, false) => {
                tracing::warn!(
                    rule = "DES-FTP-2",
                    "ftps_required = false: legacy-system passwords and rows travel in clear (deviation from SM-TLS)"
                );
            }
        }
        let server = builder
            .build()
            .map_err(|e| FtpError::Server(e.to_string()))?;
        Ok(Self {
            server,
            listen: settings.listen,
        })
    }

    /// Serves until the task is dropped.
    pub async fn listen(self) -> Result<(), FtpError> {
        self.server
            .listen(self.listen.to_string())
            .await
            .map_err(|e| FtpError::Server(e.to_string()))
    }
}
