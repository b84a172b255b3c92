//! Starter projects (and `projects[]` entries) packaged as deterministic zips.
//!
//! git: the tree of the locked commit, read from the cache repository (no checkout, so no
//! `.git`, and no file mode or line ending of this machine), narrowed to `subDir` (whose
//! content becomes the zip's root), zipped with sorted entries, fixed timestamps and
//! permissions. zip: the downloaded bytes, checked against the locked sha256, kept as they
//! are — or, with a `subDir`, re-packed from that folder the same deterministic way. The zip
//! lands where [`Lockfile::project_zip_paths`](crate::lock::Lockfile::project_zip_paths) says (beside the devfile, and for a single-version stack
//! in the versioned layout in the stack's folder too, where the registry server looks).

use std::fmt;
use std::io::Read;

use super::kind::{Inputs, Kind, PlanError, PlanInput, Step, TreeOut, Written};
use crate::archive::{self, Entry};
use crate::context::Ctx;
use crate::git::FileKind;
use crate::lock::{LockedProject, ProjectKey, ProjectKind};
use crate::steps::stale::StaleReason;
use crate::tree_paths::in_registry;

/// Package one starter project (or `projects[]` entry) as `<name>-offline.zip`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Project {
    pub key: ProjectKey,
}

impl fmt::Display for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.key;
        write!(
            f,
            "{}:{}/{}/{}",
            k.kind.node_name(),
            k.source,
            k.owner,
            k.name
        )
    }
}

/// The configuration part of a project's key: where its zip goes.
#[derive(serde::Serialize)]
struct ProjectConfig {
    files: Vec<String>,
}

impl Kind for Project {
    type Out = TreeOut;
    const RELOCKED: fn(String) -> StaleReason = |step| StaleReason::ProjectRelocked { step };
    const WRITES_TREE: bool = true;

    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        for (key, locked) in &p.lock.projects {
            let what = match key.kind {
                ProjectKind::Starter => "starter project",
                ProjectKind::Project => "project",
            };
            let describe = format!("{what} {} of {}", key.name, super::id_words(&key.owner));
            let id = Project { key: key.clone() };
            steps.push(
                Step::new(id, describe)
                    .config(ProjectConfig {
                        files: p.lock.project_zip_paths(key),
                    })
                    .lock(locked),
            );
        }
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, _: &Inputs) -> Result<Written, String> {
        run(ctx, &self.key).await
    }
}

async fn run(ctx: &Ctx, key: &ProjectKey) -> Result<Written, String> {
    let locked = ctx
        .lock
        .projects
        .get(key)
        .ok_or_else(|| format!("`{}` is not in the lock", key.name))?
        .clone();
    let bytes = match locked {
        LockedProject::Git {
            remote,
            commit,
            sub_dir,
            ..
        } => {
            let (url, at) = (remote.clone(), commit.clone());
            let read = ctx.checkouts.read_at(&url, &at, move |reader| {
                let dir = sub_dir.clone().unwrap_or_default();
                if !dir.is_empty() && reader.list(&dir).map_err(|e| e.to_string())?.is_none() {
                    return Err(format!(
                        "subDir `{dir}` does not exist at commit {commit} of `{remote}`"
                    ));
                }
                let mut entries = Vec::new();
                for f in reader.walk(&dir).map_err(|e| e.to_string())? {
                    let full = if dir.is_empty() {
                        f.path.clone()
                    } else {
                        format!("{dir}/{}", f.path)
                    };
                    let content = reader
                        .read(&full)
                        .map_err(|e| e.to_string())?
                        .unwrap_or_default();
                    entries.push(match f.kind {
                        FileKind::Symlink => {
                            Entry::symlink(f.path, String::from_utf8_lossy(&content).into_owned())
                        }
                        FileKind::File { executable: true } => Entry::executable(f.path, content),
                        FileKind::File { executable: false } => Entry::file(f.path, content),
                    });
                }
                archive::zip_bytes(entries).map_err(|e| e.to_string())
            });
            read.await.map_err(|e| e.to_string())??
        }
        LockedProject::Zip {
            url,
            sha256,
            sub_dir,
        } => {
            let bytes = ctx
                .fetcher
                .get_locked(&url, &sha256)
                .await
                .map_err(|e| e.to_string())?;
            match sub_dir {
                None => bytes,
                Some(dir) => super::cpu(move || repack_subdir(&bytes, &dir, &url)).await?,
            }
        }
    };
    let mut out = Written::default();
    for rel in ctx.lock.project_zip_paths(key) {
        super::write_output(ctx, &in_registry(&rel), &bytes, &mut out).await?;
    }
    Ok(out)
}

/// The entries of a zip below `dir`, re-rooted there and zipped deterministically.
fn repack_subdir(bytes: &[u8], dir: &str, url: &str) -> Result<Vec<u8>, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("`{url}` is not a zip: {e}"))?;
    let prefix = format!("{}/", dir.trim_matches('/'));
    let mut entries = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(|e| format!("`{url}`: {e}"))?;
        let name = f.name().map_err(|e| format!("`{url}`: {e}"))?.to_string();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        if rest.is_empty() || f.is_dir() {
            continue;
        }
        let executable = f.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let mut content = Vec::new();
        f.read_to_end(&mut content)
            .map_err(|e| format!("`{url}`: {e}"))?;
        entries.push(if executable {
            Entry::executable(rest, content)
        } else {
            Entry::file(rest, content)
        });
    }
    if entries.is_empty() {
        return Err(format!("subDir `{dir}` is not in the zip `{url}`"));
    }
    archive::zip_bytes(entries).map_err(|e| e.to_string())
}
