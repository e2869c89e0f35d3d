//! Codec and replay tests of the consumer-group records.
use proptest::prelude::*;

use super::*;

fn assignment_strategy() -> impl Strategy<Value = Assignment> {
    prop::collection::btree_map(
        any::<[u8; 16]>().prop_map(TopicId),
        prop::collection::btree_set(any::<i32>(), 0..8),
        0..4,
    )
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    prop::option::of(".{0,12}")
}

fn state_strategy() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Stable),
        Just(MemberState::UnrevokedPartitions),
        Just(MemberState::UnreleasedPartitions),
    ]
}

proptest! {
    #[test]
    fn keys_round_trip(group in ".{0,20}", member in ".{0,20}", kind in 3i16..=8) {
        let key = match kind {
            3 => ConsumerKey::GroupMetadata { group },
            4 => ConsumerKey::PartitionMetadata { group },
            5 => ConsumerKey::MemberMetadata { group, member },
            6 => ConsumerKey::TargetAssignmentMetadata { group },
            7 => ConsumerKey::TargetAssignmentMember { group, member },
            _ => ConsumerKey::CurrentMemberAssignment { group, member },
        };
        prop_assert_eq!(ConsumerKey::decode(key.encode()).unwrap(), Some(key));
    }

    #[test]
    fn group_and_target_metadata_round_trip(epoch in any::<i32>()) {
        let v = GroupMetadataValue { epoch };
        prop_assert_eq!(GroupMetadataValue::decode(v.encode()).unwrap(), v);
        let v = TargetAssignmentMetadataValue { assignment_epoch: epoch };
        prop_assert_eq!(TargetAssignmentMetadataValue::decode(v.encode()).unwrap(), v);
    }

    #[test]
    fn partition_metadata_round_trips(
        epoch in any::<i32>(),
        topics in prop::collection::vec((any::<[u8; 16]>(), ".{0,10}", any::<i32>()), 0..5),
    ) {
        let v = PartitionMetadataValue {
            epoch,
            topics: topics
                .into_iter()
                .map(|(id, name, n)| TopicMetadata { topic_id: TopicId(id), topic_name: name, num_partitions: n })
                .collect(),
        };
        prop_assert_eq!(PartitionMetadataValue::decode(v.encode()).unwrap(), v);
    }

    #[test]
    fn member_metadata_round_trips(
        instance_id in opt_string(),
        rack_id in opt_string(),
        client_id in ".{0,12}",
        client_host in ".{0,12}",
        subscribed_topic_names in prop::collection::vec(".{0,12}", 0..5),
        subscribed_topic_regex in opt_string(),
        rebalance_timeout_ms in any::<i32>(),
        server_assignor in opt_string(),
    ) {
        let v = MemberMetadataValue {
            instance_id, rack_id, client_id, client_host, subscribed_topic_names,
            subscribed_topic_regex, rebalance_timeout_ms, server_assignor,
        };
        prop_assert_eq!(MemberMetadataValue::decode(v.encode()).unwrap(), v);
    }

    #[test]
    fn assignments_round_trip(
        member_epoch in any::<i32>(),
        previous_member_epoch in any::<i32>(),
        state in state_strategy(),
        assigned in assignment_strategy(),
        pending_revocation in assignment_strategy(),
    ) {
        let v = TargetAssignmentMemberValue { partitions: assigned.clone() };
        prop_assert_eq!(TargetAssignmentMemberValue::decode(v.encode()).unwrap(), v);
        let v = CurrentMemberAssignmentValue {
            member_epoch, previous_member_epoch, state, assigned, pending_revocation,
        };
        prop_assert_eq!(CurrentMemberAssignmentValue::decode(v.encode()).unwrap(), v);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let b = Bytes::from(bytes);
        let _ = ConsumerKey::decode(b.clone());
        let _ = GroupMetadataValue::decode(b.clone());
        let _ = PartitionMetadataValue::decode(b.clone());
        let _ = MemberMetadataValue::decode(b.clone());
        let _ = TargetAssignmentMetadataValue::decode(b.clone());
        let _ = TargetAssignmentMemberValue::decode(b.clone());
        let _ = CurrentMemberAssignmentValue::decode(b);
    }

    #[test]
    fn corrupted_valid_records_never_panic(at in 0usize..200, byte in any::<u8>()) {
        let s = snapshot();
        for (key, value) in group_records(&s, &BTreeSet::from(["gone".to_owned()])) {
            let Some(value) = value else { continue };
            let mut bytes = value.to_vec();
            let i = at % bytes.len();
            bytes[i] = byte;
            let mut log = GroupRecordsLoad::default();
            if let Ok(Some(key)) = ConsumerKey::decode(key) {
                let _ = log.apply(key, Some(Bytes::from(bytes)));
            }
            let _ = log.into_snapshot("g");
        }
    }

    #[test]
    fn truncated_records_are_errors(cut in 0usize..40) {
        let v = CurrentMemberAssignmentValue {
            member_epoch: 3,
            previous_member_epoch: 2,
            state: MemberState::Stable,
            assigned: Assignment::from([(TopicId([7; 16]), BTreeSet::from([0, 1]))]),
            pending_revocation: Assignment::new(),
        }
        .encode();
        prop_assume!(cut < v.len());
        prop_assert!(CurrentMemberAssignmentValue::decode(v.slice(..cut)).is_err());
    }
}

#[test]
fn huge_counts_and_unknown_versions_are_errors() {
    // An array claiming 2^28 topics with nothing behind it.
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_slice(&[0xff, 0xff, 0xff, 0x7f]);
    assert_eq!(
        TargetAssignmentMemberValue::decode(b.freeze()),
        Err(ConsumerRecordError::Truncated)
    );
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i32(5);
    b.put_u8(0);
    assert_eq!(
        GroupMetadataValue::decode(b.freeze()),
        Err(ConsumerRecordError::UnknownValueVersion(1))
    );
    let mut k = BytesMut::new();
    k.put_i16(-4);
    assert_eq!(
        ConsumerKey::decode(k.freeze()),
        Err(ConsumerRecordError::UnknownKeyVersion(-4))
    );
    // Classic and share-group keys are not ours.
    let mut k = BytesMut::new();
    k.put_i16(2);
    assert_eq!(ConsumerKey::decode(k.freeze()), Ok(None));
    // A state byte Kafka reserves for "unknown".
    let mut v = BytesMut::new();
    v.put_i16(0);
    v.put_i32(1);
    v.put_i32(0);
    v.put_i8(127);
    v.put_slice(&[1, 1, 0]);
    assert_eq!(
        CurrentMemberAssignmentValue::decode(v.freeze()),
        Err(ConsumerRecordError::UnknownMemberState(127))
    );
}

fn member(id: &str, assigned: Assignment, pending: Assignment) -> MemberSnapshot {
    MemberSnapshot {
        member_id: id.into(),
        instance_id: Some(format!("i-{id}")),
        rack_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        subscribed_topic_names: vec!["a".into(), "b".into()],
        subscribed_topic_regex: None,
        server_assignor: Some("range".into()),
        rebalance_timeout_ms: 30_000,
        state: MemberState::UnrevokedPartitions,
        member_epoch: 4,
        previous_member_epoch: 3,
        assigned,
        target: pending.clone(),
        pending_revocation: pending,
    }
}

fn load(records: &[OffsetsRecord], into: &mut GroupRecordsLoad) {
    for (k, v) in records {
        let key = ConsumerKey::decode(k.clone()).unwrap().unwrap();
        into.apply(key, v.clone()).unwrap();
    }
}

fn snapshot() -> ConsumerGroupSnapshot {
    let t1 = TopicId([1; 16]);
    ConsumerGroupSnapshot {
        group_id: "g".into(),
        group_epoch: 5,
        assignment_epoch: 4,
        subscription_metadata: BTreeMap::from([("a".into(), (t1, 3))]),
        members: vec![
            member(
                "m1",
                Assignment::from([(t1, BTreeSet::from([0, 1]))]),
                Assignment::new(),
            ),
            member(
                "m2",
                Assignment::new(),
                Assignment::from([(t1, BTreeSet::from([2]))]),
            ),
        ],
    }
}

#[test]
fn a_group_written_whole_is_read_back_whole_and_gone_members_are_tombstoned() {
    let mut s = snapshot();
    let mut log = GroupRecordsLoad::default();
    load(&group_records(&s, &BTreeSet::new()), &mut log);
    assert_eq!(log.clone().into_snapshot("g").unwrap(), Some(s.clone()));
    // m1 leaves: the next write tombstones its three records.
    let previous = BTreeSet::from(["m1".to_owned(), "m2".to_owned()]);
    s.members.remove(0);
    s.group_epoch = 6;
    let records = group_records(&s, &previous);
    assert_eq!(records.iter().filter(|(_, v)| v.is_none()).count(), 3);
    load(&records, &mut log);
    assert_eq!(log.clone().into_snapshot("g").unwrap(), Some(s.clone()));
    // Deleting the group leaves nothing to restore.
    load(
        &group_tombstones("g", &BTreeSet::from(["m2".to_owned()])),
        &mut log,
    );
    assert_eq!(log.into_snapshot("g").unwrap(), None);
}

#[test]
fn a_partition_owned_twice_is_refused_on_load() {
    let mut s = snapshot();
    s.members[1].pending_revocation = s.members[0].assigned.clone();
    let mut log = GroupRecordsLoad::default();
    load(&group_records(&s, &BTreeSet::new()), &mut log);
    assert!(log.into_snapshot("g").is_err());
}

#[test]
fn tagged_fields_from_newer_kafka_are_skipped() {
    // ConsumerGroupMetadataValue with MetadataHash (tag 0, int64).
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(9);
    b.put_u8(1);
    b.put_u8(0);
    b.put_u8(8);
    b.put_i64(0x1234);
    assert_eq!(
        GroupMetadataValue::decode(b.freeze()),
        Ok(GroupMetadataValue { epoch: 9 })
    );
}
