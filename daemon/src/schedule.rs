//! Snapshots on a schedule (`ctxd serve --snapshot-every 1h --snapshot-dir DIR
//! --snapshot-keep 24`): every round takes a snapshot into the directory with retention, as
//! `ctxd snapshot DIR --keep N` does.
//!
//! A round is skipped when the generation has not moved since the last snapshot written (a
//! quiet store is not copied again), and while the daemon is released (the files are someone
//! else's to copy). A failed round is logged and shown by `status` (`last_snapshot`), and the
//! daemon serves on; the next round tries again. The first round comes `every` after the
//! newest snapshot already in the directory (at once if that is overdue; `every` after start
//! if there is none), so restarts more frequent than `every` do not starve the schedule; a
//! round that runs long delays the next rather than overlapping it. On shutdown the schedule
//! stops; a copy in progress ends on its own thread (and shutdown's close of the stores waits
//! for it, as for any snapshot), and its temporary directory is removed.

use crate::config::SnapshotSchedule;
use crate::shared::Shared;
use crate::storage::StorageError;
use crate::storage::snapshot::retention;
use ctxd_proto::{ScheduledSnapshot, Snapshot, State};
use std::sync::Arc;
use std::time::Duration;

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Runs the schedule until shutdown.
pub async fn run(shared: Arc<Shared>, schedule: SnapshotSchedule) {
    let newest = retention::newest(&schedule.dir);
    let now = crate::clock::unix_millis();
    let first = match &newest {
        Some((_, at, _)) => {
            Duration::from_millis((at.saturating_add(millis(schedule.every))).saturating_sub(now))
        }
        None => schedule.every,
    };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + first, schedule.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_written: Option<u64> = newest.map(|(_, _, generation)| generation);
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
        let taken = tokio::select! {
            biased;
            _ = shared.shutdown.triggered() => return,
            taken = shared.store().snapshot(&params, shared.data_dir().to_owned()) => taken,
        };
        match taken {
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
