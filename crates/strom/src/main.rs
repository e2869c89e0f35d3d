//! `strom`: the Strom server and its tools in one binary.
//!
//! With no arguments it runs the server with Kafka's defaults
//! (`localhost:9092`, data in `./strom-data`), so `cargo run --release` starts a
//! working single-node broker. The tools (`topic`, `cluster`, `produce`,
//! `consume`, `perf`) live in [`cli`].

mod cli;
mod server;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the broker and the tools move
/// buffers between threads (a request read on one worker, answered on another;
/// a record built by the caller, freed by the producer's task), which glibc's
/// arenas serialize on a lock; mimalloc's per-thread heaps free them without one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Strom: a Kafka-compatible streaming platform.
#[derive(Parser, Debug)]
#[command(name = "strom", version, about, long_about = None, after_help = cli::EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker (and its metadata controller) in this process (the default).
    Server(server::ServerArgs),
    /// Create, list, describe, alter and delete topics.
    Topic(cli::topic::TopicArgs),
    /// Show the cluster id, the controller and the brokers.
    Cluster(cli::cluster::ClusterArgs),
    /// Produce one record per line of stdin or a file (kafka-console-producer).
    Produce(cli::produce::ProduceArgs),
    /// Print records of a topic (kafka-console-consumer).
    Consume(cli::consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups with their lag.
    Group(cli::group::GroupArgs),
    /// Benchmark tools comparable with Kafka's perf tests.
    Perf(cli::PerfArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or(Command::Server(server::ServerArgs::default()));
    match command {
        Command::Server(args) => match server::run(args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("strom: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Topic(args) => cli::run(cli::topic::run(args)),
        Command::Cluster(args) => cli::run(cli::cluster::run(args)),
        Command::Produce(args) => cli::run(cli::produce::run(args)),
        Command::Consume(args) => cli::run(cli::consume::run(args)),
        Command::Group(args) => cli::run(cli::group::run(args)),
        Command::Perf(args) => cli::run(cli::run_perf(args)),
    }
}
