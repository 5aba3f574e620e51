//! `platform-sim run` end to end as a subprocess (its broker dies with it): zero configuration,
//! provisioning against it, a third-party MQTT peer and HTTPS client, and a revocation by the
//! CLI picked up by the running simulator (DES-PROV, IF-CERT-1, SEC-CERT-2, SM-ACL).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bin;

struct Running {
    child: Child,
    state: PathBuf,
    mqtt: u16,
    https: u16,
    owns_state: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A zero-configuration run made its own temporary state directory: remove it even
        // when the test failed.
        if self.state.starts_with(std::env::temp_dir()) && self.owns_state {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(bin())
        .arg("run")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut state, mut mqtt, mut https) = (None, None, None);
    while state.is_none() || mqtt.is_none() || https.is_none() {
        let l = lines.next().expect("run exited early").unwrap();
        let port = |l: &str| l.rsplit(':').next().unwrap().trim().parse::<u16>().unwrap();
        if let Some(d) = l.strip_prefix("state dir:") {
            state = Some(PathBuf::from(d.trim()));
        } else if l.starts_with("MQTT") {
            mqtt = Some(port(&l));
        } else if l.starts_with("HTTPS") {
            https = Some(port(&l));
        }
    }
    // Keep draining stdout so the simulator never writes into a closed pipe.
    std::thread::spawn(move || for _ in lines {});
    Running {
        child,
        state: state.unwrap(),
        mqtt: mqtt.unwrap(),
        https: https.unwrap(),
        owns_state: !args.contains(&"--state-dir"),
    }
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

fn curl(r: &Running, b: &Path, path: &str) -> (bool, String) {
    let o = Command::new("curl")
        .args(["-sS", "--cacert", p(&b.join("tls/ca.pem"))])
        .args(["--cert", p(&b.join("tls/client.pem"))])
        .args(["--key", p(&b.join("tls/client.key"))])
        .arg(format!("https://localhost:{}{path}", r.https))
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn run_needs_no_configuration_and_enforces_a_revocation_made_by_the_cli() {
    let r = start(&[]);
    assert!(r.state.join("root.pem").is_file(), "{}", r.state.display());
    assert_ne!(r.mqtt, r.https);
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("bundle");
    let o = Command::new(bin())
        .args([
            "provision",
            "--gateway",
            "RUN1",
            "--out",
            p(&b),
            "--state-dir",
            p(&r.state),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    // The bundle names the running simulator's endpoints (from endpoints.json).
    let toml = std::fs::read_to_string(b.join("gateway.toml")).unwrap();
    assert!(
        toml.contains(&format!("mqtt_url = \"mqtts://localhost:{}\"", r.mqtt)),
        "{toml}"
    );
    assert!(
        toml.contains(&format!("https_base = \"https://localhost:{}\"", r.https)),
        "{toml}"
    );

    let (ok, body) = curl(&r, &b, "/sgw/v1/certs/apps");
    assert!(ok, "{body}");
    assert!(body.contains("\"appId\":\"app1\""), "{body}");
    let pubd = Command::new("mosquitto_pub")
        .args([
            "-h",
            "localhost",
            "-p",
            &r.mqtt.to_string(),
            "-V",
            "mqttv311",
            "-q",
            "1",
        ])
        .args(["-i", "RUN1", "--cafile", p(&b.join("tls/ca.pem"))])
        .args([
            "--cert",
            p(&b.join("tls/client.pem")),
            "--key",
            p(&b.join("tls/client.key")),
        ])
        .args(["-t", "/tenants/RUN1/sgw/v1/up/monitor.status", "-m", "x"])
        .output()
        .unwrap();
    assert!(pubd.status.success(), "{pubd:?}");

    let o = Command::new(bin())
        .args(["revoke", "--state-dir", p(&r.state), "--gateway", "RUN1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    // The running simulator polls every 2 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, body) = curl(&r, &b, "/sgw/v1/crl.pem");
        if !ok {
            assert!(body.contains("certificate revoked"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revocation not enforced by the running simulator"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn run_uses_the_ports_and_state_directory_it_is_given() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("st");
    let mqtt = platform_sim::broker::free_loopback_port().unwrap();
    let https = platform_sim::broker::free_loopback_port().unwrap();
    let r = start(&[
        "--state-dir",
        p(&state),
        "--mqtt-port",
        &mqtt.to_string(),
        "--https-port",
        &https.to_string(),
    ]);
    assert_eq!((r.mqtt, r.https), (mqtt, https));
    assert_eq!(r.state, state);
    assert!(state.join("index.json").is_file());
    assert!(std::net::TcpStream::connect(("127.0.0.1", https)).is_ok());
}

#[test]
fn run_starts_without_an_error_line() {
    // The readiness check of the broker must not look like a failed client (rumqttd used to log
    // "Tls accept error" for the probe connection at every start).
    let d = tempfile::tempdir().unwrap();
    let err = d.path().join("stderr.txt");
    let mut child = Command::new(bin())
        .arg("run")
        .args(["--state-dir", p(&d.path().join("st"))])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for l in lines {
        if l.unwrap().starts_with("root CA:") {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&err).unwrap();
    assert!(!text.contains("ERROR"), "{text}");
}
