//! `airgap verify`: ask the target whether it holds every locked image, whole, and whether its
//! registry tree still names an upstream host (the checks are in [`crate::audit`]); and
//! whether `deploy/` names only those images and no host outside the air gap
//! ([`crate::deploy::check`]).

use std::path::Path;
use std::process::ExitCode;

use super::load_built;
use crate::audit::{Findings, download_findings, lock_findings, scan_tree, upstream_hosts};
use crate::context::Ctx;
use crate::error::Report;
use crate::plan::StepKind;
use crate::workspace::{load_state, runtime};

/// `airgap verify`.
pub fn run(manifest: &Path, jobs: usize) -> Result<ExitCode, Report> {
    let (m, lock, plan) = load_built(manifest)?;
    let ctx = Ctx::new(m, lock, jobs);
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
            let StepKind::Image { image } = &step.kind else {
                continue;
            };
            let Some(rec) = state.get(&step.id) else {
                findings.push(format!("image {image} was never applied"));
                continue;
            };
            let (Some(digest), Some(prefix)) = (
                rec.outputs
                    .get("digest")
                    .and_then(|d| d.parse::<crate::oci::digest::Digest>().ok()),
                prefix.as_ref(),
            ) else {
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
                (Ok(true), Ok(_)) => findings.extend(lock_findings(&ctx, image, &rec).await),
            }
        }
        findings.extend(deploy_findings(&ctx, &plan, &state, client, destination).await);
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
        format!(
            "{checked} images whole at the target; the registry tree{} names no upstream host",
            if ctx.lock.deploy.is_some() { " and deploy/" } else { "" }
        ),
    )
}

/// `deploy/` ([`crate::deploy::check`]): every image it names is one apply landed for the
/// lock (the image steps' landings are checked above; the devfile-index image's is asked of
/// the target here), and it names no host outside the air gap.
async fn deploy_findings(
    ctx: &Ctx,
    plan: &crate::plan::Plan,
    state: &crate::state::State,
    client: &crate::oci::Client,
    destination: &crate::oci::Destination,
) -> Vec<String> {
    let Some(d) = &ctx.lock.deploy else {
        return Vec::new();
    };
    let Some(rec) = state.get(crate::plan::DEPLOY_STEP) else {
        return vec!["deploy/ was never written: run `airgap apply`".into()];
    };
    let mut findings = Vec::new();
    let mut files = std::collections::BTreeMap::new();
    for rel in rec.files.keys() {
        match std::fs::read(ctx.out_root.join(rel)) {
            Ok(bytes) => {
                files.insert(rel.clone(), bytes);
            }
            Err(e) => findings.push(format!("{rel}: {e}")),
        }
    }
    let landing = |id: &str| {
        state
            .get(id)
            .and_then(|r| r.outputs.get("reference").cloned())
    };
    let index_image = landing(crate::plan::INDEX_IMAGE_STEP);
    let landed: std::collections::BTreeSet<String> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Image { .. }))
        .filter_map(|s| landing(&s.id))
        .chain(index_image.clone())
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
    let (found, named) = crate::deploy::check(&files, &expected);
    findings.extend(found.iter().map(ToString::to_string));
    if let (Some(reference), Some(ii)) = (index_image, &ctx.lock.index_image)
        && named.contains(&reference)
    {
        let digest = reference.rsplit_once('@').and_then(|(_, d)| d.parse().ok());
        let target = crate::oci::naming::TargetPrefix::parse(prefix)
            .map(|p| p.named(&ii.name, Some(&ii.tag)));
        match (target, digest) {
            (Ok(target), Some(digest)) => match client.holds(destination, &target, &digest).await {
                Ok(true) => {}
                Ok(false) => {
                    findings.push(format!("image {target} is not at the target with {digest}"))
                }
                Err(e) => findings.push(format!("image {target}: {e}")),
            },
            _ => findings.push(format!("deploy/: cannot read the reference `{reference}`")),
        }
    }
    findings
}
