//! Signed and encrypted ZIP files (SEC-FILE-SIG-1/2, SEC-FILE-ENC-1/2): round trips for every
//! AES size and one negative test per hardening rule (ZIP slip, bombs, duplicate, unexpected
//! and missing entries, tampering).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use std::io::{Cursor, Read, Write};

use gateway::security::file::{MANIFEST, PAYLOAD_ENC, SESSION_KEY, SIGNATURE};
use gateway::security::{AesCbc, DataSecurity, SecurityError, ZipLimits};
use security_common::*;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

const CSV: &[u8] = "seq,meter,value\n1,M-001,12.5\n2,M-002,水道\n".as_bytes();

fn signed(data: &[u8]) -> Vec<u8> {
    gateway_ds()
        .sign_file("readings.csv", data, Cursor::new(Vec::new()))
        .unwrap()
        .into_inner()
}

fn verify(zip: &[u8]) -> Result<Vec<u8>, SecurityError> {
    verify_with(&platform_ds(), zip)
}

fn verify_with(ds: &DataSecurity, zip: &[u8]) -> Result<Vec<u8>, SecurityError> {
    let mut out = Vec::new();
    ds.verify_file("GW0001", Cursor::new(zip), &mut out, now())?;
    Ok(out)
}

fn encrypted(aes: AesCbc, data: &[u8]) -> Vec<u8> {
    gateway_ds()
        .encrypt_file(
            "platform",
            aes,
            "readings.csv",
            data,
            Cursor::new(Vec::new()),
            now(),
        )
        .unwrap()
        .into_inner()
}

fn decrypt(zip: &[u8]) -> Result<Vec<u8>, SecurityError> {
    let mut out = Vec::new();
    platform_ds().decrypt_file(Cursor::new(zip), &mut out)?;
    Ok(out)
}

/// All entries of a ZIP as (name, bytes).
fn entries(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut za = ZipArchive::new(Cursor::new(zip)).unwrap();
    (0..za.len())
        .map(|i| {
            let mut f = za.by_index(i).unwrap();
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            (f.name().unwrap().to_string(), v)
        })
        .collect()
}

/// Write a ZIP from (name, bytes), deflated.
fn rezip(items: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zw = ZipWriter::new(Cursor::new(Vec::new()));
    let o = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (n, b) in items {
        zw.start_file(n.as_str(), o).unwrap();
        zw.write_all(b).unwrap();
    }
    zw.finish().unwrap().into_inner()
}

fn replace_bytes(hay: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= hay.len() {
        if &hay[i..i + from.len()] == from {
            hay[i..i + from.len()].copy_from_slice(to);
            n += 1;
        }
        i += 1;
    }
    n
}

#[test]
fn a_signed_file_verifies_and_yields_the_original_bytes() {
    let z = signed(CSV);
    let names: Vec<String> = entries(&z).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["payload/readings.csv", MANIFEST, SIGNATURE]);
    let mut out = Vec::new();
    let info = platform_ds()
        .verify_file("GW0001", Cursor::new(&z), &mut out, now())
        .unwrap();
    assert_eq!(out, CSV);
    assert_eq!(info.name, "readings.csv");
    assert_eq!(info.size, CSV.len() as u64);
}

#[test]
fn an_encrypted_file_decrypts_for_every_aes_size() {
    for aes in [AesCbc::Aes128, AesCbc::Aes192, AesCbc::Aes256] {
        let z = encrypted(aes, CSV);
        let names: Vec<String> = entries(&z).into_iter().map(|e| e.0).collect();
        assert_eq!(names, [PAYLOAD_ENC, SESSION_KEY, MANIFEST]);
        assert_eq!(decrypt(&z).unwrap(), CSV, "{aes:?}");
        assert!(!entries(&z)[0].1.windows(8).any(|w| w == b"M-001,12"));
    }
    assert_eq!(decrypt(&encrypted(AesCbc::Aes128, b"")).unwrap(), b"");
}

#[test]
fn a_tampered_signature_is_refused() {
    let mut e = entries(&signed(CSV));
    e[2].1[10] ^= 1;
    assert!(matches!(
        verify(&rezip(&e)),
        Err(SecurityError::BadSignature)
    ));
}

#[test]
fn a_tampered_payload_is_refused_before_anything_is_written() {
    let mut e = entries(&signed(CSV));
    e[0].1[3] ^= 1;
    let mut out = Vec::new();
    let r = platform_ds().verify_file("GW0001", Cursor::new(rezip(&e)), &mut out, now());
    assert!(matches!(r, Err(SecurityError::ManifestInvalid(_))));
    assert!(out.is_empty());
}

#[test]
fn a_tampered_manifest_is_refused() {
    let mut e = entries(&signed(CSV));
    let m = String::from_utf8(e[1].1.clone())
        .unwrap()
        .replace("readings.csv", "readings.csw");
    e[1].1 = m.into_bytes();
    e[0].0 = "payload/readings.csw".into();
    assert!(matches!(
        verify(&rezip(&e)),
        Err(SecurityError::BadSignature)
    ));
}

#[test]
fn a_file_signed_by_another_party_is_refused() {
    let z = app_ds()
        .sign_file("readings.csv", CSV, Cursor::new(Vec::new()))
        .unwrap()
        .into_inner();
    assert!(matches!(verify(&z), Err(SecurityError::BadSignature)));
    let mut out = Vec::new();
    platform_ds()
        .verify_file("APP01", Cursor::new(&z), &mut out, now())
        .unwrap();
    assert_eq!(out, CSV);
}

#[test]
fn zip_slip_entry_names_are_refused() {
    for bad in [
        "../evil.csv",
        "/etc/passwd",
        "payload\\..\\evil.csv",
        "payload/../../x",
        "C:/x",
        "payload/./x",
    ] {
        let mut e = entries(&signed(CSV));
        e.push((bad.to_string(), b"x".to_vec()));
        assert!(
            matches!(verify(&rezip(&e)), Err(SecurityError::ZipUnsafeName)),
            "{bad}"
        );
        let mut e = entries(&encrypted(AesCbc::Aes128, CSV));
        e.push((bad.to_string(), b"x".to_vec()));
        assert!(
            matches!(decrypt(&rezip(&e)), Err(SecurityError::ZipUnsafeName)),
            "{bad}"
        );
    }
    assert!(matches!(
        gateway_ds().sign_file("../x.csv", CSV, Cursor::new(Vec::new())),
        Err(SecurityError::ZipUnsafeName)
    ));
}

#[test]
fn duplicate_entries_are_refused() {
    let mut e = entries(&signed(CSV));
    e.push(("META-INF/manifest.jsoX".into(), b"{}".to_vec()));
    let mut z = rezip(&e);
    assert_eq!(
        replace_bytes(&mut z, b"META-INF/manifest.jsoX", b"META-INF/manifest.json"),
        2
    );
    assert!(matches!(verify(&z), Err(SecurityError::ZipDuplicateEntry)));
    let mut e = entries(&encrypted(AesCbc::Aes128, CSV));
    e.push(("payload.enX".into(), b"x".to_vec()));
    let mut z = rezip(&e);
    assert_eq!(replace_bytes(&mut z, b"payload.enX", b"payload.enc"), 2);
    assert!(matches!(decrypt(&z), Err(SecurityError::ZipDuplicateEntry)));
}

#[test]
fn unexpected_entries_are_refused() {
    let mut e = entries(&signed(CSV));
    e.push(("META-INF/extra.txt".into(), b"x".to_vec()));
    assert!(matches!(
        verify(&rezip(&e)),
        Err(SecurityError::ZipUnexpectedEntry)
    ));
    let mut e = entries(&signed(CSV));
    e.push(("payload/second.csv".into(), b"x".to_vec()));
    assert!(matches!(
        verify(&rezip(&e)),
        Err(SecurityError::ZipUnexpectedEntry)
    ));
    let mut e = entries(&encrypted(AesCbc::Aes256, CSV));
    e.push(("payload/readings.csv".into(), CSV.to_vec()));
    assert!(matches!(
        decrypt(&rezip(&e)),
        Err(SecurityError::ZipUnexpectedEntry)
    ));
}

#[test]
fn missing_entries_are_refused() {
    for drop in 0..3 {
        let mut e = entries(&signed(CSV));
        e.remove(drop);
        assert!(
            matches!(verify(&rezip(&e)), Err(SecurityError::ZipMissingEntry(_))),
            "sig {drop}"
        );
        let mut e = entries(&encrypted(AesCbc::Aes128, CSV));
        e.remove(drop);
        assert!(
            matches!(decrypt(&rezip(&e)), Err(SecurityError::ZipMissingEntry(_))),
            "enc {drop}"
        );
    }
}

#[test]
fn a_highly_compressed_payload_is_refused_as_a_zip_bomb() {
    let zeros = vec![0u8; 4 << 20];
    let z = signed(&zeros);
    assert!(matches!(verify(&z), Err(SecurityError::ZipBomb)));
    // Control: the same file opens when the ratio limit allows it.
    let lax = platform_ds().with_zip_limits(ZipLimits {
        max_ratio: 10_000,
        ..ZipLimits::default()
    });
    assert_eq!(verify_with(&lax, &z).unwrap().len(), zeros.len());
}

#[test]
fn a_payload_over_the_absolute_limit_is_refused() {
    let data: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let tight = platform_ds().with_zip_limits(ZipLimits {
        max_payload: 10_000,
        ..ZipLimits::default()
    });
    assert!(matches!(
        verify_with(&tight, &signed(&data)),
        Err(SecurityError::ZipBomb)
    ));
    let mut out = Vec::new();
    let r = tight.decrypt_file(Cursor::new(encrypted(AesCbc::Aes128, &data)), &mut out);
    assert!(matches!(r, Err(SecurityError::ZipBomb)));
    assert_eq!(verify(&signed(&data)).unwrap(), data);
}

#[test]
fn an_oversized_metadata_entry_is_refused() {
    let mut e = entries(&signed(CSV));
    e[1].1 = vec![b' '; 100_000];
    assert!(matches!(verify(&rezip(&e)), Err(SecurityError::ZipBomb)));
}

#[test]
fn a_tampered_ciphertext_is_refused() {
    let mut e = entries(&encrypted(AesCbc::Aes128, CSV));
    e[0].1[20] ^= 1;
    assert!(matches!(
        decrypt(&rezip(&e)),
        Err(SecurityError::ManifestInvalid(_))
    ));
}

#[test]
fn a_tampered_session_key_fails_decryption() {
    let mut e = entries(&encrypted(AesCbc::Aes128, CSV));
    e[1].1[0] ^= 1;
    assert!(matches!(
        decrypt(&rezip(&e)),
        Err(SecurityError::DecryptionFailed)
    ));
}

#[test]
fn a_file_encrypted_for_another_recipient_is_refused() {
    let z = gateway_ds()
        .encrypt_file(
            "APP01",
            AesCbc::Aes128,
            "r.csv",
            CSV,
            Cursor::new(Vec::new()),
            now(),
        )
        .unwrap()
        .into_inner();
    assert!(matches!(decrypt(&z), Err(SecurityError::UnknownKid)));
    // Same file with the manifest re-addressed to the platform: the key does not unwrap and a
    // random key is used; 48-byte plaintext means 16 bytes of padding, so the random key's
    // padding check fails with probability 1 - 2^-128.
    let block_aligned = [b'x'; 48];
    let z = gateway_ds()
        .encrypt_file(
            "APP01",
            AesCbc::Aes128,
            "r.csv",
            &block_aligned[..],
            Cursor::new(Vec::new()),
            now(),
        )
        .unwrap()
        .into_inner();
    let mut e = entries(&z);
    let app_kid = app_ds().keys().own().kid.clone();
    let pf_kid = platform_ds().keys().own().kid.clone();
    e[2].1 = String::from_utf8(e[2].1.clone())
        .unwrap()
        .replace(&app_kid, &pf_kid)
        .into_bytes();
    assert!(matches!(
        decrypt(&rezip(&e)),
        Err(SecurityError::DecryptionFailed)
    ));
}

#[test]
fn a_manifest_with_a_foreign_algorithm_is_refused() {
    let mut e = entries(&encrypted(AesCbc::Aes128, CSV));
    e[2].1 = String::from_utf8(e[2].1.clone())
        .unwrap()
        .replace("RSA-OAEP-256", "RSA1_5")
        .into_bytes();
    assert!(matches!(
        decrypt(&rezip(&e)),
        Err(SecurityError::ManifestInvalid(_))
    ));
}

#[test]
fn a_non_zip_input_is_refused() {
    assert!(matches!(
        verify(b"not a zip"),
        Err(SecurityError::ZipMalformed(_))
    ));
    assert!(matches!(
        decrypt(b"PK\x03\x04garbage"),
        Err(SecurityError::ZipMalformed(_))
    ));
}
