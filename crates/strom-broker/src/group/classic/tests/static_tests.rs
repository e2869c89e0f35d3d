//! KIP-345 static membership: rejoin without a rebalance, fencing of the old
//! member id, static members surviving a rebalance they miss.

use strom_protocol::ErrorCode;

use super::{expect, j, sy, Script};
use crate::group::classic::GroupState;

#[test]
fn static_rejoin_in_a_stable_group_keeps_the_assignment_without_rebalance() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").client("a"), j(2, "").instance("ib")]);
    expect(
        s.join(7_000, j(3, "").instance("ib")),
        &["PERSIST", "J3 m=ib-3 g=1 l=a-1 p=range"],
    );
    assert_eq!(s.state(), GroupState::Stable);
    assert_eq!(s.group.generation_id(), 1);
    // The old member id is fenced everywhere.
    assert_eq!(
        s.group.heartbeat("ib-2", Some("ib"), 1, 5_001),
        ErrorCode::FencedInstanceId
    );
    expect(
        s.sync(5_001, sy(4, "ib-2", 1).instance("ib")),
        &["S4 FencedInstanceId"],
    );
    expect(
        s.join(5_001, j(5, "ib-2").instance("ib")),
        &["J5 FencedInstanceId m=ib-2"],
    );
    // The new id syncs and gets the old id's assignment.
    expect(
        s.sync(5_002, sy(6, "ib-3", 1).instance("ib")),
        &["S6 a=x-ib-2 p=range"],
    );
    assert_eq!(
        s.group.heartbeat("ib-3", Some("ib"), 1, 5_003),
        ErrorCode::None
    );
}

#[test]
fn static_leader_rejoin_tells_old_clients_the_previous_leader_id() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").instance("ia"), j(2, "").client("b")]);
    // Pre-v9 clients must not recompute the assignment, so they are not told they lead.
    expect(
        s.join(7_000, j(3, "").instance("ia")),
        &["PERSIST", "J3 m=ia-3 g=1 l=ia-1 p=range"],
    );
    assert_eq!(s.group.leader(), Some("ia-3"));
}

#[test]
fn static_leader_rejoin_with_v9_gets_the_members_and_skip_assignment() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").instance("ia"), j(2, "").client("b")]);
    expect(
        s.join(7_000, j(3, "").instance("ia").v9()),
        &[
            "PERSIST",
            "J3 m=ia-3 g=1 l=ia-3 p=range members=ia-3:r,b-2:r skip",
        ],
    );
}

#[test]
fn static_rejoin_fences_the_parked_join_of_the_old_member_id() {
    let mut s = Script::new();
    let joins = vec![
        j(1, "").instance("ia"),
        j(2, "").client("b"),
        j(3, "").client("c"),
    ];
    s.stable(joins);
    expect(
        s.join(7_000, j(4, "b-2").protocols(&[("range", "new")])),
        &[],
    );
    expect(s.join(7_001, j(5, "ia-1").instance("ia")), &[]);
    // The instance restarts and rejoins without its member id.
    expect(
        s.join(7_002, j(6, "").instance("ia")),
        &["J5 FencedInstanceId m=ia-1"],
    );
    expect(
        s.join(7_003, j(7, "c-3")),
        &[
            "J6 m=ia-4 g=2 l=ia-4 p=range members=ia-4:r,b-2:new,c-3:r",
            "J4 m=b-2 g=2 l=ia-4 p=range",
            "J7 m=c-3 g=2 l=ia-4 p=range",
        ],
    );
}

#[test]
fn static_rejoin_that_changes_the_selected_protocol_rebalances() {
    let mut s = Script::new();
    let ib = j(1, "")
        .instance("ib")
        .protocols(&[("range", "ib"), ("rr", "ib")]);
    let a = j(2, "")
        .client("a")
        .protocols(&[("range", "a"), ("rr", "a")]);
    s.stable(vec![ib, a]);
    assert_eq!(s.group.protocol_name(), Some("range"));
    // ib now prefers rr: a 1-1 tie that ib, the earliest member, decides.
    let rejoin = j(3, "")
        .instance("ib")
        .protocols(&[("rr", "ib2"), ("range", "ib2")]);
    expect(s.join(7_000, rejoin), &[]);
    assert_eq!(s.state(), GroupState::PreparingRebalance);
    expect(
        s.join(7_001, j(4, "a-2").protocols(&[("range", "a"), ("rr", "a")])),
        &[
            "J3 m=ib-3 g=2 l=ib-3 p=rr members=ib-3:ib2,a-2:a",
            "J4 m=a-2 g=2 l=ib-3 p=rr",
        ],
    );
}

#[test]
fn static_member_missing_a_rebalance_is_kept_but_loses_leadership() {
    let mut s = Script::new();
    s.stable(vec![j(1, "").instance("ia"), j(2, "").client("b")]);
    expect(
        s.join(7_000, j(3, "b-2").protocols(&[("range", "new")])),
        &[],
    );
    for t in [15_000, 23_000] {
        assert_eq!(
            s.group.heartbeat("ia-1", Some("ia"), 1, t),
            ErrorCode::RebalanceInProgress
        );
    }
    expect(
        s.tick(27_000),
        &["J3 m=b-2 g=2 l=b-2 p=range members=ia-1:r,b-2:new"],
    );
    assert!(s.group.has_member("ia-1"));
    assert_eq!(s.state(), GroupState::CompletingRebalance);
}
