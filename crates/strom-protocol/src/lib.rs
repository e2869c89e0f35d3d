//! The Kafka wire protocol as Strom speaks it.
//!
//! This crate owns everything about bytes on the wire and nothing about sockets or
//! files: frame splitting with a size limit ([`frame`]), request headers v0–v2
//! ([`header`]), the table of APIs and versions the broker advertises ([`apis`]),
//! the record batch v2 view with CRC32C validation and in-place patching of the
//! broker-owned fields ([`records`]), compression codecs, and Kafka's error codes
//! ([`ErrorCode`]).
//!
//! Request and response message structs come from the `kafka-wire` crate (generated
//! from Kafka's JSON schemas with bounded decoding) and are re-exported as
//! [`messages`]; the rest of Strom names them only through this crate.
//!
//! ```
//! use strom_protocol::records::{BatchHeader, BATCH_HEADER_LEN};
//! let too_short = [0u8; BATCH_HEADER_LEN - 1];
//! assert!(BatchHeader::parse(&too_short).is_err());
//! ```

pub mod apis;
pub mod error;
pub mod fetch_response;
pub mod frame;
pub mod header;
pub mod records;

pub use error::ErrorCode;

/// Kafka request/response messages (generated from Kafka's schemas by `kafka-wire`).
pub mod messages {
    pub use kafka_wire::*;
    pub use kafka_wire_core::{
        ApiKey, ApiVersion, Bytes, BytesMut, DecodeError, DecodeLimits, Decoder, EncodeError,
        KafkaDecode, KafkaEncode, StrBytes, Uuid, VersionRange,
    };
}
