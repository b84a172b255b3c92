//! Each stack version's other files packed into `archive.tar`, Dockerfiles' `FROM` lines
//! rewritten to the mirrored images, as a deterministic tar.gz (see [`crate::archive`]).

use std::fmt;

use super::kind::{DirConfig, Inputs, Kind, PlanError, PlanInput, Step, TreeOut, Written};
use crate::archive::{self as tar, Entry};
use crate::context::Ctx;
use crate::devfile;
use crate::git::FileKind;
use crate::rewrite;
use crate::steps::stale::StaleReason;
use crate::tree_paths::{in_registry, stack_dir};

use super::common::{check_locked, image_map, locked_stack, plan_images, read_source};
use super::image::Image;
use super::source::Source;

/// Pack one stack version's other files into `archive.tar`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Archive {
    pub source: String,
    pub id: String,
}

impl fmt::Display for Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "archive:{}/{}", self.source, self.id)
    }
}

/// The lock part of an archive's key: the packed files and their hashes.
#[derive(serde::Serialize)]
struct ArchiveLock<'a> {
    files: &'a std::collections::BTreeMap<String, String>,
}

impl Kind for Archive {
    type Out = TreeOut;
    const KEY_SKIPS_SOURCE: bool = true;
    const WRITES_TREE: bool = true;

    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        for ((source, id), entry) in &p.lock.stacks {
            if entry.files.is_empty() {
                continue;
            }
            // FROM lines of Dockerfiles are rewritten: the images are inputs too.
            let deps = std::iter::once(
                Source {
                    source: source.clone(),
                }
                .into(),
            )
            .chain(
                entry
                    .uses
                    .images
                    .iter()
                    .map(|i| Image { image: i.clone() }.into()),
            );
            let step = Archive {
                source: source.clone(),
                id: id.clone(),
            };
            steps.push(
                Step::new(step, format!("archive of {}", super::id_words(id)))
                    .deps(deps)
                    .config(DirConfig { dir: stack_dir(id) })
                    .lock(ArchiveLock {
                        files: &entry.files,
                    }),
            );
        }
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Written, String> {
        archive(ctx, inputs, &self.source, &self.id).await
    }

    fn relocked(&self, _: &serde_json::Value, _: &serde_json::Value, _: &str) -> StaleReason {
        StaleReason::ArchiveFilesChanged {
            stack: super::id_words(&self.id),
        }
    }
}

/// One stack version's `archive.tar`: the packed files, Dockerfiles' `FROM` lines rewritten,
/// as a deterministic tar.gz (see [`crate::archive`]).
async fn archive(ctx: &Ctx, inputs: &Inputs, source: &str, id: &str) -> Result<Written, String> {
    let entry = locked_stack(ctx, source, id)?;
    let dir = stack_dir(id);
    let (_, files) = read_source(ctx, source, dir.clone(), vec![], true).await?;
    let by_key = image_map(inputs, entry.uses.images.iter().cloned())?;
    let mut entries = Vec::new();
    let mut seen = 0usize;
    for f in files {
        if !crate::discover::is_packed(&f.rel) {
            continue;
        }
        let locked = entry.files.get(&f.rel).ok_or_else(|| {
            format!(
                "`{dir}/{}` of source `{source}` is not in the lock; run `airgap lock`",
                f.rel
            )
        })?;
        check_locked(&f.bytes, Some(locked), &format!("{dir}/{}", f.rel), source)?;
        seen += 1;
        let name = f.rel.rsplit('/').next().unwrap_or(&f.rel);
        entries.push(match f.kind {
            FileKind::Symlink => Entry::symlink(
                f.rel.clone(),
                String::from_utf8_lossy(&f.bytes).into_owned(),
            ),
            FileKind::File { executable } => {
                let bytes = if devfile::is_dockerfile(name) {
                    let text = String::from_utf8_lossy(&f.bytes).into_owned();
                    let froms: Vec<devfile::ImageUse> = devfile::dockerfile_froms(&text)
                        .into_iter()
                        .map(|l| devfile::ImageUse {
                            written: l.written,
                            resolved: l.resolved,
                            place: format!("{}:{}", f.rel, l.line),
                        })
                        .collect();
                    let map = plan_images(&froms, &by_key)?;
                    rewrite::rewrite_dockerfile(&format!("{dir}/{}", f.rel), &text, &map)
                        .map_err(|e| crate::diag::render_plain(&e))?
                        .into_bytes()
                } else {
                    f.bytes
                };
                if executable {
                    Entry::executable(f.rel.clone(), bytes)
                } else {
                    Entry::file(f.rel.clone(), bytes)
                }
            }
        });
    }
    if seen != entry.files.len() {
        return Err(format!(
            "files packed with `{dir}` of source `{source}` differ from the locked ones; run `airgap lock`"
        ));
    }
    // A gzip stream despite the name, as upstream's `tar -czf` makes it: registry-library
    // un-gzips `archive.tar` after a pull and fails on a plain tar.
    let tar_gz = super::cpu(move || {
        tar::write_tar_gz(entries, Vec::new())
            .map(|(bytes, _)| bytes)
            .map_err(|e| e.to_string())
    })
    .await?;
    let mut out = Written::default();
    super::write_output(
        ctx,
        &in_registry(&format!("{dir}/archive.tar")),
        &tar_gz,
        &mut out,
    )
    .await?;
    Ok(out)
}
