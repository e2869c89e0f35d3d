mod common;

use strom_client::{Admin, AlterConfigOp, ConfigResource, NewTopic};

#[tokio::test]
async fn admin_creates_describes_alters_and_deletes_topics() {
    let b = common::start_with(&[("auto.create.topics.enable", "false")]).await;
    let admin = Admin::connect(&b.bootstrap).await.unwrap();

    let created = admin
        .create_topics(&[
            NewTopic::new("orders", 3, 1).config("retention.ms", "3600000"),
            NewTopic::new("bad", 0, 1),
        ])
        .await
        .unwrap();
    assert!(created["orders"].is_ok());
    assert_eq!(created["bad"].as_ref().unwrap_err().code(), Some(37)); // INVALID_PARTITIONS
    let again = admin
        .create_topics(&[NewTopic::new("orders", 3, 1)])
        .await
        .unwrap();
    assert_eq!(again["orders"].as_ref().unwrap_err().code(), Some(36)); // TOPIC_ALREADY_EXISTS

    assert!(admin
        .list_topics()
        .await
        .unwrap()
        .contains(&"orders".to_string()));
    let desc = admin.describe_topics(&["orders"]).await.unwrap();
    assert_eq!(desc[0].partitions.len(), 3);
    let cluster = admin.describe_cluster().await.unwrap();
    assert_eq!(cluster.brokers.len(), 1);
    for p in &desc[0].partitions {
        assert_eq!(p.leader, cluster.brokers[0].id);
        assert_eq!(p.isr, vec![cluster.brokers[0].id]);
    }

    let topic = ConfigResource::Topic("orders".into());
    let value = |entries: &[strom_client::ConfigEntry], name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    let configs = admin.describe_configs(&topic).await.unwrap();
    assert_eq!(value(&configs, "retention.ms").as_deref(), Some("3600000"));
    admin
        .incremental_alter_configs(
            &topic,
            &[AlterConfigOp::Set("retention.ms".into(), "7200000".into())],
        )
        .await
        .unwrap();
    let configs = admin.describe_configs(&topic).await.unwrap();
    assert_eq!(value(&configs, "retention.ms").as_deref(), Some("7200000"));

    let deleted = admin.delete_topics(&["orders", "missing"]).await.unwrap();
    assert!(deleted["orders"].is_ok());
    assert_eq!(deleted["missing"].as_ref().unwrap_err().code(), Some(3));
    assert!(!admin
        .list_topics()
        .await
        .unwrap()
        .contains(&"orders".to_string()));
    assert!(admin.describe_topics(&["orders"]).await.is_err());
}
