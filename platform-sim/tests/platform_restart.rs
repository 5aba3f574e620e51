//! `platform-sim run` as a subprocess, killed and started again on the same state directory
//! and ports (SM-RESEND, IF-PSEND-3, DES-MSG-DATA-2/3, DES-MSG-CONN-2): the real gateway
//! (`gateway::runtime::app`, legacy CSV uploaded over FTPS) reconnects by itself, the restarted
//! platform still knows what it stored (`ackedThrough`), and the gateway's unacknowledged data,
//! also what it took in while the platform was away, ends up in the SQLite store exactly once.
//! Also the operator API and the `fault` subcommand of the running binary.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::bin;
use common::real::{RealGateway, wait_for};
use gateway::protocol::ids::GatewayId;
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
    let mut b = Bundle::load(out).unwrap();
    // The initial FTP passwords are printed once.
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        if let Some((user, pass)) = l
            .strip_prefix("initial FTP password of user ")
            .and_then(|x| x.split_once(": "))
        {
            b.ftp_passwords.insert(user.to_owned(), pass.to_owned());
        }
    }
    assert!(!b.ftp_passwords.is_empty(), "{o:?}");
    b
}

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
    let mut g = RealGateway::setup(&b, &format!("https://localhost:{}", ports.https));
    g.start().await;
    g.wait("session", |v| v.connected).await;
    let (status, body) = http(
        ports.api,
        "POST",
        "/api/gateways/RST1/commands",
        r#"{"command":"start","intervalSec":1,"format":"json"}"#,
    );
    assert_eq!(status, 200, "{body}");
    g.wait("periodic sending started", |v| v.running).await;
    let a = g.upload(Ds::Billing, 10, 21).await;
    let db = state.join("platform.sqlite");
    let stored = || Store::open(&db).unwrap().records(&gw).unwrap();
    wait_for("first batch stored", || stored().len() == 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(g.view().await.unacked, 10, "acks were withheld");
    let first_ids: Vec<String> = stored().iter().map(|r| r.message_id.clone()).collect();

    // Kill it; the legacy system uploads more while the platform is away.
    drop(sim);
    g.wait("session survived the kill", |v| !v.connected).await;
    let b2 = g.upload(Ds::Billing, 7, 22).await;

    // Second run on the same state and ports, acknowledgements still withheld: the gateway
    // reconnects by itself and the connect.result's ackedThrough — what the restarted platform
    // knows it stored — acknowledges the first batch, exactly: 7 records stay unacknowledged.
    let _sim = run(&state, &ports, Some("withhold-acks"));
    g.wait("reconnected", |v| v.connected).await;
    wait_for("second batch stored", || stored().len() == 17).await;
    g.wait("the first batch acknowledged by ackedThrough", |v| {
        v.unacked == b2.last - a.last
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        g.view().await.unacked,
        b2.last - a.last,
        "restart forgot what was stored"
    );
    // The fault lifted, the retransmission is acknowledged.
    let o = Command::new(bin())
        .args(["fault", "--state-dir", p(&state), "none"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    g.wait("all acknowledged", |v| v.connected && v.unacked == 0)
        .await;

    let rows = stored();
    let seqs: Vec<u64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (a.first..=b2.last).collect::<Vec<_>>(),
        "each seq exactly once"
    );
    g.assert_stored_in(&db, &gw, a.first, b2.last);
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
