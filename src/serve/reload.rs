//! Reloading the served folder while serving: on SIGHUP, and when an apply of the folder's
//! workspace finishes.
//!
//! What the handlers read (the registry index, the devfile tree's view, the OCI layout's
//! index and manifests) is one [`App`], loaded whole and swapped whole behind an `Arc`
//! ([`Snapshot`]). A request takes the `Arc` current when it starts and keeps it to its end,
//! so a request in flight finishes on the snapshot it started with, and no request ever sees
//! a new index with an old layout. A reload that fails (a folder being rewritten, an invalid
//! index, a manifest of the layout missing) keeps the old snapshot and prints one warning.
//!
//! Files are opened when a request needs them, not held by the snapshot. A download that has
//! started keeps its open file, so it completes with the right bytes even if a later apply or
//! `airgap prune` removes or replaces that file. A request on the old snapshot that opens a file
//! removed in the meantime answers `404`, as for any missing file.
//!
//! The trigger is `.airgap/state.json` of the workspace whose `dir:` target is served: an
//! apply rewrites it (temp file + rename) once, after every output of the run is in place, and
//! so does `airgap prune`. It is polled each second by inode, size and mtime — simpler and more
//! portable than inotify, and a second is quick enough for a registry that changes by apply.
//! While an apply is under way its journal (`state.journal`) is newer than the state file;
//! a change seen then, or during the load, is retried at the next poll rather than swapped in,
//! so the reload sees the folder as the apply left it. A folder served without its manifest
//! (copied elsewhere, `airgap serve DIR` without a workspace) reloads on SIGHUP only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::App;

/// How often the watched file is looked at.
const POLL: Duration = Duration::from_secs(1);

/// The served data, swapped whole.
pub(super) struct Snapshot {
    dir: PathBuf,
    current: RwLock<Arc<App>>,
}

impl Snapshot {
    pub(super) fn new(dir: PathBuf, app: App) -> Snapshot {
        Snapshot {
            dir,
            current: RwLock::new(Arc::new(app)),
        }
    }

    /// The snapshot a request starting now uses.
    pub(super) fn current(&self) -> Arc<App> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, app: App) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(app);
    }
}

/// What a file is on disk, enough to tell that it was rewritten.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    size: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            inode: inode(&meta),
            size: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// The state file of the served folder's workspace, and what it was when last loaded.
pub struct Watch {
    state: PathBuf,
    seen: Option<Stamp>,
    /// The change last put off because an apply was running (said once per change).
    deferred: Option<Option<Stamp>>,
}

impl Watch {
    /// Watches `state` (a workspace's `state.json`); call it before loading the folder, so a
    /// change during the first load is not missed.
    pub fn new(state: PathBuf) -> Watch {
        let seen = Stamp::of(&state);
        Watch {
            state,
            seen,
            deferred: None,
        }
    }

    /// The journal an apply appends to while it runs, beside the state file.
    fn journal(&self) -> PathBuf {
        self.state.with_file_name("state.journal")
    }

    /// True while an apply is under way: its journal exists and is not older than the state
    /// file. (A journal left by a killed apply is older than the state a later prune writes.)
    fn apply_running(&self) -> bool {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        match (modified(&self.journal()), modified(&self.state)) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(journal), Some(state)) => journal >= state,
        }
    }
}

/// Reloads `snapshot` on each SIGHUP and, with `watch`, when its state file changes; never
/// returns (the server drops it when it stops).
pub(super) async fn reloads(
    snapshot: Arc<Snapshot>,
    mut watch: Option<Watch>,
    mut hangups: Hangups,
) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = hangups.next() => swap_or_warn(&snapshot, load(&snapshot).await),
            _ = tick.tick(), if watch.is_some() => {
                if let Some(w) = watch.as_mut() {
                    after_apply(&snapshot, w).await;
                }
            }
        }
    }
}

/// SIGHUPs received (none where there are no signals).
///
/// SIGHUP also means "your terminal went away": the kernel sends it when the terminal `serve`
/// runs in is closed. Then the process has lost its controlling terminal (`/dev/tty` no longer
/// opens), and it exits as SIGHUP's default action would have, rather than serving on unseen.
pub(super) struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
    /// Whether the process had a controlling terminal at start.
    terminal: bool,
}

impl Hangups {
    /// Takes SIGHUP over from its default action (ending the process): call it before the
    /// server says it listens, so a SIGHUP sent from then on reloads.
    pub(super) fn new() -> Hangups {
        Hangups {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
            terminal: has_terminal(),
        }
    }

    /// Completes at the next SIGHUP; never when it cannot be received.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.signal.as_mut()
            && signal.recv().await.is_some()
        {
            if self.terminal && !has_terminal() {
                std::process::exit(128 + 1);
            }
            return;
        }
        std::future::pending::<()>().await;
    }
}

fn has_terminal() -> bool {
    cfg!(unix) && std::fs::File::open("/dev/tty").is_ok()
}

/// Reloads when the state file changed and the apply that changed it is over.
async fn after_apply(snapshot: &Snapshot, watch: &mut Watch) {
    let before = Stamp::of(&watch.state);
    if before == watch.seen {
        return;
    }
    if watch.apply_running() {
        if watch.deferred.as_ref() != Some(&before) {
            eprintln!("the folder changed while an apply runs: reloading when it finishes");
            watch.deferred = Some(before);
        }
        return;
    }
    let loaded = load(snapshot).await;
    // A new apply began while loading: what was read may be half of it; try again later.
    if Stamp::of(&watch.state) != before || watch.apply_running() {
        return;
    }
    watch.seen = before;
    swap_or_warn(snapshot, loaded);
}

/// Loads the folder again; the error's words when it does not load.
async fn load(snapshot: &Snapshot) -> Result<App, String> {
    let dir = snapshot.dir.clone();
    match tokio::task::spawn_blocking(move || super::load(&dir)).await {
        Ok(Ok((app, _))) => Ok(app),
        Ok(Err(e)) => {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why.push_str(&format!(": {s}"));
                source = s.source();
            }
            Err(why)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Serves `loaded` from now on, or says in one warning why the previous contents stay.
fn swap_or_warn(snapshot: &Snapshot, loaded: Result<App, String>) {
    match loaded {
        Ok(app) => {
            let (stacks, images) = app.counts();
            snapshot.replace(app);
            eprintln!("reloaded: {stacks} stacks, {images} images");
        }
        Err(why) => crate::ui::status(
            "Warning",
            format!("not reloaded, still serving the previous contents: {why}"),
        ),
    }
}
