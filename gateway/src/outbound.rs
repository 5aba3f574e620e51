//! The gateway's edge between the sans-IO protocol core and data security, as plain,
//! synchronous functions (no I/O, `now` passed in): what the runtime calls, off the async
//! workers, for every MQTT payload.
//!
//! - [`open_inbound`]: a received MQTT payload → the core's [`Inbound`]: the payload size is
//!   checked before anything is opened (DES-MQTT-7), a retained message is refused
//!   (DES-MQTT-6), then the payload is opened and verified (DES-SEAL-5/6: signed by the
//!   platform's data-protection certificate, platform role) and decoded (DES-ENV-*); a payload
//!   that fails is handed to the core as refused, with what [`peek`] could read for the DES-MSG-2
//!   reply (IF-PSTART-2: it is reported, never acted on).
//! - [`seal_envelope`]: an up envelope → the sealed payload (DES-SEAL-1).
//! - [`build_profile`] and [`seal_data`]: the records of a [`DataRequest`] → the data profile
//!   (DES-PROF-2/3/5) → protected in the request's format (DES-PROF-4 JSON, DES-PROF-6 XML) →
//!   the sealed `data` payload, refused if the envelope would exceed 256 KiB (DES-MSG-DATA-6;
//!   the caller gives the message up, DES-MSG-DATA-5).
//!
//! Requirement IDs: IF-PSTART-2, IF-PSEND-2, SEC-JSON-SIG-1, SEC-JSON-ENC-1, SEC-XML-SIG-1,
//! SEC-XML-ENC-1, SM-THRESHOLD.

use chrono::{DateTime, Utc};

use crate::profile::{Column, DataProfile, ProfileHeader};
use crate::protocol::InboundError;
use crate::protocol::flow::Time;
use crate::protocol::gateway_side::{DataRequest, Inbound};
use crate::protocol::ids::{GatewayId, SeqRange};
use crate::protocol::message::{
    DecodeError, Envelope, MAX_ENVELOPE_BYTES, MAX_PAYLOAD_BYTES, ProfileFormat, peek,
};
use crate::security::xml::XmlCipher;
use crate::security::{DataSecurity, SecurityError};

/// The key store name of the platform's data-protection certificate (DES-SEAL-6).
pub const PLATFORM_PEER: &str = "platform";

/// Why an up message could not be built (the caller gives a `data` message up,
/// DES-MSG-DATA-5, and logs any other).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// DES-PROF-3: the records handed in do not match the range (one record per seq).
    #[error("DES-PROF-3: {got} records for range {}..={} ({want} seqs)", range.first, range.last)]
    RecordCount {
        /// The requested range.
        range: SeqRange,
        /// Records expected.
        want: u64,
        /// Records given.
        got: u64,
    },
    /// DES-PROF-3: a record has another number of fields than the dataset has columns.
    #[error("DES-PROF-3: record {seq} has {got} fields, the dataset has {want} columns")]
    FieldCount {
        /// The record's seq.
        seq: u64,
        /// Columns of the dataset.
        want: usize,
        /// Fields of the record.
        got: usize,
    },
    /// DES-MSG-DATA-6: the sealed `data` envelope is over 256 KiB.
    #[error("DES-MSG-DATA-6: sealed data envelope of {0} bytes exceeds 262144")]
    EnvelopeTooLarge(usize),
    /// DES-SEAL-1 / DES-PROF-4/6: sealing failed (certificate invalid, CRL stale, …).
    #[error("sealing failed: {0}")]
    Seal(#[source] crate::security::SecurityError),
}

/// What the outbound builder needs to know of a dataset (from the configuration, DES-PROV-2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetProfile {
    /// The legacy system's name (profile header `sourceSystem`).
    pub source_system: String,
    /// Columns in CSV order.
    pub columns: Vec<Column>,
    /// Cipher of the XML profile's body (DES-PROF-6).
    pub xml_cipher: XmlCipher,
}

/// Opens a received MQTT payload for the core (DES-MSG-3 steps 1, 2, 4–8 and the peek of
/// DES-MSG-2; the core does the topic and every later step).
pub fn open_inbound(
    sec: &DataSecurity,
    topic: String,
    payload: &[u8],
    retain: bool,
    now: DateTime<Utc>,
) -> Inbound {
    open_inbound_kid(sec, topic, payload, retain, now).0
}

/// [`open_inbound`], and whether it was refused only because the signer's `kid` is not the
/// held platform certificate's nor any other known one (`UnknownKid`): DES-SEAL-6 then has
/// the gateway refresh `platform.pem` once and open the message again.
pub fn open_inbound_kid(
    sec: &DataSecurity,
    topic: String,
    payload: &[u8],
    retain: bool,
    now: DateTime<Utc>,
) -> (Inbound, bool) {
    if payload.len() > MAX_PAYLOAD_BYTES {
        // Step 1: dropped unopened (DES-MQTT-7).
        return (
            Inbound::Refused {
                topic,
                error: InboundError::Decode(DecodeError::PayloadTooLarge(payload.len())),
                peek: None,
            },
            false,
        );
    }
    if retain {
        // Step 2 (DES-MQTT-6): never acted on.
        return (
            Inbound::Refused {
                topic,
                error: InboundError::Decode(DecodeError::Rule(
                    "DES-MQTT-6: retained message refused".into(),
                )),
                peek: None,
            },
            false,
        );
    }
    let opened = std::str::from_utf8(payload)
        .ok()
        .map(|t| sec.open_message(PLATFORM_PEER, t, now));
    let bytes = match opened {
        Some(Ok(bytes)) => bytes,
        other => {
            let unknown_kid = matches!(other, Some(Err(SecurityError::UnknownKid)));
            // Step 4: one code, no oracle (IF-PSTART-2, DES-SEAL-5).
            return (
                Inbound::Refused {
                    topic,
                    error: InboundError::Security,
                    peek: None,
                },
                unknown_kid,
            );
        }
    };
    let inbound = match Envelope::decode(&bytes) {
        Ok(envelope) => Inbound::Opened { topic, envelope },
        Err(e) => Inbound::Refused {
            topic,
            error: InboundError::Decode(e),
            peek: peek(&bytes),
        },
    };
    (inbound, false)
}

/// Seals an up envelope to the platform (DES-SEAL-1).
pub fn seal_envelope(
    sec: &DataSecurity,
    envelope: &Envelope,
    now: DateTime<Utc>,
) -> Result<String, OutboundError> {
    sec.seal_message(PLATFORM_PEER, &envelope.encode(), now)
        .map_err(OutboundError::Seal)
}

/// The data profile of `range` (DES-PROF-2/3): exactly one record per seq, in seq order, each
/// with one field per column.
pub fn build_profile(
    gateway: &GatewayId,
    request: &DataRequest,
    dataset: &DatasetProfile,
    records: Vec<Vec<String>>,
    created_at: Time,
) -> Result<DataProfile, OutboundError> {
    let range = request.range;
    let want = range.last - range.first + 1;
    if records.len() as u64 != want {
        return Err(OutboundError::RecordCount {
            range,
            want,
            got: records.len() as u64,
        });
    }
    if let Some((i, r)) = records
        .iter()
        .enumerate()
        .find(|(_, r)| r.len() != dataset.columns.len())
    {
        return Err(OutboundError::FieldCount {
            seq: range.first + i as u64,
            want: dataset.columns.len(),
            got: r.len(),
        });
    }
    Ok(DataProfile {
        header: ProfileHeader {
            gateway_id: gateway.clone(),
            source_system: dataset.source_system.clone(),
            dataset: request.dataset.clone(),
            columns: dataset.columns.clone(),
            range,
            created_at,
        },
        records,
    })
}

/// Protects `profile` in the request's format, puts it into the request's envelope and seals
/// that (DES-PROF-4/6, DES-SEAL-1). Returns the envelope (kept for retransmission) and the
/// sealed payload; refuses an envelope over 256 KiB (DES-MSG-DATA-6).
pub fn seal_data(
    sec: &DataSecurity,
    request: DataRequest,
    profile: &DataProfile,
    dataset: &DatasetProfile,
    now: DateTime<Utc>,
) -> Result<(Envelope, String), OutboundError> {
    let protected = match request.format {
        ProfileFormat::Json => sec.seal_json_profile(PLATFORM_PEER, &profile.to_json(), now),
        ProfileFormat::Xml => {
            sec.seal_xml_profile(PLATFORM_PEER, &profile.to_xml(), dataset.xml_cipher, now)
        }
    }
    .map_err(OutboundError::Seal)?;
    let envelope = request.into_envelope(protected);
    let encoded = envelope.encode();
    if encoded.len() > MAX_ENVELOPE_BYTES {
        return Err(OutboundError::EnvelopeTooLarge(encoded.len()));
    }
    let sealed = sec
        .seal_message(PLATFORM_PEER, &encoded, now)
        .map_err(OutboundError::Seal)?;
    Ok((envelope, sealed))
}
