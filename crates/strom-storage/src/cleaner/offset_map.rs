//! The cleaner's key → latest offset map (Kafka's `OffsetMap`), bounded in bytes.
//!
//! Kafka's `SkimpyOffsetMap` stores a 16-byte MD5 of each key, so two keys
//! whose hashes collide can lose a record. Strom stores the keys themselves
//! (copied, so the map never pins a whole decoded batch): exact, at the price
//! of charging each entry its key length plus [`ENTRY_OVERHEAD_BYTES`].

use std::collections::HashMap;

/// Bytes charged per entry on top of the key: the `HashMap` slot (boxed key
/// pointer + length + offset ≈ 24 bytes), the key's heap allocation header and
/// the table's spare capacity. A deliberate over-estimate so that
/// `OffsetMap::bytes_used` bounds the real memory.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

/// Key → offset of the last record with that key in the section mapped so far.
#[derive(Debug)]
pub struct OffsetMap {
    entries: HashMap<Box<[u8]>, i64>,
    bytes_used: usize,
    limit_bytes: usize,
}

impl OffsetMap {
    /// An empty map that accepts new keys while it uses at most `limit_bytes`.
    pub fn new(limit_bytes: usize) -> Self {
        OffsetMap {
            entries: HashMap::new(),
            bytes_used: 0,
            limit_bytes,
        }
    }

    /// Records `offset` as the latest offset of `key`. Returns false (and
    /// changes nothing) when `key` is new and would push the map over its
    /// limit — except into an empty map, so that a pass always makes progress
    /// even when a single key is larger than the whole buffer.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        if let Some(existing) = self.entries.get_mut(key) {
            *existing = (*existing).max(offset);
            return true;
        }
        let cost = key.len() + ENTRY_OVERHEAD_BYTES;
        if !self.entries.is_empty() && self.bytes_used + cost > self.limit_bytes {
            return false;
        }
        self.bytes_used += cost;
        self.entries.insert(key.into(), offset);
        true
    }

    /// The latest offset of `key`, if mapped.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.entries.get(key).copied()
    }

    /// Distinct keys mapped.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes charged so far (keys + per-entry overhead).
    #[cfg(test)]
    pub fn bytes_used(&self) -> usize {
        self.bytes_used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_highest_offset_per_key() {
        let mut m = OffsetMap::new(1 << 20);
        assert!(m.put(b"a", 3));
        assert!(m.put(b"a", 7));
        assert!(m.put(b"b", 5));
        assert_eq!(m.get(b"a"), Some(7));
        assert_eq!(m.get(b"b"), Some(5));
        assert_eq!(m.get(b"c"), None);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn refuses_new_keys_beyond_its_limit_but_updates_known_ones() {
        let mut m = OffsetMap::new(2 * (ENTRY_OVERHEAD_BYTES + 1));
        assert!(m.put(b"a", 0));
        assert!(m.put(b"b", 1));
        assert!(!m.put(b"c", 2));
        assert!(m.put(b"a", 3));
        assert_eq!(m.get(b"a"), Some(3));
        assert_eq!(m.bytes_used(), 2 * (ENTRY_OVERHEAD_BYTES + 1));
    }

    #[test]
    fn an_empty_map_accepts_one_oversized_key() {
        let mut m = OffsetMap::new(1);
        assert!(m.put(&[0u8; 100], 0));
        assert!(!m.put(b"x", 1));
    }
}
