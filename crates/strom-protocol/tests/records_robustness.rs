//! Hostile input: nothing in the record-batch code may panic or over-allocate.
//!
//! Random bytes mostly die at the CRC, so the deeper tests re-sign mutated or
//! random payloads with a correct CRC to reach the record decoder itself.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use strom_protocol::records::*;

const CAP: usize = 256 * 1024;

fn check_all(batch: &[u8]) {
    let _ = BatchHeader::parse(batch);
    let _ = validate_batch(batch);
    let _ = validate_batch_structure(batch);
    let structure_ok = validate_for_append(batch).is_ok();
    let decoded = decode_records(batch, CAP);
    if let Ok(records) = &decoded {
        // A decodable batch never yields more records than it has bytes for.
        assert!(records.len() * MIN_RECORD_BYTES <= batch.len().max(CAP));
        for record in records {
            let _ = parse_control_record(record);
        }
    }
    // For uncompressed batches the cheap walk and the full decode agree.
    if let Ok(header) = validate_batch(batch) {
        if header.compression() == Ok(Compression::None) && decoded.is_ok() {
            assert!(validate_batch_structure(batch).is_ok());
        }
        if structure_ok {
            assert!(header.records_count > 0);
        }
    }
    for item in BatchIter::new(batch) {
        if item.is_err() {
            break;
        }
    }
}

/// A header with a correct length and CRC around an arbitrary records section.
fn signed_batch(attributes: i16, records_count: i32, section: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_i64(0);
    out.put_i32((BATCH_HEADER_LEN - LOG_OVERHEAD + section.len()) as i32);
    out.put_i32(0);
    out.put_i8(MAGIC_V2);
    out.put_u32(0);
    out.put_i16(attributes);
    out.put_i32((records_count - 1).max(0));
    out.put_i64(0);
    out.put_i64(0);
    out.put_i64(-1);
    out.put_i16(-1);
    out.put_i32(-1);
    out.put_i32(records_count);
    out.put_slice(section);
    write_crc(&mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_all(&bytes);
    }

    #[test]
    fn random_bytes_with_a_v2_header_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 61..512)) {
        // Make the length and magic plausible so parsing goes past the first checks.
        let len = (bytes.len() - LOG_OVERHEAD) as i32;
        bytes[8..12].copy_from_slice(&len.to_be_bytes());
        bytes[16] = MAGIC_V2 as u8;
        check_all(&bytes);
        let crc = compute_crc(&bytes);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        check_all(&bytes);
    }

    #[test]
    fn random_signed_sections_never_panic(
        codec in 0i16..8,
        records_count in prop_oneof![Just(i32::MAX), 0i32..40],
        section in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        check_all(&signed_batch(codec, records_count, &section));
    }

    #[test]
    fn random_compressed_sections_never_panic(
        codec in prop::sample::select(Compression::ALL.to_vec()),
        records_count in prop_oneof![Just(i32::MAX), 0i32..40],
        section in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        // Compress garbage so the codec succeeds and the record decoder sees it.
        let compressed = compress(codec, &section).unwrap();
        check_all(&signed_batch(i16::from(codec.id()), records_count, &compressed));
    }

    #[test]
    fn mutated_valid_batches_never_panic(
        codec in prop::sample::select(Compression::ALL.to_vec()),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut builder = RecordBatchBuilder::new(codec);
        for i in 0..5u8 {
            builder.push(i64::from(i), Some(Bytes::from(vec![i; 3])), None, vec![Header { key: "h".into(), value: Some(Bytes::from_static(b"v")) }]);
        }
        let mut batch = builder.build().unwrap();
        let records_start = if codec == Compression::None { BATCH_HEADER_LEN } else { 21 };
        for (at, byte) in edits {
            let at = records_start + at.index(batch.len() - records_start);
            batch[at] = byte;
        }
        write_crc(&mut batch);
        check_all(&batch);
    }
}

#[test]
fn huge_counts_in_a_tiny_batch_are_rejected_without_allocating() {
    // Two billion records claimed, 7 bytes present: must fail fast.
    let batch = signed_batch(0, i32::MAX, &[12, 0, 0, 0, 1, 1, 0]);
    assert!(matches!(
        validate_for_append(&batch),
        Err(RecordError::InvalidRecord(_))
    ));
    assert!(decode_records(&batch, CAP).is_err());
    // A record claiming a billion headers in a few bytes.
    let mut record = Vec::new();
    record.extend_from_slice(&[0, 0, 0, 1, 1]); // attrs, ts, offset, null key, null value
    record.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x07]); // header count i32::MAX
    let mut section = vec![(record.len() as u8) << 1];
    section.extend_from_slice(&record);
    let batch = signed_batch(0, 1, &section);
    assert_eq!(
        decode_records(&batch, CAP),
        Err(RecordError::MalformedRecord("header count out of range"))
    );
    // A key length of i32::MAX.
    let section = [12, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x07];
    let batch = signed_batch(0, 1, &[&[16u8][..], &section[1..]].concat());
    assert!(decode_records(&batch, CAP).is_err());
}
