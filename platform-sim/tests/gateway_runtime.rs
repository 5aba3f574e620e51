//! The real gateway runtime (`gateway::runtime`: MQTT link over mutual TLS, the driver task
//! owning `GatewayCore`, opening and sealing through `gateway::outbound`) against the platform
//! simulator (IF-CONN-1, IF-PSTART-1..4, IF-PSEND-1..3, IF-PSTOP-1, IF-DISC-1, ST-STORE-1):
//! every record is checked field by field in the platform's SQLite store. Storage here is an
//! in-memory `RecordStore` (the SQLite store is wired in by the runtime issue); what is under
//! test is the link, the driver's ordering and the outbound builder.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::scripted::{env, fast_config, fixture, serial};
use gateway::outbound::DatasetProfile;
use gateway::profile::Column;
use gateway::protocol::gateway_side::{GatewayCore, GatewayEvent, GatewaySnapshot};
use gateway::protocol::ids::{Dataset, SeqRange, StoreEpoch};
use gateway::protocol::message::ProfileFormat;
use gateway::protocol::size::record_wire_bytes;
use gateway::runtime::driver::{Driver, DriverHandle, RecordStore};
use gateway::runtime::monitor::Metrics;
use gateway::runtime::mqtt::Link;
use gateway::security::xml::XmlCipher;
use gateway::security::{DataSecurity, KeyStore, MaskingKeys};
use legacy_sim::dataset::Dataset as Ds;
use platform_sim::ops::{FaultConfig, OperatorBackend, OperatorCommand};
use platform_sim::provision::Bundle;

const T: Duration = Duration::from_secs(15);

/// Records by seq and the last snapshot, in memory; counts what the driver asked of it.
#[derive(Default)]
struct MemStore {
    rows: Mutex<BTreeMap<u64, (String, Vec<String>)>>,
    snapshot: Mutex<Option<GatewaySnapshot>>,
    acked: Mutex<Vec<SeqRange>>,
    snapshots_saved: Mutex<u64>,
}

impl RecordStore for MemStore {
    fn records(
        &self,
        dataset: &Dataset,
        range: SeqRange,
        _archived: bool,
    ) -> Result<Vec<Vec<String>>, String> {
        let rows = self.rows.lock().unwrap();
        (range.first..=range.last)
            .map(|s| match rows.get(&s) {
                Some((d, f)) if d == dataset.as_str() => Ok(f.clone()),
                _ => Err(format!("seq {s} of {dataset} not stored")),
            })
            .collect()
    }
    fn save_snapshot(&self, snapshot: &GatewaySnapshot) -> Result<(), String> {
        *self.snapshot.lock().unwrap() = Some(snapshot.clone());
        *self.snapshots_saved.lock().unwrap() += 1;
        Ok(())
    }
    fn on_event(&self, event: &GatewayEvent) -> Result<(), String> {
        if let GatewayEvent::RecordsAcked { range, .. } = event {
            self.acked.lock().unwrap().push(*range);
        }
        Ok(())
    }
}

/// The dataset's columns as provisioned in `gateway.toml` (in the legacy system's order).
fn columns(ds: Ds, b: &Bundle) -> Vec<Column> {
    b.config
        .datasets
        .iter()
        .find(|d| d.name.as_str() == ds.name())
        .map(|d| d.columns.clone())
        .unwrap_or_default()
}

struct Gw {
    handle: DriverHandle,
    task: tokio::task::JoinHandle<()>,
    store: Arc<MemStore>,
    sec: Arc<DataSecurity>,
    bundle: Bundle,
    metrics: Arc<Metrics>,
}

fn security(b: &Bundle) -> DataSecurity {
    let keys = KeyStore::load_dir(&b.dir.join("data-protection"), "gateway").unwrap();
    // The utility's masking key is made on the gateway's side (`sgw masking-key new`).
    let m = &b.config.masking;
    if !m
        .keys_dir
        .path()
        .join(format!("{}.key", m.active_key))
        .exists()
    {
        gateway::config::new_masking_key(&b.dir, None).unwrap();
    }
    let masking = MaskingKeys::load_dir(m.keys_dir.path(), m.active_key.as_str()).unwrap();
    DataSecurity::new(keys).with_masking(masking)
}

/// Starts the real runtime for bundle `b`: from `snapshot` if given (a restart), else new.
fn start_gateway(b: &Bundle, store: Arc<MemStore>, snapshot: Option<GatewaySnapshot>) -> Gw {
    let mut cfg = b.config.protocol_config();
    cfg.connect_timeout_sec = 2;
    let now = chrono::Utc::now().fixed_offset();
    let core = match snapshot {
        Some(s) => GatewayCore::restore(cfg, s, now),
        None => GatewayCore::new(cfg, StoreEpoch::from_bytes([0x7e; 16]), now),
    };
    let mut settings = b.config.link_settings(7);
    assert_eq!(settings.port, env().broker.addr().port());
    settings.keep_alive_sec = 30;
    let link = Link::start(&settings).unwrap();
    let mut profiles = HashMap::new();
    for ds in Ds::ALL {
        if let Some(d) = b
            .config
            .datasets
            .iter()
            .find(|d| d.name.as_str() == ds.name())
        {
            profiles.insert(
                Dataset::new(ds.name()).unwrap(),
                DatasetProfile {
                    source_system: d.source_system.as_str().to_owned(),
                    columns: columns(ds, b),
                    xml_cipher: XmlCipher::Aes128Cbc,
                },
            );
        }
    }
    let sec = Arc::new(security(b));
    let metrics = Arc::new(Metrics::new().unwrap());
    let cell = Arc::new(arc_swap::ArcSwap::new(sec.clone()));
    let (driver, handle) = Driver::new(core, cell, store.clone(), link, profiles);
    let task = tokio::spawn(driver.with_metrics(metrics.clone()).run());
    Gw {
        handle,
        task,
        store,
        sec,
        bundle: b.clone(),
        metrics,
    }
}

impl Gw {
    /// Generates `n` rows of `ds`, masks the personal columns, stores them, tells the core.
    async fn ingest(&self, ds: Ds, n: usize, seed: u64) -> SeqRange {
        let table = legacy_sim::generate::Table::generate(ds, n, seed);
        let cols = columns(ds, &self.bundle);
        let rows: Vec<Vec<String>> = table
            .rows
            .into_iter()
            .map(|row| {
                row.iter()
                    .zip(&cols)
                    .map(|(v, c)| {
                        if c.masked {
                            self.sec.mask(&c.name, v).unwrap()
                        } else {
                            v.clone()
                        }
                    })
                    .collect()
            })
            .collect();
        let sizes = rows.iter().map(|r| record_wire_bytes(r)).collect();
        let last = self.handle.inspect().await.unwrap().last_seq;
        {
            let mut m = self.store.rows.lock().unwrap();
            for (i, r) in rows.into_iter().enumerate() {
                m.insert(last + 1 + i as u64, (ds.name().to_owned(), r));
            }
        }
        let range = self
            .handle
            .ingest(Dataset::new(ds.name()).unwrap(), sizes)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(range.first, last + 1, "seqs follow the store's rows");
        range
    }

    async fn wait(&self, what: &str, cond: impl Fn(&gateway::runtime::driver::CoreView) -> bool) {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let v = self.handle.inspect().await.unwrap();
            if cond(&v) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out: {what} ({v:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn start_cmd(format: ProfileFormat) -> OperatorCommand {
    OperatorCommand::Start {
        datasets: vec![],
        interval_sec: 1,
        format,
    }
}

/// The records `first..=last` in the platform's store equal the gateway's rows, each once.
fn assert_stored(f: &common::scripted::Fixture, store: &MemStore, first: u64, last: u64) {
    let rows = f.store().records(&f.gw).unwrap();
    let mine = store.rows.lock().unwrap();
    for seq in first..=last {
        let stored: Vec<_> = rows.iter().filter(|r| r.seq == seq).collect();
        assert_eq!(stored.len(), 1, "seq {seq} stored {} times", stored.len());
        let (ds, fields) = &mine[&seq];
        assert_eq!(&stored[0].dataset, ds);
        assert_eq!(&stored[0].fields, fields, "seq {seq}");
    }
}

#[tokio::test]
async fn the_real_runtime_connects_sends_json_and_xml_data_that_the_platform_stores_and_disconnects()
 {
    let _s = serial().await;
    let f = fixture("RTGW1", fast_config(), FaultConfig::default());
    let g = start_gateway(&f.bundle, Arc::new(MemStore::default()), None);
    g.wait("session", |v| v.connected).await;
    assert!(f.handle.view(&f.gw).connected);

    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    g.wait("periodic running", |v| v.running).await;
    let a = g.ingest(Ds::Billing, 30, 11).await;
    g.wait("json data acknowledged", |v| v.unacked == 0).await;
    assert_stored(&f, &g.store, a.first, a.last);
    // Masked columns reached the platform masked: the stored name is not the generated one.
    let clear = legacy_sim::generate::Table::generate(Ds::Billing, 30, 11);
    let name = Ds::Billing
        .columns()
        .iter()
        .position(|c| c.name == "name")
        .unwrap();
    let stored = f.store().records(&f.gw).unwrap();
    assert!(
        stored
            .iter()
            .all(|r| r.fields[name] != clear.rows[(r.seq - a.first) as usize][name]),
        "a masked column reached the platform in clear"
    );

    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Xml))
        .unwrap();
    g.wait("xml start applied", |v| v.running).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = g.ingest(Ds::PipeLedger, 12, 12).await;
    g.wait("xml data acknowledged", |v| v.unacked == 0).await;
    assert_stored(&f, &g.store, b.first, b.last);
    // The local metrics tell the same facts (MON-1).
    let text = g.metrics.render();
    assert!(text.contains("sgw_connected 1"), "{text}");
    assert!(text.contains(&format!("sgw_last_seq {}", b.last)), "{text}");
    assert!(text.contains("sgw_unacked_records 0"), "{text}");
    assert_eq!(
        *g.store.acked.lock().unwrap().last().unwrap(),
        b,
        "storage was told of the acknowledgement"
    );

    // Clean shutdown: disconnect → disconnect.result, the platform closes the session.
    g.handle.shutdown().await;
    g.task.await.unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while f.handle.view(&f.gw).connected {
        assert!(tokio::time::Instant::now() < deadline, "session not closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_restarted_runtime_resumes_from_its_snapshot_without_reusing_a_sequence_number() {
    let _s = serial().await;
    let f = fixture("RTGW2", fast_config(), FaultConfig::default());
    let store = Arc::new(MemStore::default());
    let g = start_gateway(&f.bundle, store.clone(), None);
    g.wait("session", |v| v.connected).await;
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    g.wait("running", |v| v.running).await;
    let a = g.ingest(Ds::Billing, 10, 21).await;
    g.wait("acknowledged", |v| v.unacked == 0).await;
    // kill: the task is aborted, no disconnect (what survives is the saved snapshot).
    g.task.abort();
    let _ = g.task.await;
    drop(g.handle);
    let snap = store
        .snapshot
        .lock()
        .unwrap()
        .clone()
        .expect("a snapshot was saved");
    assert!(*store.snapshots_saved.lock().unwrap() >= 2);

    let g2 = start_gateway(&f.bundle, store.clone(), Some(snap));
    g2.wait("session again", |v| v.connected && v.running).await;
    let b = g2.ingest(Ds::Billing, 5, 22).await;
    assert_eq!(b.first, a.last + 1, "seqs continue after the restart");
    g2.wait("acknowledged after restart", |v| v.unacked == 0)
        .await;
    assert_stored(&f, &store, a.first, b.last);
    g2.handle.shutdown().await;
}

/// The CRL number of the CRL `sec` holds.
fn held_crl_number(sec: &DataSecurity) -> String {
    let crl = sec.keys().crl().expect("a CRL is held");
    gateway::security::cert::crl_number(crl)
        .unwrap()
        .unwrap()
        .to_dec_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_certificate_refresh_installs_a_newer_crl_refuses_a_rollback_and_a_revoked_gateway_is_refused_at_the_handshake()
 {
    use gateway::runtime::certfetch::CertFetcher;
    use platform_sim::ca::Ca;
    use platform_sim::https::Published;
    let _s = serial().await;
    let f = common::scripted::fixture_https("RTGW3", fast_config(), FaultConfig::default()).await;
    let https = f.platform.https().unwrap();
    let b = &f.bundle;
    let tls = b.config.link_settings(0).tls;
    let fetcher =
        CertFetcher::new(&format!("https://localhost:{}", https.addr().port()), tls).unwrap();
    let cell = arc_swap::ArcSwap::from_pointee(security(b));
    let now = chrono::Utc::now;

    // First round: the platform certificate passes DES-CERT-4 with its role; nothing refused.
    let r = fetcher.refresh(&cell, now()).await;
    assert!(r.platform_installed, "{r:?}");
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let before = held_crl_number(&cell.load());

    // The CA signs a newer CRL: installed.
    let old_published = Published::from_ca(&Ca::open(&env().ca_dir).unwrap()).unwrap();
    let mut ca = Ca::open(&env().ca_dir).unwrap();
    ca.sign_crl().unwrap();
    https.publish(Published::from_ca(&ca).unwrap()).unwrap();
    let r = fetcher.refresh(&cell, now()).await;
    assert!(r.crl_installed, "{r:?}");
    let after = held_crl_number(&cell.load());
    assert_ne!(before, after, "the held CRL is the newer one");

    // The endpoint serves the older CRL again (a stale cache, an attacker): refused, kept.
    https.publish(old_published).unwrap();
    let r = fetcher.refresh(&cell, now()).await;
    assert!(!r.crl_installed);
    assert!(
        r.findings
            .iter()
            .any(|x| x.what == "crl" && x.rule == "DES-CERT-3"),
        "rollback not refused: {:?}",
        r.findings
    );
    assert_eq!(held_crl_number(&cell.load()), after);

    // The gateway is revoked: the endpoint refuses it at the TLS handshake (DES-CERT-5).
    let mut ca = Ca::open(&env().ca_dir).unwrap();
    ca.revoke_gateway(&f.gw).unwrap();
    https.publish(Published::from_ca(&ca).unwrap()).unwrap();
    match fetcher.get("/sgw/v1/certs/platform.pem", None).await {
        Err(gateway::runtime::certfetch::FetchError::Connect(_)) => {}
        other => panic!("a revoked gateway fetched: {other:?}"),
    }
}
