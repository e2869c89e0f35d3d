//! The retry driver of the group calls: find each group's coordinator
//! (FindCoordinator, batched from v4 as KIP-699 allows), send one request per
//! coordinator, and retry the groups whose coordinator is loading, has moved
//! or cannot be reached, until the call's deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use strom_protocol::messages::FindCoordinatorRequest;
use tokio::time::Instant;
use tracing::debug;

use super::{
    coordinator_retriable, opt_string, GroupAnswers, DEFAULT_API_TIMEOUT, KEY_TYPE_GROUP,
    RETRY_BACKOFF,
};
use crate::admin::Admin;
use crate::connection::Connection;
use crate::error::ClientError;

impl Admin {
    /// The coordinator of each group (FindCoordinator; one batched request
    /// from v4, one request per group before).
    async fn find_coordinators(
        &self,
        groups: &BTreeSet<String>,
    ) -> Result<GroupAnswers<i32>, ClientError> {
        let conn = self.cluster().any_connection().await?;
        let version = conn.version_for::<FindCoordinatorRequest>()?;
        let mut found = Vec::new();
        if version >= 4 {
            let mut req = FindCoordinatorRequest::default();
            req.key_type = KEY_TYPE_GROUP;
            req.coordinator_keys = groups.iter().map(|g| g.as_str().into()).collect();
            let resp = conn.send(&req).await?;
            for c in resp.coordinators {
                let node = ClientError::check(c.error_code, opt_string(c.error_message.as_ref()))
                    .map(|()| c.node_id);
                found.push((c.key.to_string(), node));
            }
        } else {
            for group in groups {
                let mut req = FindCoordinatorRequest::default();
                req.key_type = KEY_TYPE_GROUP;
                req.key = group.as_str().into();
                let resp = conn.send(&req).await?;
                let node =
                    ClientError::check(resp.error_code, opt_string(resp.error_message.as_ref()))
                        .map(|()| resp.node_id);
                found.push((group.clone(), node));
            }
        }
        let unknown_broker = found.iter().any(|(_, node)| {
            node.as_ref()
                .is_ok_and(|n| self.cluster().broker(*n).is_none())
        });
        if unknown_broker {
            self.cluster().refresh(&[]).await?;
        }
        Ok(found)
    }

    /// Runs `op` on each group's coordinator, batching the groups that share
    /// one, and retries groups whose coordinator is loading, moved or
    /// unreachable until [`DEFAULT_API_TIMEOUT`]. `op` gets the coordinator's
    /// node id, a connection to it and its groups; it answers per group, and a
    /// whole-request error applies to every group of the batch.
    pub(super) async fn on_coordinators<T, F, Fut>(
        &self,
        group_ids: &[&str],
        operation: &'static str,
        op: F,
    ) -> Result<BTreeMap<String, Result<T, ClientError>>, ClientError>
    where
        F: Fn(i32, Arc<Connection>, Vec<String>) -> Fut,
        Fut: Future<Output = Result<GroupAnswers<T>, ClientError>>,
    {
        let deadline = Instant::now() + DEFAULT_API_TIMEOUT;
        let mut pending: BTreeSet<String> = group_ids.iter().map(|g| g.to_string()).collect();
        let mut done = BTreeMap::new();
        if pending.is_empty() {
            return Ok(done);
        }
        loop {
            let mut last_error = None;
            let mut by_node: BTreeMap<i32, Vec<String>> = BTreeMap::new();
            match self.find_coordinators(&pending).await {
                Ok(found) => {
                    for (group, node) in found {
                        match node {
                            Ok(node) => by_node.entry(node).or_default().push(group),
                            Err(e) if coordinator_retriable(&e) => last_error = Some(e),
                            Err(e) => {
                                if pending.remove(&group) {
                                    done.insert(group, Err(e));
                                }
                            }
                        }
                    }
                }
                Err(e) if e.is_retriable() => last_error = Some(e),
                Err(e) => return Err(e),
            }
            for (node, batch) in by_node {
                let answers = match self.cluster().connection(node).await {
                    Ok(conn) => op(node, conn, batch.clone()).await,
                    Err(e) => Err(e),
                };
                match answers {
                    Ok(answers) => {
                        let mut answered = BTreeSet::new();
                        for (group, answer) in answers {
                            answered.insert(group.clone());
                            match answer {
                                Err(e) if coordinator_retriable(&e) => last_error = Some(e),
                                answer => {
                                    if pending.remove(&group) {
                                        done.insert(group, answer);
                                    }
                                }
                            }
                        }
                        // A broker that leaves a group out of its answer is broken, not busy.
                        for group in batch {
                            if !answered.contains(&group) && pending.remove(&group) {
                                let e = ClientError::Decode(format!(
                                    "{operation} answered nothing for group {group}"
                                ));
                                done.insert(group, Err(e));
                            }
                        }
                    }
                    Err(e) if e.is_retriable() => last_error = Some(e),
                    Err(e) => return Err(e),
                }
            }
            if pending.is_empty() {
                return Ok(done);
            }
            if Instant::now() + RETRY_BACKOFF >= deadline {
                let e = last_error.unwrap_or(ClientError::RequestTimeout {
                    timeout_ms: DEFAULT_API_TIMEOUT.as_millis() as u64,
                });
                debug!(operation, error = %e, "giving up at the deadline");
                for group in pending {
                    done.insert(group, Err(e.clone()));
                }
                return Ok(done);
            }
            debug!(
                operation,
                groups = pending.len(),
                "retrying after a coordinator error"
            );
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }
}
