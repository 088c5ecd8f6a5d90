//! The daemon's lifecycle: its state, the release leases, and the store they open and close.
//!
//! [`Lifecycle`] holds the store and its data directory together with the state they are in,
//! so every path that closes or reopens the files (the `release`, `renew` and `resume`
//! operations, lease expiry, a Windows service pause) goes through one object.
//!
//! Data operations run holding a read permit of the lifecycle's gate. `release` takes the
//! write side, waiting at most `drain_ms` for the requests in flight (a request still running
//! then makes the release fail with `busy`, and service continues), then closes storage through
//! the storage thread and replies only once every handle is closed. Requests that arrive while
//! released fail with `released`, or wait up to their `wait_ms` for a resume. The daemon
//! reopens when the last lease is resumed or expires (expiry is logged as a warning).

use crate::clock::unix_millis;
use crate::error::Error;
use crate::notify;
use crate::storage::layout::{self, Fingerprint};
use crate::storage::{Stats, Store};
use ctxd_proto::{FileEntry, Lease, State};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, RwLock, RwLockReadGuard, watch};

/// The lease length when `release` gives none (documented with `ctxd_proto::Release`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// How long `release` waits for requests in flight when it gives no `drain_ms` (documented with
/// `ctxd_proto::Release`).
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// What `release` answers.
pub struct Released {
    /// The new lease.
    pub lease: Lease,
    /// The generation of the closed files.
    pub generation: u64,
    /// Files to copy.
    pub files: Vec<FileEntry>,
}

/// The store, its data directory, the lifecycle state, the leases that drive it, and the gate
/// data operations pass.
pub struct Lifecycle {
    store: Store,
    data_dir: PathBuf,
    gate: RwLock<()>,
    state: watch::Sender<State>,
    leases: Mutex<BTreeMap<String, Lease>>,
    /// Counts while released, for `status`.
    last_stats: Mutex<Stats>,
    /// Size and modification time of every file as released: a change means the files must be
    /// verified before they are served again.
    fingerprint: Mutex<Fingerprint>,
    /// Why the daemon cannot resume (the files failed verification), for `status`.
    problem: Mutex<Option<String>>,
    /// Wakes the expiry task when leases change.
    changed: Notify,
    next_id: AtomicU64,
}

impl Lifecycle {
    /// The lifecycle of an open store serving `data_dir`.
    pub fn new(store: Store, data_dir: PathBuf) -> Lifecycle {
        Lifecycle {
            store,
            data_dir,
            gate: RwLock::new(()),
            state: watch::Sender::new(State::Serving),
            leases: Mutex::new(BTreeMap::new()),
            last_stats: Mutex::new(Stats::default()),
            fingerprint: Mutex::new(Vec::new()),
            problem: Mutex::new(None),
            changed: Notify::new(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The storage owner's handle.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The data directory (canonical).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The lifecycle state now.
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// Moves to another lifecycle state (and tells the service manager).
    pub fn set_state(&self, state: State) {
        self.state.send_replace(state);
        match state {
            State::Released => {
                let leases = self.leases();
                let holders: Vec<String> = leases
                    .iter()
                    .map(|l| {
                        // `systemctl status` is read by people: a UTC time, not Unix ms.
                        let until = std::time::UNIX_EPOCH + Duration::from_millis(l.expires_at);
                        format!(
                            "{} until {}",
                            l.holder.as_deref().unwrap_or(&l.lease_id),
                            humantime::format_rfc3339_seconds(until)
                        )
                    })
                    .collect();
                notify::status(&format!("released ({})", holders.join(", ")));
            }
            State::Serving => notify::status("serving"),
            State::Draining => notify::status("draining"),
            State::Stopping => {}
        }
    }

    /// The leases held, by id.
    pub fn leases(&self) -> Vec<Lease> {
        lock(&self.leases).values().cloned().collect()
    }

    /// Why the daemon stays released although no lease is held, if it does.
    pub fn problem(&self) -> Option<String> {
        lock(&self.problem).clone()
    }

    /// The counts of the store as it was closed.
    pub fn last_stats(&self) -> Stats {
        *lock(&self.last_stats)
    }

    /// Admits a data operation: waits (up to `wait_ms`) while released, then holds a read
    /// permit so a release waits for it.
    pub async fn admit(&self, wait_ms: Option<u64>) -> Result<RwLockReadGuard<'_, ()>, Error> {
        let deadline = wait_ms.map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
        loop {
            let permit = self.gate.read().await;
            if self.state() == State::Serving {
                return Ok(permit);
            }
            drop(permit);
            let released = || Error::Released {
                lease_expires_at: lock(&self.leases).values().map(|l| l.expires_at).max(),
            };
            let Some(deadline) = deadline else {
                return Err(released());
            };
            let mut state = self.state.subscribe();
            match tokio::time::timeout_at(deadline, state.wait_for(|s| *s == State::Serving)).await
            {
                Ok(Ok(_)) => continue,
                _ => return Err(released()),
            }
        }
    }

    /// `release`: adds a lease; the first one closes every file first.
    pub async fn release(
        &self,
        holder: Option<String>,
        ttl: Duration,
        drain: Duration,
    ) -> Result<Released, Error> {
        let Ok(exclusive) = tokio::time::timeout(drain, self.gate.write()).await else {
            return Err(Error::Busy(format!(
                "requests still running after {} ms; the data directory stays open",
                drain.as_millis()
            )));
        };
        let (store, data_dir) = (&self.store, self.data_dir.as_path());
        if self.state() == State::Serving {
            self.set_state(State::Draining);
            let stats = store.stats().await.unwrap_or_default();
            if let Err(e) = store.close().await {
                // Closing failed part way; try to serve again rather than sit half closed.
                let _ = store.reopen().await;
                self.set_state(State::Serving);
                return Err(Error::Storage(e));
            }
            *lock(&self.last_stats) = stats;
            *lock(&self.fingerprint) = layout::fingerprint(data_dir);
        }
        let lease = Lease {
            lease_id: self.new_lease_id(),
            holder,
            expires_at: unix_millis().saturating_add(millis(ttl)),
        };
        lock(&self.leases).insert(lease.lease_id.clone(), lease.clone());
        self.set_state(State::Released);
        drop(exclusive);
        self.changed.notify_one();
        tracing::info!(lease = %lease.lease_id, holder = lease.holder.as_deref().unwrap_or(""), "released");
        Ok(Released {
            lease,
            generation: self.last_stats().generation,
            files: layout::list(data_dir)?,
        })
    }

    /// `renew`: a new end for a lease, counted from now.
    pub fn renew(&self, lease_id: &str, ttl: Duration) -> Result<u64, Error> {
        let mut leases = lock(&self.leases);
        let lease = leases
            .get_mut(lease_id)
            .ok_or_else(|| Error::LeaseNotFound(lease_id.to_owned()))?;
        lease.expires_at = unix_millis().saturating_add(millis(ttl));
        let expires_at = lease.expires_at;
        drop(leases);
        self.changed.notify_one();
        Ok(expires_at)
    }

    /// `resume`: ends one lease (or all); reopens when none is left.
    pub async fn resume(
        &self,
        lease_id: Option<&str>,
        all: bool,
    ) -> Result<(State, Vec<Lease>), Error> {
        {
            let mut leases = lock(&self.leases);
            match (lease_id, all) {
                (_, true) => leases.clear(),
                (Some(id), false) => {
                    if leases.remove(id).is_none() {
                        return Err(Error::LeaseNotFound(id.to_owned()));
                    }
                }
                (None, false) => {
                    return Err(Error::BadRequest(
                        "`resume` needs `lease_id` or `all: true`".to_owned(),
                    ));
                }
            }
        }
        self.changed.notify_one();
        self.reopen_if_free().await?;
        Ok((self.state(), self.leases()))
    }

    /// Ends the leases whose time is up; returns when the next one would end (if any).
    pub async fn expire(&self) -> Option<u64> {
        let now = unix_millis();
        let expired: Vec<Lease> = {
            let mut leases = lock(&self.leases);
            let ids: Vec<String> = leases
                .values()
                .filter(|l| l.expires_at <= now)
                .map(|l| l.lease_id.clone())
                .collect();
            ids.iter().filter_map(|id| leases.remove(id)).collect()
        };
        for lease in &expired {
            tracing::warn!(
                lease = %lease.lease_id,
                holder = lease.holder.as_deref().unwrap_or(""),
                "lease expired without a resume; resuming"
            );
        }
        if !expired.is_empty()
            && let Err(e) = self.reopen_if_free().await
        {
            tracing::error!("resuming after lease expiry failed: {e}");
        }
        lock(&self.leases).values().map(|l| l.expires_at).min()
    }

    /// Waits until leases change or `deadline` (Unix ms) passes.
    pub async fn changed_or(&self, deadline: Option<u64>) {
        match deadline {
            Some(at) => {
                let wait = Duration::from_millis(at.saturating_sub(unix_millis()));
                let _ = tokio::time::timeout(wait, self.changed.notified()).await;
            }
            None => self.changed.notified().await,
        }
    }

    /// Reopens once no lease is left. Files that changed while released (a restored backup,
    /// an edit, a truncation) are verified first; if they fail, the daemon stays released and
    /// says why in `status`.
    async fn reopen_if_free(&self) -> Result<(), Error> {
        let (store, data_dir) = (&self.store, self.data_dir.as_path());
        let _exclusive = self.gate.write().await;
        if self.state() != State::Released || !lock(&self.leases).is_empty() {
            return Ok(());
        }
        let changed = layout::fingerprint(data_dir) != *lock(&self.fingerprint);
        let reopened = if changed {
            tracing::warn!(
                "the data directory changed while released; verifying it before serving"
            );
            store.reopen_verified().await
        } else {
            store.reopen().await
        };
        if let Err(e) = reopened {
            let problem = format!("cannot resume: {e}");
            tracing::error!("{problem}");
            *lock(&self.problem) = Some(problem);
            return Err(Error::Storage(e));
        }
        *lock(&self.problem) = None;
        self.set_state(State::Serving);
        tracing::info!(verified = changed, "resumed");
        Ok(())
    }

    fn new_lease_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let seed = format!("{}-{}-{n}", std::process::id(), unix_millis());
        let digest = Sha256::digest(seed.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("lease-{hex}")
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
