//! An in-process broker on a free port with a temporary data directory.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use strom_broker::config::BrokerConfig;
use strom_broker::Broker;
use strom_client::{Admin, NewTopic};

/// Every wait in these tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub struct TestBroker {
    pub broker: Broker,
    pub bootstrap: String,
    _dir: tempfile::TempDir,
}

pub async fn start_with(props: &[(&str, &str)]) -> TestBroker {
    let dir = tempfile::tempdir().unwrap();
    let mut map: BTreeMap<String, String> = props
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("listeners".into(), "127.0.0.1:0".into());
    map.insert("log.dirs".into(), dir.path().display().to_string());
    let config = BrokerConfig::from_properties(map).unwrap();
    let broker = Broker::start(config).await.unwrap();
    let bootstrap = broker.local_addr().to_string();
    TestBroker {
        broker,
        bootstrap,
        _dir: dir,
    }
}

/// Creates a topic with one replica and waits for the answer.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin = Admin::connect(bootstrap).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(topic, partitions, 1)])
        .await
        .unwrap()[topic]
        .clone()
        .unwrap();
}
