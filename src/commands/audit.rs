//! `airgap audit`: rebuild every output from the lock in a scratch folder and compare it with
//! what apply recorded and with the target (see [`crate::audit`] for what is compared and why).

use std::path::Path;
use std::process::ExitCode;

use super::load_built;
use crate::audit::{Findings, landed_findings};
use crate::context::{Ctx, Mode};
use crate::error::{IoError, Report};
use crate::exec;
use crate::workspace::{load_state, runtime};

/// `airgap audit`.
pub fn run(manifest: &Path, jobs: usize) -> Result<ExitCode, Report> {
    let (m, lock, plan) = load_built(manifest)?;
    let real = Ctx::new(m.clone(), lock.clone(), jobs, Mode::Target);
    let recorded = load_state(&real.ws.root)?;
    let scratch = tempfile::Builder::new()
        .prefix("airgap-audit-")
        .tempdir()
        .map_err(|e| IoError::report("cannot make a scratch folder", e))?;
    let records = recorded
        .records()
        .into_iter()
        .map(|(name, r)| (name, r.recorded()))
        .collect();
    let mode = Mode::Audit {
        scratch: scratch.path().join("out"),
        records,
    };
    let ctx = Ctx::new(m, lock, jobs, mode);
    let state = load_state(&scratch.path().join("state"))?;
    let rt = runtime(jobs)?;
    crate::ui::status(
        "Rebuilding",
        format!(
            "every output from airgap.lock in {}",
            scratch.path().display()
        ),
    );
    let report = rt.block_on(exec::run(&plan, &state, &ctx, &|_| false, &|_| {}));
    let mut findings: Vec<String> = report
        .failures
        .iter()
        .map(|f| format!("{} could not be rebuilt: {}", f.describe, f.message))
        .collect();
    // Image copies are not rebuilt, but every image apply placed at the target (copies, stack
    // artifacts, the index image) must still be there, whole, at the recorded digest, and
    // copies must match the lock.
    let (landed, _) = rt.block_on(landed_findings(&real, &plan, &recorded));
    findings.extend(landed);
    let mut compared = 0usize;
    for step in &plan.steps {
        if step.id.replayed_in_audit() {
            continue;
        }
        let Some(rebuilt) = state.recorded(&step.name) else {
            continue;
        };
        let Some(applied) = recorded.recorded(&step.name) else {
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
            let mine = std::fs::read(ctx.out_root().join(file)).ok();
            let theirs = std::fs::read(real.out_root().join(file)).ok();
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
