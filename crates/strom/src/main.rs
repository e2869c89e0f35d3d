//! `strom`: the Strom server and its tools in one binary.
//!
//! With no arguments it runs the server with Kafka's defaults
//! (`localhost:9092`, data in `./strom-data`), so `cargo run --release` starts a
//! working single-node broker.

mod server;

use clap::{Parser, Subcommand};

/// Strom: a Kafka-compatible streaming platform.
#[derive(Parser, Debug)]
#[command(name = "strom", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker (and its metadata controller) in this process.
    Server(server::ServerArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or(Command::Server(server::ServerArgs::default()));
    let result = match command {
        Command::Server(args) => server::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strom: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
