//! The CA and the provisioning bundle, checked with OpenSSL's command line as the independent
//! verifier (SM-MUTUAL, SM-CERTEXP, SEC-CERT-1, SEC-CERT-2, SEC-CERT-3, DES-PROV).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;
use platform_sim::ca::{AppId, Ca, CaError};

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn verify(ca: &Ca, cert: &Path, purpose: &str) -> (bool, String) {
    let crl = ca.dir().join("crl.pem");
    openssl(&[
        "verify",
        "-CAfile",
        s(&ca.root_path()),
        "-crl_check",
        "-CRLfile",
        s(&crl),
        "-purpose",
        purpose,
        s(cert),
    ])
}

#[test]
fn every_issued_certificate_verifies_against_the_root_and_crl_with_openssl() {
    let (d, mut ca) = new_ca();
    let b = bundle(&mut ca, "CA1", d.path(), 1883);
    ca.issue_app(&AppId::new("app1").unwrap()).unwrap();
    let (tls, _) = ca.tls_server_paths();
    let (pdp, _) = ca.platform_dp_paths();
    for (cert, purpose) in [
        (b.path("tls/client.pem"), "sslclient"),
        (b.path("data-protection/gateway.pem"), "any"),
        (tls, "sslserver"),
        (pdp, "any"),
        (ca.dir().join("apps/app1.pem"), "any"),
    ] {
        let (ok, text) = verify(&ca, &cert, purpose);
        assert!(ok, "{}: {text}", cert.display());
    }
    // Negative control: the client certificate is not a TLS server certificate.
    let (ok, _) = verify(&ca, &b.path("tls/client.pem"), "sslserver");
    assert!(!ok);
}

#[test]
fn a_revoked_gateway_fails_openssl_crl_verification_and_another_still_passes() {
    let (d, mut ca) = new_ca();
    let a = bundle(&mut ca, "REVA", d.path(), 1883);
    let b = bundle(&mut ca, "REVB", d.path(), 1883);
    assert_eq!(ca.revoke_gateway(&gw("REVA")).unwrap(), 2);
    for f in ["tls/client.pem", "data-protection/gateway.pem"] {
        let (ok, text) = verify(&ca, &a.path(f), "any");
        assert!(!ok, "{f}: {text}");
        assert!(text.contains("certificate revoked"), "{f}: {text}");
        let (ok, text) = verify(&ca, &b.path(f), "any");
        assert!(ok, "{f}: {text}");
    }
    assert!(ca.is_gateway_revoked(&gw("REVA")));
    assert!(!ca.is_gateway_revoked(&gw("REVB")));
}

#[test]
fn the_client_certificate_has_o_and_cn_equal_to_the_gateway_id() {
    let (d, mut ca) = new_ca();
    let b = bundle(&mut ca, "GW0042", d.path(), 1883);
    let (_, subject) = openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
        "-in",
        s(&b.path("tls/client.pem")),
    ]);
    assert_eq!(subject.trim(), "subject=CN=GW0042,O=GW0042");
    let (_, ext) = openssl(&[
        "x509",
        "-noout",
        "-ext",
        "extendedKeyUsage",
        "-in",
        s(&b.path("tls/client.pem")),
    ]);
    assert!(ext.contains("TLS Web Client Authentication"), "{ext}");
}

#[test]
fn the_server_certificate_names_localhost_and_the_loopback_address() {
    let (_d, ca) = new_ca();
    let (tls, _) = ca.tls_server_paths();
    let (_, san) = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", s(&tls)]);
    assert!(san.contains("DNS:localhost"), "{san}");
    assert!(san.contains("IP Address:127.0.0.1"), "{san}");
}

#[test]
fn the_root_is_a_ca_allowed_to_sign_crls() {
    let (_d, ca) = new_ca();
    let (_, text) = openssl(&["x509", "-noout", "-text", "-in", s(&ca.root_path())]);
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("CRL Sign"), "{text}");
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
}

#[test]
fn each_crl_has_the_next_number_and_next_update_after_this_update() {
    let (d, mut ca) = new_ca();
    bundle(&mut ca, "CRLN", d.path(), 1883);
    let crl = ca.dir().join("crl.pem");
    let read = || {
        let (ok, text) = openssl(&[
            "crl",
            "-noout",
            "-crlnumber",
            "-lastupdate",
            "-nextupdate",
            "-dateopt",
            "iso_8601",
            "-in",
            s(&crl),
        ]);
        assert!(ok, "{text}");
        text
    };
    let first = read();
    assert!(first.contains("crlNumber=0x01"), "{first}");
    ca.revoke_gateway(&gw("CRLN")).unwrap();
    let second = read();
    assert!(second.contains("crlNumber=0x02"), "{second}");
    let field = |t: &str, k: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .trim()
            .to_owned()
    };
    let last: chrono::NaiveDateTime =
        chrono::NaiveDateTime::parse_from_str(&field(&second, "lastUpdate="), "%Y-%m-%d %H:%M:%SZ")
            .unwrap();
    let next: chrono::NaiveDateTime =
        chrono::NaiveDateTime::parse_from_str(&field(&second, "nextUpdate="), "%Y-%m-%d %H:%M:%SZ")
            .unwrap();
    assert!(next > last);
    assert!(next.and_utc() > chrono::Utc::now());
    // DES-CERT-3: valid 7 days (thisUpdate is back-dated by the 5 minutes of clock skew).
    let days = chrono::Duration::days(platform_sim::ca::CRL_VALIDITY_DAYS);
    assert_eq!(platform_sim::ca::CRL_VALIDITY_DAYS, 7);
    assert!(
        next - last >= days && next - last <= days + chrono::Duration::minutes(6),
        "{last} .. {next}"
    );
}

/// The role OIDs in a certificate's extended key usage as printed by the OpenSSL command line
/// (the independent reader).
fn eku_text(cert: &Path) -> String {
    let (ok, text) = openssl(&["x509", "-noout", "-ext", "extendedKeyUsage", "-in", s(cert)]);
    assert!(ok, "{text}");
    text
}

#[test]
fn every_data_protection_certificate_carries_exactly_its_role() {
    use gateway::security::Role;
    let (d, mut ca) = new_ca();
    let b = bundle(&mut ca, "ROLE1", d.path(), 1883);
    ca.issue_app(&AppId::new("app1").unwrap()).unwrap();
    let (pdp, _) = ca.platform_dp_paths();
    for (cert, role) in [
        (pdp, Role::Platform),
        (b.path("data-protection/gateway.pem"), Role::Gateway),
        (ca.dir().join("apps/app1.pem"), Role::Application),
    ] {
        let text = eku_text(&cert);
        for r in Role::ALL {
            assert_eq!(
                text.contains(r.eku_oid()),
                r == role,
                "{}: {text}",
                cert.display()
            );
        }
    }
    // TLS certificates carry no data-protection role.
    let text = eku_text(&b.path("tls/client.pem"));
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!text.contains("2.25."), "{text}");
}

#[test]
fn the_cas_certificates_pass_only_as_their_own_peer() {
    use gateway::security::cert::validate_cert;
    use gateway::security::{Identity, SecurityError};
    let (d, mut ca) = new_ca();
    let b1 = bundle(&mut ca, "ROLE1", d.path(), 1883);
    let b2 = bundle(&mut ca, "ROLE2", d.path(), 1883);
    let app = ca.issue_app(&AppId::new("app1").unwrap()).unwrap();
    let root = openssl::x509::X509::from_pem(ca.root_pem().as_bytes()).unwrap();
    let crl = openssl::x509::X509Crl::from_pem(ca.crl_pem().unwrap().as_bytes()).unwrap();
    let x = |p: &Path| openssl::x509::X509::from_pem(&std::fs::read(p).unwrap()).unwrap();
    let platform = x(&ca.platform_dp_paths().0);
    let gw1 = x(&b1.path("data-protection/gateway.pem"));
    let gw2 = x(&b2.path("data-protection/gateway.pem"));
    let client1 = x(&b1.path("tls/client.pem"));
    let app1 = openssl::x509::X509::from_pem(app.cert_pem.as_bytes()).unwrap();
    let now = chrono::Utc::now();
    let v = |c: &openssl::x509::X509, who: Identity| validate_cert(c, &who, &root, Some(&crl), now);
    v(&platform, Identity::platform()).unwrap();
    v(&gw1, Identity::gateway("ROLE1")).unwrap();
    v(&gw2, Identity::gateway("ROLE2")).unwrap();
    v(&app1, Identity::application("app1")).unwrap();
    for (c, who) in [
        (&gw2, Identity::platform()),
        (&app1, Identity::platform()),
        (&gw2, Identity::gateway("ROLE1")),
        (&platform, Identity::gateway("ROLE1")),
        (&client1, Identity::gateway("ROLE1")),
        (&gw1, Identity::application("ROLE1")),
    ] {
        assert!(
            matches!(v(c, who.clone()), Err(SecurityError::CertWrongRole)),
            "{who}"
        );
    }
}

#[test]
fn another_gateways_certificate_as_platform_pem_is_refused_by_the_key_store() {
    use gateway::security::{KeyStore, SecurityError};
    let (d, mut ca) = new_ca();
    let b1 = bundle(&mut ca, "ROLE1", d.path(), 1883);
    let b2 = bundle(&mut ca, "ROLE2", d.path(), 1883);
    let dp = b1.path("data-protection");
    // As provisioned: loads.
    KeyStore::load_dir(&dp, "gateway").unwrap();
    // ROLE2's data-protection certificate (same root, valid, not revoked) as platform.pem.
    std::fs::copy(
        b2.path("data-protection/gateway.pem"),
        dp.join("platform.pem"),
    )
    .unwrap();
    assert!(matches!(
        KeyStore::load_dir(&dp, "gateway"),
        Err(SecurityError::CertWrongRole)
    ));
    // The real platform certificate followed by the root: not exactly one certificate.
    let mut chain = std::fs::read(ca.platform_dp_paths().0).unwrap();
    chain.extend_from_slice(ca.root_pem().as_bytes());
    std::fs::write(dp.join("platform.pem"), chain).unwrap();
    assert!(matches!(
        KeyStore::load_dir(&dp, "gateway"),
        Err(SecurityError::NotOneCertificate(2))
    ));
}

#[test]
fn an_older_crl_of_the_ca_cannot_undo_a_revocation() {
    use gateway::security::{DataSecurity, Identity, KeyStore, SecurityError};
    let (d, mut ca) = new_ca();
    let b = bundle(&mut ca, "ROLL1", d.path(), 1883);
    let (cert, key) = ca.platform_dp_paths();
    let keys = KeyStore::from_pem(
        &std::fs::read(key).unwrap(),
        &std::fs::read(cert).unwrap(),
        ca.root_pem().as_bytes(),
    )
    .unwrap();
    let mut ds = DataSecurity::new(keys);
    let now = chrono::Utc::now();
    let before = ca.crl_pem().unwrap();
    ds.update_crl(before.as_bytes(), now).unwrap();
    ds.update_peer(
        Identity::gateway("ROLL1"),
        &std::fs::read(b.path("data-protection/gateway.pem")).unwrap(),
        now,
    )
    .unwrap();
    ca.revoke_gateway(&gw("ROLL1")).unwrap();
    ds.update_crl(ca.crl_der().unwrap().as_slice(), now)
        .unwrap();
    assert!(matches!(
        ds.validate_peer("ROLL1", now),
        Err(SecurityError::CertRevoked)
    ));
    // The CRL before the revocation is still current (7 days) but has a smaller number.
    assert!(matches!(
        ds.update_crl(before.as_bytes(), now),
        Err(SecurityError::CrlRollback)
    ));
    assert!(matches!(
        ds.validate_peer("ROLL1", now),
        Err(SecurityError::CertRevoked)
    ));
    // The same CRL fetched again is fine; a re-signed (newer) one is taken.
    ds.update_crl(ca.crl_pem().unwrap().as_bytes(), now)
        .unwrap();
    let n = ca.index().crl_number;
    ca.sign_crl().unwrap();
    assert_eq!(ca.index().crl_number, n + 1);
    ds.update_crl(ca.crl_pem().unwrap().as_bytes(), now)
        .unwrap();
}

#[test]
fn revocations_survive_reopening_the_state_directory_and_reload_sees_them() {
    let (d, mut ca) = new_ca();
    bundle(&mut ca, "PERSIST", d.path(), 1883);
    let mut other = Ca::open(ca.dir()).unwrap();
    ca.revoke_gateway(&gw("PERSIST")).unwrap();
    assert!(!other.is_gateway_revoked(&gw("PERSIST")));
    assert!(other.reload().unwrap(), "CRL number change not noticed");
    assert!(other.is_gateway_revoked(&gw("PERSIST")));
    let reopened = Ca::open(ca.dir()).unwrap();
    assert!(reopened.is_gateway_revoked(&gw("PERSIST")));
    // The reopened CA still issues certificates that chain to the same root.
    let mut reopened = reopened;
    let b = bundle(&mut reopened, "AFTER", d.path(), 1883);
    let (ok, text) = verify(&reopened, &b.path("tls/client.pem"), "sslclient");
    assert!(ok, "{text}");
}

#[test]
fn revoking_an_unknown_subject_and_bad_app_ids_are_errors() {
    let (_d, mut ca) = new_ca();
    assert!(matches!(
        ca.revoke_gateway(&gw("NOSUCH")),
        Err(CaError::UnknownSubject(_))
    ));
    for bad in ["", "../x", "a/b", ".hidden", &"x".repeat(65), "platform"] {
        assert!(AppId::new(bad).is_err(), "{bad:?}");
    }
    AppId::new("platform2").unwrap();
    assert!(matches!(Ca::create(ca.dir()), Err(CaError::Exists(_))));
}

#[test]
fn private_keys_in_the_bundle_and_the_ca_are_owner_only() {
    let (d, mut ca) = new_ca();
    ca.issue_app(&AppId::new("app1").unwrap()).unwrap();
    let b = bundle(&mut ca, "PERMS", d.path(), 1883);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for k in ["tls/client.key", "data-protection/gateway.key"] {
        assert_eq!(mode(&b.path(k)), 0o600, "{k}");
    }
    for k in [
        "root.key",
        "platform-tls.key",
        "platform-dp.key",
        "apps/app1.key",
    ] {
        assert_eq!(mode(&ca.dir().join(k)), 0o600, "{k}");
    }
    // Re-provisioning over an existing bundle whose key was loosened tightens it again.
    std::fs::set_permissions(
        b.path("tls/client.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let b = bundle(&mut ca, "PERMS", d.path(), 1883);
    assert_eq!(mode(&b.path("tls/client.key")), 0o600);
    // Gateway private keys are not kept by the CA.
    let kept: Vec<_> = walk(ca.dir());
    assert!(
        !kept
            .iter()
            .any(|p| p.contains("gateways") && p.ends_with(".key")),
        "{kept:?}"
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn bundle_keys_match_their_certificates() {
    let (d, mut ca) = new_ca();
    let b = bundle(&mut ca, "KEYS", d.path(), 1883);
    for (c, k) in [
        ("tls/client.pem", "tls/client.key"),
        ("data-protection/gateway.pem", "data-protection/gateway.key"),
    ] {
        let (_, cm) = openssl(&["x509", "-noout", "-modulus", "-in", s(&b.path(c))]);
        let (_, km) = openssl(&["rsa", "-noout", "-modulus", "-in", s(&b.path(k))]);
        assert!(cm.starts_with("Modulus="), "{cm}");
        assert_eq!(cm, km, "{c}");
    }
    // Client and data-protection keys are distinct.
    let (_, a) = openssl(&[
        "rsa",
        "-noout",
        "-modulus",
        "-in",
        s(&b.path("tls/client.key")),
    ]);
    let (_, g) = openssl(&[
        "rsa",
        "-noout",
        "-modulus",
        "-in",
        s(&b.path("data-protection/gateway.key")),
    ]);
    assert_ne!(a, g);
}

#[test]
fn gateway_toml_names_the_gateway_endpoints_datasets_and_masking_rules() {
    let (d, mut ca) = new_ca();
    let b = bundle(&mut ca, "TOML1", d.path(), 18883);
    // Read as plain TOML, not through the gateway's own type.
    let v: toml::Value =
        toml::from_str(&std::fs::read_to_string(b.path("gateway.toml")).unwrap()).unwrap();
    assert_eq!(v["gateway"]["id"].as_str(), Some("TOML1"));
    assert_eq!(
        v["platform"]["mqtt_url"].as_str(),
        Some("mqtts://localhost:18883")
    );
    assert_eq!(v["platform"]["keep_alive_sec"].as_integer(), Some(60));
    assert_eq!(
        v["platform"]["max_records_per_message"].as_integer(),
        Some(1000)
    );
    let ds = v["datasets"].as_array().unwrap();
    let names: Vec<&str> = ds.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pipe_ledger", "billing", "meter_reading"]);
    // Billing: the columns are the legacy system's header texts (DES-CSV-3); name and address
    // are masked, nothing else.
    let billing: Vec<(&str, bool)> = ds[1]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["masked"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        billing,
        [
            ("お客様番号", false),
            ("氏名", true),
            ("住所", true),
            ("メーター番号", false),
            ("請求年月", false),
            ("使用水量", false),
            ("請求金額", false),
        ]
    );
    assert_eq!(ds[1]["encoding"].as_str(), Some("utf-8"));
    assert_eq!(ds[1]["header_row"].as_bool(), Some(true));
    for section in ["tls", "data_protection"] {
        for (k, p) in v[section].as_table().unwrap() {
            if let Some(p) = p.as_str() {
                assert!(b.path(p).is_file(), "{section}.{k}");
            }
        }
    }
    // The masking key is named, not written (SEC-MASK-2): the utility makes it.
    assert_eq!(v["masking"]["active_key"].as_str(), Some("k1"));
    assert_eq!(v["masking"]["keys_dir"].as_str(), Some("masking"));
    assert!(!b.path("masking").exists());
    // The FTPS certificate is the utility's too (DES-FTP-2).
    assert_eq!(v["ftp"]["tls_cert"].as_str(), Some("ftp/server.pem"));
    assert!(!b.path("ftp").exists());
    // Each FTP user's initial password is returned once; gateway.toml holds only its Argon2id
    // hash, which verifies it and no other password.
    for d in ds {
        let user = d["ftp_user"].as_str().unwrap();
        let phc = d["ftp_password_hash"].as_str().unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let hash = gateway::config::PasswordHash::new(phc).unwrap();
        let password = &b.ftp_passwords[user];
        assert!(password.len() >= 20, "{password}");
        assert!(gateway::config::verify_password(password, &hash));
        assert!(!gateway::config::verify_password("wrong", &hash));
        let text = std::fs::read_to_string(b.path("gateway.toml")).unwrap();
        assert!(!text.contains(password.as_str()));
    }
    // The bundle's CA and root are the CA's root; its CRL is the current one.
    assert_eq!(
        std::fs::read(b.path("tls/ca.pem")).unwrap(),
        std::fs::read(ca.root_path()).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(b.path("data-protection/crl.pem")).unwrap(),
        ca.crl_pem().unwrap()
    );
}

/// What the utility adds on its side: the FTPS server certificate of its LAN (DES-FTP-2),
/// self-signed here with OpenSSL's command line.
fn add_ftps_certificate(b: &platform_sim::provision::Bundle) {
    std::fs::create_dir_all(b.path("ftp")).unwrap();
    let (ok, text) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=sgw.utility.lan",
        "-days",
        "2",
        "-keyout",
        s(&b.path("ftp/server.key")),
        "-out",
        s(&b.path("ftp/server.pem")),
    ]);
    assert!(ok, "{text}");
    std::fs::set_permissions(
        b.path("ftp/server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

#[test]
fn a_provisioned_bundle_loads_into_the_gateway_config_and_is_clean_once_the_utility_adds_its_keys()
{
    let (d, mut ca) = new_ca();
    let b = bundle(&mut ca, "CFG1", d.path(), 1883);
    let loaded = gateway::config::Config::load(&b.dir).unwrap();
    assert_eq!(loaded, b.config);
    assert_eq!(loaded.gateway.id.as_str(), "CFG1");
    assert_eq!(
        loaded.tls.client_key.path(),
        b.dir.join("tls/client.key").as_path()
    );
    // As provisioned, exactly what the utility still has to add is missing.
    let keys = |ps: Vec<gateway::config::Problem>| {
        let mut k: Vec<String> = ps.into_iter().map(|p| p.key).collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(gateway::config::check_bundle(&b.dir)),
        ["ftp.tls_cert", "ftp.tls_key", "masking.active_key"]
    );
    // `sgw masking-key new` (the same function) makes the key on the gateway's side.
    let k = gateway::config::new_masking_key(&b.dir, None).unwrap();
    assert_eq!(k.path, b.dir.join("masking/k1.key"));
    assert!(k.active);
    let mode = std::fs::metadata(&k.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let hex_text = std::fs::read_to_string(&k.path).unwrap();
    assert_eq!(hex::decode(hex_text.trim()).unwrap().len(), 32);
    assert!(matches!(
        gateway::config::new_masking_key(&b.dir, None),
        Err(gateway::config::MaskingKeyError::Exists(_))
    ));
    assert_eq!(std::fs::read_to_string(&k.path).unwrap(), hex_text);
    assert_eq!(
        keys(gateway::config::check_bundle(&b.dir)),
        ["ftp.tls_cert", "ftp.tls_key"]
    );
    add_ftps_certificate(&b);
    assert_eq!(gateway::config::check_bundle(&b.dir), []);
    // The protocol core's configuration comes from it.
    let core = loaded.protocol_config();
    assert_eq!(core.gateway_id.as_str(), "CFG1");
    assert_eq!(
        core.datasets.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        ["pipe_ledger", "billing", "meter_reading"]
    );
    // Another gateway's utility key is another key.
    let other = bundle(&mut ca, "CFG2", d.path(), 1883);
    let k2 = gateway::config::new_masking_key(&other.dir, None).unwrap();
    assert_ne!(
        std::fs::read(&k2.path).unwrap(),
        std::fs::read(&k.path).unwrap()
    );
}

#[test]
fn the_cli_provisions_revokes_and_explains_every_command() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let out = d.path().join("bundle");
    let run = |args: &[&str]| {
        let o = Command::new(bin()).args(args).output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, stdout, err) = run(&[
        "provision",
        "--gateway",
        "CLI1",
        "--out",
        s(&out),
        "--state-dir",
        s(&state),
        "--mqtt-port",
        "18884",
    ]);
    assert!(ok, "{err}");
    assert!(out.join("tls/client.key").is_file());
    // Every FTP user's initial password is printed once and verifies against its hash.
    let written: toml::Value =
        toml::from_str(&std::fs::read_to_string(out.join("gateway.toml")).unwrap()).unwrap();
    for d in written["datasets"].as_array().unwrap() {
        let user = d["ftp_user"].as_str().unwrap();
        let prefix = format!("initial FTP password of user {user}: ");
        let password = stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("{stdout}"));
        let hash =
            gateway::config::PasswordHash::new(d["ftp_password_hash"].as_str().unwrap()).unwrap();
        assert!(gateway::config::verify_password(password, &hash));
    }
    assert!(stdout.contains("sgw masking-key new"), "{stdout}");
    assert!(!out.join("masking").exists());
    let (ok, stdout, err) = run(&["revoke", "--state-dir", s(&state), "--gateway", "CLI1"]);
    assert!(ok, "{err}");
    assert!(stdout.contains("revoked 2 certificate(s)"), "{stdout}");
    let ca = Ca::open(&state).unwrap();
    assert!(ca.is_gateway_revoked(&gw("CLI1")));
    // Refusals.
    assert!(
        !run(&[
            "provision",
            "--gateway",
            "bad-id",
            "--out",
            s(&out),
            "--state-dir",
            s(&state)
        ])
        .0
    );
    assert!(!run(&["revoke", "--state-dir", s(&state), "--gateway", "NOSUCH"]).0);
    assert!(!run(&["revoke", "--state-dir", s(&state)]).0);
    assert!(
        !run(&[
            "revoke",
            "--state-dir",
            s(&state),
            "--gateway",
            "CLI1",
            "--app",
            "a"
        ])
        .0
    );
    // Help on every command says what it does.
    for (cmd, phrase) in [
        ("run", "until Ctrl-C"),
        ("provision", "provisioning bundle"),
        ("revoke", "re-sign the CRL"),
    ] {
        let (ok, stdout, _) = run(&[cmd, "--help"]);
        assert!(ok);
        assert!(stdout.contains(phrase), "{cmd}: {stdout}");
    }
}

#[test]
fn the_crl_is_re_signed_only_when_its_next_update_is_near() {
    let (_d, mut ca) = new_ca();
    let n = ca.index().crl_number;
    assert!(!ca.refresh_crl_if_due(chrono::Duration::hours(1)).unwrap());
    assert_eq!(ca.index().crl_number, n);
    // A margin longer than the CRL's validity makes it due.
    let margin =
        chrono::Duration::days(platform_sim::ca::CRL_VALIDITY_DAYS) + chrono::Duration::hours(1);
    assert!(ca.refresh_crl_if_due(margin).unwrap());
    assert_eq!(ca.index().crl_number, n + 1);
    // The running simulator's margin (6 days): a fresh CRL is not due; a margin a day longer
    // makes it due, i.e. the CRL is re-signed once it is a day old.
    assert!(
        !ca.refresh_crl_if_due(platform_sim::ca::crl_refresh_margin())
            .unwrap()
    );
    assert!(
        ca.refresh_crl_if_due(
            platform_sim::ca::crl_refresh_margin() + chrono::Duration::minutes(24 * 60 + 1)
        )
        .unwrap()
    );
    let (ok, text) = openssl(&[
        "crl",
        "-noout",
        "-crlnumber",
        "-in",
        s(&ca.dir().join("crl.pem")),
    ]);
    assert!(ok && text.contains("crlNumber=0x03"), "{text}");
}

#[test]
fn the_faulty_platform_certificates_fail_validation_as_expired_and_as_revoked() {
    use gateway::security::SecurityError;
    use gateway::security::cert::validate_cert;
    use platform_sim::ca::FaultyCert;
    let (_d, mut ca) = new_ca();
    let root = openssl::x509::X509::from_pem(ca.root_pem().as_bytes()).unwrap();
    let expired = ca.issue_faulty_platform_dp(FaultyCert::Expired).unwrap();
    let revoked = ca.issue_faulty_platform_dp(FaultyCert::Revoked).unwrap();
    let crl = openssl::x509::X509Crl::from_pem(ca.crl_pem().unwrap().as_bytes()).unwrap();
    let now = chrono::Utc::now();
    let check = |pem: &str| {
        validate_cert(
            &openssl::x509::X509::from_pem(pem.as_bytes()).unwrap(),
            &gateway::security::Identity::platform(),
            &root,
            Some(&crl),
            now,
        )
    };
    assert!(matches!(
        check(&expired.cert_pem),
        Err(SecurityError::CertExpired)
    ));
    assert!(matches!(
        check(&revoked.cert_pem),
        Err(SecurityError::CertRevoked)
    ));
    // The real platform certificate is untouched and still valid.
    let (real, _) = ca.platform_dp_paths();
    assert!(check(&std::fs::read_to_string(real).unwrap()).is_ok());
}

#[test]
fn two_writers_of_one_state_directory_lose_no_update() {
    // `platform-sim run` holds a CA open while `provision` and `revoke` (other processes) write
    // the same directory: every write starts from what is on disk, under an exclusive lock.
    let (_d, a) = new_ca();
    let dir = a.dir().to_owned();
    let mut a = a;
    let mut b = platform_sim::ca::Ca::open(&dir).unwrap();
    a.issue_gateway(&gw("GWA")).unwrap();
    // b's in-memory index predates GWA: its write must not drop it.
    b.issue_gateway(&gw("GWB")).unwrap();
    a.revoke_gateway(&gw("GWB")).unwrap();
    let fresh = platform_sim::ca::Ca::open(&dir).unwrap();
    let subjects: Vec<&str> = fresh
        .index()
        .certs
        .iter()
        .map(|c| c.subject.as_str())
        .collect();
    assert!(
        subjects.contains(&"GWA") && subjects.contains(&"GWB"),
        "{subjects:?}"
    );
    assert!(fresh.is_gateway_revoked(&gw("GWB")));
    assert!(!fresh.is_gateway_revoked(&gw("GWA")));
    // Concurrent writers in threads, each with its own handle: all 8 gateways recorded.
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut ca = platform_sim::ca::Ca::open(&dir).unwrap();
                for i in 0..4 {
                    ca.issue_gateway(&gw(&format!("GWT{t}{i}"))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let fresh = platform_sim::ca::Ca::open(&dir).unwrap();
    let n = fresh
        .index()
        .certs
        .iter()
        .filter(|c| c.subject.starts_with("GWT"))
        .count();
    assert_eq!(n, 16, "2 certificates for each of 8 gateways");
}
