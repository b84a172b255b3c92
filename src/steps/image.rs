//! Images: copied by digest from upstream (through `registry-mirror` rules) to the target
//! registry or the `dir:` target's OCI layout. The output is the digest that landed (the
//! upstream one, or a filtered index's when `platforms` keeps a subset) and the pinned
//! reference devfiles are rewritten to. What landed (the manifest the copy pushed or found;
//! read back only when a layout already held it) is compared with every digest and size the
//! lock records for the image ([`lock_differences`]), the landed digest
//! first (the lock's `filtered` index when it has one): a lock that says otherwise fails the
//! step rather than being trusted, so every digest a devfile pins is one the lock names.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use super::kind::{Done, Inputs, Kind, PlanError, PlanInput, Step};
use crate::context::Ctx;
use crate::lock::ResolvedDigest;
use crate::oci::digest::Digest;
use crate::oci::naming::{TargetPrefix, TargetRef};
use crate::oci::reference::ImageRef;
use crate::oci::{CopyRequest, PlatformManifest, describe_manifest};
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
    Ok(CopyRequest {
        source,
        target,
        platforms: crate::lock::platforms::filter(&ctx.lock),
    })
}

async fn run(ctx: &Ctx, image: &str) -> Result<Done<ImageOut>, String> {
    let req = request(ctx, image)?;
    let (client, destination) = ctx.oci().await?;
    let outcome = client
        .copy(&req, destination)
        .await
        .map_err(|e| e.to_string())?;
    // The copy hands back the manifest it pushed (or that the target answered its check
    // with): reading it back would return the same bytes, since the registry accepted them
    // under their digest.
    let landed = match &outcome.manifest {
        Some(bytes) => (bytes.clone(), outcome.media_type.clone()),
        None => client
            .read_manifest(destination, &req.target.repository, &outcome.digest)
            .await
            .map_err(|e| e.to_string())?,
    };
    let problems = lock_differences(ctx, image, &req.target, &outcome.digest, landed)?;
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
    let landed = client
        .read_manifest(destination, &req.target.repository, &out.digest)
        .await
        .map_err(|e| e.to_string())?;
    lock_differences(ctx, image, &req.target, &out.digest, landed)
}

/// What differs between the image that landed at `target` (its top manifest `digest`, whose
/// bytes and media type are `landed`) and what the lock says lands for `image` ([`compare`]):
/// an index filtered by `platforms` is the lock's `filtered` entry, computed at lock time by
/// the same function the copy uses, so a filtered digest the lock does not name fails here.
fn lock_differences(
    ctx: &Ctx,
    image: &str,
    target: &TargetRef,
    digest: &Digest,
    (bytes, media_type): (Bytes, String),
) -> Result<Vec<String>, String> {
    let locked = ctx
        .lock
        .images
        .get(image)
        .and_then(|e| e.resolved.as_ref())
        .ok_or_else(|| format!("image `{image}` has no digest in the lock; run `airgap lock`"))?;
    let what = format!("{target}@{digest}");
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

/// What differs between what landed (its top manifest `digest`, `size` and `media_type`, and
/// an index's `platforms`) and the lock: the digest that lands (a filtered index's when the
/// lock has one), its size and media type, each platform's digest, media type and size, and
/// every platform that should have landed.
fn compare(
    locked: &ResolvedDigest,
    digest: &Digest,
    size: u64,
    media_type: &str,
    platforms: Vec<PlatformManifest>,
) -> Vec<String> {
    let mut out = Vec::new();
    let (want, want_size, want_media_type, what) = match &locked.filtered {
        Some(f) => (&f.digest, f.size, &f.media_type, "filtered "),
        None => (&locked.digest, locked.size, &locked.media_type, ""),
    };
    let landed_as_locked = digest.as_str() == want;
    if !landed_as_locked {
        out.push(format!(
            "manifest {digest} landed, where the lock says {what}digest=\"{want}\""
        ));
    } else if size != want_size {
        out.push(format!(
            "manifest {digest} has {size} bytes, where the lock says {what}size={want_size}"
        ));
    }
    if media_type != want_media_type {
        out.push(format!(
            "manifest {digest} is `{media_type}`, where the lock says {what}media-type=\"{want_media_type}\""
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
    if landed_as_locked {
        let expected: Vec<&String> = match &locked.filtered {
            Some(f) => f.platforms.iter().collect(),
            None => locked.platforms.keys().collect(),
        };
        for platform in expected {
            if !landed.contains_key(platform) {
                out.push(format!(
                    "platform {platform} of the lock is not in manifest {digest}"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{FilteredDigest, PlatformDigest};

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn platform(name: &str, c: char) -> PlatformManifest {
        PlatformManifest {
            platform: name.into(),
            digest: d(c),
            media_type: "m".into(),
            size: 7,
        }
    }

    fn locked(filtered: Option<FilteredDigest>) -> ResolvedDigest {
        ResolvedDigest {
            digest: d('a').to_string(),
            media_type: "i".into(),
            size: 100,
            platforms: [("linux/amd64", 'b'), ("linux/arm64", 'c')]
                .into_iter()
                .map(|(p, c)| {
                    let pm = platform(p, c);
                    (
                        p.to_string(),
                        PlatformDigest {
                            digest: pm.digest.to_string(),
                            media_type: pm.media_type,
                            size: pm.size,
                        },
                    )
                })
                .collect(),
            filtered,
            config_platform: None,
        }
    }

    #[test]
    fn a_filtered_index_must_land_with_the_locked_filtered_digest() {
        let filtered = FilteredDigest {
            platforms: vec!["linux/arm64".into()],
            digest: d('f').to_string(),
            media_type: "i".into(),
            size: 40,
        };
        let lock = locked(Some(filtered));
        let arm = || vec![platform("linux/arm64", 'c')];
        assert!(compare(&lock, &d('f'), 40, "i", arm()).is_empty());
        // The upstream index landing instead of the filtered one is a difference.
        let whole = compare(
            &lock,
            &d('a'),
            100,
            "i",
            vec![platform("linux/amd64", 'b'), platform("linux/arm64", 'c')],
        );
        assert_eq!(whole.len(), 1, "{whole:?}");
        assert!(whole[0].contains("filtered digest="), "{whole:?}");
        // So are a wrong size and a missing kept platform.
        assert_eq!(compare(&lock, &d('f'), 41, "i", arm()).len(), 1);
        assert_eq!(compare(&lock, &d('f'), 40, "i", Vec::new()).len(), 1);
    }

    #[test]
    fn without_a_filter_the_upstream_index_lands_whole() {
        let lock = locked(None);
        let both = vec![platform("linux/amd64", 'b'), platform("linux/arm64", 'c')];
        assert!(compare(&lock, &d('a'), 100, "i", both).is_empty());
        let one = compare(&lock, &d('a'), 100, "i", vec![platform("linux/amd64", 'b')]);
        assert_eq!(one.len(), 1, "{one:?}");
        assert_eq!(
            compare(&lock, &d('f'), 40, "i", vec![platform("linux/arm64", 'c')]).len(),
            1
        );
    }
}
