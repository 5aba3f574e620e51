//! Simulated water platform (水道標準プラットフォーム) for the SGW: its own CA issuing every
//! certificate and the CRL, an embedded MQTT broker with mutual TLS and per-gateway topic
//! isolation, the HTTPS certificate endpoint, and the platform's side of every flow of
//! `docs/protocol.md`, with fault injection.
//!
//! Foundations (this crate so far): [`ca`] (SM-MUTUAL, SEC-CERT-*), [`provision`] (DES-PROV),
//! [`broker`] (SM-TLS, SM-ACL), [`https`] (IF-CERT-1).
#![forbid(unsafe_code)]

pub mod broker;
pub mod ca;
pub mod https;
pub mod provision;

/// Installs aws-lc-rs as the process-wide rustls provider (ignored if one is installed).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
