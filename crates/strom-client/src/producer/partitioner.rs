//! Java's default partitioning: murmur2 of the serialized key for keyed records,
//! a sticky partition for keyless ones (KIP-480, chosen in the accumulator).

use std::fmt::Debug;

/// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed `0x9747b28c`, over the key bytes.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len() as u32;
    let mut h: u32 = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Java's built-in partitioner picks for a keyed record.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    to_positive(murmur2(key)) % num_partitions
}

/// Chooses a record's partition. Returning `None` defers to the sticky
/// partition (as Java's built-in partitioner does for keyless records).
pub trait Partitioner: Send + Sync + Debug {
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        num_partitions: i32,
    ) -> Option<i32>;
}

/// Java's built-in partitioner: murmur2 for keys, sticky for no key.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultPartitioner;

impl Partitioner for DefaultPartitioner {
    fn partition(
        &self,
        _topic: &str,
        key: Option<&[u8]>,
        _value: Option<&[u8]>,
        num_partitions: i32,
    ) -> Option<i32> {
        key.map(|k| partition_for_key(k, num_partitions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (key, Utils.murmur2, partition of 3, partition of 7), printed by
    /// kafka-clients 3.9.1's `Utils.murmur2` / `Utils.toPositive`.
    const JAVA: &[(&str, i32, i32, i32)] = &[
        ("", 275646681, 0, 2),
        ("a", -1563381124, 1, 5),
        ("ab", 316155434, 2, 0),
        ("abc", 479470107, 0, 4),
        ("abcd", -1323649548, 2, 5),
        ("hello", 2132663229, 0, 4),
        ("key-0", 29210041, 1, 0),
        ("key-1", 193331640, 0, 5),
        ("key-42", -187086521, 0, 3),
        ("key-999", -1349681240, 0, 4),
        (
            "The quick brown fox jumps over the lazy dog",
            495243318,
            0,
            3,
        ),
    ];

    #[test]
    fn murmur2_and_partitions_match_the_java_client() {
        for &(key, hash, p3, p7) in JAVA {
            assert_eq!(murmur2(key.as_bytes()), hash, "murmur2({key:?})");
            assert_eq!(partition_for_key(key.as_bytes(), 3), p3, "{key:?} of 3");
            assert_eq!(partition_for_key(key.as_bytes(), 7), p7, "{key:?} of 7");
        }
    }

    #[test]
    fn keyless_records_are_left_to_the_sticky_partition() {
        assert_eq!(DefaultPartitioner.partition("t", None, Some(b"v"), 3), None);
        assert_eq!(to_positive(i32::MIN), 0);
    }
}
