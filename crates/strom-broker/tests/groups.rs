//! Consumer groups over the wire: the classic join/sync handshake, committed
//! offsets, and their survival across restarts.

mod common;

use bytes::Bytes;
use common::requests::*;
use common::*;
use strom_protocol::messages::*;
use strom_protocol::ErrorCode;

const GROUP: &str = "g1";

fn join_request(member_id: &str) -> JoinGroupRequest {
    let mut protocol = join_group_request::JoinGroupRequestProtocol::default();
    protocol.name = StrBytes::from("range");
    protocol.metadata = Bytes::from_static(b"subscription");
    let mut req = JoinGroupRequest::default();
    req.group_id = StrBytes::from(GROUP);
    req.session_timeout_ms = 10_000;
    req.rebalance_timeout_ms = 10_000;
    req.member_id = StrBytes::from(member_id);
    req.group_instance_id = None;
    req.protocol_type = StrBytes::from("consumer");
    req.protocols = vec![protocol];
    req
}

async fn commit(client: &mut Client, generation: i32, member_id: &str, offset: i64) -> i16 {
    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = StrBytes::from("t");
    t.partitions = vec![p];
    let mut req = OffsetCommitRequest::default();
    req.group_id = StrBytes::from(GROUP);
    req.generation_id_or_member_epoch = generation;
    req.member_id = StrBytes::from(member_id);
    req.group_instance_id = None;
    req.topics = vec![t];
    let resp: OffsetCommitResponse = client.call(&req, 8).await;
    resp.topics[0].partitions[0].error_code
}

async fn fetch_committed(client: &mut Client) -> i64 {
    let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
    t.name = StrBytes::from("t");
    t.partition_indexes = vec![0];
    let mut req = OffsetFetchRequest::default();
    req.group_id = StrBytes::from(GROUP);
    req.topics = Some(vec![t]);
    let resp: OffsetFetchResponse = client.call(&req, 7).await;
    resp.topics[0].partitions[0].committed_offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joins_syncs_commits_and_its_offsets_survive_restarts() {
    let broker = start_with(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("offsets.topic.num.partitions", "3"),
    ])
    .await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 1, &[]).await;

    let mut find = FindCoordinatorRequest::default();
    find.key = StrBytes::from(GROUP);
    let found: FindCoordinatorResponse = client.call(&find, 3).await;
    assert_eq!(found.error_code, 0);
    assert_eq!(found.port, broker.addr.port() as i32);

    // KIP-394: the first join only hands out a member id.
    let first: JoinGroupResponse = client.call(&join_request(""), 9).await;
    assert_eq!(first.error_code, ErrorCode::MemberIdRequired.code());
    let member_id = first.member_id.as_str().to_owned();
    assert!(member_id.starts_with("strom-test-"), "{member_id}");

    let joined: JoinGroupResponse = client.call(&join_request(&member_id), 9).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader.as_str(), member_id);
    assert_eq!(joined.members.len(), 1);

    let mut assignment = sync_group_request::SyncGroupRequestAssignment::default();
    assignment.member_id = StrBytes::from(member_id.as_str());
    assignment.assignment = Bytes::from_static(b"assigned");
    let mut sync = SyncGroupRequest::default();
    sync.group_id = StrBytes::from(GROUP);
    sync.generation_id = 1;
    sync.member_id = StrBytes::from(member_id.as_str());
    sync.group_instance_id = None;
    sync.assignments = vec![assignment];
    let synced: SyncGroupResponse = client.call(&sync, 5).await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"assigned");

    // A commit from a stale generation is refused; the current one is stored.
    assert_eq!(
        commit(&mut client, 7, &member_id, 3).await,
        ErrorCode::IllegalGeneration.code()
    );
    assert_eq!(commit(&mut client, 1, &member_id, 42).await, 0);
    assert_eq!(fetch_committed(&mut client).await, 42);

    let mut hb = HeartbeatRequest::default();
    hb.group_id = StrBytes::from(GROUP);
    hb.generation_id = 1;
    hb.member_id = StrBytes::from(member_id.as_str());
    let beat: HeartbeatResponse = client.call(&hb, 4).await;
    assert_eq!(beat.error_code, 0);

    let mut describe = DescribeGroupsRequest::default();
    describe.groups = vec![StrBytes::from(GROUP)];
    let described: DescribeGroupsResponse = client.call(&describe, 5).await;
    assert_eq!(described.groups[0].group_state.as_str(), "Stable");
    assert_eq!(described.groups[0].members.len(), 1);

    // After a restart the committed offset and the group are still there.
    drop(client);
    let broker = broker
        .restart(&[("offsets.topic.num.partitions", "3")])
        .await;
    let mut client = broker.client().await;
    assert_eq!(fetch_committed(&mut client).await, 42);
    let listed: ListGroupsResponse = client.call(&ListGroupsRequest::default(), 4).await;
    assert!(listed.groups.iter().any(|g| g.group_id.as_str() == GROUP));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_commit_needs_no_membership_and_delete_groups_removes_it() {
    let broker = start_with(&[("offsets.topic.num.partitions", "2")]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 1, &[]).await;
    assert_eq!(commit(&mut client, -1, "", 5).await, 0);
    assert_eq!(fetch_committed(&mut client).await, 5);
    let mut del = DeleteGroupsRequest::default();
    del.groups_names = vec![StrBytes::from(GROUP), StrBytes::from("missing")];
    let resp: DeleteGroupsResponse = client.call(&del, 2).await;
    assert_eq!(resp.results[0].error_code, 0);
    assert_eq!(
        resp.results[1].error_code,
        ErrorCode::GroupIdNotFound.code()
    );
    assert_eq!(fetch_committed(&mut client).await, -1);
}

fn consumer_heartbeat(member_id: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = StrBytes::from("cg");
    req.member_id = StrBytes::from(member_id);
    req.member_epoch = epoch;
    req.instance_id = None;
    req.rack_id = None;
    req.server_assignor = None;
    req.subscribed_topic_regex = None;
    req.rebalance_timeout_ms = if epoch == 0 { 30_000 } else { -1 };
    req.subscribed_topic_names = (epoch == 0).then(|| vec![StrBytes::from("t")]);
    req.topic_partitions = (epoch == 0).then(Vec::new);
    req
}

async fn describe_consumer_group(
    client: &mut Client,
) -> consumer_group_describe_response::DescribedGroup {
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![StrBytes::from("cg")];
    let resp: ConsumerGroupDescribeResponse = client.call(&req, 0).await;
    assert_eq!(resp.groups.len(), 1);
    assert_eq!(resp.groups[0].error_code, 0);
    resp.groups[0].clone()
}

fn partitions(a: &consumer_group_describe_response::Assignment) -> Vec<i32> {
    a.topic_partitions
        .iter()
        .flat_map(|tp| tp.partitions.iter().copied())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_membership_and_epochs_survive_a_restart() {
    let props = [("offsets.topic.num.partitions", "3")];
    let broker = start_with(&props).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 2, &[]).await;

    let member_id = "5mBbMjKXR0y0Ytq3nKqGvA";
    let joined: ConsumerGroupHeartbeatResponse =
        client.call(&consumer_heartbeat(member_id, 0), 1).await;
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    assert!(joined.member_epoch >= 1);
    let assigned: Vec<i32> = joined
        .assignment
        .as_ref()
        .expect("an assignment")
        .topic_partitions
        .iter()
        .flat_map(|tp| tp.partitions.iter().copied())
        .collect();
    assert_eq!(assigned, vec![0, 1]);
    let before = describe_consumer_group(&mut client).await;
    assert_eq!(before.members.len(), 1);

    drop(client);
    let broker = broker.restart(&props).await;
    let mut client = broker.client().await;

    let after = describe_consumer_group(&mut client).await;
    assert_eq!(after.group_epoch, before.group_epoch);
    assert_eq!(after.assignment_epoch, before.assignment_epoch);
    assert_eq!(after.members.len(), 1);
    let member = &after.members[0];
    assert_eq!(member.member_id.as_str(), member_id);
    assert_eq!(member.member_epoch, joined.member_epoch);
    assert_eq!(partitions(&member.assignment), vec![0, 1]);
    assert_eq!(partitions(&member.target_assignment), vec![0, 1]);

    // The member carries on at its epoch: no fencing, no rebalance.
    let beat: ConsumerGroupHeartbeatResponse = client
        .call(&consumer_heartbeat(member_id, joined.member_epoch), 1)
        .await;
    assert_eq!(beat.error_code, 0, "{:?}", beat.error_message);
    assert_eq!(beat.member_epoch, joined.member_epoch);
    let again = describe_consumer_group(&mut client).await;
    assert_eq!(again.group_epoch, before.group_epoch);

    // The member leaves; after another restart the group is empty but known.
    let left: ConsumerGroupHeartbeatResponse =
        client.call(&consumer_heartbeat(member_id, -1), 1).await;
    assert_eq!(left.error_code, 0);
    drop(client);
    let broker = broker.restart(&props).await;
    let mut client = broker.client().await;
    let emptied = describe_consumer_group(&mut client).await;
    assert!(emptied.members.is_empty());
    assert_eq!(emptied.group_state.as_str(), "Empty");
    assert!(emptied.group_epoch > before.group_epoch);

    // Deleting it tombstones its records: it is gone after a restart too.
    let mut del = DeleteGroupsRequest::default();
    del.groups_names = vec![StrBytes::from("cg")];
    let resp: DeleteGroupsResponse = client.call(&del, 2).await;
    assert_eq!(resp.results[0].error_code, 0);
    drop(client);
    let broker = broker.restart(&props).await;
    let mut client = broker.client().await;
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![StrBytes::from("cg")];
    let resp: ConsumerGroupDescribeResponse = client.call(&req, 0).await;
    assert_eq!(resp.groups[0].error_code, ErrorCode::GroupIdNotFound.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_of_an_empty_group_expire_after_offsets_retention_minutes() {
    // One minute is the smallest retention Kafka's property allows.
    let broker = start_with(&[
        ("offsets.topic.num.partitions", "2"),
        ("offsets.retention.minutes", "1"),
        ("offsets.retention.check.interval.ms", "500"),
    ])
    .await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 1, &[]).await;
    assert_eq!(commit(&mut client, -1, "", 5).await, 0);
    let committed_at = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    assert_eq!(
        fetch_committed(&mut client).await,
        5,
        "kept before the retention passes"
    );
    loop {
        if fetch_committed(&mut client).await == -1 {
            break;
        }
        assert!(
            committed_at.elapsed() < std::time::Duration::from_secs(90),
            "offsets did not expire"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(committed_at.elapsed() >= std::time::Duration::from_secs(59));
    // The group is gone with its last offset, and stays gone after a restart.
    let listed: ListGroupsResponse = client.call(&ListGroupsRequest::default(), 4).await;
    assert!(listed.groups.iter().all(|g| g.group_id.as_str() != GROUP));
    drop(client);
    let broker = broker
        .restart(&[("offsets.topic.num.partitions", "2")])
        .await;
    let mut client = broker.client().await;
    assert_eq!(fetch_committed(&mut client).await, -1);
}
