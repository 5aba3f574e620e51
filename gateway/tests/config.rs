//! `gateway.toml` as one type (DES-PROV-1, DES-PROV-2, SEC-CERT-3, SEC-MASK-2, DES-FTP-3):
//! the documented example deserialises and validates, every class of problem is reported with
//! its key and a fix — several at once — and the `sgw` commands `check-config`,
//! `hash-password` and `masking-key new` do what their help says.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod security_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gateway::config::{Config, Encoding, PasswordHash, Problem, check_bundle, new_masking_key};
use gateway::profile::ColumnType;
use security_common::{fresh_crl, pki};

fn example_text() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join("docs/examples/gateway.toml")).unwrap()
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A bundle directory with `text` as gateway.toml and every file the example names: the test
/// PKI's gateway (CN GW0001) as client and data-protection certificate, the platform's, the
/// root and a fresh CRL, an FTPS certificate, and the masking key `k2026a`.
fn bundle_with(text: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = pki();
    let dir = d.path();
    write(&dir.join("gateway.toml"), text.as_bytes(), 0o644);
    let gw_cert = p.gateway.cert.to_pem().unwrap();
    let gw_key = p.gateway.key.private_key_to_pem_pkcs8().unwrap();
    write(&dir.join("tls/ca.pem"), &p.root.to_pem().unwrap(), 0o644);
    write(&dir.join("tls/client.pem"), &gw_cert, 0o644);
    write(&dir.join("tls/client.key"), &gw_key, 0o600);
    write(&dir.join("data-protection/gateway.pem"), &gw_cert, 0o644);
    write(&dir.join("data-protection/gateway.key"), &gw_key, 0o600);
    write(
        &dir.join("data-protection/platform.pem"),
        &p.platform.cert.to_pem().unwrap(),
        0o644,
    );
    write(
        &dir.join("data-protection/root.pem"),
        &p.root.to_pem().unwrap(),
        0o644,
    );
    write(
        &dir.join("data-protection/crl.pem"),
        &fresh_crl(p).to_pem().unwrap(),
        0o644,
    );
    write(
        &dir.join("ftp/server.pem"),
        &p.app.cert.to_pem().unwrap(),
        0o644,
    );
    write(
        &dir.join("ftp/server.key"),
        &p.app.key.private_key_to_pem_pkcs8().unwrap(),
        0o600,
    );
    write(
        &dir.join("masking/k2026a.key"),
        format!("{}\n", "ab".repeat(32)).as_bytes(),
        0o600,
    );
    d
}

fn example_bundle() -> tempfile::TempDir {
    bundle_with(&example_text())
}

/// The example with `from` replaced by `to` (exactly once).
fn example_with(from: &str, to: &str) -> String {
    let t = example_text();
    assert_eq!(t.matches(from).count(), 1, "{from}");
    t.replacen(from, to, 1)
}

fn keys(ps: &[Problem]) -> Vec<&str> {
    ps.iter().map(|p| p.key.as_str()).collect()
}

/// The one problem at `key`, whose problem text contains `what` and fix contains `fix`.
fn assert_problem(ps: &[Problem], key: &str, what: &str, fix: &str) {
    let at: Vec<&Problem> = ps.iter().filter(|p| p.key == key).collect();
    assert_eq!(at.len(), 1, "{key} in {ps:#?}");
    assert!(at[0].problem.contains(what), "{key}: {:?}", at[0].problem);
    assert!(at[0].fix.contains(fix), "{key}: {:?}", at[0].fix);
}

#[test]
fn the_documented_example_deserialises_into_the_config_type_and_validates_clean() {
    let c = Config::parse(&example_text()).unwrap();
    assert_eq!(c.gateway.id.as_str(), "GW0001");
    assert_eq!(c.platform.mqtt_url.host(), "platform.example.jp");
    assert_eq!(c.platform.mqtt_url.port(), 8883);
    assert_eq!(c.platform.https_base.port(), 8443);
    assert_eq!(c.platform.max_records_per_message, 1000);
    assert_eq!(c.masking.active_key.as_str(), "k2026a");
    assert_eq!(c.ftp.listen.port(), 2121);
    assert_eq!(
        (c.ftp.passive_ports.first, c.ftp.passive_ports.last),
        (50000, 50100)
    );
    assert!(c.ftp.ftps_required);
    assert_eq!(c.storage.quota_bytes, 10_737_418_240);
    assert_eq!(c.data_protection.crl_refresh_sec.0, 3600);
    assert_eq!(c.datasets.len(), 2);
    let billing = &c.datasets[0];
    assert_eq!(billing.name.as_str(), "billing");
    assert_eq!(billing.encoding, Encoding::Cp932);
    assert_eq!(c.datasets[1].encoding, Encoding::Utf8);
    // Ingest gets the same columns, encoding and header rule.
    let spec = billing.ingest_spec();
    assert_eq!(spec.encoding, Encoding::Cp932);
    assert!(spec.header_row);
    assert_eq!(spec.columns.len(), 5);
    assert_eq!(spec.columns[1].name, "氏名");
    assert!(spec.columns[1].masked);
    assert_eq!(billing.columns[0].name, "需要家番号");
    assert!(billing.columns[0].masked);
    assert_eq!(billing.columns[3].ty, ColumnType::Decimal);
    assert_eq!(billing.columns[3].unit.as_deref(), Some("m3"));
    // Written back with the same type, it reads as the same configuration.
    assert_eq!(Config::parse(&c.to_toml().unwrap()).unwrap(), c);
    // With the files it names in place, it has no problem at all.
    let d = example_bundle();
    assert_eq!(check_bundle(d.path()), []);
    let loaded = Config::load(d.path()).unwrap();
    assert_eq!(
        loaded.tls.client_key.path(),
        d.path().join("tls/client.key")
    );
    assert_eq!(loaded.tls.client_key.written(), Path::new("tls/client.key"));
    // An absolute path stays absolute.
    assert_eq!(loaded.gateway.state_dir.path(), Path::new("/var/lib/sgw"));
    let core = loaded.protocol_config();
    assert_eq!(core.gateway_id.as_str(), "GW0001");
    assert_eq!(core.datasets.len(), 2);
    assert_eq!(core.max_records_per_message, 1000);
    assert_eq!(core.connect_timeout_sec, 30);
    // And the runtime's MQTT link and FTP server.
    let link = loaded.link_settings(5);
    assert_eq!(
        (link.host.as_str(), link.port, link.keep_alive_sec),
        ("platform.example.jp", 8883, 60)
    );
    assert_eq!(link.tls.key, d.path().join("tls/client.key"));
    let ftp = loaded.ftp_settings();
    assert_eq!(ftp.passive_ports, 50000..=50100);
    assert!(ftp.ftps_required);
    assert_eq!(
        ftp.tls,
        Some((
            d.path().join("ftp/server.pem"),
            d.path().join("ftp/server.key")
        ))
    );
    let accounts: Vec<(&str, &str)> = ftp
        .accounts
        .iter()
        .map(|a| (a.user.as_str(), a.dataset.as_str()))
        .collect();
    assert_eq!(accounts, [("ryokin", "billing"), ("daicho", "pipe_ledger")]);
}

#[test]
fn text_written_by_to_toml_reads_back_as_the_same_configuration_whatever_the_strings() {
    let mut c = Config::parse(&example_text()).unwrap();
    c.gateway.name = "引用符 \" と \\ と\n改行".into();
    c.datasets[0].columns[0].name = "a \"quoted\" \\ name\twith tab".into();
    c.datasets[0].columns[1].unit = Some("m\"3".into());
    c.datasets[1].columns[0].unit = None;
    let text = c.to_toml().unwrap();
    assert_eq!(Config::parse(&text).unwrap(), c, "{text}");
    // Columns are written as inline tables, in order, like the example.
    assert!(
        text.contains(
            "  { name = \"口径\", type = \"integer\", unit = \"mm\", masked = false },\n"
        ),
        "{text}"
    );
}

#[test]
fn keys_with_documented_defaults_may_be_left_out() {
    let t = example_text()
        .replace("crl_refresh_sec = 3600\n", "")
        .replace("ftps_required = true\n", "")
        .replace("evacuation_interval_sec = 3600\n", "");
    let c = Config::parse(&t).unwrap();
    assert_eq!(c.data_protection.crl_refresh_sec.0, 3600);
    assert!(c.ftp.ftps_required);
    assert_eq!(c.storage.evacuation_interval_sec.0, 3600);
}

#[test]
fn unknown_keys_are_refused_with_their_dotted_key() {
    let t = example_with(
        "state_dir = \"/var/lib/sgw\"\n",
        "state_dir = \"/var/lib/sgw\"\ncolour = \"blue\"\n",
    )
    .replacen(
        "{ name = \"氏名\", type = \"string\", masked = true }",
        "{ name = \"氏名\", type = \"string\", masked = true, secret = true }",
        1,
    ) + "\n[extra]\nx = 1\n";
    let ps = Config::parse(&t).unwrap_err();
    let mut found = keys(&ps);
    found.sort();
    assert_eq!(
        found,
        ["datasets[0].columns[1].secret", "extra", "gateway.colour"]
    );
    assert_problem(&ps, "gateway.colour", "unknown key", "`state_dir`");
}

#[test]
fn every_structural_problem_is_reported_at_once_with_its_key_and_fix() {
    let t = example_text()
        .replacen("id = \"GW0001\"", "id = \"GW-0001\"", 1)
        .replacen("encoding = \"cp932\"", "encoding = \"sjis\"", 1)
        .replacen(
            "{ name = \"口径\", type = \"integer\"",
            "{ name = \"口径\", type = \"int\"",
            1,
        )
        .replacen("ftp_user = \"daicho\"\n", "", 1)
        .replacen("active_key = \"k2026a\"", "active_key = \"k-2026\"", 1)
        .replacen(
            "m=19456,t=2,p=1$c2d3LWV4YW1wbGUtc2x0Mg",
            "m=19456,t=1,p=1$c2d3LWV4YW1wbGUtc2x0Mg",
            1,
        )
        .replacen(
            "mqtt_url = \"mqtts://platform.example.jp:8883\"",
            "mqtt_url = \"mqtt://platform.example.jp:1883\"",
            1,
        )
        .replacen(
            "max_file_bytes = 104857600",
            "max_file_bytes = \"100MB\"",
            1,
        );
    let ps = Config::parse(&t).unwrap_err();
    assert_eq!(ps.len(), 8, "{ps:#?}");
    assert_problem(
        &ps,
        "gateway.id",
        "DES-ID-1",
        "1..=32 ASCII letters or digits",
    );
    assert_problem(
        &ps,
        "datasets[0].encoding",
        "sjis",
        "\"cp932\" or \"utf-8\"",
    );
    assert_problem(&ps, "datasets[1].columns[1].type", "int", "\"integer\"");
    assert_problem(&ps, "datasets[1].ftp_user", "missing", "add it");
    assert_problem(&ps, "masking.active_key", "DES-MASK-1", "1..=16");
    assert_problem(
        &ps,
        "datasets[1].ftp_password_hash",
        "Argon2id PHC",
        "sgw hash-password",
    );
    assert_problem(&ps, "platform.mqtt_url", "mqtts://", "mqtts://HOST:PORT");
    assert_problem(&ps, "ftp.max_file_bytes", "invalid type", "type");
}

#[test]
fn a_missing_section_and_bad_toml_are_problems_too() {
    let start = example_text().find("[storage]").unwrap();
    let end = example_text().find("# One [[datasets]]").unwrap();
    let mut t = example_text();
    t.replace_range(start..end, "");
    let ps = Config::parse(&t).unwrap_err();
    assert_eq!(keys(&ps), ["storage"]);
    assert_problem(&ps, "storage", "missing", "add it");
    let ps = Config::parse("[gateway\nid = 1").unwrap_err();
    assert_eq!(keys(&ps), ["gateway.toml"]);
    assert!(ps[0].problem.contains("TOML"), "{:?}", ps[0]);
}

#[test]
fn rules_between_keys_are_all_reported() {
    // 120 columns of 120-character names make a profile header far over 16 384 bytes.
    let wide: Vec<String> = (0..120)
        .map(|i| {
            format!(
                "{{ name = \"{:0>120}\", type = \"string\", masked = false }}",
                i
            )
        })
        .collect();
    let t = example_text()
        .replacen(
            "max_records_per_message = 1000",
            "max_records_per_message = 1001",
            1,
        )
        .replacen("name = \"pipe_ledger\"", "name = \"billing\"", 1)
        .replacen("ftp_user = \"daicho\"", "ftp_user = \"ryokin\"", 1)
        .replacen("ftp_dir = \"pipe_ledger\"", "ftp_dir = \"billing\"", 1)
        .replacen(
            "{ name = \"氏名\", type = \"string\", masked = true }",
            &format!(
                "{{ name = \"{}\", type = \"string\", masked = true }}",
                "名".repeat(129)
            ),
            1,
        )
        .replacen(
            "{ name = \"布設年月日\", type = \"date\", masked = false }",
            "{ name = \"口径\", type = \"date\", masked = false }",
            1,
        )
        .replacen(
            "{ name = \"管種\", type = \"string\", masked = false },",
            &(wide.join(",\n") + ","),
            1,
        );
    let d = bundle_with(&t);
    let ps = check_bundle(d.path());
    assert_problem(
        &ps,
        "platform.max_records_per_message",
        "outside 1..=1000",
        "1 to 1000",
    );
    assert_problem(
        &ps,
        "datasets[1].name",
        "same name as datasets[0]",
        "its own name",
    );
    assert_problem(
        &ps,
        "datasets[1].ftp_user",
        "same ftp_user as datasets[0]",
        "its own ftp_user",
    );
    assert_problem(
        &ps,
        "datasets[1].ftp_dir",
        "same ftp_dir as datasets[0]",
        "its own ftp_dir",
    );
    assert_problem(
        &ps,
        "datasets[0].columns[1].name",
        "129 characters",
        "1 to 128",
    );
    assert_problem(
        &ps,
        "datasets[1].columns[2].name",
        "same name as columns[1]",
        "its own name",
    );
    assert_problem(
        &ps,
        "datasets[1].columns",
        "over 16384 (DES-MSG-DATA-6)",
        "fewer or shorter",
    );
    assert_eq!(ps.len(), 7, "{ps:#?}");
    // And the lower bound of max_records_per_message.
    let d = bundle_with(&example_with(
        "max_records_per_message = 1000",
        "max_records_per_message = 0",
    ));
    assert_eq!(
        keys(&check_bundle(d.path())),
        ["platform.max_records_per_message"]
    );
    // No column at all.
    let start = example_text().rfind("columns = [").unwrap();
    let mut t = example_text();
    t.replace_range(start.., "columns = []\n");
    let d = bundle_with(&t);
    let ps = check_bundle(d.path());
    assert_problem(&ps, "datasets[1].columns", "0 columns", "at most 256");
}

fn chmod(p: PathBuf, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn file_problems_are_all_reported_with_their_key_and_fix() {
    let d = example_bundle();
    let dir = d.path();
    let p = pki();
    // A missing CA, a private key readable by others, a client key that is not the
    // certificate's, two certificates where one must be, no FTPS certificate although FTPS is
    // required, a CRL that is not one, a certificate file holding a private key.
    std::fs::remove_file(dir.join("tls/ca.pem")).unwrap();
    chmod(dir.join("data-protection/gateway.key"), 0o640);
    write(
        &dir.join("tls/client.key"),
        &p.spare_key.private_key_to_pem_pkcs8().unwrap(),
        0o600,
    );
    let two = [
        p.platform.cert.to_pem().unwrap(),
        p.app.cert.to_pem().unwrap(),
    ]
    .concat();
    write(&dir.join("data-protection/platform.pem"), &two, 0o644);
    std::fs::remove_file(dir.join("ftp/server.pem")).unwrap();
    std::fs::remove_file(dir.join("ftp/server.key")).unwrap();
    write(&dir.join("data-protection/crl.pem"), b"not a crl", 0o644);
    let with_key = [
        p.root.to_pem().unwrap(),
        p.root_key.private_key_to_pem_pkcs8().unwrap(),
    ]
    .concat();
    write(&dir.join("data-protection/root.pem"), &with_key, 0o644);
    let ps = check_bundle(dir);
    assert_problem(&ps, "tls.ca", "does not exist", "re-provision");
    assert_problem(
        &ps,
        "data_protection.key",
        "readable by group or others (mode 640)",
        &format!(
            "chmod 600 {}",
            dir.join("data-protection/gateway.key").display()
        ),
    );
    assert_problem(
        &ps,
        "tls.client_key",
        "not the key of the certificate tls.client_cert",
        "re-provision",
    );
    assert_problem(
        &ps,
        "data_protection.platform_cert",
        "holds 2 certificates",
        "re-provision",
    );
    assert_problem(
        &ps,
        "ftp.tls_cert",
        "does not exist",
        "FTPS server certificate",
    );
    assert_problem(
        &ps,
        "ftp.tls_key",
        "does not exist",
        "FTPS server certificate",
    );
    assert_problem(&ps, "data_protection.crl", "not a PEM CRL", "re-provision");
    assert_problem(
        &ps,
        "data_protection.root_cert",
        "holds a private key",
        "0600 key file",
    );
    assert_eq!(ps.len(), 8, "{ps:#?}");
}

#[test]
fn certificates_of_another_gateway_are_reported_at_the_gateway_id() {
    let d = bundle_with(&example_with("id = \"GW0001\"", "id = \"GW0002\""));
    let ps = check_bundle(d.path());
    assert_eq!(keys(&ps), ["gateway.id", "gateway.id"], "{ps:#?}");
    assert!(
        ps[0]
            .problem
            .contains("\"GW0001\" of the certificate tls.client_cert"),
        "{ps:?}"
    );
    assert!(ps[1].problem.contains("data_protection.cert"), "{ps:?}");
}

#[test]
fn masking_key_problems_name_the_utilitys_command() {
    // No key file for active_key.
    let d = example_bundle();
    std::fs::remove_file(d.path().join("masking/k2026a.key")).unwrap();
    let ps = check_bundle(d.path());
    assert_problem(
        &ps,
        "masking.active_key",
        "k2026a is not loaded",
        "sgw masking-key new",
    );
    assert_eq!(ps.len(), 1);
    // No directory at all.
    std::fs::remove_dir(d.path().join("masking")).unwrap();
    let ps = check_bundle(d.path());
    assert_problem(
        &ps,
        "masking.active_key",
        "cannot be read",
        "sgw masking-key new",
    );
    // A key readable by others, a key file that is not 64 hex digits, a badly named one.
    let d = example_bundle();
    let m = d.path().join("masking");
    chmod(m.join("k2026a.key"), 0o644);
    write(&m.join("old1.key"), b"not hex", 0o600);
    write(&m.join("bad-id.key"), "cd".repeat(32).as_bytes(), 0o600);
    let ps = check_bundle(d.path());
    assert_problem(
        &ps,
        "masking.keys_dir[k2026a]",
        "readable by group or others (mode 644)",
        "chmod 600",
    );
    assert_problem(&ps, "masking.keys_dir[old1]", "64 hex digits", "backup");
    assert_problem(&ps, "masking.keys_dir", "bad-id.key", "rename");
    assert_eq!(ps.len(), 3, "{ps:#?}");
}

#[test]
fn a_repaired_key_hides_no_other_problem_and_adds_none() {
    // A bad gateway ID (repaired with a placeholder for parsing) next to a missing file: both
    // are reported, and the placeholder ID is not reported as a certificate mismatch.
    let d = bundle_with(&example_with("id = \"GW0001\"", "id = \"GW/1\""));
    std::fs::remove_file(d.path().join("tls/ca.pem")).unwrap();
    let ps = check_bundle(d.path());
    assert_eq!(keys(&ps), ["gateway.id", "tls.ca"], "{ps:#?}");
    assert!(ps[0].problem.contains("DES-ID-1"));
}

// ----------------------------------------------------------------------------- the binary

fn sgw(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sgw"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            i.write_all(s.as_bytes()).unwrap();
        }
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn sgw_check_config_prints_every_problem_with_key_and_fix_and_fails() {
    let d = bundle_with(&example_with(
        "encoding = \"utf-8\"",
        "encoding = \"latin1\"",
    ));
    chmod(d.path().join("tls/client.key"), 0o644);
    let dir = d.path().to_str().unwrap();
    let (code, out, _) = sgw(&["check-config", "--bundle", dir], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("datasets[1].encoding: "), "{out}");
    assert!(out.contains("fix: use \"cp932\" or \"utf-8\""), "{out}");
    assert!(
        out.contains("tls.client_key: tls/client.key is readable by group or others"),
        "{out}"
    );
    assert!(out.contains("fix: chmod 600"), "{out}");
    assert!(out.contains("2 problem(s)"), "{out}");
    // Fixed, it passes.
    let d = example_bundle();
    let (code, out, _) = sgw(
        &["check-config", "--bundle", d.path().to_str().unwrap()],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no problems"), "{out}");
    // No bundle there.
    let (code, out, _) = sgw(&["check-config", "--bundle", "/nonexistent-bundle"], None);
    assert_eq!(code, 1);
    assert!(out.contains("gateway.toml: "), "{out}");
}

#[test]
fn sgw_hash_password_prints_an_argon2id_phc_string_of_the_line_read() {
    let (code, out, err) = sgw(&["hash-password"], Some("correct horse\n"));
    assert_eq!(code, 0, "{err}");
    let line = out.trim_end();
    assert!(
        line.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{line}"
    );
    let h = PasswordHash::new(line).unwrap();
    assert!(gateway::config::verify_password("correct horse", &h));
    assert!(!gateway::config::verify_password("correct horse\n", &h));
    assert!(!gateway::config::verify_password("correct hors", &h));
    // Salted: the same password hashes differently each time.
    let (_, again, _) = sgw(&["hash-password"], Some("correct horse\r\n"));
    assert_ne!(again.trim_end(), line);
    assert!(gateway::config::verify_password(
        "correct horse",
        &PasswordHash::new(again.trim_end()).unwrap()
    ));
    // An empty password is refused.
    let (code, out, err) = sgw(&["hash-password"], Some("\n"));
    assert_eq!(code, 1);
    assert!(out.is_empty() && err.contains("empty"), "{err}");
}

#[test]
fn sgw_masking_key_new_makes_an_owner_only_key_and_never_overwrites_one() {
    let d = example_bundle();
    std::fs::remove_dir_all(d.path().join("masking")).unwrap();
    let dir = d.path().to_str().unwrap();
    let (code, out, err) = sgw(&["masking-key", "new", "--bundle", dir], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("k2026a"), "{out}");
    let key = d.path().join("masking/k2026a.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&key).unwrap();
    assert_eq!(hex::decode(text.trim()).unwrap().len(), 32);
    assert_eq!(check_bundle(d.path()), []);
    // A second run refuses and leaves the key as it was.
    let (code, _, err) = sgw(&["masking-key", "new", "--bundle", dir], None);
    assert_eq!(code, 1);
    assert!(err.contains("never overwritten"), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
    // Rotation: a new keyId, and the hint to make it active.
    let (code, out, _) = sgw(
        &["masking-key", "new", "--bundle", dir, "--key-id", "k2027a"],
        None,
    );
    assert_eq!(code, 0);
    assert!(out.contains("active_key = \"k2027a\""), "{out}");
    assert_ne!(
        std::fs::read_to_string(d.path().join("masking/k2027a.key")).unwrap(),
        text
    );
    let (code, _, err) = sgw(
        &["masking-key", "new", "--bundle", dir, "--key-id", "k-1"],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("DES-MASK-1"), "{err}");
    // The library function is the same operation.
    assert!(matches!(
        new_masking_key(d.path(), Some("k2027a")),
        Err(gateway::config::MaskingKeyError::Exists(_))
    ));
}

#[test]
fn every_sgw_command_explains_itself() {
    for (args, phrase) in [
        (vec!["check", "--help"], "envelope"),
        (vec!["check-config", "--help"], "every problem with its key"),
        (vec!["hash-password", "--help"], "Argon2id PHC"),
        (vec!["masking-key", "--help"], "never by the platform"),
        (vec!["masking-key", "new", "--help"], "Refuses to overwrite"),
    ] {
        let (code, out, _) = sgw(&args, None);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains(phrase), "{args:?}: {out}");
    }
}

#[test]
fn sgw_new_epoch_gives_the_store_a_new_epoch_and_keeps_its_seqs() {
    // DES-ID-5, DES-MSG-CONN-4: the operator's remedy after a restore from a backup.
    let b = example_bundle();
    let cfg = Config::load(b.path()).unwrap();
    let state = cfg.gateway.state_dir.path().to_owned();
    let before = {
        let s = gateway::store::Store::open(&state).unwrap();
        (s.epoch().unwrap(), s.last_seq().unwrap())
    };
    let (code, out, err) = sgw(&["new-epoch", "--bundle", b.path().to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}{err}");
    let s = gateway::store::Store::open(&state).unwrap();
    let after = s.epoch().unwrap();
    assert_ne!(after, before.0, "a new epoch");
    assert!(out.contains(after.as_str()), "{out}");
    assert_eq!(s.last_seq().unwrap(), before.1, "seqs kept");
}

#[test]
fn sgw_unmask_gives_the_utility_its_clear_values_and_refuses_another_columns() {
    // DES-MASK-3: only the utility, with its key, unmasks; the column is bound in (DES-MASK-1).
    let b = example_bundle();
    let cfg = Config::load(b.path()).unwrap();
    let keys = gateway::security::MaskingKeys::load_dir(
        cfg.masking.keys_dir.path(),
        cfg.masking.active_key.as_str(),
    )
    .unwrap();
    let a = keys.mask("氏名", "山田 太郎").unwrap();
    let c = keys.mask("氏名", "髙橋 ①").unwrap();
    let bundle = b.path().to_str().unwrap();
    let (code, out, err) = sgw(
        &["unmask", "--bundle", bundle, "--column", "氏名"],
        Some(&format!("{a}\n{c}\n")),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "山田 太郎\n髙橋 ①\n");
    // Under another column the authentication fails; the value is never echoed.
    let (code, out, err) = sgw(
        &["unmask", "--bundle", bundle, "--column", "住所"],
        Some(&format!("{a}\n")),
    );
    assert_eq!(code, 1);
    assert_eq!(out, "\n");
    assert!(err.contains("line 1"), "{err}");
    assert!(!err.contains(&a), "the masked value is not echoed");
}
