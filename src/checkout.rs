//! The one way to a git commit's files: [`Checkouts`] owns the cache of bare repositories
//! ([`GitCache`]), the `url-mirror` rules and a lock per remote, and offers
//! "make sure this commit is here" ([`Checkouts::ensure`]) and "read the files at it"
//! ([`Checkouts::read_at`]).
//!
//! Every caller used to spell the same four steps — take the remote's lock, apply the mirror
//! rules, fetch the commit into the cache when it is missing, open a reader at it — and it is
//! easy to forget one (the lock, say). Here they happen in that order, always:
//!
//! - The lock is per remote *as written* (the cache's key), held from before the fetch until
//!   the reader's work is done, so two tasks never fetch into one cache repository at once and
//!   nobody reads a repository half-way through a fetch.
//! - libgit2 blocks: the fetch and the reader's work run on tokio's blocking pool, never on
//!   the async threads.
//! - Errors say which of the steps failed ([`CheckoutError`]), so a caller can word each as
//!   it always has.
//!
//! `ls-remote` (resolution, `airgap lock`) is here too: it goes through the same mirror rules,
//! and its answer is kept for the service's lifetime (one round trip per fetch URL per run).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use git2::Oid;

use crate::git::{self, CommitReader, GitCache, GitError, RemoteRefs};
use crate::url_mirror::{UrlMirror, mirror_url};

/// Why a commit's files could not be reached, by the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The commit is not a commit id (a lock edited by hand).
    #[error("{source}")]
    BadCommit {
        commit: String,
        #[source]
        source: git2::Error,
    },
    /// The commit could not be fetched into the cache.
    #[error(transparent)]
    Fetch(GitError),
    /// The commit is in the cache but its tree could not be opened.
    #[error(transparent)]
    Read(GitError),
    /// The blocking task panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// One `ls-remote` per fetch URL, shared by everything that resolves against the remote.
type LsRemoteCell = tokio::sync::OnceCell<Result<RemoteRefs, String>>;

/// The git cache, the mirror rules and the per-remote locks of one run. Cheap to clone: the
/// clones share the locks.
#[derive(Debug, Clone)]
pub struct Checkouts {
    cache: GitCache,
    mirrors: Arc<Vec<UrlMirror>>,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    ls_memo: Arc<Mutex<HashMap<String, Arc<LsRemoteCell>>>>,
}

impl Checkouts {
    pub fn new(cache: GitCache, mirrors: Vec<UrlMirror>) -> Self {
        Self {
            cache,
            mirrors: Arc::new(mirrors),
            locks: Default::default(),
            ls_memo: Default::default(),
        }
    }

    /// Where a remote is fetched from: its URL after the `url-mirror` rules.
    pub fn fetch_url(&self, url: &str) -> String {
        mirror_url(&self.mirrors, url)
    }

    /// The lock of a remote (as written): two tasks never fetch into one cache repository at
    /// once.
    pub fn lock(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(url.to_string()).or_default().clone()
    }

    /// Makes sure `commit` of `url` is in the cache, fetching it when it is not.
    pub async fn ensure(&self, url: &str, commit: &str) -> Result<(), CheckoutError> {
        self.read_at(url, commit, |_| Ok::<_, std::convert::Infallible>(()))
            .await
            .map(|_| ())
    }

    /// Runs `f` on the files of `commit` of `url` (fetched into the cache when missing), on the
    /// blocking pool, holding the remote's lock. The outer error is the checkout's; the inner
    /// result is `f`'s.
    pub async fn read_at<T, E>(
        &self,
        url: &str,
        commit: &str,
        f: impl FnOnce(CommitReader<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<Result<T, E>, CheckoutError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let lock = self.lock(url);
        let _held = lock.lock().await;
        let cache = self.cache.clone();
        let url = url.to_string();
        let fetch_url = self.fetch_url(&url);
        let commit = commit.to_string();
        tokio::task::spawn_blocking(move || {
            let oid = Oid::from_str(&commit)
                .map_err(|source| CheckoutError::BadCommit { commit, source })?;
            let repo = cache
                .ensure_commit(&url, &fetch_url, oid)
                .map_err(CheckoutError::Fetch)?;
            let reader = CommitReader::new(&repo, oid).map_err(CheckoutError::Read)?;
            Ok(f(reader))
        })
        .await?
    }

    /// A remote's refs (`git ls-remote`, through the mirror rules), asked once per fetch URL
    /// for the service's lifetime. The error is worded for a person, naming the mirror used.
    pub async fn ls_remote(&self, url: &str) -> Result<RemoteRefs, String> {
        let fetch_url = self.fetch_url(url);
        let cell = {
            let mut memo = self.ls_memo.lock().unwrap_or_else(|e| e.into_inner());
            memo.entry(fetch_url.clone()).or_default().clone()
        };
        let shown = url.to_string();
        let credentials = self.cache.credentials().clone();
        cell.get_or_init(|| async move {
            tokio::task::spawn_blocking(move || {
                git::ls_remote(&fetch_url, &shown, &credentials)
                    .map_err(|e| describe(&e, &fetch_url, &shown))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
        })
        .await
        .clone()
    }
}

/// A git error, naming the mirror it was fetched from when there was one.
fn describe(e: &GitError, fetch_url: &str, shown: &str) -> String {
    if fetch_url != shown {
        format!("{e} (fetched from `{fetch_url}`)")
    } else {
        e.to_string()
    }
}
