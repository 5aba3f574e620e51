//! Criterion benchmarks of every data-security operation (SEC-*) at 1 KiB, 64 KiB and 1 MiB:
//! message and JSON profile seal / open (JWS + JWE), XML profile protect / open
//! (encrypt-then-sign, AES-128 and AES-256), XML parse / exclusive c14n / sign / verify alone,
//! file sign / verify and encrypt / decrypt (streaming ZIP), and masking per field and per
//! 1 MiB of fields. Payloads: billing records of the simulated legacy system (see the
//! `benches` library). Run: `cargo bench -p benches --bench security`; figures and their
//! physical limits are in docs/PERFORMANCE.md. Nothing here asserts on time.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Cursor;
use std::time::Duration;

use benches::{SIZES, billing_csv, data_envelope, json_profile, personal_fields, xml_profile};
use chrono::Utc;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use gateway::security::xml::c14n::canonicalize;
use gateway::security::xml::{
    XmlCipher, open_profile, protect_profile, sign_document, tree, verify_signature,
};
use gateway::security::{
    AesCbc, DataSecurity, Identity, KeyAlg, KeyStore, MaskingKeys, Role, jose,
};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{CrlNumber, X509, X509Builder, X509Crl, X509CrlBuilder, X509NameBuilder};

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
    } else {
        // DES-CERT-4 step 3: the data-protection role as extended key usage.
        let role = if cn == "platform" {
            Role::Platform
        } else {
            Role::Gateway
        };
        b.append_extension(
            ExtendedKeyUsage::new()
                .other(role.eku_oid())
                .build()
                .unwrap(),
        )
        .unwrap();
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

struct Parties {
    gw: DataSecurity,
    pf: DataSecurity,
    gw_key: PKey<Private>,
    gw_cert: X509,
    pf_key: PKey<Private>,
    pf_cert: X509,
}

fn parties() -> Parties {
    let (rk, gk, pk) = (key(), key(), key());
    let root = cert("root", &rk, None, 1);
    let gw = cert("GW0001", &gk, Some((&root, &rk)), 2);
    let pf = cert("platform", &pk, Some((&root, &rk)), 3);
    let mut g = KeyStore::new(gk.clone(), gw.clone(), root.clone()).unwrap();
    g.add_peer(Identity::platform(), pf.clone()).unwrap();
    g.set_crl(crl(&root, &rk));
    let mut p = KeyStore::new(pk.clone(), pf.clone(), root.clone()).unwrap();
    p.add_peer(Identity::gateway("GW0001"), gw.clone()).unwrap();
    p.set_crl(crl(&root, &rk));
    Parties {
        gw: DataSecurity::new(g).with_masking(MaskingKeys::new("k1", &[9u8; 32]).unwrap()),
        pf: DataSecurity::new(p),
        gw_key: gk,
        gw_cert: gw,
        pf_key: pk,
        pf_cert: pf,
    }
}

fn cfg<'a>(c: &'a mut Criterion, name: &str) -> criterion::BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    // Flat sampling: the same iteration count in every sample, so a 1 MiB operation of
    // ~100 ms needs 20 iterations, not the 210 of linear sampling.
    g.sampling_mode(SamplingMode::Flat);
    g
}

/// The sizes to run: all three under `cargo bench`, only 1 KiB when `cargo test` runs the
/// bench once as a smoke test (debug build), so that the test suite stays fast.
fn sizes() -> &'static [(usize, &'static str)] {
    if std::env::args().any(|a| a == "--bench") {
        &SIZES
    } else {
        &SIZES[..1]
    }
}

fn bench(c: &mut Criterion) {
    let p = parties();
    let (gw, pf) = (&p.gw, &p.pf);
    let now = Utc::now();

    // JSON message sealing (DES-SEAL): JWE(RSA-OAEP-256, A128CBC-HS256) over JWS(RS256).
    let mut g = cfg(c, "message");
    for &(n, label) in sizes() {
        let env = data_envelope(n);
        g.throughput(Throughput::Bytes(env.len() as u64));
        g.bench_with_input(BenchmarkId::new("seal", label), &env, |b, d| {
            b.iter(|| gw.seal_message("platform", d, now).unwrap())
        });
        let sealed = gw.seal_message("platform", &env, now).unwrap();
        g.bench_with_input(BenchmarkId::new("open", label), &sealed, |b, s| {
            b.iter(|| pf.open_message("GW0001", s, now).unwrap())
        });
    }
    g.finish();

    // JSON data profile (DES-PROF): same nesting, other typ/cty.
    let mut g = cfg(c, "json_profile");
    for &(n, label) in sizes() {
        let prof = json_profile(n);
        g.throughput(Throughput::Bytes(prof.len() as u64));
        g.bench_with_input(BenchmarkId::new("seal", label), &prof, |b, d| {
            b.iter(|| gw.seal_json_profile("platform", d, now).unwrap())
        });
        let sealed = gw.seal_json_profile("platform", &prof, now).unwrap();
        g.bench_with_input(BenchmarkId::new("open", label), &sealed, |b, s| {
            b.iter(|| pf.open_json_profile("GW0001", s, now).unwrap())
        });
    }
    g.finish();

    // XML data profile (DES-PROF): encrypt Body then enveloped signature; open verifies first.
    // The facade has no XML entry point, so this calls xml::protect_profile / open_profile
    // directly (the certificate checks the facade would add are not in these figures).
    let mut g = cfg(c, "xml_profile");
    let mut cases: Vec<(usize, &str, XmlCipher, &str)> = sizes()
        .iter()
        .map(|&(n, l)| (n, l, XmlCipher::Aes128Cbc, "aes128"))
        .collect();
    if sizes().len() == SIZES.len() {
        cases.push((1 << 20, "1MiB", XmlCipher::Aes256Cbc, "aes256"));
    }
    for (n, label, cipher, cname) in cases {
        let doc = xml_profile(n);
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_with_input(
            BenchmarkId::new(format!("protect_{cname}"), label),
            &doc,
            |b, d| {
                b.iter(|| protect_profile(d, &p.gw_key, &p.gw_cert, &p.pf_cert, cipher).unwrap())
            },
        );
        let prot = protect_profile(&doc, &p.gw_key, &p.gw_cert, &p.pf_cert, cipher).unwrap();
        g.bench_with_input(
            BenchmarkId::new(format!("open_{cname}"), label),
            &prot,
            |b, d| b.iter(|| open_profile(d, &p.pf_key, &p.gw_cert).unwrap()),
        );
    }
    g.finish();

    // The XML building blocks: parse (hardened DOM), exclusive c14n of the parsed tree, and
    // both (what lxml's parse + C14N 1.0 exclusive does).
    let mut g = cfg(c, "xml_c14n");
    for &(n, label) in sizes() {
        let doc = xml_profile(n);
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_with_input(BenchmarkId::new("parse", label), &doc, |b, d| {
            b.iter(|| tree::parse(d).unwrap())
        });
        let parsed = tree::parse(&doc).unwrap();
        g.bench_with_input(BenchmarkId::new("exc_c14n", label), &parsed, |b, d| {
            b.iter(|| canonicalize(&d.root, &[], &[], None))
        });
        g.bench_with_input(BenchmarkId::new("parse_exc_c14n", label), &doc, |b, d| {
            b.iter(|| canonicalize(&tree::parse(d).unwrap().root, &[], &[], None))
        });
    }
    g.finish();

    // XML Signature alone: enveloped, URI="", exc-c14n, rsa-sha256, on the plain profile.
    let mut g = cfg(c, "xml_dsig");
    for &(n, label) in sizes() {
        let doc = xml_profile(n);
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_with_input(BenchmarkId::new("sign", label), &doc, |b, d| {
            b.iter(|| sign_document(d, &p.gw_key, &p.gw_cert).unwrap())
        });
        let signed = sign_document(&doc, &p.gw_key, &p.gw_cert).unwrap();
        g.bench_with_input(BenchmarkId::new("verify", label), &signed, |b, d| {
            b.iter(|| verify_signature(d, &p.gw_cert).unwrap())
        });
    }
    g.finish();

    // Files (SEC-FILE-*): signed and encrypted streaming ZIP of a billing CSV.
    let mut g = cfg(c, "file");
    for &(n, label) in sizes() {
        let d = billing_csv(n);
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

    // Masking (SEC-MASK-*): one field (a name, an address), and every personal field of
    // billing records adding up to 1 MiB of field text.
    let mut g = cfg(c, "mask");
    let fields = personal_fields(1024);
    for (col, kind) in [("name", "name"), ("address", "address")] {
        let v = fields.iter().find(|(c, _)| *c == col).unwrap().1.clone();
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("mask_field", kind), &v, |b, v| {
            b.iter(|| gw.mask(col, v).unwrap())
        });
        let m = gw.mask(col, &v).unwrap();
        g.bench_with_input(BenchmarkId::new("unmask_field", kind), &m, |b, m| {
            b.iter(|| gw.unmask(col, m).unwrap())
        });
    }
    let &(n, label) = sizes().last().unwrap();
    let fields = personal_fields(n);
    let bytes: usize = fields.iter().map(|(_, v)| v.len()).sum();
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_with_input(BenchmarkId::new("mask_fields", label), &fields, |b, f| {
        b.iter(|| {
            f.iter()
                .map(|(c, v)| gw.mask(c, v).unwrap())
                .collect::<Vec<_>>()
        })
    });
    let masked: Vec<(&str, String)> = fields
        .iter()
        .map(|(c, v)| (*c, gw.mask(c, v).unwrap()))
        .collect();
    g.bench_with_input(BenchmarkId::new("unmask_fields", label), &masked, |b, f| {
        b.iter(|| {
            f.iter()
                .map(|(c, m)| gw.unmask(c, m).unwrap())
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

/// Floors measured in the same run and under the same load as the figures above: the RSA
/// operations, digest, cipher and encodings every operation must do at least once, and
/// DEFLATE / INFLATE of the `zip` crate (the signed ZIP's format choice). docs/PERFORMANCE.md
/// builds each operation's lower bound from these and from `openssl speed`.
fn floor(c: &mut Criterion) {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use openssl::encrypt::{Decrypter, Encrypter};
    use openssl::rsa::Padding;
    use openssl::sign::{Signer, Verifier};
    use openssl::symm::{Cipher, decrypt, encrypt};
    use std::io::{Read as _, Write as _};

    let p = parties();
    let now = Utc::now();
    let mut g = cfg(c, "floor");
    let msg = [7u8; 64];
    g.bench_function("rsa2048_sign", |b| {
        b.iter(|| {
            let mut s = Signer::new(MessageDigest::sha256(), &p.gw_key).unwrap();
            s.update(&msg).unwrap();
            s.sign_to_vec().unwrap()
        })
    });
    let sig = {
        let mut s = Signer::new(MessageDigest::sha256(), &p.gw_key).unwrap();
        s.update(&msg).unwrap();
        s.sign_to_vec().unwrap()
    };
    let gw_pub = p.gw_cert.public_key().unwrap();
    g.bench_function("rsa2048_verify", |b| {
        b.iter(|| {
            let mut v = Verifier::new(MessageDigest::sha256(), &gw_pub).unwrap();
            v.update(&msg).unwrap();
            v.verify(&sig).unwrap()
        })
    });
    let pf_pub = p.pf_cert.public_key().unwrap();
    let wrap = || {
        let mut e = Encrypter::new(&pf_pub).unwrap();
        e.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
        e.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
        e.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
        let mut out = vec![0u8; e.encrypt_len(&msg[..32]).unwrap()];
        let n = e.encrypt(&msg[..32], &mut out).unwrap();
        out.truncate(n);
        out
    };
    g.bench_function("rsa2048_oaep256_wrap", |b| b.iter(wrap));
    let wrapped = wrap();
    g.bench_function("rsa2048_oaep256_unwrap", |b| {
        b.iter(|| {
            let mut d = Decrypter::new(&p.pf_key).unwrap();
            d.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
            d.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
            d.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
            let mut out = vec![0u8; d.decrypt_len(&wrapped).unwrap()];
            let n = d.decrypt(&wrapped, &mut out).unwrap();
            out.truncate(n);
            out
        })
    });
    g.bench_function("validate_peer_cert", |b| {
        b.iter(|| p.gw.validate_peer("platform", now).unwrap().kid.len())
    });
    // Parts of the free functions that are not cryptography: jose::jws_sign re-encodes the
    // private key to PKCS#8 DER and josekit parses it back on every call; jws_verify /
    // jwe_encrypt do the same with the public key (SPKI). The facade's seal / open no longer
    // pay this: KeyStore / PeerCert keep the josekit objects (docs/PERFORMANCE.md).
    g.bench_function("pkcs8_export_import", |b| {
        b.iter(|| {
            let der = p.gw_key.private_key_to_pkcs8().unwrap();
            PKey::private_key_from_der(&der).unwrap()
        })
    });
    g.bench_function("spki_export_import", |b| {
        b.iter(|| {
            let der = gw_pub.public_key_to_der().unwrap();
            PKey::public_key_from_der(&der).unwrap()
        })
    });
    // One masking call's primitives on a 30-byte field: HMAC-SHA-256 (nonce) and AES-256-GCM,
    // each through a fresh OpenSSL context as mask.rs does.
    let field = "東京都千代田区霞が関".as_bytes();
    g.bench_function("hmac_sha256_field", |b| {
        b.iter(|| {
            let k = PKey::hmac(&[3u8; 32]).unwrap();
            let mut s = Signer::new(MessageDigest::sha256(), &k).unwrap();
            s.update(field).unwrap();
            s.sign_to_vec().unwrap()
        })
    });
    // What-if: the same HMAC with the key object built once (as a per-key cache would).
    let hk = PKey::hmac(&[3u8; 32]).unwrap();
    g.bench_function("hmac_sha256_field_key_reused", |b| {
        b.iter(|| {
            let mut s = Signer::new(MessageDigest::sha256(), &hk).unwrap();
            s.update(field).unwrap();
            s.sign_to_vec().unwrap()
        })
    });
    g.bench_function("aes256gcm_field", |b| {
        b.iter(|| {
            let mut tag = [0u8; 16];
            openssl::symm::encrypt_aead(
                Cipher::aes_256_gcm(),
                &[4u8; 32],
                Some(&[5u8; 12]),
                b"address",
                field,
                &mut tag,
            )
            .unwrap()
        })
    });
    let env = data_envelope(1024);
    g.bench_function("jose_jws_sign_1KiB", |b| {
        b.iter(|| jose::jws_sign(&p.gw_key, &env, Some("sgw-msg"), Some("kid"), None).unwrap())
    });
    // What-if: josekit's signer built once from our key (as a per-key cache would), then one
    // JWS per call with the same header as jose::jws_sign.
    let signer = josekit::jws::RS256
        .signer_from_der(p.gw_key.private_key_to_pkcs8().unwrap())
        .unwrap();
    g.bench_function("josekit_jws_sign_1KiB_signer_reused", |b| {
        b.iter(|| {
            let mut h = josekit::jws::JwsHeader::new();
            h.set_token_type("sgw-msg");
            h.set_key_id("kid");
            josekit::jws::serialize_compact(&env, &h, &signer).unwrap()
        })
    });
    let jws = jose::jws_sign(&p.gw_key, &env, Some("sgw-msg"), Some("kid"), None).unwrap();
    g.bench_function("jose_jwe_encrypt_1KiB", |b| {
        b.iter(|| {
            jose::jwe_encrypt(&pf_pub, KeyAlg::RsaOaep256, jws.as_bytes(), None, None).unwrap()
        })
    });
    let &(n, label) = sizes().last().unwrap();
    let data = billing_csv(n);
    g.throughput(Throughput::Bytes(n as u64));
    g.bench_with_input(BenchmarkId::new("sha256", label), &data, |b, d| {
        b.iter(|| openssl::sha::sha256(d))
    });
    let (key, iv) = ([1u8; 16], [2u8; 16]);
    g.bench_with_input(BenchmarkId::new("aes128cbc_enc", label), &data, |b, d| {
        b.iter(|| encrypt(Cipher::aes_128_cbc(), &key, Some(&iv), d).unwrap())
    });
    let ct = encrypt(Cipher::aes_128_cbc(), &key, Some(&iv), &data).unwrap();
    g.bench_with_input(BenchmarkId::new("aes128cbc_dec", label), &ct, |b, d| {
        b.iter(|| decrypt(Cipher::aes_128_cbc(), &key, Some(&iv), d).unwrap())
    });
    g.bench_with_input(BenchmarkId::new("b64url_enc", label), &data, |b, d| {
        b.iter(|| B64.encode(d))
    });
    let enc = B64.encode(&data);
    g.bench_with_input(BenchmarkId::new("b64url_dec", label), &enc, |b, d| {
        b.iter(|| B64.decode(d).unwrap())
    });
    let deflate = |d: &[u8]| {
        let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("f.csv", o).unwrap();
        z.write_all(d).unwrap();
        z.finish().unwrap().into_inner()
    };
    g.bench_with_input(BenchmarkId::new("zip_deflate", label), &data, |b, d| {
        b.iter(|| deflate(d))
    });
    let z = deflate(&data);
    g.bench_with_input(BenchmarkId::new("zip_inflate", label), &z, |b, z| {
        b.iter(|| {
            let mut a = zip::ZipArchive::new(Cursor::new(z)).unwrap();
            let mut out = Vec::with_capacity(n);
            a.by_index(0).unwrap().read_to_end(&mut out).unwrap();
            out
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench, floor
}
criterion_main!(benches);
