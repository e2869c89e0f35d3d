//! Arbitrary bytes as a record batch: the produce-path checks, the full
//! decoder and batch iteration must return errors, never panic or allocate
//! without bound.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_protocol::records::{
    decode_records, parse_control_record, validate_batch, validate_for_append, write_crc,
    BatchIter, BATCH_HEADER_LEN,
};

/// Cap on decompressed records, as a broker would configure it; a bomb must stop here.
const MAX_UNCOMPRESSED_BYTES: usize = 1 << 20;

fn exercise(batch: &[u8]) {
    let _ = validate_batch(batch);
    let _ = validate_for_append(batch);
    if let Ok(records) = decode_records(batch, MAX_UNCOMPRESSED_BYTES) {
        for record in &records {
            let _ = parse_control_record(record);
        }
    }
    for item in BatchIter::new(batch) {
        if item.is_err() {
            break;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    // Random input almost never carries a correct CRC32C; re-sign it so the
    // fuzzer also reaches decompression and record decoding.
    if data.len() >= BATCH_HEADER_LEN {
        let mut signed = data.to_vec();
        write_crc(&mut signed);
        exercise(&signed);
    }
});
