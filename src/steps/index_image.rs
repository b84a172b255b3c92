//! The `devfile-index` image: the locked base image, as its image step mirrored it to the
//! target, plus one layer holding `/registry` (the whole registry tree), pushed as
//! `<target prefix>/<name>:<tag>` (or into the `dir:` target's OCI layout).
//!
//! Everything is derived from bytes that the lock pins, so the same lock gives the same
//! digest on any machine:
//!
//! - The layer is a deterministic tar.gz ([`crate::archive`]: sorted entries, mtime 0,
//!   uid/gid 0, fixed modes, no gzip timestamp or name) of exactly the files the tree steps
//!   recorded, at `registry/…`. Files of the output folder that no step of this plan wrote
//!   (left from an older lock, temp files) are not in it.
//! - The base is read from the target, by the digest its image step recorded (never by tag,
//!   never upstream): its manifest and config. The config is kept whole (env, entrypoint,
//!   cmd, user, exposed ports, labels…); `rootfs.diff_ids` gets the layer's diff_id and
//!   `history` one entry. Its `created`, and the new history entry's, are the base's own
//!   `created` (no clock of this machine); without one, both are left out. A base without
//!   history gets one placeholder entry per base layer first, so history and layers still
//!   line up for tools that check it.
//! - The manifest keeps the base's type (OCI or Docker schema 2, with the matching layer media
//!   type) and its layer descriptors as they are, then ours. OCI manifests and indexes carry
//!   `org.opencontainers.image.base.name` (the upstream reference as locked) and
//!   `.base.digest`; the base's own annotations describe the base and are not copied.
//! - A multi-platform base (after the manifest's `platforms` filter, which its image step
//!   applied) gives one manifest per platform (the same layer on each) and an index over
//!   them, in the base index's order and with its platform objects; attestations of the base
//!   are dropped (they describe the base's manifests, not ours).
//! - All JSON written here is canonical (sorted keys, compact).
//!
//! The base's blobs are not uploaded again: they are at the target already, so the copy finds
//! them there (a layout, or the same registry repository) or mounts them from the base's
//! repository.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde_json::{Value, json};

use super::StepId;
use super::image::Image;
use super::kind::{Done, Inputs, Kind, PlanError, PlanInput, Step};
use crate::archive::{self, Entry};
use crate::context::Ctx;
use crate::lock::LockedIndexImage;
use crate::oci::digest::Digest;
use crate::oci::media::{self, Parsed};
use crate::oci::naming::{TargetPrefix, TargetRef};
use crate::oci::{BlobData, LocalBlob, LocalImage};
use crate::steps::stale::StaleReason;
use crate::tree_paths::{INDEX_JSON, in_registry};

/// The `devfile-index` image: the mirrored base plus one layer holding `/registry`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexImage;

impl fmt::Display for IndexImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("index-image")
    }
}

/// The image that landed, the digest of its tree layer, and the pinned reference.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IndexImageOut {
    pub digest: Digest,
    pub layer: Digest,
    pub reference: String,
}

/// The configuration part of the index image's key: where it lands.
#[derive(serde::Serialize)]
struct IndexImageConfig<'a> {
    to: &'a Value,
    name: &'a str,
    tag: &'a str,
}

/// The lock part of the index image's key: its base (a lock key).
#[derive(serde::Serialize)]
struct IndexImageLock<'a> {
    base: &'a str,
}

impl Kind for IndexImage {
    type Out = IndexImageOut;
    const PLACES_IMAGE: bool = true;
    const RELOCKED: fn(String) -> StaleReason = |step| StaleReason::IndexBaseRelocked { step };

    /// The image reads every file of the tree (its layer is the tree), not only index.json:
    /// a devfile can change without changing the index.
    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        let Some(ii) = &p.lock.index_image else {
            return Ok(());
        };
        let base = crate::lock::resolve::canonical_image(&ii.base).map_err(|_| {
            PlanError::MissingEntry {
                what: format!("image `{}`", ii.base),
                user: "the index image".into(),
            }
        })?;
        if !p.lock.images.contains_key(&base) {
            return Err(PlanError::MissingEntry {
                what: format!("image `{base}`"),
                user: format!("the {} image", ii.name),
            });
        }
        let prefix = p.manifest.target.kind.image_prefix();
        if let Ok(prefix) = TargetPrefix::parse(prefix) {
            let landing = prefix.named(&ii.name, Some(&ii.tag)).to_string();
            if let Some((image, _)) = p.lock.images.iter().find(|(_, e)| e.target == landing) {
                return Err(PlanError::IndexImageCollision {
                    name: ii.name.clone(),
                    target: landing,
                    image: image.clone(),
                });
            }
        }
        let deps: Vec<StepId> = steps
            .iter()
            .filter(|s| s.id.writes_tree())
            .map(|s| s.id.clone())
            .chain([StepId::image(&base)])
            .collect();
        steps.push(
            Step::new(IndexImage, format!("{} image", ii.name))
                .deps(deps)
                .config(IndexImageConfig {
                    to: &p.target,
                    name: &ii.name,
                    tag: &ii.tag,
                })
                .lock(IndexImageLock { base: &base }),
        );
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Done<IndexImageOut>, String> {
        run(ctx, inputs).await
    }

    /// Whether the target still holds the image under its tag, at the recorded digest.
    async fn present(&self, ctx: &Ctx, out: &IndexImageOut) -> bool {
        let Ok(target) = target(ctx) else {
            return false;
        };
        super::target_holds(ctx, &target, &out.digest).await
    }

    fn landed(&self, ctx: &Ctx, out: &IndexImageOut) -> Option<(TargetRef, Digest)> {
        Some((target(ctx).ok()?, out.digest.clone()))
    }

    fn missing(&self, describe: &str) -> StaleReason {
        StaleReason::MissingAtTarget {
            step: describe.to_string(),
        }
    }

    /// Its base image, or the registry tree (naming the first changed part).
    fn deps_changed(&self, changed: &[&Step]) -> Option<StaleReason> {
        if let Some(base) = changed.iter().find(|s| matches!(s.id, StepId::Image(_))) {
            return Some(StaleReason::IndexBaseChanged {
                base: base.describe.clone(),
            });
        }
        let tree: Vec<&&Step> = changed
            .iter()
            .filter(|s| !matches!(s.id, StepId::IndexJson(_)))
            .collect();
        match tree.as_slice() {
            [] if changed.is_empty() => None,
            [] => Some(StaleReason::TreeChanged {
                first: "index.json".into(),
                more: 0,
            }),
            [first, rest @ ..] => Some(StaleReason::TreeChanged {
                first: first.describe.clone(),
                more: rest.len(),
            }),
        }
    }
}

/// The layer media type that goes with a Docker schema 2 manifest.
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const BASE_NAME: &str = "org.opencontainers.image.base.name";
const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// The history entry of the new layer (what upstream's offline Dockerfile does).
const CREATED_BY: &str = "COPY registry /registry # airgap";
/// Image configs are small; anything larger is not one.
const CONFIG_LIMIT: u64 = 4 * 1024 * 1024;

/// The new layer: its blob digest and size, and its diff_id (the digest of the tar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: String,
}

fn locked(ctx: &Ctx) -> Result<&LockedIndexImage, String> {
    ctx.lock
        .index_image
        .as_ref()
        .ok_or_else(|| "the lock names no index image; run `airgap lock`".into())
}

/// Where the image lands.
pub fn target(ctx: &Ctx) -> Result<TargetRef, String> {
    let ii = locked(ctx)?;
    let prefix =
        TargetPrefix::parse(ctx.manifest.target.kind.image_prefix()).map_err(|e| e.to_string())?;
    Ok(prefix.named(&ii.name, Some(&ii.tag)))
}

async fn run(ctx: &Ctx, inputs: &Inputs) -> Result<Done<IndexImageOut>, String> {
    let ii = locked(ctx)?;
    let base_key = crate::lock::resolve::canonical_image(&ii.base)
        .map_err(|e| format!("the index image's base `{}`: {e}", ii.base))?;
    let base = super::image::request(ctx, &base_key)?;
    let base_digest = inputs
        .out(&Image {
            image: base_key.clone(),
        })
        .map_err(|_| format!("the base image {base_key} has not been mirrored"))?
        .digest;
    let target = target(ctx)?;

    let files = tree_files(inputs)?;
    let tmp_dir = ctx.ws.root.join("tmp");
    let out_root = ctx.out_root().to_path_buf();
    let (layer_file, layer) =
        super::blocking(move || write_layer(&tmp_dir, &out_root, &files)).await?;

    let (client, destination) = ctx.oci().await?;
    let repository = base.target.repository.clone();
    let (base_bytes, base_type) = client
        .read_manifest(destination, &repository, &base_digest)
        .await
        .map_err(|e| format!("cannot read the base image at the target: {e}"))?;
    let mut blobs = vec![LocalBlob {
        digest: layer.digest.clone(),
        size: layer.size,
        data: BlobData::File(layer_file.path().to_path_buf()),
    }];
    let (manifest, media_type) = if media::is_index(&base_type) {
        let (_, parsed) =
            media::detect(&base_bytes, Some(&base_type), &base_key).map_err(|e| e.to_string())?;
        let Parsed::Index { manifests } = parsed else {
            return Err(format!("the base image {base_key} is not an index"));
        };
        let mut children = Vec::new();
        for d in manifests.iter().filter(|d| {
            media::attestation_subject(d).is_none()
                && d.platform
                    .as_ref()
                    .is_none_or(|p| p.os != "unknown" || p.architecture != "unknown")
        }) {
            let (child, child_type) = client
                .read_manifest(destination, &repository, &d.digest)
                .await
                .map_err(|e| format!("cannot read the base image at the target: {e}"))?;
            let config = read_config(client, destination, &repository, &child, &child_type).await?;
            let built = derive_image(
                &child,
                &child_type,
                &config,
                &layer,
                Some((&base_key, &d.digest)),
            )?;
            let bytes = Bytes::from(add_config(built, &mut blobs));
            let digest = Digest::of(&bytes);
            children.push(Child {
                source: d.digest.clone(),
                digest: digest.clone(),
                size: bytes.len() as u64,
                media_type: child_type,
            });
            blobs.push(LocalBlob {
                digest,
                size: bytes.len() as u64,
                data: BlobData::Bytes(bytes),
            });
        }
        if children.is_empty() {
            return Err(format!(
                "the base image {base_key} has no platform manifest"
            ));
        }
        let index = derive_index(
            &base_bytes,
            &base_type,
            &children,
            (&base_key, &base_digest),
        )?;
        (index, base_type)
    } else {
        let config = read_config(client, destination, &repository, &base_bytes, &base_type).await?;
        let built = derive_image(
            &base_bytes,
            &base_type,
            &config,
            &layer,
            Some((&base_key, &base_digest)),
        )?;
        (add_config(built, &mut blobs), base_type)
    };

    let image = LocalImage {
        manifest: Bytes::from(manifest),
        media_type,
        blobs,
        mount_from: vec![repository.clone()],
        base: Some(base.source.clone()),
    };
    let digest = ctx.push_built(&image, &target).await?;
    drop(layer_file);
    Ok(Done::new(IndexImageOut {
        reference: target.pinned(&digest),
        digest,
        layer: layer.digest,
    }))
}

/// The config of one base image manifest, from the target.
async fn read_config(
    client: &crate::oci::Client,
    destination: &crate::oci::Destination,
    repository: &str,
    manifest: &[u8],
    media_type: &str,
) -> Result<Bytes, String> {
    let (_, parsed) =
        media::detect(manifest, Some(media_type), repository).map_err(|e| e.to_string())?;
    let Parsed::Image { config, .. } = parsed else {
        return Err("the base image nests an index in an index, which is not supported".into());
    };
    client
        .read_blob(destination, repository, &config.digest, CONFIG_LIMIT)
        .await
        .map_err(|e| format!("cannot read the base image's config: {e}"))
}

/// Adds a built image's config to the blobs to push; returns its manifest.
fn add_config(built: Built, blobs: &mut Vec<LocalBlob>) -> Vec<u8> {
    blobs.push(LocalBlob {
        digest: Digest::of(&built.config),
        size: built.config.len() as u64,
        data: BlobData::Bytes(built.config),
    });
    built.manifest
}

/// The files of the registry tree (relative to the output root, `registry/…`), as the steps
/// this one depends on recorded them.
fn tree_files(inputs: &Inputs) -> Result<BTreeMap<String, u64>, String> {
    let mut files = BTreeMap::new();
    for (dep, rec) in inputs.iter() {
        if matches!(dep, StepId::Image(_)) {
            continue;
        }
        files.extend(
            rec.files
                .iter()
                .filter(|(path, _)| path.starts_with(&in_registry("")))
                .map(|(p, s)| (p.clone(), *s)),
        );
    }
    if !files.contains_key(&in_registry(INDEX_JSON)) {
        return Err("the registry tree has no index.json".into());
    }
    Ok(files)
}

/// Writes the layer (tar.gz of `files` under `out_root`) to a temp file in `tmp_dir`.
fn write_layer(
    tmp_dir: &std::path::Path,
    out_root: &std::path::Path,
    files: &BTreeMap<String, u64>,
) -> Result<(tempfile::NamedTempFile, Layer), String> {
    std::fs::create_dir_all(tmp_dir)
        .map_err(|e| format!("cannot create `{}`: {e}", tmp_dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-layer-")
        .tempfile_in(tmp_dir)
        .map_err(|e| format!("cannot create a temp file in `{}`: {e}", tmp_dir.display()))?;
    let entries: Vec<Entry> = files
        .keys()
        .map(|rel| Entry::from_file(rel.clone(), out_root.join(rel), false))
        .collect();
    let (writer, digests) =
        archive::write_tar_gz(entries, std::io::BufWriter::new(tmp.as_file_mut()))
            .map_err(|e| crate::diag::render_plain(&e))?;
    writer
        .into_inner()
        .map_err(|e| format!("cannot write the layer: {}", e.error()))?;
    Ok((
        tmp,
        Layer {
            digest: Digest::from_str(&digests.compressed.oci()).map_err(|e| e.to_string())?,
            size: digests.compressed.size,
            diff_id: digests.uncompressed.oci(),
        },
    ))
}

/// One platform's image: config and manifest bytes.
#[derive(Debug)]
pub struct Built {
    pub config: Bytes,
    pub manifest: Vec<u8>,
}

/// A manifest of the new index, next to the base manifest it was built from.
#[derive(Debug, Clone)]
pub struct Child {
    pub source: Digest,
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

fn canonical(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    media::write_canonical(v, &mut out);
    out
}

/// The base's config with the layer added (see the module doc).
pub fn derive_config(base: &[u8], layer: &Layer) -> Result<Vec<u8>, String> {
    let mut config: Value = serde_json::from_slice(base)
        .map_err(|e| format!("the base image's config is not JSON: {e}"))?;
    let obj = config
        .as_object_mut()
        .ok_or("the base image's config is not a JSON object")?;
    let diff_ids = obj
        .get_mut("rootfs")
        .and_then(|r| r.get_mut("diff_ids"))
        .and_then(Value::as_array_mut)
        .ok_or("the base image's config has no `rootfs.diff_ids`")?;
    let base_layers = diff_ids.len();
    diff_ids.push(Value::String(layer.diff_id.clone()));
    let created = obj
        .get("created")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let history = obj
        .entry("history")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !history.is_array() {
        return Err("the base image's config has a `history` that is not a list".into());
    }
    if let Some(entries) = history.as_array_mut() {
        if entries.is_empty() {
            entries.extend((0..base_layers).map(
                |_| json!({"comment": "a layer of the base image (its config has no history)"}),
            ));
        }
        let mut ours = json!({"created_by": CREATED_BY});
        if let Some(c) = created {
            ours["created"] = Value::String(c);
        }
        entries.push(ours);
    }
    Ok(canonical(&config))
}

/// One image built on one base manifest: the derived config and the manifest naming it.
/// `base` is the upstream reference and the digest of the manifest built on, for the OCI
/// base annotations.
pub fn derive_image(
    base_manifest: &[u8],
    media_type: &str,
    base_config: &[u8],
    layer: &Layer,
    base: Option<(&str, &Digest)>,
) -> Result<Built, String> {
    let doc: Value = serde_json::from_slice(base_manifest)
        .map_err(|e| format!("the base image's manifest is not JSON: {e}"))?;
    let config_type = doc
        .get("config")
        .and_then(|c| c.get("mediaType"))
        .and_then(Value::as_str)
        .unwrap_or(media::OCI_CONFIG)
        .to_owned();
    let mut layers = doc
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let docker = media_type == media::DOCKER_MANIFEST;
    layers.push(json!({
        "mediaType": if docker { DOCKER_LAYER_GZIP } else { media::OCI_LAYER_GZIP },
        "digest": layer.digest.as_str(),
        "size": layer.size,
    }));
    let config = Bytes::from(derive_config(base_config, layer)?);
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": config_type,
            "digest": Digest::of(&config).as_str(),
            "size": config.len(),
        },
        "layers": layers,
    });
    if !docker && let Some((name, digest)) = base {
        manifest["annotations"] = json!({BASE_NAME: name, BASE_DIGEST: digest.as_str()});
    }
    Ok(Built {
        config,
        manifest: canonical(&manifest),
    })
}

/// The index over the built manifests: each with the platform object of the base manifest it
/// was built on.
pub fn derive_index(
    base_index: &[u8],
    media_type: &str,
    children: &[Child],
    base: (&str, &Digest),
) -> Result<Vec<u8>, String> {
    let doc: Value = serde_json::from_slice(base_index)
        .map_err(|e| format!("the base image's index is not JSON: {e}"))?;
    let entries = doc
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or("the base image's index has no `manifests`")?;
    let manifests: Vec<Value> = children
        .iter()
        .map(|c| {
            let mut d = json!({
                "mediaType": c.media_type,
                "digest": c.digest.as_str(),
                "size": c.size,
            });
            if let Some(p) = entries
                .iter()
                .find(|e| e.get("digest").and_then(Value::as_str) == Some(c.source.as_str()))
                .and_then(|e| e.get("platform"))
            {
                d["platform"] = p.clone();
            }
            d
        })
        .collect();
    let mut index = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": manifests,
    });
    if media_type == media::OCI_INDEX {
        index["annotations"] = json!({BASE_NAME: base.0, BASE_DIGEST: base.1.as_str()});
    }
    Ok(canonical(&index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> Layer {
        Layer {
            digest: Digest::of(b"layer"),
            size: 5,
            diff_id: Digest::of(b"tar").to_string(),
        }
    }

    #[test]
    fn config_keeps_the_base_and_extends_rootfs_and_history() {
        let base = br#"{"architecture":"amd64","os":"linux","created":"2026-01-02T03:04:05Z",
            "config":{"Env":["DEVFILE_INDEX=/registry/index.json"],"Entrypoint":["/entrypoint.sh"],"User":"1001","ExposedPorts":{"8080/tcp":{}},"Labels":{"a":"b"}},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},
            "history":[{"created":"2026-01-02T03:04:05Z","created_by":"FROM x"}]}"#;
        let out: Value = serde_json::from_slice(&derive_config(base, &layer()).unwrap()).unwrap();
        assert_eq!(
            out["config"]["Env"][0],
            "DEVFILE_INDEX=/registry/index.json"
        );
        assert_eq!(out["config"]["Entrypoint"][0], "/entrypoint.sh");
        assert_eq!(out["config"]["User"], "1001");
        assert_eq!(out["config"]["Labels"]["a"], "b");
        assert_eq!(
            out["rootfs"]["diff_ids"],
            json!(["sha256:aa", Digest::of(b"tar").to_string()])
        );
        assert_eq!(out["history"].as_array().unwrap().len(), 2);
        assert_eq!(out["history"][1]["created"], "2026-01-02T03:04:05Z");
        assert_eq!(out["created"], "2026-01-02T03:04:05Z");
        assert_eq!(out["history"][1]["created_by"], CREATED_BY);
    }

    #[test]
    fn a_base_without_history_gets_one_entry_per_layer() {
        let base =
            br#"{"rootfs":{"type":"layers","diff_ids":["sha256:aa","sha256:bb"]},"config":{}}"#;
        let out: Value = serde_json::from_slice(&derive_config(base, &layer()).unwrap()).unwrap();
        let history = out["history"].as_array().unwrap();
        assert_eq!(history.len(), 3);
        assert!(history[2].get("created").is_none(), "no clock: {out}");
        assert!(derive_config(br#"{"config":{}}"#, &layer()).is_err());
    }

    #[test]
    fn manifests_keep_their_type_and_the_base_layers_first() {
        let config = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        let base_layer =
            json!({"mediaType": DOCKER_LAYER_GZIP, "digest": Digest::of(b"a").as_str(), "size": 1});
        let docker = json!({
            "schemaVersion": 2,
            "mediaType": media::DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": Digest::of(config).as_str(), "size": config.len()},
            "layers": [base_layer],
        });
        let raw = serde_json::to_vec_pretty(&docker).unwrap();
        let built = derive_image(&raw, media::DOCKER_MANIFEST, config, &layer(), None).unwrap();
        let m: Value = serde_json::from_slice(&built.manifest).unwrap();
        assert_eq!(m["layers"][0], base_layer);
        assert_eq!(m["layers"][1]["mediaType"], DOCKER_LAYER_GZIP);
        assert_eq!(
            m["config"]["mediaType"],
            "application/vnd.docker.container.image.v1+json"
        );
        assert_eq!(m["config"]["digest"], Digest::of(&built.config).as_str());
        assert!(m.get("annotations").is_none());
        // The same input in another formatting gives the same bytes.
        let again = derive_image(
            &serde_json::to_vec(&docker).unwrap(),
            media::DOCKER_MANIFEST,
            config,
            &layer(),
            None,
        )
        .unwrap();
        assert_eq!(again.manifest, built.manifest);
    }
}
