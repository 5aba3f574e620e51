//! The sans-IO protocol core of SGW standard interface protocol v1 (`docs/protocol.md`).
//!
//! Typed messages with a strict codec ([`message`]), identifiers ([`ids`]), the topic tree
//! ([`topic`]), and each flow as a state machine for both sides: the gateway's
//! ([`gateway_side::GatewayCore`]) and the platform's ([`platform_side::PlatformCore`]), side
//! by side so they cannot drift, with what they share in [`flow`]. Nothing here does I/O or
//! reads a clock: inputs (`handle_*`) take the current time, outputs come from `poll_*`.
//! `docs/model-checking.md` describes how the two are checked together.

pub mod flow;
pub mod gateway_side;
pub mod ids;
pub mod message;
pub mod platform_side;
pub mod size;
pub mod topic;

pub use flow::{InboundError, RangeSet, Time};
pub use gateway_side::{GatewayConfig, GatewayCore, GatewayEvent, GatewaySnapshot, Transmit};
pub use ids::{Dataset, GatewayId, IdError, MessageId, Seq, SeqRange, StoreEpoch};
pub use message::{Body, DecodeError, Envelope, MessageType, Outcome, Peek, ResultCode, peek};
pub use platform_side::{PlatformConfig, PlatformCore, PlatformEvent};

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod platform_tests;
