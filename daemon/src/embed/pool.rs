//! The thread a model runs on: a bounded queue of requests, served in batches.
//!
//! Every request waiting (up to [`QUEUE`]) is served at once, a round at a time: a round takes
//! up to [`BATCH`] texts in turn from each waiting request, so a one-line query that arrives
//! behind a thousand-document upsert rides in the very next forward pass instead of waiting
//! for the whole upsert. Within a request, texts go longest first (as sentence-transformers
//! sorts them), so the texts of one pass have similar lengths and little padding. A request
//! whose caller has gone (its connection closed, the daemon stopping) is dropped before the
//! next round, so abandoned work costs at most the round in progress.
//!
//! The storage thread, the read threads and the release gate never wait for this thread: the
//! vectors of a request are computed before it enters any of them.

use super::ModelError;
use super::model::Model;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Texts per forward pass (sentence-transformers' default `batch_size`).
pub const BATCH: usize = 32;

/// Requests that may wait for the model; more are refused with `busy`.
pub const QUEUE: usize = 256;

/// Why a request got no vectors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// The queue (256 requests) is full.
    #[error("{QUEUE} requests are waiting for model `{0}`; retry later")]
    Full(String),
    /// The model failed on this request's texts.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model's thread has stopped (it panicked).
    #[error("the thread of model `{0}` has stopped")]
    Stopped(String),
}

/// The queue to one model's thread. Cloning is cheap; the thread ends when the last clone is
/// dropped and no request is left.
#[derive(Clone)]
pub struct Pool {
    name: Arc<str>,
    jobs: Sender<Job>,
}

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, ModelError>>,
}

impl Pool {
    /// Starts the thread of `model`, called `name` in messages.
    pub fn start(name: &str, model: Arc<Model>) -> std::io::Result<Pool> {
        let (jobs, inbox) = crossbeam_channel::bounded(QUEUE);
        std::thread::Builder::new()
            .name(format!("ctxd-embed-{name}"))
            .spawn(move || serve(&model, &inbox))?;
        Ok(Pool {
            name: name.into(),
            jobs,
        })
    }

    /// The vectors of `texts`, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, PoolError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send(Job { texts, reply })
            .map_err(|e| match e {
                TrySendError::Full(_) => PoolError::Full(self.name.to_string()),
                TrySendError::Disconnected(_) => PoolError::Stopped(self.name.to_string()),
            })?;
        match answer.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(PoolError::Stopped(self.name.to_string())),
        }
    }
}

/// A request being served: its texts longest first, the vectors so far.
struct Active {
    job: Job,
    order: Vec<usize>,
    next: usize,
    vectors: Vec<Vec<f32>>,
    done: usize,
    failed: Option<ModelError>,
}

impl Active {
    fn new(job: Job) -> Active {
        let mut order: Vec<usize> = (0..job.texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(job.texts[i].len()));
        let vectors = vec![Vec::new(); job.texts.len()];
        Active {
            job,
            order,
            next: 0,
            vectors,
            done: 0,
            failed: None,
        }
    }

    fn finished(&self) -> bool {
        self.failed.is_some() || self.done == self.job.texts.len()
    }
}

fn serve(model: &Model, inbox: &Receiver<Job>) {
    let mut active: VecDeque<Active> = VecDeque::new();
    loop {
        if active.is_empty() {
            match inbox.recv() {
                Ok(job) => active.push_back(Active::new(job)),
                Err(_) => return,
            }
        }
        active.extend(inbox.try_iter().map(Active::new));
        active.retain(|a| !a.job.reply.is_closed());

        // One round: texts in turn from each request, up to BATCH.
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(BATCH);
        'fill: loop {
            let before = picks.len();
            for (j, a) in active.iter_mut().enumerate() {
                if picks.len() == BATCH {
                    break 'fill;
                }
                if a.next < a.order.len() {
                    picks.push((j, a.order[a.next]));
                    a.next += 1;
                }
            }
            if picks.len() == before {
                break;
            }
        }
        if !picks.is_empty() {
            let texts: Vec<&str> = picks
                .iter()
                .map(|&(j, i)| active[j].job.texts[i].as_str())
                .collect();
            match model.embed(&texts) {
                Ok(vectors) => {
                    for (&(j, i), vector) in picks.iter().zip(vectors) {
                        active[j].vectors[i] = vector;
                        active[j].done += 1;
                    }
                }
                Err(e) => {
                    for &(j, _) in &picks {
                        active[j].failed.get_or_insert_with(|| e.clone());
                    }
                }
            }
        }

        // Answer the requests that are complete (or failed); keep the order of the rest.
        let mut rest = VecDeque::with_capacity(active.len());
        for a in active.drain(..) {
            if a.finished() {
                let result = match a.failed {
                    Some(e) => Err(e),
                    None => Ok(a.vectors),
                };
                let _ = a.job.reply.send(result);
            } else {
                rest.push_back(a);
            }
        }
        active = rest;
    }
}
