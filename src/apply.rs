//! `airgap plan` and `airgap apply`: the lock → the step graph → the target.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{Format, IoError, Report, load_manifest, lock_path, read_lock, runtime};
use crate::exec::{self, Ctx, Status};
use crate::lock::{self, Lockfile, resolve};
use crate::manifest::Manifest;
use crate::plan::{Output, Plan};
use crate::state::State;

/// An exclusive lock on a workspace, held for the whole apply. The file names its holder.
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
    pub fn acquire(ws_root: &Path) -> Result<WorkspaceLock, Report> {
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

/// What to do with a lock that does not satisfy the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutdatedLock {
    /// Fail with the reasons (`--locked`).
    Fail,
    /// Resolve it and write it (`apply`, as `cargo build` does).
    Write,
    /// Resolve it in memory, print what would change, write nothing (`plan`, `apply
    /// --dry-run`: the moment a preview is most wanted).
    Preview,
}

/// The lock, checked against the manifest; resolved first when it does not satisfy it, as
/// `outdated` says.
fn satisfied_lock(m: &Manifest, outdated: OutdatedLock, jobs: usize) -> Result<Lockfile, Report> {
    let previous = read_lock(m)?;
    let satisfied = match resolve::lock(
        m,
        previous.as_ref(),
        &resolve::Update::Nothing,
        resolve::Mode::Locked,
        jobs,
    ) {
        Ok((l, _)) if previous.as_ref() == Some(&l) => return Ok(l),
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
    eprintln!(
        "{:>12} airgap.lock does not satisfy the manifest: resolving it first{}",
        "Locking",
        if outdated == OutdatedLock::Preview {
            " (in memory: nothing is written)"
        } else {
            ""
        }
    );
    let (new, _) = resolve::lock(
        m,
        previous.as_ref(),
        &resolve::Update::Nothing,
        resolve::Mode::Resolve,
        jobs,
    )
    .map_err(|e| Box::new(e) as Report)?;
    if let Some(previous) = &previous {
        for c in lock::diff::diff(previous, &new) {
            eprintln!("{:>12} {c}", c.kind.verb());
        }
    }
    if outdated == OutdatedLock::Write {
        let text = lock::write(&new);
        let path = lock_path(m);
        crate::fetch::write_atomic(&path, text.as_bytes())
            .map_err(|e| IoError::report(format!("cannot write `{}`", path.display()), e))?;
    }
    Ok(new)
}

fn print_plan(plan: &Plan, statuses: &[Status], format: Format, only_stale: bool) {
    let stale = statuses
        .iter()
        .filter(|s| matches!(s, Status::Stale(_)))
        .count();
    let mut out = std::io::stdout().lock();
    match format {
        Format::Text => {
            for (step, status) in plan.steps.iter().zip(statuses) {
                match status {
                    Status::Fresh if !only_stale => {
                        let _ = writeln!(out, "fresh  {}", step.describe);
                    }
                    Status::Fresh => {}
                    Status::Stale(reason) => {
                        let _ = writeln!(out, "stale  {}: {reason}", step.describe);
                    }
                }
            }
            let _ = writeln!(
                out,
                "{} steps: {} fresh, {stale} stale",
                plan.steps.len(),
                plan.steps.len() - stale
            );
        }
        Format::Json => {
            let steps: Vec<serde_json::Value> = plan
                .steps
                .iter()
                .zip(statuses)
                .filter(|(_, s)| !only_stale || matches!(s, Status::Stale(_)))
                .map(|(step, status)| match status {
                    Status::Fresh => serde_json::json!({"id": step.id, "describe": step.describe, "status": "fresh"}),
                    Status::Stale(r) => serde_json::json!({"id": step.id, "describe": step.describe, "status": "stale", "reason": r}),
                })
                .collect();
            let doc = serde_json::json!({
                "steps": steps,
                "summary": {"total": plan.steps.len(), "fresh": plan.steps.len() - stale, "stale": stale},
            });
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            );
        }
    }
}

/// The plan and the context for the target, or for a bundle at `bundle` (already checked by
/// [`crate::bundle::prepare`]).
fn plan_and_ctx(
    m: Manifest,
    lock: Lockfile,
    jobs: usize,
    bundle: Option<std::path::PathBuf>,
) -> Result<(Plan, Ctx), Report> {
    let output = if bundle.is_some() {
        Output::Bundle
    } else {
        Output::Target
    };
    let plan = Plan::build_for(&m, &lock, output).map_err(|e| Box::new(e) as Report)?;
    let ctx = match bundle {
        Some(dir) => Ctx::for_bundle(m, lock, jobs, dir),
        None => Ctx::new(m, lock, jobs),
    };
    Ok((plan, ctx))
}

pub fn cmd_plan(
    manifest: &Path,
    format: Format,
    only_stale: bool,
    jobs: usize,
    bundle: Option<&Path>,
) -> Result<ExitCode, Report> {
    let m = load_manifest(manifest)?;
    let bundle = bundle
        .map(|dir| crate::bundle::prepare(&m, dir, false))
        .transpose()
        .map_err(|e| Box::new(e) as Report)?;
    let lock = satisfied_lock(&m, OutdatedLock::Preview, jobs)?;
    let (plan, ctx) = plan_and_ctx(m, lock, jobs, bundle)?;
    let state = State::load(&ctx.state_dir()).map_err(|e| Box::new(e) as Report)?;
    let rt = runtime(jobs)?;
    let statuses = rt.block_on(exec::statuses(&plan, &state, &ctx));
    print_plan(&plan, &statuses, format, only_stale);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{} of {total} steps failed:\n{}", failures.len(), failures.iter().map(|f| format!("- {}: {}", f.describe, f.message)).collect::<Vec<_>>().join("\n"))]
#[diagnostic(
    code(airgap::apply::failed),
    help(
        "the steps that succeeded are recorded: run `airgap apply` again to retry only what is left"
    )
)]
pub struct ApplyFailed {
    pub total: usize,
    pub failures: Vec<exec::StepFailure>,
}

pub fn cmd_apply(
    manifest: &Path,
    locked: bool,
    dry_run: bool,
    jobs: usize,
    bundle: Option<&Path>,
) -> Result<ExitCode, Report> {
    let m = load_manifest(manifest)?;
    if let Some(dir) = bundle {
        // Refuse early (a `dir:` target, a folder that is not a bundle), before any work.
        crate::bundle::prepare(&m, dir, false).map_err(|e| Box::new(e) as Report)?;
    }
    let ws_root = m.root.join(".airgap");
    let _guard = if dry_run {
        None
    } else {
        Some(WorkspaceLock::acquire(&ws_root)?)
    };
    let outdated = if locked {
        OutdatedLock::Fail
    } else if dry_run {
        OutdatedLock::Preview
    } else {
        OutdatedLock::Write
    };
    let lock = satisfied_lock(&m, outdated, jobs)?;
    let bundle = bundle
        .map(|dir| crate::bundle::prepare(&m, dir, !dry_run))
        .transpose()
        .map_err(|e| Box::new(e) as Report)?;
    let (plan, ctx) = plan_and_ctx(m, lock, jobs, bundle)?;
    let state = State::load(&ctx.state_dir()).map_err(|e| Box::new(e) as Report)?;
    let rt = runtime(jobs)?;
    if dry_run {
        let statuses = rt.block_on(exec::statuses(&plan, &state, &ctx));
        print_plan(&plan, &statuses, Format::Text, false);
        return Ok(ExitCode::SUCCESS);
    }
    let started = std::time::Instant::now();
    crate::target::prepare(&plan, &state, &ctx).map_err(|e| Box::new(e) as Report)?;
    // Image copies report through the image layer's progress (bars on a terminal: images done,
    // bytes moved, one line per image in flight; plain lines otherwise); other steps print a
    // line when they start, above the bars.
    let multi = indicatif::MultiProgress::new();
    let mut ctx = ctx;
    ctx.progress = crate::oci::progress::Progress::new(multi.clone());
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = rt.block_on(exec::run(&plan, &state, &ctx, &|verb, what| {
        if verb == "Running" && what.starts_with("image ") {
            return;
        }
        let line = format!("{verb:>12} {what}");
        if tty {
            let _ = multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }));
    let ids: std::collections::BTreeSet<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    state
        .compact(&|id| ids.contains(id))
        .map_err(|e| Box::new(e) as Report)?;
    crate::target::forget_claims(&ctx.out_root);
    eprintln!(
        "{:>12} {} steps in {:.2}s: {} ran, {} fresh{}{}",
        if report.failures.is_empty() {
            "Applied"
        } else {
            "Failed"
        },
        plan.steps.len(),
        started.elapsed().as_secs_f64(),
        report.ran,
        report.fresh,
        if report.failures.is_empty() {
            String::new()
        } else {
            format!(", {} failed", report.failures.len())
        },
        if report.skipped > 0 {
            format!(", {} skipped", report.skipped)
        } else {
            String::new()
        },
    );
    if report.failures.is_empty() {
        if let Some(dir) = &ctx.bundle {
            let info = rt
                .block_on(crate::bundle::finish(&ctx.manifest, dir))
                .map_err(|e| Box::new(e) as Report)?;
            eprintln!(
                "{:>12} `{}` for `{}`: carry it, then `airgap push {}`",
                "Bundled",
                dir.display(),
                info.target(),
                dir.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Box::new(ApplyFailed {
            total: plan.steps.len(),
            failures: report.failures,
        }))
    }
}
