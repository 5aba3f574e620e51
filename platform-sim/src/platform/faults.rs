//! Fault injection helpers (conformance; SM-RESEND, IF-PSTART-2, SEC-CERT-2): the CLI spelling
//! of a [`FaultConfig`] and the byte-level tampering of a sealed message.
//!
//! CLI spelling (`platform-sim run --fault …`, `platform-sim fault …`): comma-separated items
//! `drop=PCT`, `dup=PCT`, `delay=MS`, `reorder`, `withhold-acks`, `late-acks`, `tamper[=N]`,
//! `unsigned[=N]`, `expired-cert[=N]`, `revoked-cert[=N]`, `stale-crl`, `stale-command[=N]`,
//! `replay-start`, `foreign-root`, `offer-signer-cert`, `jose=ATTACK` (an [`crate::ops::JoseAttack`] name, e.g. `jose=alg-none`),
//! `envelope=ATTACK` (an [`crate::ops::EnvelopeAttack`] name, e.g. `envelope=version-2`),
//! `reply=ATTACK` (a [`crate::ops::ReplyAttack`] name, e.g. `reply=unknown-code`),
//! `platform-pem=ATTACK` (a [`crate::ops::PemAttack`] name, e.g. `platform-pem=private-key-block`),
//! `rogue-app`, `busy-connects[=N]`, `unauthorized-connects[=N]`, `lose-data[=N]`,
//! `busy-acks[=N]`, `ack-code=CODE` (a failure result code, e.g. `ack-code=TOO_LARGE`),
//! `https-unreachable`, or `none` (all off).
//! Unknown items are refused.

use crate::ops::FaultConfig;

/// Why a fault spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultSpecError {
    /// MON-2: an item is not one of the documented fault names.
    #[error("MON-2: unknown fault {0:?}")]
    Unknown(String),
    /// MON-2: a value is not a number in range.
    #[error("MON-2: bad value in fault {0:?}")]
    Value(String),
}

fn num<T: std::str::FromStr>(item: &str, v: Option<&str>, default: T) -> Result<T, FaultSpecError> {
    match v {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| FaultSpecError::Value(item.to_owned())),
    }
}

/// The one of `all` whose name (`name_of`) is the value `v` of `item`.
fn named<T: Copy>(
    all: &[T],
    name_of: fn(T) -> &'static str,
    item: &str,
    v: Option<&str>,
) -> Result<T, FaultSpecError> {
    all.iter()
        .copied()
        .find(|a| Some(name_of(*a)) == v)
        .ok_or_else(|| FaultSpecError::Value(item.to_owned()))
}

/// Parses the CLI spelling (module doc) into a [`FaultConfig`] (percentages checked).
pub fn parse_fault_spec(spec: &str) -> Result<FaultConfig, FaultSpecError> {
    let mut f = FaultConfig::default();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        match k {
            "none" => f = FaultConfig::default(),
            "drop" => f.drop_percent = num(item, v, 100)?,
            "dup" | "duplicate" => f.duplicate_percent = num(item, v, 100)?,
            "delay" => f.delay_ms = num(item, v, 200)?,
            "reorder" => f.reorder = true,
            "withhold-acks" => f.withhold_acks = true,
            "late-acks" => f.late_acks = true,
            "tamper" => f.tamper_commands = num(item, v, 1)?,
            "unsigned" => f.unsigned_commands = num(item, v, 1)?,
            "expired-cert" => f.expired_cert_commands = num(item, v, 1)?,
            "revoked-cert" => f.revoked_cert_commands = num(item, v, 1)?,
            "stale-crl" => f.stale_crl = true,
            "stale-command" => f.stale_commands = num(item, v, 1)?,
            "replay-start" => f.replay_start_after_stop = true,
            "foreign-root" => f.foreign_root = true,
            "offer-signer-cert" => f.offer_signer_cert = true,
            "rogue-app" => f.rogue_app = true,
            "busy-connects" => f.busy_connects = num(item, v, 1)?,
            "unauthorized-connects" => f.unauthorized_connects = num(item, v, 1)?,
            "lose-data" => f.lose_data = num(item, v, 1)?,
            "busy-acks" => f.busy_acks = num(item, v, 1)?,
            "ack-code" => {
                use gateway::protocol::message::ResultCode;
                let code: ResultCode = v
                    .and_then(|v| serde_json::from_value(v.into()).ok())
                    .filter(|c| *c != ResultCode::Ok)
                    .ok_or_else(|| FaultSpecError::Value(item.to_owned()))?;
                f.ack_code = Some(code);
            }
            "https-unreachable" => f.https_unreachable = true,
            "jose" => {
                f.jose_attack = Some(named(&crate::ops::JoseAttack::ALL, |a| a.name(), item, v)?)
            }
            "envelope" => {
                f.envelope_attack = Some(named(
                    &crate::ops::EnvelopeAttack::ALL,
                    |a| a.name(),
                    item,
                    v,
                )?);
            }
            "platform-pem" => {
                f.platform_pem_attack =
                    Some(named(&crate::ops::PemAttack::ALL, |a| a.name(), item, v)?);
            }
            "reply" => {
                f.reply_attack = Some(named(&crate::ops::ReplyAttack::ALL, |a| a.name(), item, v)?)
            }
            _ => return Err(FaultSpecError::Unknown(item.to_owned())),
        }
    }
    if f.drop_percent > 100 || f.duplicate_percent > 100 {
        return Err(FaultSpecError::Value(spec.to_owned()));
    }
    Ok(f)
}

/// Flips one bit of the JWE ciphertext (4th part) of a compact token, keeping it well-formed
/// base64url, so only the cryptographic check can notice (IF-PSTART-2).
pub fn tamper_token(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    if parts.len() == 5
        && let Ok(mut ct) = gateway::security::jose::b64url_decode(&parts[3])
        && let mid = ct.len() / 2
        && let Some(b) = ct.get_mut(mid)
    {
        *b ^= 0x01;
        parts[3] = gateway::security::jose::b64url_encode(&ct);
        return parts.join(".");
    }
    // Not a JWE compact: flip the last character instead.
    let mut s = token.to_owned();
    if let Some(c) = s.pop() {
        s.push(if c == 'A' { 'B' } else { 'A' });
    }
    s
}

/// A self-signed CA certificate (PEM) that is not the simulator's root: what the
/// `foreign_root` fault serves as `root.pem`.
///
/// # Errors
/// The key or certificate could not be made.
pub fn foreign_root_pem() -> Result<String, gateway::security::SecurityError> {
    use openssl::x509::extension::BasicConstraints;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "Not the SGW root")?;
    let name = name.build();
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = openssl::bn::BigNum::from_u32(1)?.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    b.set_not_before(&*openssl::asn1::Asn1Time::days_from_now(0)?)?;
    b.set_not_after(&*openssl::asn1::Asn1Time::days_from_now(365)?)?;
    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    b.sign(&key, openssl::hash::MessageDigest::sha256())?;
    let pem = b.build().to_pem()?;
    Ok(String::from_utf8_lossy(&pem).into_owned())
}

/// The envelope `encoded` (a command as the platform encoded it) broken by `attack`; the
/// caller seals the result correctly. `None` if `encoded` is not a JSON object with a `body`
/// object (not a command), and for a `Resend*` attack if it is not a `resend.request` of the
/// shape the attack needs.
pub fn attack_envelope(attack: crate::ops::EnvelopeAttack, encoded: &[u8]) -> Option<Vec<u8>> {
    use crate::ops::EnvelopeAttack as A;
    let mut v: serde_json::Value = serde_json::from_slice(encoded).ok()?;
    let obj = v.as_object_mut()?;
    obj.get("body")?.as_object()?;
    match attack {
        // 256 KiB of `ext` puts the envelope over MAX_ENVELOPE_BYTES; sealed it stays well
        // under the 1 MiB payload limit (×16/9 for the JWS and the JWE).
        A::Oversize => {
            obj.insert(
                "ext".into(),
                serde_json::Value::String("x".repeat(256 * 1024)),
            );
        }
        A::Ext => {
            obj.insert("ext".into(), serde_json::json!({"future": [1, 2, 3]}));
        }
        A::Version2 => {
            obj.insert("version".into(), 2.into());
        }
        A::UnknownMember => {
            obj.get_mut("body")?
                .as_object_mut()?
                .insert("colour".into(), "red".into());
        }
        A::ForeignGatewayId => {
            obj.insert("gatewayId".into(), "GWX9999".into());
        }
        // The previous command's `commandSeq`: equal to the last applied one if that command
        // was applied (the boundary of DES-MSG-PS-4).
        A::OldCommandSeq => {
            let body = obj.get_mut("body")?.as_object_mut()?;
            let n = body.get("commandSeq")?.as_u64()?;
            body.insert("commandSeq".into(), n.saturating_sub(1).into());
        }
        // The payload itself (the caller does not seal it).
        A::OversizePayload => {
            return Some(vec![
                b'x';
                gateway::protocol::message::MAX_PAYLOAD_BYTES + 16
            ]);
        }
        // The resend body's attacks: `None` (nothing sent) for another command.
        A::ResendBoth => {
            let body = resend_body(obj)?;
            body.get("seq")?;
            body.insert(
                "time".into(),
                serde_json::json!({"from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z"}),
            );
        }
        A::ResendNeither => {
            let body = resend_body(obj)?;
            body.remove("seq");
            body.remove("time");
        }
        A::ResendUnorderedSeq => {
            let seq = resend_body(obj)?.get_mut("seq")?.as_object_mut()?;
            let (first, last) = (seq.get("first")?.as_u64()?, seq.get("last")?.as_u64()?);
            if first >= last {
                return None;
            }
            seq.insert("first".into(), last.into());
            seq.insert("last".into(), first.into());
        }
        A::ResendSeqZero => {
            let seq = resend_body(obj)?.get_mut("seq")?.as_object_mut()?;
            seq.insert("first".into(), 0.into());
        }
        A::ResendUnorderedTime => {
            let body = resend_body(obj)?;
            body.remove("seq");
            body.insert(
                "time".into(),
                serde_json::json!({"from": "2000-01-02T00:00:00Z", "to": "2000-01-01T00:00:00Z"}),
            );
        }
        A::NotJson => {
            let mut out = b"sgw ".to_vec();
            out.extend_from_slice(encoded);
            return Some(out);
        }
        A::DuplicateMember => {
            // `{"version":1,` + the rest: `version` twice, otherwise the same bytes.
            let rest = encoded.strip_prefix(b"{")?;
            let mut out = b"{\"version\":1,".to_vec();
            out.extend_from_slice(rest);
            return Some(out);
        }
    }
    serde_json::to_vec(&v).ok()
}

/// The body of a `resend.request` envelope (`None` for another message type).
fn resend_body(
    obj: &mut serde_json::Map<String, serde_json::Value>,
) -> Option<&mut serde_json::Map<String, serde_json::Value>> {
    if obj.get("type")?.as_str()? != "resend.request" {
        return None;
    }
    obj.get_mut("body")?.as_object_mut()
}

/// `pem` (the platform certificate as PEM) broken by `attack`: the certificate is still in it,
/// unchanged.
pub fn attack_pem(attack: crate::ops::PemAttack, pem: &str) -> String {
    use crate::ops::PemAttack as A;
    match attack {
        // A throw-away key: the block's content does not matter, only its type.
        A::PrivateKeyBlock => {
            let key = openssl::rsa::Rsa::generate(2048)
                .and_then(openssl::pkey::PKey::from_rsa)
                .and_then(|k| k.private_key_to_pem_pkcs8())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            format!("{pem}{key}")
        }
        A::OverOneMib => {
            let line = format!("{}\n", "x".repeat(63));
            let mut out = line.repeat((1 << 20) / 64 + 1);
            out.push_str(pem);
            out
        }
    }
}

/// The reply `encoded` (as the platform encoded it) broken by `attack`; the caller seals the
/// result correctly. `None` if `encoded` is not a JSON object with a `result` object.
pub fn attack_reply(attack: crate::ops::ReplyAttack, encoded: &[u8]) -> Option<Vec<u8>> {
    use crate::ops::ReplyAttack as A;
    let mut v: serde_json::Value = serde_json::from_slice(encoded).ok()?;
    let result = v.get_mut("result")?.as_object_mut()?;
    match attack {
        A::UnknownCode => {
            result.insert("code".into(), "DEFERRED_BY_V2".into());
        }
        A::LongReason => {
            let max = gateway::protocol::message::MAX_TEXT_BYTES;
            result.insert("reason".into(), "r".repeat(max + 1).into());
        }
        A::OtherRange => {
            let last = v.pointer_mut("/body/range/last")?;
            *last = (last.as_u64()?.checked_add(1)?).into();
        }
    }
    serde_json::to_vec(&v).ok()
}

/// The forged inner JWS of `attack` over `payload` (an envelope), the platform's signing key
/// and certificate (PEM) at hand: what a forger could make (`vectors/` attack classes).
///
/// # Errors
/// A key could not be made or used.
pub fn attack_jws(
    attack: crate::ops::JoseAttack,
    platform_key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
    platform_cert_pem: &[u8],
    platform_kid: &str,
    payload: &[u8],
) -> Result<String, gateway::security::SecurityError> {
    use crate::ops::JoseAttack as A;
    use gateway::security::jose::b64url_encode as b64;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;
    let kid = platform_kid;
    let rs = |key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
              md: MessageDigest,
              input: &[u8]|
     -> Result<Vec<u8>, gateway::security::SecurityError> {
        let mut s = Signer::new(md, key)?;
        s.update(input)?;
        Ok(s.sign_to_vec()?)
    };
    let attacker = PKey::from_rsa(openssl::rsa::Rsa::generate(2048)?)?;
    let header = match attack {
        A::AlgNone => format!(r#"{{"alg":"none","typ":"sgw-msg","kid":"{kid}"}}"#),
        A::HmacKeyConfusion => format!(r#"{{"alg":"HS256","typ":"sgw-msg","kid":"{kid}"}}"#),
        A::UnsupportedAlg => format!(r#"{{"alg":"RS512","typ":"sgw-msg","kid":"{kid}"}}"#),
        A::HeaderCrit => {
            format!(r#"{{"alg":"RS256","typ":"sgw-msg","kid":"{kid}","crit":["exp"],"exp":1}}"#)
        }
        A::HeaderJku => format!(
            r#"{{"alg":"RS256","typ":"sgw-msg","kid":"{kid}","jku":"https://attacker.invalid/jwks"}}"#
        ),
        A::EmbeddedJwk => {
            let rsa = attacker.rsa()?;
            format!(
                r#"{{"alg":"RS256","typ":"sgw-msg","kid":"{kid}","jwk":{{"kty":"RSA","n":"{}","e":"{}"}}}}"#,
                b64(&rsa.n().to_vec()),
                b64(&rsa.e().to_vec())
            )
        }
        A::DuplicateAlg => {
            format!(r#"{{"alg":"RS256","typ":"sgw-msg","kid":"{kid}","alg":"none"}}"#)
        }
        A::WrongTyp => format!(r#"{{"alg":"RS256","typ":"sgw-profile","kid":"{kid}"}}"#),
        A::UnknownSigner => format!(r#"{{"alg":"RS256","typ":"sgw-msg","kid":"{kid}"}}"#),
    };
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload));
    let sig = match attack {
        A::AlgNone => Vec::new(),
        A::HmacKeyConfusion => {
            let mac_key = PKey::hmac(platform_cert_pem)?;
            let mut s = Signer::new(MessageDigest::sha256(), &mac_key)?;
            s.update(input.as_bytes())?;
            s.sign_to_vec()?
        }
        A::UnsupportedAlg => rs(platform_key, MessageDigest::sha512(), input.as_bytes())?,
        A::EmbeddedJwk | A::UnknownSigner => {
            rs(&attacker, MessageDigest::sha256(), input.as_bytes())?
        }
        A::HeaderCrit | A::HeaderJku | A::DuplicateAlg | A::WrongTyp => {
            rs(platform_key, MessageDigest::sha256(), input.as_bytes())?
        }
    };
    Ok(format!("{input}.{}", b64(&sig)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each forgery is well made at its own level (so a gateway that refuses it refuses it for
    /// the attack, not for a broken token): the platform-key ones carry a signature that
    /// verifies under the platform's key, the HMAC one verifies with the PEM as key, the
    /// embedded-JWK one under the embedded key, `alg` none has an empty signature.
    /// Each malformed envelope breaks the step of §6.10 it is named for and no earlier one: the
    /// reference decoder and peek judge it so (a gateway that refuses it refuses it for that
    /// rule), and the ones meant to be applied decode.
    #[test]
    fn every_envelope_attack_breaks_the_rule_it_names() {
        use crate::ops::EnvelopeAttack as A;
        use gateway::protocol::ids::{GatewayId, MessageId};
        use gateway::protocol::message::{
            Body, DecodeError, Envelope, MAX_ENVELOPE_BYTES, MAX_PAYLOAD_BYTES, PeriodicStart,
            ProfileFormat, peek,
        };
        let env = Envelope {
            version: 1,
            message_id: MessageId::new("p1.7").unwrap(),
            gateway_id: GatewayId::new("GW0001").unwrap(),
            timestamp: chrono::Utc::now().into(),
            in_reply_to: None,
            result: None,
            body: Body::PeriodicStart(PeriodicStart {
                command_seq: 7,
                datasets: vec![],
                interval_sec: 5,
                format: ProfileFormat::Json,
            }),
        };
        let bytes = env.encode();
        for a in A::ANY_COMMAND {
            let bad = attack_envelope(a, &bytes).unwrap();
            let decoded = Envelope::decode(&bad);
            let peeked = peek(&bad);
            match a {
                A::Oversize => {
                    assert!(
                        bad.len() > MAX_ENVELOPE_BYTES && bad.len() * 16 / 9 < MAX_PAYLOAD_BYTES
                    );
                    assert!(matches!(decoded, Err(DecodeError::TooLarge(_))), "{a:?}");
                }
                A::NotJson => assert!(decoded.is_err() && peeked.is_none(), "{a:?}"),
                A::OversizePayload => {
                    assert_eq!(bad.len(), MAX_PAYLOAD_BYTES + 16);
                    assert!(decoded.is_err() && peeked.is_none(), "{a:?}");
                }
                A::DuplicateMember | A::UnknownMember => {
                    assert!(
                        matches!(
                            decoded,
                            Err(DecodeError::Envelope(_) | DecodeError::Body { .. })
                        ),
                        "{a:?}: {decoded:?}"
                    );
                }
                A::Version2 => {
                    assert!(
                        matches!(decoded, Err(DecodeError::UnsupportedVersion(2))),
                        "{a:?}"
                    );
                }
                A::Ext => assert_eq!(decoded.unwrap().body, env.body),
                A::ForeignGatewayId => {
                    assert_eq!(decoded.unwrap().gateway_id.as_str(), "GWX9999");
                }
                A::OldCommandSeq => match decoded.unwrap().body {
                    Body::PeriodicStart(p) => assert_eq!(p.command_seq, 6),
                    other => panic!("{other:?}"),
                },
                A::ResendBoth
                | A::ResendNeither
                | A::ResendUnorderedSeq
                | A::ResendSeqZero
                | A::ResendUnorderedTime => unreachable!("not in ANY_COMMAND"),
            }
            if !matches!(a, A::NotJson | A::OversizePayload) {
                let p = peeked.unwrap_or_else(|| panic!("{a:?} not peekable"));
                assert_eq!(p.message_id.as_str(), "p1.7", "{a:?}");
            }
        }
        // Not a command (no body object): refused.
        assert!(attack_envelope(A::Version2, b"[1]").is_none());
        // The resend body's attacks break nothing else: not applied to a start.
        for a in A::RESEND_BODY {
            assert!(attack_envelope(a, &bytes).is_none(), "{a:?}");
        }
    }

    /// Each resend body attack, applied to a correct `resend.request` by `seq` 2..=5, makes an
    /// envelope the reference decoder refuses for DES-MSG-RS-1 or DES-ID-4 (MALFORMED) but can
    /// still peek (so that the gateway answers it), and the intact request decodes.
    #[test]
    fn every_resend_body_attack_breaks_des_msg_rs_1() {
        use crate::ops::EnvelopeAttack as A;
        use gateway::protocol::ids::{GatewayId, MessageId, SeqRange};
        use gateway::protocol::message::{Body, Envelope, ResendRequest, peek};
        let env = Envelope {
            version: 1,
            message_id: MessageId::new("p1.9").unwrap(),
            gateway_id: GatewayId::new("GW0001").unwrap(),
            timestamp: chrono::Utc::now().into(),
            in_reply_to: None,
            result: None,
            body: Body::ResendRequest(ResendRequest {
                dataset: None,
                seq: SeqRange::new(2, 5),
                time: None,
            }),
        };
        let bytes = env.encode();
        assert_eq!(Envelope::decode(&bytes).unwrap().body, env.body);
        for a in A::RESEND_BODY {
            let bad = attack_envelope(a, &bytes).unwrap_or_else(|| panic!("{a:?} not applied"));
            assert_ne!(bad, bytes, "{a:?}");
            let err = Envelope::decode(&bad).expect_err(&format!("{a:?} decodes"));
            let text = err.to_string();
            assert!(
                text.contains("DES-MSG-RS-1") || text.contains("DES-ID-4"),
                "{a:?}: {text}"
            );
            let p = peek(&bad).unwrap_or_else(|| panic!("{a:?} not peekable"));
            assert_eq!(p.message_id.as_str(), "p1.9", "{a:?}");
        }
        // A single-seq range cannot be swapped: not applied.
        let one = Envelope {
            body: Body::ResendRequest(ResendRequest {
                dataset: None,
                seq: SeqRange::new(3, 3),
                time: None,
            }),
            ..env
        };
        assert!(attack_envelope(A::ResendUnorderedSeq, &one.encode()).is_none());
    }

    /// Each broken `platform.pem` still holds the certificate unchanged and breaks DES-CERT-2:
    /// a private-key block (refused by the reference's PEM check) or a size over 1 MiB.
    #[test]
    fn every_pem_attack_keeps_the_certificate_and_breaks_des_cert_2() {
        use crate::ops::PemAttack as A;
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        for a in A::ALL {
            let bad = attack_pem(a, pem);
            assert!(bad.contains(pem), "{a:?}");
            match a {
                A::PrivateKeyBlock => {
                    assert!(bad.contains("-----BEGIN PRIVATE KEY-----"));
                    assert!(
                        gateway::security::keystore::only_pem_blocks(bad.as_bytes(), "CERTIFICATE")
                            .is_err()
                    );
                }
                A::OverOneMib => assert!(bad.len() > 1 << 20),
            }
        }
    }

    /// Each broken reply is refused by the reference decoder as MALFORMED, and only for the
    /// attack: the same reply without it decodes.
    #[test]
    fn every_reply_attack_makes_a_malformed_reply() {
        use crate::ops::ReplyAttack as A;
        use gateway::protocol::ids::{GatewayId, MessageId, SeqRange};
        use gateway::protocol::message::{Body, DataAck, Envelope, Outcome, ResultCode};
        let ack = Envelope {
            version: 1,
            message_id: MessageId::new("p1.9").unwrap(),
            gateway_id: GatewayId::new("GW0001").unwrap(),
            timestamp: chrono::Utc::now().into(),
            in_reply_to: Some(MessageId::new("GW0001.1.4").unwrap()),
            result: Some(Outcome::new(ResultCode::Ok, "stored")),
            body: Body::DataAck(DataAck {
                range: SeqRange::new(1, 5).unwrap(),
            }),
        };
        let bytes = ack.encode();
        assert!(Envelope::decode(&bytes).is_ok());
        for a in A::ALL {
            let bad = attack_reply(a, &bytes).unwrap();
            if a == A::OtherRange {
                // It decodes: only the comparison with the data message refuses it.
                let e = Envelope::decode(&bad).unwrap();
                assert!(
                    matches!(&e.body, Body::DataAck(d) if d.range == SeqRange::new(1, 6).unwrap())
                );
                continue;
            }
            let e = Envelope::decode(&bad).unwrap_err();
            assert_eq!(e.result_code(), ResultCode::Malformed, "{a:?}: {e}");
        }
        assert!(attack_reply(A::UnknownCode, br#"{"body":{}}"#).is_none());
    }

    #[test]
    fn every_forged_jws_is_well_made_at_its_own_level() {
        use crate::ops::JoseAttack as A;
        use gateway::security::jose::b64url_decode;
        use openssl::hash::MessageDigest;
        use openssl::sign::{Signer, Verifier};
        let key =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let pem = b"-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n";
        let payload = br#"{"type":"periodic.start"}"#;
        for a in A::ALL {
            let jws = attack_jws(a, &key, pem, "kid0", payload).unwrap();
            let parts: Vec<&str> = jws.split('.').collect();
            assert_eq!(parts.len(), 3, "{a:?}");
            let input = format!("{}.{}", parts[0], parts[1]);
            let header: serde_json::Value =
                serde_json::from_slice(&b64url_decode(parts[0]).unwrap()).unwrap_or_default();
            let sig = b64url_decode(parts[2]).unwrap();
            assert_eq!(b64url_decode(parts[1]).unwrap(), payload, "{a:?}");
            let verifies = |k: &openssl::pkey::PKeyRef<openssl::pkey::Public>, md| {
                let mut v = Verifier::new(md, k).unwrap();
                v.update(input.as_bytes()).unwrap();
                v.verify(&sig).unwrap()
            };
            let public =
                openssl::pkey::PKey::public_key_from_der(&key.public_key_to_der().unwrap())
                    .unwrap();
            match a {
                A::AlgNone => assert!(sig.is_empty()),
                A::HmacKeyConfusion => {
                    let mk = openssl::pkey::PKey::hmac(pem).unwrap();
                    let mut s = Signer::new(MessageDigest::sha256(), &mk).unwrap();
                    s.update(input.as_bytes()).unwrap();
                    assert_eq!(s.sign_to_vec().unwrap(), sig);
                }
                A::UnsupportedAlg => assert!(verifies(&public, MessageDigest::sha512())),
                A::HeaderCrit | A::HeaderJku | A::DuplicateAlg | A::WrongTyp => {
                    assert!(verifies(&public, MessageDigest::sha256()), "{a:?}");
                }
                A::EmbeddedJwk => {
                    let n = b64url_decode(header["jwk"]["n"].as_str().unwrap()).unwrap();
                    let e = b64url_decode(header["jwk"]["e"].as_str().unwrap()).unwrap();
                    let rsa = openssl::rsa::Rsa::from_public_components(
                        openssl::bn::BigNum::from_slice(&n).unwrap(),
                        openssl::bn::BigNum::from_slice(&e).unwrap(),
                    )
                    .unwrap();
                    let k = openssl::pkey::PKey::from_rsa(rsa).unwrap();
                    assert!(verifies(&k, MessageDigest::sha256()));
                    assert!(!verifies(&public, MessageDigest::sha256()));
                }
                A::UnknownSigner => assert!(!verifies(&public, MessageDigest::sha256())),
            }
        }
    }

    #[test]
    fn the_cli_spelling_sets_each_fault_and_refuses_unknown_items() {
        let f = parse_fault_spec("drop=20,dup=10,delay=150,reorder,withhold-acks,late-acks,tamper=2,unsigned,expired-cert,revoked-cert=3,stale-crl").unwrap();
        assert_eq!(f.drop_percent, 20);
        assert_eq!(f.duplicate_percent, 10);
        assert_eq!(f.delay_ms, 150);
        assert!(f.reorder && f.withhold_acks && f.late_acks && f.stale_crl);
        assert_eq!(
            (
                f.tamper_commands,
                f.unsigned_commands,
                f.expired_cert_commands,
                f.revoked_cert_commands
            ),
            (2, 1, 1, 3)
        );
        assert_eq!(
            parse_fault_spec("drop=20,none").unwrap(),
            FaultConfig::default()
        );
        assert!(matches!(
            parse_fault_spec("explode"),
            Err(FaultSpecError::Unknown(_))
        ));
        assert!(matches!(
            parse_fault_spec("drop=101"),
            Err(FaultSpecError::Value(_))
        ));
        assert!(matches!(
            parse_fault_spec("delay=x"),
            Err(FaultSpecError::Value(_))
        ));
        for a in crate::ops::EnvelopeAttack::ALL {
            let f = parse_fault_spec(&format!("envelope={}", a.name())).unwrap();
            assert_eq!(f.envelope_attack, Some(a));
        }
        for a in crate::ops::PemAttack::ALL {
            let f = parse_fault_spec(&format!("platform-pem={}", a.name())).unwrap();
            assert_eq!(f.platform_pem_attack, Some(a));
        }
        for a in crate::ops::ReplyAttack::ALL {
            let f = parse_fault_spec(&format!("reply={}", a.name())).unwrap();
            assert_eq!(f.reply_attack, Some(a));
        }
        assert_eq!(
            parse_fault_spec("busy-connects=4").unwrap().busy_connects,
            4
        );
        assert_eq!(parse_fault_spec("busy-connects").unwrap().busy_connects, 1);
        assert_eq!(
            parse_fault_spec("unauthorized-connects=2")
                .unwrap()
                .unauthorized_connects,
            2
        );
        assert_eq!(parse_fault_spec("lose-data=3").unwrap().lose_data, 3);
        assert_eq!(parse_fault_spec("lose-data").unwrap().lose_data, 1);
        assert_eq!(parse_fault_spec("busy-acks=2").unwrap().busy_acks, 2);
        assert_eq!(parse_fault_spec("busy-acks").unwrap().busy_acks, 1);
        assert_eq!(
            parse_fault_spec("ack-code=TOO_LARGE").unwrap().ack_code,
            Some(gateway::protocol::message::ResultCode::TooLarge)
        );
        // Over the operator API too: an OK for records not stored would lose them.
        use gateway::protocol::message::ResultCode;
        for (code, ok) in [(ResultCode::Ok, false), (ResultCode::Internal, true)] {
            let f = FaultConfig {
                ack_code: Some(code),
                ..FaultConfig::default()
            };
            assert_eq!(f.validate().is_ok(), ok, "{code:?}");
        }
        // The data messages the platform would store are answered BUSY while busy-acks lasts,
        // then once with ack-code, then stored.
        let mut f = parse_fault_spec("ack-code=INTERNAL,busy-acks=2").unwrap();
        let answered: Vec<_> = std::iter::from_fn(|| f.take_ack_fault()).collect();
        assert_eq!(
            answered,
            [ResultCode::Busy, ResultCode::Busy, ResultCode::Internal]
        );
        assert_eq!(f, FaultConfig::default(), "nothing left");
        for bad in [
            "ack-code",
            "ack-code=OK",
            "ack-code=too_large",
            "ack-code=NOPE",
        ] {
            assert!(
                matches!(parse_fault_spec(bad), Err(FaultSpecError::Value(_))),
                "{bad}"
            );
        }
        assert!(
            parse_fault_spec("https-unreachable")
                .unwrap()
                .https_unreachable
        );
        assert!(matches!(
            parse_fault_spec("envelope=nonsense"),
            Err(FaultSpecError::Value(_))
        ));
    }

    #[test]
    fn tampering_changes_exactly_the_ciphertext_part() {
        let ct = gateway::security::jose::b64url_encode(&[0u8; 32]);
        let t = format!("aGVhZA.a2V5.aXY.{ct}.dGFn");
        let x = tamper_token(&t);
        assert_ne!(x, t);
        let (a, b): (Vec<&str>, Vec<&str>) = (t.split('.').collect(), x.split('.').collect());
        assert_eq!(a.len(), b.len());
        for i in [0, 1, 2, 4] {
            assert_eq!(a[i], b[i]);
        }
        assert_ne!(a[3], b[3]);
    }
}
