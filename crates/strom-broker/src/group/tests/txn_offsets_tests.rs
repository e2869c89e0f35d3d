//! Transactional offset commits (KIP-98 / KIP-447) end to end inside the
//! broker: TxnOffsetCommit, the transaction marker in `__consumer_offsets`,
//! OffsetFetch with `require_stable`, deletion, expiry and reloading.

use bytes::Bytes;
use strom_protocol::messages::*;
use strom_protocol::records::{control_batch, ControlRecordType};
use strom_protocol::ErrorCode;

use super::Node;
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::handlers;
use crate::state::now_ms;

const GROUP: &str = "g";
const TOPIC: &str = "t";

fn code(c: ErrorCode) -> i16 {
    c.code()
}

fn txn_request(
    group: &str,
    producer_id: i64,
    epoch: i16,
    offsets: &[(i32, i64)],
) -> TxnOffsetCommitRequest {
    let mut topic = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
    topic.name = StrBytes::from(TOPIC);
    topic.partitions = offsets
        .iter()
        .map(|(p, o)| {
            let mut part = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
            part.partition_index = *p;
            part.committed_offset = *o;
            part.committed_metadata = Some(StrBytes::from("m"));
            part
        })
        .collect();
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = StrBytes::from("tx");
    req.group_id = StrBytes::from(group);
    req.producer_id = producer_id;
    req.producer_epoch = epoch;
    req.topics = vec![topic];
    req
}

/// Sends a TxnOffsetCommit (v3) and returns the partitions' codes.
async fn txn_commit(node: &Node, producer_id: i64, epoch: i16, offsets: &[(i32, i64)]) -> Vec<i16> {
    txn_commit_req(node, &txn_request(GROUP, producer_id, epoch, offsets), 3).await
}

/// Commits through the group coordinator as the handler does once the
/// transaction coordinator verified the transaction (these tests stand in for
/// the transaction coordinator: their producers and markers are made up).
async fn txn_commit_req(node: &Node, req: &TxnOffsetCommitRequest, version: i16) -> Vec<i16> {
    if req.group_id.is_empty() || req.transactional_id.is_empty() {
        return txn_commit_handler(node, req, version).await;
    }
    let commit = handlers::txn_offset_commit::commit_of(req);
    node.state
        .groups
        .txn_offset_commit(&node.state, &commit, now_ms())
        .await
        .into_iter()
        .map(|c| c.code())
        .collect()
}

/// Sends the request through the handler (validation before verification).
async fn txn_commit_handler(node: &Node, req: &TxnOffsetCommitRequest, version: i16) -> Vec<i16> {
    let resp: TxnOffsetCommitResponse = node
        .call(req, version, handler!(handlers::txn_offset_commit::handle))
        .await;
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// Writes `producer_id`'s COMMIT or ABORT marker into the group's
/// `__consumer_offsets` partition and tells the coordinator, as the
/// transaction coordinator does.
async fn end_txn(node: &Node, producer_id: i64, epoch: i16, commit: bool) {
    let state = &node.state;
    let index = state.groups.partition_for(GROUP);
    let partition = state
        .replicas
        .get(OFFSETS_TOPIC, index)
        .expect("offsets partition");
    let kind = if commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    let now = now_ms();
    let batch: Bytes = control_batch(
        kind,
        producer_id,
        epoch,
        0,
        0,
        partition.leader_epoch(),
        now,
    )
    .freeze();
    partition
        .append_from_coordinator(&batch, now)
        .await
        .expect("marker written");
    state
        .groups
        .complete_transaction(index, producer_id, commit)
        .await;
}

/// OffsetFetch of partition `p` of the topic: (committed offset, error code).
async fn fetch(node: &Node, p: i32, require_stable: bool, version: i16) -> (i64, i16) {
    let mut req = OffsetFetchRequest::default();
    req.require_stable = require_stable;
    if version >= 8 {
        let mut t = offset_fetch_request::OffsetFetchRequestTopics::default();
        t.name = StrBytes::from(TOPIC);
        t.partition_indexes = vec![p];
        let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
        g.group_id = StrBytes::from(GROUP);
        g.topics = Some(vec![t]);
        req.groups = vec![g];
    } else {
        let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
        t.name = StrBytes::from(TOPIC);
        t.partition_indexes = vec![p];
        req.group_id = StrBytes::from(GROUP);
        req.topics = Some(vec![t]);
    }
    let resp: OffsetFetchResponse = node
        .call(&req, version, handler!(handlers::offset_fetch::handle))
        .await;
    if version >= 8 {
        let part = &resp.groups[0].topics[0].partitions[0];
        (part.committed_offset, part.error_code)
    } else {
        let part = &resp.topics[0].partitions[0];
        (part.committed_offset, part.error_code)
    }
}

/// The committed offset OffsetFetch (v8, not requiring stable) reports, or -1.
async fn committed(node: &Node, p: i32) -> i64 {
    let (offset, error) = fetch(node, p, false, 8).await;
    assert_eq!(error, 0);
    offset
}

/// A plain OffsetCommit (v8, no generation) of partition `p`.
async fn plain_commit(node: &Node, p: i32, offset: i64) {
    let mut part = offset_commit_request::OffsetCommitRequestPartition::default();
    part.partition_index = p;
    part.committed_offset = offset;
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = StrBytes::from(TOPIC);
    t.partitions = vec![part];
    let mut req = OffsetCommitRequest::default();
    req.group_id = StrBytes::from(GROUP);
    req.generation_id_or_member_epoch = -1;
    req.topics = vec![t];
    let resp: OffsetCommitResponse = node
        .call(&req, 8, handler!(handlers::offset_commit::handle))
        .await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
}

fn node() -> Node {
    let node = Node::start(3);
    node.create_topic(TOPIC, 2);
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_offsets_are_invisible_until_the_commit_marker() {
    let node = node();
    assert_eq!(
        txn_commit(&node, 100, 0, &[(0, 10), (1, 11)]).await,
        vec![0, 0]
    );
    assert_eq!(committed(&node, 0).await, -1);
    assert_eq!(committed(&node, 1).await, -1);

    end_txn(&node, 100, 0, true).await;
    assert_eq!(committed(&node, 0).await, 10);
    assert_eq!(committed(&node, 1).await, 11);
    assert_eq!(
        fetch(&node, 0, true, 8).await,
        (10, 0),
        "stable once committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_transaction_leaves_the_committed_offset() {
    let node = node();
    plain_commit(&node, 0, 5).await;
    assert_eq!(txn_commit(&node, 100, 0, &[(0, 10)]).await, vec![0]);
    end_txn(&node, 100, 0, false).await;
    assert_eq!(committed(&node, 0).await, 5);
    assert_eq!(fetch(&node, 0, true, 7).await, (5, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_stable_answers_unstable_offset_commit_while_a_transaction_is_open() {
    let node = node();
    plain_commit(&node, 0, 5).await;
    txn_commit(&node, 100, 0, &[(0, 10)]).await;
    let unstable = code(ErrorCode::UnstableOffsetCommit);
    assert_eq!(fetch(&node, 0, true, 7).await, (-1, unstable));
    assert_eq!(fetch(&node, 0, true, 8).await, (-1, unstable));
    // Without require_stable the committed offset is returned as usual, and
    // other partitions are not affected.
    assert_eq!(fetch(&node, 0, false, 7).await, (5, 0));
    assert_eq!(fetch(&node, 1, true, 8).await, (-1, 0));

    // Fetching every offset of the group (no topics) flags the partition too.
    let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
    g.group_id = StrBytes::from(GROUP);
    g.topics = None;
    let mut req = OffsetFetchRequest::default();
    req.groups = vec![g];
    req.require_stable = true;
    let resp: OffsetFetchResponse = node
        .call(&req, 8, handler!(handlers::offset_fetch::handle))
        .await;
    assert_eq!(resp.groups[0].topics[0].partitions[0].error_code, unstable);

    end_txn(&node, 100, 0, true).await;
    assert_eq!(fetch(&node, 0, true, 8).await, (10, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_plain_commit_wins_over_an_older_pending_offset() {
    let node = node();
    txn_commit(&node, 100, 0, &[(0, 10), (1, 11)]).await;
    plain_commit(&node, 0, 20).await;
    end_txn(&node, 100, 0, true).await;
    assert_eq!(
        committed(&node, 0).await,
        20,
        "the plain commit is later in the log"
    );
    assert_eq!(committed(&node, 1).await, 11);

    // The other way round the transaction's offset is the later record.
    plain_commit(&node, 1, 30).await;
    txn_commit(&node, 100, 0, &[(1, 31)]).await;
    end_txn(&node, 100, 0, true).await;
    assert_eq!(committed(&node, 1).await, 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_committed_transactions_and_keeps_open_ones_pending() {
    let node = node();
    plain_commit(&node, 0, 1).await;
    // Committed, aborted, and still open at the restart.
    txn_commit(&node, 100, 0, &[(0, 10)]).await;
    end_txn(&node, 100, 0, true).await;
    txn_commit(&node, 200, 0, &[(1, 20)]).await;
    end_txn(&node, 200, 0, false).await;
    txn_commit(&node, 300, 0, &[(1, 30)]).await;
    // Written after the open transaction's offset: must win when it commits.
    plain_commit(&node, 0, 40).await;
    txn_commit(&node, 300, 0, &[(0, 35)]).await;

    let node = node.restart();
    assert_eq!(committed(&node, 0).await, 40);
    assert_eq!(
        committed(&node, 1).await,
        -1,
        "aborted offsets are not loaded"
    );
    let unstable = code(ErrorCode::UnstableOffsetCommit);
    assert_eq!(fetch(&node, 1, true, 8).await, (-1, unstable));

    // The transaction coordinator completes the open transaction later.
    end_txn(&node, 300, 0, true).await;
    assert_eq!(committed(&node, 1).await, 30);
    assert_eq!(committed(&node, 0).await, 35, "35 was written after 40");
    let node = node.restart();
    assert_eq!(committed(&node, 0).await, 35);
    assert_eq!(committed(&node, 1).await, 30);
    assert_eq!(fetch(&node, 1, true, 8).await, (30, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_producer_epoch_is_refused_and_leaves_nothing_pending() {
    let node = node();
    assert_eq!(txn_commit(&node, 100, 3, &[(0, 10)]).await, vec![0]);
    let fenced = code(ErrorCode::InvalidProducerEpoch);
    for version in [0, 2, 3, 5] {
        let req = txn_request(GROUP, 100, 2, &[(0, 99)]);
        assert_eq!(
            txn_commit_req(&node, &req, version).await,
            vec![fenced],
            "v{version}"
        );
    }
    end_txn(&node, 100, 3, true).await;
    assert_eq!(committed(&node, 0).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_checked_like_offset_commit() {
    let node = node();
    let mut req = txn_request(GROUP, 100, 0, &[(0, 10), (7, 11)]);
    let mut unknown = req.topics[0].clone();
    unknown.name = StrBytes::from("nope");
    let mut big = req.topics[0].clone();
    big.partitions.truncate(1);
    big.partitions[0].partition_index = 1;
    big.partitions[0].committed_metadata = Some(StrBytes::from("x".repeat(5000)));
    req.topics.push(unknown);
    req.topics.push(big);
    let unknown_tp = code(ErrorCode::UnknownTopicOrPartition);
    assert_eq!(
        txn_commit_req(&node, &req, 3).await,
        vec![
            0,
            unknown_tp,
            unknown_tp,
            unknown_tp,
            code(ErrorCode::OffsetMetadataTooLarge)
        ]
    );
    end_txn(&node, 100, 0, true).await;
    assert_eq!(committed(&node, 0).await, 10);
    assert_eq!(committed(&node, 1).await, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_transactional_ids_are_validated() {
    let node = node();
    let mut req = txn_request("", 100, 0, &[(0, 10)]);
    assert_eq!(
        txn_commit_req(&node, &req, 3).await,
        vec![code(ErrorCode::InvalidGroupId)]
    );
    req.group_id = StrBytes::from(GROUP);
    req.transactional_id = StrBytes::from("");
    assert_eq!(
        txn_commit_req(&node, &req, 3).await,
        vec![code(ErrorCode::InvalidRequest)]
    );

    // A generation for a group that does not exist is refused; without one a
    // simple group is created, as Kafka does.
    let mut req = txn_request(GROUP, 100, 0, &[(0, 10)]);
    req.generation_id_or_member_epoch = 4;
    req.member_id = StrBytes::from("m-1");
    assert_eq!(
        txn_commit_req(&node, &req, 3).await,
        vec![code(ErrorCode::IllegalGeneration)]
    );
    assert!(!node.state.groups.lock().await.groups.contains_key(GROUP));
    assert_eq!(txn_commit(&node, 100, 0, &[(0, 10)]).await, vec![0]);
    assert!(node.state.groups.lock().await.groups.contains_key(GROUP));

    // The group exists and is empty: a member it does not know is refused.
    req.generation_id_or_member_epoch = 0;
    assert_eq!(
        txn_commit_req(&node, &req, 3).await,
        vec![code(ErrorCode::UnknownMemberId)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_group_deletes_its_pending_offsets() {
    let node = node();
    txn_commit(&node, 100, 0, &[(0, 10)]).await;
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![StrBytes::from(GROUP)];
    let resp: DeleteGroupsResponse = node
        .call(&req, 2, handler!(handlers::delete_groups::handle))
        .await;
    assert_eq!(resp.results[0].error_code, 0);
    end_txn(&node, 100, 0, true).await;
    assert_eq!(committed(&node, 0).await, -1);
    // The tombstone is in the log before the marker: reloading agrees.
    let node = node.restart();
    assert_eq!(committed(&node, 0).await, -1);
    assert!(!node.state.groups.lock().await.groups.contains_key(GROUP));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_delete_removes_an_offset_only_a_transaction_holds() {
    let node = node();
    plain_commit(&node, 1, 7).await;
    txn_commit(&node, 100, 0, &[(0, 10)]).await;
    let mut p = offset_delete_request::OffsetDeleteRequestPartition::default();
    p.partition_index = 0;
    let mut t = offset_delete_request::OffsetDeleteRequestTopic::default();
    t.name = StrBytes::from(TOPIC);
    t.partitions = vec![p];
    let mut req = OffsetDeleteRequest::default();
    req.group_id = StrBytes::from(GROUP);
    req.topics = vec![t];
    let resp: OffsetDeleteResponse = node
        .call(&req, 0, handler!(handlers::offset_delete::handle))
        .await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(
        fetch(&node, 0, true, 8).await,
        (-1, 0),
        "nothing pending any more"
    );
    end_txn(&node, 100, 0, true).await;
    assert_eq!(committed(&node, 0).await, -1);
    let node = node.restart();
    assert_eq!(committed(&node, 0).await, -1);
    assert_eq!(committed(&node, 1).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_keeps_offsets_and_groups_with_open_transactions() {
    let node = node();
    plain_commit(&node, 0, 5).await;
    plain_commit(&node, 1, 6).await;
    txn_commit(&node, 100, 0, &[(0, 10)]).await;
    let far_future = now_ms() + 365 * 24 * 3_600_000;
    {
        let mut groups = node.state.groups.lock().await;
        node.state
            .groups
            .expire_offsets(&node.state, &mut groups, far_future)
            .await;
        let entry = &groups.groups[GROUP];
        assert!(
            entry.offsets.has_committed(&(TOPIC.to_owned(), 0)),
            "pending: kept"
        );
        assert!(
            !entry.offsets.has_committed(&(TOPIC.to_owned(), 1)),
            "expired"
        );
    }
    end_txn(&node, 100, 0, false).await;
    let mut groups = node.state.groups.lock().await;
    node.state
        .groups
        .expire_offsets(&node.state, &mut groups, far_future)
        .await;
    assert!(
        !groups.groups.contains_key(GROUP),
        "nothing left: the group goes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_completes_only_the_groups_of_its_partition() {
    let node = node();
    // Two groups of the same producer's transaction in different partitions.
    let other = (0..100)
        .map(|i| format!("other-{i}"))
        .find(|g| node.state.groups.partition_for(g) != node.state.groups.partition_for(GROUP))
        .expect("a group in another partition");
    txn_commit(&node, 100, 0, &[(0, 10)]).await;
    let req = txn_request(&other, 100, 0, &[(0, 50)]);
    assert_eq!(txn_commit_req(&node, &req, 3).await, vec![0]);
    end_txn(&node, 100, 0, true).await;
    assert_eq!(committed(&node, 0).await, 10);
    let groups = node.state.groups.lock().await;
    let offsets = &groups.groups[&other].offsets;
    assert!(
        offsets.has_pending_from(100),
        "its own marker has not been written"
    );
    assert!(!offsets.has_committed(&(TOPIC.to_owned(), 0)));
}
