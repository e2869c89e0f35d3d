//! The range assignor: for each topic, its subscribers (ordered by instance
//! id if static, else member id) get contiguous ranges of partitions, the
//! first `partitions % members` one partition more. Topics with the same
//! subscribers and partition count are therefore assigned alike
//! (co-partitioning, as joins in Kafka Streams need).
//!
//! Deviation: Kafka 4's server-side `RangeAssignor` also tries to keep
//! partitions where they are when quotas allow; this one is the plain range
//! assignment (deterministic, so it moves only what the ranges move). Static
//! members keep their ranges across restarts because they are ordered by
//! instance id.

use std::collections::BTreeMap;

use super::{Assignment, AssignmentSpec};

/// Runs the range assignor. Every member gets an entry.
pub fn assign_range(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = spec
        .members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (&topic, &count) in &spec.topics {
        let mut subscribers: Vec<(&str, &str)> = spec
            .members
            .iter()
            .filter(|(_, m)| m.topics.contains(&topic))
            .map(|(id, m)| (m.instance_id.as_deref().unwrap_or(id), id.as_str()))
            .collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        subscribers.sort_unstable();
        let n = subscribers.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut start = 0;
        for (i, (_, member)) in subscribers.into_iter().enumerate() {
            let len = per + i32::from((i as i32) < extra);
            if len > 0 {
                let parts = out
                    .get_mut(member)
                    .expect("member listed")
                    .entry(topic)
                    .or_default();
                parts.extend(start..start + len);
            }
            start += len;
        }
    }
    out
}
