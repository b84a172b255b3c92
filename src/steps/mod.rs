//! One module per step kind; [`run`] dispatches on [`StepKind`].

mod deploy;
mod devfile;
mod download;
mod image;
mod index_image;
mod project;
mod source;
mod stack_artifact;
mod tree;

pub use download::size_mismatch as download_size_mismatch;
pub use image::recorded_lock_differences as image_lock_differences;

use std::path::Path;
use std::str::FromStr;

use crate::context::{Ctx, StepOutput};
use crate::lock::LockedSource;
use crate::oci::digest::Digest;
use crate::oci::naming::TargetRef;
use crate::oci::{Client, Destination, LocalImage};
use crate::plan::stale::StaleReason;
use crate::plan::{Step, StepKind};
use crate::state::{Record, State};

/// Runs one step. Errors are messages for the final report.
pub async fn run(ctx: &Ctx, step: &Step, state: &State) -> Result<StepOutput, String> {
    match &step.kind {
        StepKind::Source { source } => source::run(ctx, source).await,
        StepKind::Download { url } => download::run(ctx, url).await,
        StepKind::Project { key } => project::run(ctx, key).await,
        StepKind::LastModified => tree::last_modified(ctx).await,
        StepKind::IndexJson => tree::index_json(ctx).await,
        StepKind::Devfile { source, id } => devfile::stack_devfile(ctx, state, source, id).await,
        StepKind::Archive { source, id } => devfile::archive(ctx, state, source, id).await,
        StepKind::Sample { source, id } => devfile::sample(ctx, state, source, id).await,
        StepKind::StackYaml { source, stack } => devfile::stack_yaml(ctx, source, stack).await,
        StepKind::Extra => devfile::extra(ctx).await,
        StepKind::Image { image } => match &ctx.replay {
            Some(records) => records
                .get(&step.id)
                .map(|r| StepOutput {
                    outputs: r.outputs.clone(),
                    files: r.files.clone(),
                })
                .ok_or_else(|| format!("image {image} was never applied")),
            None => image::run(ctx, image).await,
        },
        StepKind::StackArtifact { id, .. } => stack_artifact::run(ctx, step, state, id).await,
        StepKind::IndexImage => index_image::run(ctx, step, state).await,
        StepKind::Deploy => deploy::run(ctx, step, state),
    }
}

/// Step-specific checks that a fresh step's outputs still exist (files are checked by the
/// caller).
pub async fn outputs_exist(ctx: &Ctx, step: &Step, rec: &Record) -> bool {
    match &step.kind {
        StepKind::Download { .. } => rec.outputs.get("sha256").is_some_and(|s| {
            ctx.fetcher
                .cached(s.trim_start_matches("sha256:"))
                .is_some()
        }),
        StepKind::Source { source } => source::present(ctx, source, rec),
        StepKind::Image { image } => ctx.replay.is_some() || image::present(ctx, image, rec).await,
        StepKind::StackArtifact { id, .. } => stack_artifact::present(ctx, id, rec).await,
        StepKind::IndexImage => index_image::present(ctx, rec).await,
        _ => true,
    }
}

/// Why a recorded step with an unchanged key must run again: its outputs are gone.
pub fn missing_reason(step: &Step) -> StaleReason {
    match &step.kind {
        StepKind::Image { image } => StaleReason::ImageMissing {
            image: image.clone(),
        },
        StepKind::Download { url } => StaleReason::DownloadMissing { url: url.clone() },
        StepKind::Source { source } => StaleReason::SourceMissing {
            source: source.clone(),
        },
        StepKind::StackArtifact { .. } | StepKind::IndexImage => StaleReason::MissingAtTarget {
            step: step.describe.clone(),
        },
        _ => StaleReason::OutputMissing {
            step: step.describe.clone(),
        },
    }
}

/// Whether the target still holds `target` at the digest `rec` recorded; `false` when it cannot
/// tell.
async fn target_holds(ctx: &Ctx, target: &TargetRef, rec: &Record) -> bool {
    let Some(digest) = rec
        .outputs
        .get("digest")
        .and_then(|d| Digest::from_str(d).ok())
    else {
        return false;
    };
    let Ok((client, destination)) = ctx.oci().await else {
        return false;
    };
    client
        .holds(destination, target, &digest)
        .await
        .unwrap_or(false)
}

/// Pushes an image built here to `target`; returns its digest. An audit builds to compare and
/// never writes to the target: it only computes the digest.
async fn push_built(
    ctx: &Ctx,
    client: &Client,
    destination: &Destination,
    image: &LocalImage,
    target: &TargetRef,
) -> Result<Digest, String> {
    if ctx.replay.is_some() {
        return Ok(Digest::of(&image.manifest));
    }
    let outcome = client.push_image(image, target, destination).await;
    outcome.map(|o| o.digest).map_err(|e| e.to_string())
}

/// The lock's entry for `source`.
fn locked_source(ctx: &Ctx, source: &str) -> Result<LockedSource, String> {
    ctx.lock
        .sources
        .get(source)
        .cloned()
        .ok_or_else(|| format!("source `{source}` is not in the lock"))
}

/// Writes `bytes` at `rel` under the output root (whole or not at all); returns its sha256
/// output digest and records the file.
pub fn write_output(
    ctx: &Ctx,
    rel: &str,
    bytes: &[u8],
    out: &mut StepOutput,
) -> Result<(), String> {
    let path = ctx.out_root.join(rel);
    crate::staging::claim(&ctx.out_root, rel)
        .map_err(|e| format!("cannot write in `{}`: {e}", ctx.out_root.display()))?;
    write_staged(&ctx.out_root, &path, bytes)
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    let name = Path::new(rel)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.outputs
        .insert(name, format!("sha256:{}", crate::fetch::sha256_hex(bytes)));
    out.files.insert(rel.to_string(), bytes.len() as u64);
    Ok(())
}

/// Runs blocking work (git, hashing, archives) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("a background task failed: {e}"))?
}

use crate::staging::STAGING;

fn write_staged(out_root: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let staging = out_root.join(STAGING);
    std::fs::create_dir_all(&staging)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fetch::write_atomic_in(&staging, path, bytes)
}
