//! The SGW certification suite: drives a gateway (ours in-process, or a vendor's binary or
//! address) through every flow of `docs/protocol.md` with the platform and legacy simulators as
//! its peers, and writes JSON, JUnit XML and HTML reports. Filled by the conformance issue.
#![forbid(unsafe_code)]
