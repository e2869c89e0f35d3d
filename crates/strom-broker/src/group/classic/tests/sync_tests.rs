//! SyncGroup, Heartbeat, session expiry and LeaveGroup.

use strom_protocol::ErrorCode;

use super::{expect, j, sy, Script, DELAY_MS, STABLE_MS};
use crate::group::classic::GroupState;

/// Two members a-1 (leader) and b-2 in CompletingRebalance at t=STABLE_MS
/// (b joined during the initial delay, which extended it once). Session
/// deadlines are 16000; the sync deadline is 6000 + 20000.
fn completing() -> Script {
    let mut s = Script::new();
    expect(s.join(0, j(1, "").client("a")), &[]);
    expect(s.join(0, j(2, "").client("b")), &[]);
    expect(s.tick(DELAY_MS), &[]);
    assert_eq!(s.tick(STABLE_MS).len(), 2);
    s
}

#[test]
fn followers_wait_for_the_leader_then_everyone_gets_its_assignment() {
    let mut s = completing();
    expect(s.sync(6_100, sy(3, "b-2", 1)), &[]);
    assert_eq!(s.state(), GroupState::CompletingRebalance);
    let leader = sy(4, "a-1", 1).assign(&[("a-1", "A"), ("b-2", "B")]);
    expect(
        s.sync(6_200, leader),
        &["PERSIST", "S4 a=A p=range", "S3 a=B p=range"],
    );
    assert_eq!(s.state(), GroupState::Stable);
    // In Stable a sync is answered at once.
    expect(s.sync(6_300, sy(5, "b-2", 1)), &["S5 a=B p=range"]);
}

#[test]
fn members_left_out_of_the_leader_assignment_get_an_empty_one() {
    let mut s = completing();
    expect(s.sync(6_100, sy(3, "b-2", 1)), &[]);
    let leader = sy(4, "a-1", 1).assign(&[("a-1", "A"), ("gone", "G")]);
    expect(
        s.sync(6_200, leader),
        &["PERSIST", "S4 a=A p=range", "S3 a= p=range"],
    );
}

#[test]
fn sync_is_refused_for_wrong_state_member_generation_or_protocol() {
    let mut s = Script::new();
    expect(s.sync(0, sy(1, "x", 0)), &["S1 UnknownMemberId"]);
    expect(s.join(0, j(2, "").client("a")), &[]);
    expect(s.join(0, j(3, "").client("b")), &[]);
    expect(s.sync(100, sy(4, "a-1", 0)), &["S4 RebalanceInProgress"]);
    s.tick(DELAY_MS);
    s.tick(STABLE_MS);
    expect(s.sync(6_001, sy(5, "zz", 1)), &["S5 UnknownMemberId"]);
    expect(s.sync(6_001, sy(6, "a-1", 0)), &["S6 IllegalGeneration"]);
    let name = sy(7, "a-1", 1).protocol("consumer", "roundrobin");
    expect(s.sync(6_001, name), &["S7 InconsistentGroupProtocol"]);
    let kind = sy(8, "a-1", 1).protocol("connect", "range");
    expect(s.sync(6_001, kind), &["S8 InconsistentGroupProtocol"]);
    expect(
        s.sync(6_001, sy(9, "b-2", 1).protocol("consumer", "range")),
        &[],
    );
}

#[test]
fn parked_sync_gets_rebalance_in_progress_when_a_new_rebalance_starts() {
    let mut s = completing();
    expect(s.sync(6_100, sy(3, "b-2", 1)), &[]);
    expect(
        s.join(6_200, j(4, "").client("c")),
        &["S3 RebalanceInProgress"],
    );
    assert_eq!(s.state(), GroupState::PreparingRebalance);
}

#[test]
fn members_that_never_sync_are_removed_at_the_rebalance_timeout() {
    let mut s = completing();
    let leader = sy(3, "a-1", 1).assign(&[("a-1", "A"), ("b-2", "B")]);
    expect(s.sync(6_100, leader), &["PERSIST", "S3 a=A p=range"]);
    // Both stay alive; b never syncs. The sync deadline is 6000 + 20000.
    for t in [15_000, 23_000] {
        assert_eq!(s.heartbeat(t, "a-1", 1), ErrorCode::None);
        assert_eq!(s.heartbeat(t, "b-2", 1), ErrorCode::None);
    }
    expect(s.tick(25_999), &[]);
    assert_eq!(s.state(), GroupState::Stable);
    expect(s.tick(26_000), &[]);
    assert!(!s.group.has_member("b-2"));
    assert_eq!(s.state(), GroupState::PreparingRebalance);
    assert_eq!(
        s.heartbeat(26_001, "a-1", 1),
        ErrorCode::RebalanceInProgress
    );
}

#[test]
fn heartbeat_answers_in_every_state() {
    let mut s = Script::new();
    assert_eq!(s.heartbeat(0, "a-1", 0), ErrorCode::UnknownMemberId);
    expect(s.join(0, j(1, "").client("a")), &[]);
    assert_eq!(s.heartbeat(1, "a-1", 0), ErrorCode::RebalanceInProgress);
    assert_eq!(s.heartbeat(1, "a-1", 1), ErrorCode::IllegalGeneration);
    s.tick(DELAY_MS);
    assert_eq!(s.state(), GroupState::CompletingRebalance);
    assert_eq!(s.heartbeat(3_001, "a-1", 1), ErrorCode::None);
    assert_eq!(s.heartbeat(3_001, "a-1", 0), ErrorCode::IllegalGeneration);
    s.sync(3_002, sy(2, "a-1", 1).assign(&[("a-1", "A")]));
    assert_eq!(s.state(), GroupState::Stable);
    assert_eq!(s.heartbeat(3_003, "a-1", 1), ErrorCode::None);
    assert_eq!(s.heartbeat(3_003, "nobody", 1), ErrorCode::UnknownMemberId);
    assert_eq!(
        s.group.heartbeat("a-1", Some("ia"), 1, 3_003),
        ErrorCode::UnknownMemberId
    );
    s.leave(3_004, &[("a-1", None)]);
    assert_eq!(s.state(), GroupState::Empty);
    assert_eq!(s.heartbeat(3_005, "a-1", 2), ErrorCode::UnknownMemberId);
    s.group.unload(3_006);
    assert_eq!(
        s.heartbeat(3_007, "a-1", 2),
        ErrorCode::CoordinatorNotAvailable
    );
}

#[test]
fn session_expiry_removes_the_silent_member_and_rebalances() {
    let mut s = Script::new();
    // Both sessions restart when the syncs are answered at 6000.
    s.stable(vec![j(1, "").client("a"), j(2, "").client("b")]);
    assert_eq!(s.heartbeat(15_000, "a-1", 1), ErrorCode::None);
    expect(s.tick(15_999), &[]);
    assert!(s.group.has_member("b-2"));
    expect(s.tick(16_000), &[]);
    assert!(!s.group.has_member("b-2"));
    assert_eq!(s.state(), GroupState::PreparingRebalance);
    expect(
        s.join(16_100, j(3, "a-1")),
        &["J3 m=a-1 g=2 l=a-1 p=range members=a-1:r"],
    );
}

#[test]
fn member_awaiting_a_join_response_is_not_expired_by_its_session_timeout() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a"), j(2, "").client("b")]);
    expect(
        s.join(7_000, j(3, "b-2").protocols(&[("range", "new")])),
        &[],
    );
    for t in [15_000, 23_000] {
        assert_eq!(s.heartbeat(t, "a-1", 1), ErrorCode::RebalanceInProgress);
    }
    // b's session deadline (16000) passes while it is parked.
    expect(s.tick(16_000), &[]);
    assert!(s.group.has_member("b-2"));
    // At the rebalance timeout the leader, which never rejoined, is dropped.
    expect(s.tick(26_999), &[]);
    expect(
        s.tick(27_000),
        &["J3 m=b-2 g=2 l=b-2 p=range members=b-2:new"],
    );
}

#[test]
fn leave_removes_members_and_rebalances() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a"), j(2, "").client("b")]);
    let (errors, out) = s.leave(7_000, &[("b-2", None), ("zz", None)]);
    assert_eq!(errors, [ErrorCode::None, ErrorCode::UnknownMemberId]);
    expect(out, &[]);
    assert_eq!(s.state(), GroupState::PreparingRebalance);
    expect(
        s.join(7_100, j(3, "a-1")),
        &["J3 m=a-1 g=2 l=a-1 p=range members=a-1:r"],
    );
}

#[test]
fn last_member_leaving_empties_the_group_with_a_new_generation() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a")]);
    let (errors, out) = s.leave(7_000, &[("a-1", None)]);
    assert_eq!(errors, [ErrorCode::None]);
    expect(out, &["PERSIST"]);
    assert_eq!(s.state(), GroupState::Empty);
    assert_eq!(s.group.generation_id(), 2);
    assert_eq!(s.group.protocol_name(), None);
    assert_eq!(s.group.protocol_type(), Some("consumer"));
    assert_eq!(s.group.next_deadline_ms(), None);
}

#[test]
fn leaving_member_with_a_parked_join_gets_unknown_member_id() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a"), j(2, "").client("b")]);
    expect(
        s.join(7_000, j(3, "b-2").protocols(&[("range", "new")])),
        &[],
    );
    let (errors, out) = s.leave(7_100, &[("b-2", None)]);
    assert_eq!(errors, [ErrorCode::None]);
    expect(out, &["J3 UnknownMemberId m="]);
    assert_eq!(s.state(), GroupState::PreparingRebalance);
}

#[test]
fn leave_by_instance_id_removes_the_static_member_and_old_ids_are_fenced() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a"), j(2, "").instance("ib")]);
    expect(
        s.join(7_000, j(3, "").instance("ib")),
        &["PERSIST", "J3 m=ib-3 g=1 l=a-1 p=range"],
    );
    let (errors, _) = s.leave(7_100, &[("ib-2", Some("ib"))]);
    assert_eq!(errors, [ErrorCode::FencedInstanceId]);
    assert_eq!(s.state(), GroupState::Stable);
    let (errors, out) = s.leave(7_200, &[("", Some("nobody")), ("", None), ("", Some("ib"))]);
    assert_eq!(
        errors,
        [
            ErrorCode::UnknownMemberId,
            ErrorCode::UnknownMemberId,
            ErrorCode::None
        ]
    );
    expect(out, &[]);
    assert!(!s.group.has_member("ib-3"));
    assert_eq!(s.state(), GroupState::PreparingRebalance);
}
