//! [`ConsumerGroupMetadata`]: the consumer's group membership as a
//! transactional producer needs it to commit offsets (KIP-447).

use super::Consumer;

/// The consumer's group identity, for
/// [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction)
/// (Java's `ConsumerGroupMetadata`). The group coordinator refuses a commit
/// whose generation is no longer current, so a consumer that lost its
/// partitions in a rebalance cannot commit offsets for them through a
/// transaction either (KIP-447).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// `group.id`.
    pub group_id: String,
    /// The generation id (classic protocol) or member epoch (consumer
    /// protocol); -1 outside a generation.
    pub generation_id: i32,
    /// The member id the coordinator gave; empty outside a generation.
    pub member_id: String,
    /// `group.instance.id`, for a static member.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata naming only the group (Java's `new ConsumerGroupMetadata(groupId)`):
    /// the coordinator then checks no membership, as before KIP-447.
    pub fn new(group_id: impl Into<String>) -> ConsumerGroupMetadata {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

impl Consumer {
    /// The consumer's group metadata now (Java's `groupMetadata()`): the
    /// current generation and member id while subscribed and in a generation,
    /// generation -1 and no member id otherwise (between generations, or with
    /// manual assignment).
    ///
    /// # Panics
    /// When `group.id` is not set (Java throws `InvalidGroupIdException`).
    pub fn group_metadata(&self) -> ConsumerGroupMetadata {
        let group_id = self
            .config
            .group_id
            .clone()
            .expect("group_metadata needs group.id (Java: InvalidGroupIdException)");
        let mut meta = ConsumerGroupMetadata::new(group_id);
        meta.group_instance_id = self.config.group_instance_id.clone();
        if let Some(identity) = self.group.as_ref().and_then(|g| g.identity()) {
            meta.generation_id = identity.generation;
            meta.member_id = identity.member_id;
        }
        meta
    }
}
