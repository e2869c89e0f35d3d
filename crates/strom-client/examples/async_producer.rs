//! The seed's asynchronous producer with a callback, in Rust: ten records to
//! `quickstart-events` with `acks=all`; the callback logs where each record
//! landed, then the program waits for the send (Java's `future.get()`).
//!
//! Run against a broker on localhost:9092:
//! `cargo run -p strom-client --example async_producer`.

use strom_client::{Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", "localhost:9092"),
        ("acks", "all"),
    ])?;
    let producer = Producer::new(config).await?;
    for i in 0..10 {
        let record = ProducerRecord::new("quickstart-events").value(i.to_string());
        let done = producer.send_with_callback(record, |result| match result {
            // Did the send succeed?
            Ok(meta) => println!(
                "INFO AsyncProducer - topic：{},partition:{},offset:{}",
                meta.topic, meta.partition, meta.offset
            ),
            Err(e) => eprintln!("{e}"),
        });
        done.await?;
        println!("INFO AsyncProducer - 第{i}条消息");
    }
    producer.close().await;
    Ok(())
}
