//! Certificate and CRL checks (SEC-CERT-2, SM-CERTEXP), DES-CERT-4 and the CRL rules of
//! DES-CERT-3.
//!
//! The project's PKI is one level deep (DESIGN.md, provisioning bundle): the platform's root
//! directly issues every data-protection certificate (platform, applications, gateways) and
//! signs the CRL. Every data-protection certificate carries the extended key usage of its
//! role ([`Role`]: platform, gateway, application; OIDs under [`ROLE_OID_ARC`]) and its
//! identity as subject CN (`platform`, the gateway ID, the application ID). A certificate is
//! accepted as the certificate of peer [`Identity`] at time `now` when, in this order (the
//! first failure wins):
//! 1. its issuer name equals the root's subject ([`SecurityError::CertWrongIssuer`]);
//! 2. its signature verifies with the root's public key ([`SecurityError::CertUntrusted`]);
//! 3. its extended key usage lists the OID of the identity's role and no other role's, and its
//!    subject has exactly one CN, equal to the identity's name ([`SecurityError::CertWrongRole`]);
//! 4. its key is RSA with at least 2048 bits ([`SecurityError::WeakKey`]);
//! 5. `notBefore <= now <= notAfter` ([`SecurityError::CertNotYetValid`],
//!    [`SecurityError::CertExpired`]);
//! 6. a CRL is present, issued and signed by the root ([`SecurityError::CrlBadSignature`]),
//!    with `thisUpdate <= now` ([`SecurityError::CrlNotYetValid`]) and `now < nextUpdate`
//!    ([`SecurityError::CrlStale`]; a CRL without nextUpdate counts as stale);
//! 7. the certificate's serial is not on it ([`SecurityError::CertRevoked`]).
//!
//! A CRL replaces the held one only if it is newer ([`check_crl_newer`]: a greater CRL number,
//! or with equal or missing numbers a later thisUpdate; otherwise
//! [`SecurityError::CrlRollback`]), so an older CRL that is still current cannot un-revoke a
//! certificate.
//!
//! `now` is always passed in so tests and simulators control the clock.

use chrono::{DateTime, Utc};
use openssl::asn1::{Asn1Object, Asn1Time};
use openssl::bn::BigNum;
use openssl::pkey::{PKeyRef, Public};
use openssl::x509::{CrlNumber, CrlStatus, X509, X509Crl, X509CrlRef, X509NameRef, X509Ref};

use super::error::{Result, SecurityError};

/// The OID arc of the data-protection roles: `2.25` followed by the UUID
/// `a7ad70d7-5c49-4b24-b382-d7b58589c577` as one integer (ITU-T X.667 / RFC 4122: no
/// registration needed). A role's extended key usage is this arc plus `.1`, `.2` or `.3`.
pub const ROLE_OID_ARC: &str = "2.25.222881631345099252851491374019625207159";

/// Subject CN of the platform's data-protection certificate, and the key store name of it.
pub const PLATFORM_CN: &str = "platform";

/// The role of a data-protection certificate, carried as an extended key usage (DES-CERT-4
/// step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The platform (`ROLE_OID_ARC.1`).
    Platform,
    /// A system gateway (`ROLE_OID_ARC.2`).
    Gateway,
    /// An application (`ROLE_OID_ARC.3`).
    Application,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Platform, Role::Gateway, Role::Application];

    /// The extended key usage OID of the role (dotted decimal).
    pub const fn eku_oid(self) -> &'static str {
        match self {
            Role::Platform => "2.25.222881631345099252851491374019625207159.1",
            Role::Gateway => "2.25.222881631345099252851491374019625207159.2",
            Role::Application => "2.25.222881631345099252851491374019625207159.3",
        }
    }

    /// The role whose extended key usage OID is `oid` (dotted decimal), if any.
    pub fn from_eku_oid(oid: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.eku_oid() == oid)
    }
}

/// Whom a peer certificate must belong to: its role and its subject CN (DES-CERT-4 step 3).
/// The CN is also the peer's key store name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    role: Role,
    cn: String,
}

impl Identity {
    /// The platform: role [`Role::Platform`], CN [`PLATFORM_CN`].
    pub fn platform() -> Self {
        Identity {
            role: Role::Platform,
            cn: PLATFORM_CN.to_owned(),
        }
    }

    /// Gateway `gateway_id`: role [`Role::Gateway`], CN = the gateway ID.
    pub fn gateway(gateway_id: &str) -> Self {
        Identity {
            role: Role::Gateway,
            cn: gateway_id.to_owned(),
        }
    }

    /// Application `app_id`: role [`Role::Application`], CN = the application ID.
    pub fn application(app_id: &str) -> Self {
        Identity {
            role: Role::Application,
            cn: app_id.to_owned(),
        }
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The subject CN, which is also the key store name.
    pub fn cn(&self) -> &str {
        &self.cn
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {:?}", self.role, self.cn)
    }
}

/// Smallest RSA modulus accepted anywhere (SM-DATAENC, 表 4-3 RSA 2048).
pub const MIN_RSA_BITS: u32 = 2048;

/// Refuse anything but RSA keys of at least [`MIN_RSA_BITS`] (SM-DATAENC).
pub fn check_rsa_public<T>(key: &PKeyRef<T>) -> Result<()>
where
    T: openssl::pkey::HasPublic,
{
    match key.rsa() {
        Ok(rsa) => {
            let bits = rsa.n().num_bits().max(0) as u32;
            if bits < MIN_RSA_BITS {
                Err(SecurityError::WeakKey(bits))
            } else {
                Ok(())
            }
        }
        Err(_) => Err(SecurityError::WeakKey(0)),
    }
}

/// Lowercase hex SHA-256 of the certificate's DER: the `kid` of DES-SEAL.
pub fn kid_of(cert: &X509Ref) -> Result<String> {
    let der = cert.to_der()?;
    Ok(hex::encode(openssl::sha::sha256(&der)))
}

fn names_equal(a: &X509NameRef, b: &X509NameRef) -> Result<bool> {
    Ok(a.to_der()? == b.to_der()?)
}

fn asn1_now(now: DateTime<Utc>) -> Result<Asn1Time> {
    Ok(Asn1Time::from_unix(now.timestamp() as _)?)
}

/// Check the root itself: self-issued, self-signed, RSA >= 2048, within its validity period.
pub fn validate_root(root: &X509Ref, now: DateTime<Utc>) -> Result<()> {
    let key = root.public_key()?;
    if !names_equal(root.issuer_name(), root.subject_name())? {
        return Err(SecurityError::CertWrongIssuer);
    }
    if !root.verify(&key).unwrap_or(false) {
        return Err(SecurityError::CertUntrusted);
    }
    check_rsa_public(&key)?;
    check_period(root, now)
}

fn check_period(cert: &X509Ref, now: DateTime<Utc>) -> Result<()> {
    let t = asn1_now(now)?;
    if cert.not_before() > t {
        return Err(SecurityError::CertNotYetValid);
    }
    if cert.not_after() < t {
        return Err(SecurityError::CertExpired);
    }
    Ok(())
}

/// DES-CERT-4 step 3: the certificate's extended key usage lists the OID of `who`'s role and
/// no other role's OID, and its subject has exactly one CN, equal to `who`'s CN
/// ([`SecurityError::CertWrongRole`] otherwise, also when the extension is missing or cannot
/// be parsed). Other purposes in the extension are ignored.
pub fn check_role(cert: &X509Ref, who: &Identity) -> Result<()> {
    let der = cert.to_der()?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(&der).map_err(|_| SecurityError::CertWrongRole)?;
    let eku = parsed
        .extended_key_usage()
        .map_err(|_| SecurityError::CertWrongRole)?
        .ok_or(SecurityError::CertWrongRole)?;
    // Compared as DER content octets: x509-parser prints arcs over 64 bits only as hex.
    let mut role_oids = Vec::with_capacity(Role::ALL.len());
    for r in Role::ALL {
        role_oids.push((r, Asn1Object::from_str(r.eku_oid())?));
    }
    let roles: Vec<Role> = eku
        .value
        .other
        .iter()
        .filter_map(|oid| {
            role_oids
                .iter()
                .find(|(_, o)| o.as_slice() == oid.as_bytes())
                .map(|(r, _)| *r)
        })
        .collect();
    if roles.is_empty() || roles.iter().any(|r| *r != who.role) {
        return Err(SecurityError::CertWrongRole);
    }
    let mut cns = parsed.subject().iter_common_name();
    let cn = cns.next().ok_or(SecurityError::CertWrongRole)?;
    if cns.next().is_some() || cn.as_str().ok() != Some(who.cn.as_str()) {
        return Err(SecurityError::CertWrongRole);
    }
    Ok(())
}

/// The CRL number of `crl`, if it has exactly one CRL number extension.
pub fn crl_number(crl: &X509CrlRef) -> Result<Option<BigNum>> {
    Ok(match crl.extension::<CrlNumber>()? {
        Some((_, n)) => Some(n.to_bn()?),
        None => None,
    })
}

/// DES-CERT-3 rollback rule: `new` may replace `held` only if its CRL number is greater, or,
/// when the numbers are equal or either is missing, its thisUpdate is later
/// ([`SecurityError::CrlRollback`] otherwise).
pub fn check_crl_newer(new: &X509CrlRef, held: &X509CrlRef) -> Result<()> {
    use std::cmp::Ordering;
    let by_number = match (crl_number(new)?, crl_number(held)?) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => Ordering::Equal,
    };
    let newer = match by_number {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => new.last_update() > held.last_update(),
    };
    if newer {
        Ok(())
    } else {
        Err(SecurityError::CrlRollback)
    }
}

/// Check a CRL against the root at `now` (SEC-CERT-2).
pub fn validate_crl(crl: &X509Crl, root: &X509Ref, now: DateTime<Utc>) -> Result<()> {
    let root_key: openssl::pkey::PKey<Public> = root.public_key()?;
    if !names_equal(crl.issuer_name(), root.subject_name())? {
        return Err(SecurityError::CrlBadSignature);
    }
    if !crl.verify(&root_key).unwrap_or(false) {
        return Err(SecurityError::CrlBadSignature);
    }
    let t = asn1_now(now)?;
    if crl.last_update() > t {
        return Err(SecurityError::CrlNotYetValid);
    }
    match crl.next_update() {
        Some(next) if next > t => Ok(()),
        _ => Err(SecurityError::CrlStale),
    }
}

/// DES-CERT-4 steps 1–4 only — issuer, root signature, role and CN, key size — without the
/// validity period and the CRL (steps 5–7): how the gateway checks its own certificate when
/// it reads its own evacuation archive back (DES-EVAC-3), which an expired certificate still
/// proves unchanged. Never for a peer.
pub fn validate_cert_timeless(cert: &X509Ref, who: &Identity, root: &X509Ref) -> Result<()> {
    if !names_equal(cert.issuer_name(), root.subject_name())? {
        return Err(SecurityError::CertWrongIssuer);
    }
    let root_key = root.public_key()?;
    if !cert.verify(&root_key).unwrap_or(false) {
        return Err(SecurityError::CertUntrusted);
    }
    check_role(cert, who)?;
    let cert_key = cert.public_key()?;
    check_rsa_public(&cert_key)
}

/// Full DES-CERT-4 check of `cert` as the certificate of `who` (SEC-CERT-2); see the module
/// doc for the order.
pub fn validate_cert(
    cert: &X509,
    who: &Identity,
    root: &X509Ref,
    crl: Option<&X509Crl>,
    now: DateTime<Utc>,
) -> Result<()> {
    validate_cert_lax(cert, who, root, crl, now, Lax::default())
}

/// Steps of DES-CERT-4 a deliberately broken gateway leaves out (the conformance suite's
/// variants, [`crate::broken`]); [`Lax::default`] leaves out nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lax {
    /// Step 5 (validity period) left out.
    pub period: bool,
    /// Step 6 (CRL) left out.
    pub revocation: bool,
}

/// [`validate_cert`] without the steps `lax` leaves out.
pub fn validate_cert_lax(
    cert: &X509,
    who: &Identity,
    root: &X509Ref,
    crl: Option<&X509Crl>,
    now: DateTime<Utc>,
    lax: Lax,
) -> Result<()> {
    validate_cert_timeless(cert, who, root)?;
    if !lax.period {
        check_period(cert, now)?;
    }
    if lax.revocation {
        return Ok(());
    }
    let crl = crl.ok_or(SecurityError::CrlStale)?;
    validate_crl(crl, root, now)?;
    match crl.get_by_cert(cert) {
        CrlStatus::NotRevoked => Ok(()),
        CrlStatus::Revoked(_) | CrlStatus::RemoveFromCrl(_) => Err(SecurityError::CertRevoked),
    }
}
