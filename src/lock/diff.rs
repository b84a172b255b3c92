//! What changed between two lockfiles, entry by entry, in the words `airgap lock` prints
//! (as `cargo update` prints `Updating foo v1.0.0 -> v1.0.1`): a source's commit, an image's
//! digest, a stack version added or removed, a starter project's commit, a download's hash.

use std::collections::BTreeMap;
use std::fmt;

use super::{LockedImage, LockedProject, LockedSource, Lockfile};

/// One difference between an old and a new lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// What the entry is: `source community`, `image quay.io/a/b:1`, `stack community go/2.6.0`.
    pub what: String,
    /// `old → new` for an update; empty for an addition or a removal.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Added,
    Updated,
    Removed,
}

impl ChangeKind {
    /// The status word printed in front of the change.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Added => "Adding",
            Self::Updated => "Updating",
            Self::Removed => "Removing",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.what)
        } else {
            write!(f, "{}: {}", self.what, self.detail)
        }
    }
}

/// A commit id or a digest, shortened for reading (`0c4784f`, `sha256:3f2a9c1b04de`).
fn short(id: &str) -> String {
    match id.split_once(':') {
        Some((algo, hex)) => format!("{algo}:{}", &hex[..hex.len().min(12)]),
        None => id[..id.len().min(7)].to_string(),
    }
}

fn arrow(old: &str, new: &str) -> String {
    format!("{} → {}", short(old), short(new))
}

/// What an update shows when `version` gives it (`None` when the entry changed in a way not
/// worth a version, e.g. only the devfile hash: then `changed`).
fn versioned<V>(version: impl Fn(&V) -> Option<String>) -> impl Fn(&V, &V) -> String {
    move |o, n| match (version(o), version(n)) {
        (Some(a), Some(b)) if a != b => arrow(&a, &b),
        _ => "changed".into(),
    }
}

/// An image's update: its upstream digest, and the digest that lands when a platform filter
/// makes it another (`sha256:… → sha256:…, lands as sha256:… → sha256:…`).
fn image_detail(old: &LockedImage, new: &LockedImage) -> String {
    let (Some(o), Some(n)) = (&old.resolved, &new.resolved) else {
        return "changed".into();
    };
    let mut parts = Vec::new();
    if o.digest != n.digest {
        parts.push(arrow(&o.digest, &n.digest));
    }
    if (o.filtered.is_some() || n.filtered.is_some()) && o.landed_digest() != n.landed_digest() {
        parts.push(format!(
            "lands as {}",
            arrow(o.landed_digest(), n.landed_digest())
        ));
    }
    if parts.is_empty() {
        "changed".into()
    } else {
        parts.join(", ")
    }
}

/// Compares two maps entry by entry: `describe` names an entry, `detail` says how an updated
/// one changed.
fn compare<K: Ord, V: PartialEq>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
    describe: impl Fn(&K) -> String,
    detail: impl Fn(&V, &V) -> String,
    out: &mut Vec<Change>,
) {
    for (k, v) in new {
        match old.get(k) {
            None => out.push(Change {
                kind: ChangeKind::Added,
                what: describe(k),
                detail: String::new(),
            }),
            Some(o) if o != v => out.push(Change {
                kind: ChangeKind::Updated,
                what: describe(k),
                detail: detail(o, v),
            }),
            Some(_) => {}
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        out.push(Change {
            kind: ChangeKind::Removed,
            what: describe(k),
            detail: String::new(),
        });
    }
}

/// Every entry of `new` that is not in `old` as it is, in the lock's section order.
pub fn diff(old: &Lockfile, new: &Lockfile) -> Vec<Change> {
    let mut out = Vec::new();
    if old.target != new.target {
        out.push(Change {
            kind: ChangeKind::Updated,
            what: "target".into(),
            detail: format!(
                "{} ({}) → {} ({})",
                old.target.prefix, old.target.naming, new.target.prefix, new.target.naming
            ),
        });
    }
    if old.platforms != new.platforms {
        out.push(Change {
            kind: ChangeKind::Updated,
            what: "platforms".into(),
            detail: format!(
                "{} → {}",
                super::platforms::shown(&old.platforms),
                super::platforms::shown(&new.platforms)
            ),
        });
    }
    compare(
        &old.sources,
        &new.sources,
        |name| format!("source {name}"),
        versioned(|s: &LockedSource| match s {
            LockedSource::Git { commit, .. } => Some(commit.clone()),
            LockedSource::Path { .. } => None,
        }),
        &mut out,
    );
    compare(
        &old.stacks,
        &new.stacks,
        |(source, id)| format!("stack {source} {id}"),
        versioned(|_| None),
        &mut out,
    );
    compare(
        &old.samples,
        &new.samples,
        |(source, id)| format!("sample {source} {id}"),
        versioned(|s: &super::LockedSample| Some(s.commit.clone())),
        &mut out,
    );
    compare(
        &old.extra_entries,
        &new.extra_entries,
        |source| format!("extraDevfileEntries.yaml of {source}"),
        versioned(|_| None),
        &mut out,
    );
    compare(
        &old.projects,
        &new.projects,
        |k| format!("{} {} {} {}", k.kind.node_name(), k.source, k.owner, k.name),
        versioned(|p: &LockedProject| match p {
            LockedProject::Git { commit, .. } => Some(commit.clone()),
            LockedProject::Zip { sha256, .. } => Some(format!("sha256:{sha256}")),
        }),
        &mut out,
    );
    compare(
        &old.downloads,
        &new.downloads,
        |url| format!("download {url}"),
        versioned(|d: &super::LockedDownload| Some(format!("sha256:{}", d.sha256))),
        &mut out,
    );
    compare(
        &old.images,
        &new.images,
        |key| format!("image {key}"),
        image_detail,
        &mut out,
    );
    if old.deploy != new.deploy {
        out.push(Change {
            kind: match (&old.deploy, &new.deploy) {
                (None, Some(_)) => ChangeKind::Added,
                (Some(_), None) => ChangeKind::Removed,
                _ => ChangeKind::Updated,
            },
            what: "deploy".into(),
            detail: match (&old.deploy, &new.deploy) {
                (Some(_), Some(_)) => "changed".into(),
                _ => String::new(),
            },
        });
    }
    if old.index_image != new.index_image {
        out.push(Change {
            kind: ChangeKind::Updated,
            what: "index-image".into(),
            detail: "changed".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{FilteredDigest, ResolvedDigest};

    fn image(digest: &str) -> LockedImage {
        LockedImage {
            target: "t/a:1".into(),
            resolved: Some(ResolvedDigest {
                digest: digest.into(),
                media_type: "m".into(),
                size: 1,
                platforms: BTreeMap::new(),
                filtered: None,
                config_platform: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn names_each_change_with_old_and_new() {
        let mut old = Lockfile::default();
        let mut new = Lockfile::default();
        old.sources.insert(
            "community".into(),
            LockedSource::Git {
                url: "u".into(),
                rev: None,
                commit: "0c4784f0000000000000000000000000000000aa".into(),
            },
        );
        new.sources.insert(
            "community".into(),
            LockedSource::Git {
                url: "u".into(),
                rev: None,
                commit: "9a1b2c3000000000000000000000000000000bbb".into(),
            },
        );
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        old.images.insert("quay.io/x:1".into(), image(&a));
        new.images.insert("quay.io/x:1".into(), image(&b));
        old.images.insert("quay.io/gone:1".into(), image(&a));
        new.images.insert("quay.io/new:1".into(), image(&a));
        let lines: Vec<String> = diff(&old, &new)
            .iter()
            .map(|c| format!("{} {c}", c.kind.verb()))
            .collect();
        assert_eq!(
            lines,
            [
                "Updating source community: 0c4784f → 9a1b2c3",
                "Adding image quay.io/new:1",
                "Updating image quay.io/x:1: sha256:aaaaaaaaaaaa → sha256:bbbbbbbbbbbb",
                "Removing image quay.io/gone:1",
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn a_change_of_the_landed_digest_is_shown() {
        let a = format!("sha256:{}", "a".repeat(64));
        let f = |c: &str| FilteredDigest {
            platforms: vec!["linux/arm64".into()],
            digest: format!("sha256:{}", c.repeat(64)),
            media_type: "m".into(),
            size: 1,
        };
        let mut old = Lockfile::default();
        let mut new = Lockfile::default();
        let mut img = image(&a);
        img.resolved.as_mut().unwrap().filtered = Some(f("c"));
        old.images.insert("quay.io/x:1".into(), img.clone());
        img.resolved.as_mut().unwrap().filtered = Some(f("d"));
        new.images.insert("quay.io/x:1".into(), img);
        new.platforms = vec!["linux/arm64".into()];
        let lines: Vec<String> = diff(&old, &new).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            [
                "platforms: every platform → linux/arm64",
                "image quay.io/x:1: lands as sha256:cccccccccccc → sha256:dddddddddddd",
            ]
        );
    }
}
