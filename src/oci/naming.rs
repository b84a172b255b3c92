//! Where an upstream image lands on the target: `flat` or `nested` naming under a prefix, and
//! the check that no two different upstream images land on one target reference.

use std::collections::BTreeMap;
use std::fmt;

use super::digest::Digest;
use super::reference::{ImageRef, valid_host, valid_path_component};

/// How upstream repository paths map to target repository paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Naming {
    /// `<prefix>/<last path part>`, as the manual procedure does: short names, but two
    /// upstreams with the same last part collide (the collision check reports it).
    #[default]
    Flat,
    /// `<prefix>/<upstream host>/<upstream path>`: never collides. The upstream host is kept
    /// (a `:port` becomes `_port`, as `:` is not allowed in a path) because the same path on two
    /// registries is two different images (`docker.io/library/python` vs `quay.io/…/python`).
    Nested,
}

/// The target registry and optional path under which images land: `host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetPrefix {
    host: String,
    path: String,
}

/// Why a target prefix is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("`{literal}` is not a valid image target: {reason}")]
#[diagnostic(
    code(airgap::oci::target),
    help(
        "an image target looks like `host[:port][/path]`, e.g. `registry.internal:5000/devfiles`"
    )
)]
pub struct TargetError {
    pub literal: String,
    pub reason: String,
}

impl TargetPrefix {
    pub fn parse(literal: &str) -> Result<Self, TargetError> {
        let err = |reason: String| TargetError {
            literal: literal.to_owned(),
            reason,
        };
        let trimmed = literal.trim_end_matches('/');
        let (host, path) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        if host.is_empty() {
            return Err(err("it has no host".into()));
        }
        if host.contains("://") || literal.contains("://") {
            return Err(err(
                "it must not have a scheme (`https://`); say `tls=` instead".into(),
            ));
        }
        if !valid_host(host) {
            return Err(err(format!("`{host}` is not a valid host[:port]")));
        }
        if !path.is_empty()
            && let Some(bad) = path.split('/').find(|c| !valid_path_component(c))
        {
            return Err(err(format!(
                "`{bad}` is not a valid repository path component"
            )));
        }
        Ok(TargetPrefix {
            host: host.to_ascii_lowercase(),
            path: path.to_owned(),
        })
    }

    /// `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path under the host, possibly empty.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where `upstream` lands under this prefix.
    pub fn target_for(&self, upstream: &ImageRef, naming: Naming) -> TargetRef {
        let tail = match naming {
            Naming::Flat => upstream
                .repository()
                .rsplit('/')
                .next()
                .unwrap_or(upstream.repository())
                .to_owned(),
            Naming::Nested => format!(
                "{}/{}",
                nested_host_component(upstream.registry()),
                upstream.repository()
            ),
        };
        let repository = if self.path.is_empty() {
            tail
        } else {
            format!("{}/{tail}", self.path)
        };
        TargetRef {
            host: self.host.clone(),
            repository,
            tag: upstream.tag().map(str::to_owned),
        }
    }

    /// A reference under this prefix for an image that has no upstream (the devfile-index
    /// image, stack artifacts): `<prefix>/<name>:<tag>`.
    pub fn named(&self, name: &str, tag: Option<&str>) -> TargetRef {
        TargetRef {
            host: self.host.clone(),
            repository: if self.path.is_empty() {
                name.to_owned()
            } else {
                format!("{}/{name}", self.path)
            },
            tag: tag.map(str::to_owned),
        }
    }
}

impl fmt::Display for TargetPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if !self.path.is_empty() {
            write!(f, "/{}", self.path)?;
        }
        Ok(())
    }
}

/// `[::1]:5000` → `1_5000`-like safe component; `quay.io` stays, `localhost:5000` →
/// `localhost_5000`.
fn nested_host_component(host: &str) -> String {
    let mapped: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mapped = mapped.trim_matches(|c| c == '_' || c == '.').to_owned();
    // Collapse runs of `_` longer than two, which a path component does not allow.
    let mut out = String::with_capacity(mapped.len());
    for c in mapped.chars() {
        if c == '_' && out.ends_with("__") {
            continue;
        }
        out.push(c);
    }
    out
}

/// An image's name on the target: `host/repository[:tag]`. The digest is not part of it (it is
/// what lands); [`TargetRef::pinned`] gives the readable pinned form for rewritten devfiles.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetRef {
    pub host: String,
    /// The full path on the target host, e.g. `devfiles/go-toolset`.
    pub repository: String,
    /// `None` for digest-only upstream references: the target is then `name@digest`.
    pub tag: Option<String>,
}

impl TargetRef {
    /// `host/repository:tag@digest` (or `host/repository@digest` without a tag).
    pub fn pinned(&self, digest: &Digest) -> String {
        match &self.tag {
            Some(tag) => format!("{}/{}:{tag}@{digest}", self.host, self.repository),
            None => format!("{}/{}@{digest}", self.host, self.repository),
        }
    }

    /// `repository:tag`, the name an OCI layout gives this image
    /// (`org.opencontainers.image.ref.name`); `None` without a tag.
    pub fn layout_ref_name(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|tag| format!("{}:{tag}", self.repository))
    }
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        Ok(())
    }
}

/// Two different upstream images would land on one target reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error(
    "`{first}` (used by {first_users}) and `{second}` (used by {second_users}) would both land on `{target}`"
)]
#[diagnostic(
    code(airgap::oci::collision),
    help("use `naming=\"nested\"`, or pin both to one image")
)]
pub struct Collision {
    pub target: String,
    pub first: String,
    pub first_users: String,
    pub second: String,
    pub second_users: String,
}

/// Maps every upstream image to its target and reports each pair of *different* upstream
/// images that land on one tagged target reference. The same repository and tag written twice
/// (once pinned, once not) is one image; two pins to different digests are two.
/// Digest-only targets never collide: equal digests are equal content.
pub fn check_collisions<'a, U>(
    prefix: &TargetPrefix,
    naming: Naming,
    images: impl IntoIterator<Item = (&'a ImageRef, U)>,
) -> Result<BTreeMap<ImageRef, TargetRef>, Vec<Collision>>
where
    U: IntoIterator,
    U::Item: fmt::Display,
{
    let mut targets = BTreeMap::new();
    let mut by_target: BTreeMap<String, Vec<(&ImageRef, Vec<String>)>> = BTreeMap::new();
    for (image, users) in images {
        let target = prefix.target_for(image, naming);
        let mut users: Vec<String> = users.into_iter().map(|u| u.to_string()).collect();
        users.sort();
        users.dedup();
        if target.tag.is_some() {
            by_target
                .entry(target.to_string())
                .or_default()
                .push((image, users));
        }
        targets.insert(image.clone(), target);
    }
    let mut collisions = Vec::new();
    for (target, mut sources) in by_target {
        sources.sort_by(|a, b| a.0.cmp(b.0));
        for i in 0..sources.len() {
            for j in i + 1..sources.len() {
                let (a, b) = (sources[i].0, sources[j].0);
                let same_image = a.name() == b.name()
                    && a.tag() == b.tag()
                    && (a.digest().is_none() || b.digest().is_none() || a.digest() == b.digest());
                if !same_image {
                    let users = |u: &Vec<String>| {
                        if u.is_empty() {
                            "the manifest".to_owned()
                        } else {
                            u.iter()
                                .map(|u| format!("`{u}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    };
                    collisions.push(Collision {
                        target: target.clone(),
                        first: a.to_string(),
                        first_users: users(&sources[i].1),
                        second: b.to_string(),
                        second_users: users(&sources[j].1),
                    });
                }
            }
        }
    }
    if collisions.is_empty() {
        Ok(targets)
    } else {
        Err(collisions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const E: &str = "sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn flat_and_nested() {
        let p = TargetPrefix::parse("registry.internal:5000/devfiles").unwrap();
        let up = r("registry.access.redhat.com/ubi9/go-toolset:1.24");
        assert_eq!(
            p.target_for(&up, Naming::Flat).to_string(),
            "registry.internal:5000/devfiles/go-toolset:1.24"
        );
        assert_eq!(
            p.target_for(&up, Naming::Nested).to_string(),
            "registry.internal:5000/devfiles/registry.access.redhat.com/ubi9/go-toolset:1.24"
        );
        let local = TargetPrefix::parse("localhost:8080").unwrap();
        let t = local.target_for(&r("openjdk:11-jdk"), Naming::Flat);
        assert_eq!(t.to_string(), "localhost:8080/openjdk:11-jdk");
        assert_eq!(t.layout_ref_name().as_deref(), Some("openjdk:11-jdk"));
        let t = local.target_for(&r("localhost:5000/a/b:1"), Naming::Nested);
        assert_eq!(t.repository, "localhost_5000/a/b");
    }

    #[test]
    fn digest_only_keeps_no_tag() {
        let p = TargetPrefix::parse("reg:5000").unwrap();
        let t = p.target_for(&r(&format!("bitnami/mongodb@{D}")), Naming::Flat);
        assert_eq!(t.tag, None);
        assert_eq!(
            t.pinned(&D.parse().unwrap()),
            format!("reg:5000/mongodb@{D}")
        );
        let t = p.target_for(&r(&format!("quay.io/a/udi:1@{D}")), Naming::Flat);
        assert_eq!(t.pinned(&D.parse().unwrap()), format!("reg:5000/udi:1@{D}"));
    }

    #[test]
    fn prefix_errors() {
        assert!(TargetPrefix::parse("https://reg").is_err());
        assert!(TargetPrefix::parse("reg:x").is_err());
        assert!(TargetPrefix::parse("reg/Up").is_err());
        assert!(TargetPrefix::parse("").is_err());
        assert_eq!(
            TargetPrefix::parse("reg:5000/a/").unwrap().to_string(),
            "reg:5000/a"
        );
    }

    #[test]
    fn collisions_name_both_images_and_users() {
        let p = TargetPrefix::parse("reg:5000").unwrap();
        let a = r("quay.io/devfile/udi:1");
        let b = r("docker.io/someone/udi:1");
        let a_pinned = r(&format!("quay.io/devfile/udi:1@{D}"));
        let ok = check_collisions(
            &p,
            Naming::Flat,
            [(&a, vec!["stacks/go"]), (&a_pinned, vec!["stacks/node"])],
        );
        assert!(ok.is_ok());
        let errs = check_collisions(
            &p,
            Naming::Flat,
            [
                (&a, vec!["stacks/go", "stacks/go"]),
                (&b, vec!["stacks/java"]),
            ],
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "`docker.io/someone/udi:1` (used by `stacks/java`) and `quay.io/devfile/udi:1` (used by `stacks/go`) would both land on `reg:5000/udi:1`"
        );
        assert!(check_collisions(&p, Naming::Nested, [(&a, ["x"]), (&b, ["y"])]).is_ok());
        // Two pins of one tag to different digests are two images.
        let a2 = r(&format!("quay.io/devfile/udi:1@{E}"));
        assert!(check_collisions(&p, Naming::Flat, [(&a_pinned, ["x"]), (&a2, ["y"])]).is_err());
        // Digest-only targets never collide.
        let d1 = r(&format!("quay.io/x/m@{D}"));
        let d2 = r(&format!("docker.io/y/m@{D}"));
        assert!(check_collisions(&p, Naming::Flat, [(&d1, ["x"]), (&d2, ["y"])]).is_ok());
    }
}
