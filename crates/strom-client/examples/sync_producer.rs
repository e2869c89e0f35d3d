//! The seed's synchronous producer, in Rust: ten records to `quickstart-events`
//! with `acks=all`, each send awaited before the next (Java's `future.get()`).
//!
//! Run against a broker on localhost:9092 (`cargo run --release` starts one):
//! `cargo run -p strom-client --example sync_producer`. It prints what the
//! Java program logs, one line per acknowledged record.

use strom_client::{Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", "localhost:9092"),
        // Which acknowledgement to wait for: every in-sync replica.
        ("acks", "all"),
    ])?;
    let producer = Producer::new(config).await?;
    for i in 0..10 {
        let record = ProducerRecord::new("quickstart-events").value(i.to_string());
        producer.send(record).await?;
        println!("INFO SyncProducer - 第{i}条消息");
    }
    producer.close().await;
    Ok(())
}
