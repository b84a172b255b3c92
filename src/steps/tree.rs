//! The registry-wide files of the tree: `last_modified.json` (dates from git history at the
//! locked commits, so they are reproducible) and `index.json` (generated offline from the
//! tree, as upstream's index generator does).

use git2::Oid;

use super::stack_artifact::server_accepts_resource;
use crate::context::{Ctx, StepOutput};
use crate::git::CommitReader;
use crate::index::{self, EntryType, LastModifiedFile, LastModifiedRecord, Timestamp};
use crate::lock::LockedSource;
use crate::tree_paths::{
    DEVFILE_NAMES, INDEX_JSON, LAST_MODIFIED_JSON, in_registry, sample_dir, stack_dir, stack_of,
    versioned_stack_of,
};
use crate::url_mirror::mirror_url;

/// `registry/last_modified.json`: for each stack version of a git source, the author date of
/// the newest commit (up to the locked one) that changed its devfile; for each sample, the
/// date of its locked commit. Path sources have no history: their entries are left out (the
/// index then has no `lastModified` for them).
pub async fn last_modified(ctx: &Ctx) -> Result<StepOutput, String> {
    let mut jobs = Vec::new();
    for (name, s) in &ctx.lock.sources {
        if let LockedSource::Git { url, commit, .. } = s {
            let ids: Vec<String> = ctx
                .lock
                .stacks
                .keys()
                .filter(|(src, _)| src == name)
                .map(|(_, id)| id.clone())
                .collect();
            jobs.push((url.clone(), commit.clone(), ids));
        }
    }
    let samples: Vec<(String, String, String)> = ctx
        .lock
        .samples
        .iter()
        .map(|((_, id), s)| (id.clone(), s.remote.clone(), s.commit.clone()))
        .collect();
    let git = ctx.git.clone();
    let mirrors = ctx.manifest.url_mirrors.clone();
    let bytes = super::blocking(move || {
        let mut records = Vec::new();
        for (url, commit, ids) in jobs {
            let oid = Oid::from_str(&commit).map_err(|e| e.to_string())?;
            let repo = git
                .ensure_commit(&url, &mirror_url(&mirrors, &url), oid)
                .map_err(|e| e.to_string())?;
            let reader = CommitReader::new(&repo, oid).map_err(|e| e.to_string())?;
            // The devfile of each stack version, and its name and version as the index has them.
            let mut paths = Vec::new();
            let mut meta = Vec::new();
            for id in &ids {
                let base = stack_dir(id);
                let (path, text) = DEVFILE_NAMES
                    .iter()
                    .find_map(|n| {
                        let p = format!("{base}/{n}");
                        reader.read(&p).ok().flatten().map(|b| (p, b))
                    })
                    .ok_or_else(|| format!("no devfile in `{base}` at {commit}"))?;
                let d = crate::devfile::parse(&path, &String::from_utf8_lossy(&text))
                    .map_err(|e| e.to_string())?;
                let m = d.metadata.unwrap_or_default();
                let stack = stack_of(id).to_string();
                meta.push((
                    path.clone(),
                    m.name.map(|n| n.0).unwrap_or(stack),
                    m.version
                        .map(|v| v.0)
                        .unwrap_or_else(|| index::UNDEFINED_VERSION.to_string()),
                ));
                paths.push(path);
            }
            let dates = crate::git::last_modified(&repo, oid, &paths).map_err(|e| e.to_string())?;
            // Upstream's order: devfile paths as `git ls-tree` lists them.
            meta.sort_by(|a, b| a.0.cmp(&b.0));
            for (path, name, version) in meta {
                if let Some((secs, offset)) = dates.get(&path) {
                    records.push(LastModifiedRecord {
                        kind: EntryType::Stack,
                        name,
                        version,
                        last_modified: Timestamp::from_unix(*secs, *offset)
                            .map_err(|e| e.to_string())?,
                    });
                }
            }
        }
        for (id, remote, commit) in samples {
            let oid = Oid::from_str(&commit).map_err(|e| e.to_string())?;
            let repo = git
                .ensure_commit(&remote, &mirror_url(&mirrors, &remote), oid)
                .map_err(|e| e.to_string())?;
            let c = repo.find_commit(oid).map_err(|e| e.to_string())?;
            let when = c.author().when();
            let (name, version) = match id.split_once('/') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => (id.clone(), index::UNDEFINED_VERSION.to_string()),
            };
            records.push(LastModifiedRecord {
                kind: EntryType::Sample,
                name,
                version,
                last_modified: Timestamp::from_unix(when.seconds(), when.offset_minutes())
                    .map_err(|e| e.to_string())?,
            });
        }
        Ok(index::last_modified_json(&records))
    })
    .await?;
    let mut out = StepOutput::default();
    super::write_output(ctx, &in_registry(LAST_MODIFIED_JSON), &bytes, &mut out)?;
    Ok(out)
}

/// `registry/index.json`, generated from the tree. Icons that are local files (rewritten
/// devfiles say `logo.svg`, relative to the devfile) become paths relative to the registry
/// root, so a server or client can find them from the index alone.
///
/// A version's `resources` keep only the names the registry server can start with
/// ([`server_accepts_resource`]). The generator lists every file of the version's folder, and
/// upstream's folders hold nothing else; the files airgap adds beside a devfile (an icon that
/// is not `logo.svg`/`logo.png`, such as `logo.jpg`; `parent-devfile.yaml`) would stop the
/// server at start. They stay in the tree, where the devfile names them, but are not pushed
/// as layers of the stack's artifact (nor are they by airgap's own stack artifact step).
pub async fn index_json(ctx: &Ctx) -> Result<StepOutput, String> {
    let dir = ctx.registry_dir();
    let multi: std::collections::BTreeSet<String> = ctx
        .lock
        .stacks
        .keys()
        .filter_map(|(_, id)| versioned_stack_of(id).map(str::to_string))
        .collect();
    let bytes = super::blocking(move || {
        let mut entries = index::generate(&dir).map_err(|e| e.to_string())?;
        if let Ok(bytes) = std::fs::read(dir.join(LAST_MODIFIED_JSON)) {
            let file = LastModifiedFile::from_json(&bytes).map_err(|e| e.to_string())?;
            index::apply_last_modified(&mut entries, &file);
        }
        for e in &mut entries {
            let base = match e.entry_type {
                Some(EntryType::Sample) => sample_dir(&e.name),
                _ => stack_dir(&e.name),
            };
            let multi_version = multi.contains(&e.name);
            if e.entry_type != Some(EntryType::Sample) {
                for v in &mut e.versions {
                    v.resources.retain(|r| server_accepts_resource(r));
                }
            }
            e.icon = localize(&e.icon, &base);
            for v in &mut e.versions {
                let vbase = if multi_version && e.entry_type != Some(EntryType::Sample) {
                    format!("{base}/{}", v.version)
                } else {
                    base.clone()
                };
                v.icon = localize(&v.icon, &vbase);
            }
        }
        Ok(index::to_json_bytes(&entries))
    })
    .await?;
    let mut out = StepOutput::default();
    super::write_output(ctx, &in_registry(INDEX_JSON), &bytes, &mut out)?;
    Ok(out)
}

fn localize(icon: &str, base: &str) -> String {
    if icon.is_empty() || icon.contains("://") || icon.starts_with("data:") {
        icon.to_string()
    } else {
        format!("{base}/{}", icon.trim_start_matches("./"))
    }
}
