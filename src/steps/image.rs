//! Images: copied by digest from upstream (through `registry-mirror` rules) to the target
//! registry or the `dir:` target's OCI layout. The output is the digest that landed (the
//! upstream one, or a filtered index's when `platforms` keeps a subset) and the pinned
//! reference devfiles are rewritten to.

use std::str::FromStr;

use crate::exec::{Ctx, StepOutput};
use crate::oci::digest::Digest;
use crate::oci::naming::TargetPrefix;
use crate::oci::reference::ImageRef;
use crate::oci::{CopyRequest, Platforms};
use crate::state::Record;

/// The upstream image (pinned to its locked digest) and where it lands.
pub(super) fn request(ctx: &Ctx, image: &str) -> Result<CopyRequest, String> {
    let entry = ctx
        .lock
        .images
        .get(image)
        .ok_or_else(|| format!("image `{image}` is not in the lock"))?;
    let resolved = entry
        .resolved
        .as_ref()
        .ok_or_else(|| format!("image `{image}` has no digest in the lock; run `airgap lock`"))?;
    let digest = Digest::from_str(&resolved.digest).map_err(|e| e.to_string())?;
    let source = ImageRef::parse(image)
        .map_err(|e| e.to_string())?
        .with_digest(digest);
    let prefix =
        TargetPrefix::parse(ctx.manifest.target.kind.image_prefix()).map_err(|e| e.to_string())?;
    let target = prefix.target_for(&source, ctx.manifest.images.naming);
    let platforms = if ctx.manifest.images.platforms.is_empty() {
        Platforms::All
    } else {
        Platforms::Only(
            ctx.manifest
                .images
                .platforms
                .iter()
                .map(|p| p.value.clone())
                .collect(),
        )
    };
    Ok(CopyRequest {
        source,
        target,
        platforms,
    })
}

pub async fn run(ctx: &Ctx, image: &str) -> Result<StepOutput, String> {
    let req = request(ctx, image)?;
    let (client, destination) = ctx.oci().await?;
    let outcome = client
        .copy(&req, destination)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = StepOutput::default();
    out.outputs
        .insert("digest".into(), outcome.digest.to_string());
    out.outputs
        .insert("reference".into(), req.target.pinned(&outcome.digest));
    Ok(out)
}

/// Whether the image is still at the target with the digest the step recorded.
pub async fn present(ctx: &Ctx, image: &str, rec: &Record) -> bool {
    let Ok(req) = request(ctx, image) else {
        return false;
    };
    super::target_holds(ctx, &req.target, rec).await
}
