//! The workspace: the folder a manifest sits in, with `airgap.lock` beside it and `.airgap/`
//! (caches, step state, the apply lock) under it. Every command works over one.
//!
//! [`Workspace`] knows where things are and reads and writes them: the lock
//! ([`Workspace::read_lock`], [`Workspace::write_lock`]), the step state ([`load_state`]), the
//! exclusive lock an apply holds ([`Workspace::acquire`]). [`runtime`] builds the async runtime
//! the commands that copy and build share.
//!
//! It sits below the commands and above the model: it reads the lockfile and the state, and
//! the engine ([`crate::context::Ctx`]) carries one for its caches; resolution
//! ([`crate::lock::resolve`]) is handed its caches ([`Workspace::caches`]) rather than
//! reaching up for them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{IoError, Report};
use crate::git::GitCache;
use crate::lock::{self, Lockfile};
use crate::manifest::Manifest;
use crate::state::State;

/// Where a manifest's workspace keeps its lock, caches and state.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// `.airgap/` beside the manifest: caches, step state, the apply lock.
    pub root: PathBuf,
    /// The folder of the manifest, where `airgap.lock` is.
    pub manifest_root: PathBuf,
    /// The manifest's URL credentials, for git fetches.
    pub credentials: crate::userinfo::UrlCredentials,
}

impl Workspace {
    pub fn new(manifest: &Manifest) -> Self {
        Self {
            root: manifest.root.join(".airgap"),
            manifest_root: manifest.root.clone(),
            credentials: manifest.url_credentials.clone(),
        }
    }

    pub fn git_cache(&self) -> GitCache {
        GitCache::new(
            self.root.join("cache").join("git"),
            self.credentials.clone(),
        )
    }

    pub fn files_cache(&self) -> PathBuf {
        self.root.join("cache").join("files")
    }

    /// The caches resolution fetches into.
    pub fn caches(&self) -> lock::resolve::Caches {
        lock::resolve::Caches {
            git: self.git_cache(),
            files: self.files_cache(),
        }
    }

    /// `airgap.lock`, beside the manifest.
    pub fn lock_path(&self) -> PathBuf {
        self.manifest_root.join(lock::FILE_NAME)
    }

    /// Reads the lockfile next to the manifest, `None` when there is none.
    pub fn read_lock(&self) -> Result<Option<Lockfile>, Report> {
        Ok(self.read_lock_and_text()?.map(|(lock, _)| lock))
    }

    /// The lockfile next to the manifest with its text, `None` when there is none.
    pub fn read_lock_and_text(&self) -> Result<Option<(Lockfile, String)>, Report> {
        use crate::kdl_text::{ReadError, TooLarge};
        let path = self.lock_path();
        match crate::kdl_text::read_limited(&path, lock::MAX_SIZE) {
            Ok(text) => lock::cache::read(lock::FILE_NAME, &text, &self.lock_cache_path())
                .map(|lock| Some((lock, text)))
                .map_err(|e| Box::new(e) as Report),
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(ReadError::Io(e)) => Err(IoError::report(
                format!("cannot read `{}`", path.display()),
                e,
            )),
            Err(ReadError::TooLarge) => Err(Box::new(TooLarge {
                path,
                limit: lock::MAX_SIZE,
                what: "lockfile",
            })),
        }
    }

    /// The parse cache of the lockfile ([`lock::cache`]).
    pub fn lock_cache_path(&self) -> PathBuf {
        self.root.join(lock::cache::FILE_NAME)
    }

    /// Writes `text` (a lockfile, as [`lock::write`] makes it) as `airgap.lock`, whole.
    pub fn write_lock(&self, text: &str) -> Result<(), Report> {
        let path = self.lock_path();
        crate::fetch::write_atomic(&path, text.as_bytes())
            .map_err(|e| IoError::report(format!("cannot write `{}`", path.display()), e))
    }

    /// Where [`crate::commands::lock::satisfied_lock`] records that the lock satisfied the
    /// manifest (a stamp of both texts and of this build).
    pub fn satisfied_stamp_path(&self) -> PathBuf {
        self.root.join("lock-satisfied")
    }

    /// Takes the workspace's exclusive lock, for the whole apply.
    pub fn acquire(&self) -> Result<WorkspaceLock, Report> {
        WorkspaceLock::acquire(&self.root)
    }
}

/// Loads the step state kept in `dir` (the workspace's, or a bundle's).
pub fn load_state(dir: &Path) -> Result<State, Report> {
    State::load(dir).map_err(|e| Box::new(e) as Report)
}

/// The manifest at `path`, with its diagnostics as a [`Report`].
pub fn load_manifest(path: &Path) -> Result<Manifest, Report> {
    Manifest::load(path).map_err(|e| Box::new(e) as Report)
}

/// The async runtime of the commands that copy and build: `jobs` workers, 2 to 8.
pub fn runtime(jobs: usize) -> Result<tokio::runtime::Runtime, Report> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs.clamp(2, 8))
        .enable_all()
        .build()
        .map_err(|e| IoError::report("cannot start the async runtime", e))
}

/// An exclusive lock on a workspace, held for the whole apply ([`Workspace::acquire`]); it is
/// released when dropped. The file names its holder.
pub struct WorkspaceLock {
    _file: std::fs::File,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("another airgap apply holds this workspace ({holder})")]
#[diagnostic(
    code(airgap::apply::busy),
    help("wait for it to finish; two applies in one workspace would write the same files")
)]
pub struct Busy {
    pub holder: String,
}

impl WorkspaceLock {
    /// Takes the lock in `ws_root` (`.airgap/apply.lock`); see [`Workspace::acquire`].
    fn acquire(ws_root: &Path) -> Result<WorkspaceLock, Report> {
        std::fs::create_dir_all(ws_root)
            .map_err(|e| IoError::report(format!("cannot create `{}`", ws_root.display()), e))?;
        let path = ws_root.join("apply.lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| IoError::report(format!("cannot open `{}`", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = writeln!(
                    file,
                    "pid {} started at unix time {}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0)
                );
                Ok(WorkspaceLock { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "unknown process".into());
                Err(Box::new(Busy { holder }))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(IoError::report(
                format!("cannot lock `{}`", path.display()),
                e,
            )),
        }
    }
}
