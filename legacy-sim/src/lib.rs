//! Simulated legacy business system (pipe ledger, billing, meter reading) that generates
//! realistic CSV, deterministic by seed, and pushes it to a gateway over FTP or FTPS, with bad
//! inputs on demand (SC-FTP-1). Filled by the simulators issue.
#![forbid(unsafe_code)]
