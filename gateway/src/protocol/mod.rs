//! The sans-IO protocol core of SGW standard interface protocol v1 (`docs/protocol.md`).
//!
//! Typed messages with a strict codec ([`message`]), identifiers ([`ids`]), the topic tree
//! ([`topic`]), and each flow as a state machine for both sides: the gateway's and the
//! platform's, side by side so they cannot drift. Nothing here does I/O or reads a clock:
//! inputs (`handle_*`) take the current time, outputs come from `poll_*`.

pub mod ids;
pub mod message;
pub mod topic;

pub use ids::{Dataset, GatewayId, IdError, MessageId, Seq, SeqRange};
pub use message::{Body, DecodeError, Envelope, MessageType, Outcome, ResultCode};
