//! Coordinator-level tests over a real broker state (logs in a temporary
//! directory, no listener): requests go straight to the handlers, so APIs not
//! yet dispatched can be tested, and a "restart" reopens the same directory
//! and loads the groups again.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use strom_controller::{BrokerRegistration, Controller};
use strom_protocol::header::{parse_response_header, response_header_version, RequestHeader};
use strom_protocol::messages::{ApiVersion, DecodeLimits, KafkaDecode, KafkaEncode, KafkaRequest};

use crate::admin;
use crate::config::BrokerConfig;
use crate::dispatch::{Outcome, Request};
use crate::replica_manager::ReplicaManager;
use crate::state::State;

/// The metadata directory, as the broker names it.
const METADATA_DIR: &str = "__cluster_metadata-0";

/// A broker's state on a temporary directory.
pub(crate) struct Node {
    pub state: State,
    dir: tempfile::TempDir,
}

impl Node {
    /// A fresh node with `__consumer_offsets` of `offsets_partitions` partitions.
    pub fn start(offsets_partitions: i32) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        Node::open(dir, offsets_partitions)
    }

    fn open(dir: tempfile::TempDir, offsets_partitions: i32) -> Node {
        let props = BTreeMap::from([
            ("log.dirs".to_owned(), dir.path().display().to_string()),
            ("listeners".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "offsets.topic.num.partitions".to_owned(),
                offsets_partitions.to_string(),
            ),
        ]);
        let config = BrokerConfig::from_properties(props).expect("config");
        let controller = Controller::open(&config.data_dir.join(METADATA_DIR), config.node_id)
            .expect("metadata");
        let replicas =
            ReplicaManager::new(&config.data_dir, config.node_id, true).expect("replicas");
        replicas
            .reconcile(&controller.image(), &config)
            .expect("open partitions");
        controller.register_broker(BrokerRegistration {
            node_id: config.node_id,
            host: "127.0.0.1".to_owned(),
            port: 9092,
            rack: None,
        });
        let state = crate::server::new_state(config, controller, replicas);
        let groups = state.groups.clone();
        groups.load(&state).expect("load groups");
        Node { state, dir }
    }

    /// Closes every log cleanly and opens the directory again: a broker
    /// restart, groups loaded from `__consumer_offsets`.
    pub fn restart(self) -> Node {
        let partitions = self.state.config.offsets_topic_partitions;
        self.state.replicas.close_all().expect("close logs");
        let Node { state, dir } = self;
        drop(state);
        Node::open(dir, partitions)
    }

    /// Creates a topic with `partitions` partitions.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        admin::create_topic(&self.state, name, partitions, 1, BTreeMap::new(), false)
            .expect("create topic");
    }

    /// Calls a handler with `request` encoded at `version`, and decodes its answer.
    pub async fn call<Req, Resp, F, Fut>(&self, request: &Req, version: i16, handler: F) -> Resp
    where
        Req: KafkaRequest + KafkaEncode,
        Resp: KafkaDecode,
        F: FnOnce(State, RequestHeader, Bytes) -> Fut,
        Fut: std::future::Future<Output = Outcome>,
    {
        let api_key = Req::API_KEY.value();
        let header = RequestHeader {
            api_key,
            api_version: version,
            correlation_id: 1,
            client_id: Some("strom-test".into()),
            header_version: strom_protocol::header::request_header_version(api_key, version),
        };
        let mut body = BytesMut::new();
        request
            .encode_into(&mut body, ApiVersion::new(version))
            .expect("encode request");
        let outcome = handler(self.state.clone(), header.clone(), body.freeze()).await;
        let Outcome::Respond(frame) = outcome else {
            panic!("the handler did not answer");
        };
        let frame = frame.slice(4..);
        let (_, at) = parse_response_header(&frame, response_header_version(api_key, version))
            .expect("response header");
        Resp::decode_from_bytes(
            frame.slice(at..),
            ApiVersion::new(version),
            DecodeLimits::default(),
        )
        .expect("decode response")
    }
}

/// A closure for [`Node::call`] that runs an async handler `$h`.
macro_rules! handler {
    ($h:path) => {
        |state: crate::state::State,
         header: strom_protocol::header::RequestHeader,
         body: bytes::Bytes| async move {
            let request = crate::group::tests::request(&header);
            $h(&state, &request, body)
                .await
                .expect("the handler decodes the request")
        }
    };
}

/// A [`Request`] for `header`, as the dispatcher builds it.
pub(crate) fn request(header: &RequestHeader) -> Request<'_> {
    Request {
        header,
        version: header.api_version,
        client_host: "/127.0.0.1".to_owned(),
    }
}

mod txn_offsets_tests;
