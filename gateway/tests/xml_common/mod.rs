//! Shared helpers for the XML security integration tests: RSA keys, self-signed
//! certificates, temporary PEM files, the realistic profile corpus, and subprocess runners
//! for the independent implementations (xmlsec1, Python lxml / xmlsec / signxml).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};

/// An RSA key pair with a self-signed certificate.
pub struct Party {
    pub key: PKey<Private>,
    pub cert: X509,
}

/// Generates an RSA key of `bits` and a self-signed certificate with CN `cn`.
pub fn party(cn: &str, bits: u32) -> Party {
    let key = PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    name.append_entry_by_text("O", "SGW test").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(rand_u32())
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    Party {
        key,
        cert: b.build(),
    }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b).unwrap();
    u32::from_be_bytes(b) | 1
}

/// Writes the key and certificate of `p` as PEM into `dir` (`{name}.key`, `{name}.pem`).
pub fn write_pems(dir: &Path, name: &str, p: &Party) -> (PathBuf, PathBuf) {
    let k = dir.join(format!("{name}.key"));
    let c = dir.join(format!("{name}.pem"));
    std::fs::write(&k, p.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(&c, p.cert.to_pem().unwrap()).unwrap();
    (k, c)
}

/// Workspace root (the gateway crate's parent).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs a command; returns (success, stdout, stderr).
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> (bool, Vec<u8>, String) {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `python3 scripts/crosscheck/{script}` with `args`, returns (success, stdout, stderr).
pub fn python(script: &str, args: &[&str], stdin: Option<&[u8]>) -> (bool, Vec<u8>, String) {
    let path = workspace().join("scripts/crosscheck").join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(path).args(args);
    run(&mut cmd, stdin)
}

/// A tiny deterministic PRNG (xorshift) for corpus generation.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const FAMILY: &[&str] = &[
    "佐藤", "鈴木", "高橋", "田中", "渡辺", "伊藤", "山本", "中村", "小林", "加藤",
];
const GIVEN: &[&str] = &[
    "太郎",
    "花子",
    "一郎",
    "美咲",
    "健太",
    "さくら",
    "翔",
    "陽菜",
];
const ADDR: &[&str] = &[
    "東京都千代田区霞が関1-2-3",
    "大阪府大阪市北区梅田２丁目４−９",
    "北海道札幌市中央区北1条西2丁目",
    "福岡県福岡市博多区博多駅前3-25-21 ＡＢＣビル5F",
    "沖縄県那覇市泉崎1丁目2番2号",
];
const NOTES: &[&str] = &[
    "漏水調査済 <要確認> & \"再検針\"",
    "口座振替 'A&B' 銀行",
    "タブ\tと改行\nと復帰\r入り",
    "特殊: ]]> と &amp; の文字列",
    "",
    "  前後に空白  ",
];

/// A realistic plain data profile (billing records) in the DESIGN.md layout.
pub fn billing_profile(rng: &mut Rng, records: usize) -> String {
    let mut body = String::new();
    for i in 0..records {
        let name = format!("{} {}", rng.pick(FAMILY), rng.pick(GIVEN));
        let addr = rng.pick(ADDR);
        let note = rng.pick(NOTES);
        let amount = rng.next() % 100_000;
        let usage = rng.next() % 1000;
        body.push_str(&format!(
            "<sgw:Record seq=\"{}\" note=\"{}\"><sgw:F n=\"customerName\">{}</sgw:F><sgw:F n=\"address\">{}</sgw:F><sgw:F n=\"usage\" unit=\"m3\">{}.{}</sgw:F><sgw:F n=\"amount\" unit=\"JPY\">{}</sgw:F><sgw:F n=\"note\">{}</sgw:F></sgw:Record>\n",
            i + 1,
            esc(note),
            esc(&name),
            esc(addr),
            usage / 10,
            usage % 10,
            amount,
            esc(note),
        ));
    }
    format!(
        "<sgw:DataProfile xmlns:sgw=\"urn:sgw:profile:v1\">\n<sgw:Header Id=\"header\"><sgw:ProfileId>sgw-profile-v1</sgw:ProfileId><sgw:GatewayId>GW0001</sgw:GatewayId><sgw:SourceSystem>billing</sgw:SourceSystem><sgw:Dataset>料金請求</sgw:Dataset><sgw:Range first=\"1\" last=\"{records}\"/><sgw:CreatedAt>2026-11-22T13:45:00+09:00</sgw:CreatedAt></sgw:Header>\n<sgw:Body Id=\"body\">\n{body}</sgw:Body>\n</sgw:DataProfile>"
    )
}

/// Escapes text for use in both text and attribute values (numeric refs for whitespace).
pub fn esc(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\t' => o.push_str("&#9;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            _ => o.push(c),
        }
    }
    o
}

/// Whether xmlsec1 is on PATH (the cross-checks require it; CI installs it).
pub fn xmlsec1() -> Command {
    Command::new("xmlsec1")
}

/// Four 2048-bit parties generated once per test binary (RSA key generation dominates the
/// run time otherwise): 0 = gateway, 1 = platform, 2 = other, 3 = mallory.
pub fn shared(i: usize) -> &'static Party {
    static PARTIES: std::sync::OnceLock<Vec<Party>> = std::sync::OnceLock::new();
    &PARTIES.get_or_init(|| {
        ["GW0001", "platform", "other", "mallory"]
            .iter()
            .map(|n| party(n, 2048))
            .collect()
    })[i]
}

/// A random namespace-heavy document: prefixes bound and rebound, default namespace set and
/// undeclared, namespaced attributes, text with characters c14n must escape, Japanese text.
pub fn random_doc(rng: &mut Rng) -> String {
    const PREFIXES: &[&str] = &["a", "b", "ds", "xenc", "sgw"];
    const URIS: &[&str] = &[
        "urn:a",
        "urn:b",
        "http://www.w3.org/2000/09/xmldsig#",
        "urn:sgw:profile:v1",
        "urn:suido:%E6%96%99%E9%87%91",
    ];
    const TEXT: &[&str] = &[
        "",
        " ",
        "水道料金 1,234円",
        "a&b",
        "<x>",
        "\"q\" 'a'",
        "\t\n",
        "]]>",
        "\r",
        "ｶﾀｶﾅ ＡＢＣ",
        "𠮷野家",
    ];
    fn el(rng: &mut Rng, depth: usize, out: &mut String, declared: &mut Vec<String>) {
        let mut decls = String::new();
        let mut newly = Vec::new();
        for _ in 0..(rng.next() % 3) {
            let p = rng.pick(PREFIXES);
            if newly.iter().any(|x: &String| x == p) {
                continue;
            }
            decls.push_str(&format!(" xmlns:{p}=\"{}\"", rng.pick(URIS)));
            newly.push(p.to_string());
        }
        match rng.next() % 5 {
            0 => decls.push_str(&format!(" xmlns=\"{}\"", rng.pick(URIS))),
            1 => decls.push_str(" xmlns=\"\""),
            _ => {}
        }
        let n_before = declared.len();
        declared.extend(newly);
        let name = if !declared.is_empty() && rng.next() % 2 == 0 {
            let p = declared[(rng.next() % declared.len() as u64) as usize].clone();
            format!("{p}:e{}", rng.next() % 4)
        } else {
            format!("e{}", rng.next() % 4)
        };
        let mut attrs = String::new();
        let mut used: Vec<String> = Vec::new();
        for i in 0..(rng.next() % 4) {
            let an = if !declared.is_empty() && rng.next() % 2 == 0 {
                let p = declared[(rng.next() % declared.len() as u64) as usize].clone();
                format!("{p}:at{i}")
            } else {
                format!("at{}", rng.next() % 3)
            };
            if used.contains(&an) {
                continue;
            }
            // avoid duplicate expanded names: also skip same local name with any prefix
            let local = an.rsplit(':').next().unwrap().to_string();
            if used.iter().any(|u| u.rsplit(':').next().unwrap() == local) {
                continue;
            }
            used.push(an.clone());
            attrs.push_str(&format!(" {an}=\"{}\"", esc(rng.pick(TEXT))));
        }
        if rng.next() % 7 == 0 {
            attrs.push_str(" xml:lang=\"ja\"");
        }
        out.push_str(&format!("<{name}{decls}{attrs}>"));
        let kids = if depth < 5 { rng.next() % 4 } else { 0 };
        for _ in 0..kids {
            out.push_str(&esc(rng.pick(TEXT)));
            el(rng, depth + 1, out, declared);
        }
        out.push_str(&esc(rng.pick(TEXT)));
        out.push_str(&format!("</{name}>"));
        declared.truncate(n_before);
    }
    let mut out = String::new();
    el(rng, 0, &mut out, &mut Vec::new());
    out
}
