//! Field masking (SEC-MASK-1, SEC-MASK-2, DES-MASK): round trips (property tests over arbitrary
//! strings incl. Japanese), determinism, key rotation, and refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gateway::security::{MaskingKeys, SecurityError};
use proptest::prelude::*;

fn keys() -> MaskingKeys {
    MaskingKeys::new("k1", &[1u8; 32]).unwrap()
}

#[test]
fn a_masked_field_has_the_design_form_and_unmasks() {
    let k = keys();
    let m = k.mask("customerName", "山田太郎").unwrap();
    assert!(m.starts_with("m1.k1."), "{m}");
    assert!(MaskingKeys::is_masked(&m));
    assert!(!m.contains("山田"));
    assert_eq!(k.unmask("customerName", &m).unwrap(), "山田太郎");
}

#[test]
fn equal_values_in_one_column_mask_equally_and_differ_across_columns() {
    let k = keys();
    assert_eq!(k.mask("a", "x").unwrap(), k.mask("a", "x").unwrap());
    assert_ne!(k.mask("a", "x").unwrap(), k.mask("b", "x").unwrap());
    assert_ne!(k.mask("a", "x").unwrap(), k.mask("a", "y").unwrap());
}

#[test]
fn unmasking_with_the_wrong_key_fails() {
    let m = keys().mask("c", "secret").unwrap();
    let other = MaskingKeys::new("k1", &[2u8; 32]).unwrap();
    assert!(matches!(
        other.unmask("c", &m),
        Err(SecurityError::MaskAuthFailed)
    ));
}

#[test]
fn unmasking_under_another_column_name_fails() {
    let m = keys().mask("c", "secret").unwrap();
    assert!(matches!(
        keys().unmask("d", &m),
        Err(SecurityError::MaskAuthFailed)
    ));
}

#[test]
fn a_tampered_masked_field_fails() {
    let m = keys().mask("c", "secret value").unwrap();
    let mut bytes = m.into_bytes();
    let i = bytes.len() - 5;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let t = String::from_utf8(bytes).unwrap();
    assert!(matches!(
        keys().unmask("c", &t),
        Err(SecurityError::MaskAuthFailed)
    ));
}

#[test]
fn malformed_masked_texts_are_refused() {
    let k = keys();
    for t in [
        "",
        "plain",
        "m1.",
        "m1.k1",
        "m1.k1.!!!",
        "m1.k1.AAAA",
        "m2.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "m1.bad-id.AAAA",
    ] {
        assert!(
            matches!(k.unmask("c", t), Err(SecurityError::MaskFormat)),
            "{t}"
        );
    }
}

#[test]
fn an_unknown_key_id_is_refused() {
    let m = MaskingKeys::new("k9", &[1u8; 32])
        .unwrap()
        .mask("c", "v")
        .unwrap();
    assert!(matches!(
        keys().unmask("c", &m),
        Err(SecurityError::MaskUnknownKey)
    ));
}

#[test]
fn invalid_key_ids_and_key_lengths_are_refused() {
    for id in ["", "k-1", "toolongkeyid12345", "鍵"] {
        assert!(
            matches!(
                MaskingKeys::new(id, &[0u8; 32]),
                Err(SecurityError::MaskInvalidKey)
            ),
            "{id}"
        );
    }
    assert!(matches!(
        MaskingKeys::new("k1", &[0u8; 16]),
        Err(SecurityError::MaskInvalidKey)
    ));
}

#[test]
fn after_rotation_new_values_use_the_new_key_and_old_values_still_unmask() {
    let mut k = keys();
    let old = k.mask("c", "v").unwrap();
    k.rotate("k2", &[3u8; 32]).unwrap();
    let new = k.mask("c", "v").unwrap();
    assert!(new.starts_with("m1.k2."));
    assert_eq!(k.unmask("c", &old).unwrap(), "v");
    assert_eq!(k.unmask("c", &new).unwrap(), "v");
    // A party holding only the old key cannot unmask new values.
    assert!(matches!(
        keys().unmask("c", &new),
        Err(SecurityError::MaskUnknownKey)
    ));
}

#[test]
fn masking_keys_load_from_a_bundle_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k1.key"), hex::encode([1u8; 32])).unwrap();
    std::fs::write(
        dir.path().join("k2.key"),
        format!("{}\n", hex::encode([3u8; 32])),
    )
    .unwrap();
    let k = MaskingKeys::load_dir(dir.path(), "k2").unwrap();
    assert_eq!(k.current_key_id(), "k2");
    let old = keys().mask("c", "v").unwrap();
    assert_eq!(k.unmask("c", &old).unwrap(), "v");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("SGW_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn unmask_of_mask_is_the_identity_for_any_string(
        column in "[a-zA-Z_]{1,12}|[\\p{Han}\\p{Hiragana}\\p{Katakana}]{1,6}",
        value in any::<String>(),
        jp in "[\\p{Han}\\p{Hiragana}\\p{Katakana}ー、。０-９]{0,40}",
    ) {
        let k = keys();
        for v in [&value, &jp] {
            let m = k.mask(&column, v).unwrap();
            prop_assert_eq!(&k.unmask(&column, &m).unwrap(), v);
        }
    }

    #[test]
    fn unmasking_only_works_with_the_right_key(
        value in any::<String>(),
        key in proptest::array::uniform32(any::<u8>()),
        other in proptest::array::uniform32(any::<u8>()),
    ) {
        prop_assume!(key != other);
        let a = MaskingKeys::new("k1", &key).unwrap();
        let b = MaskingKeys::new("k1", &other).unwrap();
        let m = a.mask("col", &value).unwrap();
        prop_assert!(matches!(b.unmask("col", &m), Err(SecurityError::MaskAuthFailed)));
        prop_assert_eq!(a.unmask("col", &m).unwrap(), value);
    }
}
