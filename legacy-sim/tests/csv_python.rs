//! Generated CSV checked by an independent parser: Python's `csv` module, after decoding with
//! Python's own codecs (`utf-8`, `utf-8-sig`, `cp932`) (SC-FTP-1). Also: same seed → same bytes
//! through the CLI, and a small property test over seeds, row counts, datasets and encodings.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use legacy_sim::{CsvOptions, Dataset, HeaderStyle, LineEnding, Table, TextEncoding};
use proptest::prelude::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// Parses `bytes` with Python (decode with `codec`, then `csv.reader`) and returns the records.
fn python_parse(bytes: &[u8], codec: &str) -> Vec<Vec<String>> {
    let script = r#"
import csv, io, json, sys
data = sys.stdin.buffer.read()
text = data.decode(sys.argv[1])  # strict: any undecodable byte fails
rows = list(csv.reader(io.StringIO(text, newline=''), strict=True))
json.dump(rows, sys.stdout, ensure_ascii=False)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, codec])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn codec(opts: &CsvOptions) -> &'static str {
    match (opts.encoding, opts.bom) {
        (TextEncoding::Utf8, true) => "utf-8-sig",
        (TextEncoding::Utf8, false) => "utf-8",
        (TextEncoding::Cp932, _) => "cp932",
    }
}

#[test]
fn python_csv_reads_back_every_field_of_every_dataset_in_every_encoding() {
    let variants = [
        CsvOptions::default(),
        CsvOptions {
            bom: true,
            ..CsvOptions::default()
        },
        CsvOptions {
            encoding: TextEncoding::Cp932,
            ..CsvOptions::default()
        },
        CsvOptions {
            line_ending: LineEnding::Lf,
            header: HeaderStyle::Ascii,
            ..CsvOptions::default()
        },
    ];
    for d in Dataset::ALL {
        let table = Table::generate(d, 250, 7);
        for opts in &variants {
            let bytes = table.to_csv(opts).unwrap();
            assert_eq!(bytes.starts_with(b"\xEF\xBB\xBF"), opts.bom);
            let parsed = python_parse(&bytes, codec(opts));
            assert_eq!(parsed.len(), 251, "{d} {opts:?}");
            assert_eq!(parsed[0], table.header(opts.header).unwrap());
            assert_eq!(&parsed[1..], table.rows.as_slice(), "{d} {opts:?}");
        }
    }
}

#[test]
fn billing_rows_exercise_commas_quotes_and_line_breaks_inside_fields() {
    let t = Table::generate(Dataset::Billing, 250, 7);
    let fields = || t.rows.iter().flat_map(|r| r[1..3].iter());
    assert!(fields().any(|f| f.contains(',')));
    assert!(fields().any(|f| f.contains('"')));
    assert!(fields().any(|f| f.contains('\n')));
    // Every record has the dataset's column count.
    assert!(
        t.rows
            .iter()
            .all(|r| r.len() == Dataset::Billing.columns().len())
    );
}

#[test]
fn cp932_bytes_are_not_utf8_and_python_cp932_agrees_with_encoding_rs() {
    let opts = CsvOptions {
        encoding: TextEncoding::Cp932,
        ..CsvOptions::default()
    };
    let bytes = Table::generate(Dataset::PipeLedger, 30, 2)
        .to_csv(&opts)
        .unwrap();
    assert!(std::str::from_utf8(&bytes).is_err());
    let parsed = python_parse(&bytes, "cp932");
    assert_eq!(parsed[0][1], "管種");
}

#[test]
fn cli_generate_with_the_same_seed_writes_the_same_bytes_and_another_seed_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str, name: &str| {
        let out = dir.path().join(name);
        let st = Command::new(env!("CARGO_BIN_EXE_legacy-sim"))
            .args([
                "generate",
                "--dataset",
                "billing",
                "--rows",
                "100",
                "--seed",
                seed,
            ])
            .args(["--encoding", "cp932", "--out"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read(out).unwrap()
    };
    let a = run("7", "a.csv");
    let b = run("7", "b.csv");
    let c = run("8", "c.csv");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(python_parse(&a, "cp932").len(), 101);

    // --help explains every command.
    for cmd in ["generate", "push", "bad", "kinds", "describe"] {
        let out = Command::new(env!("CARGO_BIN_EXE_legacy-sim"))
            .args([cmd, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(out.stdout.len() > 100, "{cmd} --help");
    }
}

#[test]
fn cli_refuses_a_bom_with_cp932() {
    let out = Command::new(env!("CARGO_BIN_EXE_legacy-sim"))
        .args(["generate", "--encoding", "cp932", "--bom", "--rows", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("byte order mark"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn python_agrees_on_the_row_count_for_any_seed_and_size(
        seed in any::<u64>(),
        rows in 0usize..40,
        d in 0usize..3,
        enc in 0usize..3,
    ) {
        let dataset = Dataset::ALL[d];
        let opts = match enc {
            0 => CsvOptions::default(),
            1 => CsvOptions { bom: true, line_ending: LineEnding::Lf, ..CsvOptions::default() },
            _ => CsvOptions { encoding: TextEncoding::Cp932, ..CsvOptions::default() },
        };
        let bytes = Table::generate(dataset, rows, seed).to_csv(&opts).unwrap();
        let parsed = python_parse(&bytes, codec(&opts));
        prop_assert_eq!(parsed.len(), rows + 1);
        prop_assert!(parsed.iter().all(|r| r.len() == dataset.columns().len()));
    }
}
