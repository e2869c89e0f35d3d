//! Exactly-once copy of one topic to another (consume-transform-produce,
//! KIP-98 / KIP-447): every poll becomes one transaction holding the copies
//! and the consumer group's new offsets, so after a crash and restart each
//! input record appears in the output exactly once for `read_committed`
//! readers. Stops after five seconds without input.
//!
//! Run against a broker on localhost:9092:
//! `cargo run -p strom-client --example transactional_copy -- [bootstrap] [input] [output]`
//! (defaults: `localhost:9092 copy-input copy-output`).

use std::collections::HashMap;
use std::time::Duration;

use strom_client::{
    Consumer, ConsumerConfig, ConsumerError, OffsetAndMetadata, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bootstrap = args.first().map_or("localhost:9092", String::as_str);
    let input = args.get(1).map_or("copy-input", String::as_str);
    let output = args.get(2).map_or("copy-output", String::as_str);

    let mut consumer = Consumer::new(ConsumerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("group.id", "transactional-copy"),
        ("enable.auto.commit", "false"),
        ("auto.offset.reset", "earliest"),
        // Copy only what upstream transactions committed.
        ("isolation.level", "read_committed"),
    ])?)
    .await?;
    consumer.subscribe([input])?;
    // One transactional id per input: a restarted copier fences its
    // predecessor and aborts whatever transaction it left open.
    let transactional_id = format!("transactional-copy-{input}");
    let producer = Producer::new(ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("transactional.id", transactional_id.as_str()),
    ])?)
    .await?;
    producer.init_transactions().await?;

    let (mut copied, mut idle_polls) = (0, 0);
    while idle_polls < 10 {
        let records = consumer.poll(Duration::from_millis(500)).await?;
        if records.is_empty() {
            idle_polls += 1;
            continue;
        }
        idle_polls = 0;
        producer.begin_transaction()?;
        let mut offsets = HashMap::new();
        for r in &records {
            let mut copy = ProducerRecord::new(output);
            copy.key = r.key.clone();
            copy.value = r.value.clone();
            copy.headers = r.headers.clone();
            // The commit's flush waits for every send; no need to await here.
            drop(producer.send(copy));
            offsets.insert(
                TopicPartition::new(&r.topic, r.partition),
                OffsetAndMetadata::new(r.offset + 1),
            );
        }
        let committed = async {
            producer
                .send_offsets_to_transaction(&offsets, &consumer.group_metadata())
                .await?;
            producer.commit_transaction().await
        }
        .await;
        match committed {
            Ok(()) => copied += records.len(),
            // Fenced by a newer copier, or not authorized: stop.
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                eprintln!("transaction failed ({e}); aborting and copying again");
                producer.abort_transaction().await?;
                rewind(&mut consumer).await?;
            }
        }
    }
    println!("copied {copied} records from {input} to {output}");
    producer.close().await;
    consumer.close().await;
    Ok(())
}

/// Moves every assigned partition back to its committed offset, so the
/// records of the aborted transaction are copied again.
async fn rewind(consumer: &mut Consumer) -> Result<(), ConsumerError> {
    let assigned = consumer.assignment();
    let committed = consumer.committed(&assigned).await?;
    for tp in &assigned {
        match committed.get(tp) {
            Some(offset) => consumer.seek(tp, offset.offset)?,
            None => consumer.seek_to_beginning(std::slice::from_ref(tp))?,
        }
    }
    Ok(())
}
