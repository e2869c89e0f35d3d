//! Joining, reconciling, leaving, epochs, assignors, topics, offsets, describe.

use strom_protocol::ErrorCode;

use super::super::{GroupState, ServerAssignor};
use super::*;

/// `a` then `b` join a group on `foo` (4 partitions) and converge: `a` must
/// revoke foo 2,3 before `b` gets them. Ends at group epoch 2, both stable.
fn two_stable(s: &mut Script) {
    assert_eq!(
        s.send(0, join("a", &["foo"])),
        ["m=a e=1 a=foo:0,1,2,3", "PERSIST"]
    );
    assert_eq!(s.send(1, hb("a", 1)), ["m=a e=1 a=-"], "nothing changed");
    // b joins: the target splits foo, but a still owns 2,3.
    assert_eq!(s.send(2, join("b", &["foo"])), ["m=b e=2 a={}", "PERSIST"]);
    assert_eq!(s.group.state(), GroupState::Reconciling);
    // a is told to keep 0,1 and stays at epoch 1 until it revokes.
    assert_eq!(s.send(3, hb("a", 1)), ["m=a e=1 a=foo:0,1", "PERSIST"]);
    // b is still waiting: 2,3 are not released.
    assert_eq!(s.resp(4, hb("b", 2)), "m=b e=2 a=-");
    assert_eq!(s.assigned("b"), "{}");
    // a reports it no longer owns 2,3: it moves to epoch 2.
    assert_eq!(
        s.send(5, hb("a", 1).owned(&[("foo", &[0, 1])])),
        ["m=a e=2 a=-", "PERSIST"]
    );
    // Now b gets them.
    assert_eq!(s.send(6, hb("b", 2)), ["m=b e=2 a=foo:2,3", "PERSIST"]);
    assert_eq!(s.group.state(), GroupState::Stable);
}

#[test]
fn first_member_joins_at_epoch_1_with_all_partitions_and_second_waits_for_revocation() {
    let mut s = Script::new(&[("foo", 4)]);
    two_stable(&mut s);
    assert_eq!((s.group.group_epoch(), s.group.assignment_epoch()), (2, 2));
    assert_eq!(s.send(7, hb("a", 2)), ["m=a e=2 a=-"]);
}

#[test]
fn member_that_never_acknowledges_keeps_its_partitions_pending() {
    let mut s = Script::new(&[("foo", 4)]);
    s.send(0, join("a", &["foo"]));
    s.send(2, join("b", &["foo"]));
    s.send(3, hb("a", 1));
    // Heartbeats without owned partitions mean "unchanged": still owning 2,3.
    for t in [10, 20, 30] {
        assert_eq!(s.resp(t, hb("a", 1)), "m=a e=1 a=-");
        assert_eq!(s.resp(t, hb("b", 2)), "m=b e=2 a=-");
    }
    // Reporting owned partitions that still include 2 does not release it;
    // the member is reminded of what it may keep.
    assert_eq!(
        s.resp(40, hb("a", 1).owned(&[("foo", &[0, 1, 2])])),
        "m=a e=1 a=foo:0,1"
    );
    assert_eq!(s.assigned("b"), "{}");
}

#[test]
fn leave_bumps_the_epoch_and_the_rest_get_the_partitions() {
    let mut s = Script::new(&[("foo", 4)]);
    two_stable(&mut s);
    assert_eq!(
        s.send(10, hb("b", -1)),
        ["m=b e=-1 a=-", "PERSIST", "REMOVED b Left"]
    );
    assert_eq!(s.group.state(), GroupState::Assigning);
    assert_eq!(s.send(11, hb("a", 2)), ["m=a e=3 a=foo:0,1,2,3", "PERSIST"]);
    assert_eq!(s.group.state(), GroupState::Stable);
    assert_eq!(s.resp(12, hb("b", 2)), "UnknownMemberId");
    assert_eq!(s.resp(12, hb("b", -1)), "UnknownMemberId");
    // The last member leaves: Empty.
    s.send(13, hb("a", -1));
    assert!(s.group.is_empty());
    assert_eq!(s.group.state(), GroupState::Empty);
}

#[test]
fn member_epochs_ahead_or_behind_are_fenced_except_the_previous_with_owned_subset() {
    let mut s = Script::new(&[("foo", 4)]);
    two_stable(&mut s); // a: epoch 2, previous 1, owns foo 0,1
    assert_eq!(s.resp(10, hb("a", 3)), "FencedMemberEpoch");
    assert_eq!(
        s.resp(10, hb("a", 0).rebalance(1)),
        "InvalidRequest",
        "join must be full"
    );
    // The previous epoch is accepted when the owned partitions fit (lost response).
    assert_eq!(
        s.resp(11, hb("a", 1).owned(&[("foo", &[0, 1])])),
        "m=a e=2 a=-"
    );
    assert_eq!(
        s.resp(12, hb("a", 1).owned(&[("foo", &[0])])),
        "m=a e=2 a=foo:0,1"
    );
    assert_eq!(
        s.resp(13, hb("a", 1)),
        "FencedMemberEpoch",
        "owned partitions required"
    );
    assert_eq!(
        s.resp(14, hb("a", 1).owned(&[("foo", &[0, 1, 2])])),
        "FencedMemberEpoch"
    );
    assert_eq!(s.resp(15, hb("zz", 2)), "UnknownMemberId");
    assert_eq!(s.resp(15, hb("", 2)), "InvalidRequest");
    // A fenced member rejoins with epoch 0 and its id: it gets its assignment back.
    assert_eq!(s.send(16, join("a", &["foo"])), ["m=a e=2 a=foo:0,1"]);
}

#[test]
fn invalid_requests_are_refused_without_changing_the_group() {
    let mut s = Script::new(&[("foo", 4)]);
    let mut no_timeout = join("a", &["foo"]);
    no_timeout.0.rebalance_timeout_ms = -1;
    assert_eq!(s.resp(0, no_timeout), "InvalidRequest");
    assert_eq!(
        s.resp(0, join("a", &["foo"]).owned(&[("foo", &[0])])),
        "InvalidRequest"
    );
    let mut no_owned = join("a", &["foo"]);
    no_owned.0.owned_partitions = None;
    assert_eq!(s.resp(0, no_owned), "InvalidRequest");
    let mut no_subscription = join("a", &["foo"]);
    no_subscription.0.subscribed_topic_names = None;
    assert_eq!(s.resp(0, no_subscription), "InvalidRequest");
    assert_eq!(
        s.resp(0, join("a", &["foo"]).instance("")),
        "InvalidRequest"
    );
    assert_eq!(s.resp(0, hb("a", -3)), "InvalidRequest");
    assert_eq!(
        s.resp(0, hb("a", -2)),
        "InvalidRequest",
        "-2 needs an instance id"
    );
    assert_eq!(
        s.resp(0, join("a", &[]).regex("(foo")),
        "InvalidRegularExpression"
    );
    assert_eq!(
        s.resp(0, join("a", &["foo"]).assignor("sticky")),
        "UnsupportedAssignor"
    );
    assert!(s.group.is_empty());
    assert_eq!(s.group.group_epoch(), 0);
}

#[test]
fn generated_member_id_when_the_request_has_none() {
    let mut s = Script::new(&[("foo", 2)]);
    assert_eq!(
        s.send(0, join("", &["foo"])),
        ["m=gen-1 e=1 a=foo:0,1", "PERSIST"]
    );
    assert!(s.group.has_member("gen-1"));
}

#[test]
fn assignment_is_sent_only_when_changed_or_on_a_full_request() {
    let mut s = Script::new(&[("foo", 2)]);
    s.send(0, join("a", &["foo"]));
    assert_eq!(s.resp(1, hb("a", 1)), "m=a e=1 a=-");
    assert_eq!(
        s.resp(2, hb("a", 1).owned(&[("foo", &[0, 1])])),
        "m=a e=1 a=-"
    );
    let full = hb("a", 1)
        .topics(&["foo"])
        .rebalance(REBALANCE_MS)
        .owned(&[("foo", &[0, 1])]);
    assert_eq!(s.resp(3, full), "m=a e=1 a=foo:0,1");
}

#[test]
fn unknown_assignor_is_refused_and_the_most_requested_one_is_used() {
    let mut s = Script::new(&[("foo", 4), ("bar", 4)]);
    s.cfg.assignors = vec![ServerAssignor::Uniform];
    assert_eq!(
        s.resp(0, join("a", &["foo"]).assignor("range")),
        "UnsupportedAssignor"
    );
    s.cfg.assignors = vec![ServerAssignor::Uniform, ServerAssignor::Range];
    assert_eq!(
        s.resp(0, join("a", &["foo", "bar"]).assignor("range")),
        "m=a e=1 a=bar:0,1,2,3 foo:0,1,2,3"
    );
    assert_eq!(s.group.describe(&s.topics, &s.cfg).assignor_name, "range");
    // b joins with range too; a revokes the upper half of both topics.
    s.send(1, join("b", &["foo", "bar"]).assignor("range"));
    assert_eq!(s.resp(2, hb("a", 1)), "m=a e=1 a=bar:0,1 foo:0,1");
    s.send(3, hb("a", 1).owned(&[("foo", &[0, 1]), ("bar", &[0, 1])]));
    assert_eq!(s.resp(4, hb("b", 2)), "m=b e=2 a=bar:2,3 foo:2,3");
    // Changing the assignor bumps the group epoch (Kafka treats it as a subscription change).
    let epoch = s.group.group_epoch();
    s.send(5, hb("a", 2).assignor("uniform"));
    assert_eq!(s.group.group_epoch(), epoch + 1);
}

#[test]
fn partitions_added_bump_the_epoch_and_are_assigned() {
    let mut s = Script::new(&[("foo", 2)]);
    assert_eq!(s.resp(0, join("a", &["foo"])), "m=a e=1 a=foo:0,1");
    assert_eq!(
        s.set_topics(&[("foo", 2)]),
        Vec::<String>::new(),
        "no change, no bump"
    );
    assert_eq!(s.set_topics(&[("foo", 4)]), ["PERSIST"]);
    assert_eq!(
        (s.group.group_epoch(), s.group.state()),
        (2, GroupState::Assigning)
    );
    assert_eq!(s.send(1, hb("a", 1)), ["m=a e=2 a=foo:0,1,2,3", "PERSIST"]);
    // Deleting the topic revokes everything.
    assert_eq!(s.set_topics(&[]), ["PERSIST"]);
    assert_eq!(s.resp(2, hb("a", 2)), "m=a e=2 a={}");
    s.send(3, hb("a", 2).owned(&[]));
    assert_eq!(s.group.member_epoch("a"), Some(3));
}

#[test]
fn topic_created_after_subscribing_is_noticed_on_the_next_heartbeat() {
    let mut s = Script::new(&[]);
    assert_eq!(s.resp(0, join("a", &["bar"])), "m=a e=1 a={}");
    assert!(s.group.subscribed_topic_names().is_empty());
    s.topics = view(&[("bar", 2)]);
    assert_eq!(s.send(1, hb("a", 1)), ["m=a e=2 a=bar:0,1", "PERSIST"]);
    assert!(s.group.is_subscribed_to_topic("bar"));
}

#[test]
fn regex_subscription_resolves_against_topics_and_follows_new_ones() {
    let mut s = Script::new(&[("foo-1", 1), ("foo-2", 1), ("bar", 1)]);
    assert_eq!(
        s.resp(0, join("a", &[]).regex("foo-.*")),
        "m=a e=1 a=foo-1:0 foo-2:0"
    );
    assert_eq!(
        s.set_topics(&[("foo-1", 1), ("foo-2", 1), ("foo-3", 1), ("bar", 1)]),
        ["PERSIST"]
    );
    assert_eq!(s.resp(1, hb("a", 1)), "m=a e=2 a=foo-1:0 foo-2:0 foo-3:0");
    // Names and regex add up; an empty regex clears the regex.
    assert_eq!(
        s.resp(2, hb("a", 2).topics(&["bar"])),
        "m=a e=3 a=bar:0 foo-1:0 foo-2:0 foo-3:0"
    );
    assert_eq!(s.resp(4, hb("a", 3).regex("")), "m=a e=3 a=bar:0");
    assert_eq!(
        s.send(5, hb("a", 3).owned(&[("bar", &[0])])),
        ["m=a e=4 a=-", "PERSIST"]
    );
}

#[test]
fn group_max_size_refuses_new_members_only() {
    let mut s = Script::new(&[("foo", 2)]);
    s.cfg.max_size = 1;
    s.send(0, join("a", &["foo"]));
    assert_eq!(s.resp(1, join("b", &["foo"])), "GroupMaxSizeReached");
    assert_eq!(s.resp(2, join("a", &["foo"])), "m=a e=1 a=foo:0,1");
}

#[test]
fn offset_commit_and_fetch_validation_follow_kip_848() {
    let mut s = Script::new(&[("foo", 2)]);
    let g = &s.group;
    assert_eq!(
        g.validate_offset_commit("", -1),
        Ok(()),
        "admin commit to an empty group"
    );
    assert_eq!(
        g.validate_offset_commit("x", 3),
        Err(ErrorCode::UnknownMemberId)
    );
    s.send(0, join("a", &["foo"]));
    let g = &s.group;
    assert_eq!(g.validate_offset_commit("a", 1), Ok(()));
    assert_eq!(
        g.validate_offset_commit("a", 0),
        Err(ErrorCode::StaleMemberEpoch)
    );
    assert_eq!(
        g.validate_offset_commit("a", 2),
        Err(ErrorCode::StaleMemberEpoch)
    );
    assert_eq!(
        g.validate_offset_commit("", -1),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        g.validate_offset_commit("b", 1),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(g.validate_offset_fetch(None, -1), Ok(()));
    assert_eq!(g.validate_offset_fetch(Some("a"), 1), Ok(()));
    assert_eq!(
        g.validate_offset_fetch(Some("a"), 5),
        Err(ErrorCode::StaleMemberEpoch)
    );
    assert_eq!(
        g.validate_offset_fetch(Some("b"), 1),
        Err(ErrorCode::UnknownMemberId)
    );
}

#[test]
fn describe_shows_epochs_state_members_and_target() {
    let mut s = Script::new(&[("foo", 4)]);
    assert_eq!(s.group.describe(&s.topics, &s.cfg).state, GroupState::Empty);
    s.send(0, join("a", &["foo"]));
    s.send(2, join("b", &["foo"]).instance("inst-b"));
    let d = s.group.describe(&s.topics, &s.cfg);
    assert_eq!(
        (d.state.name(), d.group_epoch, d.assignment_epoch),
        ("Reconciling", 2, 2)
    );
    assert_eq!(d.assignor_name, "uniform");
    let names: Vec<&str> = d.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let a = &d.members[0];
    assert_eq!((a.member_epoch, a.state.name()), (1, "stable"));
    assert_eq!(a.assignment[0].partitions, [0, 1, 2, 3]);
    assert_eq!(a.target_assignment[0].partitions, [0, 1]);
    assert_eq!(a.target_assignment[0].topic_name, "foo");
    assert_eq!(a.subscribed_topic_names, ["foo"]);
    let b = &d.members[1];
    assert_eq!(
        (b.member_epoch, b.state.name()),
        (2, "unreleased_partitions")
    );
    assert_eq!(b.instance_id.as_deref(), Some("inst-b"));
    assert!(b.assignment.is_empty());
    assert_eq!(b.target_assignment[0].partitions, [2, 3]);
    s.send(3, hb("a", 1));
    let d = s.group.describe(&s.topics, &s.cfg);
    assert_eq!(d.members[0].state.name(), "unrevoked_partitions");
    assert_eq!(d.members[0].assignment[0].partitions, [0, 1]);
}

#[test]
fn snapshot_restores_the_same_group_with_fresh_timers() {
    let mut s = Script::new(&[("foo", 4)]);
    s.send(0, join("a", &["foo"]));
    s.send(2, join("b", &["foo"]).instance("i"));
    s.send(3, hb("a", 1)); // a must revoke: its rebalance timer is armed
    let snap = s.group.snapshot();
    let restored = ConsumerGroup::restore(snap.clone(), &s.cfg, 100_000);
    assert_eq!(restored.snapshot(), snap);
    assert_eq!(
        restored.next_deadline_ms(),
        Some(100_000 + i64::from(REBALANCE_MS))
    );
    s.group = restored;
    s.check_invariants();
    assert_eq!(
        s.resp(100_001, hb("a", 1).owned(&[("foo", &[0, 1])])),
        "m=a e=2 a=-"
    );
    assert_eq!(s.resp(100_002, hb("b", 2)), "m=b e=2 a=foo:2,3");
}

#[test]
fn txn_offset_commit_validation_skips_anonymous_commits_and_maps_stale_epochs() {
    let mut s = Script::new(&[("foo", 2)]);
    s.send(0, join("a", &["foo"]));
    let g = &s.group;
    // TxnOffsetCommit before v3 carries no member: not checked, even with members.
    assert_eq!(g.validate_txn_offset_commit("", None, -1), Ok(()));
    assert_eq!(g.validate_txn_offset_commit("a", None, 1), Ok(()));
    assert_eq!(
        g.validate_txn_offset_commit("a", None, 0),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        g.validate_txn_offset_commit("b", None, 1),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        g.validate_txn_offset_commit("", Some("i"), -1),
        Err(ErrorCode::UnknownMemberId)
    );
}
