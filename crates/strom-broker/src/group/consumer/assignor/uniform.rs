//! The uniform assignor: spreads all subscribed partitions as evenly as the
//! subscriptions allow, keeping partitions where they are whenever balance
//! permits (Kafka's `UniformAssignor`).
//!
//! 1. Every member keeps the partitions of its previous target that still
//!    exist and that it still subscribes to.
//! 2. With identical subscriptions, each member's quota is `total / members`,
//!    the members already holding the most get the `total % members` extra
//!    slots, and members over their quota give up their highest partitions.
//!    The result is balanced: counts differ by at most one.
//! 3. Free partitions go, in topic/partition order, to the eligible member
//!    holding the fewest.
//! 4. With different subscriptions, partitions then move from a member to an
//!    eligible member holding at least two fewer until no such move exists
//!    (each move lowers the sum of squared counts, so this ends).
//!
//! Cost: O(partitions × members) per computation, bounded by
//! `group.consumer.max.size` and the subscribed topics' partition counts.

use std::collections::{BTreeMap, BTreeSet};

use strom_controller::TopicId;

use super::{Assignment, AssignmentSpec};

/// Runs the uniform assignor. Every member gets an entry.
pub fn assign_uniform(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let ids: Vec<&String> = spec.members.keys().collect();
    let specs: Vec<_> = spec.members.values().collect();
    let n = ids.len();
    let mut owned: Vec<BTreeSet<(TopicId, i32)>> = vec![BTreeSet::new(); n];
    let mut owner: BTreeMap<(TopicId, i32), usize> = BTreeMap::new();
    let exists = |t: &TopicId, p: i32| spec.topics.get(t).is_some_and(|&c| p >= 0 && p < c);

    // 1. Keep what is still valid.
    for (i, m) in specs.iter().enumerate() {
        for (t, ps) in &m.current {
            if !m.topics.contains(t) {
                continue;
            }
            for &p in ps {
                if exists(t, p) && !owner.contains_key(&(*t, p)) {
                    owner.insert((*t, p), i);
                    owned[i].insert((*t, p));
                }
            }
        }
    }

    // 2. Quotas when everyone subscribes to the same topics.
    if n > 0 && spec.is_homogeneous() {
        let total: usize = specs[0]
            .topics
            .iter()
            .map(|t| spec.topics.get(t).copied().unwrap_or(0).max(0) as usize)
            .sum();
        let (min, mut extra) = (total / n, total % n);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(owned[i].len()), i));
        for i in order {
            let quota = if owned[i].len() > min && extra > 0 {
                extra -= 1;
                min + 1
            } else {
                min
            };
            while owned[i].len() > quota {
                let tp = owned[i].pop_last().expect("over quota");
                owner.remove(&tp);
            }
        }
    }

    // 3. Free partitions to the eligible member holding the fewest.
    for (&t, &count) in &spec.topics {
        for p in 0..count.max(0) {
            if owner.contains_key(&(t, p)) {
                continue;
            }
            let best = (0..n)
                .filter(|&i| specs[i].topics.contains(&t))
                .min_by_key(|&i| (owned[i].len(), i));
            if let Some(i) = best {
                owner.insert((t, p), i);
                owned[i].insert((t, p));
            }
        }
    }

    // 4. Even out what different subscriptions left uneven.
    if !spec.is_homogeneous() {
        balance(&specs, &mut owned);
    }

    ids.into_iter()
        .zip(owned)
        .map(|(id, parts)| {
            let mut a = Assignment::new();
            for (t, p) in parts {
                a.entry(t).or_default().insert(p);
            }
            (id.clone(), a)
        })
        .collect()
}

/// Moves partitions from fuller to emptier eligible members until no member
/// holds two more than an eligible member.
fn balance(specs: &[&super::MemberSpec], owned: &mut [BTreeSet<(TopicId, i32)>]) {
    let n = specs.len();
    loop {
        let mut moved = false;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(owned[i].len()), i));
        'members: for from in order {
            let parts: Vec<(TopicId, i32)> = owned[from].iter().rev().copied().collect();
            for (t, p) in parts {
                let to = (0..n)
                    .filter(|&j| j != from && specs[j].topics.contains(&t))
                    .min_by_key(|&j| (owned[j].len(), j));
                if let Some(to) = to {
                    if owned[to].len() + 1 < owned[from].len() {
                        owned[from].remove(&(t, p));
                        owned[to].insert((t, p));
                        moved = true;
                        break 'members;
                    }
                }
            }
        }
        if !moved {
            return;
        }
    }
}
