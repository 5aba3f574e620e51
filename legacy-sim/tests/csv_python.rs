//! Generated CSV checked by an independent parser: Python's `csv` module, after decoding with
//! Python's own codecs (`utf-8`, `utf-8-sig`, `cp932`) (SC-FTP-1). Also: same seed → same bytes
//! through the CLI, and a small property test over seeds, row counts, datasets and encodings.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use legacy_sim::{CsvOptions, Dataset, HeaderStyle, LineEnding, Table, TextEncoding};
use proptest::prelude::*;
use std::process::{Command, Stdio};

/// Parses each file with Python (decode with its codec, strictly, then `csv.reader`) in one
/// interpreter run, and returns the records of each.
fn python_parse_many(files: &[(Vec<u8>, &str)]) -> Vec<Vec<Vec<String>>> {
    let script = r#"
import csv, io, json, sys
out = []
for path, codec in zip(sys.argv[1::2], sys.argv[2::2]):
    text = open(path, 'rb').read().decode(codec)  # strict: any undecodable byte fails
    out.append(list(csv.reader(io.StringIO(text, newline=''), strict=True)))
json.dump(out, sys.stdout, ensure_ascii=False)
"#;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]);
    for (i, (bytes, codec)) in files.iter().enumerate() {
        let path = dir.path().join(format!("{i}.csv"));
        std::fs::write(&path, bytes).unwrap();
        cmd.arg(path).arg(codec);
    }
    let out = cmd.stderr(Stdio::piped()).output().expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn python_parse(bytes: &[u8], codec: &str) -> Vec<Vec<String>> {
    python_parse_many(&[(bytes.to_vec(), codec)]).remove(0)
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
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for d in Dataset::ALL {
        let table = Table::generate(d, 250, 7);
        for opts in &variants {
            let bytes = table.to_csv(opts).unwrap();
            assert_eq!(bytes.starts_with(b"\xEF\xBB\xBF"), opts.bom);
            files.push((bytes, codec(opts)));
            expected.push((table.clone(), *opts));
        }
    }
    let parsed = python_parse_many(&files);
    for (parsed, (table, opts)) in parsed.iter().zip(&expected) {
        let d = table.dataset;
        assert_eq!(parsed.len(), 251, "{d} {opts:?}");
        assert_eq!(parsed[0], table.header(opts.header).unwrap());
        assert_eq!(&parsed[1..], table.rows.as_slice(), "{d} {opts:?}");
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

fn case_options(enc: usize) -> CsvOptions {
    match enc {
        0 => CsvOptions::default(),
        1 => CsvOptions {
            bom: true,
            line_ending: LineEnding::Lf,
            ..CsvOptions::default()
        },
        _ => CsvOptions {
            encoding: TextEncoding::Cp932,
            ..CsvOptions::default()
        },
    }
}

proptest! {
    // Each case is a batch of 12 files parsed by one Python run (interpreter start-up dominates).
    #![proptest_config(ProptestConfig { cases: 3, .. ProptestConfig::default() })]

    #[test]
    fn python_agrees_on_the_row_count_for_any_seed_and_size(
        batch in proptest::collection::vec((any::<u64>(), 0usize..40, 0usize..3, 0usize..3), 12),
    ) {
        let files: Vec<_> = batch
            .iter()
            .map(|&(seed, rows, d, enc)| {
                let opts = case_options(enc);
                let bytes = Table::generate(Dataset::ALL[d], rows, seed).to_csv(&opts).unwrap();
                (bytes, codec(&opts))
            })
            .collect();
        let parsed = python_parse_many(&files);
        for (&(_, rows, d, _), p) in batch.iter().zip(&parsed) {
            prop_assert_eq!(p.len(), rows + 1);
            prop_assert!(p.iter().all(|r| r.len() == Dataset::ALL[d].columns().len()));
        }
    }
}
