//! The consumer's offset commits and committed-offset reads, run one at a time
//! by a background task in the order they were asked for.
//!
//! One queue keeps Java's guarantees: asynchronous commits are sent, and their
//! callbacks run, in call order, and a synchronous commit (or a read of
//! committed offsets) is answered only after every commit queued before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::offsets::{Coordinator, MemberIdentity};
use super::{ConsumerConfig, ConsumerError, OffsetAndMetadata, TopicPartition};
use crate::cluster::Cluster;

/// Called with the outcome of an asynchronous commit, on the committer task.
pub type CommitCallback = Box<dyn FnOnce(Result<(), ConsumerError>) + Send + 'static>;

enum Job {
    Commit {
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
        member: Option<MemberIdentity>,
        deadline: Instant,
        done: Done,
    },
    Committed {
        partitions: Vec<TopicPartition>,
        deadline: Instant,
        reply: oneshot::Sender<Result<HashMap<TopicPartition, OffsetAndMetadata>, ConsumerError>>,
    },
}

enum Done {
    Reply(oneshot::Sender<Result<(), ConsumerError>>),
    Callback(Option<CommitCallback>),
}

/// Handle to the committer task of one consumer.
pub struct Committer {
    tx: mpsc::UnboundedSender<Job>,
    task: JoinHandle<()>,
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The error a request gets when the committer task is gone.
fn stopped() -> ConsumerError {
    ConsumerError::Timeout {
        operation: "commit (the consumer is closed)",
    }
}

impl Committer {
    pub fn start(cluster: Arc<Cluster>, config: ConsumerConfig, group_id: String) -> Committer {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let task = tokio::spawn(async move {
            let mut coordinator = Coordinator::new(group_id);
            while let Some(job) = rx.recv().await {
                match job {
                    Job::Commit {
                        offsets,
                        member,
                        deadline,
                        done,
                    } => {
                        let result = coordinator
                            .commit(&cluster, &config, &offsets, member.as_ref(), deadline)
                            .await;
                        match done {
                            Done::Reply(tx) => {
                                let _ = tx.send(result);
                            }
                            Done::Callback(Some(cb)) => cb(result),
                            Done::Callback(None) => {
                                if let Err(e) = result {
                                    tracing::warn!(error = %e, "asynchronous offset commit failed");
                                }
                            }
                        }
                    }
                    Job::Committed {
                        partitions,
                        deadline,
                        reply,
                    } => {
                        let result = coordinator
                            .committed(&cluster, &config, &partitions, deadline)
                            .await;
                        let _ = reply.send(result);
                    }
                }
            }
        });
        Committer { tx, task }
    }

    /// Commits and waits for the answer.
    pub async fn commit(
        &self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
        member: Option<MemberIdentity>,
        deadline: Instant,
    ) -> Result<(), ConsumerError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Job::Commit {
                offsets,
                member,
                deadline,
                done: Done::Reply(tx),
            })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues a commit; `callback` (if any) gets its outcome.
    pub fn commit_async(
        &self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
        member: Option<MemberIdentity>,
        deadline: Instant,
        callback: Option<CommitCallback>,
    ) {
        let job = Job::Commit {
            offsets,
            member,
            deadline,
            done: Done::Callback(callback),
        };
        if let Err(mpsc::error::SendError(Job::Commit {
            done: Done::Callback(Some(cb)),
            ..
        })) = self.tx.send(job)
        {
            cb(Err(stopped()));
        }
    }

    /// The committed offsets of `partitions`, after every commit queued before.
    pub async fn committed(
        &self,
        partitions: Vec<TopicPartition>,
        deadline: Instant,
    ) -> Result<HashMap<TopicPartition, OffsetAndMetadata>, ConsumerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Committed {
                partitions,
                deadline,
                reply,
            })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}
