//! Image references as written in devfiles and Dockerfiles, normalized the way docker does.
//!
//! A small parser of our own rather than `oci_client::Reference`: it gives errors that say which
//! part of the literal is wrong (with its byte range, so the manifest layer can point a
//! diagnostic inside a string), keeps `docker.io` (not `index.docker.io`) as the canonical host,
//! and makes `latest` explicit so the canonical form can be used as a lock key.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use super::digest::Digest;

/// The registry that short names (`openjdk:11-jdk`, `bitnami/mongodb`) refer to.
pub const DOCKER_HUB: &str = "docker.io";

/// A normalized image reference: `registry/repository[:tag][@digest]`.
///
/// Invariants: `registry` is a lowercase host with an optional port (`docker.io` for short
/// names, never `index.docker.io`); `repository` is non-empty, lowercase, made of valid path
/// components (`library/` is added for single-component Docker Hub names); at least one of
/// `tag` and `digest` is set (`latest` is made explicit when neither was written).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a literal is not an image reference. `span` is the byte range of the offending part
/// inside `literal`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error(
    "`{}` is not a valid image reference: {reason}",
    crate::diag::literal(literal)
)]
#[diagnostic(code(airgap::oci::reference))]
pub struct RefError {
    pub literal: String,
    pub reason: String,
    pub span: Range<usize>,
    #[help]
    pub help: Option<String>,
}

impl ImageRef {
    /// Parses and normalizes a reference (see the type's invariants).
    pub fn parse(literal: &str) -> Result<Self, RefError> {
        let err = |reason: String, span: Range<usize>, help: Option<&str>| RefError {
            literal: literal.to_owned(),
            reason,
            span,
            help: help.map(str::to_owned),
        };
        if literal.is_empty() {
            return Err(err("it is empty".into(), 0..0, None));
        }
        if let Some(pos) = literal.find(|c: char| c.is_whitespace()) {
            return Err(err(
                "it contains whitespace".into(),
                pos..pos + 1,
                Some("remove the spaces around and inside the reference"),
            ));
        }

        // name[:tag][@digest]
        let (name_tag, digest) = match literal.rfind('@') {
            Some(at) => {
                let text = &literal[at + 1..];
                let digest = text.parse::<Digest>().map_err(|e| {
                    err(
                        format!("the digest `{}` {}", crate::diag::literal(text), e.reason),
                        at + 1..literal.len(),
                        Some("a digest looks like `sha256:` followed by 64 lowercase hex digits"),
                    )
                })?;
                (&literal[..at], Some(digest))
            }
            None => (literal, None),
        };
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(colon) => {
                let colon = last_slash + colon;
                let tag = &name_tag[colon + 1..];
                if !valid_tag(tag) {
                    return Err(err(
                        format!("the tag `{}` is not valid", crate::diag::literal(tag)),
                        colon + 1..name_tag.len(),
                        Some(
                            "a tag has 1 to 128 letters, digits, `_`, `.` or `-`, and does not start with `.` or `-`",
                        ),
                    ));
                }
                (&name_tag[..colon], Some(tag.to_owned()))
            }
            None => (name_tag, None),
        };
        if name.is_empty() {
            return Err(err("the repository name is empty".into(), 0..0, None));
        }

        // [host/]path
        let (registry, path, path_start) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !valid_host(first) {
                    return Err(err(
                        format!(
                            "the registry host `{}` is not valid",
                            crate::diag::literal(first)
                        ),
                        0..first.len(),
                        Some("a registry is a host name or address with an optional `:port`"),
                    ));
                }
                let host = first.to_ascii_lowercase();
                let host = if host == "index.docker.io" || host == "registry-1.docker.io" {
                    DOCKER_HUB.to_owned()
                } else {
                    host
                };
                (host, rest, first.len() + 1)
            }
            _ => (DOCKER_HUB.to_owned(), name, 0),
        };
        let mut offset = path_start;
        for component in path.split('/') {
            let span = offset..offset + component.len();
            if component.is_empty() {
                return Err(err(
                    "the repository path has an empty component".into(),
                    span,
                    Some("remove the doubled or trailing `/`"),
                ));
            }
            if component.bytes().any(|b| b.is_ascii_uppercase())
                && valid_path_component(&component.to_ascii_lowercase())
            {
                return Err(err(
                    format!(
                        "the repository name `{}` has uppercase letters",
                        crate::diag::literal(component)
                    ),
                    span,
                    Some("repository names are lowercase"),
                ));
            }
            if !valid_path_component(component) {
                return Err(err(
                    format!(
                        "`{}` is not a valid repository path component",
                        crate::diag::literal(component)
                    ),
                    span,
                    Some(
                        "a path component is lowercase letters and digits, separated by `.`, `_`, `__` or dashes",
                    ),
                ));
            }
            offset += component.len() + 1;
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        if registry.len() + 1 + repository.len() > 255 {
            return Err(err(
                "the name is longer than 255 characters".into(),
                0..name.len(),
                None,
            ));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_owned())
        } else {
            tag
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with port if any (`docker.io`, `quay.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path on the registry (`library/openjdk`, `devfile/universal-developer-image`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same reference pinned to `digest` (the tag, if any, is kept for readability).
    pub fn with_digest(&self, digest: Digest) -> Self {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub(crate) fn reference(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.as_str(),
            (None, Some(t)) => t,
            // Unreachable by construction; `latest` is what docker would ask for.
            (None, None) => "latest",
        }
    }
}

impl FromStr for ImageRef {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// The canonical form, used as the lock key: `docker.io/library/openjdk:11-jdk`,
/// `quay.io/devfile/udi:ubi9@sha256:…`.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({self})")
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(crate) fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
pub(crate) fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|s| s == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A DNS name or IPv4 address (or `[IPv6]`) with an optional `:port`.
pub(crate) fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn canon(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_short_names() {
        assert_eq!(canon("openjdk:11-jdk"), "docker.io/library/openjdk:11-jdk");
        assert_eq!(canon("openjdk"), "docker.io/library/openjdk:latest");
        assert_eq!(
            canon(&format!("bitnami/mongodb@{D}")),
            format!("docker.io/bitnami/mongodb@{D}")
        );
        assert_eq!(
            canon("index.docker.io/library/node:20"),
            "docker.io/library/node:20"
        );
        assert_eq!(canon("docker.io/node:20"), "docker.io/library/node:20");
    }

    #[test]
    fn hosts_ports_tags_digests() {
        assert_eq!(
            canon("registry.access.redhat.com/ubi9/go-toolset:1.24.4-1752083840"),
            "registry.access.redhat.com/ubi9/go-toolset:1.24.4-1752083840"
        );
        assert_eq!(canon("localhost:5000/a/b"), "localhost:5000/a/b:latest");
        assert_eq!(canon("localhost/a"), "localhost/a:latest");
        assert_eq!(canon("127.0.0.1:5000/x:y"), "127.0.0.1:5000/x:y");
        let r = ImageRef::parse(&format!("quay.io/devfile/udi:ubi9@{D}")).unwrap();
        assert_eq!(r.tag(), Some("ubi9"));
        assert_eq!(r.digest().map(Digest::as_str), Some(D));
        assert_eq!(r.reference(), D);
        assert_eq!(r.registry(), "quay.io");
        assert_eq!(r.repository(), "devfile/udi");
        assert_eq!(canon("Quay.IO/a:b"), "quay.io/a:b");
        assert_eq!(canon("[::1]:5000/a:b"), "[::1]:5000/a:b");
    }

    #[test]
    fn errors_name_the_part() {
        let e = ImageRef::parse("quay.io/Devfile/udi:1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`quay.io/Devfile/udi:1` is not a valid image reference: the repository name `Devfile` has uppercase letters"
        );
        assert_eq!(&e.literal[e.span.clone()], "Devfile");
        let e = ImageRef::parse("node:-x").unwrap_err();
        assert!(e.reason.contains("tag `-x`"), "{e}");
        assert_eq!(&e.literal[e.span.clone()], "-x");
        let e = ImageRef::parse("node@sha256:abc").unwrap_err();
        assert!(e.reason.contains("digest"), "{e}");
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse("a//b").is_err());
        assert!(ImageRef::parse("quay.io/a b").is_err());
        assert!(ImageRef::parse("quay.io:x/a").is_err());
        assert!(ImageRef::parse("a/b/").is_err());
        assert!(ImageRef::parse("{{image}}").is_err());
    }

    #[test]
    fn components() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "udi9"] {
            assert!(valid_path_component(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a___b", "a.-b", "A"] {
            assert!(!valid_path_component(bad), "{bad}");
        }
    }
}
