//! Kafka framing: a big-endian `int32` size followed by that many bytes.
//!
//! The size is checked against `socket.request.max.bytes` *before* anything is
//! allocated for the body; a negative or oversized size means the peer is not
//! speaking Kafka (or is hostile), and Kafka answers that by closing the
//! connection, which is what callers do with [`FrameError`].

use bytes::{Buf, BytesMut};
use thiserror::Error;

/// Bytes of the length prefix.
pub const FRAME_PREFIX_LEN: usize = 4;

/// Kafka's default for `socket.request.max.bytes` (100 MiB): the largest request
/// the broker will buffer. It bounds the memory one request can pin.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// Why a frame was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The size prefix exceeds the configured limit.
    #[error("frame of {bytes} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { bytes: usize, limit: usize },
    /// The size prefix is negative (or too small to hold a request header).
    #[error("invalid frame size {size}")]
    InvalidSize { size: i32 },
}

/// Validates a frame's size prefix against `max_bytes` and returns the body length.
///
/// A frame must at least hold a request header's fixed part (api key, version,
/// correlation id: 8 bytes); anything shorter cannot be a request.
pub fn frame_len(prefix: [u8; FRAME_PREFIX_LEN], max_bytes: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(FrameError::InvalidSize { size });
    }
    let bytes = size as usize;
    if bytes > max_bytes {
        return Err(FrameError::FrameTooLarge {
            bytes,
            limit: max_bytes,
        });
    }
    Ok(bytes)
}

/// Splits one whole frame off the front of `buf`, if `buf` holds one.
///
/// Returns `Ok(None)` when more bytes are needed. Reserves at most the checked
/// frame size, so a hostile prefix cannot make the caller allocate beyond
/// `max_bytes`.
pub fn decode_frame(buf: &mut BytesMut, max_bytes: usize) -> Result<Option<BytesMut>, FrameError> {
    if buf.len() < FRAME_PREFIX_LEN {
        return Ok(None);
    }
    let prefix = [buf[0], buf[1], buf[2], buf[3]];
    let len = frame_len(prefix, max_bytes)?;
    if buf.len() < FRAME_PREFIX_LEN + len {
        buf.reserve(FRAME_PREFIX_LEN + len - buf.len());
        return Ok(None);
    }
    buf.advance(FRAME_PREFIX_LEN);
    Ok(Some(buf.split_to(len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_whole_frames_and_waits_for_partial_ones() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&3i32.to_be_bytes());
        buf.extend_from_slice(b"ab");
        assert_eq!(decode_frame(&mut buf, 10).unwrap(), None);
        buf.extend_from_slice(b"cd");
        assert_eq!(&decode_frame(&mut buf, 10).unwrap().unwrap()[..], b"abc");
        assert_eq!(&buf[..], b"d");
    }

    #[test]
    fn refuses_oversized_and_negative_sizes_without_allocating() {
        let mut buf = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
        assert_eq!(
            decode_frame(&mut buf, 1024),
            Err(FrameError::FrameTooLarge {
                bytes: i32::MAX as usize,
                limit: 1024
            })
        );
        assert!(buf.capacity() < 1024);
        let mut buf = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(
            decode_frame(&mut buf, 1024),
            Err(FrameError::InvalidSize { size: -5 })
        );
    }
}
