//! Request and response headers (versions 0–2 and 0–1).
//!
//! Headers are parsed here rather than by `kafka-wire` because the header must be
//! read before we know whether the API and version are supported at all: an
//! unknown version of ApiVersions still gets an answer (KIP-511), and header v0
//! (no client id) is outside kafka-wire's generated range.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::apis;

/// Longest client id accepted (Kafka's is a short string: at most `i16::MAX`).
pub const MAX_CLIENT_ID_BYTES: usize = i16::MAX as usize;
/// Most tagged fields accepted in a request header. Kafka defines none for the
/// header except `client_id` in some KIPs, so a handful is generous.
pub const MAX_HEADER_TAGGED_FIELDS: u32 = 64;

/// Why a request header could not be read. The connection is closed on any of these.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HeaderError {
    #[error("request header truncated")]
    Truncated,
    #[error("client id is not valid UTF-8")]
    InvalidClientId,
    #[error("malformed tagged fields in request header")]
    MalformedTaggedFields,
}

/// A parsed request header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    /// Kafka API key.
    pub api_key: i16,
    /// API version the body is encoded with.
    pub api_version: i16,
    /// Echoed in the response so the client can match it.
    pub correlation_id: i32,
    /// Free-form client id (null in header v0 or when the client sends null).
    pub client_id: Option<String>,
    /// Header version the request was framed with (0, 1 or 2).
    pub header_version: i16,
}

/// Header version that frames a request of `api_key` at `api_version`.
///
/// v0 exists only for ControlledShutdown v0; flexible versions use v2. Versions
/// beyond what we know are treated as flexible when the API's flexible range is
/// open-ended, which is how a too-new ApiVersions request is still readable.
pub fn request_header_version(api_key: i16, api_version: i16) -> i16 {
    if api_key == 7 && api_version == 0 {
        return 0;
    }
    if apis::is_flexible(api_key, api_version) {
        2
    } else {
        1
    }
}

/// Header version that frames the response to `api_key` at `api_version`.
///
/// ApiVersions always answers with header v0 so that a client that does not yet
/// know the broker's versions can read the answer.
pub fn response_header_version(api_key: i16, api_version: i16) -> i16 {
    if api_key == apis::API_VERSIONS {
        return 0;
    }
    if apis::is_flexible(api_key, api_version) {
        1
    } else {
        0
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], HeaderError> {
        if self.buf.len() - self.pos < n {
            return Err(HeaderError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16, HeaderError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, HeaderError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uvarint(&mut self) -> Result<u32, HeaderError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self
                .take(1)
                .map_err(|_| HeaderError::MalformedTaggedFields)?[0];
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(HeaderError::MalformedTaggedFields)
    }
    /// Skips a tagged-field section: headers define no tag Strom uses.
    fn skip_tagged_fields(&mut self) -> Result<(), HeaderError> {
        let count = self.uvarint()?;
        if count > MAX_HEADER_TAGGED_FIELDS {
            return Err(HeaderError::MalformedTaggedFields);
        }
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)
                .map_err(|_| HeaderError::MalformedTaggedFields)?;
        }
        Ok(())
    }
}

impl RequestHeader {
    /// Parses the header at the front of a request frame; returns it and the
    /// offset of the body.
    pub fn parse(frame: &[u8]) -> Result<(RequestHeader, usize), HeaderError> {
        let mut r = Reader { buf: frame, pos: 0 };
        let api_key = r.i16()?;
        let api_version = r.i16()?;
        let correlation_id = r.i32()?;
        let header_version = request_header_version(api_key, api_version);
        let mut client_id = None;
        if header_version >= 1 {
            // The client id stays a classic nullable string even in header v2.
            let len = r.i16()?;
            if len >= 0 {
                let raw = r.take(len as usize)?;
                client_id = Some(
                    std::str::from_utf8(raw)
                        .map_err(|_| HeaderError::InvalidClientId)?
                        .to_owned(),
                );
            }
        }
        if header_version >= 2 {
            r.skip_tagged_fields()?;
        }
        let header = RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id,
            header_version,
        };
        Ok((header, r.pos))
    }

    /// Parses the header of `frame` and returns the body as a zero-copy slice.
    pub fn split(frame: &Bytes) -> Result<(RequestHeader, Bytes), HeaderError> {
        let (header, at) = Self::parse(frame)?;
        Ok((header, frame.slice(at..)))
    }

    /// Encodes this header (used by clients and tests).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_i16(self.api_key);
        out.put_i16(self.api_version);
        out.put_i32(self.correlation_id);
        if self.header_version >= 1 {
            match &self.client_id {
                Some(id) => {
                    let id = &id.as_bytes()[..id.len().min(MAX_CLIENT_ID_BYTES)];
                    out.put_i16(id.len() as i16);
                    out.put_slice(id);
                }
                None => out.put_i16(-1),
            }
        }
        if self.header_version >= 2 {
            out.put_u8(0);
        }
    }
}

/// Writes a response header of `version` (0: correlation id; 1: plus empty tagged fields).
pub fn encode_response_header(out: &mut BytesMut, correlation_id: i32, version: i16) {
    out.put_i32(correlation_id);
    if version >= 1 {
        out.put_u8(0);
    }
}

/// Parses a response header of `version`; returns the correlation id and body offset.
pub fn parse_response_header(frame: &[u8], version: i16) -> Result<(i32, usize), HeaderError> {
    let mut r = Reader { buf: frame, pos: 0 };
    let correlation_id = r.i32()?;
    if version >= 1 {
        r.skip_tagged_fields()?;
    }
    Ok((correlation_id, r.pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_for_each_version() {
        for (key, version, expected_header) in [(7, 0, 0), (0, 3, 1), (3, 12, 2), (18, 3, 2)] {
            let h = RequestHeader {
                api_key: key,
                api_version: version,
                correlation_id: 42,
                client_id: if expected_header == 0 {
                    None
                } else {
                    Some("c".into())
                },
                header_version: expected_header,
            };
            let mut out = BytesMut::new();
            h.encode(&mut out);
            out.extend_from_slice(b"body");
            let (parsed, at) = RequestHeader::parse(&out).unwrap();
            assert_eq!(parsed, h);
            assert_eq!(&out[at..], b"body");
        }
    }

    #[test]
    fn truncated_and_garbage_headers_are_errors_not_panics() {
        for len in 0..12 {
            let buf = vec![0xffu8; len];
            let _ = RequestHeader::parse(&buf);
        }
        // Flexible ApiVersions with a tagged field claiming more bytes than exist.
        let buf = [0, 18, 0, 3, 0, 0, 0, 1, 0, 0, 1, 5, 200, 1];
        assert_eq!(
            RequestHeader::parse(&buf).unwrap_err(),
            HeaderError::MalformedTaggedFields
        );
    }
}
