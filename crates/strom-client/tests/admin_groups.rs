//! The admin client's group calls against an in-process broker: a classic
//! member driven with raw JoinGroup / SyncGroup / LeaveGroup, a KIP-848 member
//! driven with ConsumerGroupHeartbeat, committed offsets, ListOffsets and
//! CreatePartitions.

mod common;

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use strom_client::{
    Admin, ClientError, Connection, ConnectionConfig, NewTopic, OffsetAndMetadata, OffsetSpec,
    Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use strom_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use strom_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use strom_protocol::messages::leave_group_request::MemberIdentity;
use strom_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use strom_protocol::messages::{
    encode_consumer_protocol_assignment, encode_consumer_protocol_subscription, ApiVersion,
    ConsumerGroupHeartbeatRequest, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    JoinGroupRequest, LeaveGroupRequest, StrBytes, SyncGroupRequest,
};
use strom_protocol::ErrorCode;

const GROUP_PROPS: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("offsets.topic.num.partitions", "2"),
];

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn code(r: &Result<(), ClientError>) -> Option<i16> {
    r.as_ref().err().and_then(ClientError::code)
}

async fn create_topic(admin: &Admin, topic: &str, partitions: i32) {
    let created = admin
        .create_topics(&[NewTopic::new(topic, partitions, 1)])
        .await
        .unwrap();
    created[topic].clone().unwrap();
}

/// A classic consumer-protocol member of `group` that owns `partitions` of `topic`.
struct ClassicMember {
    conn: Connection,
    group: String,
    member_id: String,
}

impl ClassicMember {
    async fn join(bootstrap: &str, group: &str, topic: &str, partitions: &[i32]) -> ClassicMember {
        let conn = Connection::connect(bootstrap, ConnectionConfig::default())
            .await
            .unwrap();
        let mut subscription = ConsumerProtocolSubscription::default();
        subscription.topics = vec![StrBytes::from(topic.to_owned())];
        let mut metadata = BytesMut::new();
        encode_consumer_protocol_subscription(&mut metadata, &subscription, ApiVersion::new(1))
            .unwrap();
        let mut protocol = JoinGroupRequestProtocol::default();
        protocol.name = StrBytes::from("range");
        protocol.metadata = metadata.freeze();
        let mut join = JoinGroupRequest::default();
        join.group_id = StrBytes::from(group.to_owned());
        join.session_timeout_ms = 30_000;
        join.rebalance_timeout_ms = 30_000;
        join.protocol_type = StrBytes::from("consumer");
        join.protocols = vec![protocol];
        // KIP-394: the first join only hands out a member id.
        let first = conn.send(&join).await.unwrap();
        assert_eq!(first.error_code, ErrorCode::MemberIdRequired.code());
        join.member_id = first.member_id.clone();
        let joined = conn.send(&join).await.unwrap();
        assert_eq!(joined.error_code, 0);
        let member_id = joined.member_id.to_string();

        let mut assigned = AssignedPartitions::default();
        assigned.topic = StrBytes::from(topic.to_owned());
        assigned.partitions = partitions.to_vec();
        let mut assignment = ConsumerProtocolAssignment::default();
        assignment.assigned_partitions = vec![assigned];
        let mut bytes = BytesMut::new();
        encode_consumer_protocol_assignment(&mut bytes, &assignment, ApiVersion::new(3)).unwrap();
        let mut mine = SyncGroupRequestAssignment::default();
        mine.member_id = joined.member_id.clone();
        mine.assignment = bytes.freeze();
        let mut sync = SyncGroupRequest::default();
        sync.group_id = StrBytes::from(group.to_owned());
        sync.generation_id = joined.generation_id;
        sync.member_id = joined.member_id.clone();
        sync.protocol_type = Some(StrBytes::from("consumer"));
        sync.protocol_name = Some(StrBytes::from("range"));
        sync.assignments = vec![mine];
        let synced = conn.send(&sync).await.unwrap();
        assert_eq!(synced.error_code, 0);
        ClassicMember {
            conn,
            group: group.to_owned(),
            member_id,
        }
    }

    async fn leave(self) {
        let mut member = MemberIdentity::default();
        member.member_id = StrBytes::from(self.member_id.clone());
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = StrBytes::from(self.group.clone());
        leave.members = vec![member];
        let left = self.conn.send(&leave).await.unwrap();
        assert_eq!(left.error_code, 0);
    }
}

async fn produce(bootstrap: &str, topic: &str, partition: i32, timestamps: &[i64]) {
    let producer =
        Producer::new(ProducerConfig::from_properties([("bootstrap.servers", bootstrap)]).unwrap())
            .await
            .unwrap();
    for ts in timestamps {
        producer
            .send(
                ProducerRecord::new(topic)
                    .partition(partition)
                    .timestamp(*ts)
                    .value(Bytes::from_static(b"v")),
            )
            .await
            .unwrap();
    }
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_describes_and_guards_a_group_with_a_live_classic_member() {
    let b = common::start_with(GROUP_PROPS).await;
    let admin = Admin::connect(&b.bootstrap).await.unwrap();
    create_topic(&admin, "t", 3).await;
    let member = ClassicMember::join(&b.bootstrap, "g", "t", &[2, 0]).await;

    let listed = admin.list_groups().await.unwrap();
    let g = listed.iter().find(|l| l.group_id == "g").expect("g listed");
    assert_eq!(g.protocol_type, "consumer");
    assert_eq!(g.state.as_deref(), Some("Stable"));
    assert_eq!(g.group_type.as_deref(), Some("classic"));
    assert!(g.is_consumer_group());

    let described = admin.describe_groups(&["g", "missing"]).await.unwrap();
    let d = described["g"].as_ref().unwrap();
    assert_eq!(
        (
            d.group_type.as_str(),
            d.state.as_str(),
            d.protocol_type.as_str()
        ),
        ("classic", "Stable", "consumer")
    );
    assert_eq!(d.assignor, "range");
    assert_eq!(d.group_epoch, None);
    assert_eq!(d.members.len(), 1);
    let m = &d.members[0];
    assert_eq!(m.member_id, member.member_id);
    assert_eq!(m.client_id, "strom-client");
    assert!(m.client_host.contains("127.0.0.1"), "{}", m.client_host);
    assert_eq!(m.assignment, vec![tp("t", 0), tp("t", 2)]);
    assert_eq!(
        described["missing"].as_ref().unwrap_err().code(),
        Some(ErrorCode::GroupIdNotFound.code())
    );

    // An administrator cannot commit for, or delete, a group with members.
    let offsets: BTreeMap<_, _> = [(tp("t", 0), OffsetAndMetadata::new(1))].into();
    let refused = admin.alter_group_offsets("g", &offsets).await.unwrap();
    assert_eq!(
        code(&refused[&tp("t", 0)]),
        Some(ErrorCode::UnknownMemberId.code())
    );
    let deleted = admin.delete_groups(&["g"]).await.unwrap();
    assert_eq!(code(&deleted["g"]), Some(ErrorCode::NonEmptyGroup.code()));

    // Once the member leaves, the group is Empty and both work.
    member.leave().await;
    let d = admin.describe_groups(&["g"]).await.unwrap()["g"]
        .clone()
        .unwrap();
    assert_eq!((d.state.as_str(), d.members.len()), ("Empty", 0));
    let offsets: BTreeMap<_, _> = [
        (tp("t", 0), OffsetAndMetadata::new(5)),
        (
            tp("t", 1),
            OffsetAndMetadata {
                offset: 7,
                leader_epoch: Some(0),
                metadata: "m".into(),
            },
        ),
    ]
    .into();
    let altered = admin.alter_group_offsets("g", &offsets).await.unwrap();
    assert_eq!(altered.len(), 2);
    assert!(altered.values().all(Result::is_ok), "{altered:?}");
    assert_eq!(admin.list_group_offsets("g", None).await.unwrap(), offsets);
    let one = admin
        .list_group_offsets("g", Some(&[tp("t", 1), tp("t", 2)]))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[&tp("t", 1)].metadata, "m");
    assert_eq!(one[&tp("t", 1)].leader_epoch, Some(0));

    let deleted = admin.delete_groups(&["g", "missing"]).await.unwrap();
    assert!(deleted["g"].is_ok(), "{deleted:?}");
    assert_eq!(
        code(&deleted["missing"]),
        Some(ErrorCode::GroupIdNotFound.code())
    );
    assert_eq!(
        admin.describe_groups(&["g"]).await.unwrap()["g"]
            .as_ref()
            .unwrap_err()
            .code(),
        Some(ErrorCode::GroupIdNotFound.code())
    );
    assert!(admin
        .list_group_offsets("g", None)
        .await
        .unwrap()
        .is_empty());
    assert!(!admin
        .list_groups()
        .await
        .unwrap()
        .iter()
        .any(|l| l.group_id == "g"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_are_deleted_per_partition_and_log_offsets_listed_by_spec() {
    let b = common::start_with(GROUP_PROPS).await;
    let admin = Admin::connect(&b.bootstrap).await.unwrap();
    create_topic(&admin, "t", 2).await;
    produce(&b.bootstrap, "t", 0, &[1_000, 2_000, 3_000]).await;

    let specs: BTreeMap<_, _> = [
        (tp("t", 0), OffsetSpec::Earliest),
        (tp("t", 1), OffsetSpec::Latest),
    ]
    .into();
    let listed = admin.list_offsets(&specs).await.unwrap();
    assert_eq!(listed[&tp("t", 0)].offset, 0);
    assert_eq!(listed[&tp("t", 1)].offset, 0);
    let by_time = |ts| [(tp("t", 0), OffsetSpec::Timestamp(ts))].into();
    let found = admin.list_offsets(&by_time(1_500)).await.unwrap();
    assert_eq!(
        (found[&tp("t", 0)].offset, found[&tp("t", 0)].timestamp),
        (1, 2_000)
    );
    let none = admin.list_offsets(&by_time(9_000)).await.unwrap();
    assert_eq!(none[&tp("t", 0)].offset, -1);
    let latest = admin
        .list_offsets(&[(tp("t", 0), OffsetSpec::Latest)].into())
        .await
        .unwrap();
    assert_eq!(latest[&tp("t", 0)].offset, 3);

    // A simple commit creates an Empty group whose offsets can be deleted one by one.
    let offsets: BTreeMap<_, _> = [
        (tp("t", 0), OffsetAndMetadata::new(2)),
        (tp("t", 1), OffsetAndMetadata::new(0)),
    ]
    .into();
    let altered = admin.alter_group_offsets("simple", &offsets).await.unwrap();
    assert!(altered.values().all(Result::is_ok), "{altered:?}");
    let d = admin.describe_groups(&["simple"]).await.unwrap()["simple"]
        .clone()
        .unwrap();
    assert_eq!((d.state.as_str(), d.protocol_type.as_str()), ("Empty", ""));
    let deleted = admin
        .delete_group_offsets("simple", &[tp("t", 0)])
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    assert!(deleted[&tp("t", 0)].is_ok());
    let left = admin.list_group_offsets("simple", None).await.unwrap();
    assert_eq!(left, [(tp("t", 1), OffsetAndMetadata::new(0))].into());
    let unknown = admin
        .delete_group_offsets("missing", &[tp("t", 0)])
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some(ErrorCode::GroupIdNotFound.code()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_groups_are_described_with_consumer_group_describe() {
    let b = common::start_with(GROUP_PROPS).await;
    let admin = Admin::connect(&b.bootstrap).await.unwrap();
    create_topic(&admin, "t", 2).await;
    let conn = Connection::connect(&b.bootstrap, ConnectionConfig::default())
        .await
        .unwrap();
    let mut hb = ConsumerGroupHeartbeatRequest::default();
    hb.group_id = StrBytes::from("cg");
    hb.member_id = StrBytes::from("kip848-member-0000000");
    hb.member_epoch = 0;
    hb.instance_id = None;
    hb.rack_id = None;
    hb.server_assignor = None;
    hb.subscribed_topic_regex = None;
    hb.rebalance_timeout_ms = 30_000;
    hb.subscribed_topic_names = Some(vec![StrBytes::from("t")]);
    hb.topic_partitions = Some(Vec::new());
    let joined = conn.send(&hb).await.unwrap();
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);

    let listed = admin.list_groups().await.unwrap();
    let g = listed
        .iter()
        .find(|l| l.group_id == "cg")
        .expect("cg listed");
    assert_eq!(g.group_type.as_deref(), Some("consumer"));
    assert_eq!(g.protocol_type, "consumer");

    let d = admin.describe_groups(&["cg"]).await.unwrap()["cg"]
        .clone()
        .unwrap();
    assert_eq!(d.group_type, "consumer");
    assert!(d.group_epoch.is_some_and(|e| e >= 1), "{d:?}");
    assert!(!d.assignor.is_empty());
    assert_eq!(d.members.len(), 1);
    let m = &d.members[0];
    assert_eq!(m.member_id, "kip848-member-0000000");
    assert_eq!(m.member_epoch, Some(joined.member_epoch));
    assert_eq!(m.assignment, vec![tp("t", 0), tp("t", 1)]);

    let deleted = admin.delete_groups(&["cg"]).await.unwrap();
    assert_eq!(code(&deleted["cg"]), Some(ErrorCode::NonEmptyGroup.code()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_can_only_be_added() {
    let b = common::start_with(&[]).await;
    let admin = Admin::connect(&b.bootstrap).await.unwrap();
    create_topic(&admin, "t", 1).await;
    let grown = admin.create_partitions(&[("t", 3)]).await.unwrap();
    assert!(grown["t"].is_ok(), "{grown:?}");
    assert_eq!(
        admin.describe_topics(&["t"]).await.unwrap()[0]
            .partitions
            .len(),
        3
    );
    let invalid = Some(ErrorCode::InvalidPartitions.code());
    assert_eq!(
        code(&admin.create_partitions(&[("t", 2)]).await.unwrap()["t"]),
        invalid
    );
    assert_eq!(
        code(&admin.create_partitions(&[("t", 3)]).await.unwrap()["t"]),
        invalid
    );
    let missing = admin.create_partitions(&[("nope", 3)]).await.unwrap();
    assert_eq!(
        code(&missing["nope"]),
        Some(ErrorCode::UnknownTopicOrPartition.code())
    );
}
