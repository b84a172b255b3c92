//! How this machine reaches a registry: TLS mode, private CA, and registry mirrors (pull-through
//! caches, proxies, test setups) that replace an upstream host or path prefix.

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
/// (`host[:port][/path prefix]`) instead, with `tls` and `ca_file` for that host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryMirror {
    pub from: String,
    pub to: String,
    pub tls: Tls,
    pub ca_file: Option<PathBuf>,
}

/// Where an upstream image is actually fetched from.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub access: RegistryAccess,
    /// Repository path on that host.
    pub repository: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.access.host, self.repository)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self}, {:?})", self.access.tls)
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

    /// The endpoint for `image`: the longest matching mirror's `to` plus the rest of the path,
    /// or the image's own registry (`docker.io` is reached at `registry-1.docker.io`) over
    /// verified TLS.
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
                let to = m.to.trim_end_matches('/');
                let (host, prefix) = to.split_once('/').unwrap_or((to, ""));
                let repository = match (prefix.is_empty(), rest.is_empty()) {
                    // A whole repository mirrored to a bare host keeps its path.
                    (true, true) => image.repository().to_owned(),
                    (true, false) => rest.to_owned(),
                    (false, true) => prefix.to_owned(),
                    (false, false) => format!("{prefix}/{rest}"),
                };
                Endpoint {
                    access: RegistryAccess {
                        host: host.to_owned(),
                        tls: m.tls,
                        ca_file: m.ca_file.clone(),
                    },
                    repository,
                }
            }
            None => Endpoint {
                access: RegistryAccess::new(
                    if image.registry() == DOCKER_HUB {
                        "registry-1.docker.io"
                    } else {
                        image.registry()
                    },
                    Tls::Verify,
                ),
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
        RegistryMirror {
            from: from.into(),
            to: to.into(),
            tls: Tls::PlainHttp,
            ca_file: None,
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
        assert_eq!(e.access.tls, Tls::PlainHttp);
        let e = mirrors
            .endpoint(&ImageRef::parse("registry.access.redhat.com/ubi9/go-toolset:1").unwrap());
        assert_eq!(e.to_string(), "127.0.0.1:5002/ubi9/go-toolset");
        let e = mirrors.endpoint(&ImageRef::parse("quay.io/devfile/udi:1").unwrap());
        assert_eq!(e.to_string(), "127.0.0.1:5003/q/udi");
        // Component-wise: `quay.io/devfile` does not match `quay.io/devfilex`.
        let e = mirrors.endpoint(&ImageRef::parse("quay.io/devfilex/udi:1").unwrap());
        assert_eq!(e.to_string(), "quay.io/devfilex/udi");
        assert_eq!(e.access.tls, Tls::Verify);
        let e = mirrors.endpoint(&ImageRef::parse("openjdk:11-jdk").unwrap());
        assert_eq!(e.to_string(), "127.0.0.1:5004/library/openjdk");
        let e = Mirrors::default().endpoint(&ImageRef::parse("openjdk:11-jdk").unwrap());
        assert_eq!(e.to_string(), "registry-1.docker.io/library/openjdk");
    }
}
