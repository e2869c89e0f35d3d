//! Property tests of the assignors over random subscriptions and (possibly
//! stale or conflicting) previous assignments.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use strom_controller::TopicId;

use super::*;

fn tid(i: usize) -> TopicId {
    TopicId([i as u8 + 1; 16])
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// A random spec: topic partition counts, per-member subscription bitmasks
/// (or one shared mask), and random previous assignments that may name
/// partitions that no longer exist or that another member also claims.
fn spec() -> impl Strategy<Value = AssignmentSpec> {
    (
        prop::collection::vec(0i32..10, 1..4),
        prop::collection::vec(
            (1u8..16, prop::collection::vec((0usize..4, 0i32..12), 0..8)),
            1..7,
        ),
        any::<bool>(),
    )
        .prop_map(|(counts, members, homogeneous)| {
            let shared = members[0].0;
            let topics: BTreeMap<TopicId, i32> = counts
                .iter()
                .enumerate()
                .map(|(i, c)| (tid(i), *c))
                .collect();
            let members = members
                .into_iter()
                .enumerate()
                .map(|(i, (mask, current))| {
                    let mask = if homogeneous { shared } else { mask };
                    let topics = (0..counts.len())
                        .filter(|t| mask & (1 << t) != 0)
                        .map(tid)
                        .collect();
                    let mut cur = Assignment::new();
                    for (t, p) in current {
                        cur.entry(tid(t)).or_default().insert(p);
                    }
                    let instance_id = (i % 2 == 0).then(|| format!("inst-{}", 9 - i));
                    (
                        format!("m{i}"),
                        MemberSpec {
                            instance_id,
                            topics,
                            current: cur,
                        },
                    )
                })
                .collect();
            AssignmentSpec { members, topics }
        })
}

/// Every partition of a topic somebody subscribes to is assigned.
fn check_complete(
    spec: &AssignmentSpec,
    out: &BTreeMap<String, Assignment>,
) -> Result<(), TestCaseError> {
    for (t, n) in &spec.topics {
        if spec.members.values().any(|m| m.topics.contains(t)) {
            let assigned: usize = out
                .values()
                .map(|a| a.get(t).map_or(0, BTreeSet::len))
                .sum();
            prop_assert_eq!(assigned, *n as usize, "topic {} not fully assigned", t);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn uniform_is_valid_complete_balanced_and_stable(spec in spec()) {
        let out = assign_uniform(&spec);
        prop_assert_eq!(check_assignment(&spec, &out), Ok(()));
        check_complete(&spec, &out)?;
        if spec.is_homogeneous() {
            let counts: Vec<usize> = out.values().map(count).collect();
            prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{:?}", counts);
        } else {
            // No partition could move to an eligible member holding two fewer.
            for (a, aa) in &out {
                for t in aa.keys().filter(|t| !aa[*t].is_empty()) {
                    for (b, bb) in &out {
                        if spec.members[b].topics.contains(t) {
                            prop_assert!(count(bb) + 1 >= count(aa), "{} could give {} to {}", a, t, b);
                        }
                    }
                }
            }
        }
        // Running again from its own output changes nothing.
        let mut again = spec.clone();
        for (id, m) in again.members.iter_mut() {
            m.current = out[id].clone();
        }
        prop_assert_eq!(assign_uniform(&again), out);
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins_or_leaves(spec in spec(), leave in any::<bool>()) {
        prop_assume!(spec.is_homogeneous());
        let mut settled = spec.clone();
        let first = assign_uniform(&spec);
        for (id, m) in settled.members.iter_mut() {
            m.current = first[id].clone();
        }
        if leave && settled.members.len() > 1 {
            let gone = settled.members.keys().next().unwrap().clone();
            settled.members.remove(&gone);
        } else {
            let topics = settled.members.values().next().unwrap().topics.clone();
            settled.members.insert("new".into(), MemberSpec { topics, ..MemberSpec::default() });
        }
        let total: usize = count(&first.values().fold(Assignment::new(), |mut acc, a| {
            for (t, ps) in a { acc.entry(*t).or_default().extend(ps); }
            acc
        }));
        let quota = total / settled.members.len();
        let second = assign_uniform(&settled);
        for (id, m) in &settled.members {
            let kept = second[id].iter().map(|(t, ps)| {
                ps.iter().filter(|p| m.current.get(t).is_some_and(|c| c.contains(p))).count()
            }).sum::<usize>();
            prop_assert!(kept >= count(&m.current).min(quota), "{} kept {} of {}", id, kept, count(&m.current));
        }
    }

    #[test]
    fn range_gives_contiguous_balanced_ranges_and_copartitions(spec in spec()) {
        let out = assign_range(&spec);
        prop_assert_eq!(check_assignment(&spec, &out), Ok(()));
        check_complete(&spec, &out)?;
        for t in spec.topics.keys() {
            let sizes: Vec<usize> = spec.members.iter()
                .filter(|(_, m)| m.topics.contains(t))
                .map(|(id, _)| out[id].get(t).map_or(0, BTreeSet::len))
                .collect();
            if let (Some(max), Some(min)) = (sizes.iter().max(), sizes.iter().min()) {
                prop_assert!(max - min <= 1);
            }
            for a in out.values() {
                if let Some(ps) = a.get(t) {
                    let (lo, hi) = (*ps.first().unwrap(), *ps.last().unwrap());
                    prop_assert_eq!(ps.len() as i32, hi - lo + 1, "not contiguous");
                }
            }
        }
        // Topics with the same subscribers and partition count are assigned alike.
        for (t1, n1) in &spec.topics {
            for (t2, n2) in &spec.topics {
                let same_subscribers = spec.members.values().all(|m| m.topics.contains(t1) == m.topics.contains(t2));
                if n1 == n2 && same_subscribers {
                    for a in out.values() {
                        prop_assert_eq!(a.get(t1), a.get(t2));
                    }
                }
            }
        }
    }
}

#[test]
fn range_orders_static_members_by_instance_id() {
    let t = tid(0);
    let member = |instance: Option<&str>| MemberSpec {
        instance_id: instance.map(str::to_owned),
        topics: [t].into(),
        current: Assignment::new(),
    };
    let spec = AssignmentSpec {
        members: [
            ("a".to_owned(), member(Some("z"))),
            ("b".to_owned(), member(Some("y"))),
        ]
        .into(),
        topics: [(t, 4)].into(),
    };
    let out = assign_range(&spec);
    assert_eq!(out["b"][&t], [0, 1].into());
    assert_eq!(out["a"][&t], [2, 3].into());
}

#[test]
fn uniform_keeps_owners_and_splits_evenly() {
    let t = tid(0);
    let spec = AssignmentSpec {
        members: [
            (
                "a".to_owned(),
                MemberSpec {
                    topics: [t].into(),
                    current: [(t, (0..6).collect())].into(),
                    ..MemberSpec::default()
                },
            ),
            (
                "b".to_owned(),
                MemberSpec {
                    topics: [t].into(),
                    ..MemberSpec::default()
                },
            ),
            (
                "c".to_owned(),
                MemberSpec {
                    topics: [t].into(),
                    ..MemberSpec::default()
                },
            ),
        ]
        .into(),
        topics: [(t, 6)].into(),
    };
    let out = assign_uniform(&spec);
    assert_eq!(out["a"][&t], [0, 1].into());
    assert_eq!((out["b"][&t].len(), out["c"][&t].len()), (2, 2));
    let rest: BTreeSet<i32> = out["b"][&t].union(&out["c"][&t]).copied().collect();
    assert_eq!(rest, (2..6).collect());
}
