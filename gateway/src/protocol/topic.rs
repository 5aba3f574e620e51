//! The MQTT topic tree (DES-MQTT-3, DES-MQTT-4; realises SM-ACL and SM-ID).
//!
//! Every topic of a gateway lives under `/tenants/{gatewayId}/sgw/v1/`, so the broker's
//! tenant-prefix rule (the client certificate's subject O must equal `{gatewayId}`) confines
//! a gateway to its own subtree:
//!
//! | direction | topic | publisher | subscriber |
//! |---|---|---|---|
//! | up | `/tenants/{gw}/sgw/v1/up/{type}` | gateway | platform (`/tenants/+/sgw/v1/up/#`) |
//! | down | `/tenants/{gw}/sgw/v1/down/{type}` | platform | gateway (`/tenants/{gw}/sgw/v1/down/#`) |

use super::ids::GatewayId;
use super::message::{Direction, MessageType};

/// Topic levels after the tenant (DES-MQTT-3).
pub const ROOT: &str = "sgw/v1";

/// The topic a message of type `ty` for gateway `gw` is published on.
pub fn topic_for(gw: &GatewayId, ty: MessageType) -> String {
    let dir = match ty.direction() {
        Direction::Up => "up",
        Direction::Down => "down",
    };
    format!("/tenants/{gw}/{ROOT}/{dir}/{}", ty.as_str())
}

/// The filter a gateway subscribes to for its commands and replies.
pub fn gateway_subscription(gw: &GatewayId) -> String {
    format!("/tenants/{gw}/{ROOT}/down/#")
}

/// The filter the platform subscribes to for every gateway's messages.
pub fn platform_subscription() -> String {
    format!("/tenants/+/{ROOT}/up/#")
}

/// A topic taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedTopic {
    /// The tenant, i.e. the gateway.
    pub gateway: GatewayId,
    /// Which way.
    pub direction: Direction,
    /// The type named by the last level (`None` if this peer does not know it).
    pub message_type: Option<MessageType>,
    /// The last level as written.
    pub type_level: String,
}

/// Why a topic is not one of the tree (DES-MQTT-3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// DES-MQTT-3: the topic is not `/tenants/{gw}/sgw/v1/{up|down}/{type}`.
    #[error("DES-MQTT-3: topic {0:?} is outside the SGW tree")]
    Shape(String),
    /// DES-ID-1: the tenant level is not a valid gateway ID.
    #[error("DES-ID-1: topic {0:?} has an invalid gateway ID")]
    Gateway(String),
}

/// Parses a topic of the tree.
pub fn parse_topic(topic: &str) -> Result<ParsedTopic, TopicError> {
    let shape = || TopicError::Shape(topic.to_owned());
    let rest = topic.strip_prefix("/tenants/").ok_or_else(shape)?;
    let mut parts = rest.split('/');
    let gw = parts.next().ok_or_else(shape)?;
    let (Some("sgw"), Some("v1"), Some(dir), Some(ty), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(shape());
    };
    let gateway = GatewayId::new(gw).map_err(|_| TopicError::Gateway(topic.to_owned()))?;
    let direction = match dir {
        "up" => Direction::Up,
        "down" => Direction::Down,
        _ => return Err(shape()),
    };
    if ty.is_empty() {
        return Err(shape());
    }
    Ok(ParsedTopic {
        gateway,
        direction,
        message_type: MessageType::from_wire(ty),
        type_level: ty.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_type_round_trips_through_its_topic() {
        let gw = GatewayId::new("GW0001").unwrap();
        for &ty in MessageType::ALL {
            let t = topic_for(&gw, ty);
            let p = parse_topic(&t).unwrap();
            assert_eq!(p.gateway, gw);
            assert_eq!(p.message_type, Some(ty));
            assert_eq!(p.direction, ty.direction());
        }
    }

    #[test]
    fn topics_outside_the_tree_are_refused() {
        for t in [
            "tenants/GW1/sgw/v1/up/data",
            "/tenants/GW-1/sgw/v1/up/data",
            "/tenants/GW1/sgw/v2/up/data",
            "/tenants/GW1/sgw/v1/sideways/data",
            "/tenants/GW1/sgw/v1/up/data/extra",
            "/tenants/GW1/sgw/v1/up/",
        ] {
            assert!(parse_topic(t).is_err(), "{t}");
        }
    }
}
