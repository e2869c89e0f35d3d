//! Client-side partition assignors of the classic group protocol, and the
//! `consumer` protocol's subscription and assignment payloads.
//!
//! In the classic protocol the group leader (one of the consumers) computes the
//! assignment from every member's subscription and sends it in SyncGroup. The
//! assignors here give the same answer as Java's `RangeAssignor` and
//! `RoundRobinAssignor` for the same input, so Rust and Java members can share
//! a group whichever of them is the leader.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use strom_protocol::messages::{
    consumer_protocol_assignment, consumer_protocol_subscription,
    decode_consumer_protocol_assignment, decode_consumer_protocol_subscription,
    encode_consumer_protocol_assignment, encode_consumer_protocol_subscription, ApiVersion,
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, DecodeLimits,
};

use super::TopicPartition;
use crate::error::ClientError;

/// The assignors this client implements, by the protocol name members advertise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignor {
    /// Java's `RangeAssignor` ("range"): per topic, contiguous ranges of partitions.
    Range,
    /// Java's `RoundRobinAssignor` ("roundrobin"): all partitions dealt in turn.
    RoundRobin,
}

impl Assignor {
    /// Reads a `partition.assignment.strategy` entry: the protocol name or
    /// Java's class name.
    pub fn parse(name: &str) -> Option<Assignor> {
        match name.trim() {
            "range" | "org.apache.kafka.clients.consumer.RangeAssignor" => Some(Assignor::Range),
            "roundrobin" | "org.apache.kafka.clients.consumer.RoundRobinAssignor" => {
                Some(Assignor::RoundRobin)
            }
            _ => None,
        }
    }

    /// The protocol name in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }

    /// Assigns the partitions of the subscribed topics (`partitions` gives each
    /// known topic's partition count; unknown topics are skipped) to `members`.
    /// Every member id appears in the answer, possibly with nothing.
    pub fn assign(
        self,
        partitions: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut out: BTreeMap<String, Vec<TopicPartition>> = members
            .iter()
            .map(|m| (m.member_id.clone(), Vec::new()))
            .collect();
        // Java orders members by group.instance.id when both have one, else by member id.
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        match self {
            Assignor::Range => {
                let topics: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
                for topic in topics {
                    let Some(&count) = partitions.get(topic) else {
                        continue;
                    };
                    let consumers: Vec<&&MemberSubscription> =
                        sorted.iter().filter(|m| m.topics.contains(topic)).collect();
                    let n = consumers.len() as i32;
                    if n == 0 {
                        continue;
                    }
                    let (per, extra) = (count / n, count % n);
                    for (i, m) in consumers.iter().enumerate() {
                        let i = i as i32;
                        let start = per * i + i.min(extra);
                        let len = per + i32::from(i < extra);
                        let assigned = out.entry(m.member_id.clone()).or_default();
                        assigned
                            .extend((start..start + len).map(|p| TopicPartition::new(topic, p)));
                    }
                }
            }
            Assignor::RoundRobin => {
                let topics: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
                let mut next = 0usize;
                for topic in topics {
                    let Some(&count) = partitions.get(topic) else {
                        continue;
                    };
                    for p in 0..count {
                        // The next member in the circle that subscribes to this topic.
                        for _ in 0..sorted.len() {
                            let m = sorted[next % sorted.len()];
                            next += 1;
                            if m.topics.contains(topic) {
                                out.entry(m.member_id.clone())
                                    .or_default()
                                    .push(TopicPartition::new(topic, p));
                                break;
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// One member's subscription as the leader sees it in the JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub topics: BTreeSet<String>,
}

impl MemberSubscription {
    fn sort_key(&self) -> (&str, &str) {
        match &self.group_instance_id {
            Some(id) => ("", id.as_str()),
            None => ("\u{10FFFF}", self.member_id.as_str()),
        }
    }
}

/// The ConsumerProtocolSubscription this client sends in JoinGroup (version 1:
/// topics and owned partitions).
pub fn encode_subscription(topics: &BTreeSet<String>, owned: &BTreeSet<TopicPartition>) -> Bytes {
    let mut s = ConsumerProtocolSubscription::default();
    s.topics = topics.iter().map(|t| t.as_str().into()).collect();
    s.owned_partitions = group_by_topic(owned)
        .into_iter()
        .map(|(topic, partitions)| {
            let mut tp = consumer_protocol_subscription::TopicPartition::default();
            tp.topic = topic.into();
            tp.partitions = partitions;
            tp
        })
        .collect();
    let mut buf = BytesMut::new();
    // Version 1 is fixed-size ints and strings: encoding cannot fail for valid names.
    let _ = encode_consumer_protocol_subscription(&mut buf, &s, ApiVersion::new(1));
    buf.freeze()
}

/// The topics of a member's subscription payload (any version).
pub fn decode_subscription(payload: Bytes) -> Result<BTreeSet<String>, ClientError> {
    let (_, s) = decode_consumer_protocol_subscription(payload, DecodeLimits::default())
        .map_err(|e| ClientError::Decode(format!("consumer subscription: {e}")))?;
    Ok(s.topics.into_iter().map(|t| t.to_string()).collect())
}

/// The ConsumerProtocolAssignment the leader sends in SyncGroup (version 0).
pub fn encode_assignment(partitions: &[TopicPartition]) -> Bytes {
    let mut a = ConsumerProtocolAssignment::default();
    a.assigned_partitions = group_by_topic(partitions)
        .into_iter()
        .map(|(topic, partitions)| {
            let mut tp = consumer_protocol_assignment::TopicPartition::default();
            tp.topic = topic.into();
            tp.partitions = partitions;
            tp
        })
        .collect();
    let mut buf = BytesMut::new();
    let _ = encode_consumer_protocol_assignment(&mut buf, &a, ApiVersion::new(0));
    buf.freeze()
}

/// The partitions of a SyncGroup assignment payload; an empty payload is an
/// empty assignment (what the coordinator sends a member the leader left out).
pub fn decode_assignment(payload: Bytes) -> Result<BTreeSet<TopicPartition>, ClientError> {
    if payload.is_empty() {
        return Ok(BTreeSet::new());
    }
    let (_, a) = decode_consumer_protocol_assignment(payload, DecodeLimits::default())
        .map_err(|e| ClientError::Decode(format!("consumer assignment: {e}")))?;
    Ok(a.assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| TopicPartition::new(t.topic.as_str(), *p))
        })
        .collect())
}

fn group_by_topic<'a>(
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) -> BTreeMap<&'a str, Vec<i32>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic
            .entry(tp.topic.as_str())
            .or_default()
            .push(tp.partition);
    }
    by_topic
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            group_instance_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn parts(out: &BTreeMap<String, Vec<TopicPartition>>, id: &str) -> Vec<String> {
        out[id].iter().map(|tp| tp.to_string()).collect()
    }

    #[test]
    fn range_gives_the_first_members_one_extra_partition_per_topic() {
        let counts = BTreeMap::from([("t".to_string(), 5), ("u".to_string(), 2)]);
        let members = [member("b", &["t", "u"]), member("a", &["t", "u"])];
        let out = Assignor::Range.assign(&counts, &members);
        assert_eq!(parts(&out, "a"), ["t-0", "t-1", "t-2", "u-0"]);
        assert_eq!(parts(&out, "b"), ["t-3", "t-4", "u-1"]);
    }

    #[test]
    fn range_only_counts_members_subscribed_to_the_topic() {
        let counts = BTreeMap::from([("t".to_string(), 3), ("u".to_string(), 2)]);
        let members = [
            member("a", &["t"]),
            member("b", &["t", "u"]),
            member("c", &["x"]),
        ];
        let out = Assignor::Range.assign(&counts, &members);
        assert_eq!(parts(&out, "a"), ["t-0", "t-1"]);
        assert_eq!(parts(&out, "b"), ["t-2", "u-0", "u-1"]);
        assert!(out["c"].is_empty());
    }

    #[test]
    fn static_members_are_ordered_by_instance_id_before_dynamic_ones() {
        let counts = BTreeMap::from([("t".to_string(), 3)]);
        let mut z = member("a-dynamic", &["t"]);
        z.group_instance_id = None;
        let mut s = member("z-static", &["t"]);
        s.group_instance_id = Some("instance-1".into());
        let out = Assignor::Range.assign(&counts, &[z, s]);
        assert_eq!(parts(&out, "z-static"), ["t-0", "t-1"]);
        assert_eq!(parts(&out, "a-dynamic"), ["t-2"]);
    }

    #[test]
    fn round_robin_deals_partitions_of_sorted_topics_in_turn() {
        let counts = BTreeMap::from([("t".to_string(), 3), ("u".to_string(), 2)]);
        let members = [member("b", &["t", "u"]), member("a", &["t", "u"])];
        let out = Assignor::RoundRobin.assign(&counts, &members);
        assert_eq!(parts(&out, "a"), ["t-0", "t-2", "u-1"]);
        assert_eq!(parts(&out, "b"), ["t-1", "u-0"]);
        // A member skips topics it does not subscribe to.
        let members = [member("a", &["t"]), member("b", &["t", "u"])];
        let out = Assignor::RoundRobin.assign(&counts, &members);
        assert_eq!(parts(&out, "a"), ["t-0", "t-2"]);
        assert_eq!(parts(&out, "b"), ["t-1", "u-0", "u-1"]);
    }

    #[test]
    fn every_partition_is_assigned_exactly_once() {
        let counts = BTreeMap::from([("t".to_string(), 17), ("u".to_string(), 4)]);
        for n in 1..7 {
            let members: Vec<_> = (0..n)
                .map(|i| member(&format!("m{i}"), &["t", "u"]))
                .collect();
            for a in [Assignor::Range, Assignor::RoundRobin] {
                let out = a.assign(&counts, &members);
                let all: Vec<&TopicPartition> = out.values().flatten().collect();
                let unique: BTreeSet<_> = all.iter().collect();
                assert_eq!((all.len(), unique.len()), (21, 21), "{a:?} with {n}");
            }
        }
    }

    #[test]
    fn payloads_round_trip_and_names_parse() {
        let topics = BTreeSet::from(["a".to_string(), "b".to_string()]);
        let owned = BTreeSet::from([TopicPartition::new("a", 1)]);
        assert_eq!(
            decode_subscription(encode_subscription(&topics, &owned)).unwrap(),
            topics
        );
        let assigned = [TopicPartition::new("a", 0), TopicPartition::new("b", 3)];
        assert_eq!(
            decode_assignment(encode_assignment(&assigned)).unwrap(),
            assigned.iter().cloned().collect()
        );
        assert!(decode_assignment(Bytes::new()).unwrap().is_empty());
        assert!(decode_assignment(Bytes::from_static(&[0, 9, 1])).is_err());
        assert_eq!(
            Assignor::parse("org.apache.kafka.clients.consumer.RangeAssignor"),
            Some(Assignor::Range)
        );
        assert_eq!(Assignor::parse("roundrobin"), Some(Assignor::RoundRobin));
        assert_eq!(Assignor::parse("sticky"), None);
    }
}
