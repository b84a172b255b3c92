//! The registry index as the server reads it (`registry/index.json`, the v2 format) and the
//! v1 view derived from it.
//!
//! Entries are read into typed structs with the field order of registry-support's
//! `index/generator/schema` so that what the server writes back out has the upstream shape:
//! fields are omitted when empty, maps are sorted by key, unknown fields are dropped (the Go
//! server unmarshals into the same struct and re-marshals, so it drops them too). `null` is
//! read as the empty value, as Go's `encoding/json` does.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// `type` of an index entry.
pub const STACK: &str = "stack";
/// `type` of an index entry.
pub const SAMPLE: &str = "sample";

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One entry of the index: a stack or a sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub version: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub attributes: BTreeMap<String, serde_json::Value>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub display_name: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    #[serde(
        rename = "type",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub architectures: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub icon: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub global_memory_limit: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub project_type: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub language: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub links: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub command_groups: BTreeMap<String, bool>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub deployment_scopes: BTreeMap<String, bool>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub starter_projects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<Git>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub provider: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub support_url: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub versions: Vec<Version>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub last_modified: String,
}

/// One version of a multi-version entry (`versions[]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub version: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub schema_version: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<Git>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub architectures: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub icon: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub links: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub command_groups: BTreeMap<String, bool>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub deployment_scopes: BTreeMap<String, bool>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub starter_projects: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub last_modified: String,
}

/// Where a sample (or a version of one) lives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Git {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub remotes: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub url: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub remote_name: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub sub_dir: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub revision: String,
}

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
            STACK => Some(IndexType::Stack),
            SAMPLE => Some(IndexType::Sample),
            "all" => Some(IndexType::All),
            _ => None,
        }
    }

    pub fn admits(self, entry: &Entry) -> bool {
        match self {
            IndexType::Stack => entry.kind == STACK,
            IndexType::Sample => entry.kind == SAMPLE,
            IndexType::All => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IndexType::Stack => STACK,
            IndexType::Sample => SAMPLE,
            IndexType::All => "all",
        }
    }
}

/// The v1 index (`/index`) from the v2 one, as registry-support's `ConvertToOldIndexFormat`:
/// `versions` removed; the default version's tags and architectures (when non-empty) lifted up;
/// for stacks its links, resources, starterProjects and version, for samples its git. Entries
/// with versions but no default are dropped; samples without versions are kept as they are.
pub fn to_v1(entries: &[Entry]) -> Vec<Entry> {
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut old = Entry {
            versions: Vec::new(),
            ..entry.clone()
        };
        if entry.versions.is_empty() && entry.kind == SAMPLE {
            out.push(old);
            continue;
        }
        let Some(default) = entry.versions.iter().find(|v| v.default) else {
            continue;
        };
        if !default.tags.is_empty() {
            old.tags = default.tags.clone();
        }
        if !default.architectures.is_empty() {
            old.architectures = default.architectures.clone();
        }
        if entry.kind == SAMPLE {
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
pub fn find_version<'a>(entry: &'a Entry, wanted: &str) -> Option<&'a Version> {
    match wanted {
        "default" => entry.versions.iter().find(|v| v.default),
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

    #[test]
    fn null_fields_read_as_empty() {
        let e: Entry =
            serde_json::from_str(r#"{"name":"x","tags":null,"git":null,"versions":null}"#).unwrap();
        assert_eq!(e.name, "x");
        assert!(e.tags.is_empty() && e.git.is_none() && e.versions.is_empty());
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"name":"x"}"#);
    }
}
