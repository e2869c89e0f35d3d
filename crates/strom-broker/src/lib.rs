//! The Strom broker: listener, connections, request pipeline, one handler per
//! Kafka API, and partition state (leader epoch, log end offset, high watermark).
//!
//! The broker holds no cluster metadata of its own: topics, partitions and
//! configs come from the controller's image ([`strom_controller`]); the data of
//! each partition lives in a [`strom_storage`] log. Handlers decode a request,
//! call the partition or the controller, map errors to Kafka codes, and encode.
//!
//! Not here: the wire format (in `strom-protocol`), file formats (in
//! `strom-storage`), metadata consensus (in `strom-controller`).
//!
//! ```no_run
//! # async fn run() -> Result<(), strom_broker::StartError> {
//! let config = strom_broker::config::BrokerConfig::defaults();
//! let broker = strom_broker::Broker::start(config).await?;
//! println!("listening on {}", broker.local_addr());
//! broker.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
pub mod config;
mod connection;
mod dispatch;
mod fetch_session;
pub mod group;
mod handlers;
mod partition;
mod replica_manager;
mod schema_reader;
mod server;
mod state;
mod tasks;
pub mod txn;

pub use server::{Broker, StartError};
