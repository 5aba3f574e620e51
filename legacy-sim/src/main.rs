//! `legacy-sim`: the simulated legacy business system's command line (SC-FTP-1): generate CSV,
//! push it to a gateway over FTP/FTPS once or on a schedule, or send bad input on demand.
#![forbid(unsafe_code)]

fn main() {}
