//! Session and rebalance timeouts.

use super::*;

#[test]
fn session_expiry_removes_the_member_and_the_rest_take_over() {
    let mut s = Script::new(&[("foo", 4)]);
    s.send(0, join("a", &["foo"]));
    s.send(2, join("b", &["foo"]));
    s.send(3, hb("a", 1));
    s.send(5, hb("a", 1).owned(&[("foo", &[0, 1])]));
    s.send(6, hb("b", 2));
    assert_eq!(s.group.next_deadline_ms(), Some(5 + i64::from(SESSION_MS)));
    // b keeps heartbeating; a goes silent.
    s.send(40_000, hb("b", 2));
    assert_eq!(s.tick(45_004), Vec::<String>::new());
    assert_eq!(s.tick(45_005), ["PERSIST", "REMOVED a SessionTimeout"]);
    assert_eq!(
        s.group.next_deadline_ms(),
        Some(40_000 + i64::from(SESSION_MS))
    );
    assert_eq!(s.resp(45_006, hb("b", 2)), "m=b e=3 a=foo:0,1,2,3");
    assert_eq!(s.resp(45_007, hb("a", 2)), "UnknownMemberId");
}

#[test]
fn member_that_does_not_revoke_within_its_rebalance_timeout_is_fenced() {
    let mut s = Script::new(&[("foo", 4)]);
    s.send(0, join("a", &["foo"]));
    s.send(2, join("b", &["foo"]));
    assert_eq!(s.resp(3, hb("a", 1)), "m=a e=1 a=foo:0,1");
    let deadline = 3 + i64::from(REBALANCE_MS);
    assert_eq!(s.group.next_deadline_ms(), Some(deadline));
    // a keeps heartbeating (so its session is fine) but never revokes.
    for t in [10_000, 20_000, deadline - 1] {
        assert_eq!(s.resp(t, hb("a", 1)), "m=a e=1 a=-");
        s.send(t, hb("b", 2));
        assert_eq!(s.tick(t), Vec::<String>::new());
    }
    assert_eq!(s.tick(deadline), ["PERSIST", "REMOVED a RebalanceTimeout"]);
    assert_eq!(s.resp(deadline + 1, hb("b", 2)), "m=b e=3 a=foo:0,1,2,3");
    assert_eq!(s.resp(deadline + 2, hb("a", 1)), "UnknownMemberId");
}

#[test]
fn rebalance_timer_is_disarmed_once_the_member_revokes() {
    let mut s = Script::new(&[("foo", 4)]);
    s.send(0, join("a", &["foo"]).rebalance(1_000));
    s.send(2, join("b", &["foo"]));
    s.send(3, hb("a", 1));
    assert_eq!(s.group.next_deadline_ms(), Some(1_003));
    s.send(500, hb("a", 1).owned(&[("foo", &[0, 1])]));
    assert_eq!(s.tick(1_003), Vec::<String>::new());
    assert_eq!(s.group.member_epoch("a"), Some(2));
    assert_eq!(s.group.next_deadline_ms(), Some(2 + i64::from(SESSION_MS)));
}
