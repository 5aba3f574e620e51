//! `platform-sim run` as a subprocess, killed and started again on the same state directory
//! and ports (SM-RESEND, IF-PSEND-3, DES-MSG-DATA-2/3, DES-MSG-CONN-2): a scripted gateway
//! reconnects by itself, the restarted platform still knows what it stored (`ackedThrough`),
//! and the gateway's unacknowledged data ends up in the SQLite store exactly once. Also the
//! operator API and the `fault` subcommand of the running binary.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::bin;
use common::scripted::ScriptedGateway;
use gateway::protocol::ids::GatewayId;
use gateway::protocol::message::{Body, MessageType};
use legacy_sim::dataset::Dataset as Ds;
use platform_sim::broker::free_loopback_port;
use platform_sim::platform::store::Store;
use platform_sim::provision::Bundle;

struct Sim {
    child: Child,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Ports {
    mqtt: u16,
    https: u16,
    api: u16,
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// Starts `platform-sim run` and waits for its operator line.
fn run(state: &Path, ports: &Ports, fault: Option<&str>) -> Sim {
    let mut c = Command::new(bin());
    c.args(["run", "--state-dir", p(state)])
        .args(["--mqtt-port", &ports.mqtt.to_string()])
        .args(["--https-port", &ports.https.to_string()])
        .args(["--api-port", &ports.api.to_string()])
        .args(["--ack-timeout-sec", "2", "--gap-grace-sec", "60"])
        .args(["--monitor-interval-sec", "2", "--command-retry-sec", "3"]);
    if let Some(f) = fault {
        c.args(["--fault", f]);
    }
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let l = lines.next().expect("run exited early").unwrap();
        if l.starts_with("operator:") {
            assert!(l.contains(&format!("127.0.0.1:{}", ports.api)), "{l}");
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Sim { child }
}

/// One HTTP/1.1 request to the operator API; (status, body).
fn http(api: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let addr = SocketAddr::from(([127, 0, 0, 1], api));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, out.split_once("\r\n\r\n").unwrap().1.to_owned())
}

fn provision(state: &Path, out: &Path, id: &str) -> Bundle {
    let o = Command::new(bin())
        .args([
            "provision",
            "--gateway",
            id,
            "--out",
            p(out),
            "--state-dir",
            p(state),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    Bundle::load(out).unwrap()
}

const T: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_platform_restart_the_gateway_reconnects_and_its_unacknowledged_data_is_stored_exactly_once()
 {
    platform_sim::install_crypto_provider();
    let d = tempfile::tempdir().unwrap();
    let state: PathBuf = d.path().join("state");
    let ports = Ports {
        mqtt: free_loopback_port().unwrap(),
        https: free_loopback_port().unwrap(),
        api: free_loopback_port().unwrap(),
    };
    // First run: acknowledgements withheld, so everything stays unacknowledged at the gateway.
    let sim = run(&state, &ports, Some("withhold-acks"));
    let b = provision(&state, &d.path().join("bundle"), "RST1");
    let gw = GatewayId::new("RST1").unwrap();
    let mut g = ScriptedGateway::new(&b, ports.mqtt);
    assert!(g.run_until(T, |g| g.connected()).await, "no session");
    let (status, body) = http(
        ports.api,
        "POST",
        "/api/gateways/RST1/commands",
        r#"{"command":"start","intervalSec":1,"format":"json"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(g.run_until(T, |g| g.core.periodic().running).await);
    let a = g.ingest(Ds::Billing, 10, 21);
    let db = state.join("platform.sqlite");
    assert!(
        g.run_until(T, |_| Store::open(&db).unwrap().records(&gw).unwrap().len()
            == 10)
            .await,
        "first batch not stored"
    );
    g.run_for(Duration::from_millis(500)).await;
    assert!(!g.all_acked(), "acks were withheld");
    let first_ids: Vec<String> = Store::open(&db)
        .unwrap()
        .records(&gw)
        .unwrap()
        .iter()
        .map(|r| r.message_id.clone())
        .collect();

    // Kill it; more data is ingested while the platform is away.
    drop(sim);
    assert!(
        g.run_until(T, |g| !g.connected()).await,
        "session survived the kill"
    );
    let b2 = g.ingest(Ds::Billing, 7, 22);
    g.run_for(Duration::from_millis(500)).await;

    // Second run on the same state and ports, no faults.
    let _sim = run(&state, &ports, None);
    assert!(
        g.run_until(T, |g| g.connected() && g.all_acked()).await,
        "not delivered"
    );
    let cr = g.received_of(MessageType::ConnectResult);
    let Body::ConnectResult(last) = &cr.last().unwrap().body else {
        unreachable!()
    };
    assert_eq!(last.acked_through, a.last, "restart forgot what was stored");

    let rows = Store::open(&db).unwrap().records(&gw).unwrap();
    let seqs: Vec<u64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (a.first..=b2.last).collect::<Vec<_>>(),
        "each seq exactly once"
    );
    for r in &rows {
        assert_eq!(r.fields, g.rows[&r.seq].1, "seq {}", r.seq);
    }
    let ids_now: Vec<&String> = rows[..10].iter().map(|r| &r.message_id).collect();
    assert_eq!(
        ids_now,
        first_ids.iter().collect::<Vec<_>>(),
        "stored twice"
    );

    // The API of the running binary, and the `fault` subcommand against it.
    let o = Command::new(bin())
        .args([
            "fault",
            "--state-dir",
            p(&state),
            "drop=20,delay=50,stale-crl",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let (status, faults) = http(ports.api, "GET", "/api/faults", "");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&faults).unwrap();
    assert_eq!(v["dropPercent"], 20);
    assert_eq!(v["delayMs"], 50);
    assert_eq!(v["staleCrl"], true);
    assert_eq!(v["withholdAcks"], false);
    let bad = Command::new(bin())
        .args(["fault", "--state-dir", p(&state), "explode"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let (status, list) = http(ports.api, "GET", "/api/gateways/RST1", "");
    assert_eq!(status, 200, "{list}");
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v["connected"], true);
    assert_eq!(v["records"]["billing"], 17);
}
