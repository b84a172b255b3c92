//! `airgap apply`: build the target (or a bundle) from the lock, running the stale steps;
//! `--dry-run` prints the plan instead. A lock that does not satisfy the manifest is resolved
//! and written first, unless `--locked`. The workspace is locked for the whole apply.

use std::path::Path;
use std::process::ExitCode;

use super::lock::{OutdatedLock, satisfied_lock};
use super::plan::{plan_and_ctx, print_plan, with_state};
use crate::error::{Report, UsageError};
use crate::exec::{self, Event};
use crate::plan::Plan;
use crate::steps::Step;
use crate::workspace::{Workspace, load_manifest, load_state, runtime};

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

/// What `airgap apply` was asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions<'a> {
    pub locked: bool,
    pub dry_run: bool,
    pub jobs: usize,
    pub bundle: Option<&'a Path>,
    /// `--force`: every step (empty), or the steps named.
    pub force: Option<&'a [String]>,
}

/// Which steps `--force` names: every one for `--force` alone; else those whose id,
/// description or kind (the id up to `:`) is named. A name no step has is a usage error.
fn forced(plan: &Plan, force: Option<&[String]>) -> Result<Vec<bool>, Report> {
    let Some(names) = force else {
        return Ok(vec![false; plan.steps.len()]);
    };
    if names.is_empty() {
        return Ok(vec![true; plan.steps.len()]);
    }
    let kind = |s: &Step| s.name.split(':').next().unwrap_or("").to_string();
    let hits = |n: &String, s: &Step| *n == s.name || *n == s.describe || *n == kind(s);
    if let Some(unknown) = names
        .iter()
        .find(|n| !plan.steps.iter().any(|s| hits(n, s)))
    {
        return Err(Box::new(UsageError(format!(
            "`--force {unknown}`: no step has that id, description or kind; `airgap plan` lists them"
        ))));
    }
    Ok(plan
        .steps
        .iter()
        .map(|s| names.iter().any(|n| hits(n, s)))
        .collect())
}

/// `airgap apply [--locked] [--dry-run] [--bundle DIR] [--force [STEP…]]`.
pub fn run(manifest: &Path, opts: &ApplyOptions<'_>) -> Result<ExitCode, Report> {
    let ApplyOptions {
        locked,
        dry_run,
        jobs,
        bundle,
        force,
    } = *opts;
    let m = load_manifest(manifest)?;
    let ws = Workspace::new(&m);
    // Refuse early (a `dir:` target, a folder that is not a bundle), before any work.
    let early_bundle = bundle
        .map(|dir| crate::bundle::prepare(&m, dir, false))
        .transpose()
        .map_err(|e| Box::new(e) as Report)?;
    let _guard = if dry_run { None } else { Some(ws.acquire()?) };
    let outdated = if locked {
        OutdatedLock::Fail
    } else if dry_run {
        OutdatedLock::Preview
    } else {
        OutdatedLock::Write
    };
    let rt = runtime(jobs)?;
    let state_dir = crate::context::state_dir(&ws, early_bundle.as_deref());
    let ((plan, ctx), state) = with_state(&state_dir, || {
        let lock = satisfied_lock(&m, &ws, outdated, jobs, &rt)?;
        let bundle = bundle
            .map(|dir| crate::bundle::prepare(&m, dir, !dry_run))
            .transpose()
            .map_err(|e| Box::new(e) as Report)?;
        plan_and_ctx(m, lock, jobs, bundle)
    })?;
    // The bundle's folder as created can resolve to another path than before it existed.
    let state = if ctx.state_dir() == state_dir {
        state
    } else {
        load_state(&ctx.state_dir())?
    };
    let forced = forced(&plan, force)?;
    if dry_run {
        let statuses = rt.block_on(exec::statuses(&plan, &state, &ctx));
        print_plan(&plan, &statuses, false);
        super::plan::print_removals(&super::prune::removals(&plan, &state));
        return Ok(ExitCode::SUCCESS);
    }
    let started = std::time::Instant::now();
    crate::target::prepare(&plan, &state, &ctx).map_err(|e| Box::new(e) as Report)?;
    let (report, ctx) = run_steps(&plan, &state, ctx, &forced, &rt);
    let ids: std::collections::BTreeSet<&str> =
        plan.steps.iter().map(|s| s.name.as_str()).collect();
    // A step that renamed a file into place and then failed (a full disk on its next file)
    // recorded nothing, but claimed the file: the claims of this run are owned before they
    // are forgotten, or the next apply would refuse that file as foreign.
    state.own(crate::staging::claims(ctx.out_root()));
    state
        .compact(&|id| ids.contains(id))
        .map_err(|e| Box::new(e) as Report)?;
    crate::staging::forget_claims(ctx.out_root());
    summarize(&plan, &report, started, &ctx);
    let total = plan.steps.len();
    // The plan and the state are large at scale (tens of thousands of steps and records) and
    // freeing them is a few percent of a no-op's time: the process exit frees them instead.
    // Nothing of theirs needs dropping (the state's journal is closed by `compact`; the
    // context, whose layout folds its journal when dropped, is dropped as usual).
    drop(ids);
    std::mem::forget(plan);
    std::mem::forget(state);
    if report.failures.is_empty() {
        if ctx.lock.deploy.is_some() {
            crate::ui::status(
                "Deploy",
                format!(
                    "kubectl apply -k {}",
                    ctx.out_root().join(crate::deploy::DIR).display()
                ),
            );
        }
        if let Some(dir) = ctx.bundle_dir() {
            let info = rt
                .block_on(crate::bundle::finish(&ctx.manifest, dir))
                .map_err(|e| Box::new(e) as Report)?;
            crate::ui::status(
                "Bundled",
                format!(
                    "`{}` for `{}`: carry it, then `airgap push {}`",
                    dir.display(),
                    info.target(),
                    dir.display()
                ),
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Box::new(ApplyFailed {
            total,
            failures: report.failures,
        }))
    }
}

/// Runs the plan's stale steps (and the forced ones), printing a line as each starts:
/// image copies report through the image layer's progress (bars on a terminal: images done,
/// bytes moved, one line per image in flight; plain lines otherwise); other steps print a
/// line when they start, above the bars.
fn run_steps(
    plan: &Plan,
    state: &crate::state::State,
    ctx: crate::context::Ctx,
    forced: &[bool],
    rt: &tokio::runtime::Runtime,
) -> (exec::RunReport, crate::context::Ctx) {
    let multi = indicatif::MultiProgress::new();
    let verbosity = crate::ui::verbosity();
    let progress = if verbosity == crate::ui::Verbosity::Quiet {
        crate::oci::progress::Progress::hidden()
    } else {
        crate::oci::progress::Progress::new(multi.clone())
    };
    let ctx = ctx.with_progress(progress.clone());
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let force = |s: &Step| plan.position(&s.id).is_some_and(|i| forced[i]);
    let report = rt.block_on(exec::run(plan, state, &ctx, &force, &|event| {
        if verbosity == crate::ui::Verbosity::Quiet {
            return;
        }
        let line = match event {
            Event::Fresh(step) if verbosity == crate::ui::Verbosity::Verbose => {
                format!("{:>12} {}", "Fresh", step.describe)
            }
            Event::Fresh(_) => return,
            Event::Started(step) if step.id.as_image().is_some() => return,
            Event::Started(step) => format!("{:>12} {}", "Running", step.describe),
            Event::Failed(step, message) => {
                format!("{:>12} {}: {message}", "Failed", step.describe)
            }
        };
        if tty {
            let _ = multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }));
    progress.finish();
    (report, ctx)
}

/// The summary line of a run, and the `--format json` fields.
fn summarize(
    plan: &Plan,
    report: &exec::RunReport,
    started: std::time::Instant,
    ctx: &crate::context::Ctx,
) {
    let more = |n: usize, what: &str| {
        if n > 0 {
            format!(", {n} {what}")
        } else {
            String::new()
        }
    };
    crate::ui::status(
        if report.failures.is_empty() {
            "Applied"
        } else {
            "Failed"
        },
        format!(
            "{} steps in {:.2}s: {} ran, {} fresh{}{}",
            plan.steps.len(),
            started.elapsed().as_secs_f64(),
            report.ran,
            report.fresh,
            more(report.failures.len(), "failed"),
            more(report.skipped, "skipped"),
        ),
    );
    crate::machine::set(
        "steps",
        serde_json::json!({
            "total": plan.steps.len(), "ran": report.ran, "fresh": report.fresh,
            "skipped": report.skipped, "failed": report.failures.len(),
        }),
    );
    crate::machine::set(
        "failures",
        report
            .failures
            .iter()
            .map(|f| serde_json::json!({"step": f.step, "describe": f.describe, "message": f.message}))
            .collect::<Vec<_>>(),
    );
    crate::machine::set("seconds", started.elapsed().as_secs_f64());
    crate::machine::set("output", ctx.out_root());
    if ctx.lock.deploy.is_some() {
        crate::machine::set("deploy", ctx.out_root().join(crate::deploy::DIR));
    }
}
