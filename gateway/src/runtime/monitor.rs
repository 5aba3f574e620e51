//! Local monitoring endpoints (MON-1): `/healthz` and Prometheus `/metrics` on a loopback
//! port, from the `prometheus` crate's registry (no hand-formatted text). The figures are the
//! ones `monitor.status` reports to the platform (DES-MSG-MON-1), so an operator on the
//! gateway's host and the platform see the same facts.
//!
//! `/healthz`: `200 ok` or `200 degraded` (still working), `503 failed` (no session possible:
//! a lasting connect refusal, DES-MSG-CONN-3) — the health of DES-MSG-MON-1. `/status`: the
//! `monitor.status` body (JSON, DES-MSG-MON-1) as of the last status refresh (every 5 s), what
//! `sgw status --monitor` prints; `503` before the first refresh.
//!
//! Requirement IDs: MON-1, SM-PORTS (loopback only).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::protocol::message::{HealthState, MonitorStatus};

/// Why the endpoints could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// SM-PORTS: the monitoring endpoints listen on loopback only.
    #[error("SM-PORTS: monitoring address {0} is not a loopback address")]
    NotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("MON-1: cannot listen on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// A metric could not be registered (a programming error).
    #[error("MON-1: metrics registry: {0}")]
    Registry(#[from] prometheus::Error),
}

/// The gateway's metrics (names `sgw_*`), updated by the driver and the FTP server.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// CSV files accepted (`filesAccepted`).
    pub files_accepted: IntCounter,
    /// CSV files refused (`filesRejected`).
    pub files_rejected: IntCounter,
    /// Records ingested.
    pub records_ingested: IntCounter,
    /// Anomalies detected (`anomalies`).
    pub anomalies: IntCounter,
    /// Data messages published for the first time (periodic and resend).
    pub data_sent: IntCounter,
    /// Data messages published again (DES-MSG-DATA-3).
    pub data_retransmitted: IntCounter,
    /// Records the platform acknowledged (`data.ack` OK, or `ackedThrough`).
    pub records_acked: IntCounter,
    /// 1 while a session with the platform is open.
    pub connected: IntGauge,
    /// 1 while periodic sending runs.
    pub periodic_running: IntGauge,
    /// Highest sequence number assigned (`lastSeq`).
    pub last_seq: IntGauge,
    /// Records not yet acknowledged by the platform.
    pub unacked_records: IntGauge,
    /// Records held after a give-up (`storage.held`, DES-MSG-DATA-5).
    pub held_records: IntGauge,
    /// Bytes used by primary storage (`storage.bytes`).
    pub storage_bytes: IntGauge,
    /// Bytes free on the store's file system (`storage.freeBytes`).
    pub free_bytes: IntGauge,
    /// Age of the oldest unacknowledged record, seconds (`storage.oldestUnackedSec`).
    pub oldest_unacked_seconds: IntGauge,
    /// Seconds until each certificate expires, by name (`certificates`).
    pub cert_expiry_seconds: IntGaugeVec,
    health: Arc<RwLock<HealthState>>,
    status: Arc<RwLock<Option<String>>>,
}

impl Metrics {
    /// A fresh registry with every metric at 0 and health `ok`.
    pub fn new() -> Result<Self, MonitorError> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> Result<IntCounter, MonitorError> {
            let c = IntCounter::with_opts(Opts::new(name, help))?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, MonitorError> {
            let g = IntGauge::with_opts(Opts::new(name, help))?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let files_accepted = counter("sgw_files_accepted_total", "CSV files accepted (226)")?;
        let files_rejected = counter("sgw_files_rejected_total", "CSV files refused (4xx/5xx)")?;
        let records_ingested = counter("sgw_records_ingested_total", "records stored")?;
        let anomalies = counter("sgw_anomalies_total", "anomalies detected")?;
        let data_sent = counter(
            "sgw_data_messages_sent_total",
            "data messages published for the first time",
        )?;
        let data_retransmitted = counter(
            "sgw_data_messages_retransmitted_total",
            "data messages published again (no data.ack in time)",
        )?;
        let records_acked = counter(
            "sgw_records_acked_total",
            "records acknowledged by the platform",
        )?;
        let connected = gauge(
            "sgw_connected",
            "1 while a session with the platform is open",
        )?;
        let periodic_running = gauge("sgw_periodic_running", "1 while periodic sending runs")?;
        let last_seq = gauge("sgw_last_seq", "highest sequence number assigned")?;
        let unacked_records = gauge("sgw_unacked_records", "records not yet acknowledged")?;
        let held_records = gauge("sgw_held_records", "records held after a give-up")?;
        let storage_bytes = gauge("sgw_storage_bytes", "bytes used by primary storage")?;
        let free_bytes = gauge(
            "sgw_free_bytes",
            "bytes free on the file system of primary storage",
        )?;
        let oldest_unacked_seconds = gauge(
            "sgw_oldest_unacked_seconds",
            "age of the oldest unacknowledged record (0: none)",
        )?;
        let cert_expiry_seconds = IntGaugeVec::new(
            Opts::new(
                "sgw_certificate_expiry_seconds",
                "seconds until the certificate expires (negative: expired)",
            ),
            &["name"],
        )?;
        registry.register(Box::new(cert_expiry_seconds.clone()))?;
        Ok(Self {
            registry,
            files_accepted,
            files_rejected,
            records_ingested,
            anomalies,
            data_sent,
            data_retransmitted,
            records_acked,
            connected,
            periodic_running,
            last_seq,
            unacked_records,
            held_records,
            storage_bytes,
            free_bytes,
            oldest_unacked_seconds,
            cert_expiry_seconds,
            health: Arc::new(RwLock::new(HealthState::Ok)),
            status: Arc::new(RwLock::new(None)),
        })
    }

    /// Sets the health reported by `/healthz`.
    pub fn set_health(&self, h: HealthState) {
        if let Ok(mut g) = self.health.write() {
            *g = h;
        }
    }

    /// Keeps `status` for `/status` (its JSON, as on the wire).
    pub fn set_status(&self, status: &MonitorStatus) {
        let json = serde_json::to_string_pretty(status).ok();
        if let Ok(mut g) = self.status.write() {
            *g = json;
        }
    }

    /// The last status kept by [`Metrics::set_status`], as JSON.
    pub fn status_json(&self) -> Option<String> {
        self.status.read().ok().and_then(|g| g.clone())
    }

    /// The current health.
    pub fn health(&self) -> HealthState {
        self.health
            .read()
            .map(|g| *g)
            .unwrap_or(HealthState::Failed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

async fn healthz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    match m.health() {
        HealthState::Ok => (StatusCode::OK, "ok\n"),
        HealthState::Degraded => (StatusCode::OK, "degraded\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "failed\n"),
    }
}

async fn status(State(m): State<Arc<Metrics>>) -> axum::response::Response {
    match m.status_json() {
        Some(j) => ([(header::CONTENT_TYPE, "application/json")], j).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no status yet\n").into_response(),
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

/// Binds `addr` (loopback only) and serves `/healthz` and `/metrics`; returns the bound address
/// and the serving task.
pub async fn serve(
    addr: SocketAddr,
    m: Arc<Metrics>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), MonitorError> {
    if !addr.ip().is_loopback() {
        return Err(MonitorError::NotLoopback(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| MonitorError::Bind(addr, e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| MonitorError::Bind(addr, e))?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(m);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(rule = "MON-1", error = %e, "monitoring endpoint stopped");
        }
    });
    Ok((bound, task))
}
