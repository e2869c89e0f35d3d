//! The transactional producer's calls, shaped like Java's `KafkaProducer`
//! (KIP-98): `init_transactions`, `begin_transaction`,
//! `send_offsets_to_transaction`, `commit_transaction`, `abort_transaction`.
//!
//! Each call runs on the caller's task, one at a time, bounded by
//! `max.block.ms`; a call that runs out of time leaves the state where it was
//! (Initializing, Committing, Aborting) and calling it again resumes it, as in
//! Java. The state lives in `txn_state.rs`, the coordinator requests in
//! `txn_requests.rs`; the sender task sees the same state.
//!
//! Which protocol: transaction version 2 (KIP-890 part 2) when the broker
//! finalizes `transaction.version` ≥ 2 and speaks EndTxn v5 and Produce v12
//! (and `max_transaction_version` allows it), else the classic protocol —
//! decided at `init_transactions`, as Java 4.x does.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::debug;

use super::accumulator::ProducerIdentity;
use super::sender::Command;
use super::txn_requests::TransactionManager;
use super::txn_state::{InitKind, TransactionVersion, TxnFailure, TxnResult};
use super::{Producer, ProducerError};
use crate::consumer::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};

impl Producer {
    /// Registers `transactional.id` with its coordinator (Java's
    /// `initTransactions`): finds the coordinator, chooses the transaction
    /// protocol, and obtains a producer id and epoch with InitProducerId. The
    /// new epoch fences every earlier producer with the same id; a
    /// transaction such a producer left open is aborted first. Call once,
    /// before any other transactional call.
    ///
    /// After an abortable error, calling it again aborts the transaction and
    /// continues under the same producer id with a bumped epoch (KIP-360),
    /// like [`abort_transaction`](Self::abort_transaction).
    ///
    /// Errors: [`ProducerError::IllegalState`] without `transactional.id` or
    /// when already initialized; [`ProducerError::TransactionFatal`] when
    /// fenced or not authorized; [`ProducerError::Timeout`] after
    /// `max.block.ms` (call again to resume).
    pub async fn init_transactions(&self) -> Result<(), ProducerError> {
        let txn = self.txn_manager()?;
        self.within_max_block("init_transactions", async {
            let _op = txn.op_lock.lock().await;
            match txn.with(|s| s.start_init())? {
                InitKind::Fresh => {
                    let version = txn.negotiate_version().await.map_err(|f| fail(txn, f))?;
                    let identity = txn.init_producer_id(None).await.map_err(|f| fail(txn, f))?;
                    self.set_identity(identity).await?;
                    txn.with(|s| s.initialized(identity, version));
                    debug!(
                        transactional_id = %txn.transactional_id,
                        producer_id = identity.producer_id,
                        epoch = identity.producer_epoch,
                        ?version,
                        "transactions initialized"
                    );
                    Ok(())
                }
                InitKind::Recover => {
                    txn.with(|s| {
                        s.start_completion(TxnResult::Abort)?;
                        s.epoch_bump_required = true;
                        Ok::<(), ProducerError>(())
                    })?;
                    self.end_transaction(txn, TxnResult::Abort).await
                }
            }
        })
        .await
    }

    /// Starts a transaction (Java's `beginTransaction`); local, no request.
    /// Records sent until the transaction ends belong to it.
    pub fn begin_transaction(&self) -> Result<(), ProducerError> {
        self.txn_manager()?.with(|s| s.begin())
    }

    /// Commits `offsets` for the consumer group of `group` as part of the
    /// transaction (Java's `sendOffsetsToTransaction`): they become the
    /// group's committed offsets when the transaction commits, and are
    /// dropped if it aborts. `group` comes from
    /// [`Consumer::group_metadata`](crate::Consumer::group_metadata), so a
    /// consumer that lost its partitions in a rebalance cannot commit them
    /// (KIP-447). Each offset is the next record to read.
    ///
    /// The classic protocol sends AddOffsetsToTxn, then TxnOffsetCommit (v4 at
    /// most) to the group coordinator; transaction version 2 sends only
    /// TxnOffsetCommit v5. Running out of `max.block.ms` here leaves the
    /// offsets' fate unknown, so the transaction becomes abortable.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &HashMap<TopicPartition, OffsetAndMetadata>,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), ProducerError> {
        let txn = self.txn_manager()?;
        if group.group_id.is_empty() {
            return Err(ProducerError::IllegalState(
                "consumer group metadata without a group id".into(),
            ));
        }
        let result = self
            .within_max_block("send_offsets_to_transaction", async {
                let _op = txn.op_lock.lock().await;
                let (identity, version) = txn.with(|s| {
                    s.check_in_transaction()?;
                    Ok::<_, ProducerError>((current_identity(s.identity)?, s.version))
                })?;
                if offsets.is_empty() {
                    return Ok(());
                }
                match version {
                    TransactionVersion::V1 => {
                        txn.add_offsets(identity, &group.group_id)
                            .await
                            .map_err(|f| fail(txn, f))?;
                        txn.with(|s| s.offsets_added());
                    }
                    // TxnOffsetCommit v5 adds the offsets partition itself:
                    // from the moment it is sent, the transaction may have
                    // started.
                    TransactionVersion::V2 => txn.with(|s| s.offsets_added()),
                }
                txn.txn_offset_commit(identity, version, offsets, group)
                    .await
                    .map_err(|f| fail(txn, f))
            })
            .await;
        if let Err(e @ ProducerError::Timeout { .. }) = &result {
            fail(
                txn,
                TxnFailure::Abortable {
                    cause: e.clone(),
                    bump: false,
                },
            );
        }
        result
    }

    /// Commits the transaction (Java's `commitTransaction`): flushes first, so
    /// every record sent in the transaction is acknowledged; if one failed the
    /// commit fails with [`ProducerError::TransactionAbortable`] and the
    /// transaction must be aborted. Then EndTxn; under transaction version 2
    /// its answer carries the producer epoch the next transaction uses.
    pub async fn commit_transaction(&self) -> Result<(), ProducerError> {
        let txn = self.txn_manager()?;
        self.within_max_block("commit_transaction", async {
            let _op = txn.op_lock.lock().await;
            txn.with(|s| s.start_completion(TxnResult::Commit))?;
            self.end_transaction(txn, TxnResult::Commit).await
        })
        .await
    }

    /// Aborts the transaction (Java's `abortTransaction`): records not yet
    /// sent fail with [`ProducerError::TransactionAborted`], sent ones are
    /// waited for, then EndTxn marks everything the transaction wrote as
    /// aborted (read_committed consumers skip it) and drops its offsets. After
    /// an abortable error the producer continues with a new epoch. Allowed in
    /// a transaction or after an abortable error; a fatal error stays fatal.
    pub async fn abort_transaction(&self) -> Result<(), ProducerError> {
        let txn = self.txn_manager()?;
        self.within_max_block("abort_transaction", async {
            let _op = txn.op_lock.lock().await;
            txn.with(|s| s.start_completion(TxnResult::Abort))?;
            self.end_transaction(txn, TxnResult::Abort).await
        })
        .await
    }

    /// Aborts an open transaction before closing, as Java's sender does on a
    /// graceful shutdown; errors are only logged.
    pub(super) async fn abort_open_transaction(&self) {
        let open = self
            .txn
            .as_ref()
            .is_some_and(|t| t.with(|s| s.has_open_transaction()));
        if open {
            if let Err(e) = self.abort_transaction().await {
                debug!(error = %e, "aborting the open transaction on close failed");
            }
        }
    }

    /// Ends the transaction once Committing / Aborting: waits for the
    /// sender (flush; under Aborting the sender fails unsent batches), then
    /// EndTxn and the epoch bump the state asks for.
    async fn end_transaction(
        &self,
        txn: &Arc<TransactionManager>,
        result: TxnResult,
    ) -> Result<(), ProducerError> {
        self.flush_sender().await?;
        let (identity, version, plan) = txn.with(|s| {
            if result == TxnResult::Commit {
                // A batch failed during the flush: the commit cannot go on.
                s.fail_if_error()?;
            }
            Ok::<_, ProducerError>((current_identity(s.identity)?, s.version, s.end_plan(result)))
        })?;
        let mut next = identity;
        if plan.end_txn {
            if let Some(bumped) = txn
                .end_txn(identity, version, result)
                .await
                .map_err(|f| fail(txn, f))?
            {
                next = bumped;
            }
        }
        if plan.bump_after {
            next = txn
                .init_producer_id(Some(next))
                .await
                .map_err(|f| fail(txn, f))?;
        }
        if next.producer_id != identity.producer_id
            || next.producer_epoch != identity.producer_epoch
        {
            self.set_identity(next).await?;
        }
        txn.with(|s| s.completed(next));
        debug!(?result, epoch = next.producer_epoch, "transaction ended");
        Ok(())
    }

    fn txn_manager(&self) -> Result<&Arc<TransactionManager>, ProducerError> {
        self.txn.as_ref().ok_or_else(|| {
            ProducerError::IllegalState(
                "transactional call on a producer without transactional.id".into(),
            )
        })
    }

    /// Runs `call` for at most `max.block.ms`.
    async fn within_max_block<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, ProducerError>>,
    ) -> Result<T, ProducerError> {
        tokio::time::timeout(self.max_block, call)
            .await
            .unwrap_or(Err(ProducerError::Timeout {
                operation,
                max_block_ms: self.max_block.as_millis() as u64,
            }))
    }

    /// Waits until every record sent so far is acknowledged or failed.
    async fn flush_sender(&self) -> Result<(), ProducerError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Flush(tx))
            .map_err(|_| ProducerError::Closed)?;
        rx.await.map_err(|_| ProducerError::Closed)
    }

    /// Has the sender continue under `identity`, sequences from 0.
    async fn set_identity(&self, identity: ProducerIdentity) -> Result<(), ProducerError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::SetIdentity(identity, tx))
            .map_err(|_| ProducerError::Closed)?;
        rx.await.map_err(|_| ProducerError::Closed)
    }
}

/// Puts the state in the error `failure` calls for and returns the error the
/// call reports.
fn fail(txn: &TransactionManager, failure: TxnFailure) -> ProducerError {
    let error = match &failure {
        TxnFailure::Fatal(cause) => ProducerError::TransactionFatal(Box::new(cause.clone())),
        TxnFailure::Abortable { cause, .. } => {
            ProducerError::TransactionAbortable(Box::new(cause.clone()))
        }
    };
    txn.with(|s| s.fail(failure));
    error
}

/// The producer id a transactional call needs: present once initialized.
fn current_identity(identity: Option<ProducerIdentity>) -> Result<ProducerIdentity, ProducerError> {
    identity.ok_or_else(|| ProducerError::IllegalState("call init_transactions first".into()))
}
