//! The HTTPS certificate endpoint with real clients over real mutual TLS (IF-CERT-1,
//! SEC-CERT-1, SEC-CERT-2, SM-MUTUAL, SM-ACL): curl (OpenSSL) as the third-party client and a
//! tokio-rustls client; OpenSSL's command line as the independent checker of what is served.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use platform_sim::ca::{AppId, Ca};
use platform_sim::https::{self, HttpsServer, Published, TlsMaterial};
use platform_sim::provision::Bundle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Setup {
    dir: tempfile::TempDir,
    ca: Ca,
    server: HttpsServer,
}

async fn setup() -> Setup {
    let (dir, mut ca) = new_ca();
    ca.issue_app(&AppId::new("app1").unwrap()).unwrap();
    ca.issue_app(&AppId::new("water-dashboard").unwrap())
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = https::serve(
        listener,
        TlsMaterial::from_ca(&ca).unwrap(),
        Published::from_ca(&ca).unwrap(),
    )
    .await
    .unwrap();
    Setup { dir, ca, server }
}

struct CurlOut {
    ok: bool,
    status: u16,
    body: Vec<u8>,
    stderr: String,
}

/// curl with a client certificate (`cert` = None: without one). New TLS handshake per call.
async fn curl(s: &Setup, path: &str, cert: Option<(&Path, &Path)>) -> CurlOut {
    let body_file = s.dir.path().join(format!("body-{}", rand_suffix()));
    let mut c = tokio::process::Command::new("curl");
    c.arg("-sS")
        .arg("--cacert")
        .arg(s.ca.root_path())
        .arg("-o")
        .arg(&body_file)
        .arg("-w")
        .arg("%{http_code}");
    if let Some((cert, key)) = cert {
        c.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    c.arg(format!(
        "https://localhost:{}{path}",
        s.server.addr().port()
    ));
    let out = c.output().await.unwrap();
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    CurlOut {
        ok: out.status.success(),
        status,
        body: std::fs::read(&body_file).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn rand_suffix() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

fn certs(b: &Bundle) -> (std::path::PathBuf, std::path::PathBuf) {
    (b.path("tls/client.pem"), b.path("tls/client.key"))
}

fn openssl(args: &[&str], input: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .arg("-in")
        .arg(input)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_the_provisioned_certificate_fetches_every_path() {
    let mut s = setup().await;
    let b = bundle(&mut s.ca, "HTTPS1", s.dir.path(), 0);
    let (c, k) = certs(&b);
    let cert = Some((c.as_path(), k.as_path()));

    let root = curl(&s, "/sgw/v1/certs/root.pem", cert).await;
    assert_eq!(root.status, 200, "{}", root.stderr);
    assert_eq!(root.body, std::fs::read(s.ca.root_path()).unwrap());

    let platform = curl(&s, "/sgw/v1/certs/platform.pem", cert).await;
    assert_eq!(platform.status, 200);
    assert_eq!(
        platform.body,
        std::fs::read(b.path("data-protection/platform.pem")).unwrap()
    );

    let list = curl(&s, "/sgw/v1/certs/apps", cert).await;
    assert_eq!(list.status, 200);
    let list: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for entry in list {
        let id = entry["appId"].as_str().unwrap();
        let pem = curl(&s, &format!("/sgw/v1/certs/apps/{id}.pem"), cert).await;
        assert_eq!(pem.status, 200);
        let pem_path = s.dir.path().join(format!("{id}.pem"));
        std::fs::write(&pem_path, &pem.body).unwrap();
        // kid = SHA-256 thumbprint of the DER, checked by OpenSSL.
        let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256"], &pem_path);
        let fp = fp
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase();
        assert_eq!(entry["kid"].as_str().unwrap(), fp);
        let subject = openssl(
            &["x509", "-noout", "-subject", "-nameopt", "RFC2253"],
            &pem_path,
        );
        assert!(subject.contains(&format!("CN={id}")), "{subject}");
        // notAfter as served equals the certificate's.
        let end = openssl(
            &["x509", "-noout", "-enddate", "-dateopt", "iso_8601"],
            &pem_path,
        );
        let served: chrono::DateTime<chrono::Utc> =
            entry["notAfter"].as_str().unwrap().parse().unwrap();
        assert!(
            end.contains(&served.format("%Y-%m-%d %H:%M:%S").to_string()),
            "{end} vs {served}"
        );
    }

    let crl_pem = curl(&s, "/sgw/v1/crl.pem", cert).await;
    assert_eq!(crl_pem.status, 200);
    let crl_der = curl(&s, "/sgw/v1/crl.der", cert).await;
    assert_eq!(crl_der.status, 200);
    let p = s.dir.path().join("served-crl.pem");
    let d = s.dir.path().join("served-crl.der");
    std::fs::write(&p, &crl_pem.body).unwrap();
    std::fs::write(&d, &crl_der.body).unwrap();
    // Both forms are the same CRL, signed by the root (OpenSSL verifies the signature).
    let from_pem = openssl(&["crl", "-noout", "-fingerprint", "-sha256"], &p);
    let from_der = openssl(
        &["crl", "-inform", "DER", "-noout", "-fingerprint", "-sha256"],
        &d,
    );
    assert_eq!(from_pem, from_der);
    let verified = Command::new("openssl")
        .args(["crl", "-noout", "-CAfile"])
        .arg(s.ca.root_path())
        .arg("-in")
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&verified.stderr).contains("verify OK"),
        "{verified:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_app_or_path_is_404_with_a_json_error() {
    let mut s = setup().await;
    let b = bundle(&mut s.ca, "HTTPS404", s.dir.path(), 0);
    let (c, k) = certs(&b);
    for path in [
        "/sgw/v1/certs/apps/nobody.pem",
        "/sgw/v1/certs/apps/app1",
        "/sgw/v1/certs/apps/..%2Froot.pem",
        "/sgw/v1/nothing",
    ] {
        let r = curl(&s, path, Some((&c, &k))).await;
        assert_eq!(r.status, 404, "{path}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "NOT_FOUND", "{path}");
        assert!(v["message"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_refused_at_the_handshake() {
    let s = setup().await;
    let r = curl(&s, "/sgw/v1/certs/root.pem", None).await;
    assert!(!r.ok);
    assert_eq!(r.status, 0, "an HTTP response was sent");
    assert!(r.stderr.contains("certificate required"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_a_foreign_ca_is_refused_at_the_handshake() {
    let s = setup().await;
    let (fdir, mut foreign) = new_ca();
    let fb = bundle(&mut foreign, "HTTPSF", fdir.path(), 0);
    let (c, k) = certs(&fb);
    let r = curl(&s, "/sgw/v1/certs/root.pem", Some((&c, &k))).await;
    assert!(!r.ok);
    assert_eq!(r.status, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_gateway_is_refused_at_the_next_handshake_while_others_are_served() {
    let mut s = setup().await;
    let a = bundle(&mut s.ca, "HTTPSRA", s.dir.path(), 0);
    let b = bundle(&mut s.ca, "HTTPSRB", s.dir.path(), 0);
    let (ac, ak) = certs(&a);
    let (bc, bk) = certs(&b);
    assert_eq!(
        curl(&s, "/sgw/v1/certs/root.pem", Some((&ac, &ak)))
            .await
            .status,
        200
    );

    s.ca.revoke_gateway(&gw("HTTPSRA")).unwrap();
    s.server
        .publish(Published::from_ca(&s.ca).unwrap())
        .unwrap();

    let r = curl(&s, "/sgw/v1/certs/root.pem", Some((&ac, &ak))).await;
    assert!(!r.ok);
    assert_eq!(r.status, 0);
    assert!(r.stderr.contains("certificate revoked"), "{}", r.stderr);
    let ok = curl(&s, "/sgw/v1/crl.pem", Some((&bc, &bk))).await;
    assert_eq!(ok.status, 200);
    // The CRL now served lists A's client certificate (OpenSSL reads it).
    let p = s.dir.path().join("crl-after.pem");
    std::fs::write(&p, &ok.body).unwrap();
    let text = openssl(&["crl", "-noout", "-text"], &p);
    let serial = openssl(&["x509", "-noout", "-serial"], &ac);
    let serial = serial.trim().trim_start_matches("serial=");
    assert!(text.contains(&format!("Serial Number: {serial}")), "{text}");
    assert!(
        text.contains("X509v3 CRL Number: \n                2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_certificate_without_a_gateway_identity_is_forbidden() {
    let s = setup().await;
    let c = s.ca.dir().join("apps/app1.pem");
    let k = s.ca.dir().join("apps/app1.key");
    // The application's data-protection certificate has only the application role as extended
    // key usage (DES-CERT-4), not clientAuth: refused at the TLS handshake.
    let r = curl(&s, "/sgw/v1/certs/root.pem", Some((&c, &k))).await;
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stderr.contains("unsupported certificate"), "{}", r.stderr);
    // A TLS client certificate of the same root for the application (clientAuth, no gateway
    // O/CN), made here with the OpenSSL command line: the handshake passes, the request is
    // forbidden.
    let dir = s.dir.path();
    let csr = dir.join("app1.csr");
    let ext = dir.join("client.ext");
    let client = dir.join("app1-client.pem");
    std::fs::write(&ext, "extendedKeyUsage=clientAuth\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    run(&[
        "req",
        "-new",
        "-key",
        &p(&k),
        "-subj",
        "/OU=application/CN=app1",
        "-out",
        &p(&csr),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&s.ca.root_path()),
        "-CAkey",
        &p(&s.ca.dir().join("root.key")),
        "-set_serial",
        "4242",
        "-days",
        "1",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&client),
    ]);
    let r = curl(&s, "/sgw/v1/certs/root.pem", Some((&client, &k))).await;
    assert_eq!(r.status, 403, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"], "FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_app_leaves_the_list_and_its_certificate_is_404() {
    let mut s = setup().await;
    let b = bundle(&mut s.ca, "HTTPSAPP", s.dir.path(), 0);
    let (c, k) = certs(&b);
    s.ca.revoke_app(&AppId::new("app1").unwrap()).unwrap();
    s.server
        .publish(Published::from_ca(&s.ca).unwrap())
        .unwrap();
    let list = curl(&s, "/sgw/v1/certs/apps", Some((&c, &k))).await;
    let list: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["appId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["water-dashboard"]);
    assert_eq!(
        curl(&s, "/sgw/v1/certs/apps/app1.pem", Some((&c, &k)))
            .await
            .status,
        404
    );
}

/// One HTTP/1.1 request on an open tokio-rustls connection; `None` if the connection failed.
async fn request<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    tls: &mut S,
    path: &str,
    close: bool,
) -> Option<(u16, String)> {
    let conn = if close { "close" } else { "keep-alive" };
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: {conn}\r\n\r\n");
    tls.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tls.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(i) = text.find("\r\n\r\n") {
            let len: usize = text[..i]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= i + 4 + len {
                let status = text[9..12].parse().ok()?;
                return Some((status, text[i + 4..i + 4 + len].to_owned()));
            }
        }
    }
    None
}

async fn connect(s: &Setup, b: &Bundle) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let cfg = Arc::new(bundle_client_config(b));
    let tcp = tokio::net::TcpStream::connect(s.server.addr())
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_see_the_client_identity_from_the_certificate() {
    let mut s = setup().await;
    let b = bundle(&mut s.ca, "HTTPSWHO", s.dir.path(), 0);
    let mut tls = connect(&s, &b).await;
    let (status, body) = request(&mut tls, "/sgw/v1/whoami", true).await.unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["organization"], "HTTPSWHO");
    assert_eq!(v["commonName"], "HTTPSWHO");
    let serial = openssl(&["x509", "-noout", "-serial"], &b.path("tls/client.pem"));
    let serial = serial.trim().trim_start_matches("serial=").to_lowercase();
    assert_eq!(v["serial"].as_str().unwrap(), serial);
    // …in the same form as the CA index, so the platform can look it up.
    assert!(s.ca.index().certs.iter().any(|r| r.serial == serial));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_mid_session_fails_new_handshakes_but_not_the_open_connection() {
    let mut s = setup().await;
    let b = bundle(&mut s.ca, "HTTPSMID", s.dir.path(), 0);
    let mut open = connect(&s, &b).await;
    assert_eq!(
        request(&mut open, "/sgw/v1/crl.pem", false)
            .await
            .unwrap()
            .0,
        200
    );

    s.ca.revoke_gateway(&gw("HTTPSMID")).unwrap();
    s.server
        .publish(Published::from_ca(&s.ca).unwrap())
        .unwrap();

    // TLS 1.3: the client finishes its side of the handshake before the server has checked
    // the client certificate, so the refusal shows on the first read.
    let mut fresh = connect(&s, &b).await;
    assert_eq!(request(&mut fresh, "/sgw/v1/crl.pem", true).await, None);
    // Documented behaviour: the connection opened before the revocation is not cut.
    assert_eq!(
        request(&mut open, "/sgw/v1/certs/apps", true)
            .await
            .unwrap()
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_closes_every_connection_until_it_is_reachable_again() {
    let mut s = setup().await;
    let b = bundle(&mut s.ca, "HTTPSU", s.dir.path(), 0);
    let (c, k) = certs(&b);
    s.server.set_unreachable(true);
    let r = curl(&s, "/sgw/v1/crl.pem", Some((&c, &k))).await;
    assert!(!r.ok, "served while unreachable");
    assert_eq!(r.status, 0, "an HTTP response was sent");
    assert_eq!(s.server.closed_connections(), 1);
    assert!(s.server.requests().is_empty(), "{:?}", s.server.requests());
    s.server.set_unreachable(false);
    let r = curl(&s, "/sgw/v1/crl.pem", Some((&c, &k))).await;
    assert!(r.ok && r.status == 200, "{}", r.stderr);
    assert_eq!(s.server.closed_connections(), 1);
    assert_eq!(s.server.requests().len(), 1);
}
