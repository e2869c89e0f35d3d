//! Codec round trips, Kafka-compatible framing, and bounded decompression.

use proptest::prelude::*;
use strom_protocol::records::compression::XERIAL_MAGIC;
use strom_protocol::records::{compress, decompress, Compression, RecordError};

const CAP: usize = 1 << 20;

fn codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

proptest! {
    #[test]
    fn every_codec_round_trips(codec in codec(), input in prop::collection::vec(any::<u8>(), 0..100_000)) {
        let compressed = compress(codec, &input).unwrap();
        prop_assert_eq!(decompress(codec, &compressed, input.len()).unwrap(), input);
    }

    #[test]
    fn compressible_input_round_trips(codec in codec(), byte in any::<u8>(), len in 0usize..300_000) {
        let input = vec![byte; len];
        let compressed = compress(codec, &input).unwrap();
        prop_assert_eq!(decompress(codec, &compressed, CAP).unwrap(), input);
    }

    #[test]
    fn output_one_byte_over_the_cap_is_rejected(codec in codec(), len in 1usize..100_000) {
        let input = vec![7u8; len];
        let compressed = compress(codec, &input).unwrap();
        prop_assert_eq!(
            decompress(codec, &compressed, len - 1),
            Err(RecordError::DecompressedTooLarge { limit: len - 1 })
        );
    }

    #[test]
    fn garbage_never_panics(codec in codec(), input in prop::collection::vec(any::<u8>(), 0..2_000)) {
        let _ = decompress(codec, &input, 64 * 1024);
    }
}

#[test]
fn bombs_hit_the_cap_for_every_codec() {
    // 64 MiB of zeros compresses to a few KiB to a few hundred KiB; the cap is 1 MiB.
    let bomb_input = vec![0u8; 64 << 20];
    for codec in Compression::ALL {
        if codec == Compression::None {
            continue;
        }
        let bomb = compress(codec, &bomb_input).unwrap();
        assert!(
            bomb.len() < 4 << 20,
            "{codec:?} bomb is {} bytes",
            bomb.len()
        );
        assert_eq!(
            decompress(codec, &bomb, CAP),
            Err(RecordError::DecompressedTooLarge { limit: CAP }),
            "{codec:?}"
        );
    }
}

#[test]
fn snappy_block_claiming_four_gib_is_rejected_before_allocating() {
    // Raw snappy starts with the uncompressed length as a varint: 0xffff_ffff.
    let raw = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    assert_eq!(
        decompress(Compression::Snappy, &raw, CAP),
        Err(RecordError::DecompressedTooLarge { limit: CAP })
    );
    let mut xerial = XERIAL_MAGIC.to_vec();
    xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
    xerial.extend_from_slice(&(raw.len() as i32).to_be_bytes());
    xerial.extend_from_slice(&raw);
    assert_eq!(
        decompress(Compression::Snappy, &xerial, CAP),
        Err(RecordError::DecompressedTooLarge { limit: CAP })
    );
}

#[test]
fn xerial_block_lengths_out_of_range_are_errors() {
    for len in [-1i32, i32::MAX, 5] {
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        xerial.extend_from_slice(&len.to_be_bytes());
        xerial.extend_from_slice(&[1, 2]);
        assert!(matches!(
            decompress(Compression::Snappy, &xerial, CAP),
            Err(RecordError::Decompression {
                codec: Compression::Snappy,
                ..
            })
        ));
    }
    // A header cut short, and a dangling partial length.
    assert!(decompress(Compression::Snappy, &XERIAL_MAGIC, CAP).is_err());
    let mut dangling = XERIAL_MAGIC.to_vec();
    dangling.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0]);
    assert!(decompress(Compression::Snappy, &dangling, CAP).is_err());
}

#[test]
fn snappy_is_written_in_xerial_framing_like_the_java_client() {
    let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let out = compress(Compression::Snappy, &input).unwrap();
    assert_eq!(&out[..8], &XERIAL_MAGIC);
    assert_eq!(&out[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
    // Walk the blocks: 100_000 bytes in 32 KiB blocks is four blocks.
    let (mut pos, mut blocks, mut total) = (16, 0, 0);
    while pos < out.len() {
        let len = i32::from_be_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
        let block = &out[pos + 4..pos + 4 + len];
        total += snap::raw::decompress_len(block).unwrap();
        pos += 4 + len;
        blocks += 1;
    }
    assert_eq!((blocks, total), (4, input.len()));
}

#[test]
fn plain_and_concatenated_snappy_are_read() {
    let input = b"hello hello hello hello snappy".to_vec();
    let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
    assert_eq!(decompress(Compression::Snappy, &raw, CAP).unwrap(), input);

    let mut twice = compress(Compression::Snappy, &input).unwrap();
    twice.extend(compress(Compression::Snappy, &input).unwrap());
    assert_eq!(
        decompress(Compression::Snappy, &twice, CAP).unwrap(),
        [&input[..], &input[..]].concat()
    );
}

#[test]
fn lz4_uses_the_frame_format_kafka_writes() {
    let out = compress(Compression::Lz4, b"some records").unwrap();
    // Frame magic 0x184D2204 little-endian; FLG = version 01 + block independence;
    // BD = 64 KiB max block size; no content size, no checksums.
    assert_eq!(&out[..4], &[0x04, 0x22, 0x4d, 0x18]);
    assert_eq!(out[4], 0x60);
    assert_eq!(out[5], 0x40);
}

#[test]
fn gzip_members_concatenated_are_one_stream() {
    let mut two = compress(Compression::Gzip, b"first ").unwrap();
    two.extend(compress(Compression::Gzip, b"second").unwrap());
    assert_eq!(
        decompress(Compression::Gzip, &two, CAP).unwrap(),
        b"first second"
    );
}

#[test]
fn truncated_streams_are_errors_not_short_output() {
    let input: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 256) as u8).collect();
    for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
        let full = compress(codec, &input).unwrap();
        let cut = &full[..full.len() / 2];
        assert!(
            matches!(
                decompress(codec, cut, CAP),
                Err(RecordError::Decompression { .. })
            ),
            "{codec:?}"
        );
    }
}

#[test]
fn zstd_frame_declaring_a_window_above_the_limit_is_rejected() {
    use strom_protocol::records::compression::ZSTD_WINDOW_LOG_MAX;
    // Frame magic, a descriptor without content size, the window descriptor
    // (exponent = log2(window) - 10, in the top five bits), then one empty raw last block.
    let frame = |window_log: u32| {
        vec![
            0x28,
            0xb5,
            0x2f,
            0xfd,
            0x00,
            ((window_log - 10) << 3) as u8,
            0x01,
            0x00,
            0x00,
        ]
    };
    assert_eq!(
        decompress(Compression::Zstd, &frame(ZSTD_WINDOW_LOG_MAX), CAP).unwrap(),
        b""
    );
    assert!(matches!(
        decompress(Compression::Zstd, &frame(ZSTD_WINDOW_LOG_MAX + 1), CAP),
        Err(RecordError::Decompression {
            codec: Compression::Zstd,
            ..
        })
    ));
}
