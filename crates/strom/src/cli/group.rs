//! `strom group list|describe|reset-offsets|delete`: Kafka's `kafka-consumer-groups.sh`.
//!
//! Groups are consumer groups as Java's `listConsumerGroups` sees them: protocol
//! type `consumer` (classic or KIP-848) or none (a group that only holds
//! committed offsets). Lag is the log end offset (high watermark) minus the
//! committed offset, as Kafka's tool computes it.

mod reset;
mod time_args;

use std::collections::{BTreeMap, BTreeSet};

use clap::{Args, Subcommand};
use serde::Serialize;
use strom_client::{Admin, ClientError, GroupDescription, OffsetSpec, TopicPartition};
use strom_protocol::ErrorCode;

use super::output::{self, Table};
use super::ConnectArgs;

/// Shown in tables where a value is unknown, as Kafka's tool does.
const UNKNOWN: &str = "-";

/// Flags of `strom group`.
#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// List consumer groups with their type and state.
    List(ListArgs),
    /// Show a group's state, members and, per partition, committed offset, log end offset and lag.
    Describe(DescribeArgs),
    /// Reset committed offsets of a group without active members (a dry run unless --execute).
    ResetOffsets(reset::ResetArgs),
    /// Delete groups that have no active members, with their committed offsets.
    Delete(DeleteArgs),
}

#[derive(Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The group to describe.
    group: String,
    /// Print a JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DeleteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The groups to delete (one or more).
    #[arg(value_name = "GROUP", required = true)]
    groups: Vec<String>,
}

/// One row of `group list --json`.
#[derive(Serialize)]
struct GroupSummary {
    group: String,
    /// `classic` or `consumer` (KIP-848); null from brokers before ListGroups v5.
    #[serde(rename = "type")]
    group_type: Option<String>,
    /// Kafka's state name; null from brokers before ListGroups v4.
    state: Option<String>,
}

/// `group describe --json`.
#[derive(Serialize)]
struct GroupReport {
    group: String,
    #[serde(rename = "type")]
    group_type: String,
    state: String,
    /// The partition assignor (`range`, `uniform`, ...); empty for offset-only groups.
    assignor: String,
    /// Broker id of the group coordinator.
    coordinator: i32,
    members: Vec<MemberReport>,
    /// One row per assigned or committed partition, then one per member without partitions.
    offsets: Vec<OffsetRow>,
}

#[derive(Serialize)]
struct MemberReport {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    host: String,
    partitions: Vec<PartitionRef>,
}

#[derive(Serialize)]
struct PartitionRef {
    topic: String,
    partition: i32,
}

/// A row of the describe table; null (`-`) where Kafka's tool shows `-`.
#[derive(Serialize)]
struct OffsetRow {
    topic: Option<String>,
    partition: Option<i32>,
    current_offset: Option<i64>,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
    consumer_id: Option<String>,
    host: Option<String>,
    client_id: Option<String>,
}

/// Runs `strom group ...`.
pub async fn run(args: GroupArgs) -> anyhow::Result<()> {
    match args.command {
        GroupCommand::List(a) => list(a).await,
        GroupCommand::Describe(a) => describe(a).await,
        GroupCommand::ResetOffsets(a) => reset::run(a).await,
        GroupCommand::Delete(a) => delete(a).await,
    }
}

async fn connect(args: &ConnectArgs) -> anyhow::Result<Admin> {
    Ok(Admin::connect(&args.bootstrap_server).await?)
}

/// Turns a Kafka error about one group into a sentence naming the group.
fn group_error(group: &str, e: ClientError) -> anyhow::Error {
    match e.code().and_then(ErrorCode::from_code) {
        Some(ErrorCode::GroupIdNotFound) => anyhow::anyhow!("group '{group}' does not exist"),
        Some(ErrorCode::NonEmptyGroup) => {
            anyhow::anyhow!("group '{group}' is not empty; stop its members before deleting it")
        }
        Some(ErrorCode::InvalidGroupId) => anyhow::anyhow!("'{group}' is not a valid group id"),
        _ => anyhow::Error::new(e).context(format!("group '{group}'")),
    }
}

/// Kafka's display name of a group type (`Classic`, `Consumer`).
fn type_name(group_type: &str) -> String {
    let mut chars = group_type.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => UNKNOWN.into(),
    }
}

fn cell<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| UNKNOWN.into(), |v| v.to_string())
}

/// Describes one group; an unknown group (or, from old brokers, a Dead one) is an error.
async fn describe_group(admin: &Admin, group: &str) -> anyhow::Result<GroupDescription> {
    let mut answers = admin.describe_groups(&[group]).await?;
    match answers.remove(group) {
        Some(Ok(d)) if d.state == "Dead" => anyhow::bail!("group '{group}' does not exist"),
        Some(Ok(d)) => Ok(d),
        Some(Err(e)) => Err(group_error(group, e)),
        None => anyhow::bail!("the broker did not answer for group '{group}'"),
    }
}

/// The log end offset of each partition whose topic still exists and has a leader.
async fn log_end_offsets<'a>(
    admin: &Admin,
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let partitions: Vec<&TopicPartition> = partitions.into_iter().collect();
    let topics: BTreeSet<String> = partitions.iter().map(|tp| tp.topic.clone()).collect();
    if topics.is_empty() {
        return Ok(BTreeMap::new());
    }
    let topics: Vec<String> = topics.into_iter().collect();
    admin.cluster().refresh(&topics).await?;
    // A deleted topic or a partition without a leader shows `-` rather than
    // making ListOffsets wait for it.
    let specs: BTreeMap<TopicPartition, OffsetSpec> = partitions
        .into_iter()
        .filter(|tp| admin.cluster().leader(&tp.topic, tp.partition).is_some())
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    if specs.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(admin
        .list_offsets(&specs)
        .await?
        .into_iter()
        .filter(|(_, info)| info.offset >= 0)
        .map(|(tp, info)| (tp, info.offset))
        .collect())
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let admin = connect(&a.connect).await?;
    let groups: Vec<GroupSummary> = admin
        .list_groups()
        .await?
        .into_iter()
        .filter(|g| g.is_consumer_group())
        .map(|g| GroupSummary {
            group: g.group_id,
            group_type: g.group_type,
            state: g.state,
        })
        .collect();
    if a.json {
        return output::print_json(&groups);
    }
    let mut table = Table::new(&["GROUP", "TYPE", "STATE"]);
    for g in &groups {
        table.row(vec![
            g.group.clone(),
            g.group_type
                .as_deref()
                .map_or_else(|| UNKNOWN.into(), type_name),
            cell(g.state.as_deref()),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let admin = connect(&a.connect).await?;
    let d = describe_group(&admin, &a.group).await?;
    let committed = admin
        .list_group_offsets(&a.group, None)
        .await
        .map_err(|e| group_error(&a.group, e))?;
    // Assigned partitions name their member; committed ones nobody owns show `-`.
    let mut owners: BTreeMap<TopicPartition, Option<usize>> = BTreeMap::new();
    for (i, m) in d.members.iter().enumerate() {
        for tp in &m.assignment {
            owners.insert(tp.clone(), Some(i));
        }
    }
    for tp in committed.keys() {
        owners.entry(tp.clone()).or_insert(None);
    }
    let log_ends = log_end_offsets(&admin, owners.keys()).await?;
    let mut offsets: Vec<OffsetRow> = owners
        .iter()
        .map(|(tp, owner)| {
            let member = owner.map(|i| &d.members[i]);
            let current = committed.get(tp).map(|o| o.offset);
            let log_end = log_ends.get(tp).copied();
            OffsetRow {
                topic: Some(tp.topic.clone()),
                partition: Some(tp.partition),
                current_offset: current,
                log_end_offset: log_end,
                lag: current.zip(log_end).map(|(c, e)| e - c),
                consumer_id: member.map(|m| m.member_id.clone()),
                host: member.map(|m| m.client_host.clone()),
                client_id: member.map(|m| m.client_id.clone()),
            }
        })
        .collect();
    // Kafka's tool lists members without partitions too, with `-` for the partition.
    offsets.extend(
        d.members
            .iter()
            .filter(|m| m.assignment.is_empty())
            .map(|m| OffsetRow {
                topic: None,
                partition: None,
                current_offset: None,
                log_end_offset: None,
                lag: None,
                consumer_id: Some(m.member_id.clone()),
                host: Some(m.client_host.clone()),
                client_id: Some(m.client_id.clone()),
            }),
    );
    let report = GroupReport {
        group: d.group_id,
        group_type: d.group_type,
        state: d.state,
        assignor: d.assignor,
        coordinator: d.coordinator,
        members: d
            .members
            .into_iter()
            .map(|m| MemberReport {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                host: m.client_host,
                partitions: m
                    .assignment
                    .into_iter()
                    .map(|tp| PartitionRef {
                        topic: tp.topic,
                        partition: tp.partition,
                    })
                    .collect(),
            })
            .collect(),
        offsets,
    };
    if a.json {
        return output::print_json(&report);
    }
    print_report(&report);
    Ok(())
}

fn print_report(report: &GroupReport) {
    println!(
        "Group: {}  Type: {}  State: {}  Assignor: {}  Members: {}  Coordinator: {}",
        report.group,
        type_name(&report.group_type),
        report.state,
        if report.assignor.is_empty() {
            UNKNOWN
        } else {
            &report.assignor
        },
        report.members.len(),
        report.coordinator,
    );
    if report.members.is_empty() {
        println!("Consumer group '{}' has no active members.", report.group);
    }
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for r in &report.offsets {
        table.row(vec![
            cell(r.topic.as_deref()),
            cell(r.partition),
            cell(r.current_offset),
            cell(r.log_end_offset),
            cell(r.lag),
            cell(r.consumer_id.as_deref()),
            cell(r.host.as_deref()),
            cell(r.client_id.as_deref()),
        ]);
    }
    println!();
    print!("{}", table.render());
}

async fn delete(a: DeleteArgs) -> anyhow::Result<()> {
    let admin = connect(&a.connect).await?;
    let mut unique = BTreeSet::new();
    let groups: Vec<&str> = a
        .groups
        .iter()
        .map(String::as_str)
        .filter(|g| unique.insert(*g))
        .collect();
    let mut results = admin.delete_groups(&groups).await?;
    let mut failures = Vec::new();
    for group in groups {
        match results.remove(group) {
            Some(Ok(())) => println!("Deleted group {group}."),
            Some(Err(e)) => failures.push(format!("{:#}", group_error(group, e))),
            None => failures.push(format!("the broker did not answer for group '{group}'")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failures.join("; "))
    }
}
