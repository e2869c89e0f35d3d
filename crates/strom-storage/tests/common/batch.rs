//! Builds v2 record batches by hand for tests (shared by unit and integration
//! tests via `#[path]`), independent of the protocol crate's builder.
#![allow(dead_code)]

use strom_protocol::records::compute_crc;

/// Attribute bit: transactional batch.
pub const TRANSACTIONAL: i16 = 0x10;

/// What to put in a batch.
#[derive(Clone, Debug)]
pub struct Spec {
    /// `(timestamp, value)` per record.
    pub records: Vec<(i64, Vec<u8>)>,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub attributes: i16,
}

impl Spec {
    /// `n` records of `value_len` bytes, all at `ts`, no producer id.
    pub fn plain(n: usize, value_len: usize, ts: i64) -> Spec {
        Spec {
            records: (0..n).map(|i| (ts, vec![i as u8; value_len])).collect(),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
        }
    }
    /// An idempotent batch of `n` one-byte records.
    pub fn idempotent(pid: i64, epoch: i16, seq: i32, n: usize, ts: i64) -> Spec {
        Spec {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            ..Spec::plain(n, 1, ts)
        }
    }
    /// Encodes the batch (base offset 0, epoch -1, valid CRC32C).
    pub fn build(&self) -> Vec<u8> {
        build(self)
    }
}

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// Encodes a v2 batch.
pub fn build(spec: &Spec) -> Vec<u8> {
    assert!(!spec.records.is_empty());
    let base_ts = spec.records[0].0;
    let max_ts = spec.records.iter().map(|r| r.0).max().unwrap();
    let mut body = Vec::new();
    for (i, (ts, value)) in spec.records.iter().enumerate() {
        let mut rec = vec![0u8]; // attributes
        varint(&mut rec, ts - base_ts);
        varint(&mut rec, i as i64);
        varint(&mut rec, -1); // null key
        varint(&mut rec, value.len() as i64);
        rec.extend_from_slice(value);
        varint(&mut rec, 0); // no headers
        varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let n = spec.records.len() as i32;
    let mut b = Vec::with_capacity(61 + body.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&spec.attributes.to_be_bytes());
    b.extend_from_slice(&(n - 1).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&spec.producer_id.to_be_bytes());
    b.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    b.extend_from_slice(&spec.base_sequence.to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&body);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// `n` plain records of `value_len` bytes at `ts`.
pub fn plain(n: usize, value_len: usize, ts: i64) -> Vec<u8> {
    Spec::plain(n, value_len, ts).build()
}
