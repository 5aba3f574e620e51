//! Certificate and CRL checks (SEC-CERT-2, SM-CERTEXP).
//!
//! The project's PKI is one level deep (DESIGN.md, provisioning bundle): the platform's root
//! directly issues every data-protection certificate (platform, applications, gateways) and
//! signs the CRL. A certificate is accepted for use at time `now` when, in this order:
//! 1. its issuer name equals the root's subject ([`SecurityError::CertWrongIssuer`]);
//! 2. its signature verifies with the root's public key ([`SecurityError::CertUntrusted`]);
//! 3. its key is RSA with at least 2048 bits ([`SecurityError::WeakKey`]);
//! 4. `notBefore <= now <= notAfter` ([`SecurityError::CertNotYetValid`],
//!    [`SecurityError::CertExpired`]);
//! 5. a CRL is present, issued and signed by the root ([`SecurityError::CrlBadSignature`]),
//!    with `thisUpdate <= now` ([`SecurityError::CrlNotYetValid`]) and `now < nextUpdate`
//!    ([`SecurityError::CrlStale`]; a CRL without nextUpdate counts as stale), and the
//!    certificate's serial is not on it ([`SecurityError::CertRevoked`]).
//!
//! `now` is always passed in so tests and simulators control the clock.

use chrono::{DateTime, Utc};
use openssl::asn1::Asn1Time;
use openssl::pkey::{PKeyRef, Public};
use openssl::x509::{CrlStatus, X509, X509Crl, X509NameRef, X509Ref};

use super::error::{Result, SecurityError};

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

/// Full SEC-CERT-2 check of a peer (or own) certificate; see the module doc for the order.
pub fn validate_cert(
    cert: &X509,
    root: &X509Ref,
    crl: Option<&X509Crl>,
    now: DateTime<Utc>,
) -> Result<()> {
    if !names_equal(cert.issuer_name(), root.subject_name())? {
        return Err(SecurityError::CertWrongIssuer);
    }
    let root_key = root.public_key()?;
    if !cert.verify(&root_key).unwrap_or(false) {
        return Err(SecurityError::CertUntrusted);
    }
    let cert_key = cert.public_key()?;
    check_rsa_public(&cert_key)?;
    check_period(cert, now)?;
    let crl = crl.ok_or(SecurityError::CrlStale)?;
    validate_crl(crl, root, now)?;
    match crl.get_by_cert(cert) {
        CrlStatus::NotRevoked => Ok(()),
        CrlStatus::Revoked(_) | CrlStatus::RemoveFromCrl(_) => Err(SecurityError::CertRevoked),
    }
}
