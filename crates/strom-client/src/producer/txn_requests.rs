//! The transactional producer's requests to its coordinators (the request half
//! of Java's `TransactionManager`): FindCoordinator, InitProducerId,
//! AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn, each
//! retried while the answer says so, with every error code mapped to Java's
//! outcome — done, retry, look the coordinator up again, abortable or fatal.
//!
//! Nothing here bounds the retries: the application's calls run under
//! `max.block.ms` and the sender's AddPartitionsToTxn under
//! `delivery.timeout.ms` (see `transactions.rs` and `sender.rs`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use strom_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use strom_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiVersionsRequest, EndTxnRequest,
    FindCoordinatorRequest, InitProducerIdRequest, ProduceRequest, StrBytes,
    TxnOffsetCommitRequest,
};
use strom_protocol::ErrorCode;
use tracing::debug;

use super::accumulator::ProducerIdentity;
use super::config::ProducerConfig;
use super::txn_state::{PartitionKey, TransactionVersion, TxnFailure, TxnResult, TxnStatus};
use super::ProducerError;
use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::consumer::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};
use crate::error::ClientError;

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Kafka's name of the feature that gates transaction version 2 (KIP-890).
const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";
/// The last request versions of the classic protocol: EndTxn v5, Produce v12
/// and TxnOffsetCommit v5 mean transaction version 2 to the broker.
pub(crate) const END_TXN_MAX_V1: i16 = 4;
pub(crate) const PRODUCE_MAX_V1: i16 = 11;
const TXN_OFFSET_COMMIT_MAX_V1: i16 = 4;
/// InitProducerId v3 added the producer id and epoch of KIP-360's bump.
const INIT_PRODUCER_ID_MIN_BUMP: i16 = 3;
/// Java's backoff for CONCURRENT_TRANSACTIONS on a transaction's first
/// AddPartitionsToTxn: the previous transaction is usually a marker write away
/// from complete, and `retry.backoff.ms` would add its whole wait to every
/// transaction.
const CONCURRENT_TRANSACTIONS_BACKOFF: Duration = Duration::from_millis(20);

/// What one attempt of a request came to.
enum Step<T> {
    Done(T),
    /// Try again after a backoff (the coordinator is busy or loading).
    Retry,
    /// The coordinator moved or is unreachable: look it up again.
    Rediscover,
    Fail(TxnFailure),
}

impl<T> Step<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Step<U> {
        match self {
            Step::Done(v) => Step::Done(f(v)),
            Step::Retry => Step::Retry,
            Step::Rediscover => Step::Rediscover,
            Step::Fail(e) => Step::Fail(e),
        }
    }
}

/// Which coordinator a request goes to.
#[derive(Clone, Copy)]
enum Target<'a> {
    Transaction,
    Group(&'a str),
}

/// The transactional producer's shared handle: its state, and the requests
/// that move it. The sender task and the application's calls share it.
pub(crate) struct TransactionManager {
    pub transactional_id: String,
    pub status: Mutex<TxnStatus>,
    /// Runs the application's transactional calls one at a time.
    pub op_lock: tokio::sync::Mutex<()>,
    /// The transaction coordinator's node id, once found.
    coordinator: Mutex<Option<i32>>,
    /// A connection to the transaction coordinator of its own: transactional
    /// requests do not queue behind pipelined produce requests (whose
    /// in-flight limit they would share), and, as with several brokers, a
    /// produce is never ordered after an AddPartitionsToTxn by the connection
    /// alone — the sender must wait for the answer.
    coordinator_conn: tokio::sync::Mutex<Option<(i32, Arc<Connection>)>>,
    cluster: Arc<Cluster>,
    transaction_timeout_ms: i32,
    retry_backoff: Duration,
    max_transaction_version: i16,
}

impl TransactionManager {
    pub fn new(id: String, config: &ProducerConfig, cluster: Arc<Cluster>) -> TransactionManager {
        TransactionManager {
            transactional_id: id,
            status: Mutex::new(TxnStatus::new()),
            op_lock: tokio::sync::Mutex::new(()),
            coordinator: Mutex::new(None),
            coordinator_conn: tokio::sync::Mutex::new(None),
            cluster,
            transaction_timeout_ms: config.transaction_timeout_ms(),
            retry_backoff: config.retry_backoff,
            max_transaction_version: config.max_transaction_version,
        }
    }

    /// Runs `f` on the state under its lock.
    pub fn with<T>(&self, f: impl FnOnce(&mut TxnStatus) -> T) -> T {
        f(&mut self.status.lock().unwrap())
    }

    fn id(&self) -> StrBytes {
        StrBytes::from(self.transactional_id.clone())
    }

    /// Transaction version 2 when allowed by `max_transaction_version` and the
    /// coordinator finalizes `transaction.version` ≥ 2 and speaks EndTxn v5
    /// and Produce v12, as Java 4.x decides; else the classic protocol.
    pub async fn negotiate_version(&self) -> Result<TransactionVersion, TxnFailure> {
        if self.max_transaction_version < 2 {
            return Ok(TransactionVersion::V1);
        }
        self.on_coordinator(Target::Transaction, self.retry_backoff, |conn| async move {
            let mut req = ApiVersionsRequest::default();
            req.client_software_name = "strom-client".into();
            req.client_software_version = env!("CARGO_PKG_VERSION").into();
            let resp = conn.send(&req).await?;
            if resp.error_code != 0 {
                return Ok(Step::Retry);
            }
            let level = resp
                .finalized_features
                .iter()
                .find(|f| f.name.as_str() == TRANSACTION_VERSION_FEATURE)
                .map_or(0, |f| f.max_version_level);
            let end_txn = conn.version_for::<EndTxnRequest>().unwrap_or(-1);
            let produce = conn.version_for::<ProduceRequest>().unwrap_or(-1);
            let v2 = level >= 2 && end_txn > END_TXN_MAX_V1 && produce > PRODUCE_MAX_V1;
            debug!(
                level,
                end_txn, produce, v2, "transaction version negotiated"
            );
            Ok(Step::Done(if v2 {
                TransactionVersion::V2
            } else {
                TransactionVersion::V1
            }))
        })
        .await
    }

    /// InitProducerId with the transactional id: a fresh incarnation
    /// (`current` None, fencing earlier ones) or KIP-360's epoch bump of the
    /// producer this one holds.
    pub async fn init_producer_id(
        &self,
        current: Option<ProducerIdentity>,
    ) -> Result<ProducerIdentity, TxnFailure> {
        self.on_coordinator(Target::Transaction, self.retry_backoff, |conn| async move {
            let mut req = InitProducerIdRequest::default();
            req.transactional_id = Some(self.id());
            req.transaction_timeout_ms = self.transaction_timeout_ms;
            req.producer_id = current.map_or(-1, |c| c.producer_id);
            req.producer_epoch = current.map_or(-1, |c| c.producer_epoch);
            if current.is_some()
                && conn.version_for::<InitProducerIdRequest>()? < INIT_PRODUCER_ID_MIN_BUMP
            {
                // Without KIP-360 the epoch cannot be bumped: Java's
                // `abortableErrorIfPossible` turns the error fatal.
                return Ok(Step::Fail(TxnFailure::Fatal(ProducerError::Client(
                    ClientError::UnsupportedVersion {
                        api_key: strom_protocol::apis::INIT_PRODUCER_ID,
                    },
                ))));
            }
            let resp = conn.send(&req).await?;
            Ok(match coordinator_step(resp.error_code) {
                Some(step) => step,
                None => fatal_unless_ok(resp.error_code).map(|()| ProducerIdentity {
                    producer_id: resp.producer_id,
                    producer_epoch: resp.producer_epoch,
                }),
            })
        })
        .await
    }

    /// V1: AddPartitionsToTxn (v3) for `partitions`.
    pub async fn add_partitions(
        &self,
        identity: ProducerIdentity,
        partitions: &[PartitionKey],
    ) -> Result<(), TxnFailure> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, p) in partitions {
            by_topic.entry(topic.as_str()).or_default().push(*p);
        }
        // Java shortens the wait while the previous transaction completes.
        let backoff = if self.with(|s| s.started) {
            self.retry_backoff
        } else {
            CONCURRENT_TRANSACTIONS_BACKOFF.min(self.retry_backoff)
        };
        let by_topic = &by_topic;
        self.on_coordinator(Target::Transaction, backoff, |conn| async move {
            let mut req = AddPartitionsToTxnRequest::default();
            req.v3_and_below_transactional_id = self.id();
            req.v3_and_below_producer_id = identity.producer_id;
            req.v3_and_below_producer_epoch = identity.producer_epoch;
            req.v3_and_below_topics = by_topic
                .iter()
                .map(|(name, parts)| {
                    let mut t = AddPartitionsToTxnTopic::default();
                    t.name = (*name).into();
                    t.partitions = parts.clone();
                    t
                })
                .collect();
            let resp = conn.send(&req).await?;
            let codes: Vec<i16> = resp
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| t.results_by_partition.iter())
                .map(|p| p.partition_error_code)
                .collect();
            Ok(add_partitions_step(&codes))
        })
        .await
    }

    /// V1: AddOffsetsToTxn, which puts the group's offsets partition in the
    /// transaction before TxnOffsetCommit.
    pub async fn add_offsets(
        &self,
        identity: ProducerIdentity,
        group_id: &str,
    ) -> Result<(), TxnFailure> {
        self.on_coordinator(Target::Transaction, self.retry_backoff, |conn| async move {
            let mut req = AddOffsetsToTxnRequest::default();
            req.transactional_id = self.id();
            req.producer_id = identity.producer_id;
            req.producer_epoch = identity.producer_epoch;
            req.group_id = group_id.into();
            let resp = conn.send(&req).await?;
            Ok(coordinator_step(resp.error_code)
                .unwrap_or_else(|| add_offsets_outcome(resp.error_code)))
        })
        .await
    }

    /// TxnOffsetCommit to the group's coordinator: v5 under V2 (which adds the
    /// offsets partition itself), at most v4 under V1.
    pub async fn txn_offset_commit(
        &self,
        identity: ProducerIdentity,
        version: TransactionVersion,
        offsets: &HashMap<TopicPartition, OffsetAndMetadata>,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), TxnFailure> {
        let mut by_topic: BTreeMap<&str, Vec<(i32, &OffsetAndMetadata)>> = BTreeMap::new();
        for (tp, om) in offsets {
            by_topic
                .entry(tp.topic.as_str())
                .or_default()
                .push((tp.partition, om));
        }
        let max_version = match version {
            TransactionVersion::V1 => TXN_OFFSET_COMMIT_MAX_V1,
            TransactionVersion::V2 => i16::MAX,
        };
        let by_topic = &by_topic;
        let mut req = TxnOffsetCommitRequest::default();
        req.transactional_id = self.id();
        req.group_id = group.group_id.as_str().into();
        req.producer_id = identity.producer_id;
        req.producer_epoch = identity.producer_epoch;
        req.generation_id_or_member_epoch = group.generation_id;
        req.member_id = group.member_id.as_str().into();
        req.group_instance_id = group.group_instance_id.as_deref().map(Into::into);
        req.topics = by_topic
            .iter()
            .map(|(name, parts)| {
                let mut t = TxnOffsetCommitRequestTopic::default();
                t.name = (*name).into();
                t.partitions = parts
                    .iter()
                    .map(|(p, om)| {
                        let mut rp = TxnOffsetCommitRequestPartition::default();
                        rp.partition_index = *p;
                        rp.committed_offset = om.offset;
                        rp.committed_leader_epoch = om.leader_epoch.unwrap_or(-1);
                        rp.committed_metadata = Some(om.metadata.as_str().into());
                        rp
                    })
                    .collect();
                t
            })
            .collect();
        let req = &req;
        self.on_coordinator(
            Target::Group(&group.group_id),
            self.retry_backoff,
            |conn| async move {
                let resp = conn
                    .dispatch_at_most(req, max_version)
                    .await?
                    .wait()
                    .await?;
                let codes: Vec<i16> = resp
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .map(|p| p.error_code)
                    .collect();
                Ok(txn_offset_commit_step(&codes))
            },
        )
        .await
    }

    /// EndTxn: v5 under V2, whose answer is the producer to continue with;
    /// at most v4 under V1 (None: keep the current producer).
    pub async fn end_txn(
        &self,
        identity: ProducerIdentity,
        version: TransactionVersion,
        result: TxnResult,
    ) -> Result<Option<ProducerIdentity>, TxnFailure> {
        let max_version = match version {
            TransactionVersion::V1 => END_TXN_MAX_V1,
            TransactionVersion::V2 => i16::MAX,
        };
        self.on_coordinator(Target::Transaction, self.retry_backoff, |conn| async move {
            let mut req = EndTxnRequest::default();
            req.transactional_id = self.id();
            req.producer_id = identity.producer_id;
            req.producer_epoch = identity.producer_epoch;
            req.committed = result == TxnResult::Commit;
            let pending = conn.dispatch_at_most(&req, max_version).await?;
            let sent_version = conn.version_at_most::<EndTxnRequest>(max_version)?;
            let resp = pending.wait().await?;
            Ok(match coordinator_step(resp.error_code) {
                Some(step) => step,
                None => end_txn_outcome(resp.error_code).map(|()| {
                    (sent_version > END_TXN_MAX_V1 && resp.producer_id >= 0).then_some(
                        ProducerIdentity {
                            producer_id: resp.producer_id,
                            producer_epoch: resp.producer_epoch,
                        },
                    )
                }),
            })
        })
        .await
    }

    /// Runs `op` against `target`'s coordinator until it is done or fails,
    /// looking the coordinator up (again) as needed, `backoff` apart.
    async fn on_coordinator<'a, T, F, Fut>(
        &'a self,
        target: Target<'a>,
        backoff: Duration,
        mut op: F,
    ) -> Result<T, TxnFailure>
    where
        F: FnMut(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<Step<T>, ClientError>>,
    {
        let mut group_coordinator = None;
        loop {
            let cached = match target {
                Target::Transaction => *self.coordinator.lock().unwrap(),
                Target::Group(_) => group_coordinator,
            };
            let step = match cached {
                Some(node) => match self.connection(target, node).await {
                    Ok(conn) => op(conn).await.unwrap_or_else(transport_step),
                    Err(e) => transport_step(e),
                },
                None => match self.find_coordinator(target).await {
                    Ok(node) => {
                        match target {
                            Target::Transaction => *self.coordinator.lock().unwrap() = Some(node),
                            Target::Group(_) => group_coordinator = Some(node),
                        }
                        continue;
                    }
                    Err(step) => step,
                },
            };
            match step {
                Step::Done(v) => return Ok(v),
                Step::Fail(f) => return Err(f),
                Step::Retry => {}
                Step::Rediscover => match target {
                    Target::Transaction => *self.coordinator.lock().unwrap() = None,
                    Target::Group(_) => group_coordinator = None,
                },
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// The connection for a request to `node`: the dedicated one for the
    /// transaction coordinator (reopened when closed or moved), the shared
    /// one for a group coordinator.
    async fn connection(
        &self,
        target: Target<'_>,
        node: i32,
    ) -> Result<Arc<Connection>, ClientError> {
        if let Target::Group(_) = target {
            return self.cluster.connection(node).await;
        }
        let mut slot = self.coordinator_conn.lock().await;
        if let Some((n, conn)) = slot.as_ref() {
            if *n == node && !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        let broker = self
            .cluster
            .broker(node)
            .ok_or_else(|| ClientError::NoMetadata {
                what: format!("transaction coordinator {node}"),
            })?;
        let config = self.cluster.connection_config().clone();
        let conn = Arc::new(Connection::connect(&broker.addr(), config).await?);
        *slot = Some((node, conn.clone()));
        Ok(conn)
    }

    /// FindCoordinator for the transactional id (key type 1) or a group.
    async fn find_coordinator<T>(&self, target: Target<'_>) -> Result<i32, Step<T>> {
        let (key_type, key) = match target {
            Target::Transaction => (KEY_TYPE_TRANSACTION, self.transactional_id.as_str()),
            Target::Group(g) => (KEY_TYPE_GROUP, g),
        };
        let conn = self
            .cluster
            .any_connection()
            .await
            .map_err(transport_step)?;
        let version = conn
            .version_for::<FindCoordinatorRequest>()
            .map_err(transport_step)?;
        let mut req = FindCoordinatorRequest::default();
        req.key_type = key_type;
        if version >= 4 {
            req.coordinator_keys = vec![key.into()];
        } else {
            req.key = key.into();
        }
        let resp = conn.send(&req).await.map_err(transport_step)?;
        let (code, node, message) = if version >= 4 {
            let Some(c) = resp.coordinators.first() else {
                return Err(Step::Retry);
            };
            (c.error_code, c.node_id, c.error_message.clone())
        } else {
            (resp.error_code, resp.node_id, resp.error_message.clone())
        };
        let error =
            || ProducerError::Client(ClientError::kafka(code, message.map(|m| m.to_string())));
        match ErrorCode::from_code(code) {
            Some(ErrorCode::None) => {}
            Some(
                ErrorCode::CoordinatorNotAvailable
                | ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorLoadInProgress,
            ) => return Err(Step::Retry),
            Some(ErrorCode::GroupAuthorizationFailed) => {
                return Err(Step::Fail(TxnFailure::Abortable {
                    cause: error(),
                    bump: false,
                }))
            }
            _ => return Err(Step::Fail(TxnFailure::Fatal(error()))),
        }
        if self.cluster.broker(node).is_none() {
            self.cluster.refresh(&[]).await.map_err(transport_step)?;
        }
        debug!(key, key_type, node, "coordinator found");
        Ok(node)
    }
}

/// A connection-level failure: retriable ones look the coordinator up again
/// (it may have moved); the rest (an unsupported version, a malformed
/// answer) are fatal.
fn transport_step<T>(e: ClientError) -> Step<T> {
    if e.is_retriable() {
        debug!(error = %e, "transactional request failed; retrying");
        Step::Rediscover
    } else {
        Step::Fail(TxnFailure::Fatal(ProducerError::Client(e)))
    }
}

/// The codes every coordinator request retries on.
fn coordinator_step<T>(code: i16) -> Option<Step<T>> {
    match ErrorCode::from_code(code)? {
        ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => Some(Step::Rediscover),
        ErrorCode::CoordinatorLoadInProgress | ErrorCode::ConcurrentTransactions => {
            Some(Step::Retry)
        }
        _ => None,
    }
}

fn kafka(code: i16) -> ProducerError {
    ProducerError::Client(ClientError::kafka(code, None))
}

fn is_fenced(code: i16) -> bool {
    code == ErrorCode::ProducerFenced.code() || code == ErrorCode::InvalidProducerEpoch.code()
}

/// The producer's state on the coordinator is gone: abort, and continue under
/// a new epoch (Java's `abortableErrorIfPossible`).
fn lost_producer(code: i16) -> bool {
    code == ErrorCode::UnknownProducerId.code()
        || code == ErrorCode::InvalidProducerIdMapping.code()
}

/// Success, or a fatal error (InitProducerId: fenced, not authorized, anything
/// unexpected). Fenced answers are reported as PRODUCER_FENCED, as Java does.
fn fatal_unless_ok(code: i16) -> Step<()> {
    if code == 0 {
        Step::Done(())
    } else if is_fenced(code) {
        Step::Fail(TxnFailure::Fatal(kafka(ErrorCode::ProducerFenced.code())))
    } else {
        Step::Fail(TxnFailure::Fatal(kafka(code)))
    }
}

/// EndTxn's codes beyond the coordinator's (Java's `EndTxnHandler`).
fn end_txn_outcome(code: i16) -> Step<()> {
    if lost_producer(code) {
        Step::Fail(TxnFailure::Abortable {
            cause: kafka(code),
            bump: true,
        })
    } else {
        // INVALID_TXN_STATE, fenced, not authorized, anything unexpected.
        fatal_unless_ok(code)
    }
}

/// AddOffsetsToTxn's codes beyond the coordinator's.
fn add_offsets_outcome(code: i16) -> Step<()> {
    if lost_producer(code) {
        Step::Fail(TxnFailure::Abortable {
            cause: kafka(code),
            bump: true,
        })
    } else if code == ErrorCode::GroupAuthorizationFailed.code() {
        Step::Fail(TxnFailure::Abortable {
            cause: kafka(code),
            bump: false,
        })
    } else {
        fatal_unless_ok(code)
    }
}

/// AddPartitionsToTxn's per-partition codes (Java's `AddPartitionsToTxnHandler`).
fn add_partitions_step(codes: &[i16]) -> Step<()> {
    let mut abortable = None;
    for &code in codes {
        if code == 0 || code == ErrorCode::OperationNotAttempted.code() {
            continue;
        }
        if let Some(step) = coordinator_step(code) {
            return step;
        }
        if code == ErrorCode::UnknownTopicOrPartition.code() {
            return Step::Retry;
        }
        if is_fenced(code)
            || code == ErrorCode::TransactionalIdAuthorizationFailed.code()
            || code == ErrorCode::InvalidTxnState.code()
        {
            return fatal_unless_ok(code);
        }
        let bump = lost_producer(code);
        if bump || abortable.is_none() {
            abortable = Some(TxnFailure::Abortable {
                cause: kafka(code),
                bump,
            });
        }
    }
    match abortable {
        Some(f) => Step::Fail(f),
        None if codes.contains(&ErrorCode::OperationNotAttempted.code()) => {
            Step::Fail(TxnFailure::Abortable {
                cause: kafka(ErrorCode::OperationNotAttempted.code()),
                bump: false,
            })
        }
        None => Step::Done(()),
    }
}

/// TxnOffsetCommit's per-partition codes (Java's `TxnOffsetCommitHandler`,
/// plus CONCURRENT_TRANSACTIONS, which a v5 commit gets while the previous
/// transaction completes).
fn txn_offset_commit_step(codes: &[i16]) -> Step<()> {
    let mut step = Step::Done(());
    for &code in codes {
        let Some(e) = ErrorCode::from_code(code) else {
            return Step::Fail(TxnFailure::Fatal(kafka(code)));
        };
        match e {
            ErrorCode::None => {}
            ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::RequestTimedOut => step = Step::Rediscover,
            ErrorCode::UnknownTopicOrPartition
            | ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::ConcurrentTransactions => {
                if matches!(step, Step::Done(())) {
                    step = Step::Retry;
                }
            }
            ErrorCode::GroupAuthorizationFailed
            | ErrorCode::FencedInstanceId
            | ErrorCode::UnknownMemberId
            | ErrorCode::IllegalGeneration
            | ErrorCode::TransactionAbortable => {
                return Step::Fail(TxnFailure::Abortable {
                    cause: kafka(code),
                    bump: false,
                })
            }
            _ => return fatal_unless_ok(code),
        }
    }
    step
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(c: &[ErrorCode]) -> Vec<i16> {
        c.iter().map(|e| e.code()).collect()
    }

    fn fatal_code<T>(s: Step<T>) -> Option<i16> {
        match s {
            Step::Fail(TxnFailure::Fatal(e)) => e.kafka_code(),
            _ => None,
        }
    }

    #[test]
    fn add_partitions_errors_map_as_java() {
        use ErrorCode::*;
        assert!(matches!(
            add_partitions_step(&codes(&[None, None])),
            Step::Done(())
        ));
        assert!(matches!(
            add_partitions_step(&codes(&[None, ConcurrentTransactions])),
            Step::Retry
        ));
        assert!(matches!(
            add_partitions_step(&codes(&[NotCoordinator])),
            Step::Rediscover
        ));
        assert_eq!(
            fatal_code(add_partitions_step(&codes(&[InvalidProducerEpoch]))),
            Some(ProducerFenced.code())
        );
        assert_eq!(
            fatal_code(add_partitions_step(&codes(&[InvalidTxnState]))),
            Some(InvalidTxnState.code())
        );
        assert!(matches!(
            add_partitions_step(&codes(&[TopicAuthorizationFailed, OperationNotAttempted])),
            Step::Fail(TxnFailure::Abortable { bump: false, .. })
        ));
        assert!(matches!(
            add_partitions_step(&codes(&[InvalidProducerIdMapping])),
            Step::Fail(TxnFailure::Abortable { bump: true, .. })
        ));
    }

    #[test]
    fn end_txn_and_offsets_errors_map_as_java() {
        use ErrorCode::*;
        assert!(matches!(
            coordinator_step::<()>(ConcurrentTransactions.code()),
            Some(Step::Retry)
        ));
        assert!(coordinator_step::<()>(ProducerFenced.code()).is_none());
        assert_eq!(
            fatal_code(end_txn_outcome(InvalidTxnState.code())),
            Some(InvalidTxnState.code())
        );
        assert!(matches!(
            end_txn_outcome(UnknownProducerId.code()),
            Step::Fail(TxnFailure::Abortable { bump: true, .. })
        ));
        assert!(matches!(
            add_offsets_outcome(GroupAuthorizationFailed.code()),
            Step::Fail(TxnFailure::Abortable { bump: false, .. })
        ));
        assert!(matches!(
            txn_offset_commit_step(&codes(&[None, IllegalGeneration])),
            Step::Fail(TxnFailure::Abortable { .. })
        ));
        assert!(matches!(
            txn_offset_commit_step(&codes(&[ConcurrentTransactions, NotCoordinator])),
            Step::Rediscover
        ));
        assert_eq!(
            fatal_code(txn_offset_commit_step(&codes(&[ProducerFenced]))),
            Some(ProducerFenced.code())
        );
    }
}
