//! State shared by every connection of one broker.

use std::sync::{Arc, Mutex};

use strom_controller::Controller;
use tokio::sync::{watch, Semaphore};

use crate::config::BrokerConfig;
use crate::fetch_session::FetchSessions;
use crate::group::coordinator::GroupCoordinator;
use crate::replica_manager::ReplicaManager;
use crate::txn::runtime::TxnRuntime;

/// Everything a handler may touch.
pub struct BrokerState {
    /// Static configuration.
    pub config: BrokerConfig,
    /// Cluster metadata.
    pub controller: Controller,
    /// The partitions hosted here.
    pub replicas: ReplicaManager,
    /// Consumer groups coordinated here.
    pub groups: Arc<GroupCoordinator>,
    /// Transactions coordinated here.
    pub txn: Arc<TxnRuntime>,
    /// Bytes of request frames held in memory, across connections
    /// (`queued.max.request.bytes`). A connection takes permits for a frame
    /// before reading it, so over the limit sockets simply stop being read.
    pub request_memory: Arc<Semaphore>,
    /// Permits the semaphore was created with.
    pub request_memory_permits: usize,
    /// Bumped after every append that moves a high watermark; long-polling
    /// fetches wait on it instead of on timers.
    pub data_version: watch::Sender<u64>,
    /// Open fetch sessions (KIP-227); locked briefly, never across an await.
    pub fetch_sessions: Mutex<FetchSessions>,
}

impl BrokerState {
    /// Wakes fetches waiting for data.
    pub fn notify_data(&self) {
        self.data_version.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// Milliseconds since the Unix epoch: the one place the broker reads the clock
/// for record timestamps and retention.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Shared handle.
pub type State = Arc<BrokerState>;
