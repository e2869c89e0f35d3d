//! Offset-API checks, snapshot/restore, subscribed topics, deletion, unload.

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use strom_protocol::messages::{
    encode_consumer_protocol_subscription, ApiVersion, ConsumerProtocolSubscription, StrBytes,
};
use strom_protocol::ErrorCode;

use super::{expect, j, sy, test_config, Script, DELAY_MS, STABLE_MS};
use crate::group::classic::{ClassicGroup, GroupSnapshot, GroupState, MemberSnapshot};

#[test]
fn offset_commit_is_validated_as_kafka_does_in_each_state() {
    let mut s = Script::new();
    let check = |s: &Script, member: &str, instance: Option<&str>, generation: i32, txn: bool| {
        if txn {
            s.group
                .validate_txn_offset_commit(member, instance, generation)
        } else {
            s.group.validate_offset_commit(member, instance, generation)
        }
    };
    // Empty: simple-consumer / admin commits only.
    assert_eq!(check(&s, "", None, -1, false), Ok(()));
    assert_eq!(
        check(&s, "x", None, 1, false),
        Err(ErrorCode::UnknownMemberId)
    );
    expect(s.join(0, j(1, "").client("a")), &[]);
    // PreparingRebalance: members of the old generation may still commit.
    assert_eq!(check(&s, "a-1", None, 0, false), Ok(()));
    assert_eq!(
        check(&s, "a-1", None, 5, false),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        check(&s, "", None, -1, false),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(check(&s, "", None, -1, true), Ok(()));
    s.tick(DELAY_MS);
    assert_eq!(
        check(&s, "a-1", None, 1, false),
        Err(ErrorCode::RebalanceInProgress)
    );
    assert_eq!(check(&s, "a-1", None, 1, true), Ok(()));
    s.sync(3_001, sy(2, "a-1", 1).assign(&[("a-1", "A")]));
    assert_eq!(check(&s, "a-1", None, 1, false), Ok(()));
    assert_eq!(
        check(&s, "a-1", Some("ia"), 1, false),
        Err(ErrorCode::UnknownMemberId)
    );
    s.group.unload(3_002);
    assert_eq!(
        check(&s, "a-1", None, 1, false),
        Err(ErrorCode::CoordinatorNotAvailable)
    );

    let mut s = Script::new();
    s.stable(vec![j(1, "").instance("ia")]);
    s.join(7_000, j(2, "").instance("ia"));
    assert_eq!(
        check(&s, "ia-1", Some("ia"), 1, false),
        Err(ErrorCode::FencedInstanceId)
    );
    assert_eq!(check(&s, "ia-2", Some("ia"), 1, false), Ok(()));
}

#[test]
fn offset_fetch_and_delete_checks_follow_the_group_state() {
    let mut s = Script::new();
    assert_eq!(s.group.validate_offset_delete(), Ok(()));
    s.stable(vec![j(1, "").client("a")]);
    assert_eq!(s.group.validate_offset_fetch(), Ok(()));
    assert_eq!(s.group.validate_offset_delete(), Ok(()));
    let mut other = Script::new();
    other.stable(vec![j(1, "").protocol_type("connect")]);
    assert_eq!(
        other.group.validate_offset_delete(),
        Err(ErrorCode::NonEmptyGroup)
    );
    s.group.unload(4_000);
    assert_eq!(
        s.group.validate_offset_fetch(),
        Err(ErrorCode::GroupIdNotFound)
    );
    assert_eq!(
        s.group.validate_offset_delete(),
        Err(ErrorCode::GroupIdNotFound)
    );
}

#[test]
fn only_an_empty_group_can_be_deleted() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a")]);
    assert_eq!(
        s.group.remove_all_members_for_deletion(),
        Err(ErrorCode::NonEmptyGroup)
    );
    s.leave(7_000, &[("a-1", None)]);
    assert_eq!(s.group.remove_all_members_for_deletion(), Ok(()));
    assert_eq!(s.state(), GroupState::Dead);
    assert_eq!(
        s.group.remove_all_members_for_deletion(),
        Err(ErrorCode::GroupIdNotFound)
    );
    let (errors, out) = s.leave(7_002, &[("a-1", None)]);
    assert_eq!(
        (errors, out.len()),
        (vec![ErrorCode::CoordinatorNotAvailable], 0)
    );
    expect(s.join(7_003, j(2, "")), &["J2 CoordinatorNotAvailable m="]);
}

#[test]
fn unload_answers_parked_requests_with_not_coordinator() {
    let mut s = Script::new();
    s.join(0, j(1, "").client("a"));
    s.join(0, j(2, "").client("b"));
    let out = super::render(&s.group.unload(1_000));
    expect(out, &["J1 NotCoordinator m=a-1", "J2 NotCoordinator m=b-2"]);
    assert_eq!(s.group.next_deadline_ms(), None);

    let mut s = Script::new();
    s.join(0, j(1, "").client("a"));
    s.join(0, j(2, "").client("b"));
    s.tick(DELAY_MS);
    s.tick(STABLE_MS);
    expect(s.sync(6_001, sy(3, "b-2", 1)), &[]);
    expect(
        super::render(&s.group.unload(6_002)),
        &["S3 NotCoordinator"],
    );
    expect(
        s.sync(6_003, sy(4, "b-2", 1)),
        &["S4 CoordinatorNotAvailable"],
    );
}

#[test]
fn snapshot_and_restore_round_trip_with_fresh_session_deadlines() {
    let mut s = Script::new();
    s.stable(vec![
        j(1, "").client("a"),
        j(2, "").instance("ib").rebalance(30_000),
    ]);
    let snapshot = s.group.snapshot();
    let member =
        |id: &str, instance: Option<&str>, client: &str, rebalance_ms: i32| MemberSnapshot {
            member_id: id.to_owned(),
            group_instance_id: instance.map(str::to_owned),
            client_id: client.to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            rebalance_timeout_ms: rebalance_ms,
            session_timeout_ms: 10_000,
            subscription: Bytes::from_static(b"r"),
            assignment: Bytes::from(format!("x-{id}")),
        };
    let expected = GroupSnapshot {
        group_id: "g".to_owned(),
        protocol_type: "consumer".to_owned(),
        generation_id: 1,
        protocol_name: Some("range".to_owned()),
        leader: Some("a-1".to_owned()),
        current_state_timestamp_ms: STABLE_MS,
        members: vec![
            member("a-1", None, "a", 20_000),
            member("ib-2", Some("ib"), "c", 30_000),
        ],
    };
    assert_eq!(snapshot, expected);

    let mut restored = ClassicGroup::restore(snapshot.clone(), &test_config(), 50_000);
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(restored.state(), GroupState::Stable);
    assert_eq!(restored.next_deadline_ms(), Some(60_000));
    assert_eq!(restored.heartbeat("a-1", None, 1, 55_000), ErrorCode::None);
    assert_eq!(
        restored.heartbeat("a-1", Some("ib"), 1, 55_000),
        ErrorCode::FencedInstanceId
    );
    let assignments: Vec<_> = restored.members().map(|m| m.assignment.clone()).collect();
    assert_eq!(assignments, [Bytes::from("x-a-1"), Bytes::from("x-ib-2")]);

    // ib-2 never heartbeats after the load and expires; a-1 then leaves.
    let cfg = test_config();
    assert!(restored.tick(&cfg, 60_000).is_empty());
    assert!(!restored.has_member("ib-2"));
    let (_, out) = restored.leave(&[("a-1".to_owned(), None)], 61_000);
    assert_eq!(out, [crate::group::classic::Output::PersistGroup]);
    assert_eq!(restored.state(), GroupState::Empty);
    assert_eq!(restored.generation_id(), 2);
}

#[test]
fn restore_handles_empty_groups_old_records_and_oversized_groups() {
    let empty = GroupSnapshot {
        group_id: "g".to_owned(),
        protocol_type: String::new(),
        generation_id: 4,
        protocol_name: None,
        leader: None,
        current_state_timestamp_ms: -1,
        members: Vec::new(),
    };
    let group = ClassicGroup::restore(empty.clone(), &test_config(), 0);
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(group.protocol_type(), None);
    assert_eq!(group.current_state_timestamp_ms(), None);
    assert_eq!(group.snapshot(), empty);

    let member = |id: &str| MemberSnapshot {
        member_id: id.to_owned(),
        group_instance_id: None,
        client_id: "c".to_owned(),
        client_host: "h".to_owned(),
        rebalance_timeout_ms: -1,
        session_timeout_ms: 10_000,
        subscription: Bytes::new(),
        assignment: Bytes::new(),
    };
    let two = GroupSnapshot {
        protocol_type: "consumer".to_owned(),
        protocol_name: Some("range".to_owned()),
        leader: Some("m1".to_owned()),
        members: vec![member("m1"), member("m2")],
        ..empty
    };
    let cfg = crate::group::classic::GroupConfig {
        max_size: 1,
        ..test_config()
    };
    assert_eq!(
        ClassicGroup::restore(two.clone(), &test_config(), 0).state(),
        GroupState::Stable
    );
    let group = ClassicGroup::restore(two, &cfg, 0);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    // A -1 rebalance timeout (old record) means the session timeout.
    assert_eq!(group.snapshot().members[0].rebalance_timeout_ms, 10_000);
}

/// A version-prefixed consumer subscription to `topics`.
fn subscription(topics: &[&str], version: i16) -> Bytes {
    let mut subscription = ConsumerProtocolSubscription::default();
    subscription.topics = topics.iter().map(|t| StrBytes::from(*t)).collect();
    let mut buffer = BytesMut::new();
    encode_consumer_protocol_subscription(&mut buffer, &subscription, ApiVersion::new(version))
        .expect("encode");
    buffer.freeze()
}

#[test]
fn subscribed_topics_are_decoded_from_consumer_subscriptions() {
    let mut future = BytesMut::from(&subscription(&["t4"], 3)[..]);
    future[..2].copy_from_slice(&9i16.to_be_bytes());
    let mut s = Script::new();
    let mut join = |rid: u64, client: &str, metadata: Bytes| {
        let mut req = j(rid, "").client(client);
        req.0.protocols = vec![("range".to_owned(), metadata)];
        assert!(s.join(0, req).is_empty());
    };
    join(1, "a", subscription(&["t1", "t2"], 0));
    join(2, "b", subscription(&["t2", "t3"], 3));
    join(3, "c", future.freeze());
    // Unknown until a generation starts: a consumer group counts as subscribed.
    assert_eq!(s.group.subscribed_topics(), None);
    assert!(s.group.is_subscribed_to_topic("t9"));
    s.tick(DELAY_MS);
    s.tick(STABLE_MS);
    let expected: BTreeSet<String> = ["t1", "t2", "t3", "t4"].map(str::to_owned).into();
    assert_eq!(s.group.subscribed_topics(), Some(expected));
    assert!(s.group.is_subscribed_to_topic("t3"));
    assert!(!s.group.is_subscribed_to_topic("t9"));

    let mut garbage = Script::new();
    garbage.stable(vec![j(1, "")]);
    assert_eq!(garbage.group.subscribed_topics(), None);
    let mut connect = Script::new();
    connect.stable(vec![j(1, "").protocol_type("connect")]);
    assert_eq!(connect.group.subscribed_topics(), None);
    assert!(!connect.group.is_subscribed_to_topic("t1"));
}
