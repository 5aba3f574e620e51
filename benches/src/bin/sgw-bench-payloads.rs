//! Writes the benchmark payloads to a directory for the peer scripts under `scripts/perf/`:
//! `envelope_1KiB.json`, `json_profile_1MiB.json`, `xml_profile_1MiB.xml`,
//! `billing_1MiB.csv`.
#![forbid(unsafe_code)]

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/perf".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let mib = 1 << 20;
    std::fs::write(dir.join("envelope_1KiB.json"), benches::data_envelope(1024))?;
    std::fs::write(
        dir.join("json_profile_1MiB.json"),
        benches::json_profile(mib),
    )?;
    std::fs::write(dir.join("xml_profile_1MiB.xml"), benches::xml_profile(mib))?;
    std::fs::write(dir.join("billing_1MiB.csv"), benches::billing_csv(mib))?;
    println!("{}", dir.display());
    Ok(())
}
