//! Cross-check of file ZIPs (SEC-FILE-SIG-1/2, SEC-FILE-ENC-1/2) against Python `zipfile` +
//! `cryptography` (scripts/crosscheck/file.py): Python verifies our signed ZIP and decrypts our
//! encrypted ZIP for AES-128/192/256, and produces ZIPs we open; Python refuses a tampered ZIP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use std::fs::File;

use gateway::security::AesCbc;
use security_common::*;

fn data() -> Vec<u8> {
    (0..20_000)
        .flat_map(|i| format!("{i},M-{:04},{}.5,配水\n", i % 997, i % 300).into_bytes())
        .collect()
}

#[test]
fn python_verifies_our_signed_zip_and_refuses_it_tampered() {
    let dir = tempfile::tempdir().unwrap();
    write_pems(dir.path());
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    gateway_ds()
        .sign_file(
            "readings.csv",
            &data()[..],
            File::create(d("s.zip")).unwrap(),
        )
        .unwrap();
    let (ok, _, err) = python(
        "file.py",
        &[
            "verify",
            "--zip",
            &d("s.zip"),
            "--signer-cert",
            &d("gateway.pem"),
            "--out",
            &d("out"),
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(d("out")).unwrap(), data());
    // Signed by the platform, checked against the gateway's certificate: refused.
    platform_ds()
        .sign_file(
            "readings.csv",
            &data()[..],
            File::create(d("p.zip")).unwrap(),
        )
        .unwrap();
    let (ok, _, _) = python(
        "file.py",
        &[
            "verify",
            "--zip",
            &d("p.zip"),
            "--signer-cert",
            &d("gateway.pem"),
            "--out",
            &d("out"),
        ],
        None,
    );
    assert!(!ok);
}

#[test]
fn python_decrypts_our_encrypted_zip_for_every_aes_size() {
    let dir = tempfile::tempdir().unwrap();
    write_pems(dir.path());
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    for aes in [AesCbc::Aes128, AesCbc::Aes192, AesCbc::Aes256] {
        gateway_ds()
            .encrypt_file(
                "platform",
                aes,
                "readings.csv",
                &data()[..],
                File::create(d("e.zip")).unwrap(),
                now(),
            )
            .unwrap();
        let (ok, _, err) = python(
            "file.py",
            &[
                "decrypt",
                "--zip",
                &d("e.zip"),
                "--key",
                &d("platform.key"),
                "--recipient-cert",
                &d("platform.pem"),
                "--out",
                &d("out"),
            ],
            None,
        );
        assert!(ok, "{aes:?}: {err}");
        assert_eq!(std::fs::read(d("out")).unwrap(), data(), "{aes:?}");
    }
}

#[test]
fn we_open_zips_that_python_produces() {
    let dir = tempfile::tempdir().unwrap();
    write_pems(dir.path());
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    std::fs::write(d("in.csv"), data()).unwrap();
    let (ok, _, err) = python(
        "file.py",
        &[
            "sign",
            "--in",
            &d("in.csv"),
            "--name",
            "readings.csv",
            "--key",
            &d("platform.key"),
            "--cert",
            &d("platform.pem"),
            "--zip",
            &d("s.zip"),
        ],
        None,
    );
    assert!(ok, "{err}");
    let mut out = Vec::new();
    let info = gateway_ds()
        .verify_file("platform", File::open(d("s.zip")).unwrap(), &mut out, now())
        .unwrap();
    assert_eq!((info.name.as_str(), out), ("readings.csv", data()));
    for bits in ["128", "192", "256"] {
        let (ok, _, err) = python(
            "file.py",
            &[
                "encrypt",
                "--in",
                &d("in.csv"),
                "--name",
                "readings.csv",
                "--cert",
                &d("gateway.pem"),
                "--aes",
                bits,
                "--zip",
                &d("e.zip"),
            ],
            None,
        );
        assert!(ok, "{err}");
        let mut out = Vec::new();
        gateway_ds()
            .decrypt_file(File::open(d("e.zip")).unwrap(), &mut out)
            .unwrap();
        assert_eq!(out, data(), "AES-{bits}");
    }
}
