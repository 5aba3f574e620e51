//! A scripted gateway, for what the real gateway (`gateway::runtime::app`, see `super::real`)
//! never does: a provisioned bundle, rumqttc over mutual TLS with the bundle's client
//! certificate, a [`GatewayCore`] driven by hand with real time, sealing/opening with
//! [`DataSecurity`] loaded from the bundle, and JSON/XML data profiles built with
//! `gateway::profile` from legacy-sim rows whose personal columns are masked. Test knobs: drop
//! the next N data messages, send a profile whose header names another range, ingest rows
//! straight into the core, publish raw payloads, restart from any snapshot (a backup, another
//! epoch). The platform fixture it runs against is `super::fixture`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use gateway::profile::{Column, DataProfile, ProfileHeader};
use gateway::protocol::InboundError;
use gateway::protocol::flow::Time;
use gateway::protocol::gateway_side::{
    GatewayConfig, GatewayCore, GatewayEvent, GatewaySnapshot, Inbound, Transmit,
};
use gateway::protocol::ids::{Dataset, GatewayId, SeqRange, StoreEpoch};
use gateway::protocol::message::{Envelope, MessageType, ProfileFormat};
use gateway::protocol::size::record_wire_bytes;
use gateway::protocol::topic::gateway_subscription;
use gateway::security::xml::XmlCipher;
use gateway::security::{DataSecurity, KeyStore, MaskingKeys};
use platform_sim::provision::Bundle;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tokio::sync::mpsc;

use super::bundle_client_config;

pub fn now() -> Time {
    Utc::now().fixed_offset()
}

// ---------------------------------------------------------------- scripted gateway

#[derive(Debug)]
enum Net {
    ConnAck,
    SubAck,
    Publish { topic: String, payload: Vec<u8> },
    Closed(String),
}

pub struct ScriptedGateway {
    pub id: GatewayId,
    pub core: GatewayCore,
    pub sec: DataSecurity,
    pub bundle: Bundle,
    client: AsyncClient,
    net: mpsc::UnboundedReceiver<Net>,
    /// Stored (masked) rows by seq.
    pub rows: BTreeMap<u64, (legacy_sim::dataset::Dataset, Vec<String>)>,
    /// Down envelopes opened, in arrival order.
    pub received: Vec<Envelope>,
    /// Every event of the core.
    pub events: Vec<GatewayEvent>,
    /// Up messages published: (type, message ID, data range).
    pub sent: Vec<(MessageType, String, Option<SeqRange>)>,
    /// Test knob: the next N data messages are not published (the core thinks they were).
    pub drop_next_data: u32,
    /// Test knob: the next N data messages carry a profile whose header names another range.
    pub mismatch_next_profile: u32,
    pub mqtt_up: bool,
    /// The core's configuration (for restarts).
    pub cfg: GatewayConfig,
}

fn mqtt_client(port: u16, b: &Bundle, id: &str) -> (AsyncClient, mpsc::UnboundedReceiver<Net>) {
    let mut opts = MqttOptions::new(id, "localhost", port);
    opts.set_keep_alive(Duration::from_secs(60));
    opts.set_clean_session(true);
    opts.set_max_packet_size(2 << 20, 2 << 20);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(bundle_client_config(b)),
    )));
    let (client, mut el) = AsyncClient::new(opts, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let ev = match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => Net::ConnAck,
                Ok(Event::Incoming(Packet::SubAck(_))) => Net::SubAck,
                Ok(Event::Incoming(Packet::Publish(p))) => Net::Publish {
                    topic: p.topic.clone(),
                    payload: p.payload.to_vec(),
                },
                Ok(_) => continue,
                Err(e) => {
                    let r = tx.send(Net::Closed(e.to_string()));
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if r.is_err() {
                        return;
                    }
                    continue;
                }
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    (client, rx)
}

impl ScriptedGateway {
    /// A gateway for a provisioned bundle; connects its MQTT client at once.
    pub fn new(b: &Bundle, port: u16) -> Self {
        let id = b.config.gateway.id.clone();
        let keys = KeyStore::load_dir(&b.dir.join("data-protection"), "gateway").unwrap();
        // The utility's masking key is made on the gateway's side, as its operator would with
        // `sgw masking-key new` (SEC-MASK-2: provisioning does not write it).
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
        let sec = DataSecurity::new(keys).with_masking(masking);
        let mut cfg = b.config.protocol_config();
        cfg.connect_timeout_sec = 2;
        // Every scripted gateway is a new store: a new storage epoch (DES-ID-5), distinct per
        // instance and repeatable across runs.
        static STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut epoch = [0x5c; 16];
        epoch[..8].copy_from_slice(&n.to_be_bytes());
        let core = GatewayCore::new(cfg.clone(), StoreEpoch::from_bytes(epoch), now());
        let (client, net) = mqtt_client(port, b, id.as_str());
        ScriptedGateway {
            id,
            core,
            sec,
            bundle: b.clone(),
            client,
            net,
            rows: BTreeMap::new(),
            received: Vec::new(),
            events: Vec::new(),
            sent: Vec::new(),
            drop_next_data: 0,
            mismatch_next_profile: 0,
            mqtt_up: false,
            cfg,
        }
    }

    /// Restarts the gateway process from `snapshot` (its boot count increments; a snapshot
    /// taken earlier stands for a store restored from a backup); connects again at once if
    /// the MQTT link is up. The link itself stays.
    pub fn restart_from(&mut self, snapshot: GatewaySnapshot) {
        self.core = GatewayCore::restore(self.cfg.clone(), snapshot, now());
        if self.mqtt_up {
            self.core.handle_connected(now());
        }
    }

    /// Handles one network event.
    async fn on_net(&mut self, ev: Net) {
        match ev {
            Net::ConnAck => {
                self.client
                    .subscribe(gateway_subscription(&self.id), QoS::AtLeastOnce)
                    .await
                    .unwrap();
            }
            Net::SubAck => {
                self.mqtt_up = true;
                self.core.handle_connected(now());
            }
            Net::Publish { topic, payload } => {
                let opened = std::str::from_utf8(&payload)
                    .ok()
                    .and_then(|t| self.sec.open_message("platform", t, Utc::now()).ok());
                let inbound = match opened {
                    None => Inbound::Refused {
                        topic,
                        error: InboundError::Security,
                        peek: None,
                    },
                    Some(b) => match Envelope::decode(&b) {
                        Ok(env) => {
                            self.received.push(env.clone());
                            Inbound::Opened {
                                topic,
                                envelope: env,
                            }
                        }
                        Err(e) => Inbound::Refused {
                            topic,
                            error: InboundError::Decode(e),
                            peek: gateway::protocol::message::peek(&b),
                        },
                    },
                };
                self.core.handle_inbound(now(), inbound);
            }
            Net::Closed(_) => {
                if self.mqtt_up {
                    self.mqtt_up = false;
                    self.core.handle_disconnected(now());
                }
            }
        }
    }

    /// The dataset's columns as provisioned in `gateway.toml` (in the legacy system's order).
    fn columns(ds: legacy_sim::dataset::Dataset, b: &Bundle) -> Vec<Column> {
        b.config
            .datasets
            .iter()
            .find(|d| d.name.as_str() == ds.name())
            .map(|d| d.columns.clone())
            .unwrap_or_default()
    }

    /// Builds, protects and returns the profile of a data request.
    fn profile(&mut self, dataset: &Dataset, range: SeqRange, format: ProfileFormat) -> String {
        let mut header_range = range;
        if self.mismatch_next_profile > 0 && range.first < range.last {
            self.mismatch_next_profile -= 1;
            header_range.last -= 1;
        }
        let ds = legacy_sim::dataset::Dataset::ALL
            .into_iter()
            .find(|d| d.name() == dataset.as_str())
            .unwrap();
        let records = (header_range.first..=header_range.last)
            .map(|s| self.rows[&s].1.clone())
            .collect();
        let source = self
            .bundle
            .config
            .datasets
            .iter()
            .find(|d| d.name == *dataset)
            .map(|d| d.source_system.as_str().to_owned())
            .unwrap();
        let p = DataProfile {
            header: ProfileHeader {
                gateway_id: self.id.clone(),
                source_system: source,
                dataset: dataset.clone(),
                columns: Self::columns(ds, &self.bundle),
                range: header_range,
                created_at: now(),
            },
            records,
        };
        match format {
            ProfileFormat::Json => self
                .sec
                .seal_json_profile("platform", &p.to_json(), Utc::now())
                .unwrap(),
            ProfileFormat::Xml => self
                .sec
                .seal_xml_profile("platform", &p.to_xml(), XmlCipher::Aes128Cbc, Utc::now())
                .unwrap(),
        }
    }

    /// Drains the core: events are kept, transmits sealed and published.
    pub async fn pump(&mut self) {
        while let Some(e) = self.core.poll_event() {
            self.events.push(e);
        }
        while let Some(t) = self.core.poll_transmit() {
            let (topic, env, range) = match t {
                Transmit::Message { topic, envelope } => (topic, envelope, None),
                Transmit::Data(req) => {
                    if self.drop_next_data > 0 {
                        self.drop_next_data -= 1;
                        self.sent.push((
                            MessageType::Data,
                            format!("dropped:{}", req.message_id),
                            Some(req.range),
                        ));
                        continue;
                    }
                    let profile = self.profile(&req.dataset, req.range, req.format);
                    let range = req.range;
                    (req.topic.clone(), req.into_envelope(profile), Some(range))
                }
            };
            let token = self
                .sec
                .seal_message("platform", &env.encode(), Utc::now())
                .unwrap();
            self.sent
                .push((env.message_type(), env.message_id.to_string(), range));
            let _ = self
                .client
                .publish(topic, QoS::AtLeastOnce, false, token.into_bytes())
                .await;
        }
    }

    /// Drives the gateway (network, timers, outputs) until `cond` holds or `t` elapses.
    pub async fn run_until(&mut self, t: Duration, mut cond: impl FnMut(&Self) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + t;
        loop {
            if self.core.poll_timeout().is_some_and(|d| d <= now()) {
                self.core.handle_timeout(now());
            }
            self.pump().await;
            if cond(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            let wait = self
                .core
                .poll_timeout()
                .map(|d| (d - now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            tokio::select! {
                ev = self.net.recv() => if let Some(ev) = ev { self.on_net(ev).await },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Drives the gateway for `t` regardless.
    pub async fn run_for(&mut self, t: Duration) {
        self.run_until(t, |_| false).await;
    }

    pub fn connected(&self) -> bool {
        self.core.is_connected()
    }

    /// Ingests `n` generated rows of `ds` (personal columns masked); returns their range.
    pub fn ingest(&mut self, ds: legacy_sim::dataset::Dataset, n: usize, seed: u64) -> SeqRange {
        let table = legacy_sim::generate::Table::generate(ds, n, seed);
        let cols = Self::columns(ds, &self.bundle);
        let dataset = Dataset::new(ds.name()).unwrap();
        let masked: Vec<Vec<String>> = table
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
        let sizes: Vec<u32> = masked.iter().map(|r| record_wire_bytes(r)).collect();
        assert_eq!(sizes.len(), n);
        let range = self.core.handle_ingest(now(), &dataset, &sizes).unwrap();
        for (i, row) in masked.into_iter().enumerate() {
            self.rows.insert(range.first + i as u64, (ds, row));
        }
        range
    }

    /// Down envelopes of a type received so far.
    pub fn received_of(&self, ty: MessageType) -> Vec<&Envelope> {
        self.received
            .iter()
            .filter(|e| e.message_type() == ty)
            .collect()
    }

    /// Whether the core acknowledged every record (no unacked left).
    pub fn all_acked(&self) -> bool {
        self.core.unacked_records() == 0
    }

    /// Publishes raw bytes on an uplink topic of this gateway (not through the core).
    pub async fn publish_raw(&self, ty: MessageType, payload: Vec<u8>) {
        let topic = gateway::protocol::topic::topic_for(&self.id, ty);
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
}
