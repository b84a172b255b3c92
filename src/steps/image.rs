//! Images: copied by digest from upstream (through `registry-mirror` rules) to the target
//! registry or the `dir:` target's OCI layout. The output is the digest that landed (the
//! upstream one, or a filtered index's when `platforms` keeps a subset) and the pinned
//! reference devfiles are rewritten to. What landed is read back and compared with every
//! digest and size the lock records for the image ([`lock_differences`]): a lock that says
//! otherwise fails the step rather than being trusted.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::kind::{Done, Inputs, Kind, PlanError, PlanInput, Step};
use crate::context::Ctx;
use crate::lock::ResolvedDigest;
use crate::oci::digest::Digest;
use crate::oci::naming::{TargetPrefix, TargetRef};
use crate::oci::reference::ImageRef;
use crate::oci::{
    Client, CopyRequest, Destination, PlatformManifest, Platforms, describe_manifest,
};
use crate::steps::stale::StaleReason;

/// Copy one image to the target, by digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Image {
    /// The image's key in the lock.
    pub image: String,
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "image:{}", self.image)
    }
}

/// What landed: the digest and the pinned reference devfiles are rewritten to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageOut {
    pub digest: Digest,
    pub reference: String,
}

/// The configuration part of an image's key: where it lands and which platforms are kept.
#[derive(serde::Serialize)]
struct ImageConfig<'a> {
    target: &'a str,
    to: &'a serde_json::Value,
    platforms: &'a [String],
}

impl Kind for Image {
    type Out = ImageOut;
    const REPLAYED_IN_AUDIT: bool = true;
    const PLACES_IMAGE: bool = true;

    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        for (image, entry) in &p.lock.images {
            let id = Image {
                image: image.clone(),
            };
            steps.push(
                Step::new(id, format!("image {image}"))
                    .config(ImageConfig {
                        target: &entry.target,
                        to: &p.target,
                        platforms: &p.platforms,
                    })
                    .lock(&entry.resolved),
            );
        }
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, _: &Inputs) -> Result<Done<ImageOut>, String> {
        run(ctx, &self.image).await
    }

    /// Whether the image is still at the target with the digest the step recorded.
    async fn present(&self, ctx: &Ctx, out: &ImageOut) -> bool {
        let Ok(req) = request(ctx, &self.image) else {
            return false;
        };
        super::target_holds(ctx, &req.target, &out.digest).await
    }

    fn landed(&self, ctx: &Ctx, out: &ImageOut) -> Option<(TargetRef, Digest)> {
        Some((request(ctx, &self.image).ok()?.target, out.digest.clone()))
    }

    fn missing(&self, _: &str) -> StaleReason {
        StaleReason::ImageMissing {
            image: self.image.clone(),
        }
    }

    fn relocked(&self, _: &serde_json::Value, _: &serde_json::Value, _: &str) -> StaleReason {
        StaleReason::ImageRelocked {
            image: self.image.clone(),
        }
    }
}

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

async fn run(ctx: &Ctx, image: &str) -> Result<Done<ImageOut>, String> {
    let req = request(ctx, image)?;
    let (client, destination) = ctx.oci().await?;
    let outcome = client
        .copy(&req, destination)
        .await
        .map_err(|e| e.to_string())?;
    let problems = lock_differences(
        ctx,
        client,
        destination,
        image,
        &req.target,
        &outcome.digest,
    )
    .await?;
    if !problems.is_empty() {
        return Err(format!(
            "the image at `{}` does not match airgap.lock: {}; restore airgap.lock (it is generated), or run `airgap lock --update` to resolve it again",
            req.target,
            problems.join("; ")
        ));
    }
    Ok(Done::new(ImageOut {
        reference: req.target.pinned(&outcome.digest),
        digest: outcome.digest,
    }))
}

/// [`lock_differences`] for the image whose landing apply recorded (`outputs`, in the state
/// file's form).
pub async fn recorded_lock_differences(
    ctx: &Ctx,
    image: &str,
    outputs: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let req = request(ctx, image)?;
    let out: ImageOut = super::kind::from_wire(outputs)
        .map_err(|_| format!("apply recorded no digest for image {image}"))?;
    let (client, destination) = ctx.oci().await?;
    lock_differences(ctx, client, destination, image, &req.target, &out.digest).await
}

/// What differs between the image that landed at `target` (its top manifest `digest`, read
/// back from the target) and every digest and size the lock records for `image`: the
/// manifest's size and media type, and each platform's digest, media type and size. An index
/// filtered by `platforms` is a manifest of its own (the lock's size is the upstream one's):
/// each platform it keeps must still be the lock's.
async fn lock_differences(
    ctx: &Ctx,
    client: &Client,
    destination: &Destination,
    image: &str,
    target: &TargetRef,
    digest: &Digest,
) -> Result<Vec<String>, String> {
    let locked = ctx
        .lock
        .images
        .get(image)
        .and_then(|e| e.resolved.as_ref())
        .ok_or_else(|| format!("image `{image}` has no digest in the lock; run `airgap lock`"))?;
    let what = format!("{target}@{digest}");
    let (bytes, media_type) = client
        .read_manifest(destination, &target.repository, digest)
        .await
        .map_err(|e| e.to_string())?;
    let (_, platforms) =
        describe_manifest(&bytes, Some(&media_type), &what).map_err(|e| e.to_string())?;
    Ok(compare(
        locked,
        digest,
        bytes.len() as u64,
        &media_type,
        platforms,
    ))
}

fn compare(
    locked: &ResolvedDigest,
    digest: &Digest,
    size: u64,
    media_type: &str,
    platforms: Vec<PlatformManifest>,
) -> Vec<String> {
    let mut out = Vec::new();
    let whole = digest.as_str() == locked.digest;
    if whole && size != locked.size {
        out.push(format!(
            "manifest {digest} has {size} bytes, where the lock says size={}",
            locked.size
        ));
    }
    if media_type != locked.media_type {
        out.push(format!(
            "manifest {digest} is `{media_type}`, where the lock says media-type=\"{}\"",
            locked.media_type
        ));
    }
    let landed: BTreeMap<String, PlatformManifest> = platforms
        .into_iter()
        .map(|p| (p.platform.clone(), p))
        .collect();
    for (platform, p) in &landed {
        let Some(l) = locked.platforms.get(platform) else {
            out.push(format!(
                "platform {platform} ({}) is not in the lock",
                p.digest
            ));
            continue;
        };
        if l.digest != p.digest.as_str() {
            out.push(format!(
                "platform {platform} is {}, where the lock says digest=\"{}\"",
                p.digest, l.digest
            ));
        }
        if l.size != p.size {
            out.push(format!(
                "platform {platform} has {} bytes, where the lock says size={}",
                p.size, l.size
            ));
        }
        if l.media_type != p.media_type {
            out.push(format!(
                "platform {platform} is `{}`, where the lock says media-type=\"{}\"",
                p.media_type, l.media_type
            ));
        }
    }
    if whole {
        for platform in locked.platforms.keys() {
            if !landed.contains_key(platform) {
                out.push(format!(
                    "platform {platform} of the lock is not in manifest {digest}"
                ));
            }
        }
    }
    out
}
