//! What the consumer reads and where it is (Java's `SubscriptionState`): the
//! assigned partitions, each with its fetch state and pause flag.
//!
//! Only manual assignment fills it today. Group subscription will set the same
//! assignment from the coordinator's answer, so the per-partition state below
//! does not depend on how a partition came to be assigned.

use std::collections::BTreeMap;

use super::TopicPartition;

/// Which end of the log a reset moves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTo {
    /// The log start offset (ListOffsets timestamp -2).
    Earliest,
    /// The log end offset, or last stable offset under read_committed (timestamp -1).
    Latest,
}

impl ResetTo {
    /// The ListOffsets timestamp that asks for this end.
    pub fn list_offsets_timestamp(self) -> i64 {
        match self {
            ResetTo::Earliest => -2,
            ResetTo::Latest => -1,
        }
    }
}

/// Where a partition's next fetch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchState {
    /// Newly assigned: the committed offset (if any) decides the position.
    Initializing,
    /// Waiting for a ListOffsets answer (seek to beginning/end, or auto.offset.reset).
    AwaitingReset(ResetTo),
    /// The offset of the next record to return, and the leader epoch of the
    /// last record returned (or of the committed offset), when known.
    Valid {
        offset: i64,
        leader_epoch: Option<i32>,
    },
}

/// One assigned partition.
#[derive(Clone, Copy, Debug)]
pub struct PartitionState {
    pub fetch: FetchState,
    /// Paused partitions are not fetched and their buffered records not returned.
    pub paused: bool,
}

/// The assignment: every assigned partition and its state.
#[derive(Debug, Default)]
pub struct SubscriptionState {
    partitions: BTreeMap<TopicPartition, PartitionState>,
}

impl SubscriptionState {
    /// Replaces the assignment. Partitions assigned before keep their position
    /// and pause flag; new ones start [`FetchState::Initializing`].
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) {
        let mut next = BTreeMap::new();
        for tp in partitions {
            let state = self.partitions.remove(&tp).unwrap_or(PartitionState {
                fetch: FetchState::Initializing,
                paused: false,
            });
            next.insert(tp, state);
        }
        self.partitions = next;
    }

    pub fn assigned(&self) -> Vec<TopicPartition> {
        self.partitions.keys().cloned().collect()
    }

    pub fn is_assigned(&self, tp: &TopicPartition) -> bool {
        self.partitions.contains_key(tp)
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<&PartitionState> {
        self.partitions.get(tp)
    }

    pub fn get_mut(&mut self, tp: &TopicPartition) -> Option<&mut PartitionState> {
        self.partitions.get_mut(tp)
    }

    /// The valid position of `tp`, if it has one.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        match self.partitions.get(tp)?.fetch {
            FetchState::Valid { offset, .. } => Some(offset),
            _ => None,
        }
    }

    /// Sets a valid position (seek, committed offset, reset answer, consumed records).
    pub fn set_position(&mut self, tp: &TopicPartition, offset: i64, leader_epoch: Option<i32>) {
        if let Some(p) = self.partitions.get_mut(tp) {
            p.fetch = FetchState::Valid {
                offset,
                leader_epoch,
            };
        }
    }

    /// Partitions still waiting for their committed offset.
    pub fn initializing(&self) -> Vec<TopicPartition> {
        self.filter(|s| s.fetch == FetchState::Initializing)
    }

    /// Partitions waiting for a ListOffsets answer, with the end each wants.
    pub fn awaiting_reset(&self) -> Vec<(TopicPartition, ResetTo)> {
        self.partitions
            .iter()
            .filter_map(|(tp, s)| match s.fetch {
                FetchState::AwaitingReset(to) => Some((tp.clone(), to)),
                _ => None,
            })
            .collect()
    }

    /// Partitions that may be fetched now, with their positions.
    pub fn fetchable(&self) -> Vec<(TopicPartition, i64, Option<i32>)> {
        self.partitions
            .iter()
            .filter(|(_, s)| !s.paused)
            .filter_map(|(tp, s)| match s.fetch {
                FetchState::Valid {
                    offset,
                    leader_epoch,
                } => Some((tp.clone(), offset, leader_epoch)),
                _ => None,
            })
            .collect()
    }

    /// The distinct topics of the assignment, for metadata refreshes.
    pub fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self.partitions.keys().map(|tp| tp.topic.clone()).collect();
        t.dedup();
        t
    }

    fn filter(&self, f: impl Fn(&PartitionState) -> bool) -> Vec<TopicPartition> {
        self.partitions
            .iter()
            .filter(|(_, s)| f(s))
            .map(|(tp, _)| tp.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassigning_keeps_positions_of_partitions_that_stay() {
        let a = TopicPartition::new("t", 0);
        let b = TopicPartition::new("t", 1);
        let mut s = SubscriptionState::default();
        s.assign(vec![a.clone(), b.clone()]);
        assert_eq!(s.initializing(), vec![a.clone(), b.clone()]);
        s.set_position(&a, 5, Some(1));
        s.get_mut(&a).unwrap().paused = true;
        s.assign(vec![a.clone(), TopicPartition::new("u", 0)]);
        assert_eq!(s.position(&a), Some(5));
        assert!(s.get(&a).unwrap().paused && !s.is_assigned(&b));
        assert!(s.fetchable().is_empty());
        s.get_mut(&a).unwrap().paused = false;
        assert_eq!(s.fetchable(), vec![(a, 5, Some(1))]);
        assert_eq!(s.topics(), vec!["t".to_string(), "u".to_string()]);
    }
}
