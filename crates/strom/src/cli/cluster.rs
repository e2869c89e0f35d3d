//! `strom cluster info`: the cluster id, the controller and the brokers (DescribeCluster).

use clap::{Args, Subcommand};
use serde::Serialize;
use strom_client::Admin;

use super::output::{self, Table};
use super::ConnectArgs;

/// Flags of `strom cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Show the cluster id, the controller and every broker.
    Info(InfoArgs),
}

#[derive(Args, Debug)]
struct InfoArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print a JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// `cluster info --json`.
#[derive(Serialize)]
struct ClusterInfo {
    cluster_id: String,
    /// Broker id of the active controller; -1 when unknown.
    controller_id: i32,
    brokers: Vec<BrokerInfo>,
}

#[derive(Serialize)]
struct BrokerInfo {
    id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
}

/// Runs `strom cluster ...`.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::Info(a) => info(a).await,
    }
}

async fn info(a: InfoArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(&a.connect.bootstrap_server).await?;
    let d = admin.describe_cluster().await?;
    let mut brokers: Vec<BrokerInfo> = d
        .brokers
        .into_iter()
        .map(|b| BrokerInfo {
            id: b.id,
            host: b.host,
            port: b.port,
            rack: b.rack,
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    let info = ClusterInfo {
        cluster_id: d.cluster_id,
        controller_id: d.controller_id,
        brokers,
    };
    if a.json {
        return output::print_json(&info);
    }
    println!("Cluster ID: {}", info.cluster_id);
    println!("Controller: {}", info.controller_id);
    println!();
    let mut table = Table::new(&["BROKER", "HOST", "PORT", "RACK"]);
    for b in &info.brokers {
        table.row(vec![
            b.id.to_string(),
            b.host.clone(),
            b.port.to_string(),
            b.rack.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}
