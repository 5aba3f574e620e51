//! The operator dashboard in a real browser (MON-2): headless Debian Chromium driven over the
//! W3C WebDriver protocol by chromedriver. The page must load, show a gateway from the
//! operator API, and a command clicked on it must reach the platform backend.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (installed by `.ci/run`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::protocol::ids::GatewayId;
use gateway::protocol::message::PeriodicState;
use platform_sim::ops::{
    CommandReceipt, FaultConfig, GatewayView, OperatorBackend, OperatorCommand, OperatorError,
    OperatorServer,
};
use serde_json::{Value, json};

/// A backend holding one gateway whose periodic state a `start` command flips, so the page's
/// click is observable both in the backend and back on the page.
struct OneGateway {
    view: Mutex<GatewayView>,
    commands: Mutex<Vec<OperatorCommand>>,
}

impl OperatorBackend for OneGateway {
    fn gateways(&self) -> Vec<GatewayView> {
        vec![self.view.lock().unwrap().clone()]
    }
    fn command(
        &self,
        gw: &GatewayId,
        cmd: OperatorCommand,
    ) -> Result<CommandReceipt, OperatorError> {
        let mut view = self.view.lock().unwrap();
        if &view.gateway_id != gw {
            return Err(OperatorError::UnknownGateway(gw.to_string()));
        }
        if let OperatorCommand::Start { interval_sec, .. } = &cmd {
            view.periodic.running = true;
            view.periodic.interval_sec = *interval_sec;
        }
        self.commands.lock().unwrap().push(cmd);
        Ok(CommandReceipt {
            message_id: Some("p-1".into()),
            detail: "sent".into(),
        })
    }
    fn faults(&self) -> FaultConfig {
        FaultConfig::default()
    }
    fn set_faults(&self, _: FaultConfig) -> Result<(), OperatorError> {
        Ok(())
    }
}

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
fn dashboard_shows_a_gateway_and_its_start_button_sends_a_start_command() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gw = GatewayId::new("GW0042").unwrap();
    let backend = Arc::new(OneGateway {
        view: Mutex::new(GatewayView {
            gateway_id: gw.clone(),
            connected: true,
            revoked: false,
            last_seen: None,
            periodic: PeriodicState::default(),
            pending_command: None,
            records: Default::default(),
            highest_seq: 0,
            gaps: vec![],
            anomalies: vec![],
            last_status: None,
            certificates: vec![],
        }),
        commands: Mutex::new(vec![]),
    });
    let server = rt
        .block_on(OperatorServer::start(
            "127.0.0.1:0".parse().unwrap(),
            backend.clone(),
        ))
        .unwrap();
    let url = format!("http://{}/", server.addr());

    let driver = Driver::start();
    driver.cmd("POST", "/url", Some(json!({"url": url})));
    let row = driver
        .find(
            "tr[data-gateway='GW0042'] td.session",
            Duration::from_secs(20),
        )
        .expect("the page shows the gateway from the operator API");
    assert_eq!(driver.text(&row), "connected");
    let periodic = driver
        .find(
            "tr[data-gateway='GW0042'] td.periodic",
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(driver.text(&periodic).contains("stopped"));

    let button = driver
        .find(
            "button[data-cmd='start'][data-gw='GW0042']",
            Duration::from_secs(5),
        )
        .unwrap();
    driver.cmd("POST", &format!("/element/{button}/click"), Some(json!({})));

    let deadline = Instant::now() + Duration::from_secs(15);
    while backend.commands.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the click never reached the operator API"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(matches!(
        backend.commands.lock().unwrap()[0],
        OperatorCommand::Start {
            interval_sec: 10,
            ..
        }
    ));
    // The page shows the effect on its next refresh.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cell = driver
            .find(
                "tr[data-gateway='GW0042'] td.periodic",
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
