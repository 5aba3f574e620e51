//! The gateway's FTP server (`gateway::runtime::ftp`, §12 of the protocol) against curl and lftp
//! as third-party clients, over plain FTP and explicit FTPS (SC-FTP-1, SM-TLS, SM-LOCKOUT,
//! SM-ACL; DES-FTP-1..6). The ingest pipeline behind `STOR` is a recording sink here: what is
//! under test is that the reply code is the sink's outcome, what reaches the sink, and the
//! rules the server itself enforces (names, lockout, upload-only, FTPS required).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, SaltString};
use async_trait::async_trait;
use gateway::protocol::ids::{Dataset, SeqRange};
use gateway::runtime::ftp::{
    Accepted, Account, FtpServer, FtpSettings, FtpUser, Refusal, RefusalCode, SouthEvent,
    SouthEvents, UploadSink,
};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Builder, X509NameBuilder};
use tokio::io::AsyncReadExt;

const USER: &str = "billing-ftp";
const PASS: &str = "correct horse battery";

/// Records every upload; refuses with `refuse` when set.
#[derive(Debug, Default)]
struct Sink {
    got: Mutex<Vec<(String, String, Vec<u8>)>>,
    refuse: Mutex<Option<Refusal>>,
}

#[async_trait]
impl UploadSink for Sink {
    async fn upload(
        &self,
        user: &FtpUser,
        name: &str,
        mut input: Pin<Box<dyn tokio::io::AsyncRead + Send + Sync>>,
    ) -> Result<Accepted, Refusal> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).await.unwrap();
        if let Some(r) = self.refuse.lock().unwrap().clone() {
            return Err(r);
        }
        self.got
            .lock()
            .unwrap()
            .push((user.dataset.to_string(), name.to_owned(), bytes));
        Ok(Accepted {
            records: 1,
            range: SeqRange { first: 1, last: 1 },
        })
    }
}

#[derive(Debug, Default)]
struct Events(Mutex<Vec<SouthEvent>>);

impl SouthEvents for Events {
    fn event(&self, e: SouthEvent) {
        self.0.lock().unwrap().push(e);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A self-signed FTPS certificate for 127.0.0.1 (the utility's LAN certificate, DES-FTP-2).
fn ftps_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", "sgw-ftp").unwrap();
    let n = n.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(7).unwrap()).unwrap())
        .unwrap();
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(&n).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = dir.join("ftp.pem");
    let keyf = dir.join("ftp.key");
    std::fs::write(&cert, b.build().to_pem().unwrap()).unwrap();
    std::fs::write(&keyf, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (cert, keyf)
}

struct Server {
    port: u16,
    sink: Arc<Sink>,
    events: Arc<Events>,
    dir: tempfile::TempDir,
    cert: Option<PathBuf>,
}

async fn start(ftps: bool) -> Server {
    gateway::runtime::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let tls = ftps.then(|| ftps_cert(dir.path()));
    let salt = SaltString::encode_b64(&[3u8; 16]).unwrap();
    let phc = argon2::Argon2::default()
        .hash_password(PASS.as_bytes(), &salt)
        .unwrap()
        .to_string();
    let port = free_port();
    let data = free_port();
    let settings = FtpSettings {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        passive_ports: data..=data.saturating_add(20),
        tls: tls.clone(),
        ftps_required: ftps,
        accounts: vec![Account {
            user: USER.into(),
            password_phc: phc,
            dataset: Dataset::new("billing").unwrap(),
        }],
    };
    let sink = Arc::new(Sink::default());
    let events = Arc::new(Events::default());
    let server = FtpServer::new(&settings, sink.clone(), events.clone()).unwrap();
    tokio::spawn(server.listen());
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Server {
        port,
        sink,
        events,
        cert: tls.map(|t| t.0),
        dir,
    }
}

/// Runs curl off the async workers; returns (success, stderr). Verbose: the server's replies
/// are in stderr as `< 226 …` lines.
async fn curl(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sSv", "--max-time", "20"])
            .args(&args)
            .output()
            .expect("curl is installed (.ci/run)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn write(s: &Server, name: &str, content: &[u8]) -> String {
    let p = s.dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

fn url(s: &Server, user: &str, pass: &str, name: &str) -> String {
    format!(
        "ftp://{user}:{}@127.0.0.1:{}/{name}",
        pass.replace(' ', "%20"),
        s.port
    )
}

#[tokio::test]
async fn an_upload_reaches_the_ingest_sink_byte_for_byte_and_is_answered_226() {
    let s = start(false).await;
    let content = "顧客,金額\r\n山田,100\r\n".as_bytes().to_vec();
    let f = write(&s, "up.csv", &content);
    let (ok, err) = curl(vec!["-T".into(), f, url(&s, USER, PASS, "billing_1.csv")]).await;
    assert!(ok && err.contains("< 226 "), "{err}");
    let got = s.sink.got.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![("billing".into(), "billing_1.csv".into(), content)]
    );
    let events = s.events.0.lock().unwrap().clone();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SouthEvent::LoggedIn { .. }))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SouthEvent::Accepted { name, .. } if name == "billing_1.csv"))
    );
}

#[tokio::test]
async fn each_refusal_of_the_sink_is_its_des_ftp_6_code_and_reported_with_its_text() {
    let s = start(false).await;
    let f = write(&s, "x.csv", b"a\n");
    for (code, num) in [
        (RefusalCode::Content551, "551"),
        (RefusalCode::TooLarge552, "552"),
        (RefusalCode::Busy450, "450"),
        (RefusalCode::Quota452, "452"),
        (RefusalCode::LocalError451, "451"),
    ] {
        let text = format!("DES-CSV-4: line 2, column 1: refused as {num}");
        *s.sink.refuse.lock().unwrap() = Some(Refusal {
            code,
            rule: "SC-ACQ-1",
            text: text.clone(),
        });
        let (ok, err) = curl(vec!["-T".into(), f.clone(), url(&s, USER, PASS, "x.csv")]).await;
        assert!(!ok, "refused upload reported success");
        assert!(err.contains(&format!("< {num} ")), "wanted {num}: {err}");
        let events = s.events.0.lock().unwrap().clone();
        assert!(
            events.iter().any(|e| matches!(e, SouthEvent::Refused { refusal, .. } if refusal.text == text && refusal.code == code)),
            "no refusal event for {num}"
        );
    }
    assert!(s.sink.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_name_that_is_not_a_plain_csv_name_is_refused_553_before_the_sink_sees_it() {
    let s = start(false).await;
    let f = write(&s, "x.csv", b"a\n");
    for name in ["x.txt", "x.CSV", "a%20b.csv"] {
        let (ok, err) = curl(vec!["-T".into(), f.clone(), url(&s, USER, PASS, name)]).await;
        assert!(!ok && err.contains("< 553 "), "{name}: {err}");
    }
    assert!(s.sink.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn nothing_can_be_read_or_removed_and_the_listing_is_empty() {
    let s = start(false).await;
    let f = write(&s, "x.csv", b"a\n");
    assert!(
        curl(vec!["-T".into(), f, url(&s, USER, PASS, "x.csv")])
            .await
            .0
    );
    let (ok, _) = curl(vec![url(&s, USER, PASS, "x.csv")]).await;
    assert!(!ok, "RETR must fail (upload only, DES-FTP-1)");
    let out = tokio::task::spawn_blocking({
        let u = url(&s, USER, PASS, "");
        move || {
            Command::new("curl")
                .args(["-sS", "--max-time", "20", &u])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "listing not empty: {:?}", out.stdout);
    let (ok, _) = curl(vec![
        "-Q".into(),
        "DELE x.csv".into(),
        url(&s, USER, PASS, ""),
    ])
    .await;
    assert!(!ok, "DELE must fail");
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_user_so_that_even_the_right_one_is_refused() {
    let s = start(false).await;
    let f = write(&s, "x.csv", b"a\n");
    for _ in 0..5 {
        let (ok, err) = curl(vec![
            "-T".into(),
            f.clone(),
            url(&s, USER, "wrong", "x.csv"),
        ])
        .await;
        assert!(!ok && err.contains("< 530 "), "{err}");
    }
    assert!(
        s.events
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, SouthEvent::Locked { user, .. } if user == USER)),
        "no lock reported"
    );
    let (ok, err) = curl(vec!["-T".into(), f.clone(), url(&s, USER, PASS, "x.csv")]).await;
    assert!(
        !ok && err.contains("< 530 "),
        "locked user logged in: {err}"
    );
    // An unknown user is answered like a wrong password.
    let (ok, err) = curl(vec!["-T".into(), f, url(&s, "nobody", PASS, "x.csv")]).await;
    assert!(!ok && err.contains("< 530 "), "{err}");
    assert!(s.sink.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn with_ftps_required_a_tls_upload_verified_by_curl_and_lftp_succeeds_and_a_plain_one_is_refused()
 {
    let s = start(true).await;
    let cert = s.cert.clone().unwrap().display().to_string();
    let f = write(&s, "x.csv", b"a,b\n");
    let (ok, err) = curl(vec![
        "--ssl-reqd".into(),
        "--cacert".into(),
        cert.clone(),
        "-T".into(),
        f.clone(),
        url(&s, USER, PASS, "tls.csv"),
    ])
    .await;
    assert!(ok, "FTPS upload failed: {err}");
    let (ok, err) = curl(vec![
        "-T".into(),
        f.clone(),
        url(&s, USER, PASS, "plain.csv"),
    ])
    .await;
    // DES-FTP-2: refused 530 or 534 before any login.
    assert!(
        !ok && (err.contains("< 534 ") || err.contains("< 530 ")),
        "a plain-FTP login must be refused when FTPS is required: {err}"
    );
    // lftp as a second client, explicit FTPS with certificate verification.
    let script = format!(
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file {cert}; \
         set net:max-retries 1; set net:timeout 10; open -u {USER},'{PASS}' -p {} 127.0.0.1; \
         put {f} -o lftp.csv; bye",
        s.port
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("lftp")
            .args(["-c", &script])
            .output()
            .expect("lftp is installed (.ci/run)")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "lftp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = s
        .sink
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|g| g.1.clone())
        .collect();
    assert_eq!(names, ["tls.csv", "lftp.csv"]);
}
