//! The manifest, `airgap.kdl`: what the user asks for.
//!
//! The KDL document is walked node by node (not through `kdl::de`, whose errors lose spans) into
//! typed structs that keep the [`SourceSpan`] of everything a later diagnostic may point at:
//! a lockfile that no longer satisfies a `source`, an `include` that does not resolve, two
//! images colliding on one target name. Parsing collects every problem before failing, each a
//! [`SpanDiagnostic`] with a code, a label and, where there is one, a `help:` line.

mod parse;
pub mod spec;

use std::path::{Path, PathBuf};

use miette::SourceSpan;

use crate::diag::{Diagnostics, Source};
use crate::kdl_text::{ReadError, TooLarge};
use crate::url_mirror::UrlMirror;

pub use parse::parse;

/// The manifest's default file name, looked up in the current directory.
pub const FILE_NAME: &str = "airgap.kdl";

/// The largest manifest read, in bytes: a manifest is a few kilobytes.
pub const MAX_SIZE: u64 = 1 << 20;

/// A value with the span of the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: SourceSpan,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: SourceSpan) -> Self {
        Self { value, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A parsed, validated `airgap.kdl`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The folder holding the manifest: relative paths in it (sources, `dir:` target, CA files)
    /// are relative to this folder, and the workspace state lives in `<root>/.airgap/`.
    pub root: PathBuf,
    /// The manifest's text, for diagnostics raised after parsing.
    pub src: Source,
    pub target: Target,
    pub sources: Vec<SourceDecl>,
    pub registry_mirrors: Vec<RegistryMirror>,
    pub url_mirrors: Vec<UrlMirror>,
    pub images: ImagesDecl,
    pub index_image: IndexImageDecl,
    /// The `deploy` node: the in-cluster deployment `apply` renders, when asked for.
    pub deploy: Option<DeployDecl>,
    /// Credentials written in `git=` and `url-mirror` URLs, taken out of them: every URL
    /// above is without credentials, so nothing stores or prints them.
    pub url_credentials: crate::userinfo::UrlCredentials,
}

/// How a registry is reached: the image layer's own type.
pub use crate::oci::mirror::Tls as TlsMode;

impl TlsMode {
    pub const NAMES: [&'static str; 3] = ["verify", "insecure", "plain-http"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "verify" => Some(Self::Verify),
            "insecure" => Some(Self::Insecure),
            "plain-http" => Some(Self::PlainHttp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Insecure => "insecure",
            Self::PlainHttp => "plain-http",
        }
    }
}

/// Where the offline registry lives.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: TargetKind,
    /// The `target` node, or `None` for the default (`dir:airgap-out`).
    pub span: Option<SourceSpan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A registry: images land under `prefix` (`host[:port][/path]`).
    Registry {
        prefix: String,
        tls: TlsMode,
        ca_file: Option<PathBuf>,
    },
    /// A local folder: an OCI image layout plus the registry tree. Devfiles reference images at
    /// `address` (where `airgap serve` listens).
    Dir { path: PathBuf, address: String },
}

impl TargetKind {
    /// The image-reference prefix devfiles are rewritten to.
    pub fn image_prefix(&self) -> &str {
        match self {
            Self::Registry { prefix, .. } => prefix,
            Self::Dir { address, .. } => address,
        }
    }

    /// The target in words, for messages and `airgap-bundle.json`.
    pub fn describe(&self) -> String {
        match self {
            Self::Registry { prefix, .. } => prefix.clone(),
            Self::Dir { path, address } => format!("dir:{} at {address}", path.display()),
        }
    }
}

/// A `source` node: one devfile registry repository.
#[derive(Debug, Clone)]
pub struct SourceDecl {
    pub name: Spanned<String>,
    pub origin: Origin,
    /// The `stacks` filter, `None` for every stack.
    pub stacks: Option<Vec<Spanned<String>>>,
    /// Whether the samples of `extraDevfileEntries.yaml` are included.
    pub samples: bool,
    pub span: SourceSpan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A git repository at `rev` (a branch, tag or full commit; the remote's default branch
    /// when `None`).
    Git { url: String, rev: Option<String> },
    /// A local folder, relative to the manifest's folder.
    Path(PathBuf),
}

/// A `registry-mirror` rule: images of `from` (a host, or a host and path prefix) are pulled
/// from `to` instead: another registry, or an OCI image layout (`to="dir:PATH"`, the path as
/// written, relative to the manifest's folder unless absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryMirror {
    pub from: String,
    pub to: MirrorTo,
    pub span: SourceSpan,
}

/// Where a `registry-mirror` sends requests: the image layer's own type.
pub use crate::oci::mirror::MirrorTo;

/// How upstream image names map to names under the target: the image layer's own type.
pub use crate::oci::naming::Naming;

impl Naming {
    pub const NAMES: [&'static str; 2] = ["flat", "nested"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "flat" => Some(Self::Flat),
            "nested" => Some(Self::Nested),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flat => "flat",
            Self::Nested => "nested",
        }
    }
}

/// The `images` node.
#[derive(Debug, Clone)]
pub struct ImagesDecl {
    pub naming: Naming,
    /// Platforms kept from multi-platform images (`os/arch[/variant]`); empty keeps all.
    pub platforms: Vec<Spanned<String>>,
    /// Images mirrored although no devfile names them.
    pub include: Vec<Spanned<String>>,
}

/// The `index-image` node: the `devfile-index` image built from the registry tree.
#[derive(Debug, Clone)]
pub struct IndexImageDecl {
    pub name: String,
    pub tag: String,
    pub base: Spanned<String>,
}

/// What the `deploy` node asks for, without spans: the lock records it as it is, and the
/// deployment's manifests are rendered from it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeployConfig {
    /// The name of the Deployment, Service, ConfigMap… (and the `DevfileRegistry` CR).
    pub name: String,
    pub namespace: String,
    /// No registry viewer: `REGISTRY_HEADLESS=true`, and its image is not pinned.
    pub headless: bool,
    /// The operator form: a `DevfileRegistry` CR instead of the plain manifests.
    pub operator: bool,
    /// A PersistentVolumeClaim of this size for the OCI sidecar's storage (else an emptyDir).
    pub storage: Option<String>,
    /// How the registry is reached from outside the cluster.
    pub expose: Option<Expose>,
}

/// An Ingress (Kubernetes) or a Route (OpenShift) in front of the Service's port 8080.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Expose {
    Ingress { host: String, class: Option<String> },
    Route { host: String },
}

impl Expose {
    pub fn host(&self) -> &str {
        match self {
            Self::Ingress { host, .. } | Self::Route { host } => host,
        }
    }
}

/// The `deploy` node.
#[derive(Debug, Clone)]
pub struct DeployDecl {
    pub config: DeployConfig,
    /// The images the pod (or the operator) runs besides the devfile-index image, by role
    /// ([`DEPLOY_ROLES`]): defaults filled in, the viewer left out when headless, the operator
    /// only for the operator form.
    pub images: Vec<(&'static str, Spanned<String>)>,
    pub span: SourceSpan,
}

/// The deployment's image roles, their `deploy` child node, and their default image.
pub const DEPLOY_ROLES: [(&str, &str, &str); 3] = [
    (
        "oci-registry",
        "oci-registry-image",
        "quay.io/devfile/oci-registry:next",
    ),
    (
        "registry-viewer",
        "viewer-image",
        "quay.io/devfile/registry-viewer:next",
    ),
    (
        "operator",
        "operator-image",
        "quay.io/devfile/registry-operator:next",
    ),
];

pub const DEFAULT_INDEX_BASE: &str = "quay.io/devfile/devfile-index-base:next";
pub const DEFAULT_DIR_ADDRESS: &str = "localhost:8080";

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, LoadError> {
        let text = crate::kdl_text::read_limited(path, MAX_SIZE).map_err(|e| match e {
            ReadError::Io(source) => LoadError::Read {
                path: path.to_path_buf(),
                source,
            },
            ReadError::TooLarge => LoadError::TooLarge(TooLarge {
                path: path.to_path_buf(),
                limit: MAX_SIZE,
                what: "manifest",
            }),
        })?;
        let root = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| FILE_NAME.to_string());
        parse(&name, &text, root).map_err(LoadError::Invalid)
    }

    /// Resolves a path written in the manifest against the manifest's folder.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    /// The `registry-mirror` rules, as the image layer takes them: paths resolved against
    /// the manifest's folder.
    pub fn oci_mirrors(&self) -> Vec<crate::oci::mirror::RegistryMirror> {
        self.registry_mirrors
            .iter()
            .map(|r| crate::oci::mirror::RegistryMirror {
                from: r.from.clone(),
                to: match &r.to {
                    MirrorTo::Registry { to, tls, ca_file } => MirrorTo::Registry {
                        to: to.clone(),
                        tls: *tls,
                        ca_file: ca_file.as_ref().map(|p| self.resolve_path(p)),
                    },
                    MirrorTo::Layout(dir) => MirrorTo::Layout(
                        // `./mirror/images` → `<root>/mirror/images`: paths in messages stay plain.
                        self.resolve_path(dir)
                            .components()
                            .filter(|c| !matches!(c, std::path::Component::CurDir))
                            .collect(),
                    ),
                },
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error("cannot read the manifest `{}`", path.display())]
    #[diagnostic(
        code(airgap::manifest::read),
        help("run airgap in the folder that holds airgap.kdl, or pass --manifest PATH")
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    TooLarge(TooLarge),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Diagnostics),
}
