//! `airgap verify`: ask the target whether it holds every locked image, whole, and whether its
//! registry tree still names an upstream host (the checks are in [`crate::audit`]).

use std::path::Path;
use std::process::ExitCode;

use super::load_built;
use crate::audit::{Findings, download_findings, lock_findings, scan_tree, upstream_hosts};
use crate::context::{Ctx, Mode};
use crate::error::Report;
use crate::steps::ImageOut;
use crate::workspace::{load_state, runtime};

/// `airgap verify`.
pub fn run(manifest: &Path, jobs: usize) -> Result<ExitCode, Report> {
    let (m, lock, plan) = load_built(manifest)?;
    let ctx = Ctx::new(m, lock, jobs, Mode::Target);
    let state = load_state(&ctx.ws.root)?;
    let rt = runtime(jobs)?;
    let mut findings = Vec::new();
    let mut checked = 0usize;
    rt.block_on(async {
        let (client, destination) = match ctx.oci().await {
            Ok(x) => x,
            Err(e) => {
                findings.push(format!("the target: {e}"));
                return;
            }
        };
        let prefix =
            crate::oci::naming::TargetPrefix::parse(ctx.manifest.target.kind.image_prefix()).ok();
        for step in &plan.steps {
            let Some(image) = step.id.as_image() else {
                continue;
            };
            let Some(rec) = state.recorded(&step.name) else {
                findings.push(format!("image {image} was never applied"));
                continue;
            };
            let landed = crate::steps::kind::from_wire::<ImageOut>(&rec.outputs).ok();
            let (Some(ImageOut { digest, .. }), Some(prefix)) = (landed, prefix.as_ref()) else {
                findings.push(format!("image {image}: apply recorded no digest"));
                continue;
            };
            let Ok(upstream) = crate::oci::reference::ImageRef::parse(image) else {
                continue;
            };
            let target = prefix.target_for(&upstream, ctx.manifest.images.naming);
            checked += 1;
            // A layout's image counts as held only when whole: ask what is missing either way,
            // so a short blob is named rather than the whole image.
            let held = client.holds(destination, &target, &digest).await;
            let missing = client
                .missing_blobs(destination, &target.repository, &digest)
                .await;
            match (held, missing) {
                (Err(e), _) => findings.push(format!("image {target}: {e}")),
                (Ok(_), Ok(missing)) if !missing.is_empty() => findings.extend(
                    missing
                        .into_iter()
                        .map(|m| format!("image {target}: {m} is missing or incomplete")),
                ),
                (Ok(false), _) => {
                    findings.push(format!("image {target} is not at the target with {digest}"))
                }
                (Ok(true), Err(e)) => findings.push(format!("image {target}: {e}")),
                (Ok(true), Ok(_)) => {
                    findings.extend(lock_findings(&ctx, image, &rec.outputs).await)
                }
            }
        }
    });
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
        format!("{checked} images whole at the target; the registry tree names no upstream host"),
    )
}
