//! Criterion benchmarks of the SGW (data security per operation and size) and the end-to-end
//! throughput run; results live in `docs/PERFORMANCE.md`.
//!
//! This library holds the benchmark payloads, so that the Criterion benches and the peer
//! scripts under `scripts/perf/` (which read files written by the `sgw-bench-payloads`
//! binary) work on the very same bytes: billing records of the simulated legacy system
//! (Japanese names and addresses, RFC 4180 quoting, CRLF) laid out as a CSV file, a JSON data
//! profile, an XML data profile (DESIGN.md DES-PROF) and a `data` envelope (DES-ENV-1).
#![forbid(unsafe_code)]

use legacy_sim::{CsvOptions, Dataset, Table};
use serde_json::{Value, json};

/// The benchmark sizes: 1 KiB, 64 KiB, 1 MiB, with their labels.
pub const SIZES: [(usize, &str); 3] = [(1 << 10, "1KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];

/// Seed of every generated table (deterministic payloads across runs).
pub const SEED: u64 = 20_261_122;

/// Billing rows (one `Vec<String>` of 7 fields per record) of the simulated legacy system,
/// enough that their CSV text is at least `bytes` long.
#[must_use]
pub fn billing_rows(bytes: usize) -> Vec<Vec<String>> {
    // A billing row is 70-130 bytes of CSV; over-generate and cut.
    let t = Table::generate(Dataset::Billing, bytes / 60 + 8, SEED);
    let mut total = 0;
    let mut out = Vec::new();
    for r in t.rows {
        if total >= bytes {
            break;
        }
        total += r.iter().map(|f| f.len() + 1).sum::<usize>();
        out.push(r);
    }
    out
}

/// A billing CSV file (UTF-8, Japanese header, CRLF) of exactly `bytes` bytes (the last record
/// is cut; file operations treat the content as opaque bytes).
#[must_use]
pub fn billing_csv(bytes: usize) -> Vec<u8> {
    let mut rows = (bytes / 60 + 8).max(8);
    loop {
        let t = Table::generate(Dataset::Billing, rows, SEED);
        // Invariant: UTF-8 output of generated rows never fails.
        #[allow(clippy::expect_used)]
        let mut csv = t.to_csv(&CsvOptions::default()).expect("UTF-8 CSV");
        if csv.len() >= bytes {
            csv.truncate(bytes);
            return csv;
        }
        rows *= 2;
    }
}

/// The personal fields (name, address) of billing records, about `bytes` bytes of UTF-8 in
/// total: what the gateway masks before anything leaves it (SEC-MASK-1).
#[must_use]
pub fn personal_fields(bytes: usize) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut total = 0;
    let mut rows = bytes / 40 + 8;
    loop {
        for r in Table::generate(Dataset::Billing, rows, SEED).rows {
            for (col, v) in [("name", &r[1]), ("address", &r[2])] {
                if total >= bytes {
                    return out;
                }
                total += v.len();
                out.push((col, v.clone()));
            }
        }
        out.clear();
        total = 0;
        rows *= 2;
    }
}

fn json_header(records: usize) -> Value {
    let columns: Vec<Value> = Dataset::Billing
        .columns()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
        .collect();
    json!({
        "profileId": "sgw-profile-v1",
        "gatewayId": "GW0001",
        "sourceSystem": "billing",
        "dataset": "billing",
        "columns": columns,
        "range": {"first": 1, "last": records},
        "createdAt": "2026-11-22T13:45:00+09:00",
    })
}

/// A JSON data profile (DES-PROF) of billing records, at least `bytes` long (whole records).
/// Names and addresses are left in clear (Japanese text, the worst case for escaping); in
/// production they would already be masked.
#[must_use]
pub fn json_profile(bytes: usize) -> Vec<u8> {
    let all = billing_rows(bytes);
    let overhead = serde_json::to_vec(&json!({"header": json_header(all.len()), "records": []}))
        .map_or(0, |v| v.len());
    let mut total = overhead;
    let mut rows = Vec::new();
    for r in all {
        if total >= bytes {
            break;
        }
        total += serde_json::to_vec(&r).map_or(0, |v| v.len()) + 1;
        rows.push(r);
    }
    let v = json!({"header": json_header(rows.len()), "records": rows});
    serde_json::to_vec(&v).unwrap_or_default()
}

fn xml_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// An XML data profile in the DESIGN.md DES-PROF layout (`sgw:Header Id="header"`,
/// `sgw:Body Id="body"`) of billing records, about `bytes` long (whole records).
#[must_use]
pub fn xml_profile(bytes: usize) -> String {
    let cols = Dataset::Billing.columns();
    const HEAD: usize = 420;
    let mut body = String::with_capacity(bytes + 4096);
    let mut records = 0;
    for (i, r) in billing_rows(bytes).iter().enumerate() {
        if body.len() + HEAD >= bytes {
            break;
        }
        records += 1;
        body.push_str(&format!("<sgw:R seq=\"{}\">", i + 1));
        for (c, v) in cols.iter().zip(r) {
            body.push_str("<sgw:F n=\"");
            body.push_str(c.name);
            body.push_str("\">");
            xml_escape(v, &mut body);
            body.push_str("</sgw:F>");
        }
        body.push_str("</sgw:R>\n");
    }
    format!(
        "<sgw:DataProfile xmlns:sgw=\"urn:sgw:profile:v1\">\n<sgw:Header Id=\"header\"><sgw:ProfileId>sgw-profile-v1</sgw:ProfileId><sgw:GatewayId>GW0001</sgw:GatewayId><sgw:SourceSystem>billing</sgw:SourceSystem><sgw:Dataset>billing</sgw:Dataset><sgw:Range first=\"1\" last=\"{}\"/><sgw:CreatedAt>2026-11-22T13:45:00+09:00</sgw:CreatedAt></sgw:Header>\n<sgw:Body Id=\"body\">\n{body}</sgw:Body>\n</sgw:DataProfile>",
        records
    )
}

/// A `data` envelope (DES-ENV-1, DES-MSG-DATA-1) of exactly `bytes` bytes (at least ~300):
/// its `profile` stands for a protected JSON profile, i.e. base64url text (here of billing
/// CSV bytes; the envelope is opaque to sealing, only its size and alphabet matter).
#[must_use]
pub fn data_envelope(bytes: usize) -> Vec<u8> {
    use base64::Engine as _;
    let build = |profile: &str| {
        let v = json!({
            "version": 1,
            "messageId": "0190f3a2-7c4e-7d2a-9b1e-3f6a2c1d4e5f",
            "gatewayId": "GW0001",
            "type": "data",
            "timestamp": "2026-11-22T13:45:00+09:00",
            "body": {
                "kind": "periodic",
                "dataset": "billing",
                "range": {"first": 1, "last": 5200},
                "format": "json",
                "profile": profile,
            }
        });
        serde_json::to_vec(&v).unwrap_or_default()
    };
    let overhead = build("").len();
    let mut filler = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(billing_csv(bytes.saturating_sub(overhead) * 3 / 4 + 3));
    filler.truncate(bytes.saturating_sub(overhead));
    build(&filler)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_about_the_requested_sizes() {
        for (n, _) in SIZES {
            assert_eq!(billing_csv(n).len(), n);
            let j = json_profile(n).len();
            assert!(j > n * 8 / 10 && j < n * 13 / 10, "json {j} for {n}");
            let x = xml_profile(n).len();
            assert!(x > n * 8 / 10 && x < n * 13 / 10, "xml {x} for {n}");
            assert_eq!(data_envelope(n).len(), n);
            let f: usize = personal_fields(n).iter().map(|(_, v)| v.len()).sum();
            assert!(f >= n && f < n + 200, "fields {f} for {n}");
        }
    }

    #[test]
    fn payloads_hold_japanese_text_and_parse() {
        let x = xml_profile(4096);
        assert!(x.contains("<sgw:F n=\"address\">") && !x.is_ascii());
        gateway::security::xml::tree::parse(&x).unwrap();
        let j: Value = serde_json::from_slice(&json_profile(4096)).unwrap();
        assert!(j["records"].as_array().unwrap().len() > 10);
        assert!(!String::from_utf8_lossy(&billing_csv(4096)).is_ascii());
    }
}
