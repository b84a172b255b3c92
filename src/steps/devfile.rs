//! Writing the devfiles of the registry tree: each stack version's devfile rewritten by spans
//! (images pinned to what landed at the target, starter projects as offline zips, icon and
//! parent as local files), its packed files as `archive.tar` (Dockerfile `FROM` lines
//! rewritten), samples' devfiles from their repositories, and the stack-level files
//! (`stack.yaml`, `extraDevfileEntries.yaml`) with their icons made local.

use std::collections::BTreeMap;

use git2::Oid;

use crate::archive::{self, Entry};
use crate::context::{Ctx, StepOutput};
use crate::devfile;
use crate::git::{CommitReader, FileKind, TreeFile};
use crate::lock::{LockedSource, LockedStack, resolve::canonical_image};
use crate::rewrite::{self, DevfilePlan, ImageMap};
use crate::source::Files;
use crate::state::State;
use crate::tree_paths::{
    DEVFILE_NAMES, STACK_YAML, in_registry, project_zip_name, sample_dir, stack_dir, stack_of,
    stack_yaml_path,
};
use crate::url_mirror::mirror_url;

/// A file read from a source, with how it is stored.
struct SourceFile {
    rel: String,
    kind: FileKind,
    bytes: Vec<u8>,
}

/// Reads files of a source (below `dir`, at the locked commit or on disk): the named ones, and
/// when `walk` every file below `dir`.
async fn read_source(
    ctx: &Ctx,
    source: &str,
    dir: String,
    names: Vec<String>,
    walk: bool,
) -> Result<(Vec<Option<Vec<u8>>>, Vec<SourceFile>), String> {
    let locked = super::locked_source(ctx, source)?;
    let join = |dir: &str, n: &str| {
        if dir.is_empty() {
            n.to_string()
        } else {
            format!("{dir}/{n}")
        }
    };
    let read = move |files: &Files<'_>| -> Result<_, String> {
        let named = names
            .iter()
            .map(|n| files.read(&join(&dir, n)).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut all = Vec::new();
        if walk {
            for TreeFile { path, kind } in files.walk(&dir).map_err(|e| e.to_string())? {
                let full = join(&dir, &path);
                let bytes = match kind {
                    FileKind::Symlink => files.read_link(&full),
                    _ => files.read(&full),
                }
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
                all.push(SourceFile {
                    rel: path,
                    kind,
                    bytes,
                });
            }
        }
        Ok((named, all))
    };
    match locked {
        LockedSource::Git { url, commit, .. } => {
            let git = ctx.git.clone();
            let fetch_url = mirror_url(&ctx.manifest.url_mirrors, &url);
            let lock = ctx.repo_lock(&url);
            let _held = lock.lock().await;
            super::blocking(move || {
                let oid = Oid::from_str(&commit).map_err(|e| e.to_string())?;
                let repo = git
                    .ensure_commit(&url, &fetch_url, oid)
                    .map_err(|e| e.to_string())?;
                let reader = CommitReader::new(&repo, oid).map_err(|e| e.to_string())?;
                read(&Files::Git(reader))
            })
            .await
        }
        LockedSource::Path { path } => {
            let root = ctx.manifest.resolve_path(std::path::Path::new(&path));
            super::blocking(move || read(&Files::Dir(root))).await
        }
    }
}

/// Image key → the reference devfiles are rewritten to: what the image step recorded.
fn image_map(
    state: &State,
    keys: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for key in keys {
        let rec = state
            .get(&format!("image:{key}"))
            .ok_or_else(|| format!("image {key} has not been mirrored"))?;
        let reference = rec
            .outputs
            .get("reference")
            .ok_or_else(|| format!("image {key} recorded no reference"))?;
        out.insert(key, reference.clone());
    }
    Ok(out)
}

/// The resolved image strings of a devfile's uses → their mirrored references.
fn plan_images(
    uses: &[devfile::ImageUse],
    by_key: &BTreeMap<String, String>,
) -> Result<ImageMap, String> {
    let mut map = ImageMap::new();
    for u in uses {
        let key = canonical_image(&u.resolved)
            .map_err(|e| format!("image `{}` in {}: {e}", u.written, u.place))?;
        let r = by_key
            .get(&key)
            .ok_or_else(|| format!("image `{}` in {} is not in the lock", u.written, u.place))?;
        map.insert(u.resolved.clone(), r.clone());
    }
    Ok(map)
}

/// The file name an icon gets next to the devfile: `logo.<ext>` from the URL, else sniffed.
pub fn icon_file_name(url: &str, bytes: &[u8]) -> String {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let ext = ["svg", "png", "jpg", "jpeg", "gif", "webp", "ico"]
        .into_iter()
        .find(|e| path.ends_with(&format!(".{e}")))
        .map(str::to_string)
        .unwrap_or_else(|| {
            if bytes.starts_with(b"\x89PNG") {
                "png".into()
            } else if bytes.starts_with(b"\xff\xd8") {
                "jpg".into()
            } else {
                "svg".into()
            }
        });
    format!("logo.{ext}")
}

const PARENT_FILE: &str = "parent-devfile.yaml";
/// Where files named by `metadata` URLs go, beside the devfile.
const METADATA_DIR: &str = "metadata-files";

/// The text of the first of `names` in `dir` of `source`, which must hash (blake3) to
/// `locked`. Messages name the file as `dir/<first name>`.
async fn locked_text(
    ctx: &Ctx,
    source: &str,
    dir: &str,
    names: &[&str],
    locked: Option<&str>,
) -> Result<String, String> {
    let path = format!("{dir}/{}", names[0]);
    let names = names.iter().map(|n| n.to_string()).collect();
    let (named, _) = read_source(ctx, source, dir.to_string(), names, false).await?;
    let bytes = named
        .into_iter()
        .flatten()
        .next()
        .ok_or_else(|| format!("`{path}` is missing from source `{source}`"))?;
    check_locked(&bytes, locked, &path, source)?;
    String::from_utf8(bytes).map_err(|_| format!("`{path}` is not UTF-8"))
}

/// Fails unless `bytes` hash (blake3) to `locked`, what the lock holds for `path` of `source`.
fn check_locked(
    bytes: &[u8],
    locked: Option<&str>,
    path: &str,
    source: &str,
) -> Result<(), String> {
    if locked == Some(blake3::hash(bytes).to_hex().as_str()) {
        Ok(())
    } else {
        Err(format!(
            "`{path}` of source `{source}` differs from the locked one; run `airgap lock`"
        ))
    }
}

/// The lock's entry for stack version `id` of `source`.
fn locked_stack(ctx: &Ctx, source: &str, id: &str) -> Result<LockedStack, String> {
    ctx.lock
        .stacks
        .get(&(source.to_string(), id.to_string()))
        .cloned()
        .ok_or_else(|| format!("stack {id} is not in the lock"))
}

/// Rewrites one devfile's text into `dir` of the tree, with its icon and parent beside it.
#[allow(clippy::too_many_arguments)]
async fn write_devfile(
    ctx: &Ctx,
    state: &State,
    dir: &str,
    owner: &str,
    source_name: &str,
    path_for_errors: &str,
    text: &str,
    out: &mut StepOutput,
) -> Result<(), String> {
    let d = devfile::parse(path_for_errors, text).map_err(|e| e.to_string())?;
    let uses = d.images();
    let keys: Vec<String> = uses
        .iter()
        .filter_map(|u| canonical_image(&u.resolved).ok())
        .collect();
    let by_key = image_map(state, keys)?;
    let mut plan = DevfilePlan {
        images: plan_images(&uses, &by_key)?,
        ..Default::default()
    };
    let has_project = |kind: crate::lock::ProjectKind, name: &str| {
        ctx.lock.projects.keys().any(|k| {
            k.source == source_name && k.owner == owner && k.kind == kind && k.name == name
        })
    };
    for p in d.starter_projects() {
        if has_project(crate::lock::ProjectKind::Starter, &p.name) {
            plan.starter_projects
                .insert(p.name.clone(), project_zip_name(&p.name));
        }
    }
    for p in d.projects() {
        if has_project(crate::lock::ProjectKind::Project, &p.name) {
            plan.projects
                .insert(p.name.clone(), project_zip_name(&p.name));
        }
    }
    if let Some(icon) = d.icon().filter(|i| is_remote(i)) {
        let bytes = super::download::bytes(ctx, &icon).await?;
        let name = icon_file_name(&icon, &bytes);
        super::write_output(ctx, &in_registry(&format!("{dir}/{name}")), &bytes, out)?;
        plan.icon = Some(name);
    }
    for (key, url) in d.metadata_files() {
        let bytes = super::download::bytes(ctx, &url).await?;
        let base = url
            .split(['?', '#'])
            .next()
            .and_then(|p| p.rsplit('/').next())
            .filter(|b| !b.is_empty() && *b != "." && *b != "..")
            .unwrap_or("file")
            .to_string();
        // In a folder of its own: no clash with the stack's files, and not a resource of the
        // index (which lists the version folder's files only).
        let rel = format!("{METADATA_DIR}/{base}");
        super::write_output(ctx, &in_registry(&format!("{dir}/{rel}")), &bytes, out)?;
        plan.metadata.insert(key.to_string(), rel);
    }
    if let Some(parent) = d.parent() {
        let bytes = super::download::bytes(ctx, &parent.url()).await?;
        super::write_output(
            ctx,
            &in_registry(&format!("{dir}/{PARENT_FILE}")),
            &bytes,
            out,
        )?;
        plan.parent = Some(PARENT_FILE.to_string());
    }
    let new = rewrite::rewrite_devfile(path_for_errors, text, &plan)
        .map_err(|e| crate::diag::render_plain(&e))?;
    super::write_output(
        ctx,
        &in_registry(&format!("{dir}/{}", DEVFILE_NAMES[0])),
        new.as_bytes(),
        out,
    )?;
    Ok(())
}

/// One stack version's devfile.
pub async fn stack_devfile(
    ctx: &Ctx,
    state: &State,
    source: &str,
    id: &str,
) -> Result<StepOutput, String> {
    let entry = locked_stack(ctx, source, id)?;
    let dir = stack_dir(id);
    let text = locked_text(ctx, source, &dir, &DEVFILE_NAMES, Some(&entry.devfile)).await?;
    let mut out = StepOutput::default();
    write_devfile(
        ctx,
        state,
        &dir,
        id,
        source,
        &format!("{dir}/devfile.yaml"),
        &text,
        &mut out,
    )
    .await?;
    Ok(out)
}

/// One stack version's `archive.tar`: the packed files, Dockerfiles' `FROM` lines rewritten,
/// as a deterministic tar.gz (see [`archive`]).
pub async fn archive(
    ctx: &Ctx,
    state: &State,
    source: &str,
    id: &str,
) -> Result<StepOutput, String> {
    let entry = locked_stack(ctx, source, id)?;
    let dir = stack_dir(id);
    let (_, files) = read_source(ctx, source, dir.clone(), vec![], true).await?;
    let by_key = image_map(state, entry.uses.images.iter().cloned())?;
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
    let tar_gz = super::blocking(move || {
        archive::write_tar_gz(entries, Vec::new())
            .map(|(bytes, _)| bytes)
            .map_err(|e| e.to_string())
    })
    .await?;
    let mut out = StepOutput::default();
    super::write_output(
        ctx,
        &in_registry(&format!("{dir}/archive.tar")),
        &tar_gz,
        &mut out,
    )?;
    Ok(out)
}

/// One sample's devfile, from its repository at the locked commit.
pub async fn sample(
    ctx: &Ctx,
    state: &State,
    source: &str,
    id: &str,
) -> Result<StepOutput, String> {
    let entry = ctx
        .lock
        .samples
        .get(&(source.to_string(), id.to_string()))
        .ok_or_else(|| format!("sample {id} is not in the lock"))?
        .clone();
    let git = ctx.git.clone();
    let fetch_url = mirror_url(&ctx.manifest.url_mirrors, &entry.remote);
    let lock = ctx.repo_lock(&entry.remote);
    let held = lock.lock().await;
    let (remote, commit, sub_dir) = (
        entry.remote.clone(),
        entry.commit.clone(),
        entry.sub_dir.clone(),
    );
    let (path, bytes) = super::blocking(move || {
        let oid = Oid::from_str(&commit).map_err(|e| e.to_string())?;
        let repo = git
            .ensure_commit(&remote, &fetch_url, oid)
            .map_err(|e| e.to_string())?;
        let reader = CommitReader::new(&repo, oid).map_err(|e| e.to_string())?;
        let dir = sub_dir.unwrap_or_default();
        for name in DEVFILE_NAMES {
            let p = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            if let Some(b) = reader.read(&p).map_err(|e| e.to_string())? {
                return Ok((p, b));
            }
        }
        Err(format!(
            "the repository of the sample has no devfile.yaml at {commit}"
        ))
    })
    .await?;
    drop(held);
    if blake3::hash(&bytes).to_hex().as_str() != entry.devfile {
        return Err(format!(
            "the devfile of sample {id} differs from the locked one"
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| format!("the devfile of sample {id} is not UTF-8"))?;
    let mut out = StepOutput::default();
    let dir = sample_dir(id);
    write_devfile(
        ctx,
        state,
        &dir,
        &format!("sample:{id}"),
        source,
        &path,
        &text,
        &mut out,
    )
    .await?;
    Ok(out)
}

#[derive(serde::Deserialize, Default)]
struct IconOnly {
    #[serde(default)]
    name: Option<devfile::Text>,
    #[serde(default)]
    icon: Option<serde_saphyr::Spanned<devfile::Text>>,
}

#[derive(serde::Deserialize, Default)]
struct ExtraIcons {
    #[serde(default)]
    samples: Vec<IconOnly>,
}

fn is_remote(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// A multi-version stack's `stack.yaml`, its icon made local (`logo.<ext>` beside it).
pub async fn stack_yaml(ctx: &Ctx, source: &str, stack: &str) -> Result<StepOutput, String> {
    let dir = stack_dir(stack);
    let locked = ctx
        .lock
        .stacks
        .iter()
        .find(|((s, id), _)| s == source && stack_of(id) == stack)
        .and_then(|(_, e)| e.stack_yaml.as_deref());
    let text = locked_text(ctx, source, &dir, &[STACK_YAML], locked).await?;
    let parsed: IconOnly =
        serde_saphyr::from_str(&text).map_err(|e| format!("`{}`: {e}", stack_yaml_path(stack)))?;
    let mut out = StepOutput::default();
    let mut edits = Vec::new();
    if let Some(icon) = &parsed.icon
        && is_remote(icon.value.as_str())
    {
        let url = icon.value.as_str().to_string();
        let bytes = super::download::bytes(ctx, &url).await?;
        let name = icon_file_name(&url, &bytes);
        super::write_output(
            ctx,
            &in_registry(&format!("{dir}/{name}")),
            &bytes,
            &mut out,
        )?;
        if let Some(range) = devfile::byte_range(icon) {
            edits.push((range, name));
        }
    }
    let new = rewrite::replace_scalars(&stack_yaml_path(stack), &text, &edits)
        .map_err(|e| crate::diag::render_plain(&e))?;
    super::write_output(
        ctx,
        &in_registry(&stack_yaml_path(stack)),
        new.as_bytes(),
        &mut out,
    )?;
    Ok(out)
}

/// `registry/extraDevfileEntries.yaml`: the samples of every source that includes them, with
/// icons made local (`samples/<name>/logo.<ext>`). One source's file is kept as written (icons
/// edited in place); several sources' samples are merged into one document (as JSON, which is
/// YAML).
pub async fn extra(ctx: &Ctx) -> Result<StepOutput, String> {
    let sources: Vec<String> = ctx
        .manifest
        .sources
        .iter()
        .filter(|s| s.samples && ctx.lock.samples.keys().any(|(src, _)| src == &s.name.value))
        .map(|s| s.name.value.clone())
        .collect();
    let mut out = StepOutput::default();
    let mut texts = Vec::new();
    for source in &sources {
        let (named, _) = read_source(
            ctx,
            source,
            String::new(),
            vec![crate::discover::EXTRA_ENTRIES.into()],
            false,
        )
        .await?;
        let bytes = named.into_iter().flatten().next().unwrap_or_default();
        let locked = ctx.lock.extra_entries.get(source).map(String::as_str);
        check_locked(&bytes, locked, crate::discover::EXTRA_ENTRIES, source)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            format!(
                "`{}` of source `{source}` is not UTF-8",
                crate::discover::EXTRA_ENTRIES
            )
        })?;
        let parsed: ExtraIcons = serde_saphyr::from_str(&text).map_err(|e| {
            format!(
                "`{}` of source `{source}`: {e}",
                crate::discover::EXTRA_ENTRIES
            )
        })?;
        let mut edits = Vec::new();
        for s in &parsed.samples {
            let (Some(name), Some(icon)) = (&s.name, &s.icon) else {
                continue;
            };
            if !is_remote(icon.value.as_str()) {
                continue;
            }
            let url = icon.value.as_str().to_string();
            let bytes = super::download::bytes(ctx, &url).await?;
            let file = icon_file_name(&url, &bytes);
            super::write_output(
                ctx,
                &in_registry(&format!("{}/{file}", sample_dir(name.as_str()))),
                &bytes,
                &mut out,
            )?;
            if let Some(range) = devfile::byte_range(icon) {
                edits.push((range, file));
            }
        }
        let new = rewrite::replace_scalars(crate::discover::EXTRA_ENTRIES, &text, &edits)
            .map_err(|e| crate::diag::render_plain(&e))?;
        texts.push(new);
    }
    let merged = match texts.len() {
        0 => return Ok(out),
        1 => texts.remove(0),
        _ => {
            let mut samples = Vec::new();
            let mut schema = serde_json::Value::Null;
            for t in &texts {
                let v: serde_json::Value = serde_saphyr::from_str(t).map_err(|e| e.to_string())?;
                if schema.is_null() {
                    schema = v["schemaVersion"].clone();
                }
                samples.extend(v["samples"].as_array().cloned().unwrap_or_default());
            }
            let doc = serde_json::json!({"schemaVersion": schema, "samples": samples});
            format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            )
        }
    };
    super::write_output(
        ctx,
        &in_registry(crate::discover::EXTRA_ENTRIES),
        merged.as_bytes(),
        &mut out,
    )?;
    Ok(out)
}
