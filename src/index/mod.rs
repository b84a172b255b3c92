//! The registry index (`index.json`) as the upstream index generator writes it, built offline.
//!
//! Upstream is registry-support `index/generator` (`library/library.go`, `schema/schema.go`).
//! Given a built registry folder it lists, in this order:
//!
//! 1. one entry per folder of `stacks/` (by name): a *multi-version* stack when the folder has
//!    `stack.yaml` (name, displayName, description, icon and `versions[]{version, default}`
//!    from there; each version read from `<version>/devfile.yaml`; versions sorted by semver,
//!    highest first; a version with `git` skipped, as upstream does not support it), else a
//!    *single-version* stack from its `devfile.yaml` (or `.devfile.yaml`, not both), whose one
//!    version is the default;
//! 2. the `samples` of `extraDevfileEntries.yaml`, as written there, with `type: sample`;
//! 3. its `stacks`, with `type: stack`;
//!
//! then sets `lastModified` from `last_modified.json` when it exists.
//!
//! Per version, from the devfile: `version`, `description`, `tags`, `architectures`, `icon`,
//! `links`, `deploymentScopes` from `metadata`; `schemaVersion`; `links.self =
//! devfile-catalog/<stack folder>:<version>`; `commandGroups` (all five kinds, `true` where
//! an exec, apply or composite command has that `group.kind`); `starterProjects` (names);
//! `resources` (the version folder's non-directory entries except `OWNERS`, by name).
//! Per stack: `projectType`, `language`, `provider`, `supportUrl` (and name, displayName,
//! description, icon when stack.yaml lacks them) from the first version, highest first, that
//! has them; `tags` from the default version; `architectures` the union over versions, left
//! out when any version has none (it means "all"). `lastModified`: per version by
//! (entry name, version), the entry's own the newest of its versions; an entry without
//! versions uses the record with version `"undefined"`.
//!
//! Deliberate differences from upstream, each with a test in `tests/it/index.rs`:
//! - No network: upstream GETs every icon URL and rejects the entry when that fails; we
//!   never fetch anything.
//! - No devfile schema validation (upstream runs the devfile library's parser); the
//!   structural checks of `validateStackInfo`/`validateIndexComponent` are kept as errors.
//! - `lastModified` is left out when unknown, and `last_modified.json` is optional; upstream
//!   fails without the file and writes `0001-01-01T00:00:00Z` for a version it does not list.
//! - A version-less entry (a sample with top-level `git`) gets the `"undefined"` record that
//!   upstream's build script writes for it. The golden `index_main.json` expects that; the
//!   generator source we could read (2024) writes the zero time there.
//! - A `commandGroups`, `resources`, `starterProjects` or `git` written under a devfile's
//!   `metadata` is ignored (upstream merges those into the version by accident of its YAML
//!   round trip).
//! - An empty index is written as `[]` (Go writes `null` for an empty slice).

mod generate;
pub mod json;
pub mod last_modified;
pub mod model;
pub mod timestamp;

use std::path::{Path, PathBuf};

pub use generate::{apply_last_modified, extra_entries, generate, stack_entries};
pub use last_modified::{
    LastModifiedEntry, LastModifiedFile, LastModifiedRecord, UNDEFINED_VERSION, last_modified_json,
};
pub use model::{EntryType, Git, IndexEntry, VersionEntry};
pub use timestamp::{Timestamp, TimestampError};

/// The five command group kinds every stack version lists.
pub const COMMAND_GROUP_KINDS: [&str; 5] = ["build", "run", "test", "debug", "deploy"];

/// `index.json` bytes as upstream's `json.MarshalIndent(index, "", "  ")` writes them: two
/// spaces of indentation, fields in schema order, map keys sorted, `<`, `>`, `&` escaped,
/// no trailing newline.
pub fn to_json_bytes(entries: &[IndexEntry]) -> Vec<u8> {
    json::serialize_with(entries, json::EscapingFormatter::go())
}

/// What can go wrong reading a registry folder.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum IndexError {
    #[error("cannot read `{}`", path.display())]
    #[diagnostic(code(airgap::index::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{}` is not valid YAML for the index: {message}", path.display())]
    #[diagnostic(code(airgap::index::yaml))]
    Yaml { path: PathBuf, message: String },

    #[error("`{}` is not a valid last_modified.json", path.display())]
    #[diagnostic(
        code(airgap::index::last_modified),
        help(
            "expected {{\"stacks\": [{{\"name\", \"version\", \"lastModified\"}}], \"samples\": […]}} with RFC 3339 dates"
        )
    )]
    LastModified {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("both `devfile.yaml` and `.devfile.yaml` exist in `{}`", dir.display())]
    #[diagnostic(
        code(airgap::index::two_devfiles),
        help("keep one of them; the registry reads only one devfile per stack version")
    )]
    TwoDevfiles { dir: PathBuf },

    #[error("`{}` names a file that is not UTF-8", path.display())]
    #[diagnostic(code(airgap::index::file_name), help("rename it to a UTF-8 name"))]
    FileName { path: PathBuf },

    #[error("stack `{stack}`: version `{version}` in stack.yaml is not a semantic version")]
    #[diagnostic(
        code(airgap::index::version),
        help("stack versions are folder names like `1.2.0`")
    )]
    Version { stack: String, version: String },

    #[error("stack `{stack}`: stack.yaml is not valid: {}", problems.join("; "))]
    #[diagnostic(code(airgap::index::stack_yaml))]
    StackYaml {
        stack: String,
        problems: Vec<String>,
    },

    #[error("{kind} `{name}` is not a valid index entry: {problem}")]
    #[diagnostic(code(airgap::index::entry))]
    Entry {
        kind: &'static str,
        name: String,
        problem: String,
    },
}

impl IndexError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
