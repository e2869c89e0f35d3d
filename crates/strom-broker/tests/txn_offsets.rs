//! Consumer offsets committed inside transactions, over the wire (KIP-98,
//! KIP-447): what `sendOffsetsToTransaction` does — AddOffsetsToTxn,
//! TxnOffsetCommit, EndTxn — and what consumers see through OffsetFetch with
//! and without `require_stable`, fencing, and a restart.
//! KIP-890 verification: a commit outside the transaction is refused, and
//! v5 (transaction version 2) adds the offsets partition itself.

mod common;

use std::time::{Duration, Instant};

use common::requests::*;
use common::*;
use strom_protocol::messages::*;
use strom_protocol::ErrorCode;

const TOPIC: &str = "in";
const GROUP: &str = "eos-group";
const TXN_ID: &str = "eos-app";

async fn init(client: &mut Client) -> (i64, i16) {
    init_transactional(client, TXN_ID, 60_000).await
}

async fn add_offsets(client: &mut Client, (pid, epoch): (i64, i16)) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut req = AddOffsetsToTxnRequest::default();
        req.transactional_id = StrBytes::from(TXN_ID);
        req.producer_id = pid;
        req.producer_epoch = epoch;
        req.group_id = StrBytes::from(GROUP);
        let resp: AddOffsetsToTxnResponse = client.call(&req, 3).await;
        match code(resp.error_code) {
            ErrorCode::None => return,
            ErrorCode::ConcurrentTransactions if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("AddOffsetsToTxn failed: {other:?}"),
        }
    }
}

async fn txn_offset_commit(client: &mut Client, producer: (i64, i16), offset: i64) -> ErrorCode {
    txn_offset_commit_v(client, producer, offset, 3).await
}

async fn txn_offset_commit_v(
    client: &mut Client,
    (pid, epoch): (i64, i16),
    offset: i64,
    version: i16,
) -> ErrorCode {
    let mut p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    p.committed_metadata = Some(StrBytes::from("eos"));
    let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
    t.name = StrBytes::from(TOPIC);
    t.partitions = vec![p];
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = StrBytes::from(TXN_ID);
    req.group_id = StrBytes::from(GROUP);
    req.producer_id = pid;
    req.producer_epoch = epoch;
    req.topics = vec![t];
    let resp: TxnOffsetCommitResponse = client.call(&req, version).await;
    code(resp.topics[0].partitions[0].error_code)
}

async fn end_txn(client: &mut Client, (pid, epoch): (i64, i16), commit: bool) {
    let mut req = EndTxnRequest::default();
    req.transactional_id = StrBytes::from(TXN_ID);
    req.producer_id = pid;
    req.producer_epoch = epoch;
    req.committed = commit;
    let resp: EndTxnResponse = client.call(&req, 3).await;
    assert_eq!(code(resp.error_code), ErrorCode::None);
}

/// OffsetFetch v8 of the topic's partition 0: (committed offset, code).
async fn fetch(client: &mut Client, require_stable: bool) -> (i64, ErrorCode) {
    let mut t = offset_fetch_request::OffsetFetchRequestTopics::default();
    t.name = StrBytes::from(TOPIC);
    t.partition_indexes = vec![0];
    let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
    g.group_id = StrBytes::from(GROUP);
    g.topics = Some(vec![t]);
    let mut req = OffsetFetchRequest::default();
    req.groups = vec![g];
    req.require_stable = require_stable;
    let resp: OffsetFetchResponse = client.call(&req, 8).await;
    let p = &resp.groups[0].topics[0].partitions[0];
    (p.committed_offset, code(p.error_code))
}

/// Polls a stable OffsetFetch until the transaction's markers are written.
async fn stable_offset(client: &mut Client) -> i64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match fetch(client, true).await {
            (offset, ErrorCode::None) => return offset,
            (_, ErrorCode::UnstableOffsetCommit) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("OffsetFetch failed: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_become_visible_when_it_commits() {
    let props = [("offsets.topic.num.partitions", "3")];
    let broker = start_with(&props).await;
    let mut client = broker.client().await;
    create_topic(&mut client, TOPIC, 1, &[]).await;
    let producer = init(&mut client).await;

    add_offsets(&mut client, producer).await;
    assert_eq!(
        txn_offset_commit(&mut client, producer, 42).await,
        ErrorCode::None
    );
    assert_eq!(
        fetch(&mut client, true).await,
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    assert_eq!(fetch(&mut client, false).await, (-1, ErrorCode::None));
    end_txn(&mut client, producer, true).await;
    assert_eq!(stable_offset(&mut client).await, 42);

    // An aborted transaction leaves the committed offset alone.
    add_offsets(&mut client, producer).await;
    assert_eq!(
        txn_offset_commit(&mut client, producer, 50).await,
        ErrorCode::None
    );
    end_txn(&mut client, producer, false).await;
    assert_eq!(stable_offset(&mut client).await, 42);

    let broker = broker.restart(&props).await;
    let mut client = broker.client().await;
    assert_eq!(stable_offset(&mut client).await, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_producer_cannot_commit_offsets() {
    let broker = start_with(&[("offsets.topic.num.partitions", "3")]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, TOPIC, 1, &[]).await;
    let zombie = init(&mut client).await;
    add_offsets(&mut client, zombie).await;
    assert_eq!(
        txn_offset_commit(&mut client, zombie, 10).await,
        ErrorCode::None
    );

    // A new instance fences the zombie: its open transaction is aborted with
    // markers of the bumped epoch.
    let fresh = init(&mut client).await;
    assert!(fresh.1 > zombie.1);
    assert_eq!(stable_offset(&mut client).await, -1);
    assert_eq!(
        txn_offset_commit(&mut client, zombie, 11).await,
        ErrorCode::InvalidProducerEpoch
    );
    assert_eq!(fetch(&mut client, true).await, (-1, ErrorCode::None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_outside_the_transaction_is_refused_and_v5_joins_it() {
    let broker = start_with(&[("offsets.topic.num.partitions", "3")]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, TOPIC, 1, &[]).await;
    let producer = init(&mut client).await;
    // No AddOffsetsToTxn: the classic protocol refuses the commit.
    assert_eq!(
        txn_offset_commit(&mut client, producer, 7).await,
        ErrorCode::InvalidTxnState
    );
    assert_eq!(fetch(&mut client, true).await, (-1, ErrorCode::None));
    // v5 (transaction version 2) adds the offsets partition to the transaction.
    assert_eq!(
        txn_offset_commit_v(&mut client, producer, 7, 5).await,
        ErrorCode::None
    );
    assert_eq!(
        fetch(&mut client, true).await,
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    end_txn(&mut client, producer, true).await;
    assert_eq!(stable_offset(&mut client).await, 7);
}
