//! `strom group reset-offsets`: Kafka's `kafka-consumer-groups.sh --reset-offsets`.
//!
//! The new offsets are computed from the log (start and end offsets, offsets
//! by time) and the group's committed offsets, printed, and committed only
//! with `--execute`. Like Kafka, only a group without active members (state
//! Empty, or one that does not exist yet) can be reset, and explicit or
//! shifted offsets are clamped to the log start and end offsets.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use clap::{ArgGroup, Args};
use serde::Serialize;
use strom_client::{Admin, ClientError, OffsetAndMetadata, OffsetSpec, TopicPartition};
use strom_protocol::ErrorCode;

use super::{connect, group_error, time_args};
use crate::cli::output::{self, Table};
use crate::cli::time::now_ms;
use crate::cli::{topic_error, ConnectArgs};

/// Flags of `strom group reset-offsets`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("scope").required(true).args(["topics", "all_topics"])))]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .args(["to_earliest", "to_latest", "to_offset", "shift_by", "to_datetime", "by_duration"])
))]
pub struct ResetArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The group whose committed offsets to reset.
    group: String,
    /// A topic to reset: all its partitions, or only those listed after a colon,
    /// e.g. orders or orders:0,2 (repeatable).
    #[arg(long = "topic", value_name = "TOPIC[:P,P...]", value_parser = parse_topic_scope)]
    topics: Vec<TopicScope>,
    /// Reset every partition the group has a committed offset for.
    #[arg(long)]
    all_topics: bool,
    /// Reset to the log start offset (the oldest record still kept).
    #[arg(long)]
    to_earliest: bool,
    /// Reset to the log end offset (skip every record produced so far).
    #[arg(long)]
    to_latest: bool,
    /// Reset to this offset, clamped to the log start and end offsets.
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    to_offset: Option<i64>,
    /// Move each committed offset by N records (back when negative), clamped to
    /// the log start and end offsets.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Reset to the first record at or after this time, e.g. 2026-01-02T03:04:05.000
    /// (UTC unless a zone such as Z or +02:00 follows); the log end when none is that new.
    #[arg(long, value_name = "DATETIME", value_parser = time_args::parse_datetime_ms)]
    to_datetime: Option<i64>,
    /// Reset to the first record at or after this long ago, as an ISO-8601
    /// duration, e.g. PT30M or P1DT12H.
    #[arg(long, value_name = "DURATION", value_parser = time_args::parse_duration_ms)]
    by_duration: Option<i64>,
    /// Only print the new offsets (the default when --execute is absent).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    execute: bool,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// `--topic orders` (every partition) or `--topic orders:0,2`.
#[derive(Clone, Debug)]
struct TopicScope {
    topic: String,
    /// None: every partition of the topic.
    partitions: Option<Vec<i32>>,
}

fn parse_topic_scope(s: &str) -> Result<TopicScope, String> {
    let (topic, partitions) = match s.split_once(':') {
        None => (s, None),
        Some((topic, list)) => {
            let parsed: Result<Vec<i32>, _> =
                list.split(',').map(|p| p.trim().parse::<i32>()).collect();
            match parsed {
                Ok(ps) if ps.iter().all(|p| *p >= 0) => (topic, Some(ps)),
                _ => {
                    return Err(format!(
                        "expected TOPIC or TOPIC:P,P... with partition numbers, got '{s}'"
                    ))
                }
            }
        }
    };
    if topic.trim().is_empty() {
        return Err(format!("expected a topic name, got '{s}'"));
    }
    Ok(TopicScope {
        topic: topic.trim().to_owned(),
        partitions,
    })
}

/// Where the new offsets come from (exactly one flag).
#[derive(Clone, Copy, Debug)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    ShiftBy(i64),
    /// ms since the epoch.
    Timestamp(i64),
}

impl ResetArgs {
    fn target(&self) -> anyhow::Result<Target> {
        Ok(if self.to_earliest {
            Target::Earliest
        } else if self.to_latest {
            Target::Latest
        } else if let Some(n) = self.to_offset {
            Target::Offset(n)
        } else if let Some(n) = self.shift_by {
            Target::ShiftBy(n)
        } else if let Some(ts) = self.to_datetime {
            Target::Timestamp(ts)
        } else if let Some(ago) = self.by_duration {
            Target::Timestamp(now_ms().saturating_sub(ago))
        } else {
            // clap's required "target" group makes this unreachable from the command line.
            anyhow::bail!("one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime or --by-duration is required")
        })
    }
}

/// One row of the plan.
#[derive(Serialize)]
struct NewOffset {
    topic: String,
    partition: i32,
    new_offset: i64,
}

/// Runs `strom group reset-offsets`.
pub async fn run(a: ResetArgs) -> anyhow::Result<()> {
    let target = a.target()?;
    let admin = connect(&a.connect).await?;
    ensure_inactive(&admin, &a.group).await?;
    let committed = admin
        .list_group_offsets(&a.group, None)
        .await
        .map_err(|e| group_error(&a.group, e))?;
    let partitions = if a.all_topics {
        let all: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
        if all.is_empty() {
            anyhow::bail!(
                "group '{}' has no committed offsets; name the topics to reset with --topic",
                a.group
            );
        }
        all
    } else {
        resolve_scopes(&admin, &a.topics).await?
    };
    let plan = plan(&admin, &a.group, &partitions, &committed, target).await?;
    if a.execute {
        execute(&admin, &a.group, &plan).await?;
    } else if !a.dry_run {
        eprintln!("strom: dry run, no offsets were changed; add --execute to commit them");
    }
    let rows: Vec<NewOffset> = plan
        .into_iter()
        .map(|(tp, new_offset)| NewOffset {
            topic: tp.topic,
            partition: tp.partition,
            new_offset,
        })
        .collect();
    if a.json {
        return output::print_json(&rows);
    }
    let mut table = Table::new(&["TOPIC", "PARTITION", "NEW-OFFSET"]);
    for r in &rows {
        table.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            r.new_offset.to_string(),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// Kafka resets only groups in state Empty or Dead (unknown: the reset creates it).
async fn ensure_inactive(admin: &Admin, group: &str) -> anyhow::Result<()> {
    let mut answers = admin.describe_groups(&[group]).await?;
    match answers.remove(group) {
        Some(Ok(d)) if d.state == "Empty" || d.state == "Dead" => Ok(()),
        Some(Ok(d)) => anyhow::bail!(
            "group '{group}' is not empty (state {}); stop its members first",
            d.state
        ),
        Some(Err(e)) if e.code() == Some(ErrorCode::GroupIdNotFound.code()) => Ok(()),
        Some(Err(e)) => Err(group_error(group, e)),
        None => anyhow::bail!("the broker did not answer for group '{group}'"),
    }
}

/// The partitions `--topic` flags name, checked against the topics' metadata.
async fn resolve_scopes(
    admin: &Admin,
    scopes: &[TopicScope],
) -> anyhow::Result<BTreeSet<TopicPartition>> {
    let mut out = BTreeSet::new();
    for scope in scopes {
        let meta = admin
            .describe_topics(&[scope.topic.as_str()])
            .await
            .map_err(|e| topic_error(&scope.topic, e))?
            .into_iter()
            .next()
            .context("the broker described no topic")?;
        let count = meta.partitions.len() as i32;
        match &scope.partitions {
            None => out.extend((0..count).map(|p| TopicPartition::new(scope.topic.as_str(), p))),
            Some(ps) => {
                for &p in ps {
                    if p >= count {
                        anyhow::bail!(
                            "topic '{}' has no partition {p} (it has {count})",
                            scope.topic
                        );
                    }
                    out.insert(TopicPartition::new(scope.topic.as_str(), p));
                }
            }
        }
    }
    Ok(out)
}

async fn offsets(
    admin: &Admin,
    partitions: &BTreeSet<TopicPartition>,
    spec: OffsetSpec,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let specs = partitions.iter().map(|tp| (tp.clone(), spec)).collect();
    Ok(admin
        .list_offsets(&specs)
        .await?
        .into_iter()
        .map(|(tp, info)| (tp, info.offset))
        .collect())
}

/// The new offset of each partition.
async fn plan(
    admin: &Admin,
    group: &str,
    partitions: &BTreeSet<TopicPartition>,
    committed: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    target: Target,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let earliest = offsets(admin, partitions, OffsetSpec::Earliest).await?;
    let latest = offsets(admin, partitions, OffsetSpec::Latest).await?;
    let by_time = match target {
        Target::Timestamp(ts) => Some(offsets(admin, partitions, OffsetSpec::Timestamp(ts)).await?),
        _ => None,
    };
    let bound = |m: &BTreeMap<TopicPartition, i64>, tp: &TopicPartition, what: &str| {
        m.get(tp)
            .copied()
            .filter(|o| *o >= 0)
            .with_context(|| format!("the broker reported no {what} offset for {tp}"))
    };
    let mut plan = BTreeMap::new();
    for tp in partitions {
        let (start, end) = (
            bound(&earliest, tp, "log start")?,
            bound(&latest, tp, "log end")?,
        );
        let new = match target {
            Target::Earliest => start,
            Target::Latest => end,
            Target::Offset(n) => clamp(tp, n, start, end),
            Target::ShiftBy(n) => {
                let current = committed.get(tp).with_context(|| {
                    format!("cannot shift {tp} of group '{group}': it has no committed offset")
                })?;
                clamp(tp, current.offset.saturating_add(n), start, end)
            }
            // No record that new: the log end, as Kafka's tool does.
            Target::Timestamp(_) => by_time
                .as_ref()
                .and_then(|m| m.get(tp).copied())
                .filter(|o| *o >= 0)
                .unwrap_or(end),
        };
        plan.insert(tp.clone(), new);
    }
    Ok(plan)
}

/// Clamps `offset` into [`start`, `end`], saying so on stderr as Kafka's tool does.
fn clamp(tp: &TopicPartition, offset: i64, start: i64, end: i64) -> i64 {
    if offset > end {
        eprintln!("strom: offset {offset} of {tp} is past the log end offset; using {end}");
        end
    } else if offset < start {
        eprintln!("strom: offset {offset} of {tp} is before the log start offset; using {start}");
        start
    } else {
        offset
    }
}

/// Commits the plan; any partition error fails the command with a sentence.
async fn execute(
    admin: &Admin,
    group: &str,
    plan: &BTreeMap<TopicPartition, i64>,
) -> anyhow::Result<()> {
    let offsets = plan
        .iter()
        .map(|(tp, o)| (tp.clone(), OffsetAndMetadata::new(*o)))
        .collect();
    let results = admin
        .alter_group_offsets(group, &offsets)
        .await
        .map_err(|e| group_error(group, e))?;
    let mut failures = Vec::new();
    for (tp, result) in results {
        if let Err(e) = result {
            if is_membership_error(&e) {
                // A member joined between the state check and the commit.
                anyhow::bail!("group '{group}' is not empty; stop its members first");
            }
            failures.push(format!("{tp}: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "cannot commit offsets for group '{group}': {}",
            failures.join("; ")
        )
    }
}

fn is_membership_error(e: &ClientError) -> bool {
    [
        ErrorCode::UnknownMemberId,
        ErrorCode::IllegalGeneration,
        ErrorCode::RebalanceInProgress,
    ]
    .iter()
    .any(|c| e.code() == Some(c.code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_scopes_name_a_topic_and_optional_partitions() {
        let all = parse_topic_scope("orders").unwrap();
        assert_eq!((all.topic.as_str(), all.partitions), ("orders", None));
        let some = parse_topic_scope("orders:0,2").unwrap();
        assert_eq!(some.partitions, Some(vec![0, 2]));
        for bad in ["orders:", "orders:a", "orders:-1", ":0", ""] {
            assert!(parse_topic_scope(bad).is_err(), "{bad}");
        }
    }
}
