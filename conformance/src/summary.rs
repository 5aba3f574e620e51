//! The certification summary (docs/conformance.md, "Certification summary"): a compact JWS
//! (RS256) signed by the suite, naming the suite version, the target and the SHA-256 of the
//! gateway under test, the seed, the capability statement, the verdict of every case and the
//! SHA-256 of `report.json`; the signer's certificate travels in the `x5c` header. It verifies
//! offline: against the certification body's published certificate (`verify-summary --cert`),
//! or, without one, for integrity only with the embedded certificate, whose SHA-256 fingerprint
//! is printed for comparison. Without `--sign-key` the suite signs with a key made for the run
//! (integrity only: anyone can make such a key).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use josekit::jws::{JwsHeader, RS256};
use openssl::x509::X509;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::report::RunReport;

/// The suite's signing key and certificate.
pub struct SuiteKey {
    key_pem: Vec<u8>,
    cert: X509,
    /// Made for this run (integrity only).
    pub ephemeral: bool,
}

impl SuiteKey {
    /// From PEM files (an RSA key of at least 2048 bits and its certificate).
    pub fn load(key: &Path, cert: &Path) -> Result<Self> {
        let key_pem = std::fs::read(key).with_context(|| key.display().to_string())?;
        let cert =
            X509::from_pem(&std::fs::read(cert).with_context(|| cert.display().to_string())?)?;
        Ok(SuiteKey {
            key_pem,
            cert,
            ephemeral: false,
        })
    }

    /// A fresh RSA-2048 key with a self-signed certificate (CN "sgw-conformance run").
    pub fn ephemeral() -> Result<Self> {
        use openssl::{asn1::Asn1Time, bn::BigNum, hash::MessageDigest, pkey::PKey, rsa::Rsa};
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let mut name = openssl::x509::X509NameBuilder::new()?;
        name.append_entry_by_text("CN", "sgw-conformance run")?;
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new()?;
        b.set_version(2)?;
        b.set_serial_number(
            BigNum::from_u32(rand::random::<u32>())?
                .to_asn1_integer()?
                .as_ref(),
        )?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        b.set_not_before(Asn1Time::days_from_now(0)?.as_ref())?;
        b.set_not_after(Asn1Time::days_from_now(3650)?.as_ref())?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(SuiteKey {
            key_pem: key.private_key_to_pem_pkcs8()?,
            cert: b.build(),
            ephemeral: true,
        })
    }
}

/// SHA-256 (hex) of a file.
pub fn file_sha256(p: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(p)?;
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// The summary's claims.
pub fn claims(r: &RunReport, target_sha256: Option<String>, report_json: &[u8]) -> Value {
    let verdicts: serde_json::Map<String, Value> = r
        .cases
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                serde_json::to_value(c.verdict).unwrap_or(Value::Null),
            )
        })
        .collect();
    json!({
        "suite": "sgw-conformance",
        "suiteVersion": r.suite_version,
        "target": r.target,
        "targetSha256": target_sha256,
        "seed": r.seed,
        "strict": r.strict,
        "capabilities": r.capabilities,
        "passed": r.passed,
        "totals": r.totals,
        "verdicts": verdicts,
        "reportSha256": hex::encode(Sha256::digest(report_json)),
        "signedAt": chrono::Utc::now().to_rfc3339(),
    })
}

/// Signs `claims` (compact JWS, RS256, `x5c` = the signer's certificate).
pub fn sign(claims: &Value, key: &SuiteKey) -> Result<String> {
    let mut h = JwsHeader::new();
    h.set_content_type("sgw-conformance-summary+json");
    h.set_x509_certificate_chain(&vec![key.cert.to_der()?]);
    let signer = RS256.signer_from_pem(&key.key_pem)?;
    Ok(josekit::jws::serialize_compact(
        &serde_json::to_vec(claims)?,
        &h,
        &signer,
    )?)
}

/// Verifies a summary: with `cert` (PEM) the signer must be exactly that certificate; without,
/// the embedded one is used (integrity only). Returns the claims and the signer's SHA-256
/// fingerprint (hex).
pub fn verify(jws: &str, cert: Option<&[u8]>) -> Result<(Value, String)> {
    let header_b64 = jws
        .split('.')
        .next()
        .ok_or_else(|| anyhow!("not a compact JWS"))?;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header_b64)?,
    )?;
    if header["alg"] != "RS256" {
        bail!("alg {} (RS256 expected)", header["alg"]);
    }
    let embedded = header["x5c"][0]
        .as_str()
        .ok_or_else(|| anyhow!("no x5c certificate"))?;
    let embedded = X509::from_der(&STANDARD.decode(embedded)?)?;
    let signer = match cert {
        Some(pem) => {
            let want = X509::from_pem(pem)?;
            if want.to_der()? != embedded.to_der()? {
                bail!("signed by another certificate than the one given");
            }
            want
        }
        None => embedded,
    };
    let verifier = RS256.verifier_from_pem(&signer.public_key()?.public_key_to_pem()?)?;
    let (payload, _) = josekit::jws::deserialize_compact(jws, &verifier)?;
    let fp = hex::encode(signer.digest(openssl::hash::MessageDigest::sha256())?);
    Ok((serde_json::from_slice(&payload)?, fp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_verifies_with_its_signer_and_not_when_changed_or_signed_by_another() {
        let k = SuiteKey::ephemeral().unwrap();
        let claims = json!({"suite": "sgw-conformance", "passed": true, "seed": 7});
        let jws = sign(&claims, &k).unwrap();
        let pem = k.cert.to_pem().unwrap();
        let (got, fp) = verify(&jws, Some(&pem)).unwrap();
        assert_eq!(got, claims);
        assert_eq!(fp.len(), 64);
        assert!(verify(&jws, None).is_ok());
        // A changed payload fails.
        let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&json!({"suite": "sgw-conformance", "passed": true, "seed": 8}))
                .unwrap(),
        );
        assert!(verify(&parts.join("."), Some(&pem)).is_err());
        // Another signer's certificate is refused.
        let other = SuiteKey::ephemeral().unwrap();
        assert!(verify(&jws, Some(&other.cert.to_pem().unwrap())).is_err());
        let forged = sign(&claims, &other).unwrap();
        assert!(verify(&forged, Some(&pem)).is_err());
    }
}
