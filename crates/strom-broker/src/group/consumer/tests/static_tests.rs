//! Static membership: instance ids, temporary leave (-2), replacement.

use super::*;

/// Static members `sa` (instance i1) and `sb` (i2) on foo (4 partitions),
/// stable at group epoch 2 with foo 0,1 and 2,3.
fn two_static(s: &mut Script) {
    s.send(0, join("sa", &["foo"]).instance("i1"));
    s.send(1, join("sb", &["foo"]).instance("i2"));
    s.send(2, hb("sa", 1).instance("i1"));
    s.send(3, hb("sa", 1).instance("i1").owned(&[("foo", &[0, 1])]));
    assert_eq!(s.resp(4, hb("sb", 2).instance("i2")), "m=sb e=2 a=foo:2,3");
}

#[test]
fn static_member_rejoining_after_temporary_leave_keeps_its_assignment() {
    let mut s = Script::new(&[("foo", 4)]);
    two_static(&mut s);
    assert_eq!(
        s.send(10, hb("sa", -2).instance("i1")),
        ["m=sa e=-2 a=-", "PERSIST"]
    );
    assert_eq!(
        s.group.group_epoch(),
        2,
        "a temporary leave does not rebalance"
    );
    // sb is not given sa's partitions meanwhile.
    assert_eq!(s.resp(11, hb("sb", 2).instance("i2")), "m=sb e=2 a=-");
    // The restarted process (new member id, same instance id) takes over.
    assert_eq!(
        s.send(20, join("sa2", &["foo"]).instance("i1")),
        ["m=sa2 e=3 a=foo:0,1", "PERSIST", "REMOVED sa Replaced"]
    );
    assert!(!s.group.has_member("sa"));
    assert_eq!(s.resp(21, hb("sb", 2).instance("i2")), "m=sb e=3 a=-");
    assert_eq!(s.group.state(), super::super::GroupState::Stable);
    assert_eq!(s.resp(22, hb("sa", 1).instance("i1")), "FencedInstanceId");
}

#[test]
fn instance_id_in_use_is_unreleased_and_other_member_ids_are_fenced() {
    let mut s = Script::new(&[("foo", 4)]);
    two_static(&mut s);
    assert_eq!(
        s.resp(5, join("x", &["foo"]).instance("i1")),
        "UnreleasedInstanceId"
    );
    assert_eq!(s.resp(5, hb("x", 2).instance("i1")), "FencedInstanceId");
    assert_eq!(s.resp(5, hb("x", -2).instance("i1")), "FencedInstanceId");
    assert_eq!(s.resp(5, hb("x", -1).instance("i1")), "FencedInstanceId");
    assert_eq!(s.resp(5, hb("x", 2).instance("i9")), "UnknownMemberId");
    assert_eq!(s.resp(5, hb("x", -2).instance("i9")), "UnknownMemberId");
    // Nothing changed for the owner of i1.
    assert_eq!(s.resp(6, hb("sa", 2).instance("i1")), "m=sa e=2 a=-");
}

#[test]
fn static_member_that_left_temporarily_expires_after_its_session_timeout() {
    let mut s = Script::new(&[("foo", 4)]);
    two_static(&mut s);
    s.send(10, hb("sa", -2).instance("i1"));
    // The session deadline of its last heartbeat (t=3) still applies.
    let deadline = 3 + i64::from(SESSION_MS);
    assert_eq!(s.tick(deadline - 1), Vec::<String>::new());
    assert_eq!(s.tick(deadline), ["PERSIST", "REMOVED sa SessionTimeout"]);
    assert_eq!(
        s.resp(deadline + 1, hb("sb", 2).instance("i2")),
        "m=sb e=3 a=foo:0,1,2,3"
    );
    // The instance id is free again.
    assert_eq!(
        s.resp(deadline + 2, join("sa3", &["foo"]).instance("i1")),
        "m=sa3 e=4 a={}"
    );
}

#[test]
fn static_member_leaving_with_minus_one_is_removed_at_once() {
    let mut s = Script::new(&[("foo", 4)]);
    two_static(&mut s);
    assert_eq!(
        s.send(10, hb("sa", -1).instance("i1")),
        ["m=sa e=-1 a=-", "PERSIST", "REMOVED sa Left"]
    );
    assert_eq!(
        s.resp(11, hb("sb", 2).instance("i2")),
        "m=sb e=3 a=foo:0,1,2,3"
    );
}
