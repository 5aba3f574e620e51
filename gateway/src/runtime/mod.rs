//! The gateway's runtime adapters: the only place with tokio. [`mqtt`] is the MQTT link
//! (rumqttc over mutual TLS), [`driver`] the task that owns the sans-IO
//! [`crate::protocol::GatewayCore`] and carries out what it asks through
//! [`crate::outbound`] (opening and sealing, off the async workers) and a
//! [`driver::RecordStore`].
//!
//! Requirement IDs: IF-CONN-1, IF-PSEND-1..3, IF-PSTART-2, SM-TLS, SM-MUTUAL.

pub mod app;
pub mod certfetch;
#[cfg(feature = "crash-points")]
pub mod crash_points;
pub mod driver;
pub mod ftp;
pub mod monitor;
pub mod mqtt;

/// Installs rustls' process-wide crypto provider (aws-lc-rs) once; rumqttc and the HTTPS
/// client build their configurations with it. Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
