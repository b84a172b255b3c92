//! The lockfile, `airgap.lock`: every name the manifest and the devfiles use, resolved to a
//! content address.
//!
//! Each entry keeps the request next to its resolution (a starter project's remote and
//! revision next to the commit; an image as written next to its digest), so whether the lock
//! still satisfies the manifest is decided offline, entry by entry (uv's `satisfies()`), and a
//! mismatch can be named. Entries live in `BTreeMap`s keyed by what identifies them, so the
//! written file is sorted and byte-stable; it carries no timestamps and no paths of this
//! machine. See [`write`] for the format and [`read`] for its parser.

pub mod cache;
pub mod diff;
mod format;
pub mod platforms;
pub mod resolve;

use std::collections::{BTreeMap, BTreeSet};

pub use format::{read, write};

pub const FILE_NAME: &str = "airgap.lock";

/// The largest lockfile read, in bytes: the lock of a large registry is well under 1 MiB.
pub const MAX_SIZE: u64 = 16 << 20;
/// The lockfile format this build reads and writes.
pub const VERSION: i128 = 1;

/// The whole lockfile.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Lockfile {
    /// What image references were computed against: the target's image prefix and naming.
    pub target: LockedTarget,
    /// The manifest's `images { platforms }`, sorted: what the images' filtered indexes
    /// ([`ResolvedDigest::filtered`]) were computed for. Empty: every platform lands.
    pub platforms: Vec<String>,
    pub sources: BTreeMap<String, LockedSource>,
    /// Keyed by (source, stack version id).
    #[serde(with = "cache::pairs")]
    pub stacks: BTreeMap<(String, String), LockedStack>,
    /// Keyed by (source, sample id).
    #[serde(with = "cache::pairs")]
    pub samples: BTreeMap<(String, String), LockedSample>,
    /// Source → blake3 of its `extraDevfileEntries.yaml` (sources whose samples are included).
    pub extra_entries: BTreeMap<String, String>,
    #[serde(with = "cache::pairs")]
    pub projects: BTreeMap<ProjectKey, LockedProject>,
    /// Parent devfiles and icons, keyed by URL as written.
    pub downloads: BTreeMap<String, LockedDownload>,
    /// Keyed by the reference after variables, normalized.
    pub images: BTreeMap<String, LockedImage>,
    pub index_image: Option<LockedIndexImage>,
    /// The deployment `apply` renders, when the manifest has a `deploy` node.
    pub deploy: Option<LockedDeploy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct LockedTarget {
    pub prefix: String,
    pub naming: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LockedSource {
    Git {
        url: String,
        /// The revision asked for; `None` for the remote's default branch.
        rev: Option<String>,
        commit: String,
    },
    /// A local folder, as written in the manifest (relative to it).
    Path { path: String },
}

/// One stack version: the devfile's content hash and the hash of each packed file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedStack {
    /// blake3 of the devfile's bytes.
    pub devfile: String,
    /// Packed file (relative to the version's folder) → blake3 of its bytes.
    pub files: BTreeMap<String, String>,
    /// What the devfile and its Dockerfiles use: image keys, and icon / parent URLs. Recorded
    /// so `plan` builds the step graph from the lock alone.
    pub uses: Uses,
    /// blake3 of the stack's `stack.yaml` (multi-version stacks).
    pub stack_yaml: Option<String>,
}

/// The lock entries one devfile reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Uses {
    pub images: BTreeSet<String>,
    pub icons: BTreeSet<String>,
    pub parents: BTreeSet<String>,
    /// Files `metadata` names by URL (`alpha.build-dockerfile`, …).
    pub files: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedSample {
    pub remote: String,
    pub revision: Option<String>,
    pub commit: String,
    pub sub_dir: Option<String>,
    /// blake3 of the sample's devfile at `commit`.
    pub devfile: String,
    pub uses: Uses,
}

/// Whether a project comes from `starterProjects` or `projects`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ProjectKind {
    Starter,
    Project,
}

impl ProjectKind {
    pub fn node_name(self) -> &'static str {
        match self {
            Self::Starter => "starter",
            Self::Project => "project",
        }
    }
}

#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ProjectKey {
    pub source: String,
    /// The stack version (or sample) id that declares it.
    pub owner: String,
    pub kind: ProjectKind,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LockedProject {
    Git {
        remote: String,
        revision: Option<String>,
        commit: String,
        sub_dir: Option<String>,
    },
    Zip {
        url: String,
        sha256: String,
        sub_dir: Option<String>,
    },
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DownloadKind {
    Parent,
    Icon,
    /// A file a devfile's `metadata` names (`alpha.build-dockerfile`, …).
    File,
}

impl DownloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parent => "parent",
            Self::Icon => "icon",
            Self::File => "file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedDownload {
    pub kinds: BTreeSet<DownloadKind>,
    pub sha256: String,
    pub size: u64,
}

/// An image: the spellings it was written with, where it lands, and, once resolved, its
/// digest and platforms.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct LockedImage {
    /// Each distinct spelling in the sources (before variables), and `include`s.
    pub written: BTreeSet<String>,
    /// The reference it lands at under the target.
    pub target: String,
    pub resolved: Option<ResolvedDigest>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedDigest {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// Per-platform manifests of an index, by platform (`linux/amd64`).
    pub platforms: BTreeMap<String, PlatformDigest>,
    /// The index that lands instead of this one when [`Lockfile::platforms`] keeps a strict
    /// subset of its manifests: what devfiles pin and the target holds. `None` when the
    /// upstream manifest lands as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered: Option<FilteredDigest>,
    /// A single manifest's platform as its config says (`linux/amd64`); read only when
    /// [`Lockfile::platforms`] is set, to warn about an image that lacks them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_platform: Option<String>,
}

impl ResolvedDigest {
    /// The digest that lands at the target: the filtered index's, else the upstream one.
    pub fn landed_digest(&self) -> &str {
        self.filtered
            .as_ref()
            .map_or(self.digest.as_str(), |f| f.digest.as_str())
    }
}

/// An index filtered by the lock's platforms: computed from the upstream index's bytes by the
/// function the copy uses, so the digest is the one that lands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilteredDigest {
    /// The platforms it keeps (`os/arch[/variant]`, attestations left out), sorted.
    pub platforms: Vec<String>,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlatformDigest {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedIndexImage {
    pub name: String,
    pub tag: String,
    /// The base image reference (its digest is in `images`).
    pub base: String,
}

/// The `deploy` node as asked for, and the images its pod (or operator) runs besides the
/// devfile-index image: each an ordinary entry of [`Lockfile::images`] (so apply mirrors it),
/// named here by its role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedDeploy {
    pub config: crate::manifest::DeployConfig,
    /// Role (`oci-registry`, `registry-viewer`, `operator`) → image entry key.
    pub images: BTreeMap<String, String>,
}

impl Lockfile {
    /// The projects declared by stack version (or sample) `owner` of `source`, in order: a
    /// range of the sorted keys, not a scan of them all.
    pub fn projects_of<'a>(
        &'a self,
        source: &'a str,
        owner: &'a str,
    ) -> impl Iterator<Item = &'a ProjectKey> + 'a {
        let start = ProjectKey {
            source: source.to_string(),
            owner: owner.to_string(),
            kind: ProjectKind::Starter,
            name: String::new(),
        };
        self.projects
            .range(start..)
            .map(|(k, _)| k)
            .take_while(move |k| k.source == source && k.owner == owner)
    }

    /// Where a project's zip goes in the registry tree (relative to `registry/`): beside the
    /// devfile that declares it, as upstream's build (`dl_starter_projects.sh`) puts it. A starter
    /// project of a stack in the versioned layout (`stack.yaml`) with a single version goes into
    /// the stack's folder as well: the registry server looks for a local `zip.location` under
    /// `stacks/<stack>/<version>/` only when the index lists more than one version, else under
    /// `stacks/<stack>/` (registry-support `ServeDevfileStarterProjectWithVersion`), so with the
    /// zip beside the devfile only, its download fails.
    pub fn project_zip_paths(&self, key: &ProjectKey) -> Vec<String> {
        let file = crate::tree_paths::project_zip_name(&key.name);
        let mut paths = vec![format!(
            "{}/{file}",
            crate::tree_paths::owner_dir(&key.owner)
        )];
        if key.kind == ProjectKind::Starter
            && !key.owner.starts_with("sample:")
            && let Some(stack) = crate::tree_paths::versioned_stack_of(&key.owner)
        {
            // The versions of `stack` are the ids `<stack>/…`: one range of the sorted keys
            // (`0` follows `/`), not a scan of every stack.
            let versions = self
                .stacks
                .range(
                    (key.source.clone(), format!("{stack}/"))
                        ..(key.source.clone(), format!("{stack}0")),
                )
                .take(2)
                .count();
            if versions == 1 {
                paths.push(format!("{}/{file}", crate::tree_paths::stack_dir(stack)));
            }
        }
        paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_with(stacks: &[(&str, &str)]) -> Lockfile {
        let mut lock = Lockfile::default();
        for (source, id) in stacks {
            lock.stacks.insert(
                (source.to_string(), id.to_string()),
                LockedStack {
                    devfile: String::new(),
                    files: BTreeMap::new(),
                    uses: Uses::default(),
                    stack_yaml: None,
                },
            );
        }
        lock
    }

    fn starter(source: &str, owner: &str) -> ProjectKey {
        ProjectKey {
            source: source.into(),
            owner: owner.into(),
            kind: ProjectKind::Starter,
            name: "s".into(),
        }
    }

    #[test]
    fn a_single_version_of_a_versioned_stack_gets_its_zip_in_the_stack_folder_too() {
        // Neighbours in key order (`go-x`, `go.y`, `go`, `gp`) and another source's `go`
        // versions must not count as versions of `go`.
        let lock = lock_with(&[
            ("a", "go/1.0.0"),
            ("a", "go-x/1.0.0"),
            ("a", "go-x/2.0.0"),
            ("a", "go.y/1.0.0"),
            ("a", "go"),
            ("a", "gp/1.0.0"),
            ("b", "go/1.0.0"),
            ("b", "go/2.0.0"),
        ]);
        assert_eq!(
            lock.project_zip_paths(&starter("a", "go/1.0.0")),
            ["stacks/go/1.0.0/s-offline.zip", "stacks/go/s-offline.zip"]
        );
        assert_eq!(
            lock.project_zip_paths(&starter("b", "go/1.0.0")),
            ["stacks/go/1.0.0/s-offline.zip"]
        );
        assert_eq!(
            lock.project_zip_paths(&starter("a", "go-x/1.0.0")),
            ["stacks/go-x/1.0.0/s-offline.zip"]
        );
        assert_eq!(
            lock.project_zip_paths(&starter("a", "go")),
            ["stacks/go/s-offline.zip"]
        );
    }
}
