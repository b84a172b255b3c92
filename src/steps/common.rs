//! What the devfile-writing steps share: reading a source's files at the locked commit (or on
//! disk), checking them against the lock, and writing a devfile rewritten to point inside the
//! air gap with its icon, parent and metadata files beside it.

use std::collections::BTreeMap;

use super::image::Image;
use super::kind::{Inputs, Written};
use crate::context::Ctx;
use crate::devfile;
use crate::git::{FileKind, TreeFile};
use crate::lock::LockedSource;
use crate::lock::{LockedStack, resolve::canonical_image};
use crate::rewrite::{self, DevfilePlan, ImageMap};
use crate::source::Files;
use crate::tree_paths::{DEVFILE_NAMES, in_registry, project_zip_name};

/// A file read from a source, with how it is stored.
pub(super) struct SourceFile {
    pub rel: String,
    pub kind: FileKind,
    pub bytes: Vec<u8>,
}

/// Reads files of a source (below `dir`, at the locked commit or on disk): the named ones, and
/// when `walk` every file below `dir`.
pub(super) async fn read_source(
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
        LockedSource::Git { url, commit, .. } => ctx
            .checkouts
            .read_at(&url, &commit, move |reader| read(&Files::Git(reader)))
            .await
            .map_err(|e| e.to_string())?,
        LockedSource::Path { path } => {
            let root = ctx.manifest.resolve_path(std::path::Path::new(&path));
            super::blocking(move || read(&Files::Dir(root))).await
        }
    }
}

/// Image key → the reference devfiles are rewritten to: what the image step recorded.
pub(super) fn image_map(
    inputs: &Inputs,
    keys: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for key in keys {
        let image = Image { image: key };
        let recorded = inputs
            .out(&image)
            .map_err(|_| format!("image {} has not been mirrored", image.image))?;
        out.insert(image.image, recorded.reference);
    }
    Ok(out)
}

/// The resolved image strings of a devfile's uses → their mirrored references.
pub(super) fn plan_images(
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

pub(super) const PARENT_FILE: &str = "parent-devfile.yaml";
/// Where files named by `metadata` URLs go, beside the devfile.
pub(super) const METADATA_DIR: &str = "metadata-files";

/// The text of the first of `names` in `dir` of `source`, which must hash (blake3) to
/// `locked`. Messages name the file as `dir/<first name>`.
pub(super) async fn locked_text(
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
pub(super) fn check_locked(
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
pub(super) fn locked_stack(ctx: &Ctx, source: &str, id: &str) -> Result<LockedStack, String> {
    ctx.lock
        .stacks
        .get(&(source.to_string(), id.to_string()))
        .cloned()
        .ok_or_else(|| format!("stack {id} is not in the lock"))
}

/// Rewrites one devfile's text into `dir` of the tree, with its icon and parent beside it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write_devfile(
    ctx: &Ctx,
    inputs: &Inputs,
    dir: &str,
    owner: &str,
    source_name: &str,
    path_for_errors: &str,
    text: &str,
    out: &mut Written,
) -> Result<(), String> {
    let d = {
        let (path, text) = (path_for_errors.to_string(), text.to_string());
        super::cpu(move || devfile::parse(&path, &text).map_err(|e| e.to_string())).await?
    };
    let uses = d.images();
    let keys: Vec<String> = uses
        .iter()
        .filter_map(|u| canonical_image(&u.resolved).ok())
        .collect();
    let by_key = image_map(inputs, keys)?;
    let mut plan = DevfilePlan {
        images: plan_images(&uses, &by_key)?,
        ..Default::default()
    };
    let has_project = |kind: crate::lock::ProjectKind, name: &str| {
        ctx.lock.projects.contains_key(&crate::lock::ProjectKey {
            source: source_name.to_string(),
            owner: owner.to_string(),
            kind,
            name: name.to_string(),
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
        super::write_output(ctx, &in_registry(&format!("{dir}/{name}")), &bytes, out).await?;
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
        super::write_output(ctx, &in_registry(&format!("{dir}/{rel}")), &bytes, out).await?;
        plan.metadata.insert(key.to_string(), rel);
    }
    if let Some(parent) = d.parent() {
        let bytes = super::download::bytes(ctx, &parent.url()).await?;
        super::write_output(
            ctx,
            &in_registry(&format!("{dir}/{PARENT_FILE}")),
            &bytes,
            out,
        )
        .await?;
        plan.parent = Some(PARENT_FILE.to_string());
    }
    let new = {
        let (path, text) = (path_for_errors.to_string(), text.to_string());
        super::cpu(move || {
            rewrite::rewrite_devfile(&path, &text, &plan).map_err(|e| crate::diag::render_plain(&e))
        })
        .await?
    };
    super::write_output(
        ctx,
        &in_registry(&format!("{dir}/{}", DEVFILE_NAMES[0])),
        new.as_bytes(),
        out,
    )
    .await?;
    Ok(())
}

#[derive(serde::Deserialize, Default)]
pub(super) struct IconOnly {
    #[serde(default)]
    pub name: Option<devfile::Text>,
    #[serde(default)]
    pub icon: Option<serde_saphyr::Spanned<devfile::Text>>,
}

pub(super) fn is_remote(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}
