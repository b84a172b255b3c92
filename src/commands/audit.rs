//! `airgap audit`: rebuild every output from the lock in a scratch folder and compare it with
//! what apply recorded and with the target (see [`crate::audit`] for what is compared and why).

use std::path::Path;
use std::process::ExitCode;

use super::load_built;
use crate::audit::{Findings, lock_findings};
use crate::context::Ctx;
use crate::error::{IoError, Report};
use crate::exec;
use crate::plan::StepKind;
use crate::workspace::{load_state, runtime};

/// `airgap audit`.
pub fn run(manifest: &Path, jobs: usize) -> Result<ExitCode, Report> {
    let (m, lock, plan) = load_built(manifest)?;
    let real = Ctx::new(m.clone(), lock.clone(), jobs);
    let recorded = load_state(&real.ws.root)?;
    let scratch = tempfile::Builder::new()
        .prefix("airgap-audit-")
        .tempdir()
        .map_err(|e| IoError::report("cannot make a scratch folder", e))?;
    let mut ctx = Ctx::new(m, lock, jobs);
    ctx.out_root = scratch.path().join("out");
    ctx.replay = Some(recorded.records());
    let state = load_state(&scratch.path().join("state"))?;
    let rt = runtime(jobs)?;
    eprintln!(
        "{:>12} every output from airgap.lock in {}",
        "Rebuilding",
        scratch.path().display()
    );
    let report = rt.block_on(exec::run(&plan, &state, &ctx, &|_| {}));
    let mut findings: Vec<String> = report
        .failures
        .iter()
        .map(|f| format!("{} could not be rebuilt: {}", f.describe, f.message))
        .collect();
    // Image copies are not rebuilt, but what landed must still be what the lock records.
    rt.block_on(async {
        for step in &plan.steps {
            let StepKind::Image { image } = &step.kind else {
                continue;
            };
            if let Some(rec) = recorded.get(&step.id) {
                findings.extend(lock_findings(&ctx, image, &rec).await);
            }
        }
    });
    let mut compared = 0usize;
    for step in &plan.steps {
        if matches!(step.kind, StepKind::Image { .. }) {
            continue;
        }
        let Some(rebuilt) = state.get(&step.id) else {
            continue;
        };
        let Some(applied) = recorded.get(&step.id) else {
            findings.push(format!("{} was never applied", step.describe));
            continue;
        };
        if rebuilt.outputs != applied.outputs {
            let changed: Vec<&String> = rebuilt
                .outputs
                .iter()
                .filter(|(k, v)| applied.outputs.get(*k) != Some(v))
                .map(|(k, _)| k)
                .collect();
            findings.push(format!(
                "{}: the rebuilt {} differ(s) from what apply recorded",
                step.describe,
                changed
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for file in rebuilt.files.keys() {
            compared += 1;
            let mine = std::fs::read(ctx.out_root.join(file)).ok();
            let theirs = std::fs::read(real.out_root.join(file)).ok();
            match (mine, theirs) {
                (Some(a), Some(b)) if a == b => {}
                (Some(_), Some(_)) => {
                    findings.push(format!("{file} on the target differs from its rebuild"))
                }
                (Some(_), None) => findings.push(format!("{file} is missing from the target")),
                (None, _) => findings.push(format!("{file} was not rebuilt")),
            }
        }
    }
    Findings {
        command: "airgap audit",
        findings,
        help: Some("the target does not match its lock: run `airgap apply` to rebuild what differs, and find out how it changed".into()),
    }
    .conclude(
        "Audited",
        format!("{compared} files rebuilt from the lock equal the target's"),
    )
}
