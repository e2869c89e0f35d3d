//! Serializers and deserializers for record keys and values (Java's
//! `Serializer` / `Deserializer`): raw bytes, UTF-8 strings, and any serde
//! type as JSON.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use strom_client::serde::{Json, Serializer, Deserializer, StringSerde};
//! use strom_client::ProducerRecord;
//!
//! #[derive(Serialize, Deserialize, PartialEq, Debug)]
//! struct Click { user: String, page: u32 }
//!
//! let click = Click { user: "u1".into(), page: 7 };
//! let record = ProducerRecord::new("clicks")
//!     .key(StringSerde.serialize("clicks", "u1").unwrap())
//!     .value(Json.serialize("clicks", &click).unwrap());
//! let back: Click = Json.deserialize("clicks", record.value.as_deref().unwrap()).unwrap();
//! assert_eq!(back, click);
//! ```

use bytes::Bytes;
use thiserror::Error;

use crate::consumer::ConsumerRecord;

/// Why a key or value could not be (de)serialized.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("cannot {operation} a record of topic {topic}: {reason}")]
pub struct SerdeError {
    pub operation: &'static str,
    pub topic: String,
    pub reason: String,
}

impl SerdeError {
    fn new(operation: &'static str, topic: &str, reason: impl ToString) -> SerdeError {
        SerdeError {
            operation,
            topic: topic.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Turns a `T` into the bytes of a key or value.
pub trait Serializer<T: ?Sized> {
    fn serialize(&self, topic: &str, data: &T) -> Result<Bytes, SerdeError>;
}

/// Turns the bytes of a key or value into a `T`.
pub trait Deserializer<T> {
    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<T, SerdeError>;
}

/// Bytes as they are (Java's `ByteArraySerializer`).
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesSerde;

impl Serializer<[u8]> for BytesSerde {
    fn serialize(&self, _topic: &str, data: &[u8]) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(data))
    }
}

impl Deserializer<Bytes> for BytesSerde {
    fn deserialize(&self, _topic: &str, data: &[u8]) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(data))
    }
}

/// UTF-8 text (Java's `StringSerializer` with its default encoding).
#[derive(Clone, Copy, Debug, Default)]
pub struct StringSerde;

impl Serializer<str> for StringSerde {
    fn serialize(&self, _topic: &str, data: &str) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(data.as_bytes()))
    }
}

impl Deserializer<String> for StringSerde {
    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<String, SerdeError> {
        String::from_utf8(data.to_vec()).map_err(|e| SerdeError::new("deserialize", topic, e))
    }
}

/// Any serde type as JSON.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl<T: serde::Serialize + ?Sized> Serializer<T> for Json {
    fn serialize(&self, topic: &str, data: &T) -> Result<Bytes, SerdeError> {
        serde_json::to_vec(data)
            .map(Bytes::from)
            .map_err(|e| SerdeError::new("serialize", topic, e))
    }
}

impl<T: serde::de::DeserializeOwned> Deserializer<T> for Json {
    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<T, SerdeError> {
        serde_json::from_slice(data).map_err(|e| SerdeError::new("deserialize", topic, e))
    }
}

impl ConsumerRecord {
    /// The key through `deserializer`; `None` for a null key.
    pub fn key_as<T>(&self, deserializer: &impl Deserializer<T>) -> Result<Option<T>, SerdeError> {
        self.key
            .as_deref()
            .map(|k| deserializer.deserialize(&self.topic, k))
            .transpose()
    }

    /// The value through `deserializer`; `None` for a null value (a tombstone).
    pub fn value_as<T>(
        &self,
        deserializer: &impl Deserializer<T>,
    ) -> Result<Option<T>, SerdeError> {
        self.value
            .as_deref()
            .map(|v| deserializer.deserialize(&self.topic, v))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: u64,
        item: String,
    }

    #[test]
    fn strings_bytes_and_json_round_trip_and_bad_input_is_an_error() {
        let b = StringSerde.serialize("t", "héllo").unwrap();
        assert_eq!(StringSerde.deserialize("t", &b).unwrap(), "héllo");
        assert!(StringSerde.deserialize("t", &[0xff, 0xfe]).is_err());
        let raw = BytesSerde.serialize("t", &[0u8, 1, 2][..]).unwrap();
        assert_eq!(BytesSerde.deserialize("t", &raw).unwrap(), raw);
        let order = Order {
            id: 7,
            item: "book".into(),
        };
        let j = Json.serialize("orders", &order).unwrap();
        assert_eq!(&j[..], br#"{"id":7,"item":"book"}"#);
        let back: Order = Json.deserialize("orders", &j).unwrap();
        assert_eq!(back, order);
        let err = <Json as Deserializer<Order>>::deserialize(&Json, "orders", b"{").unwrap_err();
        assert_eq!(
            (err.operation, err.topic.as_str()),
            ("deserialize", "orders")
        );
    }

    #[test]
    fn consumer_records_deserialize_keys_and_values_and_keep_nulls() {
        let r = ConsumerRecord {
            topic: "orders".into(),
            partition: 0,
            offset: 0,
            timestamp: 0,
            timestamp_type: strom_protocol::records::TimestampType::CreateTime,
            key: Some(Bytes::from_static(b"k1")),
            value: None,
            headers: Vec::new(),
            leader_epoch: None,
        };
        assert_eq!(r.key_as(&StringSerde).unwrap().as_deref(), Some("k1"));
        assert_eq!(r.value_as::<Order>(&Json).unwrap(), None);
    }
}
