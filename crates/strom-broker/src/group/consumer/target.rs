//! Subscription metadata and the target assignment (Kafka's
//! `updateSubscriptionMetadata` and `TargetAssignmentBuilder`).

use std::collections::{BTreeMap, BTreeSet};

use strom_controller::TopicId;

use super::assignor::{check_assignment, AssignmentSpec, MemberSpec};
use super::regex::TopicRegex;
use super::{ConsumerGroup, ConsumerGroupConfig, Output, TopicsView};

impl ConsumerGroup {
    /// The metadata of every existing topic some member subscribes to, by
    /// name or by regex.
    pub(crate) fn compute_subscription_metadata(
        &self,
        topics: &TopicsView,
    ) -> BTreeMap<String, (TopicId, i32)> {
        let mut out = BTreeMap::new();
        for m in self.members.values() {
            for name in &m.subscribed_topic_names {
                if let Some(meta) = topics.get(name) {
                    out.insert(name.clone(), *meta);
                }
            }
        }
        let regexes = self.compiled_regexes();
        if !regexes.is_empty() {
            for (name, meta) in topics {
                if !out.contains_key(name) && regexes.iter().any(|r| r.is_match(name)) {
                    out.insert(name.clone(), *meta);
                }
            }
        }
        out
    }

    /// The members' distinct regexes, compiled (validated when they came in).
    pub(crate) fn compiled_regexes(&self) -> Vec<TopicRegex> {
        let distinct: BTreeSet<&str> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.as_deref())
            .collect();
        distinct
            .into_iter()
            .filter_map(|r| TopicRegex::parse(r).ok())
            .collect()
    }

    /// The caller saw topics change (created, deleted, partitions added): if
    /// a subscribed topic is affected, bump the group epoch so the next
    /// heartbeat recomputes the target assignment.
    pub fn on_topics_changed(&mut self, topics: &TopicsView) -> Vec<Output> {
        let metadata = self.compute_subscription_metadata(topics);
        if metadata == self.subscription_metadata {
            return Vec::new();
        }
        self.subscription_metadata = metadata;
        self.group_epoch += 1;
        vec![Output::PersistGroup]
    }

    /// Recomputes every member's target with the group's assignor, starting
    /// from the previous target (stickiness), at the current group epoch.
    pub(crate) fn compute_target_assignment(&mut self, cfg: &ConsumerGroupConfig) {
        let assignor = self.preferred_assignor(cfg);
        let mut regexes: BTreeMap<&str, Option<TopicRegex>> = BTreeMap::new();
        let mut spec = AssignmentSpec {
            members: BTreeMap::new(),
            topics: self.subscription_metadata.values().copied().collect(),
        };
        for (id, m) in &self.members {
            let regex = m.subscribed_topic_regex.as_deref().and_then(|r| {
                regexes
                    .entry(r)
                    .or_insert_with(|| TopicRegex::parse(r).ok())
                    .clone()
            });
            let topics = self
                .subscription_metadata
                .iter()
                .filter(|(name, _)| {
                    m.subscribed_topic_names.contains(*name)
                        || regex.as_ref().is_some_and(|r| r.is_match(name))
                })
                .map(|(_, (topic_id, _))| *topic_id)
                .collect();
            let member = MemberSpec {
                instance_id: m.instance_id.clone(),
                topics,
                current: self.target.get(id).cloned().unwrap_or_default(),
            };
            spec.members.insert(id.clone(), member);
        }
        let target = assignor.assign(&spec);
        debug_assert_eq!(check_assignment(&spec, &target), Ok(()));
        self.target = target;
        self.assignment_epoch = self.group_epoch;
    }
}
