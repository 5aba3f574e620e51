//! The reference System Gateway (SGW) of the water information utilization system
//! (水道情報活用システム).
//!
//! - [`audit`]: the access history `{state_dir}/audit.jsonl` (SM-AUDIT).
//! - [`broken`]: deliberately wrong behaviours for the conformance suite's tests (feature
//!   `broken-variants`, never in a release build).
//! - [`config`]: `gateway.toml`, the provisioning bundle's settings, as one type (DES-PROV-*).
//! - [`dispose`]: `sgw wipe`, disposal of keys, credentials and stored data (SM-DISPOSE).
//! - [`protocol`]: the sans-IO core of the standard interface protocol v1 (IF-*, DES-*).
//! - [`profile`]: the data profile type and its JSON/XML encodings (DES-PROF-*).
//! - [`security`]: data security — signatures, encryption, masking, certificates (SEC-*).
//! - [`ingest`]: the sans-IO CSV decoder of system connection: decode, check, mask (DES-CSV-*,
//!   SC-ACQ-1).
//! - [`outbound`]: the synchronous edge between the core and data security (opening received
//!   payloads, building and sealing data profiles and envelopes).
//! - [`quarantine`]: refused uploads kept for the utility's staff (DES-FTP-7).
//! - [`south`]: the FTP-library-independent rules of the south interface (names, lockout).
//! - [`runtime`]: the tokio adapters (MQTT link, the driver task that owns the core).
//! - [`store`]: primary storage and evacuation archives (ST-*, DES-EVAC-*), synchronous, on one
//!   owner thread.
#![forbid(unsafe_code)]

pub mod audit;
pub mod broken;
pub mod config;
pub mod dispose;
pub mod ingest;
pub mod outbound;
pub mod profile;
pub mod protocol;
pub mod quarantine;
pub mod runtime;
pub mod security;
pub mod south;
pub mod store;
