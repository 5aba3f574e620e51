//! Simulated water platform (水道標準プラットフォーム) for the SGW: its own CA issuing every
//! certificate and the CRL, an embedded MQTT broker with mutual TLS and per-gateway topic
//! isolation, the HTTPS certificate endpoint, and the platform's side of every flow of
//! `docs/protocol.md`, with fault injection. Filled by the simulators issue.
#![forbid(unsafe_code)]
pub mod ops;
