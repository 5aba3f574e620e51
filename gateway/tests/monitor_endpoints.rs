//! The local monitoring endpoints (MON-1, SM-PORTS): `/healthz` follows the health of
//! DES-MSG-MON-1 and `/metrics` is Prometheus text that curl fetches, with the figures set.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::sync::Arc;

use gateway::protocol::message::HealthState;
use gateway::runtime::monitor::{Metrics, MonitorError, serve};

async fn curl(url: String) -> (String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", &url])
            .output()
            .expect("curl is installed (.ci/run)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (body.to_owned(), code.to_owned())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_figures_set_and_health_follows_the_state() {
    let m = Arc::new(Metrics::new().unwrap());
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), m.clone())
        .await
        .unwrap();
    let (body, code) = curl(format!("http://{addr}/metrics")).await;
    assert_eq!(code, "200");
    assert!(
        body.contains("# TYPE sgw_files_accepted_total counter"),
        "{body}"
    );
    assert!(body.contains("sgw_files_accepted_total 0"), "{body}");

    m.files_accepted.inc();
    m.files_accepted.inc();
    m.last_seq.set(1234);
    m.cert_expiry_seconds
        .with_label_values(&["tls-client"])
        .set(86_400);
    let (body, _) = curl(format!("http://{addr}/metrics")).await;
    assert!(body.contains("sgw_files_accepted_total 2"), "{body}");
    assert!(body.contains("sgw_last_seq 1234"), "{body}");
    assert!(
        body.contains("sgw_certificate_expiry_seconds{name=\"tls-client\"} 86400"),
        "{body}"
    );

    assert_eq!(
        curl(format!("http://{addr}/healthz")).await,
        ("ok\n".into(), "200".into())
    );
    m.set_health(HealthState::Degraded);
    assert_eq!(
        curl(format!("http://{addr}/healthz")).await,
        ("degraded\n".into(), "200".into())
    );
    m.set_health(HealthState::Failed);
    assert_eq!(
        curl(format!("http://{addr}/healthz")).await,
        ("failed\n".into(), "503".into())
    );
}

#[tokio::test]
async fn the_endpoints_refuse_to_listen_anywhere_but_loopback() {
    let m = Arc::new(Metrics::new().unwrap());
    match serve("0.0.0.0:0".parse().unwrap(), m).await {
        Err(MonitorError::NotLoopback(_)) => {}
        other => panic!("{:?}", other.map(|r| r.0)),
    }
}
