//! `airgap plan`: every step of apply, fresh or stale, with the reason each stale step must
//! run; and the plan printing `apply --dry-run` shares ([`print_plan`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::lock::{OutdatedLock, satisfied_lock};
use crate::context::{Ctx, Mode};
use crate::error::Report;
use crate::exec::{self, Status};
use crate::lock::Lockfile;
use crate::manifest::Manifest;
use crate::plan::Plan;
use crate::workspace::{Workspace, load_manifest, load_state, runtime};

/// `airgap plan [--format F] [--stale] [--bundle DIR]`.
pub fn run(
    manifest: &Path,
    only_stale: bool,
    jobs: usize,
    bundle: Option<&Path>,
) -> Result<ExitCode, Report> {
    let m = load_manifest(manifest)?;
    let ws = Workspace::new(&m);
    let bundle = bundle
        .map(|dir| crate::bundle::prepare(&m, dir, false))
        .transpose()
        .map_err(|e| Box::new(e) as Report)?;
    let rt = runtime(jobs)?;
    let state_dir = crate::context::state_dir(&ws, bundle.as_deref());
    let ((plan, ctx), state) = with_state(&state_dir, || {
        let lock = satisfied_lock(&m, &ws, OutdatedLock::Preview, jobs, &rt)?;
        plan_and_ctx(m, lock, jobs, bundle)
    })?;
    let statuses = rt.block_on(exec::statuses(&plan, &state, &ctx));
    print_plan(&plan, &statuses, only_stale);
    print_removals(&super::prune::removals(&plan, &state));
    Ok(ExitCode::SUCCESS)
}

/// `work`'s result (settling the lock and building the plan, on this thread) and the state
/// at `dir`, loaded meanwhile on another: the two share nothing, and at thousands of stacks
/// each is a few tenths of a second of a no-op apply or a plan.
pub fn with_state<T>(
    dir: &Path,
    work: impl FnOnce() -> Result<T, Report>,
) -> Result<(T, crate::state::State), Report> {
    std::thread::scope(|s| {
        let loading = s.spawn(|| load_state(dir));
        let done = work();
        let state = loading
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok((done?, state?))
    })
}

/// The plan and the context for the target, or for a bundle at `bundle` (already checked by
/// [`crate::bundle::prepare`]).
pub fn plan_and_ctx(
    m: Manifest,
    lock: Lockfile,
    jobs: usize,
    bundle: Option<PathBuf>,
) -> Result<(Plan, Ctx), Report> {
    let mode = match bundle {
        Some(dir) => Mode::Bundle(dir),
        None => Mode::Target,
    };
    let ctx = Ctx::new(m, lock, jobs, mode);
    let plan = Plan::build_for(&ctx.manifest, &ctx.lock, ctx.output())
        .map_err(|e| Box::new(e) as Report)?;
    Ok((plan, ctx))
}

/// Prints each step with its status (only the stale ones with `only_stale`), then a summary;
/// with `--format json`, they are the `steps` and `summary` of the command's document.
pub fn print_plan(plan: &Plan, statuses: &[Status], only_stale: bool) {
    let stale = statuses
        .iter()
        .filter(|s| matches!(s, Status::Stale(_)))
        .count();
    if crate::machine::json() {
        let steps: Vec<serde_json::Value> = plan
            .steps
            .iter()
            .zip(statuses)
            .filter(|(_, s)| !only_stale || matches!(s, Status::Stale(_)))
            .map(|(step, status)| match status {
                Status::Fresh => serde_json::json!({"id": step.name, "describe": step.describe, "status": "fresh"}),
                Status::Stale(r) => serde_json::json!({"id": step.name, "describe": step.describe, "status": "stale", "reason": r.to_string()}),
            })
            .collect();
        crate::machine::set("steps", steps);
        let total = plan.steps.len();
        crate::machine::set(
            "summary",
            serde_json::json!({"total": total, "fresh": total - stale, "stale": stale}),
        );
        return;
    }
    let mut out = std::io::stdout().lock();
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

/// The images `airgap prune` would remove, after the steps: one line each, or the document's
/// `removals`.
pub fn print_removals(removals: &[crate::state::Placed]) {
    crate::machine::set(
        "removals",
        removals.iter().map(ToString::to_string).collect::<Vec<_>>(),
    );
    if crate::machine::json() {
        return;
    }
    let mut out = std::io::stdout().lock();
    for p in removals {
        let _ = writeln!(
            out,
            "remove image {p}: no step places it any more (`airgap prune`)"
        );
    }
}
