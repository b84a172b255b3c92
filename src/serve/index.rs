//! The registry index as the server reads it (`registry/index.json`, the v2 format) and the
//! v1 view derived from it.
//!
//! Entries are read into the generator's own types ([`crate::index::IndexEntry`]), which have
//! the field order of registry-support's `index/generator/schema`, so what the server writes
//! back out has the upstream shape: fields are omitted when empty, maps are sorted by key,
//! unknown fields are dropped (the Go server unmarshals into the same struct and re-marshals,
//! so it drops them too). `null` is read as the empty value, as Go's `encoding/json` does.
//! `lastModified` is read as an RFC 3339 time and written in Go's form, as the Go server's
//! `time.Time` does.

use crate::index::{EntryType, IndexEntry, VersionEntry};

/// Which entries an index endpoint lists: `/index` is stacks, `/index/{stack|sample|all}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexType {
    Stack,
    Sample,
    All,
}

impl IndexType {
    pub fn parse(s: &str) -> Option<IndexType> {
        match s {
            "stack" => Some(IndexType::Stack),
            "sample" => Some(IndexType::Sample),
            "all" => Some(IndexType::All),
            _ => None,
        }
    }

    pub fn admits(self, entry: &IndexEntry) -> bool {
        match self {
            IndexType::Stack => entry.entry_type == Some(EntryType::Stack),
            IndexType::Sample => entry.entry_type == Some(EntryType::Sample),
            IndexType::All => true,
        }
    }
}

/// The v1 index (`/index`) from the v2 one, as registry-support's `ConvertToOldIndexFormat`:
/// `versions` removed; the default version's tags and architectures (when non-empty) lifted up;
/// for stacks its links, resources, starterProjects and version, for samples its git. Entries
/// with versions but no default are dropped; samples without versions are kept as they are.
pub fn to_v1(entries: &[IndexEntry]) -> Vec<IndexEntry> {
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut old = IndexEntry {
            versions: Vec::new(),
            ..entry.clone()
        };
        if entry.versions.is_empty() && entry.is_sample() {
            out.push(old);
            continue;
        }
        let Some(default) = entry.default_version() else {
            continue;
        };
        if !default.tags.is_empty() {
            old.tags = default.tags.clone();
        }
        if !default.architectures.is_empty() {
            old.architectures = default.architectures.clone();
        }
        if entry.is_sample() {
            old.git = default.git.clone();
        } else {
            old.links = default.links.clone();
            old.resources = default.resources.clone();
            old.starter_projects = default.starter_projects.clone();
            old.version = default.version.clone();
        }
        out.push(old);
    }
    out
}

/// A version string compared as upstream's hashicorp/go-version does for these indexes:
/// numeric segments (missing ones are 0), then a pre-release after `-` sorts before the
/// release. Build metadata after `+` is ignored. `None` when a segment is not a number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LooseVersion {
    numbers: [u64; 4],
    /// `None` sorts after `Some(_)`: a release is newer than its pre-releases.
    pre: PreRelease,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PreRelease {
    Some(Vec<PreIdent>),
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PreIdent {
    Number(u64),
    Text(String),
}

impl LooseVersion {
    pub fn parse(s: &str) -> Option<LooseVersion> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let s = s.split_once('+').map_or(s, |(v, _)| v);
        let (core, pre) = match s.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (s, None),
        };
        let mut numbers = [0u64; 4];
        for (i, part) in core.split('.').enumerate() {
            if i == numbers.len() || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            numbers[i] = part.parse().ok()?;
        }
        let pre = match pre {
            None => PreRelease::None,
            Some("") => return None,
            Some(pre) => PreRelease::Some(
                pre.split('.')
                    .map(|p| match p.parse() {
                        Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) => PreIdent::Number(n),
                        _ => PreIdent::Text(p.to_string()),
                    })
                    .collect(),
            ),
        };
        Some(LooseVersion { numbers, pre })
    }
}

/// `default`, `latest` and every version of an entry, as upstream's `MakeVersionMap`: `latest`
/// is the highest version (versions that do not parse are never `latest`).
pub fn find_version<'a>(entry: &'a IndexEntry, wanted: &str) -> Option<&'a VersionEntry> {
    match wanted {
        "default" => entry.default_version(),
        "latest" => entry
            .versions
            .iter()
            .filter_map(|v| LooseVersion::parse(&v.version).map(|p| (p, v)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, v)| v),
        exact => entry.versions.iter().find(|v| v.version == exact),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_versions_order() {
        let v = |s| LooseVersion::parse(s).unwrap();
        assert!(v("1.2.0") > v("1.1.0"));
        assert!(v("1.10.0") > v("1.9.9"));
        assert_eq!(v("2.1"), v("2.1.0"));
        assert!(v("1.0.0-rc.1") < v("1.0.0"));
        assert!(v("1.0.0-rc.2") > v("1.0.0-rc.1"));
        assert!(LooseVersion::parse("abc").is_none());
        assert!(LooseVersion::parse("1..2").is_none());
    }
}
