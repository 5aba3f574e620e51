//! Criterion benchmarks of data security (SEC-*): message sealing and opening, file sign /
//! verify and encrypt / decrypt, and field masking, at 1 KiB, 64 KiB and 1 MiB.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Cursor;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gateway::security::{AesCbc, DataSecurity, KeyStore, MaskingKeys};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{AuthorityKeyIdentifier, BasicConstraints, SubjectKeyIdentifier};
use openssl::x509::{CrlNumber, X509, X509Builder, X509Crl, X509CrlBuilder, X509NameBuilder};

const SIZES: [(usize, &str); 3] = [(1 << 10, "1KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn cert(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    serial: u32,
) -> X509 {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    let n = n.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(serial).unwrap()).unwrap())
        .unwrap();
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(issuer.map(|i| i.0.subject_name()).unwrap_or(&n))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    if issuer.is_none() {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
    }
    b.sign(issuer.map(|i| i.1).unwrap_or(key), MessageDigest::sha256())
        .unwrap();
    b.build()
}

fn crl(root: &X509, root_key: &PKey<Private>) -> X509Crl {
    let mut b = X509CrlBuilder::new().unwrap();
    b.set_issuer_name(root.subject_name()).unwrap();
    let ctx = X509Builder::new().unwrap();
    b.append_extension(
        AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&ctx.x509v3_context(Some(root), None))
            .unwrap(),
    )
    .unwrap();
    b.append_extension(
        CrlNumber::new(BigNum::from_u32(1).unwrap())
            .unwrap()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.set_last_update(&Asn1Time::from_unix(Utc::now().timestamp() - 3600).unwrap())
        .unwrap();
    b.set_next_update(&Asn1Time::days_from_now(7).unwrap())
        .unwrap();
    b.sign(root_key, MessageDigest::sha256()).unwrap();
    b.build().unwrap()
}

fn parties() -> (DataSecurity, DataSecurity) {
    let (rk, gk, pk) = (key(), key(), key());
    let root = cert("root", &rk, None, 1);
    let gw = cert("GW0001", &gk, Some((&root, &rk)), 2);
    let pf = cert("platform", &pk, Some((&root, &rk)), 3);
    let mut g = KeyStore::new(gk, gw.clone(), root.clone()).unwrap();
    g.add_peer("platform", pf.clone()).unwrap();
    g.set_crl(crl(&root, &rk));
    let mut p = KeyStore::new(pk, pf, root.clone()).unwrap();
    p.add_peer("GW0001", gw).unwrap();
    p.set_crl(crl(&root, &rk));
    (
        DataSecurity::new(g).with_masking(MaskingKeys::new("k1", &[9u8; 32]).unwrap()),
        DataSecurity::new(p),
    )
}

/// CSV-like text, compressible about 2-3x (well under the ZIP bomb ratio limit).
fn data(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut line = 0u64;
    while out.len() < n {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        line += 1;
        out.extend_from_slice(
            format!(
                "{line},M-{:05},{}.{:02}\n",
                (x >> 40) % 100_000,
                (x >> 20) % 10_000,
                x % 100
            )
            .as_bytes(),
        );
    }
    out.truncate(n);
    out
}

fn bench(c: &mut Criterion) {
    let (gw, pf) = parties();
    let now = Utc::now();
    let mut g = c.benchmark_group("seal_message");
    for (n, label) in SIZES {
        let d = data(n);
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::new("seal", label), &d, |b, d| {
            b.iter(|| gw.seal_message("platform", d, now).unwrap())
        });
        let sealed = gw.seal_message("platform", &d, now).unwrap();
        g.bench_with_input(BenchmarkId::new("open", label), &sealed, |b, s| {
            b.iter(|| pf.open_message("GW0001", s, now).unwrap())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("file");
    for (n, label) in SIZES {
        let d = data(n);
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::new("sign", label), &d, |b, d| {
            b.iter(|| {
                gw.sign_file("f.csv", &d[..], Cursor::new(Vec::new()))
                    .unwrap()
            })
        });
        let z = gw
            .sign_file("f.csv", &d[..], Cursor::new(Vec::new()))
            .unwrap()
            .into_inner();
        g.bench_with_input(BenchmarkId::new("verify", label), &z, |b, z| {
            b.iter(|| {
                pf.verify_file("GW0001", Cursor::new(z), std::io::sink(), now)
                    .unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("encrypt_aes128", label), &d, |b, d| {
            b.iter(|| {
                gw.encrypt_file(
                    "platform",
                    AesCbc::Aes128,
                    "f.csv",
                    &d[..],
                    Cursor::new(Vec::new()),
                    now,
                )
                .unwrap()
            })
        });
        let z = gw
            .encrypt_file(
                "platform",
                AesCbc::Aes128,
                "f.csv",
                &d[..],
                Cursor::new(Vec::new()),
                now,
            )
            .unwrap()
            .into_inner();
        g.bench_with_input(BenchmarkId::new("decrypt_aes128", label), &z, |b, z| {
            b.iter(|| pf.decrypt_file(Cursor::new(z), std::io::sink()).unwrap())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("mask");
    for (n, label) in SIZES {
        let s = String::from_utf8(data(n)).unwrap();
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::new("mask", label), &s, |b, s| {
            b.iter(|| gw.mask("col", s).unwrap())
        });
        let m = gw.mask("col", &s).unwrap();
        g.bench_with_input(BenchmarkId::new("unmask", label), &m, |b, m| {
            b.iter(|| gw.unmask("col", m).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
