//! Shared fixtures of the security tests: a throw-away PKI made with the openssl crate
//! (root CA, gateway, platform and application certificates, CRLs). Keys are generated once per
//! test binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use gateway::security::{DataSecurity, Identity, KeyStore, MaskingKeys, Role};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{
    X509, X509Builder, X509Crl, X509CrlBuilder, X509NameBuilder, X509RevokedBuilder,
};

pub const DAY: i64 = 86_400;

pub struct Party {
    pub key: PKey<Private>,
    pub cert: X509,
}

pub struct Pki {
    pub root_key: PKey<Private>,
    pub root: X509,
    pub gateway: Party,
    pub platform: Party,
    pub app: Party,
    /// A second root with the same subject name but another key (for "untrusted" tests).
    pub rogue_root_key: PKey<Private>,
    pub spare_key: PKey<Private>,
}

pub fn rsa(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
}

pub fn t(offset_secs: i64) -> Asn1Time {
    Asn1Time::from_unix(Utc::now().timestamp() + offset_secs).unwrap()
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("O", "SGW test").unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

pub fn make_root(key: &PKey<Private>, cn: &str) -> X509 {
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(1).unwrap()).unwrap())
        .unwrap();
    let n = name(cn);
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(&n).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&t(-DAY)).unwrap();
    b.set_not_after(&t(3650 * DAY)).unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.append_extension(KeyUsage::new().key_cert_sign().crl_sign().build().unwrap())
        .unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(ski).unwrap();
    b.sign(key, MessageDigest::sha256()).unwrap();
    b.build()
}

/// The role the fixtures give a certificate named `cn`, as the platform's CA does
/// (DES-CERT-4 step 3): `platform` → platform, `GW…` → gateway, anything else → application.
pub fn role_of(cn: &str) -> Role {
    if cn == "platform" {
        Role::Platform
    } else if cn.starts_with("GW") {
        Role::Gateway
    } else {
        Role::Application
    }
}

/// The key store identity of a fixture certificate named `cn` (role by [`role_of`]).
pub fn identity_of(cn: &str) -> Identity {
    match role_of(cn) {
        Role::Platform => Identity::platform(),
        Role::Gateway => Identity::gateway(cn),
        Role::Application => Identity::application(cn),
    }
}

/// Issue a leaf certificate for `key` named `cn`, signed by `issuer_key` with issuer `issuer`,
/// with the extended key usage of its role ([`role_of`]).
pub fn issue(
    issuer_key: &PKey<Private>,
    issuer: &X509,
    cn: &str,
    key: &PKey<Private>,
    serial: u32,
    not_before: i64,
    not_after: i64,
) -> X509 {
    let eku = [role_of(cn).eku_oid()];
    issue_with_eku(
        issuer_key,
        issuer,
        cn,
        key,
        serial,
        not_before,
        not_after,
        Some(&eku),
    )
}

/// [`issue`] with the given extended key usage OIDs (`None`: no extension at all).
#[allow(clippy::too_many_arguments)]
pub fn issue_with_eku(
    issuer_key: &PKey<Private>,
    issuer: &X509,
    cn: &str,
    key: &PKey<Private>,
    serial: u32,
    not_before: i64,
    not_after: i64,
    eku: Option<&[&str]>,
) -> X509 {
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(serial).unwrap()).unwrap())
        .unwrap();
    b.set_subject_name(&name(cn)).unwrap();
    b.set_issuer_name(issuer.subject_name()).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&t(not_before)).unwrap();
    b.set_not_after(&t(not_after)).unwrap();
    b.append_extension(BasicConstraints::new().build().unwrap())
        .unwrap();
    if let Some(oids) = eku {
        let mut e = ExtendedKeyUsage::new();
        for o in oids {
            e.other(o);
        }
        b.append_extension(e.build().unwrap()).unwrap();
    }
    b.sign(issuer_key, MessageDigest::sha256()).unwrap();
    b.build()
}

/// The subject CN of `cert`.
pub fn cn_of(cert: &X509) -> String {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap()
}

/// A CRL by `issuer_key`/`issuer` revoking `serials`, thisUpdate/nextUpdate as offsets from now.
/// Its CRL number is one more than that of the CRL made before it in this test binary (as a CA
/// numbers its CRLs), so a CRL made later replaces one made earlier (DES-CERT-3).
pub fn make_crl(
    issuer_key: &PKey<Private>,
    issuer: &X509,
    serials: &[u32],
    this_update: i64,
    next_update: Option<i64>,
) -> X509Crl {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    make_crl_numbered(
        issuer_key,
        issuer,
        serials,
        this_update,
        next_update,
        number,
    )
}

/// [`make_crl`] with CRL number `number` (the openssl crate cannot build a CRL without one).
pub fn make_crl_numbered(
    issuer_key: &PKey<Private>,
    issuer: &X509,
    serials: &[u32],
    this_update: i64,
    next_update: Option<i64>,
    number: u32,
) -> X509Crl {
    let mut b = X509CrlBuilder::new().unwrap();
    b.set_issuer_name(issuer.subject_name()).unwrap();
    let ctx_builder = X509Builder::new().unwrap();
    let aki = AuthorityKeyIdentifier::new()
        .keyid(false)
        .build(&ctx_builder.x509v3_context(Some(issuer), None))
        .unwrap();
    b.append_extension(aki).unwrap();
    b.append_extension(
        openssl::x509::CrlNumber::new(BigNum::from_u32(number).unwrap())
            .unwrap()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.set_last_update(&t(this_update)).unwrap();
    if let Some(n) = next_update {
        b.set_next_update(&t(n)).unwrap();
    }
    for s in serials {
        let mut r = X509RevokedBuilder::new().unwrap();
        r.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(*s).unwrap()).unwrap())
            .unwrap();
        r.set_revocation_date(&t(-3600)).unwrap();
        b.add_revoked(r.build()).unwrap();
    }
    b.sign(issuer_key, MessageDigest::sha256()).unwrap();
    b.build().unwrap()
}

pub fn fresh_crl(p: &Pki) -> X509Crl {
    make_crl(&p.root_key, &p.root, &[999], -3600, Some(7 * DAY))
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root_key = rsa(2048);
        let root = make_root(&root_key, "SGW Test Root");
        let party = |cn: &str, serial: u32| {
            let key = rsa(2048);
            let cert = issue(&root_key, &root, cn, &key, serial, -DAY, 365 * DAY);
            Party { key, cert }
        };
        let gateway = party("GW0001", 10);
        let platform = party("platform", 11);
        let app = party("APP01", 12);
        Pki {
            rogue_root_key: rsa(2048),
            spare_key: rsa(2048),
            root_key,
            root,
            gateway,
            platform,
            app,
        }
    })
}

fn store(own: &Party, peers: &[(&str, &X509)]) -> KeyStore {
    let p = pki();
    let mut ks = KeyStore::new(own.key.clone(), own.cert.clone(), p.root.clone()).unwrap();
    for (n, c) in peers {
        ks.add_peer(identity_of(n), (*c).clone()).unwrap();
    }
    ks.set_crl(fresh_crl(p));
    ks
}

/// The gateway's facade: peers `platform` and `APP01`.
pub fn gateway_ds() -> DataSecurity {
    let p = pki();
    DataSecurity::new(store(
        &p.gateway,
        &[("platform", &p.platform.cert), ("APP01", &p.app.cert)],
    ))
    .with_masking(MaskingKeys::new("k1", &[7u8; 32]).unwrap())
}

/// The platform's facade: peers `GW0001` and `APP01`.
pub fn platform_ds() -> DataSecurity {
    let p = pki();
    DataSecurity::new(store(
        &p.platform,
        &[("GW0001", &p.gateway.cert), ("APP01", &p.app.cert)],
    ))
}

/// The platform's facade with peer `GW0001` under a current CRL revoking `serials`
/// (the gateway's certificate has serial 10).
pub fn platform_ds_revoking(serials: &[u32]) -> DataSecurity {
    let p = pki();
    let mut ks = KeyStore::new(
        p.platform.key.clone(),
        p.platform.cert.clone(),
        p.root.clone(),
    )
    .unwrap();
    ks.add_peer(Identity::gateway("GW0001"), p.gateway.cert.clone())
        .unwrap();
    ks.set_crl(make_crl(&p.root_key, &p.root, serials, -3600, Some(DAY)));
    DataSecurity::new(ks)
}

/// The application's facade: peers `GW0001` and `platform`.
pub fn app_ds() -> DataSecurity {
    let p = pki();
    DataSecurity::new(store(
        &p.app,
        &[("GW0001", &p.gateway.cert), ("platform", &p.platform.cert)],
    ))
}

/// Write PEM files of the PKI into `dir` for the Python cross-checks.
pub fn write_pems(dir: &std::path::Path) {
    let p = pki();
    let w = |n: &str, b: Vec<u8>| std::fs::write(dir.join(n), b).unwrap();
    w("root.pem", p.root.to_pem().unwrap());
    w("gateway.pem", p.gateway.cert.to_pem().unwrap());
    w(
        "gateway.key",
        p.gateway.key.private_key_to_pem_pkcs8().unwrap(),
    );
    w("platform.pem", p.platform.cert.to_pem().unwrap());
    w(
        "platform.key",
        p.platform.key.private_key_to_pem_pkcs8().unwrap(),
    );
}

/// Run `python3 scripts/crosscheck/<script> <args>` from the repository root; returns
/// (success, stdout, stderr). Panics if python3 cannot be started (CI installs it).
pub fn python(script: &str, args: &[&str], stdin: Option<&[u8]>) -> (bool, Vec<u8>, String) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut child = Command::new("python3")
        .arg(root.join("scripts/crosscheck").join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed for the cross-checks (see scripts/requirements.txt)");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
