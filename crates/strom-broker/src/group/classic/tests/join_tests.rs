//! JoinGroup: initial delay, KIP-394, validation, protocol choice, rebalance
//! completion and timeouts, group size.

use strom_protocol::ErrorCode;

use super::{expect, j, test_config, Script, DELAY_MS, STABLE_MS};
use crate::group::classic::{GroupState, NEW_MEMBER_JOIN_TIMEOUT_MS};

#[test]
fn first_join_waits_the_initial_delay_then_the_joiner_leads() {
    let mut s = Script::new();
    expect(s.join(0, j(1, "").client("a")), &[]);
    assert_eq!(s.state(), GroupState::PreparingRebalance);
    assert_eq!(s.group.next_deadline_ms(), Some(DELAY_MS));
    expect(s.tick(DELAY_MS - 1), &[]);
    expect(
        s.tick(DELAY_MS),
        &["J1 m=a-1 g=1 l=a-1 p=range members=a-1:r"],
    );
    assert_eq!(s.state(), GroupState::CompletingRebalance);
}

#[test]
fn initial_delay_is_extended_by_new_members_up_to_the_rebalance_timeout() {
    let mut s = Script::new();
    expect(s.join(0, j(1, "").client("a").rebalance(7_000)), &[]);
    expect(s.join(2_000, j(2, "").client("b").rebalance(7_000)), &[]);
    // b joined during the delay: another delay (3000) starts.
    expect(s.tick(3_000), &[]);
    assert_eq!(s.group.next_deadline_ms(), Some(6_000));
    expect(s.join(5_000, j(3, "").client("c").rebalance(7_000)), &[]);
    // Only 1000 ms of the 7000 ms rebalance timeout remain.
    expect(s.tick(6_000), &[]);
    assert_eq!(s.group.next_deadline_ms(), Some(7_000));
    expect(
        s.tick(7_000),
        &[
            "J1 m=a-1 g=1 l=a-1 p=range members=a-1:r,b-2:r,c-3:r",
            "J2 m=b-2 g=1 l=a-1 p=range",
            "J3 m=c-3 g=1 l=a-1 p=range",
        ],
    );
}

#[test]
fn unknown_member_gets_member_id_required_and_joins_with_it() {
    let mut s = Script::new();
    expect(
        s.join(0, j(1, "").client("a").v4()),
        &["J1 MemberIdRequired m=a-1"],
    );
    assert_eq!(s.state(), GroupState::Empty);
    expect(s.join(10, j(2, "a-1").v4()), &[]);
    expect(
        s.tick(10 + DELAY_MS),
        &["J2 m=a-1 g=1 l=a-1 p=range members=a-1:r"],
    );
}

#[test]
fn pending_member_expires_after_its_session_timeout() {
    let mut s = Script::new();
    expect(
        s.join(0, j(1, "").client("a").v4().session(7_000)),
        &["J1 MemberIdRequired m=a-1"],
    );
    assert_eq!(s.group.next_deadline_ms(), Some(7_000));
    expect(s.tick(7_000), &[]);
    assert_eq!(s.group.next_deadline_ms(), None);
    expect(
        s.join(7_001, j(2, "a-1").v4()),
        &["J2 UnknownMemberId m=a-1"],
    );
}

#[test]
fn pending_member_holds_the_rebalance_until_it_expires() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a")]);
    // b-2 is pending until 7000 + 10000.
    expect(
        s.join(7_000, j(2, "").client("b").v4()),
        &["J2 MemberIdRequired m=b-2"],
    );
    // The leader rejoins: a rebalance that also waits for b-2.
    expect(s.join(8_000, j(3, "a-1")), &[]);
    assert_eq!(s.state(), GroupState::PreparingRebalance);
    expect(s.tick(16_999), &[]);
    expect(
        s.tick(17_000),
        &["J3 m=a-1 g=2 l=a-1 p=range members=a-1:r"],
    );
}

#[test]
fn session_timeout_outside_the_configured_bounds_is_refused() {
    let mut s = Script::new();
    expect(
        s.join(0, j(1, "").session(5_999)),
        &["J1 InvalidSessionTimeout m="],
    );
    expect(
        s.join(0, j(2, "x").session(1_800_001)),
        &["J2 InvalidSessionTimeout m=x"],
    );
    assert_eq!(s.state(), GroupState::Empty);
    expect(s.join(0, j(3, "").session(6_000)), &[]);
    assert_eq!(s.state(), GroupState::PreparingRebalance);
}

#[test]
fn inconsistent_protocol_type_or_no_common_protocol_is_refused() {
    let mut s = Script::new();
    expect(
        s.join(0, j(1, "").protocols(&[])),
        &["J1 InconsistentGroupProtocol m="],
    );
    expect(
        s.join(0, j(2, "").protocol_type("")),
        &["J2 InconsistentGroupProtocol m="],
    );
    s.stable(vec![j(3, "").client("a")]);
    expect(
        s.join(7_000, j(4, "").protocol_type("connect")),
        &["J4 InconsistentGroupProtocol m="],
    );
    let other = j(5, "").protocols(&[("roundrobin", "x")]);
    expect(s.join(7_000, other), &["J5 InconsistentGroupProtocol m="]);
    let existing = j(6, "a-1").protocols(&[("roundrobin", "x")]);
    expect(
        s.join(7_000, existing),
        &["J6 InconsistentGroupProtocol m=a-1"],
    );
    assert_eq!(s.state(), GroupState::Stable);
}

/// Joins `members` (client id, protocols) at t=0 and returns the protocol chosen.
fn chosen_protocol(members: &[(&str, &[(&str, &str)])]) -> String {
    let mut s = Script::new();
    for (i, (client, protocols)) in members.iter().enumerate() {
        expect(
            s.join(0, j(i as u64, "").client(client).protocols(protocols)),
            &[],
        );
    }
    s.tick(DELAY_MS);
    s.tick(STABLE_MS);
    s.group.protocol_name().expect("protocol").to_owned()
}

#[test]
fn protocol_is_chosen_by_member_votes_among_common_protocols() {
    let both_rr_first: &[(&str, &str)] = &[("roundrobin", "m"), ("range", "m")];
    let both_range_first: &[(&str, &str)] = &[("range", "m"), ("roundrobin", "m")];
    // Most votes wins: roundrobin 1, range 2.
    let members = [
        ("a", both_rr_first),
        ("b", both_range_first),
        ("c", both_range_first),
    ];
    assert_eq!(chosen_protocol(&members), "range");
    let members = [
        ("a", both_rr_first),
        ("b", both_rr_first),
        ("c", both_range_first),
    ];
    assert_eq!(chosen_protocol(&members), "roundrobin");
    // Only protocols every member supports are candidates.
    let sticky_first: &[(&str, &str)] = &[("sticky", "m"), ("range", "m")];
    assert_eq!(
        chosen_protocol(&[("a", sticky_first), ("b", &[("range", "m")])]),
        "range"
    );
    // A tie goes to the protocol voted first in join order.
    assert_eq!(
        chosen_protocol(&[("a", both_rr_first), ("b", both_range_first)]),
        "roundrobin"
    );
    assert_eq!(
        chosen_protocol(&[("a", both_range_first), ("b", both_rr_first)]),
        "range"
    );
}

#[test]
fn rebalance_completes_as_soon_as_every_member_rejoined() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a"), j(2, "").client("b")]);
    // A follower with new metadata forces a rebalance.
    expect(
        s.join(7_000, j(3, "b-2").protocols(&[("range", "new")])),
        &[],
    );
    assert_eq!(s.state(), GroupState::PreparingRebalance);
    assert_eq!(s.heartbeat(7_001, "a-1", 1), ErrorCode::RebalanceInProgress);
    expect(
        s.join(7_002, j(4, "a-1")),
        &[
            "J4 m=a-1 g=2 l=a-1 p=range members=a-1:r,b-2:new",
            "J3 m=b-2 g=2 l=a-1 p=range",
        ],
    );
    assert_eq!(s.state(), GroupState::CompletingRebalance);
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a"), j(2, "").client("b")]);
    // The leader rejoins at 8000: the join phase ends by 28000.
    expect(s.join(8_000, j(3, "a-1")), &[]);
    // b stays alive by heartbeating but never rejoins.
    assert_eq!(
        s.heartbeat(15_000, "b-2", 1),
        ErrorCode::RebalanceInProgress
    );
    assert_eq!(
        s.heartbeat(23_000, "b-2", 1),
        ErrorCode::RebalanceInProgress
    );
    expect(s.tick(27_999), &[]);
    expect(
        s.tick(28_000),
        &["J3 m=a-1 g=2 l=a-1 p=range members=a-1:r"],
    );
    assert_eq!(s.heartbeat(28_001, "b-2", 2), ErrorCode::UnknownMemberId);
}

#[test]
fn rejoin_during_completing_rebalance_resends_the_join_response() {
    let mut s = Script::new();
    expect(s.join(0, j(1, "").client("a")), &[]);
    expect(s.join(0, j(2, "").client("b")), &[]);
    expect(s.tick(DELAY_MS), &[]);
    assert_eq!(s.tick(STABLE_MS).len(), 2);
    expect(
        s.join(6_500, j(3, "a-1")),
        &["J3 m=a-1 g=1 l=a-1 p=range members=a-1:r,b-2:r"],
    );
    expect(s.join(6_500, j(4, "b-2")), &["J4 m=b-2 g=1 l=a-1 p=range"]);
    assert_eq!(s.state(), GroupState::CompletingRebalance);
}

#[test]
fn stable_follower_rejoining_unchanged_gets_the_current_generation_but_leader_rebalances() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a"), j(2, "").client("b")]);
    expect(s.join(7_000, j(3, "b-2")), &["J3 m=b-2 g=1 l=a-1 p=range"]);
    assert_eq!(s.state(), GroupState::Stable);
    expect(s.join(7_000, j(4, "a-1")), &[]);
    assert_eq!(s.state(), GroupState::PreparingRebalance);
}

#[test]
fn new_member_parked_too_long_is_dropped() {
    // A long rebalance timeout, so only the new-member join timeout ends b's wait.
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a").rebalance(1_000_000)]);
    // b's join at 8000 starts a rebalance that a never joins.
    expect(s.join(8_000, j(2, "").client("b")), &[]);
    let b_deadline = 8_000 + NEW_MEMBER_JOIN_TIMEOUT_MS;
    for t in (15_000..b_deadline).step_by(9_000) {
        assert_eq!(s.heartbeat(t, "a-1", 1), ErrorCode::RebalanceInProgress);
    }
    expect(s.tick(b_deadline - 1), &[]);
    expect(s.tick(b_deadline), &["J2 UnknownMemberId m="]);
    assert!(!s.group.has_member("b-2"));
    assert_eq!(s.state(), GroupState::PreparingRebalance);
}

#[test]
fn joins_beyond_the_group_max_size_are_refused() {
    let cfg = crate::group::classic::GroupConfig {
        max_size: 1,
        ..test_config()
    };
    let mut s = Script::with_config(cfg.clone());
    expect(s.join(0, j(1, "").client("a")), &[]);
    expect(
        s.join(0, j(2, "").client("b")),
        &["J2 GroupMaxSizeReached m="],
    );
    let mut s = Script::with_config(cfg);
    s.stable(vec![j(1, "").client("a")]);
    expect(
        s.join(7_000, j(3, "").client("b")),
        &["J3 GroupMaxSizeReached m="],
    );
    assert_eq!(s.state(), GroupState::Stable);
}
