//! `last_modified.json`: when each stack and sample version last changed.
//!
//! Upstream's registry build (devfile/registry `.ci/generate_last_mod_file.sh`) writes
//! `{"stacks": [{name, version, lastModified}], "samples": [...]}` with `jq`, from
//! `git log -1 --format=%aI` of each devfile's folder (stacks: name and version from the
//! devfile's `metadata`, `"undefined"` when there is no version; samples: one record per
//! `versions[]` item of `extraDevfileEntries.yaml`, `"undefined"` for a sample without
//! versions). The index generator then reads it with Go's `encoding/json` into `time.Time`
//! and writes the times back out in Go's RFC 3339 form, which differs from git's:
//! a zero offset becomes `Z`, and fractional seconds are kept without trailing zeros.
//! [`Timestamp`] (in [`super::timestamp`]) keeps the instant and the offset, so it can write
//! both forms.

use serde::{Deserialize, Serialize};

use super::json::{EscapingFormatter, serialize_with};
use super::model::EntryType;
use super::timestamp::Timestamp;

/// One line of `last_modified.json`: when a stack or sample version last changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastModifiedEntry {
    pub name: String,
    /// The devfile's `metadata.version`; `"undefined"` when there is none.
    pub version: String,
    #[serde(serialize_with = "git_form")]
    pub last_modified: Timestamp,
}

fn git_form<S: serde::Serializer>(t: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&t.to_git_iso_strict())
}

/// The whole `last_modified.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastModifiedFile {
    #[serde(default)]
    pub stacks: Vec<LastModifiedEntry>,
    #[serde(default)]
    pub samples: Vec<LastModifiedEntry>,
}

/// The version key upstream writes for a devfile or sample without a version.
pub const UNDEFINED_VERSION: &str = "undefined";

/// A (kind, name, version, date) record, as the caller gathers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastModifiedRecord {
    /// A kind other than `Sample` is listed under `stacks`.
    pub kind: EntryType,
    pub name: String,
    pub version: String,
    pub last_modified: Timestamp,
}

impl LastModifiedFile {
    /// Groups records by kind, keeping their order within each kind.
    ///
    /// Upstream's order is: stacks by devfile path in the repository (`git ls-tree` order,
    /// so `stacks/java-wildfly-bootable-jar/…` before `stacks/java-wildfly/…`), samples in
    /// `extraDevfileEntries.yaml` order, then `versions[]` order. The generator does not
    /// depend on the order; keep it stable for byte-identical output.
    pub fn from_records(records: &[LastModifiedRecord]) -> Self {
        let mut file = LastModifiedFile::default();
        for r in records {
            let entry = LastModifiedEntry {
                name: r.name.clone(),
                version: r.version.clone(),
                last_modified: r.last_modified,
            };
            match r.kind {
                EntryType::Sample => file.samples.push(entry),
                EntryType::Stack | EntryType::Other(_) => file.stacks.push(entry),
            }
        }
        file
    }

    /// Reads `last_modified.json` bytes (any JSON layout).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The file's bytes exactly as upstream's `jq -n '{stacks: …, samples: …}'` followed by
    /// `echo` writes them: two-space indentation, `"key": value`, a trailing newline, and
    /// dates in git's `%aI` form.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut out = serialize_with(self, EscapingFormatter::jq());
        out.push(b'\n');
        out
    }
}

/// `last_modified.json` bytes for these records; see [`LastModifiedFile::from_records`] for
/// the order.
pub fn last_modified_json(records: &[LastModifiedRecord]) -> Vec<u8> {
    LastModifiedFile::from_records(records).to_json_bytes()
}
