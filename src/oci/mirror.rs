//! How this machine reaches a registry: TLS mode, private CA, and registry mirrors (pull-through
//! caches, proxies, test setups) that replace an upstream host or path prefix.
//!
//! A mirror is another registry, or an OCI image layout on disk (`to="dir:PATH"`): images are
//! then looked up in the layout's `index.json` by `org.opencontainers.image.ref.name` =
//! `<repository>:<tag>` (the repository being the upstream path after the mirror's `from`
//! prefix, as for a registry mirror), and by digest among its blobs. No network, no registry:
//! what a fresh clone of the quickstart, or a folder filled by `skopeo copy … oci:DIR:NAME`,
//! needs.

use std::fmt;
use std::path::PathBuf;

use super::reference::{DOCKER_HUB, ImageRef};

/// How to talk to a registry.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Tls {
    /// HTTPS with certificate verification (system roots, plus `ca_file` when given).
    #[default]
    Verify,
    /// HTTPS without verifying the certificate.
    Insecure,
    /// Plain HTTP.
    PlainHttp,
}

/// A registry as contacted: host, TLS mode and optional extra CA.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryAccess {
    /// `host[:port]`.
    pub host: String,
    pub tls: Tls,
    pub ca_file: Option<PathBuf>,
}

impl RegistryAccess {
    pub fn new(host: impl Into<String>, tls: Tls) -> Self {
        RegistryAccess {
            host: host.into(),
            tls,
            ca_file: None,
        }
    }

    pub fn with_ca_file(mut self, ca_file: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(ca_file.into());
        self
    }
}

/// `registry-mirror "FROM" to="TO"`: requests for images whose `registry/repository` starts
/// with `from` (a host, or host plus path prefix, matched on whole path components) go to `to`
/// instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryMirror {
    pub from: String,
    pub to: MirrorTo,
}

/// Where a [`RegistryMirror`] sends requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorTo {
    /// Another registry, `host[:port][/path prefix]`, reached with `tls` and `ca_file`.
    Registry {
        to: String,
        tls: Tls,
        ca_file: Option<PathBuf>,
    },
    /// An OCI image layout folder (absolute, or relative to the working directory).
    Layout(PathBuf),
}

impl RegistryMirror {
    /// A mirror registry (`host[:port][/path]`) without a private CA.
    pub fn registry(from: impl Into<String>, to: impl Into<String>, tls: Tls) -> Self {
        RegistryMirror {
            from: from.into(),
            to: MirrorTo::Registry {
                to: to.into(),
                tls,
                ca_file: None,
            },
        }
    }

    /// A mirror in an OCI image layout.
    pub fn layout(from: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        RegistryMirror {
            from: from.into(),
            to: MirrorTo::Layout(dir.into()),
        }
    }
}

/// What serves an upstream image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Registry(RegistryAccess),
    /// An OCI image layout (see the module doc for the lookup).
    Layout(PathBuf),
}

/// Where an upstream image is actually fetched from.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub upstream: Upstream,
    /// Repository path on that host, or the repository part of `ref.name` in a layout.
    pub repository: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.upstream {
            Upstream::Registry(access) => write!(f, "{}/{}", access.host, self.repository),
            Upstream::Layout(dir) => write!(f, "oci:{}:{}", dir.display(), self.repository),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.upstream {
            Upstream::Registry(access) => write!(f, "Endpoint({self}, {:?})", access.tls),
            Upstream::Layout(_) => write!(f, "Endpoint({self})"),
        }
    }
}

/// The mirror table.
#[derive(Debug, Clone, Default)]
pub struct Mirrors {
    mirrors: Vec<RegistryMirror>,
}

impl Mirrors {
    pub fn new(mirrors: Vec<RegistryMirror>) -> Self {
        Mirrors { mirrors }
    }

    /// The endpoint for `image`: the longest matching mirror's `to` plus the rest of the path
    /// (in a layout: the rest of the path is the repository), or the image's own registry
    /// (`docker.io` is reached at `registry-1.docker.io`) over verified TLS.
    pub fn endpoint(&self, image: &ImageRef) -> Endpoint {
        let full = image.name();
        let matching = self
            .mirrors
            .iter()
            .filter(|m| {
                let from = normalize_from(&m.from);
                full == from
                    || full
                        .strip_prefix(from.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|m| normalize_from(&m.from).len());
        match matching {
            Some(m) => {
                let from = normalize_from(&m.from);
                let rest = full[from.len()..].trim_start_matches('/');
                let (upstream, prefix) = match &m.to {
                    MirrorTo::Registry { to, tls, ca_file } => {
                        let to = to.trim_end_matches('/');
                        let (host, prefix) = to.split_once('/').unwrap_or((to, ""));
                        let access = RegistryAccess {
                            host: host.to_owned(),
                            tls: *tls,
                            ca_file: ca_file.clone(),
                        };
                        (Upstream::Registry(access), prefix)
                    }
                    MirrorTo::Layout(dir) => (Upstream::Layout(dir.clone()), ""),
                };
                let repository = match (prefix.is_empty(), rest.is_empty()) {
                    // A whole repository mirrored to a bare host keeps its path.
                    (true, true) => image.repository().to_owned(),
                    (true, false) => rest.to_owned(),
                    (false, true) => prefix.to_owned(),
                    (false, false) => format!("{prefix}/{rest}"),
                };
                Endpoint {
                    upstream,
                    repository,
                }
            }
            None => Endpoint {
                upstream: Upstream::Registry(RegistryAccess::new(
                    if image.registry() == DOCKER_HUB {
                        "registry-1.docker.io"
                    } else {
                        image.registry()
                    },
                    Tls::Verify,
                )),
                repository: image.repository().to_owned(),
            },
        }
    }
}

/// `index.docker.io` and `docker.io` are one registry; `docker.io/node` means `library/node`.
fn normalize_from(from: &str) -> String {
    let from = from.trim_end_matches('/');
    let (host, path) = from.split_once('/').unwrap_or((from, ""));
    let host = host.to_ascii_lowercase();
    let host = if host == "index.docker.io" || host == "registry-1.docker.io" {
        DOCKER_HUB.to_owned()
    } else {
        host
    };
    if path.is_empty() {
        host
    } else if host == DOCKER_HUB && !path.contains('/') && path != "library" {
        format!("{host}/library/{path}")
    } else {
        format!("{host}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(from: &str, to: &str) -> RegistryMirror {
        RegistryMirror::registry(from, to, Tls::PlainHttp)
    }

    fn tls(e: &Endpoint) -> Option<Tls> {
        match &e.upstream {
            Upstream::Registry(a) => Some(a.tls),
            Upstream::Layout(_) => None,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let mirrors = Mirrors::new(vec![
            m("registry.access.redhat.com", "127.0.0.1:5001/redhat"),
            m(
                "registry.access.redhat.com/ubi9/go-toolset",
                "127.0.0.1:5002",
            ),
            m("quay.io/devfile", "127.0.0.1:5003/q/"),
            m("docker.io", "127.0.0.1:5004"),
        ]);
        let e = mirrors
            .endpoint(&ImageRef::parse("registry.access.redhat.com/ubi9/python-39:1").unwrap());
        assert_eq!(e.to_string(), "127.0.0.1:5001/redhat/ubi9/python-39");
        assert_eq!(tls(&e), Some(Tls::PlainHttp));
        let e = mirrors
            .endpoint(&ImageRef::parse("registry.access.redhat.com/ubi9/go-toolset:1").unwrap());
        assert_eq!(e.to_string(), "127.0.0.1:5002/ubi9/go-toolset");
        let e = mirrors.endpoint(&ImageRef::parse("quay.io/devfile/udi:1").unwrap());
        assert_eq!(e.to_string(), "127.0.0.1:5003/q/udi");
        // Component-wise: `quay.io/devfile` does not match `quay.io/devfilex`.
        let e = mirrors.endpoint(&ImageRef::parse("quay.io/devfilex/udi:1").unwrap());
        assert_eq!(e.to_string(), "quay.io/devfilex/udi");
        assert_eq!(tls(&e), Some(Tls::Verify));
        let e = mirrors.endpoint(&ImageRef::parse("openjdk:11-jdk").unwrap());
        assert_eq!(e.to_string(), "127.0.0.1:5004/library/openjdk");
        let e = Mirrors::default().endpoint(&ImageRef::parse("openjdk:11-jdk").unwrap());
        assert_eq!(e.to_string(), "registry-1.docker.io/library/openjdk");
    }

    #[test]
    fn a_layout_mirror_takes_the_path_after_its_prefix_as_the_repository() {
        let mirrors = Mirrors::new(vec![
            RegistryMirror::layout("quay.io", "/srv/images"),
            RegistryMirror::layout("quay.io/devfile", "/srv/devfile"),
            RegistryMirror::layout("docker.io", "/srv/hub"),
            RegistryMirror::layout("ghcr.io/org/one", "/srv/one"),
        ]);
        let e = mirrors.endpoint(&ImageRef::parse("quay.io/airgap-example/go-toolset:1").unwrap());
        assert_eq!(e.upstream, Upstream::Layout("/srv/images".into()));
        assert_eq!(e.repository, "airgap-example/go-toolset");
        assert_eq!(e.to_string(), "oci:/srv/images:airgap-example/go-toolset");
        let e = mirrors.endpoint(&ImageRef::parse("quay.io/devfile/udi:1").unwrap());
        assert_eq!(e.upstream, Upstream::Layout("/srv/devfile".into()));
        assert_eq!(e.repository, "udi");
        let e = mirrors.endpoint(&ImageRef::parse("node:18").unwrap());
        assert_eq!(e.repository, "library/node");
        // A whole repository mirrored keeps its path, as on a bare registry host.
        let e = mirrors.endpoint(&ImageRef::parse("ghcr.io/org/one:2").unwrap());
        assert_eq!(e.repository, "org/one");
    }
}
