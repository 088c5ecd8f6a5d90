//! Snapshots on a schedule (`ctxd serve --snapshot-every 1h --snapshot-dir DIR
//! --snapshot-keep 24`): every round takes a snapshot into the directory with retention, as
//! `ctxd snapshot DIR --keep N` does.
//!
//! A round is skipped when the generation has not moved since the last snapshot it wrote (a
//! quiet store is not copied again), and while the daemon is released (the files are someone
//! else's to copy). A failed round is logged and shown by `status` (`last_snapshot`), and the
//! daemon serves on; the next round tries again. Rounds start `every` apart from when the
//! daemon started, and a round that runs long delays the next rather than overlapping it. On
//! shutdown the schedule stops between rounds; a round in progress is one of the in-flight
//! works shutdown waits for (its copy holds a read lease).

use crate::config::SnapshotSchedule;
use crate::shared::Shared;
use crate::storage::StorageError;
use ctxd_proto::{ScheduledSnapshot, Snapshot, State};
use std::sync::Arc;

/// Runs the schedule until shutdown.
pub async fn run(shared: Arc<Shared>, schedule: SnapshotSchedule) {
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + schedule.every, schedule.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_written: Option<u64> = None;
    loop {
        tokio::select! {
            biased;
            _ = shared.shutdown.triggered() => return,
            _ = ticks.tick() => {}
        }
        if shared.state() != State::Serving {
            tracing::info!("scheduled snapshot skipped: the daemon is released");
            continue;
        }
        let generation = match shared.store().stats().await {
            Ok(stats) => stats.generation,
            Err(StorageError::Closed) => continue,
            Err(e) => {
                record_failure(&shared, 0, &e.to_string());
                continue;
            }
        };
        if last_written == Some(generation) {
            tracing::debug!(
                generation,
                "scheduled snapshot skipped: nothing written since the last"
            );
            continue;
        }
        let params = Snapshot {
            dest: schedule.dir.display().to_string(),
            format: Some(schedule.format),
            keep: Some(schedule.keep),
            tmp_dir: None,
        };
        match shared
            .store()
            .snapshot(&params, shared.data_dir().to_owned())
            .await
        {
            Ok(snapshot) => {
                last_written = Some(snapshot.generation);
                let bytes = std::fs::metadata(&snapshot.path)
                    .ok()
                    .filter(std::fs::Metadata::is_file)
                    .map_or_else(|| snapshot.files.iter().map(|f| f.bytes).sum(), |m| m.len());
                shared.set_last_snapshot(ScheduledSnapshot {
                    at: crate::clock::unix_millis(),
                    generation: snapshot.generation,
                    bytes,
                    path: Some(snapshot.path),
                    error: None,
                });
            }
            // Released or stopping half way: not a failure of the snapshot.
            Err(StorageError::Closed) => {
                tracing::info!("scheduled snapshot abandoned: the store closed");
            }
            Err(e) => record_failure(&shared, generation, &e.to_string()),
        }
    }
}

fn record_failure(shared: &Shared, generation: u64, error: &str) {
    tracing::error!(generation, "scheduled snapshot failed: {error}");
    shared.set_last_snapshot(ScheduledSnapshot {
        at: crate::clock::unix_millis(),
        generation,
        bytes: 0,
        path: None,
        error: Some(error.to_owned()),
    });
}
