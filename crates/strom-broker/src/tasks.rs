//! Background work: retention and time-based flushing.

use std::time::Duration;

use tokio::sync::watch;

use crate::state::{now_ms, State};

/// Applies `retention.ms` / `retention.bytes` every `log.retention.check.interval.ms`.
pub async fn retention_loop(state: State, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.config.retention_check_interval_ms);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for partition in state.replicas.all() {
                if !partition.config().deletes() {
                    continue;
                }
                let hw = partition.high_watermark();
                let outcome = partition.with_log_mut(|log| log.apply_retention(now_ms(), hw));
                match outcome {
                    Ok(o) if o.deleted_segments > 0 => tracing::info!(
                        topic = %partition.topic,
                        partition = partition.index,
                        deleted_segments = o.deleted_segments,
                        log_start_offset = o.log_start_offset,
                        "retention deleted segments"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "retention failed"),
                }
            }
        })
        .await;
    }
}

/// Flushes partitions whose unflushed data is older than `flush.ms`.
pub async fn flush_loop(state: State, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.config.flush_scheduler_interval_ms);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let now = now_ms();
        for partition in state.replicas.all() {
            let flush_ms = partition.config().flush_ms();
            let due = partition.with_log(|log| {
                log.unflushed_messages() > 0 && now.saturating_sub(log.last_flush_ms()) >= flush_ms
            });
            if due {
                let leo = partition.log_end_offset();
                if let Err(e) = partition.flush_through(leo - 1).await {
                    tracing::error!(topic = %partition.topic, partition = partition.index, error = %e.message, "flush failed");
                }
            }
        }
    }
}

/// Compacts `cleanup.policy=compact` partitions whose dirty ratio passed
/// `min.cleanable.dirty.ratio` (or whose tombstones or `max.compaction.lag.ms`
/// are due), dirtiest first, one at a time.
pub async fn cleaner_loop(state: State, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.config.cleaner_backoff_ms);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || clean_dirtiest(&state)).await;
    }
}

fn clean_dirtiest(state: &State) {
    let now = now_ms();
    let mut candidates: Vec<(f64, std::sync::Arc<crate::partition::Partition>)> = state
        .replicas
        .all()
        .into_iter()
        .filter_map(|p| {
            let ratio = p.config().log_config().min_cleanable_dirty_ratio;
            let info = p.with_log(|log| log.cleanable(now)).ok().flatten()?;
            info.needs_cleaning(ratio).then(|| (info.dirty_ratio(), p))
        })
        .collect();
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, partition) in candidates {
        match partition.with_log_mut(|log| log.clean(now_ms())) {
            Ok(o) if o.segments_cleaned > 0 => tracing::info!(
                topic = %partition.topic,
                partition = partition.index,
                segments = o.segments_cleaned,
                bytes_before = o.bytes_before,
                bytes_after = o.bytes_after,
                records_removed = o.records_removed,
                tombstones_removed = o.tombstones_removed,
                "compacted"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "compaction failed")
            }
        }
    }
}
