//! Reading a registry folder into index entries (see the module docs of `index`).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::last_modified::{LastModifiedFile, UNDEFINED_VERSION};
use super::model::{EntryType, IndexEntry, VersionEntry, nullable};
use super::timestamp::Timestamp;
use super::{COMMAND_GROUP_KINDS, IndexError};
use crate::tree_paths::{DEVFILE_NAMES, LAST_MODIFIED_JSON, STACK_YAML, STACKS};

const EXTRA_ENTRIES: &str = "extraDevfileEntries.yaml";
const OWNERS: &str = "OWNERS";

/// Every index entry of a built registry folder: stacks, then the samples and stacks of
/// `extraDevfileEntries.yaml` (when present), with `lastModified` from `last_modified.json`
/// (when present). Reads only local files.
pub fn generate(registry_dir: &Path) -> Result<Vec<IndexEntry>, IndexError> {
    let mut entries = stack_entries(registry_dir)?;
    entries.extend(extra_entries(registry_dir)?);
    let last_modified_path = registry_dir.join(LAST_MODIFIED_JSON);
    if let Some(bytes) = read_optional(&last_modified_path)? {
        let file =
            LastModifiedFile::from_json(&bytes).map_err(|source| IndexError::LastModified {
                path: last_modified_path.clone(),
                source,
            })?;
        apply_last_modified(&mut entries, &file);
    }
    Ok(entries)
}

/// The entries of `stacks/*`, one per folder, in folder-name order, without `lastModified`
/// (upstream's `parseDevfileRegistry`).
pub fn stack_entries(registry_dir: &Path) -> Result<Vec<IndexEntry>, IndexError> {
    let stacks_dir = registry_dir.join(STACKS);
    let mut entries = Vec::new();
    for item in list_dir(&stacks_dir)? {
        if item.is_dir {
            entries.push(stack_entry(&stacks_dir, &item.name)?);
        }
    }
    Ok(entries)
}

/// The samples, then the stacks, of `extraDevfileEntries.yaml`, empty when the file does not
/// exist (upstream's `parseExtraDevfileEntries`). Entries are taken as written, with `type`
/// set and any `lastModified` dropped (it comes from `last_modified.json` only).
pub fn extra_entries(registry_dir: &Path) -> Result<Vec<IndexEntry>, IndexError> {
    #[derive(Deserialize, Default)]
    struct ExtraDevfileEntries {
        #[serde(default, deserialize_with = "nullable")]
        samples: Vec<IndexEntry>,
        #[serde(default, deserialize_with = "nullable")]
        stacks: Vec<IndexEntry>,
    }

    let path = registry_dir.join(EXTRA_ENTRIES);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(Vec::new());
    };
    let extra: ExtraDevfileEntries = parse_yaml(&path, &bytes)?;
    let typed = extra
        .samples
        .into_iter()
        .map(|e| (e, EntryType::Sample))
        .chain(extra.stacks.into_iter().map(|e| (e, EntryType::Stack)));
    let mut entries = Vec::new();
    for (mut entry, kind) in typed {
        let validate = match kind {
            EntryType::Sample => validate_sample,
            _ => validate_stack,
        };
        entry.entry_type = Some(kind);
        entry.last_modified = None;
        for v in &mut entry.versions {
            v.last_modified = None;
        }
        validate(&entry)?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Sets `lastModified` of every version to its record by (entry name, version), and of every
/// entry to the newest of its versions' (the first one on a tie). An entry without versions
/// takes the record with version `"undefined"`. Where no record matches, `lastModified`
/// stays unset. A later record for the same (name, version) wins, samples after stacks.
pub fn apply_last_modified(entries: &mut [IndexEntry], file: &LastModifiedFile) {
    let mut dates: HashMap<(&str, &str), Timestamp> = HashMap::new();
    for record in file.stacks.iter().chain(&file.samples) {
        dates.insert((&record.name, &record.version), record.last_modified);
    }
    for entry in entries {
        let name = entry.name.as_str();
        if entry.versions.is_empty() {
            entry.last_modified = dates.get(&(name, UNDEFINED_VERSION)).copied();
            continue;
        }
        let mut newest: Option<Timestamp> = None;
        for version in &mut entry.versions {
            version.last_modified = dates.get(&(name, version.version.as_str())).copied();
            if let Some(t) = version.last_modified
                && newest.is_none_or(|n| t.cmp_instant(&n).is_gt())
            {
                newest = Some(t);
            }
        }
        entry.last_modified = newest;
    }
}

/// The parts of a devfile the index reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Devfile {
    #[serde(default, deserialize_with = "nullable")]
    schema_version: String,
    #[serde(default, deserialize_with = "nullable")]
    metadata: Metadata,
    #[serde(default, deserialize_with = "nullable")]
    starter_projects: Vec<Named>,
    #[serde(default, deserialize_with = "nullable")]
    commands: Vec<Command>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    version: String,
    #[serde(default, deserialize_with = "nullable")]
    display_name: String,
    #[serde(default, deserialize_with = "nullable")]
    description: String,
    #[serde(default, deserialize_with = "nullable")]
    tags: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    architectures: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    icon: String,
    #[serde(default, deserialize_with = "nullable")]
    project_type: String,
    #[serde(default, deserialize_with = "nullable")]
    language: String,
    #[serde(default, deserialize_with = "nullable")]
    links: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    deployment_scopes: BTreeMap<String, bool>,
    #[serde(default, deserialize_with = "nullable")]
    provider: String,
    #[serde(default, deserialize_with = "nullable")]
    support_url: String,
}

#[derive(Deserialize, Default)]
struct Named {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
}

#[derive(Deserialize, Default)]
struct Command {
    #[serde(default, deserialize_with = "nullable")]
    exec: Grouped,
    #[serde(default, deserialize_with = "nullable")]
    apply: Grouped,
    #[serde(default, deserialize_with = "nullable")]
    composite: Grouped,
}

#[derive(Deserialize, Default)]
struct Grouped {
    #[serde(default, deserialize_with = "nullable")]
    group: Group,
}

#[derive(Deserialize, Default)]
struct Group {
    #[serde(default, deserialize_with = "nullable")]
    kind: String,
}

fn stack_entry(stacks_dir: &Path, dir_name: &str) -> Result<IndexEntry, IndexError> {
    let folder = stacks_dir.join(dir_name);
    let stack_yaml = folder.join(STACK_YAML);
    let mut entry = match read_optional(&stack_yaml)? {
        Some(bytes) => {
            let mut entry: IndexEntry = parse_yaml(&stack_yaml, &bytes)?;
            validate_stack_yaml(&entry, &folder, dir_name)?;
            let versions = sort_versions(std::mem::take(&mut entry.versions), dir_name)?;
            for listed in versions {
                // Upstream skips git-hosted stack versions as "not supported".
                if listed.git.is_some() {
                    continue;
                }
                let version_dir = folder.join(&listed.version);
                let version = stack_version(&version_dir, dir_name, listed.default, &mut entry)?;
                entry.versions.push(version);
            }
            if entry.versions.iter().any(|v| v.architectures.is_empty()) {
                entry.architectures.clear();
            }
            entry
        }
        None => {
            let mut entry = IndexEntry::default();
            let version = stack_version(&folder, dir_name, true, &mut entry)?;
            entry.versions.push(version);
            entry
        }
    };
    entry.entry_type = Some(EntryType::Stack);
    entry.last_modified = None;
    validate_stack(&entry)?;
    Ok(entry)
}

/// Reads one stack version's devfile and folder, and fills the stack's shared fields that are
/// still empty.
fn stack_version(
    dir: &Path,
    stack_dir_name: &str,
    default: bool,
    entry: &mut IndexEntry,
) -> Result<VersionEntry, IndexError> {
    let [visible, hidden] = DEVFILE_NAMES.map(|name| dir.join(name));
    let has_hidden = exists(&hidden)?;
    if has_hidden && exists(&visible)? {
        return Err(IndexError::TwoDevfiles {
            dir: dir.to_owned(),
        });
    }
    let path = if has_hidden { hidden } else { visible };
    let bytes = fs::read(&path).map_err(|e| IndexError::io(&path, e))?;
    let devfile: Devfile = parse_yaml(&path, &bytes)?;
    let m = devfile.metadata;

    fill(&mut entry.project_type, &m.project_type);
    fill(&mut entry.language, &m.language);
    fill(&mut entry.provider, &m.provider);
    fill(&mut entry.support_url, &m.support_url);
    fill(&mut entry.name, &m.name);
    fill(&mut entry.display_name, &m.display_name);
    fill(&mut entry.description, &m.description);
    fill(&mut entry.icon, &m.icon);

    let mut links = m.links;
    links.insert(
        "self".to_owned(),
        format!("devfile-catalog/{stack_dir_name}:{}", m.version),
    );
    let mut command_groups: BTreeMap<String, bool> = COMMAND_GROUP_KINDS
        .iter()
        .map(|k| ((*k).to_owned(), false))
        .collect();
    for command in &devfile.commands {
        for kind in [
            &command.exec.group.kind,
            &command.apply.group.kind,
            &command.composite.group.kind,
        ] {
            if !kind.is_empty() {
                command_groups.insert(kind.clone(), true);
            }
        }
    }
    let version = VersionEntry {
        version: m.version,
        schema_version: devfile.schema_version,
        default,
        git: None,
        description: m.description,
        tags: m.tags,
        architectures: m.architectures,
        icon: m.icon,
        links,
        command_groups,
        deployment_scopes: m.deployment_scopes,
        resources: list_dir(dir)?
            .into_iter()
            .filter(|item| !item.is_dir && item.name != OWNERS)
            .map(|item| item.name)
            .collect(),
        starter_projects: devfile
            .starter_projects
            .into_iter()
            .map(|s| s.name)
            .collect(),
        last_modified: None,
    };

    if default {
        push_missing(&mut entry.tags, &version.tags);
    }
    push_missing(&mut entry.architectures, &version.architectures);
    Ok(version)
}

fn fill(field: &mut String, value: &str) {
    if field.is_empty() {
        value.clone_into(field);
    }
}

fn push_missing(list: &mut Vec<String>, items: &[String]) {
    for item in items {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
}

/// Highest semantic version first; equal versions keep their order.
fn sort_versions(
    versions: Vec<VersionEntry>,
    stack: &str,
) -> Result<Vec<VersionEntry>, IndexError> {
    let mut keyed = Vec::with_capacity(versions.len());
    for v in versions {
        let key = semver::Version::parse(v.version.trim()).map_err(|_| IndexError::Version {
            stack: stack.to_owned(),
            version: v.version.clone(),
        })?;
        keyed.push((key, v));
    }
    keyed.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(keyed.into_iter().map(|(_, v)| v).collect())
}

/// Upstream's `validateStackInfo`.
fn validate_stack_yaml(info: &IndexEntry, folder: &Path, stack: &str) -> Result<(), IndexError> {
    let mut problems = Vec::new();
    if info.name.is_empty() {
        problems.push("`name` is not set".to_owned());
    }
    if info.display_name.is_empty() {
        problems.push("`displayName` is not set".to_owned());
    }
    if info.icon.is_empty() {
        problems.push("`icon` is not set".to_owned());
    }
    if info.versions.is_empty() {
        problems.push("`versions` is empty".to_owned());
    }
    let defaults = info.versions.iter().filter(|v| v.default).count();
    if defaults > 1 {
        problems.push(format!("{defaults} versions are marked `default: true`"));
    }
    if defaults == 0 {
        problems.push("no version is marked `default: true`".to_owned());
    }
    for v in &info.versions {
        if v.git.is_none() && !is_dir(&folder.join(&v.version))? {
            problems.push(format!("version `{}` has no folder", v.version));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(IndexError::StackYaml {
            stack: stack.to_owned(),
            problems,
        })
    }
}

/// Upstream's `validateIndexComponent` for a stack, without the checks that only warn.
fn validate_stack(entry: &IndexEntry) -> Result<(), IndexError> {
    let fail = |problem: String| IndexError::Entry {
        kind: "stack",
        name: entry.name.clone(),
        problem,
    };
    if entry.name.is_empty() {
        return Err(fail("it has no name (`metadata.name`)".to_owned()));
    }
    if entry.versions.is_empty() {
        return Err(fail("it has no versions".to_owned()));
    }
    for v in &entry.versions {
        if v.version.is_empty() {
            return Err(fail(
                "a version has no `version` (`metadata.version`)".to_owned(),
            ));
        }
        if v.schema_version.is_empty() {
            return Err(fail(format!(
                "version `{}` has no `schemaVersion`",
                v.version
            )));
        }
        if v.links.is_empty() {
            return Err(fail(format!("version `{}` has no links", v.version)));
        }
        if v.resources.is_empty() {
            return Err(fail(format!("version `{}` has no resources", v.version)));
        }
    }
    check_one_default(&entry.versions).map_err(fail)?;
    check_deployment_scopes(entry).map_err(fail)
}

/// Upstream's `validateIndexComponent` for a sample, without the checks that only warn.
fn validate_sample(entry: &IndexEntry) -> Result<(), IndexError> {
    let fail = |problem: String| IndexError::Entry {
        kind: "sample",
        name: entry.name.clone(),
        problem,
    };
    if entry.versions.is_empty() {
        let Some(git) = &entry.git else {
            return Err(fail("it has neither `versions` nor `git`".to_owned()));
        };
        if git.remotes.len() > 1 {
            return Err(fail("its `git` has more than one remote".to_owned()));
        }
        return check_deployment_scopes(entry).map_err(fail);
    }
    for v in &entry.versions {
        if v.version.is_empty() {
            return Err(fail("a version has no `version`".to_owned()));
        }
        if v.schema_version.is_empty() {
            return Err(fail(format!(
                "version `{}` has no `schemaVersion`",
                v.version
            )));
        }
        if v.git.is_none() {
            return Err(fail(format!("version `{}` has no `git`", v.version)));
        }
    }
    check_one_default(&entry.versions).map_err(fail)?;
    check_deployment_scopes(entry).map_err(fail)
}

/// `deploymentScopes` may name only `innerloop` and `outerloop`, on the entry and on each
/// version (upstream's `InvalidDeploymentScopes`; with two kinds allowed, its
/// `TooManyDeploymentScopes` cannot happen on top).
fn check_deployment_scopes(entry: &IndexEntry) -> Result<(), String> {
    let scopes = std::iter::once(&entry.deployment_scopes)
        .chain(entry.versions.iter().map(|v| &v.deployment_scopes));
    for map in scopes {
        if let Some(kind) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "innerloop" | "outerloop"))
        {
            return Err(format!(
                "deployment scope `{kind}` is neither `innerloop` nor `outerloop`"
            ));
        }
    }
    Ok(())
}

fn check_one_default(versions: &[VersionEntry]) -> Result<(), String> {
    match versions.iter().filter(|v| v.default).count() {
        1 => Ok(()),
        0 => Err("no version is marked `default: true`".to_owned()),
        n => Err(format!("{n} versions are marked `default: true`")),
    }
}

struct DirItem {
    name: String,
    is_dir: bool,
}

/// A folder's entries sorted by name bytes, as Go's `os.ReadDir`; `is_dir` does not follow
/// symlinks (Go's `DirEntry.Info().IsDir()` neither).
fn list_dir(dir: &Path) -> Result<Vec<DirItem>, IndexError> {
    let mut items = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| IndexError::io(dir, e))? {
        let entry = entry.map_err(|e| IndexError::io(dir, e))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| IndexError::io(&path, e))?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| IndexError::FileName { path: path.clone() })?;
        items.push(DirItem {
            name,
            is_dir: file_type.is_dir(),
        });
    }
    items.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(items)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, IndexError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IndexError::io(path, e)),
    }
}

fn exists(path: &Path) -> Result<bool, IndexError> {
    path.try_exists().map_err(|e| IndexError::io(path, e))
}

fn is_dir(path: &Path) -> Result<bool, IndexError> {
    match fs::metadata(path) {
        Ok(m) => Ok(m.is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IndexError::io(path, e)),
    }
}

fn parse_yaml<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, IndexError> {
    let fail = |message: String| IndexError::Yaml {
        path: PathBuf::from(path),
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| fail(e.to_string()))?;
    serde_saphyr::from_str(text).map_err(|e| fail(e.to_string()))
}
