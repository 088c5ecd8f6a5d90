//! The thread a model runs on: a bounded queue of requests, served in batches.
//!
//! Every request waiting (up to [`QUEUE`]) is served at once, a round at a time: a round takes
//! texts in turn from each waiting request until it holds [`PASS_TOKENS`] tokens, so a
//! one-line query that arrives behind a thousand-document upsert rides in the very next
//! forward pass instead of waiting for the whole upsert. A request's texts are tokenized when
//! it arrives. Passes are packed (no padding, [`Model::embed_tokens`]), so neither sorting by
//! length nor like lengths in a pass matter, and a round is bounded by tokens rather than
//! texts: a round of short queries holds hundreds of them, which is what makes a batch of
//! queries cheap, and a round of texts cut at the window holds 32, as before. A request whose caller has gone
//! (its connection closed, the daemon stopping) is dropped before the next round, so abandoned
//! work costs at most the round in progress.
//!
//! The storage thread, the read threads and the release gate never wait for this thread: the
//! vectors of a request are computed before it enters any of them.

use super::{Model, ModelError, Tokens};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Tokens per forward pass: 32 texts of a 256-token window, sentence-transformers' default
/// `batch_size` for such texts. It bounds how long a query waits behind other work (one pass,
/// about 1.5 s for all-MiniLM-L6-v2 on two cores) and the pass's memory (its widest activation,
/// the intermediate layer, is 8,192 × 1,536 floats: 50 MB).
pub const PASS_TOKENS: usize = 32 * 256;

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

/// A request being served: its texts' tokens, the vectors so far.
struct Active {
    job: Job,
    tokens: Vec<Tokens>,
    next: usize,
    vectors: Vec<Vec<f32>>,
    done: usize,
    failed: Option<ModelError>,
}

impl Active {
    fn new(model: &Model, job: Job) -> Active {
        let texts: Vec<&str> = job.texts.iter().map(String::as_str).collect();
        let (tokens, failed) = match model.tokenize(&texts) {
            Ok(tokens) => (tokens, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let vectors = vec![Vec::new(); job.texts.len()];
        Active {
            job,
            tokens,
            next: 0,
            vectors,
            done: 0,
            failed,
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
                Ok(job) => active.push_back(Active::new(model, job)),
                Err(_) => return,
            }
        }
        active.extend(inbox.try_iter().map(|job| Active::new(model, job)));
        active.retain(|a| !a.job.reply.is_closed());

        // One round: texts in turn from each request, up to PASS_TOKENS tokens (at least one
        // text, whatever its length).
        let mut picks: Vec<(usize, usize)> = Vec::new();
        let mut tokens = 0;
        'fill: loop {
            let before = picks.len();
            for (j, a) in active.iter_mut().enumerate() {
                if a.failed.is_some() || a.next == a.tokens.len() {
                    continue;
                }
                let i = a.next;
                let len = a.tokens[i].len();
                if !picks.is_empty() && tokens + len > PASS_TOKENS {
                    break 'fill;
                }
                picks.push((j, i));
                tokens += len;
                a.next += 1;
            }
            if picks.len() == before {
                break;
            }
        }
        if !picks.is_empty() {
            let texts: Vec<&Tokens> = picks.iter().map(|&(j, i)| &active[j].tokens[i]).collect();
            match model.embed_tokens(&texts) {
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
