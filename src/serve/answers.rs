//! Index answers to queries with filters, computed once per snapshot.
//!
//! The unfiltered index bodies are serialised when the folder is loaded ([`super::registry`]).
//! A query with filters (`?arch=amd64`, `?minSchemaVersion=2.2.0`, `?icon=base64`…) needs the
//! entries filtered and serialised again, which costs time and memory in proportion to the
//! whole index. Clients repeat the same few queries (registry-library sends its architecture
//! and schema-version filters with every listing), so each answer is kept, keyed by the
//! endpoint and the query pairs as sent, for as long as the snapshot is served: a reload
//! builds a new [`Answers`] with the new registry, so nothing is ever stale.
//!
//! The first request of a query computes its answer while later ones wait for it (one
//! computation, not one per waiting client: 64 clients arriving together would otherwise
//! filter 64 copies of the index at once). Callers run this on the blocking pool.
//!
//! Bounds: at most [`MAX_ANSWERS`] queries and [`MAX_BYTES`] of bodies are kept. Past either,
//! an answer is computed for its request only, one such computation at a time, so a client
//! sending endless distinct queries costs CPU but neither memory nor parallel copies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::body::Bytes;
use axum::http::StatusCode;

/// Queries whose answers are kept, per snapshot.
pub const MAX_ANSWERS: usize = 256;
/// Bytes of kept bodies, per snapshot.
pub const MAX_BYTES: usize = 64 << 20;

/// An index endpoint's answer: its status and its JSON body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// What identifies an answer: the endpoint and the query pairs in the order sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub v1: bool,
    pub index_type: String,
    pub pairs: Vec<(String, String)>,
}

/// The answers of one snapshot.
#[derive(Debug, Default)]
pub struct Answers {
    kept: Mutex<HashMap<Key, Arc<OnceLock<Answer>>>>,
    bytes: AtomicUsize,
    /// Serialises the computations that are not kept.
    uncached: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Answers {
    /// The answer for `key`: kept, or computed by `compute` (once, while the bounds allow
    /// keeping it). Blocks while another thread computes the same answer.
    pub fn get_or_compute(&self, key: Key, compute: impl FnOnce() -> Answer) -> Answer {
        let cell = {
            let mut kept = lock(&self.kept);
            match kept.get(&key) {
                Some(cell) => Some(cell.clone()),
                None if kept.len() < MAX_ANSWERS
                    && self.bytes.load(Ordering::Relaxed) < MAX_BYTES =>
                {
                    let cell = Arc::new(OnceLock::new());
                    kept.insert(key, cell.clone());
                    Some(cell)
                }
                None => None,
            }
        };
        match cell {
            Some(cell) => cell
                .get_or_init(|| {
                    let answer = compute();
                    self.bytes.fetch_add(answer.body.len(), Ordering::Relaxed);
                    answer
                })
                .clone(),
            None => {
                let _one_at_a_time = lock(&self.uncached);
                compute()
            }
        }
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        lock(&self.kept).len()
    }

    /// Whether no answer is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> Key {
        Key {
            v1: false,
            index_type: "stack".into(),
            pairs: vec![("name".into(), n.to_string())],
        }
    }

    fn answer(body: &'static str) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn an_answer_is_computed_once_and_kept() {
        let answers = Answers::default();
        let first = answers.get_or_compute(key(1), || answer("[1]"));
        let again = answers.get_or_compute(key(1), || panic!("computed twice"));
        assert_eq!(first.body, again.body);
        assert_eq!(answers.len(), 1);
    }

    #[test]
    fn clients_asking_together_share_one_computation() {
        use std::sync::atomic::AtomicUsize;
        let answers = Answers::default();
        let computed = AtomicUsize::new(0);
        let together = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    together.wait();
                    answers.get_or_compute(key(7), || {
                        computed.fetch_add(1, Ordering::SeqCst);
                        answer("[7]")
                    })
                });
            }
        });
        assert_eq!(computed.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn past_the_bound_answers_are_computed_but_not_kept() {
        let answers = Answers::default();
        for n in 0..MAX_ANSWERS + 10 {
            let got = answers.get_or_compute(key(n), || answer("[]"));
            assert_eq!(got.body, "[]");
        }
        assert_eq!(answers.len(), MAX_ANSWERS);
        let mut computed = false;
        answers.get_or_compute(key(MAX_ANSWERS + 5), || {
            computed = true;
            answer("[]")
        });
        assert!(computed, "an answer past the bound is not kept");
    }
}
