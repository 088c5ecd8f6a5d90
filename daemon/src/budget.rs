//! The daemon-wide budget of request bytes in memory, so many large requests queue instead of
//! multiplying.
//!
//! A request line up to [`FREE_BYTES`] costs nothing (searches, small writes: almost every
//! request). A longer one must reserve its bytes from the budget as it arrives, and keeps them
//! until the request has been executed: its line, then what the line was decoded into, stay
//! within a small multiple of the reservation. When the budget is spent the connection is not
//! read further (its client's writes wait in the socket), until running requests give theirs
//! back.
//!
//! Only one line grows its reservation at a time (the *grower* lock). Without it, two lines
//! could each hold half the budget and wait forever for the other half; with it, the grower
//! waits only for requests that are already complete, which finish without it. Lines arrive
//! over a local socket far faster than they execute, so taking turns to arrive costs nothing
//! measurable.

use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

/// Bytes of one line a connection may hold without a reservation: a search with a 4096-dim
/// vector is ~80 KiB of JSON, so ordinary requests never wait for the budget. Bounds what a
/// partial line of every connection together can hold at `--max-connections` × this.
pub const FREE_BYTES: usize = 256 * 1024;

/// The budget: at least one maximum-size line, by default two.
pub struct DecodeBudget {
    bytes: Arc<Semaphore>,
    grower: Arc<Mutex<()>>,
    total: usize,
}

impl DecodeBudget {
    /// A budget of `total` bytes (at least `max_frame` plus the free part, so any line that
    /// the frame limit admits can be reserved).
    pub fn new(total: usize, max_frame: usize) -> DecodeBudget {
        let total = total
            .max(max_frame + FREE_BYTES)
            .min(Semaphore::MAX_PERMITS);
        DecodeBudget {
            bytes: Arc::new(Semaphore::new(total)),
            grower: Arc::new(Mutex::new(())),
            total,
        }
    }

    /// The default for a frame limit: two maximum-size lines.
    pub fn for_frame(max_frame: usize) -> DecodeBudget {
        DecodeBudget::new(2 * max_frame, max_frame)
    }

    /// The budget's size in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes reserved now (for `status`-like reporting and tests).
    #[allow(dead_code, reason = "read by the unit tests")]
    pub fn reserved(&self) -> usize {
        self.total - self.bytes.available_permits()
    }
}

/// The reservation of one line: grows with the line, and is given back when dropped (after the
/// request was executed).
#[derive(Default)]
pub struct Reservation {
    permits: Option<OwnedSemaphorePermit>,
    /// Held while the line is still arriving.
    growing: Option<OwnedMutexGuard<()>>,
}

impl Reservation {
    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.permits
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Makes the reservation cover `bytes`, waiting for the grower turn and for the budget.
    pub async fn grow_to(&mut self, budget: &DecodeBudget, bytes: usize) {
        if self.growing.is_none() {
            self.growing = Some(Arc::clone(&budget.grower).lock_owned().await);
        }
        let more = bytes.saturating_sub(self.bytes());
        if more == 0 {
            return;
        }
        // The budget admits any line up to the frame limit, and the caller never asks for more
        // than that, so this waits only for requests that are already complete.
        let more = u32::try_from(more.min(budget.total)).unwrap_or(u32::MAX);
        let Ok(permit) = Arc::clone(&budget.bytes).acquire_many_owned(more).await else {
            return; // The semaphore is never closed.
        };
        match &mut self.permits {
            Some(held) => held.merge(permit),
            None => self.permits = Some(permit),
        }
    }

    /// The line is complete: another line may grow now; the bytes stay reserved.
    pub fn arrived(&mut self) {
        self.growing = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_the_budget_and_give_it_back() {
        let budget = DecodeBudget::new(1000, 400);
        assert_eq!(budget.total(), 400 + FREE_BYTES);
        let budget = DecodeBudget::new(2 * FREE_BYTES, 1000);
        let mut first = Reservation::default();
        first.grow_to(&budget, FREE_BYTES).await;
        first.arrived();
        let mut second = Reservation::default();
        second.grow_to(&budget, FREE_BYTES).await;
        assert_eq!(budget.reserved(), 2 * FREE_BYTES);
        // A third waits until one of the others is given back.
        let mut third = Reservation::default();
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            third.grow_to(&budget, 10),
        )
        .await;
        assert!(waiting.is_err(), "the budget is spent");
        drop(first);
        second.arrived();
        let mut third = Reservation::default();
        third.grow_to(&budget, FREE_BYTES).await;
        assert_eq!(third.bytes(), FREE_BYTES);
        drop((second, third));
        assert_eq!(budget.reserved(), 0);
    }
}
