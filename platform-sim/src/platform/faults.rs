//! Fault injection helpers (conformance; SM-RESEND, IF-PSTART-2, SEC-CERT-2): the CLI spelling
//! of a [`FaultConfig`] and the byte-level tampering of a sealed message.
//!
//! CLI spelling (`platform-sim run --fault …`, `platform-sim fault …`): comma-separated items
//! `drop=PCT`, `dup=PCT`, `delay=MS`, `reorder`, `withhold-acks`, `tamper[=N]`,
//! `unsigned[=N]`, `expired-cert[=N]`, `revoked-cert[=N]`, `stale-crl`, or `none` (all off).
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
            "tamper" => f.tamper_commands = num(item, v, 1)?,
            "unsigned" => f.unsigned_commands = num(item, v, 1)?,
            "expired-cert" => f.expired_cert_commands = num(item, v, 1)?,
            "revoked-cert" => f.revoked_cert_commands = num(item, v, 1)?,
            "stale-crl" => f.stale_crl = true,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_spelling_sets_each_fault_and_refuses_unknown_items() {
        let f = parse_fault_spec("drop=20,dup=10,delay=150,reorder,withhold-acks,tamper=2,unsigned,expired-cert,revoked-cert=3,stale-crl").unwrap();
        assert_eq!(f.drop_percent, 20);
        assert_eq!(f.duplicate_percent, 10);
        assert_eq!(f.delay_ms, 150);
        assert!(f.reorder && f.withhold_acks && f.stale_crl);
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
