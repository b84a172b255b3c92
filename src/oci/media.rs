//! Manifest and index media types, the few manifest fields the copy needs, platform filters,
//! and canonical JSON for the filtered indexes airgap writes.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::digest::Digest;
use super::error::OciError;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub(crate) const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Whether `media_type` is an index (a list of per-platform manifests).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// A content descriptor (the fields airgap reads; the raw JSON is never re-serialized except
/// for a filtered index).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<PlatformSpec>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct PlatformSpec {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = self.variant.as_deref().filter(|v| !v.is_empty()) {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A parsed manifest or index.
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index {
        manifests: Vec<Descriptor>,
    },
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// The media type of a manifest: the registry's `Content-Type` when it is a manifest type,
/// else the document's `mediaType`, else what its fields say.
pub(crate) fn detect(
    bytes: &[u8],
    content_type: Option<&str>,
    what: &str,
) -> Result<(String, Parsed), OciError> {
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| OciError::Manifest {
        what: what.to_owned(),
        reason: format!("it is not valid manifest JSON: {e}"),
    })?;
    let bad = |reason: String| OciError::Manifest {
        what: what.to_owned(),
        reason,
    };
    if doc.schema_version != Some(2) {
        return Err(bad(format!(
            "schema version {:?} is not supported (only 2)",
            doc.schema_version
        )));
    }
    let known = |t: &str| {
        matches!(
            t,
            OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST
        )
    };
    let media_type = match (content_type.filter(|t| known(t)), doc.media_type.as_deref()) {
        (_, Some(t)) if known(t) => t.to_owned(),
        (Some(t), _) => t.to_owned(),
        (None, Some(t)) => return Err(bad(format!("the media type `{t}` is not supported"))),
        (None, None) if doc.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, None) => OCI_MANIFEST.to_owned(),
    };
    let parsed = if is_index(&media_type) {
        Parsed::Index {
            manifests: doc
                .manifests
                .ok_or_else(|| bad("the index has no `manifests`".into()))?,
        }
    } else {
        Parsed::Image {
            config: doc
                .config
                .ok_or_else(|| bad("the manifest has no `config`".into()))?,
            layers: doc.layers.unwrap_or_default(),
        }
    };
    Ok((media_type, parsed))
}

impl Parsed {
    /// The blobs of an image manifest that a registry holds: config and layers, without
    /// foreign (non-distributable) layers.
    pub(crate) fn blobs(&self) -> Vec<Descriptor> {
        match self {
            Parsed::Image { config, layers } => std::iter::once(config)
                .chain(layers.iter())
                .filter(|d| {
                    d.urls.is_empty()
                        && !d.media_type.contains("foreign")
                        && !d.media_type.contains("nondistributable")
                })
                .cloned()
                .collect(),
            Parsed::Index { .. } => Vec::new(),
        }
    }
}

const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// An index entry that is an attestation (buildkit's provenance/SBOM manifests, platform
/// `unknown/unknown`), and the manifest it describes.
pub(crate) fn attestation_subject(d: &Descriptor) -> Option<&str> {
    (d.annotations.get(REFERENCE_TYPE).map(String::as_str) == Some("attestation-manifest"))
        .then(|| d.annotations.get(REFERENCE_DIGEST).map(String::as_str))
        .flatten()
}

/// The platform (`os/arch[/variant]`) an image config names; `None` when it is not JSON or
/// names no OS and architecture.
pub(crate) fn config_platform(config: &[u8]) -> Option<String> {
    let spec: PlatformSpec = serde_json::from_slice(config).ok()?;
    (!spec.os.is_empty() && !spec.architecture.is_empty()).then(|| spec.to_string())
}

/// Which platforms of an index to copy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Platforms {
    /// Every manifest of an index: the index is copied whole and keeps its upstream digest.
    #[default]
    All,
    /// Only these (`os/arch` matches every variant, `os/arch/variant` only that one).
    /// Attestations follow the manifest they describe.
    Only(Vec<String>),
}

impl Platforms {
    pub(crate) fn matches(&self, platform: &PlatformSpec) -> bool {
        match self {
            Platforms::All => true,
            Platforms::Only(wanted) => {
                let full = platform.to_string();
                let short = format!("{}/{}", platform.os, platform.architecture);
                wanted.iter().any(|w| *w == full || *w == short)
            }
        }
    }

    /// The entries of an index to keep, in upstream order.
    pub(crate) fn select(&self, manifests: &[Descriptor]) -> Vec<Descriptor> {
        if *self == Platforms::All {
            return manifests.to_vec();
        }
        let kept: Vec<&Descriptor> = manifests
            .iter()
            .filter(|d| {
                attestation_subject(d).is_none()
                    && d.platform.as_ref().is_some_and(|p| self.matches(p))
            })
            .collect();
        manifests
            .iter()
            .filter(|d| match attestation_subject(d) {
                Some(subject) => kept.iter().any(|k| k.digest.as_str() == subject),
                None => kept.iter().any(|k| k == d),
            })
            .cloned()
            .collect()
    }
}

impl Platforms {
    /// Whether a platform written `os/arch[/variant]` (as the lock records it) is selected.
    pub fn matches_written(&self, platform: &str) -> bool {
        let mut parts = platform.splitn(3, '/');
        let spec = PlatformSpec {
            os: parts.next().unwrap_or_default().to_owned(),
            architecture: parts.next().unwrap_or_default().to_owned(),
            variant: parts.next().map(str::to_owned),
        };
        self.matches(&spec)
    }
}

/// What lands at the target for an upstream index under a platform filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IndexLanding {
    /// The upstream index as it is: the filter keeps every entry, or none of them (an image
    /// that lacks every requested platform is copied whole; `airgap lock` warns about it).
    Whole,
    /// A filtered index of its own: the entries kept and its canonical bytes.
    Filtered {
        keep: Vec<Descriptor>,
        bytes: Vec<u8>,
    },
}

/// The one decision the copy and the lock share: what lands for the index `raw` (whose
/// entries are `manifests`) under `platforms`. Pure and deterministic: the same bytes and
/// platforms give the same landing on any machine.
pub(crate) fn land_index(
    raw: &[u8],
    manifests: &[Descriptor],
    platforms: &Platforms,
    what: &str,
) -> Result<IndexLanding, OciError> {
    let keep = platforms.select(manifests);
    if keep.is_empty() || keep.len() == manifests.len() {
        return Ok(IndexLanding::Whole);
    }
    let bytes = filtered_index(raw, &keep, what)?;
    Ok(IndexLanding::Filtered { keep, bytes })
}

/// The upstream index with `manifests` reduced to `keep`, as canonical JSON (object keys
/// sorted, no insignificant whitespace): the same upstream index and platforms always give the
/// same bytes, so the same digest.
fn filtered_index(raw: &[u8], keep: &[Descriptor], what: &str) -> Result<Vec<u8>, OciError> {
    let mut doc: Value = serde_json::from_slice(raw).map_err(|e| OciError::Manifest {
        what: what.to_owned(),
        reason: format!("it is not valid JSON: {e}"),
    })?;
    let manifests = doc
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| OciError::Manifest {
            what: what.to_owned(),
            reason: "the index has no `manifests` array".into(),
        })?;
    manifests.retain(|m| {
        m.get("digest")
            .and_then(Value::as_str)
            .is_some_and(|d| keep.iter().any(|k| k.digest.as_str() == d))
    });
    let mut out = Vec::with_capacity(raw.len());
    write_canonical(&doc, &mut out);
    Ok(out)
}

/// Canonical JSON: keys sorted by their UTF-8 bytes, compact. Independent of serde_json's
/// `preserve_order` feature, which another crate in the build may turn on.
pub(crate) fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(digest_of: &str, platform: Option<(&str, &str, Option<&str>)>) -> Value {
        let mut d = serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": Digest::of(digest_of.as_bytes()).to_string(),
            "size": 10,
        });
        if let Some((os, arch, variant)) = platform {
            d["platform"] = serde_json::json!({"os": os, "architecture": arch});
            if let Some(v) = variant {
                d["platform"]["variant"] = v.into();
            }
        }
        d
    }

    #[test]
    fn filter_keeps_platforms_and_their_attestations() {
        let mut att = desc("att", Some(("unknown", "unknown", None)));
        att["annotations"] = serde_json::json!({
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": Digest::of(b"arm").to_string(),
        });
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [desc("amd", Some(("linux","amd64",None))), desc("arm", Some(("linux","arm64",Some("v8")))), att],
        });
        let raw = serde_json::to_vec_pretty(&index).unwrap();
        let (mt, parsed) = detect(&raw, None, "x").unwrap();
        assert_eq!(mt, OCI_INDEX);
        let Parsed::Index { manifests } = parsed else {
            panic!()
        };
        let keep = Platforms::Only(vec!["linux/arm64".into()]).select(&manifests);
        assert_eq!(keep.len(), 2);
        assert_eq!(
            Platforms::Only(vec!["linux/arm64/v7".into()])
                .select(&manifests)
                .len(),
            0
        );
        assert_eq!(Platforms::All.select(&manifests).len(), 3);
        let a = filtered_index(&raw, &keep, "x").unwrap();
        let b = filtered_index(&serde_json::to_vec(&index).unwrap(), &keep, "x").unwrap();
        assert_eq!(
            a, b,
            "the same index gives the same bytes whatever its formatting"
        );
        assert_eq!(
            land_index(
                &raw,
                &manifests,
                &Platforms::Only(vec!["linux/arm64".into()]),
                "x"
            )
            .unwrap(),
            IndexLanding::Filtered {
                keep: keep.clone(),
                bytes: a.clone()
            },
            "the copy and the lock land the same bytes"
        );
        for whole in [
            Platforms::All,
            Platforms::Only(vec!["linux/amd64".into(), "linux/arm64".into()]),
            Platforms::Only(vec!["linux/s390x".into()]),
        ] {
            assert_eq!(
                land_index(&raw, &manifests, &whole, "x").unwrap(),
                IndexLanding::Whole,
                "{whole:?}: every entry kept, or none (the image is copied as it is)"
            );
        }
        let text = String::from_utf8(a).unwrap();
        assert!(text.starts_with(r#"{"manifests":[{"digest":"#), "{text}");
        assert!(!text.contains(&Digest::of(b"amd").to_string()));
    }

    #[test]
    fn platforms_written_in_the_lock_match_like_descriptors() {
        let arm = Platforms::Only(vec!["linux/arm64".into()]);
        assert!(arm.matches_written("linux/arm64"));
        assert!(arm.matches_written("linux/arm64/v8"));
        assert!(!arm.matches_written("linux/amd64"));
        let v7 = Platforms::Only(vec!["linux/arm/v7".into()]);
        assert!(v7.matches_written("linux/arm/v7"));
        assert!(!v7.matches_written("linux/arm/v6"));
        assert_eq!(
            config_platform(br#"{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{}}"#),
            Some("linux/arm64/v8".into())
        );
        assert_eq!(config_platform(b"{}"), None);
        assert_eq!(config_platform(b"not json"), None);
    }
}
