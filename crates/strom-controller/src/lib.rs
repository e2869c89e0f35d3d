//! Cluster metadata for Strom: topics and their ids, partition assignments with
//! leader and leader epoch, dynamic configs, producer-id blocks, and the brokers.
//!
//! Metadata is a state machine ([`ClusterImage`]) driven by [`MetadataRecord`]s.
//! A mutation is validated against the current image, turned into records,
//! committed to the [`MetadataLog`] (durably: fsync before the caller hears
//! "done"), and only then applied. Replaying the log rebuilds the image on start.
//!
//! This crate is not for data-plane work (logs, fetch, groups) and opens no
//! sockets. Single-node mode commits to a local file; the cluster work replaces
//! the [`MetadataLog`] by a Raft quorum (openraft) without touching callers,
//! since callers only see [`Controller`] methods and images.
//!
//! ```no_run
//! use strom_controller::{Controller, CreateTopic};
//! let controller = Controller::open(std::path::Path::new("/tmp/meta"), 1).unwrap();
//! let topic = controller
//!     .create_topic(CreateTopic::new("orders", 3, 1), false)
//!     .unwrap();
//! assert_eq!(topic.partitions.len(), 3);
//! ```

mod controller;
mod error;
mod image;
mod log;
mod names;
mod records;

pub use controller::{ConfigOp, Controller, CreateTopic, PRODUCER_ID_BLOCK_SIZE};
pub use error::ControllerError;
pub use image::{BrokerRegistration, ClusterImage, PartitionRegistration, TopicId, TopicImage};
pub use log::{FileMetadataLog, MetadataLog};
pub use names::{validate_topic_name, MAX_TOPIC_NAME_LEN};
pub use records::{ConfigResource, MetadataRecord};
