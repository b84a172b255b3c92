//! `airgap verify`: ask the target whether it holds every image apply placed there (mirrored
//! images, stack artifacts, the devfile-index image) under its name, at the recorded digest and
//! whole, and whether its registry tree still names an upstream host (the checks are in
//! [`crate::audit`]); and whether `deploy/` names only those images and no host outside the
//! air gap ([`crate::deploy::check`]).

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
    findings.extend(deploy_findings(&ctx, &plan, &state));
    findings.extend(download_findings(&ctx));
    let hosts = upstream_hosts(&ctx);
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let own = crate::audit::Own(ctx.manifest.target.kind.image_prefix());
    let (tree_findings, notes) = scan_tree(&ctx.registry_dir(), &hosts, own);
    findings.extend(tree_findings);
    for n in &notes {
        crate::ui::status("Note", n);
    }
    crate::machine::set("notes", &notes);
    crate::machine::set("checked", checked);
    Findings {
        command: "airgap verify",
        findings,
        help: Some("run `airgap apply` to restore what is missing; where the target does not match airgap.lock, restore the lock (it is generated) or run `airgap lock --update`".into()),
    }
    .conclude(
        "Verified",
        format!(
            "{checked} images whole at the target (mirrored, stack artifacts, the index image); the registry tree{} names no upstream host",
            if ctx.lock.deploy.is_some() { " and deploy/" } else { "" }
        ),
    )
}

/// `deploy/` ([`crate::deploy::check`]): every image it names is one apply placed at the
/// target (each of those is checked there by [`landed_findings`]), and it names no host outside
/// the air gap.
fn deploy_findings(
    ctx: &Ctx,
    plan: &crate::plan::Plan,
    state: &crate::state::State,
) -> Vec<String> {
    let Some(d) = &ctx.lock.deploy else {
        return Vec::new();
    };
    let Some(rec) = state.recorded(&crate::steps::StepId::from(crate::steps::Deploy).to_string())
    else {
        return vec!["deploy/ was never written: run `airgap apply`".into()];
    };
    let mut findings = Vec::new();
    let mut files = std::collections::BTreeMap::new();
    for rel in rec.files.keys() {
        match std::fs::read(ctx.out_root().join(rel)) {
            Ok(bytes) => {
                files.insert(rel.clone(), bytes);
            }
            Err(e) => findings.push(format!("{rel}: {e}")),
        }
    }
    let landed: std::collections::BTreeSet<String> = plan
        .steps
        .iter()
        .filter_map(|s| {
            let (target, digest) = s.id.landed(ctx, &state.recorded(&s.name)?.outputs)?;
            Some(target.pinned(&digest))
        })
        .collect();
    let prefix = ctx.manifest.target.kind.image_prefix();
    let mut hosts: std::collections::BTreeSet<String> = [prefix
        .split('/')
        .next()
        .unwrap_or(prefix)
        .to_ascii_lowercase()]
    .into();
    hosts.extend(
        d.config
            .expose
            .iter()
            .map(|e| e.host().to_ascii_lowercase()),
    );
    let expected = crate::deploy::check::Expected {
        landed: &landed,
        hosts: &hosts,
    };
    let (found, _) = crate::deploy::check(&files, &expected);
    findings.extend(found.iter().map(ToString::to_string));
    findings
}
