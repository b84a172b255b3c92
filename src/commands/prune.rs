//! `airgap prune [--dry-run]`: remove from the target the images airgap placed there that no
//! step places any more (a stack dropped from the manifest, an index image or stack artifact
//! rebuilt under the same tag): what the state lists as abandoned ([`crate::state::Placed`]).
//! Only images airgap itself recorded placing are candidates, so a target shared with other
//! manifests or tools loses nothing of theirs; and an image whose digest a current step still
//! places in the same repository is kept (deleting a manifest by digest at a registry takes
//! every tag naming it).
//!
//! A `dir:` target's layout loses the entries, then every blob no remaining entry reaches. A
//! registry gets `DELETE /v2/<name>/manifests/<digest>`; its blobs are freed by the registry's
//! own garbage collection (`registry garbage-collect`). Files of the registry tree need no
//! prune: `apply` removes those of steps that left the plan.

use std::path::Path;
use std::process::ExitCode;

use super::load_built;
use crate::context::{Ctx, Mode};
use crate::error::Report;
use crate::oci::Destination;
use crate::plan::Plan;
use crate::state::{Placed, State};
use crate::workspace::{Workspace, load_state, runtime};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PruneError {
    #[error("the registry `{host}` refuses deletes ({message})")]
    #[diagnostic(
        code(airgap::prune::deletes_disabled),
        help(
            "start the registry with deletes enabled (distribution: `storage: delete: enabled: true`, or REGISTRY_STORAGE_DELETE_ENABLED=true) and run `airgap prune` again; `registry garbage-collect` then frees the blobs"
        )
    )]
    DeletesDisabled { host: String, message: String },
    #[error("cannot remove {image}: {message}")]
    #[diagnostic(code(airgap::prune::failed))]
    Failed { image: String, message: String },
}

/// The images to remove: abandoned ones whose digest no current step places in the same
/// repository.
pub fn removals(plan: &Plan, state: &State) -> Vec<Placed> {
    let abandoned = state.abandoned();
    if abandoned.is_empty() {
        return Vec::new();
    }
    let current: std::collections::BTreeSet<(String, String)> = plan
        .steps
        .iter()
        .filter_map(|s| state.placed(&s.name))
        .map(|p| (p.repository, p.digest))
        .collect();
    abandoned
        .into_iter()
        .filter(|p| !current.contains(&(p.repository.clone(), p.digest.clone())))
        .collect()
}

/// `airgap prune [--dry-run]`.
pub fn run(manifest: &Path, dry_run: bool, jobs: usize) -> Result<ExitCode, Report> {
    let (m, lock, plan) = load_built(manifest)?;
    let ws = Workspace::new(&m);
    let _guard = if dry_run { None } else { Some(ws.acquire()?) };
    let ctx = Ctx::new(m, lock, jobs, Mode::Target);
    let state = load_state(&ctx.ws.root)?;
    let removals = removals(&plan, &state);
    let rt = runtime(jobs)?;
    let verb = if dry_run { "Would remove" } else { "Removed" };
    let (removed, blobs) = rt.block_on(async {
        let (client, destination) = ctx.oci().await.map_err(|message| {
            Box::new(PruneError::Failed {
                image: "images".into(),
                message,
            }) as Report
        })?;
        let mut removed = Vec::new();
        for p in &removals {
            let digest = p
                .digest
                .parse()
                .map_err(|e: crate::oci::digest::DigestError| {
                    Box::new(PruneError::Failed {
                        image: p.to_string(),
                        message: e.to_string(),
                    }) as Report
                })?;
            if !dry_run {
                delete(client, destination, p, &digest).await?;
            }
            crate::ui::status(verb, format!("image {p}"));
            removed.push(p.clone());
        }
        let blobs = match destination {
            Destination::Layout(layout) => Some(
                layout
                    .collect_garbage(!dry_run)
                    .await
                    .map_err(|e| Box::new(e) as Report)?,
            ),
            Destination::Registry(_) => None,
        };
        Ok::<_, Report>((removed, blobs))
    })?;
    if let Some((garbage, bytes)) = &blobs {
        crate::ui::status(
            verb,
            format!("{} blobs no image uses ({bytes} bytes)", garbage.len()),
        );
    }
    if !dry_run {
        state.forget_abandoned(&removed);
        let names: std::collections::BTreeSet<&str> =
            plan.steps.iter().map(|s| s.name.as_str()).collect();
        state
            .compact(&|n| names.contains(n))
            .map_err(|e| Box::new(e) as Report)?;
    }
    if removed.is_empty() && blobs.as_ref().is_none_or(|b| b.0.is_empty()) {
        crate::ui::status(
            "Pruned",
            "nothing: the target holds only what the lock names",
        );
    }
    crate::machine::set("dry_run", dry_run);
    crate::machine::set(
        "images",
        removed.iter().map(ToString::to_string).collect::<Vec<_>>(),
    );
    if let Some((garbage, bytes)) = &blobs {
        crate::machine::set(
            "blobs",
            serde_json::json!({"count": garbage.len(), "bytes": bytes}),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Deletes one image; a registry that refuses deletes is named with how to allow them.
async fn delete(
    client: &crate::oci::Client,
    destination: &Destination,
    p: &Placed,
    digest: &crate::oci::digest::Digest,
) -> Result<(), Report> {
    match client
        .delete_image(destination, &p.repository, p.tag.as_deref(), digest)
        .await
    {
        Ok(_) => Ok(()),
        Err(crate::oci::error::OciError::Status {
            host,
            status: 405,
            body,
            ..
        }) => Err(Box::new(PruneError::DeletesDisabled {
            host,
            message: body.unwrap_or_else(|| "405 Method Not Allowed".into()),
        })),
        Err(e) => Err(Box::new(PruneError::Failed {
            image: p.to_string(),
            message: e.to_string(),
        })),
    }
}
