//! `airgap lock`: resolve the manifest into `airgap.lock` (or, with `--check`, say what moved
//! upstream); and the lock the other commands start from ([`satisfied_lock`]).

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::error::{Report, UsageError};
use crate::lock::{self, Lockfile, resolve};
use crate::manifest::Manifest;
use crate::workspace::{Workspace, load_manifest, runtime};

/// `airgap lock [--update [NAME…]] [--locked] [--check] [--strict]`.
pub fn run(
    manifest_path: &Path,
    update: Option<&[String]>,
    locked: bool,
    check: bool,
    strict: bool,
    jobs: usize,
) -> Result<ExitCode, Report> {
    if locked && (update.is_some() || check) {
        return Err(Box::new(UsageError(format!(
            "`--locked` and `{}` contradict each other: --locked forbids changing the lock",
            if check { "--check" } else { "--update" }
        ))));
    }
    let m = load_manifest(manifest_path)?;
    let ws = Workspace::new(&m);
    let previous = ws.read_lock()?;
    let update = match update {
        None if check => resolve::Update::All,
        None => resolve::Update::Nothing,
        Some([]) => resolve::Update::All,
        Some(names) => resolve::Update::Names(names.iter().cloned().collect()),
    };
    let mode = if locked {
        resolve::Mode::Locked
    } else {
        resolve::Mode::Resolve
    };
    let rt = runtime(jobs)?;
    let (new, stats) = resolve::lock(&m, previous.as_ref(), &update, mode, jobs, ws.caches(), &rt)
        .map_err(|e| Box::new(e) as Report)?;
    // A first lock lists nothing: every entry would be new.
    let changes = previous
        .as_ref()
        .map(|p| lock::diff::diff(p, &new))
        .unwrap_or_default();
    crate::machine::set(
        "changes",
        changes
            .iter()
            .map(|c| serde_json::json!({"change": c.kind.verb(), "what": c.to_string()}))
            .collect::<Vec<_>>(),
    );
    let lacking = lock::platforms::lacking(&new);
    crate::machine::set("lacking_platforms", &lacking);
    if strict && !check && !lacking.is_empty() {
        return Err(Box::new(resolve::LockError::Platforms { lacking }));
    }
    for l in &lacking {
        crate::ui::status("Warning", l);
    }
    if check {
        return check_lock(previous.is_some(), &changes);
    }
    for c in &changes {
        crate::ui::status(c.kind.verb(), format!("{c}"));
    }
    let text = lock::write(&new);
    let old_text = std::fs::read_to_string(ws.lock_path()).ok();
    let changed = old_text.as_deref() != Some(text.as_str());
    let summary = format!(
        "{} stacks ({} devfiles), {} samples, {} starter projects, {} projects, {} images, {} icons and parents",
        stats.stacks,
        stats.devfiles,
        stats.samples,
        stats.starter_projects,
        stats.projects,
        stats.images,
        stats.downloads
    );
    crate::machine::set(
        "summary",
        serde_json::json!({
            "stacks": stats.stacks, "devfiles": stats.devfiles, "samples": stats.samples,
            "starter_projects": stats.starter_projects, "projects": stats.projects,
            "images": stats.images, "downloads": stats.downloads, "resolved": stats.resolved,
        }),
    );
    crate::machine::set("written", changed && !locked);
    if changed {
        if locked {
            // Resolution under --locked succeeded but the text differs (an older writer):
            // still refuse to write.
            return Err(Box::new(resolve::LockError::Unsatisfied {
                reasons: vec![resolve::Problem {
                    what: "airgap.lock".into(),
                    message: "its text differs from what this airgap writes".into(),
                }],
            }));
        }
        ws.write_lock(&text)?;
        stamp_resolved(&m, &ws, &text);
        crate::ui::status(
            "Locked",
            format!(
                "{summary}; {} resolved, airgap.lock written",
                stats.resolved
            ),
        );
    } else {
        stamp_resolved(&m, &ws, &text);
        crate::ui::status("Locked", format!("{summary}; airgap.lock unchanged"));
    }
    Ok(ExitCode::SUCCESS)
}

/// `airgap lock --check`: the changes on stdout, exit 1 when there are any.
fn check_lock(had_lock: bool, changes: &[lock::diff::Change]) -> Result<ExitCode, Report> {
    crate::machine::set("up_to_date", had_lock && changes.is_empty());
    let mut out = std::io::stdout().lock();
    for c in changes.iter().filter(|_| !crate::machine::json()) {
        let _ = writeln!(out, "{} {c}", c.kind.verb());
    }
    if !had_lock {
        crate::ui::status("Outdated", "there is no airgap.lock: run `airgap lock`");
        return Ok(ExitCode::from(1));
    }
    if changes.is_empty() {
        crate::ui::status("Checked", "airgap.lock is up to date with upstream");
        Ok(ExitCode::SUCCESS)
    } else {
        crate::ui::status(
            "Outdated",
            format!(
                "airgap.lock is behind upstream: {} {}; `airgap lock --update` takes {}",
                changes.len(),
                if changes.len() == 1 {
                    "change"
                } else {
                    "changes"
                },
                if changes.len() == 1 { "it" } else { "them" }
            ),
        );
        Ok(ExitCode::from(1))
    }
}

/// What to do with a lock that does not satisfy the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutdatedLock {
    /// Fail with the reasons (`--locked`).
    Fail,
    /// Resolve it and write it (`apply`, as `cargo build` does).
    Write,
    /// Resolve it in memory, print what would change, write nothing (`plan`, `apply
    /// --dry-run`: the moment a preview is most wanted).
    Preview,
}

/// The lock, checked against the manifest; resolved first when it does not satisfy it, as
/// `outdated` says. Resolution runs on the command's `rt`.
///
/// Checking means resolving under `--locked` (reading every devfile at its locked commit) and
/// comparing, the largest cost of a no-op `apply` or `plan`. So a success is stamped
/// ([`satisfaction_stamp`]): while the manifest, the lock and this build are the ones stamped,
/// the check is not repeated. A manifest with a folder source is always checked (a folder
/// changes without its lock entry changing).
pub fn satisfied_lock(
    m: &Manifest,
    ws: &Workspace,
    outdated: OutdatedLock,
    jobs: usize,
    rt: &tokio::runtime::Runtime,
) -> Result<Lockfile, Report> {
    let (previous, stamp) = match ws.read_lock_and_text()? {
        Some((lock, text)) => (Some(lock), satisfaction_stamp(m, &text)),
        None => (None, None),
    };
    let stamp_path = ws.satisfied_stamp_path();
    if let Some(stamp) = &stamp
        && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == *stamp)
        && let Some(previous) = previous
    {
        return Ok(previous);
    }
    let satisfied = match resolve::lock(
        m,
        previous.as_ref(),
        &resolve::Update::Nothing,
        resolve::Mode::Locked,
        jobs,
        ws.caches(),
        rt,
    ) {
        Ok((l, _)) if previous.as_ref() == Some(&l) => {
            if let Some(stamp) = &stamp {
                write_stamp(ws, stamp);
            }
            return Ok(l);
        }
        Ok(_) => Err(resolve::LockError::Unsatisfied {
            reasons: vec![resolve::Problem {
                what: "airgap.lock".into(),
                message: "differs from what the manifest resolves to".into(),
            }],
        }),
        Err(e @ resolve::LockError::Unsatisfied { .. }) => Err(e),
        Err(e) => return Err(Box::new(e)),
    };
    if outdated == OutdatedLock::Fail {
        return satisfied.map_err(|e| Box::new(e) as Report);
    }
    crate::ui::status(
        "Locking",
        format!(
            "airgap.lock does not satisfy the manifest: resolving it first{}",
            if outdated == OutdatedLock::Preview {
                " (in memory: nothing is written)"
            } else {
                ""
            }
        ),
    );
    let (new, _) = resolve::lock(
        m,
        previous.as_ref(),
        &resolve::Update::Nothing,
        resolve::Mode::Resolve,
        jobs,
        ws.caches(),
        rt,
    )
    .map_err(|e| Box::new(e) as Report)?;
    if let Some(previous) = &previous {
        for c in lock::diff::diff(previous, &new) {
            crate::ui::status(c.kind.verb(), format!("{c}"));
        }
    }
    if outdated == OutdatedLock::Write {
        let text = lock::write(&new);
        ws.write_lock(&text)?;
        stamp_resolved(m, ws, &text);
    }
    Ok(new)
}

/// Stamps a lock that resolution just wrote as satisfying the manifest (it does, being
/// resolved from it), so the next command does not check it again: a check reads every
/// devfile at its locked commit.
fn stamp_resolved(m: &Manifest, ws: &Workspace, lock_text: &str) {
    if let Some(stamp) = satisfaction_stamp(m, lock_text) {
        write_stamp(ws, &stamp);
    }
}

/// A cache: when it cannot be written, the next command checks again.
fn write_stamp(ws: &Workspace, stamp: &str) {
    let _ = std::fs::create_dir_all(&ws.root)
        .and_then(|()| crate::fetch::write_atomic(&ws.satisfied_stamp_path(), stamp.as_bytes()));
}

/// What [`satisfied_lock`] records after a successful check: a hash of everything the check
/// read that can change without the lock changing: this build of airgap (its path, size,
/// modification time), the manifest's folder and text, and the lock's text. (A git source's
/// content is named by the commit the lock pins; downloads and images by their digests.)
/// `None` when the manifest has a folder source, whose files are read as they are now.
fn satisfaction_stamp(m: &Manifest, lock_text: &str) -> Option<String> {
    if m.sources
        .iter()
        .any(|s| matches!(s.origin, crate::manifest::Origin::Path(_)))
    {
        return None;
    }
    crate::lock::cache::build_keyed_hash(
        b"airgap lock-satisfied 1\0",
        &[
            m.root.as_os_str().as_encoded_bytes(),
            m.src.inner().as_bytes(),
            lock_text.as_bytes(),
        ],
    )
}
