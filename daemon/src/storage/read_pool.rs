//! The read pool: a fixed set of threads that run reads, fed by a bounded queue.
//!
//! Reads once ran on tokio's blocking pool, one thread per read in flight: a thousand
//! simultaneous searches made 519 threads, a thousand LMDB read transactions (beyond LMDB's
//! reader table) and a SQLite connection each (beyond the open-file limit). Now at most
//! `threads` reads run at once; up to `queue` more wait their turn in arrival order, and a read
//! beyond those is refused at once with `busy` and a hint, so no read ever fails on a resource
//! the daemon ran out of. The threads start with the store and live as long as it.

use super::StorageError;
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::oneshot;

/// Reads waiting for a thread, by default: a burst of a thousand simultaneous reads (one per
/// connection, up to the default connection cap) queues rather than failing.
pub const DEFAULT_QUEUE: usize = 1024;

/// The most read threads: LMDB's reader table (`vectors::MAX_READERS`) is sized for this.
pub const MAX_THREADS: usize = 64;

/// Read threads by default: four per core, at least four. Reads are mostly CPU (scans, bm25)
/// with some waiting on the page cache, so a few per core keep the cores busy; more would only
/// compete for them.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (4 * cores).clamp(4, MAX_THREADS)
}

type Job = Box<dyn FnOnce() + Send>;

/// The pool's handle: cheap to clone; the threads end when the last handle is dropped.
#[derive(Clone)]
pub struct ReadPool {
    jobs: Sender<Job>,
    threads: usize,
    queue: usize,
    /// Reads running or waiting, for the refusal's message.
    in_flight: Arc<AtomicUsize>,
}

impl ReadPool {
    /// Starts `threads` (1–[`MAX_THREADS`]) read threads with room for `queue` waiting reads.
    pub fn start(threads: usize, queue: usize) -> Result<ReadPool, StorageError> {
        let threads = threads.clamp(1, MAX_THREADS);
        // A multi-consumer queue, not one `Receiver` behind a mutex: with the mutex, every job
        // woke two threads (the one holding the lock in `recv`, then the next waiter for the
        // lock), and on a small machine those wake-ups were most of a small read's cost.
        let (jobs, receiver) = bounded::<Job>(queue);
        for n in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("ctxd-read-{n}"))
                .spawn(move || work(&receiver))
                .map_err(StorageError::io("cannot start a read thread", "."))?;
        }
        Ok(ReadPool {
            jobs,
            threads,
            queue,
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Runs `read` on a read thread and returns its result; `busy` when every thread is busy
    /// and the queue is full. A panicking read is an error, and the thread goes on.
    pub async fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        self.submit(read)?.await.map_err(|_| StorageError::Closed)?
    }

    /// Queues `read` (or refuses it with `busy`); the receiver gets its result.
    fn submit<T: Send + 'static>(
        &self,
        read: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T, StorageError>>, StorageError> {
        let (reply, answer) = oneshot::channel();
        let in_flight = Arc::clone(&self.in_flight);
        let job: Job = Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(read))
                .unwrap_or_else(|_| Err(StorageError::Corrupt("a read panicked".to_owned())));
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let _ = reply.send(result);
        });
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(job) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => {
                self.in_flight.fetch_sub(1, Ordering::Relaxed);
                Err(StorageError::Busy(format!(
                    "{before} reads are running or waiting, the most this daemon takes ({} read \
                     threads and a queue of {}: --read-threads, --read-queue); retry in a \
                     moment, or send fewer reads at once",
                    self.threads, self.queue
                )))
            }
            Err(TrySendError::Disconnected(_)) => {
                self.in_flight.fetch_sub(1, Ordering::Relaxed);
                Err(StorageError::Closed)
            }
        }
    }
}

/// A read thread: runs jobs until the pool's last handle is gone.
fn work(receiver: &Receiver<Job>) {
    while let Ok(job) = receiver.recv() {
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[tokio::test]
    async fn reads_beyond_the_threads_and_the_queue_are_busy() {
        let pool = ReadPool::start(1, 1).expect("start");
        let (started, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let (s, r) = (Arc::clone(&started), Arc::clone(&release));
        let running = pool
            .submit(move || {
                s.wait();
                r.wait();
                Ok(1)
            })
            .expect("the first runs");
        started.wait();
        // The thread is busy: the next waits in the queue, the one after is refused.
        let queued = pool.submit(|| Ok(2)).expect("the second waits");
        let refused = pool.submit(|| Ok(3));
        assert!(matches!(refused, Err(StorageError::Busy(ref m)) if m.contains("retry")));
        release.wait();
        assert_eq!(running.await.expect("answered").expect("read"), 1);
        assert_eq!(queued.await.expect("answered").expect("read"), 2);
        let panicked = pool.run::<()>(|| panic!("a bug")).await;
        assert!(matches!(panicked, Err(StorageError::Corrupt(_))));
        assert_eq!(pool.run(|| Ok(4)).await.expect("the thread lives on"), 4);
    }
}
