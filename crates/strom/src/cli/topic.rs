//! `strom topic create|list|describe|alter|delete`: Kafka's `kafka-topics.sh`
//! (and, for `alter --config`, `kafka-configs.sh`).

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use strom_client::{Admin, AlterConfigOp, ClientError, ConfigResource, NewTopic};
use strom_protocol::ErrorCode;

use super::output::{self, Table};
use super::{parse_key_value, topic_error, ConnectArgs};

/// Kafka's `ConfigSource.DYNAMIC_TOPIC_CONFIG`: a value set on the topic itself,
/// the only kind `describe` lists (as `kafka-topics.sh --describe` does).
const CONFIG_SOURCE_TOPIC: i8 = 1;

/// Flags of `strom topic`.
#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics with their partition count and replication factor.
    List(ListArgs),
    /// Show a topic's partitions (leader, replicas, ISR) and its non-default configs.
    Describe(DescribeArgs),
    /// Add partitions to a topic, or set and remove its configs.
    Alter(AlterArgs),
    /// Delete a topic and all its records.
    Delete(DeleteArgs),
}

#[derive(Args, Debug)]
struct CreateArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Name of the topic to create.
    name: String,
    /// Number of partitions [default: the broker's num.partitions].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// Replicas per partition [default: the broker's default.replication.factor].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(i16).range(1..))]
    replication_factor: Option<i16>,
    /// A topic config by its Kafka name (repeatable), e.g. --config retention.ms=60000.
    #[arg(short, long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    configs: Vec<(String, String)>,
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
    /// Name of the topic to describe.
    name: String,
    /// Print a JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["partitions", "configs", "delete_configs"])
))]
struct AlterArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Name of the topic to alter.
    name: String,
    /// New total number of partitions; it can only grow. Keyed records may map
    /// to other partitions afterwards.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// Set a topic config by its Kafka name (repeatable), e.g. --config retention.ms=60000.
    #[arg(short, long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    configs: Vec<(String, String)>,
    /// Remove a topic config so the broker default applies again (repeatable).
    #[arg(long = "delete-config", value_name = "KEY")]
    delete_configs: Vec<String>,
}

#[derive(Args, Debug)]
struct DeleteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Name of the topic to delete.
    name: String,
}

/// One row of `topic list --json`.
#[derive(Serialize)]
struct TopicSummary {
    name: String,
    partitions: usize,
    replication_factor: usize,
}

/// `topic describe --json`.
#[derive(Serialize)]
struct TopicDescription {
    name: String,
    partitions: Vec<PartitionDescription>,
    /// Configs set on the topic itself (not broker defaults); sensitive values are null.
    configs: std::collections::BTreeMap<String, Option<String>>,
}

#[derive(Serialize)]
struct PartitionDescription {
    partition: i32,
    /// Leader broker id; -1 when the partition has no leader.
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

/// Runs `strom topic ...`.
pub async fn run(args: TopicArgs) -> anyhow::Result<()> {
    match args.command {
        TopicCommand::Create(a) => create(a).await,
        TopicCommand::List(a) => list(a).await,
        TopicCommand::Describe(a) => describe(a).await,
        TopicCommand::Alter(a) => alter(a).await,
        TopicCommand::Delete(a) => delete(a).await,
    }
}

async fn connect(args: &ConnectArgs) -> anyhow::Result<Admin> {
    Ok(Admin::connect(&args.bootstrap_server).await?)
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let admin = connect(&a.connect).await?;
    let mut topic = NewTopic::new(
        &a.name,
        a.partitions.unwrap_or(-1),
        a.replication_factor.unwrap_or(-1),
    );
    topic.configs = a.configs;
    let mut results = admin.create_topics(&[topic]).await?;
    match results.remove(&a.name) {
        Some(Ok(())) => {
            println!("Created topic {}.", a.name);
            Ok(())
        }
        Some(Err(e)) => Err(topic_error(&a.name, e)),
        None => anyhow::bail!("the broker did not answer for topic '{}'", a.name),
    }
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let admin = connect(&a.connect).await?;
    let names = admin.list_topics().await?;
    let topics: Vec<TopicSummary> = names
        .into_iter()
        .map(|name| {
            let meta = admin.cluster().topic(&name);
            let partitions = meta.as_ref().map_or(0, |t| t.partitions.len());
            let replication_factor = meta
                .as_ref()
                .and_then(|t| t.partitions.first())
                .map_or(0, |p| p.replicas.len());
            TopicSummary {
                name,
                partitions,
                replication_factor,
            }
        })
        .collect();
    if a.json {
        return output::print_json(&topics);
    }
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION"]);
    for t in &topics {
        table.row(vec![
            t.name.clone(),
            t.partitions.to_string(),
            t.replication_factor.to_string(),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let admin = connect(&a.connect).await?;
    let meta = admin
        .describe_topics(&[a.name.as_str()])
        .await
        .map_err(|e| topic_error(&a.name, e))?
        .into_iter()
        .next()
        .context("the broker described no topic")?;
    let entries = admin
        .describe_configs(&ConfigResource::Topic(a.name.clone()))
        .await
        .map_err(|e| topic_error(&a.name, e))?;
    let mut partitions: Vec<PartitionDescription> = meta
        .partitions
        .into_iter()
        .map(|p| PartitionDescription {
            partition: p.partition,
            leader: p.leader,
            replicas: p.replicas,
            isr: p.isr,
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    let description = TopicDescription {
        name: meta.name,
        partitions,
        configs: entries
            .into_iter()
            .filter(|c| c.source == CONFIG_SOURCE_TOPIC)
            .map(|c| (c.name, if c.is_sensitive { None } else { c.value }))
            .collect(),
    };
    if a.json {
        return output::print_json(&description);
    }
    println!(
        "Topic: {}  Partitions: {}  ReplicationFactor: {}",
        description.name,
        description.partitions.len(),
        description
            .partitions
            .first()
            .map_or(0, |p| p.replicas.len())
    );
    let mut table = Table::new(&["PARTITION", "LEADER", "REPLICAS", "ISR"]);
    for p in &description.partitions {
        table.row(vec![
            p.partition.to_string(),
            if p.leader < 0 {
                "none".into()
            } else {
                p.leader.to_string()
            },
            output::ids(&p.replicas),
            output::ids(&p.isr),
        ]);
    }
    print!("{}", table.render());
    if description.configs.is_empty() {
        println!("Configs: (all defaults)");
    } else {
        let mut table = Table::new(&["CONFIG", "VALUE"]);
        for (name, value) in &description.configs {
            let shown = value.clone().unwrap_or_else(|| "(sensitive)".into());
            table.row(vec![name.clone(), shown]);
        }
        println!();
        print!("{}", table.render());
    }
    Ok(())
}

async fn alter(a: AlterArgs) -> anyhow::Result<()> {
    let admin = connect(&a.connect).await?;
    let current = admin
        .describe_topics(&[a.name.as_str()])
        .await
        .map_err(|e| topic_error(&a.name, e))?
        .into_iter()
        .next()
        .context("the broker described no topic")?
        .partitions
        .len();
    if let Some(total) = a.partitions {
        let mut results = admin.create_partitions(&[(a.name.as_str(), total)]).await?;
        match results.remove(&a.name) {
            Some(Ok(())) => println!("Topic {} now has {total} partitions.", a.name),
            Some(Err(e)) => return Err(partitions_error(&a.name, current, total, e)),
            None => anyhow::bail!("the broker did not answer for topic '{}'", a.name),
        }
    }
    let ops: Vec<AlterConfigOp> = a
        .configs
        .into_iter()
        .map(|(k, v)| AlterConfigOp::Set(k, v))
        .chain(a.delete_configs.into_iter().map(AlterConfigOp::Delete))
        .collect();
    if !ops.is_empty() {
        admin
            .incremental_alter_configs(&ConfigResource::Topic(a.name.clone()), &ops)
            .await
            .map_err(|e| config_error(&a.name, e))?;
        println!("Updated the configs of topic {}.", a.name);
    }
    Ok(())
}

/// CreatePartitions' INVALID_PARTITIONS as a sentence with the counts.
fn partitions_error(topic: &str, current: usize, asked: i32, e: ClientError) -> anyhow::Error {
    if e.code() != Some(ErrorCode::InvalidPartitions.code()) {
        return topic_error(topic, e);
    }
    let current = i64::try_from(current).unwrap_or(i64::MAX);
    match i64::from(asked).cmp(&current) {
        std::cmp::Ordering::Less => anyhow::anyhow!(
            "topic '{topic}' has {current} partitions; partitions can only be added, not removed (asked for {asked})"
        ),
        std::cmp::Ordering::Equal => {
            anyhow::anyhow!("topic '{topic}' already has {current} partitions")
        }
        std::cmp::Ordering::Greater => match e {
            ClientError::Kafka {
                message: Some(m), ..
            } => anyhow::anyhow!("cannot grow topic '{topic}' to {asked} partitions: {m}"),
            other => topic_error(topic, other),
        },
    }
}

/// IncrementalAlterConfigs' INVALID_CONFIG with the broker's reason.
fn config_error(topic: &str, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Kafka {
            code,
            message: Some(m),
            ..
        } if code == ErrorCode::InvalidConfig.code() => {
            anyhow::anyhow!("invalid config for topic '{topic}': {m}")
        }
        ClientError::Kafka { code, .. } if code == ErrorCode::InvalidConfig.code() => {
            anyhow::anyhow!("invalid config for topic '{topic}'")
        }
        other => topic_error(topic, other),
    }
}

async fn delete(a: DeleteArgs) -> anyhow::Result<()> {
    let admin = connect(&a.connect).await?;
    let mut results = admin.delete_topics(&[a.name.as_str()]).await?;
    // Older DeleteTopics versions answer by name; take the only answer when the name is absent.
    let result = match results.remove(&a.name) {
        Some(r) => Some(r),
        None => results.into_values().next(),
    };
    match result {
        Some(Ok(())) => {
            println!("Deleted topic {}.", a.name);
            Ok(())
        }
        Some(Err(e)) => Err(topic_error(&a.name, e)),
        None => anyhow::bail!("the broker did not answer for topic '{}'", a.name),
    }
}
