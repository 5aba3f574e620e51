//! The reference System Gateway (SGW) of the water information utilization system
//! (水道情報活用システム).
//!
//! - [`protocol`]: the sans-IO core of the standard interface protocol v1 (IF-*, DES-*).
//! - [`profile`]: the data profile type and its JSON/XML encodings (DES-PROF-*).
//! - [`security`]: data security — signatures, encryption, masking, certificates (SEC-*).
//! - [`store`]: primary storage and evacuation archives (ST-*, DES-EVAC-*), synchronous, on one
//!   owner thread.
//!
//! System connection (FTP), monitoring and the tokio runtime follow in later
//! issues; see the README for what runs today.
#![forbid(unsafe_code)]

pub mod profile;
pub mod protocol;
pub mod security;
pub mod store;
