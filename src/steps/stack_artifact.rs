//! Stack artifacts: each stack version as the OCI artifact the devfile registry server pushes
//! to its in-pod registry at start, `devfile-catalog/<stack>:<version>` (under the target
//! prefix), which registry-library clients pull. Built here so a target without the registry
//! server's sidecar (or a `dir:` target, served by `airgap serve`) has them too.
//!
//! The format follows the server's (registry-support `index/server/pkg/server/registry.go`):
//! an OCI image manifest whose config has media type
//! `application/vnd.devfileio.devfile.config.v2+json` and content `{}`, one layer per file of
//! the version's folder, titled with its name (`org.opencontainers.image.title`): `devfile.yaml`
//! → `application/vnd.devfileio.devfile.layer.v1`, `archive.tar` → `application/x-tar`,
//! `logo.svg` → `image/svg+xml`, `logo.png` → `image/png`. Other files of the folder (starter
//! project zips, a parent devfile, icons of other types) have no media type upstream, where they
//! make the push fail; here they are left out. Layers are sorted by digest and the manifest is
//! canonical JSON, so the artifact's digest depends only on the files' bytes.
//!
//! The tag is the devfile's `metadata.version` and the repository the stack's folder name: what
//! the index's `links.self` says (`devfile-catalog/<stack folder>:<version>`), for single- and
//! multi-version stacks alike.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde_json::json;

use super::archive::Archive;
use super::devfile::Devfile;
use super::kind::{Done, Inputs, Kind, PlanError, PlanInput, Step, TreeOut};
use crate::context::Ctx;
use crate::oci::digest::Digest;
use crate::oci::media;
use crate::oci::naming::{TargetPrefix, TargetRef};
use crate::oci::reference::valid_tag;
use crate::oci::{BlobData, LocalBlob, LocalImage};
use crate::steps::stale::StaleReason;
use crate::tree_paths::{in_registry, stack_dir, stack_of};

/// The repository (under the target prefix) that stack artifacts land in, one per stack:
/// `devfile-catalog/<stack>:<version>`, as the index's `links.self` names them.
pub const CATALOG: &str = "devfile-catalog";

/// One stack version as the OCI artifact the devfile registry server pushes at start
/// (`devfile-catalog/<stack>:<version>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StackArtifact {
    pub source: String,
    pub id: String,
}

impl fmt::Display for StackArtifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stack-artifact:{}/{}", self.source, self.id)
    }
}

/// The artifact that landed: its digest, its tag (the devfile's version) and the pinned
/// reference.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ArtifactOut {
    pub digest: Digest,
    pub tag: String,
    pub reference: String,
}

/// The configuration part of a stack artifact's key: where it lands.
#[derive(serde::Serialize)]
struct ArtifactConfig<'a> {
    to: &'a serde_json::Value,
    repository: String,
}

impl Kind for StackArtifact {
    type Out = ArtifactOut;
    const PLACES_IMAGE: bool = true;

    /// What the registry server would push at start: one artifact per stack version, from
    /// that version's devfile (and icon) and archive.
    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        for ((source, id), entry) in &p.lock.stacks {
            let mut deps = vec![
                Devfile {
                    source: source.clone(),
                    id: id.clone(),
                }
                .into(),
            ];
            if !entry.files.is_empty() {
                deps.push(
                    Archive {
                        source: source.clone(),
                        id: id.clone(),
                    }
                    .into(),
                );
            }
            let stack = stack_of(id);
            let step = StackArtifact {
                source: source.clone(),
                id: id.clone(),
            };
            steps.push(
                Step::new(step, format!("stack artifact of {}", super::id_words(id)))
                    .deps(deps)
                    .config(ArtifactConfig {
                        to: &p.target,
                        repository: format!("{CATALOG}/{stack}"),
                    }),
            );
        }
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Done<ArtifactOut>, String> {
        run(ctx, inputs, &self.id).await
    }

    /// Whether the target still holds the artifact under its tag, at the recorded digest.
    async fn present(&self, ctx: &Ctx, out: &ArtifactOut) -> bool {
        let Ok(target) = landing(ctx, &self.id, &out.tag) else {
            return false;
        };
        super::target_holds(ctx, &target, &out.digest).await
    }

    fn landed(&self, ctx: &Ctx, out: &ArtifactOut) -> Option<(TargetRef, Digest)> {
        Some((landing(ctx, &self.id, &out.tag).ok()?, out.digest.clone()))
    }

    fn missing(&self, describe: &str) -> StaleReason {
        StaleReason::MissingAtTarget {
            step: describe.to_string(),
        }
    }
}

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.devfileio.devfile.config.v2+json";
pub const DEVFILE_MEDIA_TYPE: &str = "application/vnd.devfileio.devfile.layer.v1";
const TITLE: &str = "org.opencontainers.image.title";

/// The layer media type of a file of a stack version's folder, by name; `None` for files the
/// artifact leaves out.
pub fn layer_media_type(name: &str) -> Option<&'static str> {
    match name {
        "devfile.yaml" | ".devfile.yaml" => Some(DEVFILE_MEDIA_TYPE),
        "archive.tar" => Some("application/x-tar"),
        "logo.svg" => Some("image/svg+xml"),
        "logo.png" => Some("image/png"),
        _ => None,
    }
}

/// Whether the registry server starts with `name` in a stack version's `resources`: it pushes
/// the files it has a media type for (by name, and `*.vsx` by extension) and skips
/// `meta.yaml` and `*-offline.zip`; any other name stops it at start (`media type not found
/// for file extension…`: a CrashLoop in the cluster).
pub fn server_accepts_resource(name: &str) -> bool {
    layer_media_type(name).is_some()
        || name.ends_with(".vsx")
        || name == "meta.yaml"
        || name.ends_with("-offline.zip")
}

/// Where the artifact of stack version `id` tagged `tag` lands.
fn landing(ctx: &Ctx, id: &str, tag: &str) -> Result<TargetRef, String> {
    let stack = stack_of(id);
    let prefix =
        TargetPrefix::parse(ctx.manifest.target.kind.image_prefix()).map_err(|e| e.to_string())?;
    Ok(prefix.named(&format!("{CATALOG}/{stack}"), Some(tag)))
}

/// One file that becomes a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFile {
    pub name: String,
    pub digest: Digest,
    pub size: u64,
}

/// The artifact's manifest for these files (config `{}`).
pub fn manifest(files: &[LayerFile]) -> Result<Vec<u8>, String> {
    let config = b"{}";
    let mut layers: Vec<&LayerFile> = files.iter().collect();
    layers.sort_by(|a, b| a.digest.cmp(&b.digest));
    let layers = layers
        .iter()
        .map(|f| {
            let media_type = layer_media_type(&f.name)
                .ok_or_else(|| format!("`{}` has no stack artifact media type", f.name))?;
            Ok(json!({
                "mediaType": media_type,
                "digest": f.digest.as_str(),
                "size": f.size,
                "annotations": {TITLE: f.name},
            }))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let doc = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": Digest::of(config).as_str(),
            "size": config.len(),
        },
        "layers": layers,
    });
    let mut out = Vec::new();
    media::write_canonical(&doc, &mut out);
    Ok(out)
}

async fn run(ctx: &Ctx, inputs: &Inputs, id: &str) -> Result<Done<ArtifactOut>, String> {
    let dir = format!("{}/", in_registry(&stack_dir(id)));
    // The files of the version's folder that its devfile and archive steps wrote, with the
    // digests they recorded (the push checks the bytes against them as it streams).
    let mut files: BTreeMap<String, LayerFile> = BTreeMap::new();
    for (dep, rec) in inputs.iter() {
        let digests: TreeOut = super::kind::from_wire(&rec.outputs)?;
        for (path, size) in &rec.files {
            let Some(name) = path.strip_prefix(&dir) else {
                continue;
            };
            if name.contains('/') || layer_media_type(name).is_none() {
                continue;
            }
            let digest = digests
                .sha256
                .get(name)
                .ok_or_else(|| format!("step `{dep}` recorded no digest for `{path}`"))
                .and_then(|d| Digest::from_str(d).map_err(|e| e.to_string()))?;
            files.insert(
                path.clone(),
                LayerFile {
                    name: name.to_owned(),
                    digest,
                    size: *size,
                },
            );
        }
    }
    let devfile = files
        .keys()
        .find(|p| p.ends_with("devfile.yaml"))
        .cloned()
        .ok_or_else(|| format!("no devfile was written into `{dir}`"))?;
    let text = tokio::fs::read_to_string(ctx.out_root().join(&devfile))
        .await
        .map_err(|e| format!("cannot read `{devfile}`: {e}"))?;
    let parsed = {
        let devfile = devfile.clone();
        super::cpu(move || crate::devfile::parse(&devfile, &text).map_err(|e| e.to_string()))
            .await?
    };
    let version = parsed
        .metadata
        .and_then(|m| m.version)
        .map(|v| v.0)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            format!("`{devfile}` has no `metadata.version`, which tags its stack artifact")
        })?;
    if !valid_tag(&version) {
        return Err(format!(
            "the version `{version}` of `{devfile}` is not a valid image tag, so it cannot tag the stack artifact"
        ));
    }
    let target = landing(ctx, id, &version)?;
    let layers: Vec<LayerFile> = files.values().cloned().collect();
    let manifest = Bytes::from(manifest(&layers)?);
    let mut blobs: Vec<LocalBlob> = files
        .iter()
        .map(|(path, f)| LocalBlob {
            digest: f.digest.clone(),
            size: f.size,
            data: BlobData::File(ctx.out_root().join(path)),
        })
        .collect();
    let config = Bytes::from_static(b"{}");
    blobs.push(LocalBlob {
        digest: Digest::of(&config),
        size: config.len() as u64,
        data: BlobData::Bytes(config),
    });
    let image = LocalImage {
        manifest,
        media_type: media::OCI_MANIFEST.into(),
        blobs,
        mount_from: Vec::new(),
        base: None,
    };
    let digest = ctx.push_built(&image, &target).await?;
    Ok(Done::new(ArtifactOut {
        reference: target.pinned(&digest),
        digest,
        tag: version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_titled_and_sorted_by_digest() {
        let files: Vec<LayerFile> = ["devfile.yaml", "archive.tar", "logo.svg"]
            .iter()
            .map(|n| LayerFile {
                name: n.to_string(),
                digest: Digest::of(n.as_bytes()),
                size: n.len() as u64,
            })
            .collect();
        let m: serde_json::Value = serde_json::from_slice(&manifest(&files).unwrap()).unwrap();
        let digests: Vec<&str> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        let mut sorted = digests.clone();
        sorted.sort();
        assert_eq!(digests, sorted);
        assert_eq!(m["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(m["config"]["size"], 2);
        for l in m["layers"].as_array().unwrap() {
            let title = l["annotations"][TITLE].as_str().unwrap();
            assert_eq!(l["mediaType"], layer_media_type(title).unwrap());
        }
        let mut reversed = files.clone();
        reversed.reverse();
        assert_eq!(manifest(&reversed).unwrap(), manifest(&files).unwrap());
    }

    #[test]
    fn tags() {
        for ok in ["2.6.0", "1.0.0-rc1", "_x", "v1"] {
            assert!(valid_tag(ok), "{ok}");
        }
        for bad in ["", "1.0.0+build", ".x", "-x", &"a".repeat(129)] {
            assert!(!valid_tag(bad), "{bad}");
        }
    }
}
