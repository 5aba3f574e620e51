//! Push over FTP and explicit FTPS to a real FTP server (libunftp + unftp-sbe-fs, in process on
//! loopback), retries against a server that refuses with 450 first, permanent refusals, wrong
//! passwords, bad inputs, and the CLI end to end (SC-FTP-1, SM-TLS, SM-RESEND, SM-LOCKOUT,
//! SM-ACL). Stored files are compared byte for byte; manifest SHA-256s are checked with the
//! `sha256sum` tool; `curl` lists and fetches what was uploaded as a third-party client.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use async_trait::async_trait;
use legacy_sim::bad::{self, BadKind, BadOptions};
use legacy_sim::manifest::{self, ManifestEntry};
use legacy_sim::push::{self, FtpTarget, FtpsTrust, RetryPolicy, Transfer, Upload};
use legacy_sim::{CsvOptions, Dataset, Table, TextEncoding};
use libunftp::ServerBuilder;
use libunftp::options::{FailedLoginsBlock, FailedLoginsPolicy};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use unftp_core::auth::{AuthenticationError, Authenticator, Credentials, DefaultUser, Principal};
use unftp_core::storage::{Error, ErrorKind, Fileinfo, Result as SResult, StorageBackend};
use unftp_sbe_fs::Filesystem;

const USER: &str = "legacy";
const PASS: &str = "s3cret-pw";

#[derive(Debug)]
struct Auth;

#[async_trait]
impl Authenticator for Auth {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        if username != USER {
            return Err(AuthenticationError::BadUser);
        }
        if creds.password.as_deref() != Some(PASS) {
            return Err(AuthenticationError::BadPassword);
        }
        Ok(Principal {
            username: username.to_owned(),
        })
    }
}

/// A gateway-like storage back-end: refuses names that are not plain file names (553), fails
/// the first `transient` puts with 450, or every put with 550 when `refuse_all`.
#[derive(Debug)]
struct GatewayLike {
    fs: Filesystem,
    transient: Arc<AtomicU32>,
    refuse_all: bool,
}

type Meta = <Filesystem as StorageBackend<DefaultUser>>::Metadata;

#[async_trait]
impl StorageBackend<DefaultUser> for GatewayLike {
    type Metadata = Meta;

    async fn metadata<P: AsRef<Path> + Send + Debug>(
        &self,
        u: &DefaultUser,
        p: P,
    ) -> SResult<Self::Metadata> {
        self.fs.metadata(u, p).await
    }
    async fn list<P: AsRef<Path> + Send + Debug>(
        &self,
        u: &DefaultUser,
        p: P,
    ) -> SResult<Vec<Fileinfo<PathBuf, Self::Metadata>>> {
        self.fs.list(u, p).await
    }
    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        u: &DefaultUser,
        p: P,
        start: u64,
    ) -> SResult<Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>> {
        self.fs.get(u, p, start).await
    }
    async fn put<
        P: AsRef<Path> + Send + Debug,
        R: tokio::io::AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        u: &DefaultUser,
        input: R,
        p: P,
        start: u64,
    ) -> SResult<u64> {
        let name = p.as_ref().to_string_lossy().into_owned();
        let rel = name.strip_prefix('/').unwrap_or(&name);
        if rel.contains(['/', '\\']) || rel.contains("..") {
            return Err(Error::from(ErrorKind::FileNameNotAllowedError));
        }
        if self.refuse_all {
            return Err(Error::from(ErrorKind::PermanentFileNotAvailable));
        }
        if self
            .transient
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::from(ErrorKind::TransientFileNotAvailable));
        }
        self.fs.put(u, input, p, start).await
    }
    async fn del<P: AsRef<Path> + Send + Debug>(&self, u: &DefaultUser, p: P) -> SResult<()> {
        self.fs.del(u, p).await
    }
    async fn mkd<P: AsRef<Path> + Send + Debug>(&self, u: &DefaultUser, p: P) -> SResult<()> {
        self.fs.mkd(u, p).await
    }
    async fn rename<P: AsRef<Path> + Send + Debug>(
        &self,
        u: &DefaultUser,
        from: P,
        to: P,
    ) -> SResult<()> {
        self.fs.rename(u, from, to).await
    }
    async fn rmd<P: AsRef<Path> + Send + Debug>(&self, u: &DefaultUser, p: P) -> SResult<()> {
        self.fs.rmd(u, p).await
    }
    async fn cwd<P: AsRef<Path> + Send + Debug>(&self, u: &DefaultUser, p: P) -> SResult<()> {
        self.fs.cwd(u, p).await
    }
}

#[derive(Default)]
struct ServerOpts {
    ftps: Option<(PathBuf, PathBuf)>,
    transient: u32,
    refuse_all: bool,
    lockout_after: Option<u32>,
}

struct Server {
    port: u16,
    _dir: tempfile::TempDir,
    /// The FTP root, inside `_dir` (so that escapes would land in `_dir`).
    root: PathBuf,
    outside: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(opts: ServerOpts) -> Server {
    legacy_sim::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ftproot");
    std::fs::create_dir(&root).unwrap();
    let transient = Arc::new(AtomicU32::new(opts.transient));
    let refuse_all = opts.refuse_all;
    let r = root.clone();
    let mut builder = ServerBuilder::with_authenticator(
        Box::new(move || GatewayLike {
            fs: Filesystem::new(r.clone()).unwrap(),
            transient: transient.clone(),
            refuse_all,
        }),
        Arc::new(Auth),
    )
    .greeting("legacy-sim test server");
    if let Some((cert, key)) = opts.ftps {
        builder = builder.ftps(cert, key);
    }
    if let Some(n) = opts.lockout_after {
        builder = builder.failed_logins_policy(FailedLoginsPolicy::new(
            n,
            Duration::from_secs(60),
            FailedLoginsBlock::User,
        ));
    }
    let server = builder.build().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    tokio::spawn(server.listen(addr.clone()));
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Server {
        port,
        outside: dir.path().to_path_buf(),
        _dir: dir,
        root,
    }
}

fn target(port: u16) -> FtpTarget {
    FtpTarget {
        host: "127.0.0.1".into(),
        port,
        user: USER.into(),
        password: PASS.into(),
        tls: None,
        timeout: Duration::from_secs(10),
    }
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
    }
}

fn upload(dataset: Dataset, rows: usize, seed: u64, enc: TextEncoding, name: &str) -> Upload {
    let table = Table::generate(dataset, rows, seed);
    let opts = CsvOptions {
        encoding: enc,
        ..CsvOptions::default()
    };
    Upload {
        file_name: name.into(),
        content: table.to_csv(&opts).unwrap(),
        dataset: dataset.name().into(),
        rows,
        encoding: enc.label().into(),
    }
}

fn sha256sum(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn tool_available(name: &str) -> bool {
    std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_ftp_push_arrives_byte_identical_and_manifest_sha256_matches_sha256sum() {
    let srv = start(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mpath = dir.path().join("manifest.jsonl");
    let mut sent = Vec::new();
    for (i, (d, enc)) in [
        (Dataset::Billing, TextEncoding::Cp932),
        (Dataset::PipeLedger, TextEncoding::Utf8),
        (Dataset::MeterReading, TextEncoding::Utf8),
    ]
    .into_iter()
    .enumerate()
    {
        let u = upload(d, 120, 7 + i as u64, enc, &format!("{}_{i}.csv", d.name()));
        let e = push::push(&target(srv.port), &u, &fast_retry(3)).await;
        manifest::append(&mpath, &e).unwrap();
        sent.push(u);
    }
    let entries = manifest::read(&mpath).unwrap();
    assert_eq!(entries.len(), 3);
    for (u, e) in sent.iter().zip(&entries) {
        assert!(e.acknowledged, "{e:?}");
        assert_eq!(e.reply_code, Some(226));
        assert_eq!(e.attempts, 1);
        let stored = srv.root.join(&u.file_name);
        assert_eq!(std::fs::read(&stored).unwrap(), u.content, "byte-identical");
        assert_eq!(e.sha256, sha256sum(&stored));
        assert_eq!(e.bytes, u.content.len() as u64);
        assert_eq!(e.encoding, u.encoding);
        assert!(e.finished_at >= e.started_at);
    }
    assert_eq!(entries[0].encoding, "cp932");

    // A third-party client (curl) sees the files and fetches identical bytes.
    if tool_available("curl") {
        let base = format!("ftp://{USER}:{PASS}@127.0.0.1:{}/", srv.port);
        let list = std::process::Command::new("curl")
            .args(["-s", "--list-only", &base])
            .output()
            .unwrap();
        let names = String::from_utf8_lossy(&list.stdout).into_owned();
        for u in &sent {
            assert!(names.contains(&u.file_name), "{names}");
        }
        let got = std::process::Command::new("curl")
            .args(["-s", &format!("{base}{}", sent[0].file_name)])
            .output()
            .unwrap();
        assert_eq!(got.stdout, sent[0].content);
    } else {
        eprintln!("curl not installed: third-party listing skipped");
    }
}

fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "legacy-sim test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let (ca_p, cert_p, key_p) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&ca_p, ca_cert.pem()).unwrap();
    std::fs::write(&cert_p, cert.pem()).unwrap();
    std::fs::write(&key_p, key.serialize_pem()).unwrap();
    (ca_p, cert_p, key_p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_ftps_push_with_the_test_ca_arrives_and_an_untrusted_ca_is_refused_without_retry()
{
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki(pki.path());
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = test_pki(other.path());
    let srv = start(ServerOpts {
        ftps: Some((cert, key)),
        ..ServerOpts::default()
    })
    .await;

    let mut t = target(srv.port);
    t.tls = Some(FtpsTrust {
        ca_pem: std::fs::read(&ca).unwrap(),
        server_name: Some("localhost".into()),
    });
    let u = upload(
        Dataset::Billing,
        300,
        11,
        TextEncoding::Utf8,
        "billing_tls.csv",
    );
    let e = push::push(&t, &u, &fast_retry(3)).await;
    assert!(e.acknowledged, "{e:?}");
    assert_eq!(
        std::fs::read(srv.root.join("billing_tls.csv")).unwrap(),
        u.content
    );

    // The IP address is also in the certificate.
    t.tls.as_mut().unwrap().server_name = None;
    let u2 = upload(
        Dataset::MeterReading,
        50,
        1,
        TextEncoding::Utf8,
        "reading_tls.csv",
    );
    assert!(push::push(&t, &u2, &fast_retry(1)).await.acknowledged);

    // A truncated upload over a TLS data connection is refused too (reset, not close_notify).
    let u4 = upload(
        Dataset::Billing,
        200,
        2,
        TextEncoding::Utf8,
        "trunc_tls.csv",
    );
    let e = push::push_with(&t, PASS, &u4, &fast_retry(1), Transfer::TruncateAfter(5000)).await;
    assert!(!e.acknowledged, "{e:?}");
    assert!(matches!(e.reply_code, Some(400..=599)), "{e:?}");

    // The CLI with --ftps --ca: two files back to back (no --every).
    let dir = tempfile::tempdir().unwrap();
    let mpath = dir.path().join("m.jsonl");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_legacy-sim"))
        .args([
            "push",
            "--host",
            "127.0.0.1",
            "--port",
            &srv.port.to_string(),
        ])
        .args(["--user", USER, "--password", PASS, "--ftps", "--ca"])
        .arg(&ca)
        .args(["--server-name", "localhost", "--dataset", "pipe_ledger"])
        .args(["--rows", "20", "--count", "2", "--manifest"])
        .arg(&mpath)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = manifest::read(&mpath).unwrap();
    assert_eq!(entries.len(), 2);
    for e in &entries {
        assert!(e.acknowledged);
        assert_eq!(e.sha256, sha256sum(&srv.root.join(&e.file_name)));
    }

    t.tls = Some(FtpsTrust {
        ca_pem: std::fs::read(&other_ca).unwrap(),
        server_name: Some("localhost".into()),
    });
    let u3 = upload(Dataset::Billing, 5, 1, TextEncoding::Utf8, "untrusted.csv");
    let e = push::push(&t, &u3, &fast_retry(3)).await;
    assert!(!e.acknowledged);
    assert_eq!(e.attempts, 1, "TLS failure is permanent: {e:?}");
    assert_eq!(e.attempt_log[0].stage, "AUTH TLS");
    assert!(!srv.root.join("untrusted.csv").exists());
}

/// A control-connection front for `real_port` whose first `broken` connections answer `AUTH
/// TLS` with 234 and then, once the ClientHello is in, a plain-text reply — what libunftp 0.24
/// does when it reads a fast ClientHello as a command — and whose later connections are passed
/// through to the server. Returns its port and the count of connections it accepted.
async fn breaking_front(real_port: u16, broken: u32) -> (u16, Arc<AtomicU32>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicU32::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(async move {
                if n > broken {
                    let mut server = tokio::net::TcpStream::connect(("127.0.0.1", real_port))
                        .await
                        .unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    return;
                }
                client.write_all(b"220 front\r\n").await.unwrap();
                let mut r = tokio::io::BufReader::new(client);
                let mut line = String::new();
                r.read_line(&mut line).await.unwrap();
                assert_eq!(line.trim_end(), "AUTH TLS");
                r.get_mut().write_all(b"234 go\r\n").await.unwrap();
                let mut hello = [0u8; 64];
                let _ = r.read(&mut hello).await;
                let _ = r.get_mut().write_all(b"500 not understood\r\n").await;
            });
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_tls_upgrade_is_answered_in_plain_text_is_made_again_at_most_twice() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki(pki.path());
    let srv = start(ServerOpts {
        ftps: Some((cert, key)),
        ..ServerOpts::default()
    })
    .await;
    let trust = FtpsTrust {
        ca_pem: std::fs::read(&ca).unwrap(),
        server_name: Some("localhost".into()),
    };
    let u = upload(Dataset::Billing, 5, 3, TextEncoding::Utf8, "again.csv");

    // Two broken upgrades: the third session stores the file, within one attempt.
    let (port, accepted) = breaking_front(srv.port, 2).await;
    let mut t = target(port);
    t.tls = Some(trust.clone());
    let e = push::push(&t, &u, &fast_retry(1)).await;
    assert!(e.acknowledged, "{e:?}");
    assert_eq!(e.attempts, 1, "{e:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    assert_eq!(
        std::fs::read(srv.root.join("again.csv")).unwrap(),
        u.content
    );

    // Three broken upgrades: the attempt fails at AUTH TLS, after three sessions, no more.
    let (port, accepted) = breaking_front(srv.port, 3).await;
    let mut t = target(port);
    t.tls = Some(trust);
    let mut u2 = u.clone();
    u2.file_name = "never.csv".into();
    let e = push::push(&t, &u2, &fast_retry(1)).await;
    assert!(!e.acknowledged, "{e:?}");
    assert_eq!(e.reply_code, None);
    assert_eq!(e.attempt_log[0].stage, "AUTH TLS", "{e:?}");
    assert!(
        e.reply_text
            .as_deref()
            .unwrap_or("")
            .contains("corrupt message"),
        "{e:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    assert!(!srv.root.join("never.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_450_refusals_are_retried_with_growing_delays_until_stored() {
    let srv = start(ServerOpts {
        transient: 2,
        ..ServerOpts::default()
    })
    .await;
    let u = upload(Dataset::PipeLedger, 30, 3, TextEncoding::Utf8, "retry.csv");
    let e = push::push(&target(srv.port), &u, &fast_retry(5)).await;
    assert!(e.acknowledged, "{e:?}");
    assert_eq!(e.attempts, 3);
    assert_eq!(e.attempt_log[0].reply_code, Some(450));
    assert_eq!(e.attempt_log[1].reply_code, Some(450));
    assert_eq!(e.attempt_log[0].stage, "STOR");
    assert_eq!(e.reply_code, Some(226));
    // Backoff with jitter: at least half of 100 ms, then of 200 ms.
    let gap1 = e.attempt_log[1].at - e.attempt_log[0].at;
    let gap2 = e.attempt_log[2].at - e.attempt_log[1].at;
    assert!(gap1.num_milliseconds() >= 50, "{gap1}");
    assert!(gap2.num_milliseconds() >= 100, "{gap2}");
    assert_eq!(
        std::fs::read(srv.root.join("retry.csv")).unwrap(),
        u.content
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_refusals_beyond_the_attempt_limit_are_given_up_with_the_last_code() {
    let srv = start(ServerOpts {
        transient: 10,
        ..ServerOpts::default()
    })
    .await;
    let u = upload(Dataset::PipeLedger, 3, 3, TextEncoding::Utf8, "never.csv");
    let e = push::push(&target(srv.port), &u, &fast_retry(2)).await;
    assert!(!e.acknowledged);
    assert_eq!(e.attempts, 2);
    assert_eq!(e.reply_code, Some(450));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_retried_and_recorded_without_a_reply_code() {
    let port = free_port(); // nothing listens there
    let u = upload(Dataset::Billing, 3, 1, TextEncoding::Utf8, "x.csv");
    let e = push::push(&target(port), &u, &fast_retry(3)).await;
    assert!(!e.acknowledged);
    assert_eq!(e.attempts, 3);
    assert_eq!(e.reply_code, None);
    assert_eq!(e.attempt_log[2].stage, "CONNECT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_550_refusal_is_not_retried_and_its_code_is_recorded() {
    let srv = start(ServerOpts {
        refuse_all: true,
        ..ServerOpts::default()
    })
    .await;
    let u = upload(Dataset::Billing, 3, 1, TextEncoding::Utf8, "refused.csv");
    let e = push::push(&target(srv.port), &u, &fast_retry(5)).await;
    assert!(!e.acknowledged);
    assert_eq!(e.attempts, 1);
    assert_eq!(e.reply_code, Some(550));
    assert!(e.reply_text.as_deref().is_some_and(|t| !t.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_recorded_as_530_and_not_retried() {
    let srv = start(ServerOpts::default()).await;
    let mut t = target(srv.port);
    t.password = "not-it".into();
    let u = upload(Dataset::Billing, 3, 1, TextEncoding::Utf8, "pw.csv");
    let e = push::push(&t, &u, &fast_retry(5)).await;
    assert!(!e.acknowledged);
    assert_eq!(e.attempts, 1);
    assert_eq!(e.reply_code, Some(530));
    assert_eq!(e.attempt_log[0].stage, "USER/PASS");
    assert!(!srv.root.join("pw.csv").exists());
}

fn bad_opts(prefix: &str) -> BadOptions {
    BadOptions {
        rows: 10,
        size: 300_000,
        times: 3,
        name_prefix: prefix.into(),
        ..BadOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_labelled_and_record_the_reply_the_server_gave() {
    let srv = start(ServerOpts::default()).await;
    let t = target(srv.port);
    let p = fast_retry(2);

    // Path traversal: each name refused with 553 by the gateway-like back-end, nothing outside.
    let es = bad::run(BadKind::PathTraversal, &t, &bad_opts("pt"), &p).await;
    assert_eq!(es.len(), 4);
    for e in &es {
        assert_eq!(e.bad_kind.as_deref(), Some("path-traversal"));
        assert!(e.probes.contains(&"SM-ACL".to_owned()));
        assert!(!e.acknowledged, "{e:?}");
        assert!(matches!(e.reply_code, Some(550 | 553)), "{e:?}");
    }
    let outside: Vec<_> = std::fs::read_dir(&srv.outside)
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        vec!["ftproot"],
        "nothing written next to the FTP root"
    );

    // Duplicate: two entries with the same name and SHA-256.
    let es = bad::run(BadKind::Duplicate, &t, &bad_opts("dup"), &p).await;
    assert_eq!(es.len(), 2);
    assert_eq!(es[0].file_name, es[1].file_name);
    assert_eq!(es[0].sha256, es[1].sha256);

    // Content kinds reach this permissive server and are stored as sent (the recorder works).
    for kind in [
        BadKind::UnterminatedQuote,
        BadKind::WrongColumnCount,
        BadKind::Cp932AsUtf8,
        BadKind::InvalidUtf8,
        BadKind::Empty,
        BadKind::Oversized,
    ] {
        let es = bad::run(kind, &t, &bad_opts("c"), &p).await;
        assert_eq!(es.len(), 1);
        let e = &es[0];
        assert!(e.acknowledged, "{kind}: {e:?}");
        assert_eq!(e.sha256, sha256sum(&srv.root.join(&e.file_name)), "{kind}");
        assert!(e.expectation.is_some());
        if kind == BadKind::Cp932AsUtf8 {
            assert_eq!(e.encoding, "utf-8", "declared encoding recorded");
        }
        if kind == BadKind::Oversized {
            assert!(e.bytes >= 300_000);
        }
    }

    // Truncated: the data connection is reset mid-transfer; the STOR's refusal is recorded.
    let es = bad::run(BadKind::Truncated, &t, &bad_opts("tr"), &p).await;
    assert_eq!(es.len(), 1);
    assert!(!es[0].acknowledged, "{:?}", es[0]);
    assert_eq!(es[0].attempts, 1);
    assert_eq!(es[0].attempt_log[0].stage, "STOR");
    assert_eq!(
        es[0].reply_code,
        Some(426),
        "libunftp: aborted: {:?}",
        es[0]
    );
    if let Ok(stored) = std::fs::read(srv.root.join(&es[0].file_name)) {
        assert!((stored.len() as u64) < es[0].bytes, "only part arrived");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_are_recorded_and_a_locking_server_then_refuses_the_right_one() {
    let srv = start(ServerOpts {
        lockout_after: Some(3),
        ..ServerOpts::default()
    })
    .await;
    let es = bad::run(
        BadKind::WrongPassword,
        &target(srv.port),
        &bad_opts("lock"),
        &fast_retry(1),
    )
    .await;
    assert_eq!(es.len(), 4);
    for e in &es[..3] {
        assert_eq!(e.reply_code, Some(530), "{e:?}");
        assert_eq!(e.probes[0], "SM-LOCKOUT");
    }
    let last: &ManifestEntry = &es[3];
    assert!(
        !last.acknowledged,
        "locked out even with the right password: {last:?}"
    );
    assert!(matches!(last.reply_code, Some(421 | 530)), "{last:?}");

    // Control: without a lockout policy the right password after 3 failures works.
    let srv2 = start(ServerOpts::default()).await;
    let es = bad::run(
        BadKind::WrongPassword,
        &target(srv2.port),
        &bad_opts("nolock"),
        &fast_retry(1),
    )
    .await;
    assert!(es[3].acknowledged, "{:?}", es[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_push_on_a_schedule_sends_count_files_and_writes_one_manifest_line_each() {
    let srv = start(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mpath = dir.path().join("m.jsonl");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_legacy-sim"))
        .args([
            "push",
            "--host",
            "127.0.0.1",
            "--port",
            &srv.port.to_string(),
            "--user",
            USER,
            "--password",
            PASS,
            "--dataset",
            "meter_reading",
            "--rows",
            "40",
            "--seed",
            "5",
            "--encoding",
            "cp932",
            "--every",
            "300ms",
            "--count",
            "3",
            "--manifest",
        ])
        .arg(&mpath)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = manifest::read(&mpath).unwrap();
    assert_eq!(entries.len(), 3);
    let mut names: Vec<_> = entries.iter().map(|e| e.file_name.clone()).collect();
    names.dedup();
    assert_eq!(names.len(), 3, "distinct names: {names:?}");
    for (i, e) in entries.iter().enumerate() {
        assert!(e.acknowledged);
        assert_eq!(e.rows, 40);
        assert_eq!(e.dataset, "meter_reading");
        let stored = std::fs::read(srv.root.join(&e.file_name)).unwrap();
        let expected = Table::generate(Dataset::MeterReading, 40, 5 + i as u64)
            .to_csv(&CsvOptions {
                encoding: TextEncoding::Cp932,
                ..CsvOptions::default()
            })
            .unwrap();
        assert_eq!(stored, expected, "file {i} is seed+{i}");
    }
    let gap = entries[2].started_at - entries[0].started_at;
    assert!(
        gap.num_milliseconds() >= 500,
        "scheduled, not back to back: {gap}"
    );

    // Wrong password through the CLI: exit status 1 and 530 in the manifest.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_legacy-sim"))
        .args([
            "push",
            "--host",
            "127.0.0.1",
            "--port",
            &srv.port.to_string(),
        ])
        .args(["--user", USER, "--password", "wrong", "--manifest"])
        .arg(&mpath)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let entries = manifest::read(&mpath).unwrap();
    assert_eq!(entries.last().unwrap().reply_code, Some(530));
}
