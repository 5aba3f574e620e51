//! Trust rules of protocol revision 1.1 (plan G): role pinning of data-protection certificates
//! (DES-CERT-4 step 3, `CertWrongRole`), CRL rollback protection (DES-CERT-3, `CrlRollback`)
//! and exactly one certificate per peer PEM (DES-CERT-2, `NotOneCertificate`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use gateway::security::cert::{ROLE_OID_ARC, Role, validate_cert};
use gateway::security::{DataSecurity, Identity, KeyStore, SecurityError};
use openssl::x509::X509;
use security_common::*;

fn pem(c: &X509) -> Vec<u8> {
    c.to_pem().unwrap()
}

/// A certificate of the test root for `key`, named `cn`, with the extended key usage `eku`.
fn cert(cn: &str, serial: u32, eku: Option<&[&str]>) -> X509 {
    let p = pki();
    issue_with_eku(
        &p.root_key,
        &p.root,
        cn,
        &p.spare_key,
        serial,
        -DAY,
        DAY,
        eku,
    )
}

fn role(r: Role) -> [&'static str; 1] {
    [r.eku_oid()]
}

// ---- DES-CERT-4 step 3: role (extended key usage) and subject CN ------------------------------

#[test]
fn the_role_oids_are_the_uuid_arc_plus_one_two_three() {
    assert_eq!(
        ROLE_OID_ARC,
        format!("2.25.{}", 0xa7ad70d7_5c49_4b24_b382_d7b58589c577_u128)
    );
    for (r, n) in [
        (Role::Platform, 1),
        (Role::Gateway, 2),
        (Role::Application, 3),
    ] {
        assert_eq!(r.eku_oid(), format!("{ROLE_OID_ARC}.{n}"));
        assert_eq!(Role::from_eku_oid(r.eku_oid()), Some(r));
    }
}

#[test]
fn the_fixture_certificates_of_each_role_pass_as_that_peer() {
    let p = pki();
    let crl = fresh_crl(p);
    let v = |c: &X509, who: &Identity| validate_cert(c, who, &p.root, Some(&crl), now());
    v(&p.platform.cert, &Identity::platform()).unwrap();
    v(&p.gateway.cert, &Identity::gateway("GW0001")).unwrap();
    v(&p.app.cert, &Identity::application("APP01")).unwrap();
    // Other purposes next to the role are ignored.
    let c = cert(
        "platform",
        400,
        Some(&[Role::Platform.eku_oid(), "1.3.6.1.5.5.7.3.2"]),
    );
    v(&c, &Identity::platform()).unwrap();
}

#[test]
fn each_certificate_is_refused_as_any_other_peer() {
    let p = pki();
    let crl = fresh_crl(p);
    let v = |c: &X509, who: Identity| validate_cert(c, &who, &p.root, Some(&crl), now());
    let cases: [(&X509, Identity); 6] = [
        (&p.gateway.cert, Identity::platform()),
        (&p.app.cert, Identity::platform()),
        (&p.platform.cert, Identity::gateway("GW0001")),
        (&p.gateway.cert, Identity::gateway("GW0002")),
        (&p.gateway.cert, Identity::application("GW0001")),
        (&p.app.cert, Identity::application("APP02")),
    ];
    for (c, who) in cases {
        assert!(
            matches!(v(c, who.clone()), Err(SecurityError::CertWrongRole)),
            "{} as {who}",
            cn_of(c)
        );
    }
}

#[test]
fn a_certificate_without_the_role_extension_or_with_two_roles_is_refused() {
    let p = pki();
    let crl = fresh_crl(p);
    let v = |c: &X509| validate_cert(c, &Identity::platform(), &p.root, Some(&crl), now());
    let no_eku = cert("platform", 401, None);
    let client_auth_only = cert("platform", 402, Some(&["1.3.6.1.5.5.7.3.2"]));
    let two_roles = cert(
        "platform",
        403,
        Some(&[Role::Platform.eku_oid(), Role::Gateway.eku_oid()]),
    );
    // An application certificate whose CN is `platform`: the name alone is not enough.
    let app_named_platform = cert("platform", 404, Some(&role(Role::Application)));
    // A sibling OID of the arc that is no role.
    let arc_four = format!("{ROLE_OID_ARC}.4");
    let not_a_role = cert("platform", 405, Some(&[arc_four.as_str()]));
    for c in [
        &no_eku,
        &client_auth_only,
        &two_roles,
        &app_named_platform,
        &not_a_role,
    ] {
        assert!(matches!(v(c), Err(SecurityError::CertWrongRole)));
    }
    // Control: the same certificate shape with the platform role alone passes.
    v(&cert("platform", 406, Some(&role(Role::Platform)))).unwrap();
}

#[test]
fn the_role_step_comes_after_the_signature_and_before_the_period() {
    let p = pki();
    let crl = fresh_crl(p);
    let who = Identity::platform();
    // A gateway certificate under the root's name signed by another key: untrusted first.
    let forged = issue(
        &p.rogue_root_key,
        &p.root,
        "GW0009",
        &p.spare_key,
        410,
        -DAY,
        DAY,
    );
    assert!(matches!(
        validate_cert(&forged, &who, &p.root, Some(&crl), now()),
        Err(SecurityError::CertUntrusted)
    ));
    // An expired gateway certificate presented as the platform's: wrong role first.
    let expired = issue(
        &p.root_key,
        &p.root,
        "GW0009",
        &p.spare_key,
        411,
        -10 * DAY,
        -DAY,
    );
    assert!(matches!(
        validate_cert(&expired, &who, &p.root, Some(&crl), now()),
        Err(SecurityError::CertWrongRole)
    ));
    // And with no CRL at all: still the role.
    assert!(matches!(
        validate_cert(&p.gateway.cert, &who, &p.root, None, now()),
        Err(SecurityError::CertWrongRole)
    ));
}

/// A bundle directory with the gateway's own key and certificate, the root, a fresh CRL and
/// `platform_pem` as `platform.pem`.
fn bundle(platform_pem: &[u8]) -> tempfile::TempDir {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = |n: &str, b: &[u8]| std::fs::write(d.join(n), b).unwrap();
    w(
        "gateway.key",
        &p.gateway.key.private_key_to_pem_pkcs8().unwrap(),
    );
    w("gateway.pem", &pem(&p.gateway.cert));
    w("root.pem", &pem(&p.root));
    w("crl.pem", &fresh_crl(p).to_pem().unwrap());
    w("platform.pem", platform_pem);
    dir
}

#[test]
fn another_gateways_certificate_installed_as_platform_pem_is_refused() {
    let p = pki();
    let other_gateway = cert("GW0002", 420, Some(&role(Role::Gateway)));
    for bad in [&other_gateway, &p.gateway.cert, &p.app.cert] {
        let dir = bundle(&pem(bad));
        assert!(matches!(
            KeyStore::load_dir(dir.path(), "gateway"),
            Err(SecurityError::CertWrongRole)
        ));
    }
    // Control: the platform's certificate is loaded and used.
    let dir = bundle(&pem(&p.platform.cert));
    let ds = DataSecurity::new(KeyStore::load_dir(dir.path(), "gateway").unwrap());
    ds.validate_peer("platform", now()).unwrap();
}

#[test]
fn a_fetched_platform_pem_of_another_role_does_not_replace_the_platforms() {
    let p = pki();
    let mut ds = gateway_ds();
    let before = ds.keys().peer("platform").unwrap().kid.clone();
    let other_gateway = cert("GW0002", 421, Some(&role(Role::Gateway)));
    let no_eku = cert("platform", 422, None);
    let app_named_platform = cert("platform", 423, Some(&role(Role::Application)));
    for bad in [
        &other_gateway,
        &no_eku,
        &app_named_platform,
        &p.app.cert,
        &p.gateway.cert,
    ] {
        assert!(matches!(
            ds.update_peer(Identity::platform(), &pem(bad), now()),
            Err(SecurityError::CertWrongRole)
        ));
        assert_eq!(ds.keys().peer("platform").unwrap().kid, before);
    }
    // A new platform certificate of the same root is taken.
    let renewed = cert("platform", 424, Some(&role(Role::Platform)));
    ds.update_peer(Identity::platform(), &pem(&renewed), now())
        .unwrap();
    assert_ne!(ds.keys().peer("platform").unwrap().kid, before);
    ds.validate_peer("platform", now()).unwrap();
}

#[test]
fn an_application_named_platform_cannot_take_the_platforms_place() {
    let mut ds = gateway_ds();
    let before = ds.keys().peer("platform").unwrap().kid.clone();
    let app_named_platform = cert("platform", 430, Some(&role(Role::Application)));
    // It is a genuine application certificate (role and CN agree) ...
    let p = pki();
    validate_cert(
        &app_named_platform,
        &Identity::application("platform"),
        &p.root,
        Some(&fresh_crl(p)),
        now(),
    )
    .unwrap();
    // ... but the key store name `platform` keeps the platform role.
    assert!(matches!(
        ds.update_peer(
            Identity::application("platform"),
            &pem(&app_named_platform),
            now()
        ),
        Err(SecurityError::CertWrongRole)
    ));
    assert!(matches!(
        ds.keys_mut()
            .add_peer(Identity::application("platform"), app_named_platform),
        Err(SecurityError::CertWrongRole)
    ));
    assert_eq!(ds.keys().peer("platform").unwrap().kid, before);
    ds.validate_peer("platform", now()).unwrap();
}

#[test]
fn the_platform_accepts_as_gateway_g_only_gs_gateway_certificate() {
    let p = pki();
    let mut ds = platform_ds();
    let before = ds.keys().peer("GW0001").unwrap().kid.clone();
    let other_gateway = cert("GW0002", 440, Some(&role(Role::Gateway)));
    let app_named_gw = cert("GW0001", 441, Some(&role(Role::Application)));
    let no_eku = cert("GW0001", 442, None);
    for bad in [&other_gateway, &app_named_gw, &no_eku, &p.platform.cert] {
        assert!(matches!(
            ds.update_peer(Identity::gateway("GW0001"), &pem(bad), now()),
            Err(SecurityError::CertWrongRole)
        ));
        assert_eq!(ds.keys().peer("GW0001").unwrap().kid, before);
    }
    // Control: GW0001's renewed gateway certificate is taken.
    let renewed = cert("GW0001", 443, Some(&role(Role::Gateway)));
    ds.update_peer(Identity::gateway("GW0001"), &pem(&renewed), now())
        .unwrap();
    ds.validate_peer("GW0001", now()).unwrap();
}

// ---- DES-CERT-2 / G.5: one certificate per peer PEM -------------------------------------------

#[test]
fn a_peer_pem_with_more_than_one_certificate_is_refused() {
    let p = pki();
    let mut ds = gateway_ds();
    let before = ds.keys().peer("platform").unwrap().kid.clone();
    let mut chain = pem(&p.platform.cert);
    chain.extend_from_slice(&pem(&p.root));
    assert!(matches!(
        ds.update_peer(Identity::platform(), &chain, now()),
        Err(SecurityError::NotOneCertificate(2))
    ));
    assert!(matches!(
        ds.keys_mut().add_peer_pem(Identity::platform(), &chain),
        Err(SecurityError::NotOneCertificate(2))
    ));
    assert_eq!(ds.keys().peer("platform").unwrap().kid, before);
    // In a bundle too.
    let dir = bundle(&chain);
    assert!(matches!(
        KeyStore::load_dir(dir.path(), "gateway"),
        Err(SecurityError::NotOneCertificate(2))
    ));
    // No certificate at all.
    assert!(matches!(
        ds.update_peer(Identity::platform(), b"", now()),
        Err(SecurityError::NotOneCertificate(0))
    ));
    // Control: exactly one.
    ds.update_peer(Identity::platform(), &pem(&p.platform.cert), now())
        .unwrap();
}

// ---- DES-CERT-3: CRL rollback -----------------------------------------------------------------

fn crl_n(serials: &[u32], this_update: i64, number: u32) -> openssl::x509::X509Crl {
    let p = pki();
    make_crl_numbered(
        &p.root_key,
        &p.root,
        serials,
        this_update,
        Some(7 * DAY),
        number,
    )
}

/// A platform facade holding CRL `first` (numbered far above the fixtures' counter).
fn platform_with(first: &openssl::x509::X509Crl) -> DataSecurity {
    let p = pki();
    let mut ks = KeyStore::new(
        p.platform.key.clone(),
        p.platform.cert.clone(),
        p.root.clone(),
    )
    .unwrap();
    ks.add_peer(Identity::gateway("GW0001"), p.gateway.cert.clone())
        .unwrap();
    ks.set_crl_der(&first.to_der().unwrap()).unwrap();
    DataSecurity::new(ks)
}

#[test]
fn an_older_but_still_current_crl_cannot_unrevoke_a_certificate() {
    let before_revocation = crl_n(&[], -7200, 100_000);
    let mut ds = platform_with(&before_revocation);
    ds.validate_peer("GW0001", now()).unwrap();
    // The CA revokes the gateway (serial 10): the next CRL is installed.
    let after_revocation = crl_n(&[10], -3600, 100_001);
    ds.update_crl(&after_revocation.to_pem().unwrap(), now())
        .unwrap();
    assert!(matches!(
        ds.validate_peer("GW0001", now()),
        Err(SecurityError::CertRevoked)
    ));
    // The one before the revocation is still current (signed, nextUpdate ahead) but older.
    for enc in [
        before_revocation.to_pem().unwrap(),
        before_revocation.to_der().unwrap(),
    ] {
        assert!(matches!(
            ds.update_crl(&enc, now()),
            Err(SecurityError::CrlRollback)
        ));
    }
    assert!(matches!(
        ds.validate_peer("GW0001", now()),
        Err(SecurityError::CertRevoked)
    ));
    // A newer one is taken.
    let newer = crl_n(&[10, 11], -60, 100_002);
    ds.update_crl(&newer.to_der().unwrap(), now()).unwrap();
    assert_eq!(
        ds.keys().crl().unwrap().to_der().unwrap(),
        newer.to_der().unwrap()
    );
}

#[test]
fn the_crl_number_decides_before_this_update() {
    // A greater number with an earlier thisUpdate is newer.
    let mut ds = platform_with(&crl_n(&[], -600, 200_000));
    ds.update_crl(&crl_n(&[10], -3600, 200_001).to_pem().unwrap(), now())
        .unwrap();
    // A smaller number with a later thisUpdate is older.
    assert!(matches!(
        ds.update_crl(&crl_n(&[], -60, 200_000).to_pem().unwrap(), now()),
        Err(SecurityError::CrlRollback)
    ));
    assert!(matches!(
        ds.validate_peer("GW0001", now()),
        Err(SecurityError::CertRevoked)
    ));
}

#[test]
fn with_equal_numbers_the_later_this_update_wins() {
    // (The openssl crate cannot build a CRL without a CRL number; a missing number takes the
    // same thisUpdate comparison.)
    let mut ds = platform_with(&crl_n(&[], -3600, 300_000));
    assert!(matches!(
        ds.update_crl(&crl_n(&[10], -7200, 300_000).to_pem().unwrap(), now()),
        Err(SecurityError::CrlRollback)
    ));
    ds.validate_peer("GW0001", now()).unwrap();
    ds.update_crl(&crl_n(&[10], -600, 300_000).to_pem().unwrap(), now())
        .unwrap();
    assert!(matches!(
        ds.validate_peer("GW0001", now()),
        Err(SecurityError::CertRevoked)
    ));
}

#[test]
fn the_crl_already_held_is_accepted_again_and_changes_nothing() {
    // The gateway fetches the CRL every hour; the CA re-signs it only when due.
    let held = crl_n(&[10], -3600, 500_000);
    let mut ds = platform_with(&held);
    ds.update_crl(&held.to_pem().unwrap(), now()).unwrap();
    ds.update_crl(&held.to_der().unwrap(), now()).unwrap();
    assert_eq!(
        ds.keys().crl().unwrap().to_der().unwrap(),
        held.to_der().unwrap()
    );
}

#[test]
fn a_first_crl_is_taken_whatever_its_number() {
    let p = pki();
    let ks = KeyStore::new(
        p.platform.key.clone(),
        p.platform.cert.clone(),
        p.root.clone(),
    )
    .unwrap();
    let mut ds = DataSecurity::new(ks);
    ds.update_crl(&crl_n(&[], -60, 0).to_pem().unwrap(), now())
        .unwrap();
    assert!(ds.keys().crl().is_some());
}
