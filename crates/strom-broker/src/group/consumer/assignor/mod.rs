//! Server-side assignors (KIP-848): pure functions from the members'
//! subscriptions and previous target assignment to a new target assignment.

mod range;
mod uniform;

use std::collections::{BTreeMap, BTreeSet};

use strom_controller::TopicId;

use super::Assignment;

pub use range::assign_range;
pub use uniform::assign_uniform;

/// An assignor a member can ask for in `server_assignor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerAssignor {
    /// Kafka's `UniformAssignor`: balanced and sticky.
    Uniform,
    /// Kafka's `RangeAssignor`: contiguous ranges per topic, co-partitioned
    /// topics assigned alike.
    Range,
}

impl ServerAssignor {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            ServerAssignor::Uniform => "uniform",
            ServerAssignor::Range => "range",
        }
    }

    /// The assignor with Kafka's name `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "uniform" => Some(ServerAssignor::Uniform),
            "range" => Some(ServerAssignor::Range),
            _ => None,
        }
    }

    /// Runs the assignor.
    pub fn assign(self, spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
        match self {
            ServerAssignor::Uniform => assign_uniform(spec),
            ServerAssignor::Range => assign_range(spec),
        }
    }
}

/// One member as an assignor sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSpec {
    /// The static instance id, if any (range orders members by it so a
    /// restarted static member gets the same ranges).
    pub instance_id: Option<String>,
    /// The existing topics the member subscribes to.
    pub topics: BTreeSet<TopicId>,
    /// The member's previous target assignment (for stickiness).
    pub current: Assignment,
}

/// The input of an assignor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignmentSpec {
    /// Members by member id.
    pub members: BTreeMap<String, MemberSpec>,
    /// Partition count of every subscribed topic.
    pub topics: BTreeMap<TopicId, i32>,
}

impl AssignmentSpec {
    /// Whether every member subscribes to the same topics.
    pub fn is_homogeneous(&self) -> bool {
        let mut it = self.members.values();
        match it.next() {
            Some(first) => it.all(|m| m.topics == first.topics),
            None => true,
        }
    }
}

/// Checks an assignor's output: every member present, only subscribed,
/// existing partitions, none given twice. Used by tests and debug builds.
pub fn check_assignment(
    spec: &AssignmentSpec,
    out: &BTreeMap<String, Assignment>,
) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    if out.len() != spec.members.len() {
        return Err(format!(
            "{} members in, {} out",
            spec.members.len(),
            out.len()
        ));
    }
    for (member, a) in out {
        let m = spec
            .members
            .get(member)
            .ok_or(format!("unknown member {member}"))?;
        for (t, ps) in a {
            let count = spec.topics.get(t).ok_or(format!("unknown topic {t}"))?;
            if !m.topics.contains(t) {
                return Err(format!("{member} is not subscribed to {t}"));
            }
            for &p in ps {
                if p < 0 || p >= *count {
                    return Err(format!("{t}-{p} does not exist"));
                }
                if !seen.insert((*t, p)) {
                    return Err(format!("{t}-{p} assigned twice"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
