//! The operator dashboard in a real browser (MON-2): headless Debian Chromium driven over the
//! W3C WebDriver protocol by chromedriver, against the real platform runtime with the real
//! gateway (`gateway::runtime::app`) connected over mutual-TLS MQTT. The page must show the
//! gateway connected, and a click on Start must reach the gateway as `periodic.start`, which
//! it applies, after which the page shows it running.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (installed by `.ci/run`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fixture::{fast_config, fixture_https};
use common::real::RealGateway;
use gateway::protocol::message::MessageType;
use platform_sim::ops::{FaultConfig, OperatorServer};
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Minimal HTTP/1.1 JSON request (Connection: close) — enough for WebDriver on loopback.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    // chromedriver does not close the connection after the response: read the head, then
    // exactly Content-Length bytes (or chunks).
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the response head");
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap());
    let body = match length {
        Some(len) => {
            while raw.len() < head_end + len {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "connection closed inside the body");
                raw.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&raw[head_end..head_end + len]).into_owned()
        }
        None => {
            s.read_to_end(&mut raw).unwrap();
            dechunk(&String::from_utf8_lossy(&raw[head_end..]))
        }
    };
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

struct Driver {
    child: Child,
    addr: SocketAddr,
    session: String,
}

impl Driver {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian chromium-driver) must be installed");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap().keep();
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", profile.display())]
        }}}});
        let r = http(addr, "POST", "/session", Some(&caps));
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_owned();
        Driver {
            child,
            addr,
            session,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        http(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )["value"]
            .clone()
    }

    fn find(&self, css: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            );
            if let Some(id) = v
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
                && v.get("error").is_none()
            {
                return Some(id.to_owned());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn text(&self, element: &str) -> String {
        self.cmd("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn dashboard_shows_a_connected_gateway_and_its_start_button_starts_the_gateway() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _enter = rt.enter();
    let f = rt.block_on(fixture_https(
        "DASH1",
        fast_config(),
        FaultConfig::default(),
    ));
    // The gateway's tasks run on the runtime's workers while this thread drives the browser.
    let g = rt.block_on(RealGateway::connected(&f));
    let server = rt
        .block_on(OperatorServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(f.handle.clone()),
        ))
        .unwrap();
    let url = format!("http://{}/", server.addr());

    let driver = Driver::start();
    driver.cmd("POST", "/url", Some(json!({"url": url})));
    let row = driver
        .find(
            "tr[data-gateway='DASH1'] td.session",
            Duration::from_secs(20),
        )
        .expect("the page shows the gateway from the operator API");
    assert_eq!(driver.text(&row), "connected");
    let periodic = driver
        .find(
            "tr[data-gateway='DASH1'] td.periodic",
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(driver.text(&periodic).contains("stopped"));

    let button = driver
        .find(
            "button[data-cmd='start'][data-gw='DASH1']",
            Duration::from_secs(5),
        )
        .unwrap();
    driver.cmd("POST", &format!("/element/{button}/click"), Some(json!({})));
    // The click reached the gateway as periodic.start, which it applied.
    rt.block_on(g.wait("the click started the gateway", |v| v.running));
    rt.block_on(common::real::wait_for(
        "periodic.start in the access history",
        || !g.received(MessageType::PeriodicStart).is_empty(),
    ));
    let received = g.received(MessageType::PeriodicStart);
    assert_eq!(received.len(), 1, "{received:?}");
    let cmds = f.store().commands(&f.gw).unwrap();
    assert_eq!(cmds.len(), 1);
    assert_eq!(
        (cmds[0].0.as_str(), cmds[0].1.as_str()),
        (received[0].as_str(), "periodic.start")
    );
    // The page shows the effect (the platform's view after the start result) on a refresh.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cell = driver
            .find(
                "tr[data-gateway='DASH1'] td.periodic",
                Duration::from_secs(2),
            )
            .unwrap();
        if driver.text(&cell).contains("running") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the gateway running"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(driver);
    server.shutdown();
}
