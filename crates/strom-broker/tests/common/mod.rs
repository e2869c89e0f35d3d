//! A broker on a free port with a temporary data directory, and a raw Kafka
//! protocol client for talking to it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use strom_broker::config::BrokerConfig;
use strom_broker::Broker;
use strom_protocol::header::{parse_response_header, response_header_version, RequestHeader};
use strom_protocol::messages::{ApiVersion, DecodeLimits, KafkaDecode, KafkaEncode, KafkaRequest};
use strom_protocol::records::{Compression, RecordBatchBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub mod requests;

/// Every wait in these tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub struct TestBroker {
    pub broker: Option<Broker>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

pub async fn start_with(props: &[(&str, &str)]) -> TestBroker {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, props).await
}

pub async fn start() -> TestBroker {
    start_with(&[]).await
}

pub async fn start_in(dir: tempfile::TempDir, props: &[(&str, &str)]) -> TestBroker {
    let mut map: BTreeMap<String, String> = props
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("listeners".into(), "127.0.0.1:0".into());
    map.insert("log.dirs".into(), dir.path().display().to_string());
    let config = BrokerConfig::from_properties(map).unwrap();
    let broker = Broker::start(config).await.unwrap();
    let addr = broker.local_addr();
    TestBroker {
        broker: Some(broker),
        addr,
        dir,
    }
}

impl TestBroker {
    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
    /// Clean shutdown, then a new broker on the same directory.
    pub async fn restart(mut self, props: &[(&str, &str)]) -> TestBroker {
        self.broker.take().unwrap().shutdown().await;
        start_in(self.dir, props).await
    }
}

pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        Client {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends a request and decodes its response.
    pub async fn call<Req, Resp>(&mut self, request: &Req, version: i16) -> Resp
    where
        Req: KafkaRequest + KafkaEncode,
        Resp: KafkaDecode,
    {
        let api_key = Req::API_KEY.value();
        self.send(request, version).await;
        let frame = self
            .read_frame()
            .await
            .expect("broker closed the connection");
        let (_, at) =
            parse_response_header(&frame, response_header_version(api_key, version)).unwrap();
        Resp::decode_from_bytes(
            frame.slice(at..),
            ApiVersion::new(version),
            DecodeLimits::default(),
        )
        .unwrap()
    }

    pub async fn send<Req: KafkaRequest + KafkaEncode>(&mut self, request: &Req, version: i16) {
        self.correlation_id += 1;
        let api_key = Req::API_KEY.value();
        let header = RequestHeader {
            api_key,
            api_version: version,
            correlation_id: self.correlation_id,
            client_id: Some("strom-test".into()),
            header_version: strom_protocol::header::request_header_version(api_key, version),
        };
        let mut body = BytesMut::new();
        header.encode(&mut body);
        request
            .encode_into(&mut body, ApiVersion::new(version))
            .unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.send_raw(&frame).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next response frame, or `None` when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        match tokio::time::timeout(TIMEOUT, self.stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return None,
            Err(_) => panic!("no response within {TIMEOUT:?}"),
        }
        let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
        tokio::time::timeout(TIMEOUT, self.stream.read_exact(&mut frame))
            .await
            .unwrap()
            .ok()?;
        Some(Bytes::from(frame))
    }

    /// Whether the broker closed this connection (reads EOF within the timeout).
    pub async fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(TIMEOUT, self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// A batch of `count` string records `prefix-i`.
pub fn batch(count: usize, prefix: &str) -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::None);
    let now = now_ms();
    for i in 0..count {
        b.push(
            now,
            Some(Bytes::from(format!("k{i}"))),
            Some(Bytes::from(format!("{prefix}-{i}"))),
            Vec::new(),
        );
    }
    b.build().unwrap().freeze()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
