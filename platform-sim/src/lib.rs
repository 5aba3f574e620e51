//! Simulated water platform (水道標準プラットフォーム) for the SGW: its own CA issuing every
//! certificate and the CRL, an embedded MQTT broker with mutual TLS and per-gateway topic
//! isolation, the HTTPS certificate endpoint, and the platform's side of every flow of
//! `docs/protocol.md`, with fault injection.
//!
//! Foundations (this crate so far): [`ca`] (SM-MUTUAL, SEC-CERT-*), [`provision`] (DES-PROV),
//! [`broker`] (SM-TLS, SM-ACL), [`https`] (IF-CERT-1); the platform runtime [`platform`]
//! (every flow's platform side, SQLite store, faults) and its operator API [`ops`] (MON-2).
//!
//! How the pieces fit (what `platform-sim run` does):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use platform_sim::{broker, ca::Ca, https, provision};
//! platform_sim::install_crypto_provider();
//! let mut ca = Ca::open_or_create(std::path::Path::new("/tmp/sim-state"))?;
//! let gw = gateway::protocol::GatewayId::new("GW0001")?;
//! let bundle = provision::provision(&mut ca, &gw, "/tmp/gw0001".as_ref(), &Default::default())?;
//! let mqtt = broker::start(&broker::BrokerSettings::from_ca(&ca, broker::free_loopback_port()?))?;
//! let mut link = mqtt.platform_link("platform")?; // subscribed to /tenants/+/sgw/v1/up/#
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let web = https::serve(listener, https::TlsMaterial::from_ca(&ca)?, https::Published::from_ca(&ca)?).await?;
//! let msg = link.next_inbound().await?;            // an uplink (sealed JWE bytes)
//! let tenant = msg.admit(None, |g| ca.is_gateway_revoked(g))?; // refuse revoked / foreign
//! link.publish(&format!("/tenants/{tenant}/sgw/v1/down/ack"), b"sealed".to_vec())?;
//! ca.revoke_gateway(&gw)?;                         // new CRL on disk…
//! web.publish(https::Published::from_ca(&ca)?)?;   // …served and enforced at the next handshake
//! mqtt.kick(&gw)?;                                 // and the MQTT session dropped
//! # let _ = bundle; Ok(()) }
//! ```
//!
//! The platform runtime ([`platform::Platform`]) does all of the above for every flow, with
//! its SQLite store and faults, and serves the operator API ([`ops`]):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use platform_sim::{broker, ca::Ca, ops, platform};
//! platform_sim::install_crypto_provider();
//! let ca = Ca::open_or_create(std::path::Path::new("/tmp/sim-state"))?;
//! let mqtt = broker::start(&broker::BrokerSettings::from_ca(&ca, broker::free_loopback_port()?))?;
//! let opts = platform::PlatformOptions::new("/tmp/sim-state/platform.sqlite".into());
//! let p = platform::Platform::start(ca, mqtt, None, opts)?;
//! let api = ops::OperatorServer::start(
//!     "127.0.0.1:0".parse()?,
//!     std::sync::Arc::new(p.handle()),
//! )
//! .await?;
//! println!("operator API on http://{}/", api.addr());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod broker;
pub mod ca;
pub mod demo;
pub mod https;
pub mod ops;
pub mod platform;
pub mod provision;

/// Installs aws-lc-rs as the process-wide rustls provider (ignored if one is installed).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
