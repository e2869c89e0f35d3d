//! The seed's consumer, in Rust: a member of group `quickstart-events-group`
//! subscribed to `quickstart-events`, committing offsets automatically every
//! second, printing every record it polls. It runs until interrupted; a
//! restarted one continues after the last committed offset.
//!
//! Run against a broker on localhost:9092:
//! `cargo run -p strom-client --example auto_commit_consumer`.

use std::time::Duration;

use strom_client::{Consumer, ConsumerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ConsumerConfig::from_properties([
        ("bootstrap.servers", "localhost:9092"),
        // Consumers with the same group name share the topic's records.
        ("group.id", "quickstart-events-group"),
        // Commit offsets automatically...
        ("enable.auto.commit", "true"),
        // ...every second.
        ("auto.commit.interval.ms", "1000"),
    ])?;
    let mut consumer = Consumer::new(config).await?;
    // Subscribe to the topic.
    consumer.subscribe(["quickstart-events"])?;
    loop {
        // Fetch one batch of records.
        let records = consumer.poll(Duration::from_secs(5)).await?;
        for record in records {
            let key = record.key.as_deref().map(String::from_utf8_lossy);
            let value = record.value.as_deref().map(String::from_utf8_lossy);
            println!(
                "INFO AutoCommitConsumer - topic:{},offset:{},key:{},value:{}",
                record.topic,
                record.offset,
                key.as_deref().unwrap_or("null"),
                value.as_deref().unwrap_or("null"),
            );
        }
    }
}
