//! Stack discovery in the community registry layout.
//!
//! - single-version stack: `stacks/<name>/devfile.yaml` (or `.devfile.yaml`, not both);
//! - multi-version stack: `stacks/<name>/stack.yaml` (exactly one default version; entries
//!   with `git` are skipped, as upstream does) and `stacks/<name>/<version>/devfile.yaml`;
//! - samples: `extraDevfileEntries.yaml`, each sample (or sample version) a git remote.
//!
//! The files packed with a stack version are what the upstream build puts in `archive.tar`:
//! every entry of the version's folder except `devfile.yaml`, `meta.yaml`, `*.vsx`,
//! `logo.svg`, `logo.png`, `*.zip` and `OWNERS` (matched on the folder's top-level names, as
//! upstream's `find -maxdepth 1` does; sub-folders are packed whole). An `archive.tar` already
//! in the source is not packed either: it is what we build.

use serde::Deserialize;

use crate::devfile::Text;
use crate::git::TreeFile;
use crate::source::{Files, FilesError};
use crate::tree_paths::{STACKS, stack_dir, stack_yaml_path};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DiscoverError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Files(#[from] FilesError),
    #[error("source `{source_name}` has no `stacks/` folder")]
    #[diagnostic(
        code(airgap::discover::no_stacks),
        help(
            "a source must be in the community registry layout: stacks/<name>/devfile.yaml or stacks/<name>/stack.yaml"
        )
    )]
    NoStacks { source_name: String },
    #[error("`{path}` in source `{source_name}` is invalid: {message}")]
    #[diagnostic(code(airgap::discover::invalid))]
    Invalid {
        source_name: String,
        path: String,
        message: String,
        #[help]
        help: Option<String>,
    },
}

/// One version of a stack: one devfile and the files packed with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackVersion {
    /// The stack's folder name.
    pub stack: String,
    /// The version folder of a multi-version stack; `None` for a single-version stack.
    pub version_dir: Option<String>,
    /// `<stack>` or `<stack>/<version>`: unique within a source, used in the lockfile.
    pub id: String,
    /// The folder in the source, `stacks/<stack>[/<version>]`.
    pub dir: String,
    /// The devfile's file name in `dir` (`devfile.yaml` or `.devfile.yaml`).
    pub devfile_name: String,
    /// Whether this is the stack's default version (always true for single-version stacks).
    pub default: bool,
    /// Files packed into `archive.tar`, relative to `dir`, sorted.
    pub packed: Vec<TreeFile>,
}

impl StackVersion {
    pub fn devfile_path(&self) -> String {
        format!("{}/{}", self.dir, self.devfile_name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub name: String,
    /// `stack.yaml`'s icon, for multi-version stacks.
    pub icon: Option<String>,
    pub multi_version: bool,
    pub versions: Vec<StackVersion>,
}

/// A sample (or one version of it): a git repository holding a devfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub name: String,
    pub version: Option<String>,
    pub remote_name: String,
    pub remote: String,
    pub revision: Option<String>,
    pub sub_dir: Option<String>,
    pub icon: Option<String>,
}

impl Sample {
    /// `<name>` or `<name>/<version>`: unique within a source.
    pub fn id(&self) -> String {
        match &self.version {
            Some(v) => format!("{}/{v}", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub stacks: Vec<Stack>,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Deserialize)]
struct StackYaml {
    #[serde(default)]
    icon: Option<Text>,
    #[serde(default)]
    versions: Vec<StackYamlVersion>,
}

#[derive(Debug, Deserialize)]
struct StackYamlVersion {
    version: Text,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    git: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct ExtraEntries {
    #[serde(default)]
    samples: Vec<ExtraSample>,
}

#[derive(Debug, Deserialize)]
struct ExtraSample {
    name: Text,
    #[serde(default)]
    icon: Option<Text>,
    #[serde(default)]
    git: Option<ExtraGit>,
    #[serde(default)]
    versions: Vec<ExtraSampleVersion>,
}

#[derive(Debug, Deserialize)]
struct ExtraSampleVersion {
    version: Text,
    #[serde(default)]
    git: Option<ExtraGit>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtraGit {
    #[serde(default)]
    remotes: std::collections::BTreeMap<String, Text>,
    #[serde(default)]
    url: Option<Text>,
    #[serde(default)]
    remote_name: Option<Text>,
    #[serde(default)]
    sub_dir: Option<Text>,
    #[serde(default)]
    revision: Option<Text>,
}

const NOT_PACKED: [&str; 6] = [
    "devfile.yaml",
    ".devfile.yaml",
    "meta.yaml",
    "logo.svg",
    "logo.png",
    "OWNERS",
];

/// Whether a file at `rel` (relative to a stack version's folder) goes into `archive.tar`.
pub fn is_packed(rel: &str) -> bool {
    let top = rel.split('/').next().unwrap_or(rel);
    if rel == top {
        !(NOT_PACKED.contains(&top)
            || top == "archive.tar"
            || top.ends_with(".vsx")
            || top.ends_with(".zip"))
    } else {
        // A folder at the top level is packed whole, whatever its name.
        true
    }
}

pub const EXTRA_ENTRIES: &str = "extraDevfileEntries.yaml";

/// Finds every stack (and, when `samples`, every sample) of a source.
pub fn discover(
    source_name: &str,
    files: &Files<'_>,
    samples: bool,
) -> Result<Discovered, DiscoverError> {
    let src = Source {
        name: source_name,
        files,
    };
    let Some(entries) = files.list(STACKS)? else {
        return Err(DiscoverError::NoStacks {
            source_name: source_name.to_string(),
        });
    };
    let mut out = Discovered::default();
    for (name, is_dir) in entries {
        if !is_dir {
            continue;
        }
        let stack = match files.read(&stack_yaml_path(&name))? {
            Some(bytes) => Some(src.multi_version_stack(name, &bytes)?),
            None => src.single_version_stack(name)?,
        };
        out.stacks.extend(stack);
    }
    if samples && let Some(bytes) = files.read(EXTRA_ENTRIES)? {
        out.samples = src.samples(&bytes)?;
    }
    Ok(out)
}

/// The source being discovered: its name (for errors) and its files.
struct Source<'a, 'f> {
    name: &'a str,
    files: &'a Files<'f>,
}

impl Source<'_, '_> {
    fn invalid(&self, path: &str, message: String, help: Option<String>) -> DiscoverError {
        DiscoverError::Invalid {
            source_name: self.name.to_string(),
            path: path.to_string(),
            message,
            help,
        }
    }

    /// `stacks/<name>/stack.yaml` (given as `bytes`) and its version folders.
    fn multi_version_stack(&self, name: String, bytes: &[u8]) -> Result<Stack, DiscoverError> {
        let dir = stack_dir(&name);
        let stack_yaml_path = stack_yaml_path(&name);
        let text = String::from_utf8_lossy(bytes);
        let sy: StackYaml = serde_saphyr::from_str(&text)
            .map_err(|e| self.invalid(&stack_yaml_path, first_line(&e.to_string()), None))?;
        let listed: Vec<&StackYamlVersion> =
            sy.versions.iter().filter(|v| v.git.is_none()).collect();
        let defaults: Vec<&str> = listed
            .iter()
            .filter(|v| v.default)
            .map(|v| v.version.as_str())
            .collect();
        if defaults.len() != 1 {
            let message = if defaults.is_empty() {
                "no version is marked `default: true`".to_string()
            } else {
                format!(
                    "{} versions are marked `default: true` ({})",
                    defaults.len(),
                    defaults.join(", ")
                )
            };
            return Err(self.invalid(
                &stack_yaml_path,
                message,
                Some("a multi-version stack has exactly one default version".into()),
            ));
        }
        let mut versions = Vec::new();
        for v in listed {
            let vdir = format!("{dir}/{}", v.version.as_str());
            let devfile_name = devfile_name_in(self.files, &vdir)
                .map_err(|e| self.invalid(&vdir, e, None))?
                .ok_or_else(|| {
                    self.invalid(
                        &stack_yaml_path,
                        format!(
                            "version `{}` is listed but `{vdir}/devfile.yaml` does not exist",
                            v.version.as_str()
                        ),
                        None,
                    )
                })?;
            versions.push(StackVersion {
                stack: name.clone(),
                version_dir: Some(v.version.as_str().to_string()),
                id: format!("{name}/{}", v.version.as_str()),
                dir: vdir.clone(),
                devfile_name,
                default: v.default,
                packed: packed_files(self.files, &vdir)?,
            });
        }
        Ok(Stack {
            name,
            icon: sy.icon.map(|i| i.0),
            multi_version: true,
            versions,
        })
    }

    /// `stacks/<name>/devfile.yaml`; `None` when the folder holds no devfile (not a stack:
    /// upstream skips these as well).
    fn single_version_stack(&self, name: String) -> Result<Option<Stack>, DiscoverError> {
        let dir = stack_dir(&name);
        let Some(devfile_name) =
            devfile_name_in(self.files, &dir).map_err(|e| self.invalid(&dir, e, None))?
        else {
            return Ok(None);
        };
        Ok(Some(Stack {
            name: name.clone(),
            icon: None,
            multi_version: false,
            versions: vec![StackVersion {
                stack: name.clone(),
                version_dir: None,
                id: name,
                dir: dir.clone(),
                devfile_name,
                default: true,
                packed: packed_files(self.files, &dir)?,
            }],
        }))
    }

    /// The samples of `extraDevfileEntries.yaml` (given as `bytes`), one per sample version.
    fn samples(&self, bytes: &[u8]) -> Result<Vec<Sample>, DiscoverError> {
        let text = String::from_utf8_lossy(bytes);
        let extra: ExtraEntries = serde_saphyr::from_str(&text)
            .map_err(|e| self.invalid(EXTRA_ENTRIES, first_line(&e.to_string()), None))?;
        let mut out = Vec::new();
        for s in extra.samples {
            let name = s.name.0.as_str();
            let icon = s.icon.as_ref().map(|i| i.0.clone());
            if s.versions.is_empty() {
                let git = s.git.as_ref().ok_or_else(|| {
                    self.invalid(
                        EXTRA_ENTRIES,
                        format!("sample `{name}` has neither `git` nor `versions`"),
                        None,
                    )
                })?;
                out.push(self.sample(name, None, git, &icon)?);
            } else {
                for v in &s.versions {
                    let git = v.git.as_ref().ok_or_else(|| {
                        self.invalid(
                            EXTRA_ENTRIES,
                            format!(
                                "sample `{name}` version `{}` has no `git`",
                                v.version.as_str()
                            ),
                            None,
                        )
                    })?;
                    let version = Some(v.version.0.clone());
                    out.push(self.sample(name, version, git, &icon)?);
                }
            }
        }
        Ok(out)
    }

    fn sample(
        &self,
        name: &str,
        version: Option<String>,
        git: &ExtraGit,
        icon: &Option<String>,
    ) -> Result<Sample, DiscoverError> {
        let where_ = match &version {
            Some(v) => format!("sample `{name}` version `{v}`"),
            None => format!("sample `{name}`"),
        };
        let (remote_name, remote) = pick_remote(git).ok_or_else(|| {
            self.invalid(
                EXTRA_ENTRIES,
                format!("{where_} has no git remote"),
                Some("give it git.remotes: {origin: URL}".into()),
            )
        })?;
        Ok(Sample {
            name: name.to_string(),
            version,
            remote_name,
            remote,
            revision: git.revision.as_ref().map(|r| r.0.clone()),
            sub_dir: git
                .sub_dir
                .as_ref()
                .map(|d| d.0.trim_matches('/').to_string())
                .filter(|d| !d.is_empty()),
            icon: icon.clone(),
        })
    }
}

fn pick_remote(git: &ExtraGit) -> Option<(String, String)> {
    if let Some(name) = &git.remote_name
        && let Some(url) = git.remotes.get(name.as_str())
    {
        return Some((name.0.clone(), url.0.clone()));
    }
    if let Some(url) = git.remotes.get("origin") {
        return Some(("origin".into(), url.0.clone()));
    }
    if let Some((n, u)) = git.remotes.iter().next() {
        return Some((n.clone(), u.0.clone()));
    }
    git.url.as_ref().map(|u| ("origin".into(), u.0.clone()))
}

fn devfile_name_in(files: &Files<'_>, dir: &str) -> Result<Option<String>, String> {
    let list = files
        .list(dir)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let has = |n: &str| list.iter().any(|(name, is_dir)| name == n && !is_dir);
    match (has("devfile.yaml"), has(".devfile.yaml")) {
        (true, true) => Err("both `devfile.yaml` and `.devfile.yaml` exist; keep one".into()),
        (true, false) => Ok(Some("devfile.yaml".into())),
        (false, true) => Ok(Some(".devfile.yaml".into())),
        (false, false) => Ok(None),
    }
}

fn packed_files(files: &Files<'_>, dir: &str) -> Result<Vec<TreeFile>, DiscoverError> {
    Ok(files
        .walk(dir)?
        .into_iter()
        .filter(|f| is_packed(&f.path))
        .collect())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}
