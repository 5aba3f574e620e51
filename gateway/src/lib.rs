//! The reference System Gateway (SGW) of the water information utilization system
//! (水道情報活用システム).
//!
//! - [`config`]: `gateway.toml`, the provisioning bundle's settings, as one type (DES-PROV-*).
//! - [`protocol`]: the sans-IO core of the standard interface protocol v1 (IF-*, DES-*).
//! - [`profile`]: the data profile type and its JSON/XML encodings (DES-PROF-*).
//! - [`security`]: data security — signatures, encryption, masking, certificates (SEC-*).
//!
//! Storage, system connection (FTP), monitoring and the tokio runtime follow in later
//! issues; see the README for what runs today.
#![forbid(unsafe_code)]

pub mod config;
pub mod profile;
pub mod protocol;
pub mod security;
