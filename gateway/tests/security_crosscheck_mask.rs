//! Cross-check of field masking (SEC-MASK-1/2, DES-MASK) against a Python re-implementation
//! written from the module doc (scripts/crosscheck/mask.py, Python `cryptography`): Python
//! unmasks ours, we unmask Python's, the deterministic outputs are equal byte for byte, and
//! both refuse the wrong key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use gateway::security::MaskingKeys;
use security_common::python;
use serde_json::{Value, json};

fn values() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        "a",
        "山田太郎",
        "東京都千代田区丸の内１－１",
        "0123-45-6789",
        "emoji 🚰 水",
        "comma,quote\"",
        "\u{0}\u{1f}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 0..40u32 {
        v.push(format!(
            "{}-{}",
            "水道メーター".repeat((i % 5) as usize),
            i * 7919
        ));
    }
    v
}

#[test]
fn python_and_rust_masking_agree_both_ways() {
    let key = [0x5au8; 32];
    let keys = MaskingKeys::new("k2026", &key).unwrap();
    let kh = hex::encode(key);
    let ours: Vec<String> = values()
        .iter()
        .map(|v| keys.mask("customerName", v).unwrap())
        .collect();
    let mut ops: Vec<Value> = values()
        .iter()
        .map(|v| json!({"op":"mask","keyId":"k2026","keyHex":kh,"column":"customerName","value":v}))
        .collect();
    for m in &ours {
        ops.push(json!({"op":"unmask","keys":{"k2026":kh},"column":"customerName","masked":m}));
    }
    // Negative controls: wrong key, wrong column.
    ops.push(json!({"op":"unmask","keys":{"k2026":hex::encode([1u8;32])},"column":"customerName","masked":ours[2]}));
    ops.push(json!({"op":"unmask","keys":{"k2026":kh},"column":"address","masked":ours[2]}));
    let (ok, out, err) = python(
        "mask.py",
        &[],
        Some(serde_json::to_vec(&ops).unwrap().as_slice()),
    );
    assert!(ok, "{err}");
    let res: Vec<Value> = serde_json::from_slice(&out).unwrap();
    let n = values().len();
    for (i, v) in values().iter().enumerate() {
        let theirs = res[i]["ok"].as_str().unwrap();
        assert_eq!(theirs, ours[i], "same deterministic masked text for {v:?}");
        assert_eq!(keys.unmask("customerName", theirs).unwrap(), *v);
        assert_eq!(res[n + i]["ok"].as_str().unwrap(), v, "python unmasks ours");
    }
    assert!(
        res[2 * n]["err"].is_string(),
        "python refuses the wrong key"
    );
    assert!(
        res[2 * n + 1]["err"].is_string(),
        "python refuses the wrong column"
    );
}
