//! `airgap apply`: build the target (or a bundle) from the lock, running the stale steps;
//! `--dry-run` prints the plan instead. A lock that does not satisfy the manifest is resolved
//! and written first, unless `--locked`. The workspace is locked for the whole apply.

use std::path::Path;
use std::process::ExitCode;

use super::lock::{OutdatedLock, satisfied_lock};
use super::plan::{Format, plan_and_ctx, print_plan};
use crate::error::Report;
use crate::exec::{self, Event};
use crate::plan::StepKind;
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

/// `airgap apply [--locked] [--dry-run] [--bundle DIR]`.
pub fn run(
    manifest: &Path,
    locked: bool,
    dry_run: bool,
    jobs: usize,
    bundle: Option<&Path>,
) -> Result<ExitCode, Report> {
    let m = load_manifest(manifest)?;
    let ws = Workspace::new(&m);
    if let Some(dir) = bundle {
        // Refuse early (a `dir:` target, a folder that is not a bundle), before any work.
        crate::bundle::prepare(&m, dir, false).map_err(|e| Box::new(e) as Report)?;
    }
    let _guard = if dry_run { None } else { Some(ws.acquire()?) };
    let outdated = if locked {
        OutdatedLock::Fail
    } else if dry_run {
        OutdatedLock::Preview
    } else {
        OutdatedLock::Write
    };
    let rt = runtime(jobs)?;
    let lock = satisfied_lock(&m, &ws, outdated, jobs, &rt)?;
    let bundle = bundle
        .map(|dir| crate::bundle::prepare(&m, dir, !dry_run))
        .transpose()
        .map_err(|e| Box::new(e) as Report)?;
    let (plan, ctx) = plan_and_ctx(m, lock, jobs, bundle)?;
    let state = load_state(&ctx.state_dir())?;
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
    let report = rt.block_on(exec::run(&plan, &state, &ctx, &|event| {
        let line = match event {
            Event::Started(step) if matches!(step.kind, StepKind::Image { .. }) => return,
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
    let ids: std::collections::BTreeSet<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    state
        .compact(&|id| ids.contains(id))
        .map_err(|e| Box::new(e) as Report)?;
    crate::staging::forget_claims(&ctx.out_root);
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
