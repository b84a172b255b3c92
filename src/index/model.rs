//! The typed shape of one `index.json` entry, in the upstream generator's field order
//! (registry-support `index/generator/schema/schema.go`: `Schema` and `Version`).
//!
//! Serialization follows Go's `encoding/json` with `omitempty`: empty strings, empty lists,
//! empty maps and `false` are left out; a present `git` is written even when all its fields
//! are empty (a non-nil pointer in Go). Maps are `BTreeMap`s, so keys come out sorted by
//! bytes, as Go sorts map keys. Every field is read with `null` as its empty value, as Go's
//! decoders do; so are an empty `type` and an empty `lastModified`, which Go would write
//! back out as nothing.
//!
//! The generator writes these types; `airgap serve` reads an `index.json` back into them (as
//! upstream's server unmarshals into the same structs and marshals them again, dropping
//! unknown fields).
//!
//! One deliberate difference: `lastModified` is optional and left out when unknown. Upstream
//! holds a `time.Time`, which `omitempty` never omits, and writes `"0001-01-01T00:00:00Z"`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::timestamp::Timestamp;

/// Whether an entry is a stack or a sample (`type`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryType {
    Stack,
    Sample,
    /// Any other word. Upstream's `DevfileType` is a plain string, so an index written by
    /// hand may carry one; it is kept so that `serve` gives it back as it was. The generator
    /// never writes it.
    Other(String),
}

impl EntryType {
    /// The word as `index.json` has it (`stack`, `sample`, or the other one).
    pub fn as_str(&self) -> &str {
        match self {
            EntryType::Stack => "stack",
            EntryType::Sample => "sample",
            EntryType::Other(word) => word,
        }
    }
}

impl std::str::FromStr for EntryType {
    type Err = std::convert::Infallible;
    fn from_str(word: &str) -> Result<Self, Self::Err> {
        Ok(match word {
            "stack" => EntryType::Stack,
            "sample" => EntryType::Sample,
            _ => EntryType::Other(word.to_owned()),
        })
    }
}

impl Serialize for EntryType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One element of `index.json`: a stack or a sample with its versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IndexEntry {
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub name: String,
    /// Only samples (from `extraDevfileEntries.yaml`) ever carry a top-level version.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub version: String,
    /// Free-form values; upstream keeps them as raw JSON. Keys are written sorted at every
    /// depth.
    #[serde(
        deserialize_with = "nullable",
        serialize_with = "super::json::sorted_attributes",
        skip_serializing_if = "omitempty"
    )]
    pub attributes: BTreeMap<String, serde_json::Value>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub display_name: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub description: String,
    #[serde(
        rename = "type",
        deserialize_with = "non_empty",
        skip_serializing_if = "omitempty"
    )]
    pub entry_type: Option<EntryType>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub tags: Vec<String>,
    /// Empty means "every architecture".
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub architectures: Vec<String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub icon: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub global_memory_limit: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub project_type: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub language: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub links: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub command_groups: BTreeMap<String, bool>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub deployment_scopes: BTreeMap<String, bool>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub resources: Vec<String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub starter_projects: Vec<String>,
    #[serde(skip_serializing_if = "omitempty")]
    pub git: Option<Git>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub provider: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub support_url: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub versions: Vec<VersionEntry>,
    /// Newest `lastModified` of the versions (or of the entry itself when it has none).
    #[serde(deserialize_with = "non_empty", skip_serializing_if = "omitempty")]
    pub last_modified: Option<Timestamp>,
}

impl IndexEntry {
    /// The first version marked `default` (validation guarantees there is exactly one).
    pub fn default_version(&self) -> Option<&VersionEntry> {
        self.versions.iter().find(|v| v.default)
    }

    /// Whether `type` is `sample`.
    pub fn is_sample(&self) -> bool {
        self.entry_type == Some(EntryType::Sample)
    }
}

/// One element of an entry's `versions`.
///
/// Many of its fields are also fields of [`IndexEntry`], as in upstream's `Version` and
/// `Schema`. They are not gathered into a shared `#[serde(flatten)]` struct: only two short
/// runs (`tags`…`icon`, `links`…`starterProjects`) stand in the same order in both, and
/// flattening them would rename every use (`v.links` → `v.shared.links`) for little gain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VersionEntry {
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub version: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub schema_version: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub default: bool,
    #[serde(skip_serializing_if = "omitempty")]
    pub git: Option<Git>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub description: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub architectures: Vec<String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub icon: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub links: BTreeMap<String, String>,
    /// `build`, `debug`, `deploy`, `run`, `test` → whether an exec/apply/composite command of
    /// that group kind exists. Stacks always carry all five.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub command_groups: BTreeMap<String, bool>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub deployment_scopes: BTreeMap<String, bool>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub resources: Vec<String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub starter_projects: Vec<String>,
    #[serde(deserialize_with = "non_empty", skip_serializing_if = "omitempty")]
    pub last_modified: Option<Timestamp>,
}

/// Where a sample (or a git-hosted stack version) lives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Git {
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub remotes: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub url: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub remote_name: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub sub_dir: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "omitempty")]
    pub revision: String,
}

/// What Go's `omitempty` leaves out: an empty string, list or map, `false`, a nil pointer.
trait OmitEmpty {
    fn is_omitted(&self) -> bool;
}

impl OmitEmpty for String {
    fn is_omitted(&self) -> bool {
        self.is_empty()
    }
}

impl<T> OmitEmpty for Vec<T> {
    fn is_omitted(&self) -> bool {
        self.is_empty()
    }
}

impl<K, V> OmitEmpty for BTreeMap<K, V> {
    fn is_omitted(&self) -> bool {
        self.is_empty()
    }
}

impl OmitEmpty for bool {
    fn is_omitted(&self) -> bool {
        !*self
    }
}

impl<T> OmitEmpty for Option<T> {
    fn is_omitted(&self) -> bool {
        self.is_none()
    }
}

fn omitempty<T: OmitEmpty>(value: &T) -> bool {
    value.is_omitted()
}

/// Reads a YAML/JSON `null` (or `key:` with nothing after it) as the empty value, as Go's
/// decoders do, instead of failing.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads a value written as a string, with `null` and `""` as `None`.
fn non_empty<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_fields_read_as_empty() {
        let e: IndexEntry =
            serde_json::from_str(r#"{"name":"x","tags":null,"git":null,"versions":null}"#).unwrap();
        assert_eq!(e.name, "x");
        assert!(e.tags.is_empty() && e.git.is_none() && e.versions.is_empty());
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"name":"x"}"#);
    }

    #[test]
    fn empty_type_and_date_read_as_absent() {
        let e: IndexEntry =
            serde_json::from_str(r#"{"name":"x","type":"","lastModified":""}"#).unwrap();
        assert_eq!(e.entry_type, None);
        assert_eq!(e.last_modified, None);
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"name":"x"}"#);
    }

    #[test]
    fn other_types_are_kept_as_written() {
        let text = r#"{"name":"x","type":"Stack"}"#;
        let e: IndexEntry = serde_json::from_str(text).unwrap();
        assert_eq!(e.entry_type, Some(EntryType::Other("Stack".into())));
        assert_eq!(serde_json::to_string(&e).unwrap(), text);
        let e: IndexEntry = serde_json::from_str(r#"{"type":"sample"}"#).unwrap();
        assert!(e.is_sample());
    }
}
