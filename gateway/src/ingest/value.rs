//! Field values against their column's type, and the canonical form that is stored
//! (DES-CSV-4). An empty field is allowed for every type and stays `""`.

use chrono::{DateTime, NaiveDate};

use crate::profile::ColumnType;
use crate::protocol::message::is_timestamp_shape;

use super::error::ValueFault;

/// Checks `text` against `ty` and rewrites it into its stored form (integers canonical:
/// leading zeros removed, `-0` → `0`; every other type as is).
pub(crate) fn check(ty: ColumnType, text: &mut String) -> Result<(), ValueFault> {
    if text.is_empty() {
        return Ok(());
    }
    let ok = match ty {
        ColumnType::String => is_character_data(text),
        ColumnType::Integer => {
            if !is_integer(text) {
                return Err(ValueFault::NotInteger);
            }
            canonical_integer(text);
            true
        }
        ColumnType::Decimal => is_decimal(text),
        ColumnType::Date => is_date(text),
        ColumnType::Datetime => is_datetime(text),
    };
    if ok { Ok(()) } else { Err(ValueFault::of(ty)) }
}

/// XML 1.0 character data without control characters other than TAB, CR, LF (C0, DEL and C1
/// are all refused) and without U+FFFE, U+FFFF. Rust strings hold no surrogates.
fn is_character_data(s: &str) -> bool {
    s.chars().all(|c| {
        let allowed_control = matches!(c, '\t' | '\r' | '\n');
        (allowed_control || !c.is_control()) && !matches!(c, '\u{FFFE}' | '\u{FFFF}')
    })
}

/// `-?[0-9]+`
fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Leading zeros removed, `-0` → `0`. `s` matches `-?[0-9]+`.
fn canonical_integer(s: &mut String) {
    let negative = s.starts_with('-');
    let digits = s.trim_start_matches('-').trim_start_matches('0');
    let canonical = match (digits.is_empty(), negative) {
        (true, _) => "0".to_owned(),
        (false, true) => format!("-{digits}"),
        (false, false) => digits.to_owned(),
    };
    *s = canonical;
}

/// `-?[0-9]+(\.[0-9]+)?`
fn is_decimal(s: &str) -> bool {
    match s.split_once('.') {
        None => is_integer(s),
        Some((int, frac)) => {
            is_integer(int) && !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

/// `YYYY-MM-DD`, calendar-valid.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    if !shape {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<u32>().ok());
    match (num(0..4), num(5..7), num(8..10)) {
        (Some(y), Some(m), Some(d)) => i32::try_from(y)
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, m, d))
            .is_some(),
        _ => false,
    }
}

/// A DES-ENV-2 timestamp: the one shape, then calendar validity.
fn is_datetime(s: &str) -> bool {
    is_timestamp_shape(s) && DateTime::parse_from_rfc3339(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(ty: ColumnType, text: &str) -> Result<String, ValueFault> {
        let mut s = text.to_owned();
        check(ty, &mut s).map(|()| s)
    }

    #[test]
    fn an_empty_field_is_allowed_for_every_type_and_stays_empty() {
        for ty in [
            ColumnType::String,
            ColumnType::Integer,
            ColumnType::Decimal,
            ColumnType::Date,
            ColumnType::Datetime,
        ] {
            assert_eq!(stored(ty, ""), Ok(String::new()), "{ty:?}");
        }
    }

    #[test]
    fn integers_are_stored_without_leading_zeros_and_minus_zero_is_zero() {
        for (text, want) in [
            ("0", "0"),
            ("000", "0"),
            ("-0", "0"),
            ("-000", "0"),
            ("007", "7"),
            ("-007", "-7"),
            ("1200", "1200"),
            ("-15", "-15"),
            ("18446744073709551616000", "18446744073709551616000"),
        ] {
            assert_eq!(
                stored(ColumnType::Integer, text).as_deref(),
                Ok(want),
                "{text}"
            );
        }
        for bad in [
            "+1", "1.0", "1e3", " 1", "1 ", "-", "--1", "１", "0x10", "1,000",
        ] {
            assert_eq!(
                stored(ColumnType::Integer, bad),
                Err(ValueFault::NotInteger),
                "{bad}"
            );
        }
    }

    #[test]
    fn decimals_keep_their_digits_and_need_digits_on_both_sides_of_the_point() {
        for ok in ["18.0", "0.50", "-3.25", "42", "-0", "007.10"] {
            assert_eq!(stored(ColumnType::Decimal, ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            ".5", "5.", "1.2.3", "+1.0", "1,5", "1e2", "-.5", " 1.0", ".",
        ] {
            assert_eq!(
                stored(ColumnType::Decimal, bad),
                Err(ValueFault::NotDecimal),
                "{bad}"
            );
        }
    }

    #[test]
    fn dates_are_calendar_valid_yyyy_mm_dd() {
        for ok in ["2026-10-01", "2024-02-29", "0000-01-01", "9999-12-31"] {
            assert_eq!(stored(ColumnType::Date, ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "2026-1-01",
            "2026/10/01",
            "20261001",
            "2026-10-01T00:00:00+09:00",
            "２０２６-10-01",
            "+026-10-01",
        ] {
            assert_eq!(
                stored(ColumnType::Date, bad),
                Err(ValueFault::NotDate),
                "{bad}"
            );
        }
    }

    #[test]
    fn datetimes_are_des_env_2_timestamps() {
        for ok in [
            "2026-10-01T09:00:00+09:00",
            "2026-10-01T00:00:00Z",
            "2026-10-01T09:00:00.123456789-03:30",
            "2016-12-31T23:59:60Z",
        ] {
            assert_eq!(stored(ColumnType::Datetime, ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "2026-10-01T09:00:00",
            "2026-10-01 09:00:00+09:00",
            "2026-10-01t09:00:00z",
            "2026-02-30T09:00:00+09:00",
            "2026-10-01T09:00:00.+09:00",
            "2026-10-01T09:00:00.1234567890+09:00",
            "2026-10-01T24:00:00+09:00",
            "2026-10-01",
        ] {
            assert_eq!(
                stored(ColumnType::Datetime, bad),
                Err(ValueFault::NotDatetime),
                "{bad}"
            );
        }
    }

    #[test]
    fn text_may_hold_tab_cr_lf_and_any_character_but_controls_and_the_two_noncharacters() {
        for ok in [
            "株式会社①㈱髙﨑",
            "a\tb\r\nc",
            "\u{FFFD}",
            "\u{10FFFF}",
            "\u{E000}",
        ] {
            assert_eq!(stored(ColumnType::String, ok).as_deref(), Ok(ok), "{ok:?}");
        }
        for bad in [
            "\u{0}",
            "a\u{1}b",
            "\u{1b}[0m",
            "\u{7f}",
            "\u{80}",
            "\u{9f}",
            "\u{FFFE}",
            "\u{FFFF}",
        ] {
            assert_eq!(
                stored(ColumnType::String, bad),
                Err(ValueFault::NotCharacterData),
                "{bad:?}"
            );
        }
    }
}
