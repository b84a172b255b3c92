//! `airgap verify`: ask the target whether it holds every image apply placed there (mirrored
//! images, stack artifacts, the devfile-index image) under its name, at the recorded digest and
//! whole, and whether its registry tree still names an upstream host (the checks are in
//! [`crate::audit`]).

use std::path::Path;
use std::process::ExitCode;

use super::load_built;
use crate::audit::{Findings, download_findings, landed_findings, scan_tree, upstream_hosts};
use crate::context::{Ctx, Mode};
use crate::error::Report;
use crate::workspace::{load_state, runtime};

/// `airgap verify`.
pub fn run(manifest: &Path, jobs: usize) -> Result<ExitCode, Report> {
    let (m, lock, plan) = load_built(manifest)?;
    let ctx = Ctx::new(m, lock, jobs, Mode::Target);
    let state = load_state(&ctx.ws.root)?;
    let rt = runtime(jobs)?;
    let mut findings = Vec::new();
    let (landed, checked) = rt.block_on(landed_findings(&ctx, &plan, &state));
    findings.extend(landed);
    findings.extend(download_findings(&ctx));
    let hosts = upstream_hosts(&ctx);
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let (tree_findings, notes) = scan_tree(&ctx.registry_dir(), &hosts);
    findings.extend(tree_findings);
    for n in &notes {
        eprintln!("{:>12} {n}", "Note");
    }
    Findings {
        command: "airgap verify",
        findings,
        help: Some("run `airgap apply` to restore what is missing; where the target does not match airgap.lock, restore the lock (it is generated) or run `airgap lock --update`".into()),
    }
    .conclude(
        "Verified",
        format!(
            "{checked} images whole at the target (mirrored, stack artifacts, the index image); the registry tree names no upstream host"
        ),
    )
}
