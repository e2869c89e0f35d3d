//! The four codecs Kafka allows in a v2 batch, with a hard cap on output.
//!
//! Formats are Kafka's (what the Java client writes and reads):
//!
//! - gzip: RFC 1952 members; concatenated members are read as one stream.
//! - snappy: the xerial framing of `snappy-java`'s `SnappyOutputStream` — an
//!   8-byte magic `\x82SNAPPY\0`, two big-endian i32s (version, minimum
//!   compatible version), then blocks of `[be i32 length][raw snappy block]`.
//!   Plain raw snappy (no framing) is also accepted on decompress, as librdkafka
//!   does, detected by the absence of the magic. We always write xerial so both
//!   Java and librdkafka consumers can read it.
//! - lz4: the LZ4 *frame* format (not raw blocks), written as Kafka's
//!   `KafkaLZ4BlockOutputStream` does: independent 64 KiB blocks, no checksums,
//!   no content size. (The pre-KIP-57 header-checksum quirk only affects magic
//!   0/1 batches, which Strom does not accept.)
//! - zstd: standard zstd frames.
//!
//! Decompression never produces or allocates more than `max_output_bytes` of
//! output: every codec is read through a size-checked loop, so a decompression
//! bomb ends in [`RecordError::DecompressedTooLarge`] instead of exhausting memory.

use std::io::{Read, Write};

use super::{Compression, RecordError};

/// The magic that opens a xerial-framed snappy stream.
pub const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic + version + compatible version.
const XERIAL_HEADER_LEN: usize = 16;
/// Version and minimum compatible version written in the xerial header (as snappy-java does).
const XERIAL_VERSION: i32 = 1;
/// Uncompressed bytes per xerial block; snappy-java's default block size.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// Largest zstd window (log2 bytes) a frame may declare. 27 (128 MiB) is zstd's
/// own default limit and covers every level up to 22, so every frame a Kafka
/// client can write decodes. The window buffer is reserved up front by the
/// decoder but only touched as output is produced, which our cap bounds.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// Bytes read from a streaming decoder per step; also the granularity of the cap check.
const READ_CHUNK_BYTES: usize = 32 * 1024;

/// Compresses `input` with `codec` at the library's default level, in the
/// framing Kafka clients expect. `Compression::None` returns a copy.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, RecordError> {
    let failed = |e: std::io::Error| RecordError::CompressionFailed {
        codec,
        reason: e.to_string(),
    };
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(input).map_err(failed)?;
            enc.finish().map_err(failed)
        }
        Compression::Snappy => compress_xerial(input),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            enc.write_all(input).map_err(failed)?;
            enc.finish().map_err(|e| RecordError::CompressionFailed {
                codec,
                reason: e.to_string(),
            })
        }
        Compression::Zstd => zstd::stream::encode_all(input, 0).map_err(failed),
    }
}

/// Decompresses `input`, failing with [`RecordError::DecompressedTooLarge`] as
/// soon as the output would exceed `max_output_bytes`. Never panics on garbage.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_output_bytes: usize,
) -> Result<Vec<u8>, RecordError> {
    let failed = |e: std::io::Error| RecordError::Decompression {
        codec,
        reason: e.to_string(),
    };
    match codec {
        Compression::None => {
            if input.len() > max_output_bytes {
                return Err(too_large(max_output_bytes));
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_capped(
            flate2::read::MultiGzDecoder::new(input),
            codec,
            max_output_bytes,
        ),
        Compression::Snappy => {
            if input.starts_with(&XERIAL_MAGIC) {
                decompress_xerial(input, max_output_bytes)
            } else {
                let mut out = Vec::new();
                decompress_snappy_block(input, &mut out, max_output_bytes)?;
                Ok(out)
            }
        }
        Compression::Lz4 => read_capped(
            lz4_flex::frame::FrameDecoder::new(input),
            codec,
            max_output_bytes,
        ),
        Compression::Zstd => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(input).map_err(failed)?;
            dec.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(failed)?;
            read_capped(dec, codec, max_output_bytes)
        }
    }
}

fn too_large(limit: usize) -> RecordError {
    RecordError::DecompressedTooLarge { limit }
}

/// Grows `out` so `additional` more bytes fit, doubling like `Vec` does but
/// never reserving past `max` in total.
fn reserve_capped(out: &mut Vec<u8>, additional: usize, max: usize) -> Result<(), RecordError> {
    let needed = out
        .len()
        .checked_add(additional)
        .filter(|n| *n <= max)
        .ok_or(too_large(max))?;
    if needed > out.capacity() {
        let target = needed.max(out.capacity().saturating_mul(2)).min(max);
        out.reserve_exact(target - out.len());
    }
    Ok(())
}

/// Drains a streaming decoder in fixed chunks, checking the cap before each append.
fn read_capped(
    mut reader: impl Read,
    codec: Compression,
    max: usize,
) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(RecordError::Decompression {
                    codec,
                    reason: e.to_string(),
                })
            }
        };
        reserve_capped(&mut out, n, max)?;
        out.extend_from_slice(&chunk[..n]);
    }
}

fn snappy_error(reason: impl ToString) -> RecordError {
    RecordError::Decompression {
        codec: Compression::Snappy,
        reason: reason.to_string(),
    }
}

/// Appends one raw snappy block to `out`. The block states its uncompressed
/// length up front, so the cap is checked before any allocation.
fn decompress_snappy_block(block: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), RecordError> {
    let len = snap::raw::decompress_len(block).map_err(snappy_error)?;
    reserve_capped(out, len, max)?;
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(snappy_error)?;
    if written != len {
        return Err(snappy_error("block shorter than its stated length"));
    }
    Ok(())
}

fn decompress_xerial(input: &[u8], max: usize) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let rest = &input[pos..];
        // snappy-java tolerates concatenated streams: a fresh header between blocks.
        if rest.starts_with(&XERIAL_MAGIC) {
            if rest.len() < XERIAL_HEADER_LEN {
                return Err(snappy_error("truncated xerial header"));
            }
            pos += XERIAL_HEADER_LEN;
            continue;
        }
        let Some(len_bytes) = rest.get(..4) else {
            return Err(snappy_error("truncated xerial block length"));
        };
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let block = usize::try_from(len)
            .ok()
            .and_then(|len| rest.get(4..4 + len))
            .ok_or_else(|| snappy_error(format!("xerial block length {len} out of range")))?;
        decompress_snappy_block(block, &mut out, max)?;
        pos += 4 + block.len();
    }
    Ok(out)
}

fn compress_xerial(input: &[u8]) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + snap::raw::max_compress_len(input.len()));
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| RecordError::CompressionFailed {
                codec: Compression::Snappy,
                reason: e.to_string(),
            })?;
        // A block of at most 32 KiB input compresses to far less than i32::MAX.
        out.extend_from_slice(&(block.len() as i32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}
