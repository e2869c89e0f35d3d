//! Zig-zag varints as used inside v2 records (Kafka's `ByteUtils.readVarint` /
//! `readVarlong` are the spec): unsigned LEB128 of the zig-zag encoded value,
//! at most 5 bytes for an `i32` and 10 for an `i64`.
//!
//! Readers take a cursor (`&mut usize`) into a slice and never read past it, so
//! a truncated or over-long varint is an error, not a panic.

use bytes::BufMut;

use super::RecordError;

/// Longest encoding of a 32-bit varint. A longer one is malformed (Kafka rejects it too).
const VARINT_MAX_BYTES: usize = 5;
/// Longest encoding of a 64-bit varlong.
const VARLONG_MAX_BYTES: usize = 10;

fn read_unsigned(
    buf: &[u8],
    pos: &mut usize,
    max_bytes: usize,
    what: &'static str,
) -> Result<u64, RecordError> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let Some(&byte) = buf.get(*pos + i) else {
            return Err(RecordError::MalformedRecord(what));
        };
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *pos += i + 1;
            return Ok(value);
        }
    }
    Err(RecordError::MalformedRecord(what))
}

/// Reads a zig-zag varint at `*pos` and advances the cursor past it.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, RecordError> {
    // Bits above 32 in the fifth byte are dropped, as Kafka's reader does.
    let raw = read_unsigned(buf, pos, VARINT_MAX_BYTES, "bad varint")? as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zig-zag varlong at `*pos` and advances the cursor past it.
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, RecordError> {
    let raw = read_unsigned(buf, pos, VARLONG_MAX_BYTES, "bad varlong")?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn put_unsigned(out: &mut impl BufMut, mut raw: u64) {
    while raw >= 0x80 {
        out.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

/// Appends `value` as a zig-zag varint.
pub(crate) fn put_varint(out: &mut impl BufMut, value: i32) {
    put_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends `value` as a zig-zag varlong.
pub(crate) fn put_varlong(out: &mut impl BufMut, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn unsigned_len(mut raw: u64) -> usize {
    let mut len = 1;
    while raw >= 0x80 {
        raw >>= 7;
        len += 1;
    }
    len
}

/// Bytes [`put_varint`] writes for `value`.
pub(crate) fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

/// Bytes [`put_varlong`] writes for `value`.
pub(crate) fn varlong_len(value: i64) -> usize {
    unsigned_len(((value << 1) ^ (value >> 63)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings_match_kafka() {
        // Zig-zag: 0 -> 0, -1 -> 1, 1 -> 2, -64 -> 127, 64 -> 128 (two bytes).
        for (value, bytes) in [
            (0, &[0x00][..]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(varint_len(value), bytes.len());
            let mut pos = 0;
            assert_eq!(read_varint(&out, &mut pos).unwrap(), value);
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn extremes_round_trip() {
        for value in [i64::MIN, i64::MAX, 0, -1, 1 << 40] {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            assert_eq!(out.len(), varlong_len(value));
            let mut pos = 0;
            assert_eq!(read_varlong(&out, &mut pos).unwrap(), value);
        }
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        let mut pos = 0;
        assert!(read_varint(&[0x80], &mut pos).is_err());
        assert!(read_varint(&[0x80; 6], &mut pos).is_err());
        assert!(read_varlong(&[0xff; 11], &mut pos).is_err());
        assert!(read_varint(&[], &mut pos).is_err());
        assert_eq!(pos, 0, "a failed read leaves the cursor alone");
    }
}
