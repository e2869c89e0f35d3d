//! Builder -> decoder round trips and the invariants of the broker-owned fields.

use bytes::Bytes;
use proptest::prelude::*;
use strom_protocol::records::*;

const CAP: usize = 8 << 20;

#[derive(Clone, Debug)]
struct Input {
    timestamp_ms: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn bytes_opt() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..200))
}

fn input() -> impl Strategy<Value = Input> {
    (
        any::<i64>(),
        bytes_opt(),
        bytes_opt(),
        prop::collection::vec((".{0,12}", bytes_opt()), 0..4),
    )
        .prop_map(|(timestamp_ms, key, value, headers)| Input {
            timestamp_ms,
            key,
            value,
            headers,
        })
}

fn codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

fn headers(input: &Input) -> Vec<Header> {
    input
        .headers
        .iter()
        .map(|(k, v)| Header {
            key: k.clone(),
            value: v.clone().map(Bytes::from),
        })
        .collect()
}

fn build(codec: Compression, inputs: &[Input]) -> bytes::BytesMut {
    let mut builder = RecordBatchBuilder::new(codec)
        .base_offset(1000)
        .producer(7, 2, 41);
    for i in inputs {
        builder.push(
            i.timestamp_ms,
            i.key.clone().map(Bytes::from),
            i.value.clone().map(Bytes::from),
            headers(i),
        );
    }
    builder.build().unwrap()
}

/// A small valid batch for the invariants that do not depend on contents.
fn small_batch(codec: Compression, n: usize) -> bytes::BytesMut {
    let mut builder = RecordBatchBuilder::new(codec);
    for i in 0..n {
        builder.push(
            1_000 + i as i64,
            Some(Bytes::from(format!("k{i}"))),
            Some(Bytes::from(vec![i as u8; i])),
            vec![],
        );
    }
    builder.build().unwrap()
}

proptest! {
    #[test]
    fn builder_output_decodes_to_the_same_records(codec in codec(), inputs in prop::collection::vec(input(), 1..30)) {
        let batch = build(codec, &inputs);
        let header = validate_for_append(&batch).unwrap();
        prop_assert_eq!(header.compression().unwrap(), codec);
        prop_assert_eq!(header.records_count as usize, inputs.len());
        prop_assert_eq!(header.last_offset_delta as usize, inputs.len() - 1);
        prop_assert_eq!(header.base_timestamp, inputs[0].timestamp_ms);
        prop_assert_eq!(header.max_timestamp, inputs.iter().map(|i| i.timestamp_ms).max().unwrap());
        prop_assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (7, 2, 41));

        let (decoded_header, records) = decode_batch(&batch.clone().freeze(), CAP).unwrap();
        prop_assert_eq!(decoded_header, header);
        prop_assert_eq!(records.len(), inputs.len());
        for (n, (record, input)) in records.iter().zip(&inputs).enumerate() {
            prop_assert_eq!(record.offset(&header), 1000 + n as i64);
            prop_assert_eq!(record.timestamp(&header), input.timestamp_ms);
            prop_assert_eq!(record.key.as_deref(), input.key.as_deref());
            prop_assert_eq!(record.value.as_deref(), input.value.as_deref());
            prop_assert_eq!(&record.headers, &headers(input));
        }
        prop_assert_eq!(decode_records(&batch, CAP).unwrap(), records);
    }

    #[test]
    fn encode_record_matches_encoded_len(input in input(), offset_delta in any::<i32>(), ts_delta in any::<i64>()) {
        let record = Record {
            attributes: 0,
            timestamp_delta: ts_delta,
            offset_delta,
            key: input.key.clone().map(Bytes::from),
            value: input.value.clone().map(Bytes::from),
            headers: headers(&input),
        };
        let mut out = Vec::new();
        encode_record(&record, &mut out).unwrap();
        prop_assert_eq!(out.len(), record.encoded_len().unwrap());
        let walked: Vec<_> = records_iter(&out, 1).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(walked.len(), 1);
        prop_assert_eq!(decode_records_section(&Bytes::from(out), 1).unwrap(), vec![record]);
    }

    #[test]
    fn patching_offset_and_epoch_keeps_the_crc_valid(codec in codec(), n in 1usize..20, offset in any::<i64>(), epoch in any::<i32>()) {
        let mut batch = small_batch(codec, n);
        let crc_before = validate_batch(&batch).unwrap().crc;
        set_base_offset(&mut batch, offset);
        set_partition_leader_epoch(&mut batch, epoch);
        let header = validate_for_append(&batch).unwrap();
        prop_assert_eq!((header.base_offset, header.partition_leader_epoch, header.crc), (offset, epoch, crc_before));
        prop_assert_eq!(decode_records(&batch, CAP).unwrap().len(), n);
    }

    #[test]
    fn log_append_time_keeps_the_batch_valid(codec in codec(), n in 1usize..20, now in any::<i64>()) {
        let mut batch = small_batch(codec, n);
        set_log_append_time(&mut batch, now);
        let header = validate_batch_structure(&batch).unwrap();
        prop_assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        prop_assert_eq!(header.max_timestamp, now);
        for record in decode_records(&batch, CAP).unwrap() {
            prop_assert_eq!(record.timestamp(&header), now);
        }
        // The builder's LogAppendTime mode writes the very same bytes.
        let mut builder = RecordBatchBuilder::new(codec).log_append_time(now);
        for i in 0..n {
            builder.push(1_000 + i as i64, Some(Bytes::from(format!("k{i}"))), Some(Bytes::from(vec![i as u8; i])), vec![]);
        }
        prop_assert_eq!(builder.build().unwrap(), batch);
    }

    #[test]
    fn batch_iter_splits_concatenations(sizes in prop::collection::vec((codec(), 1usize..10), 1..8), cut in any::<prop::sample::Index>()) {
        let batches: Vec<_> = sizes.iter().map(|(c, n)| small_batch(*c, *n)).collect();
        let all: Vec<u8> = batches.iter().flat_map(|b| b.iter().copied()).collect();
        let mut expected_start = 0;
        for (item, batch) in BatchIter::new(&all).zip(&batches) {
            let (header, range) = item.unwrap();
            prop_assert_eq!(range.clone(), expected_start..expected_start + batch.len());
            prop_assert_eq!(validate_batch(&all[range]).unwrap(), header);
            expected_start += batch.len();
        }
        prop_assert_eq!(BatchIter::new(&all).count(), batches.len());

        // A torn tail ends with Truncated after the whole batches before it.
        let cut_at = cut.index(all.len());
        let mut iter = BatchIter::new(&all[..cut_at]);
        let whole = batches.iter().scan(0, |end, b| { *end += b.len(); Some(*end) }).filter(|end| *end <= cut_at).count();
        for _ in 0..whole {
            prop_assert!(iter.next().unwrap().is_ok());
        }
        if iter.position() < cut_at {
            let is_truncated = matches!(iter.next(), Some(Err(RecordError::Truncated { .. })));
            prop_assert!(is_truncated);
        }
    }

    #[test]
    fn any_single_byte_corruption_in_the_crc_region_is_detected(codec in codec(), n in 1usize..10, at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut batch = small_batch(codec, n);
        // The CRC covers bytes 21..; the stored CRC (17..21) is checked against it.
        let at = 17 + at.index(batch.len() - 17);
        batch[at] ^= flip;
        prop_assert!(validate_batch(&batch).is_err());
        prop_assert!(validate_for_append(&batch).is_err());
        prop_assert!(decode_records(&batch, CAP).is_err());
    }
}

#[test]
fn control_batches_carry_the_marker_and_are_refused_from_clients() {
    for (kind, epoch) in [
        (ControlRecordType::Commit, 5),
        (ControlRecordType::Abort, 0),
    ] {
        let batch = control_batch(kind, 4000, 3, epoch, 77, 9, 1_700_000_000_000);
        let header = validate_batch_structure(&batch).unwrap();
        assert!(header.is_control() && header.is_transactional());
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (4000, 3, NO_SEQUENCE)
        );
        assert_eq!(
            (
                header.base_offset,
                header.partition_leader_epoch,
                header.records_count
            ),
            (77, 9, 1)
        );
        let records = decode_records(&batch, CAP).unwrap();
        assert_eq!(parse_control_record(&records[0]), Some((kind, epoch)));
        assert_eq!(
            records[0].key.as_deref(),
            Some(&[0, 0, 0, kind.id() as u8][..])
        );
        assert_eq!(
            validate_for_append(&batch),
            Err(RecordError::ControlBatchFromClient)
        );
        assert_eq!(
            RecordError::ControlBatchFromClient.error_code(),
            strom_protocol::ErrorCode::InvalidRecord
        );
    }
}

#[test]
fn parse_control_record_ignores_other_records() {
    let record = |key: &'static [u8], value: &'static [u8]| Record {
        key: Some(Bytes::from_static(key)),
        value: Some(Bytes::from_static(value)),
        ..Record::default()
    };
    // KRaft's leader-change type (2), a short key, a negative version.
    assert_eq!(
        parse_control_record(&record(&[0, 0, 0, 2], &[0, 0, 0, 0, 0, 1])),
        None
    );
    assert_eq!(
        parse_control_record(&record(&[0, 0, 0], &[0, 0, 0, 0, 0, 1])),
        None
    );
    assert_eq!(
        parse_control_record(&record(&[0xff, 0xff, 0, 1], &[0, 0, 0, 0, 0, 1])),
        None
    );
    // A newer version is read by its version-0 prefix.
    assert_eq!(
        parse_control_record(&record(&[0, 1, 0, 1, 9], &[0, 1, 0, 0, 0, 3, 9])),
        Some((ControlRecordType::Commit, 3))
    );
    assert_eq!(parse_control_record(&Record::default()), None);
}

/// Rewrites header bytes of a valid batch and fixes the CRC, so only the rule under test fails.
fn patched(mut batch: bytes::BytesMut, at: usize, bytes: &[u8]) -> bytes::BytesMut {
    batch[at..at + bytes.len()].copy_from_slice(bytes);
    write_crc(&mut batch);
    batch
}

#[test]
fn validate_for_append_enforces_kafkas_client_rules() {
    let good = small_batch(Compression::None, 3);
    assert!(validate_for_append(&good).is_ok());
    // records_count (57) != last_offset_delta (23) + 1.
    let inconsistent = patched(good.clone(), 57, &4i32.to_be_bytes());
    assert!(matches!(
        validate_for_append(&inconsistent),
        Err(RecordError::InvalidRecord(_))
    ));
    let inconsistent = patched(good.clone(), 23, &1i32.to_be_bytes());
    assert!(matches!(
        validate_for_append(&inconsistent),
        Err(RecordError::InvalidRecord(_))
    ));
    // Unknown codec id 5.
    let unknown = patched(good.clone(), 21, &5i16.to_be_bytes());
    assert_eq!(
        validate_for_append(&unknown),
        Err(RecordError::UnknownCompression(5))
    );
    // Producer id without a sequence.
    let no_seq = patched(
        good.clone(),
        43,
        &[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0xff, 0xff, 0xff, 0xff],
    );
    assert!(matches!(
        validate_for_append(&no_seq),
        Err(RecordError::InvalidRecord(_))
    ));
    // LogAppendTime from a producer.
    let mut lat = good.clone();
    set_log_append_time(&mut lat, 5);
    assert_eq!(
        validate_for_append(&lat),
        Err(RecordError::LogAppendTimeFromClient)
    );
    // An empty batch is structurally fine (the cleaner keeps them) but not from a client.
    let empty = RecordBatchBuilder::new(Compression::Zstd).build().unwrap();
    assert_eq!(validate_batch_structure(&empty).unwrap().records_count, 0);
    assert!(matches!(
        validate_for_append(&empty),
        Err(RecordError::InvalidRecord(_))
    ));
}

#[test]
fn uncompressed_walk_requires_records_to_tile_the_batch() {
    let good = small_batch(Compression::None, 3);
    // Claim two records where three are present (offset delta kept consistent).
    let mut fewer = good.clone();
    fewer[57..61].copy_from_slice(&2i32.to_be_bytes());
    let fewer = patched(fewer, 23, &1i32.to_be_bytes());
    assert!(matches!(
        validate_for_append(&fewer),
        Err(RecordError::InvalidRecord(_))
    ));
    assert!(decode_records(&fewer, CAP).is_err());
    // Claim four: the section runs out.
    let mut more = good.clone();
    more[57..61].copy_from_slice(&4i32.to_be_bytes());
    let more = patched(more, 23, &3i32.to_be_bytes());
    assert!(validate_for_append(&more).is_err());
    // A record length prefix pointing past the end.
    let mut long = good.clone();
    long[61] = 0x7e; // zig-zag 63 bytes
    write_crc(&mut long);
    assert!(matches!(
        validate_for_append(&long),
        Err(RecordError::MalformedRecord(_))
    ));
}

#[test]
fn compressed_batches_are_checked_without_decompressing_but_decoding_checks_contents() {
    // Corrupt the compressed payload and fix the CRC: the cheap check passes, decoding fails.
    let mut batch = small_batch(Compression::Gzip, 5);
    let last = batch.len() - 5;
    batch[last] ^= 0xff;
    write_crc(&mut batch);
    assert!(validate_for_append(&batch).is_ok());
    assert!(decode_records(&batch, CAP).is_err());
}

#[test]
fn decode_caps_decompressed_size() {
    let mut builder = RecordBatchBuilder::new(Compression::Zstd);
    builder.push(0, None, Some(Bytes::from(vec![0u8; 4 << 20])), vec![]);
    let batch = builder.build().unwrap();
    assert!(batch.len() < 4096);
    assert_eq!(
        decode_records(&batch, 1 << 20),
        Err(RecordError::DecompressedTooLarge { limit: 1 << 20 })
    );
    assert_eq!(
        decode_records(&batch, 8 << 20).unwrap()[0]
            .value
            .as_ref()
            .unwrap()
            .len(),
        4 << 20
    );
}
