//! Starting and stopping a broker: data directory, metadata, partitions,
//! listener, background tasks.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use strom_controller::{BrokerRegistration, Controller};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::BrokerConfig;
use crate::fetch_session::FetchSessions;
use crate::group::classic::GroupConfig;
use crate::group::consumer::ConsumerGroupConfig;
use crate::group::coordinator::{CoordinatorConfig, GroupCoordinator};
use crate::replica_manager::ReplicaManager;
use crate::state::{BrokerState, State};
use crate::txn::runtime::TxnRuntime;
use crate::{connection, tasks};

/// Marker written after every log closed cleanly; its absence at start means
/// the logs after their recovery points must be scanned.
const CLEAN_SHUTDOWN_MARKER: &str = ".strom-clean-shutdown";
/// The metadata log's directory, named as Kafka's KRaft metadata partition.
const METADATA_DIR: &str = "__cluster_metadata-0";

/// Why the broker could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {0} is in use by another strom process")]
    Locked(PathBuf),
    #[error("metadata: {0}")]
    Metadata(#[from] strom_controller::ControllerError),
    #[error("opening partitions: {0}")]
    Partitions(std::io::Error),
    #[error("loading consumer groups: {0}")]
    Groups(String),
    #[error("loading transactions: {0}")]
    Transactions(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// A running broker.
pub struct Broker {
    state: State,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    _lock: File,
}

impl Broker {
    /// Opens the data directory, recovers, and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<Broker, StartError> {
        let data_dir = config.data_dir.clone();
        let dir_err = |source| StartError::DataDir {
            path: data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&data_dir).map_err(dir_err)?;
        let lock = File::create(data_dir.join(".lock")).map_err(dir_err)?;
        if lock.try_lock().is_err() {
            return Err(StartError::Locked(data_dir));
        }
        let marker = data_dir.join(CLEAN_SHUTDOWN_MARKER);
        let clean_shutdown = marker.exists();
        let fresh = !data_dir.join(METADATA_DIR).exists();
        if !clean_shutdown && !fresh {
            tracing::info!(dir = %data_dir.display(), "no clean-shutdown marker: logs will be recovered");
        }

        let controller = Controller::open(&data_dir.join(METADATA_DIR), config.node_id)?;
        let replicas =
            ReplicaManager::new(&data_dir, config.node_id, clean_shutdown).map_err(dir_err)?;
        let image = controller.image();
        replicas
            .remove_orphans(&image)
            .map_err(StartError::Partitions)?;
        replicas
            .reconcile(&image, &config)
            .map_err(StartError::Partitions)?;
        // From here on a crash must trigger recovery.
        if clean_shutdown {
            std::fs::remove_file(&marker).map_err(dir_err)?;
            File::open(&data_dir)
                .and_then(|d| d.sync_all())
                .map_err(dir_err)?;
        }

        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen.clone(),
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
        // Port 0 asks the OS for a free port; advertise the one we got.
        let mut config = config;
        if config.advertised_port == 0 {
            config.advertised_port = i32::from(local_addr.port());
        }
        controller.register_broker(BrokerRegistration {
            node_id: config.node_id,
            host: config.advertised_host.clone(),
            port: config.advertised_port,
            rack: None,
        });
        let state = new_state(config, controller, replicas);
        let (groups, txn) = (state.groups.clone(), state.txn.clone());
        let loaded = groups.load(&state).map_err(StartError::Groups)?;
        if loaded > 0 {
            tracing::info!(groups = loaded, "consumer groups loaded");
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let loaded = txn.load(&state).map_err(StartError::Transactions)?;
        if loaded > 0 {
            tracing::info!(transactional_ids = loaded, "transaction coordinator loaded");
        }
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(state.clone(), listener, shutdown_rx.clone()));
        tasks.spawn(tasks::retention_loop(state.clone(), shutdown_rx.clone()));
        tasks.spawn(tasks::flush_loop(state.clone(), shutdown_rx.clone()));
        tasks.spawn(tasks::cleaner_loop(state.clone(), shutdown_rx.clone()));
        tasks.spawn(txn.run_timers(state.clone(), shutdown_rx.clone()));
        tasks.spawn(groups.run_timers(state.clone(), shutdown_rx));
        tracing::info!(
            node_id = state.config.node_id,
            advertised = %format!("{}:{}", state.config.advertised_host, state.config.advertised_port),
            partitions = state.replicas.all().len(),
            "strom server listening on {local_addr}"
        );
        Ok(Broker {
            state,
            local_addr,
            shutdown,
            tasks,
            _lock: lock,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes every log cleanly and writes the clean-shutdown marker.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.state
            .txn
            .close(std::time::Duration::from_secs(5))
            .await;
        let state = self.state.clone();
        let closed = tokio::task::spawn_blocking(move || state.replicas.close_all()).await;
        match closed {
            Ok(Ok(())) => {
                let marker = self.state.config.data_dir.join(CLEAN_SHUTDOWN_MARKER);
                if let Err(e) = File::create(&marker).and_then(|f| f.sync_all()) {
                    tracing::error!(error = %e, "could not write the clean-shutdown marker");
                }
                tracing::info!("strom server stopped cleanly");
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "shutdown left logs to recover at next start")
            }
            Err(e) => tracing::error!(error = %e, "shutdown task failed"),
        }
    }
}

async fn accept_loop(state: State, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                while connections.try_join_next().is_some() {}
                if connections.len() >= state.config.max_connections {
                    tracing::warn!(%peer, limit = state.config.max_connections, "refusing connection: max.connections reached");
                    continue;
                }
                connections.spawn(connection::serve(state.clone(), stream, peer));
            }
        }
    }
    connections.shutdown().await;
}

/// The broker's shared state from its configuration, metadata and partitions,
/// with empty coordinators (loading them is the caller's next step).
pub(crate) fn new_state(
    config: BrokerConfig,
    controller: Controller,
    replicas: ReplicaManager,
) -> State {
    let permits = config
        .queued_max_request_bytes
        .min(Semaphore::MAX_PERMITS)
        .min(u32::MAX as usize);
    let (data_version, _) = watch::channel(0u64);
    let groups = Arc::new(GroupCoordinator::new(CoordinatorConfig {
        group: GroupConfig {
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            max_size: config.group_max_size,
        },
        offsets_topic_partitions: config.offsets_topic_partitions,
        offsets_retention_ms: config.offsets_retention_ms,
        offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
        offset_metadata_max_bytes: config.offset_metadata_max_bytes,
        consumer: ConsumerGroupConfig {
            session_timeout_ms: config.group_consumer_session_timeout_ms,
            heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
            ..ConsumerGroupConfig::default()
        },
    }));
    let txn = Arc::new(TxnRuntime::new(
        config.txn.clone(),
        config.transaction_state_partitions,
        config.transaction_state_segment_bytes,
    ));
    Arc::new(BrokerState {
        fetch_sessions: Mutex::new(FetchSessions::new(config.fetch_session_slots)),
        groups,
        txn,
        request_memory: Arc::new(Semaphore::new(permits)),
        request_memory_permits: permits,
        config,
        controller,
        replicas,
        data_version,
    })
}
