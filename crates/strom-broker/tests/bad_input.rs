//! Bad input gets Kafka's error code or a closed connection, and the broker
//! keeps serving well-behaved clients afterwards.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::requests::*;
use common::*;
use strom_protocol::messages::*;
use strom_protocol::ErrorCode;

/// The broker still answers a normal client.
async fn still_serves(broker: &TestBroker) {
    let mut client = broker.client().await;
    let resp: ApiVersionsResponse = client.call(&ApiVersionsRequest::default(), 2).await;
    assert_eq!(resp.error_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_errors_match_kafka() {
    let broker = start().await;
    let mut client = broker.client().await;
    assert_eq!(
        create_topic(&mut client, "dup", 1, &[]).await.topics[0].error_code,
        0
    );
    type Case<'a> = (&'a str, i32, Vec<(&'a str, &'a str)>, ErrorCode);
    let cases: Vec<Case> = vec![
        ("dup", 1, vec![], ErrorCode::TopicAlreadyExists),
        ("bad/name", 1, vec![], ErrorCode::InvalidTopicException),
        ("", 1, vec![], ErrorCode::InvalidTopicException),
        ("zero", 0, vec![], ErrorCode::InvalidPartitions),
        (
            "cfg",
            1,
            vec![("retention.ms", "soon")],
            ErrorCode::InvalidConfig,
        ),
        (
            "cfg2",
            1,
            vec![("no.such.config", "1")],
            ErrorCode::InvalidConfig,
        ),
    ];
    for (name, partitions, configs, expected) in cases {
        let resp = create_topic(&mut client, name, partitions, &configs).await;
        assert_eq!(resp.topics[0].error_code, expected.code(), "{name}");
        assert!(resp.topics[0].error_message.is_some());
    }
    still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_match_kafka() {
    let broker = start_with(&[("message.max.bytes", "2000")]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "p", 1, &[]).await;

    assert_eq!(
        produce(&mut client, "missing", 0, batch(1, "x")).await.0,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce(&mut client, "p", 7, batch(1, "x")).await.0,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    let mut corrupt = BytesMut::from(&batch(2, "x")[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(
        produce(&mut client, "p", 0, corrupt.freeze()).await.0,
        ErrorCode::CorruptMessage.code()
    );

    let big = {
        let mut b = strom_protocol::records::RecordBatchBuilder::new(
            strom_protocol::records::Compression::None,
        );
        b.push(
            now_ms(),
            None,
            Some(Bytes::from(vec![b'x'; 5000])),
            Vec::new(),
        );
        b.build().unwrap().freeze()
    };
    assert_eq!(
        produce(&mut client, "p", 0, big).await.0,
        ErrorCode::MessageTooLarge.code()
    );

    let resp: ProduceResponse = client
        .call(&produce_request("p", 0, batch(1, "x"), 2), 9)
        .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ErrorCode::InvalidRequiredAcks.code()
    );

    let mut truncated = batch(3, "x");
    truncated.truncate(truncated.len() - 5);
    assert_eq!(
        produce(&mut client, "p", 0, truncated).await.0,
        ErrorCode::CorruptMessage.code()
    );

    // Nothing above was appended.
    let p = fetch(&mut client, "p", 0, 0, 0).await;
    assert_eq!(p.high_watermark, 0);
    assert_eq!(produce(&mut client, "p", 0, batch(1, "ok")).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_below_the_log_start_is_out_of_range_and_delete_records_moves_it() {
    let broker = start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "dr", 1, &[]).await;
    for _ in 0..4 {
        produce(&mut client, "dr", 0, batch(1, "x")).await;
    }
    let mut p = delete_records_request::DeleteRecordsPartition::default();
    p.partition_index = 0;
    p.offset = 2;
    let mut t = delete_records_request::DeleteRecordsTopic::default();
    t.name = StrBytes::from("dr");
    t.partitions = vec![p];
    let mut req = DeleteRecordsRequest::default();
    req.topics = vec![t.clone()];
    let resp: DeleteRecordsResponse = client.call(&req, 2).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    assert_eq!(resp.topics[0].partitions[0].low_watermark, 2);
    assert_eq!(
        fetch(&mut client, "dr", 0, 1, 0).await.error_code,
        ErrorCode::OffsetOutOfRange.code()
    );
    assert_eq!(fetch(&mut client, "dr", 0, 2, 0).await.log_start_offset, 2);
    // Beyond the high watermark: OFFSET_OUT_OF_RANGE.
    req.topics[0].partitions[0].offset = 99;
    let resp: DeleteRecordsResponse = client.call(&req, 2).await;
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        ErrorCode::OffsetOutOfRange.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_negative_and_garbage_frames_close_the_connection_only() {
    let broker = start_with(&[("socket.request.max.bytes", "1024")]).await;
    let cases: Vec<Vec<u8>> = vec![
        // Larger than socket.request.max.bytes.
        (1_000_000i32).to_be_bytes().to_vec(),
        // Negative size.
        (-1i32).to_be_bytes().to_vec(),
        // Unknown API key.
        {
            let mut v = 8i32.to_be_bytes().to_vec();
            v.extend_from_slice(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1]);
            v
        },
        // Metadata v12 whose topic array claims 2^31-2 entries.
        {
            let mut b = BytesMut::new();
            b.put_i16(3);
            b.put_i16(12);
            b.put_i32(1);
            b.put_i16(-1);
            b.put_u8(0);
            b.put_u8(0xfe);
            b.put_u8(0xff);
            b.put_u8(0xff);
            b.put_u8(0xff);
            b.put_u8(0x07);
            let mut v = (b.len() as i32).to_be_bytes().to_vec();
            v.extend_from_slice(&b);
            v
        },
        // Produce v2: below the versions we serve.
        {
            let mut b = BytesMut::new();
            b.put_i16(0);
            b.put_i16(2);
            b.put_i32(1);
            b.put_i16(-1);
            let mut v = (b.len() as i32).to_be_bytes().to_vec();
            v.extend_from_slice(&b);
            v
        },
        // Header cut short.
        {
            let mut v = 3i32.to_be_bytes().to_vec();
            v.extend_from_slice(&[0, 3, 0]);
            v
        },
    ];
    for (i, bytes) in cases.into_iter().enumerate() {
        let mut client = broker.client().await;
        client.send_raw(&bytes).await;
        assert!(
            client.is_closed().await,
            "case {i} should close the connection"
        );
        still_serves(&broker).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_frames_never_take_the_broker_down() {
    let broker = start_with(&[("socket.request.max.bytes", "65536")]).await;
    // A deterministic generator: the same inputs every run.
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let keys = [0i16, 1, 2, 3, 18, 19, 20, 21, 22, 23, 32, 33, 37, 44, 60];
    for round in 0..300 {
        if round % 50 == 0 {
            still_serves(&broker).await;
        }
        let mut body = BytesMut::new();
        let key = keys[(next() % keys.len() as u64) as usize];
        body.put_i16(key);
        body.put_i16((next() % 14) as i16);
        body.put_i32(1);
        body.put_i16(-1);
        body.put_u8(0);
        let len = (next() % 200) as usize;
        for _ in 0..len {
            body.put_u8(next() as u8);
        }
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        let mut client = broker.client().await;
        client.send_raw(&frame).await;
        // An answer, a close, or (for a valid long-poll fetch or acks=0
        // produce) silence; the broker must go on serving either way.
        let _ =
            tokio::time::timeout(std::time::Duration::from_millis(500), client.read_frame()).await;
    }
    still_serves(&broker).await;
}
