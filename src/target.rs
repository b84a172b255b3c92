//! What `apply` may touch in an output folder, checked before anything is written.
//!
//! An output folder (a `dir:` target, a bundle, or the build folder of a registry target) is
//! airgap's: an OCI image layout (`oci-layout`, `index.json` and its journal,
//! `blobs/sha256/<hex>`), the
//! registry tree (`registry/`), the cluster's manifests (`deploy/`), a bundle's `airgap-bundle.json`, the staging folder and the
//! layout writer's `.tmp-*` files. Files of the registry tree are airgap's only when it recorded
//! writing them (and so are those of `deploy/`): the files of the state's records and the workspace's `owned` list, plus the
//! *claims* a step leaves in the staging folder just before it renames a file into place (so a
//! file renamed in by a step that was killed before its record was written is still known).
//!
//! [`prepare`] refuses a folder that overlaps the manifest's folder, the workspace, a path
//! source or a mirror folder, and one that holds anything airgap did not write, naming what it
//! found — before it removes or writes anything. Only then are airgap's own files that no step
//! of the current plan produces removed (a stack dropped from the manifest, a starter project
//! renamed, the leftovers of a killed run).

use std::path::{Component, Path, PathBuf};

use crate::context::Ctx;
use crate::plan::Plan;
use crate::staging::{CLAIMS, STAGING};
use crate::state::State;

/// How many foreign files an error lists before it says "and N more".
const LISTED: usize = 10;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TargetError {
    #[error("the output folder `{}` {relation} {what} `{}`", target.display(), other.display())]
    #[diagnostic(
        code(airgap::target::overlaps),
        help(
            "apply removes files of its output folder that it no longer produces; give the target a folder of its own, e.g. `target \"dir:airgap-out\"`"
        )
    )]
    Overlaps {
        target: PathBuf,
        relation: &'static str,
        what: &'static str,
        other: PathBuf,
    },
    #[error(
        "the output folder `{}` holds files airgap did not write:\n{}{}",
        target.display(),
        files.iter().map(|f| format!("- `{f}`")).collect::<Vec<_>>().join("\n"),
        if *more > 0 { format!("\n- and {more} more") } else { String::new() }
    )]
    #[diagnostic(
        code(airgap::target::foreign),
        help(
            "airgap writes only into an empty folder or one it wrote before, and never removes a file it did not record writing; move these files elsewhere, or choose another target folder"
        )
    )]
    Foreign {
        target: PathBuf,
        files: Vec<String>,
        more: usize,
    },
    #[error("cannot {what} `{}`: {source}", path.display())]
    #[diagnostic(code(airgap::target::io))]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Checks the output folder and removes airgap's own files that the plan no longer produces.
/// Nothing is removed or written when the folder is refused.
pub fn prepare(plan: &Plan, state: &State, ctx: &Ctx) -> Result<(), TargetError> {
    let root = ctx.out_root();
    if ctx.bundle_dir().is_some()
        || matches!(
            ctx.manifest.target.kind,
            crate::manifest::TargetKind::Dir { .. }
        )
    {
        check_overlap(ctx)?;
    }
    let claimed = crate::staging::claims(root);
    state.own(claimed.iter().cloned());
    // What airgap owns and what the plan produces (from the state), the folder's files, and
    // its layout's index: each is tens of thousands of entries at a few thousand stacks, and
    // none needs another, so they are read at once.
    let ((owned, produced), (scanned, layout)) = rayon::join(
        || {
            let produced = state.files_of(plan.steps.iter().map(|s| s.name.as_str()));
            (state.owned(), produced)
        },
        || rayon::join(|| scan(root), || open_layout(root)),
    );
    let Some(entries) = scanned? else {
        return Ok(());
    };
    let mut foreign = Vec::new();
    let mut remove = Vec::new();
    // Whether the walk met an empty folder (a killed run's, or one a stack left): only then,
    // or when files are removed, is the tree walked again to remove empty folders.
    let mut empty_dir = false;
    for entry in entries {
        match entry {
            Entry::Tree { files, empty } => {
                empty_dir |= empty;
                for rel in files {
                    if produced.contains(&rel) {
                    } else if owned.contains(&rel) {
                        remove.push(rel);
                    } else {
                        foreign.push(rel);
                    }
                }
            }
            Entry::Foreign(names) => foreign.extend(names),
        }
    }
    let layout = match layout {
        Some(Err(e)) if foreign.is_empty() => {
            foreign.push(format!("index.json ({e})"));
            None
        }
        Some(Ok(l)) => Some(l),
        _ => None,
    };
    if !foreign.is_empty() {
        let more = foreign.len().saturating_sub(LISTED);
        foreign.truncate(LISTED);
        return Err(TargetError::Foreign {
            target: root.to_path_buf(),
            files: foreign,
            more,
        });
    }

    for rel in &remove {
        match std::fs::remove_file(root.join(rel)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(TargetError::Io {
                    what: "remove",
                    path: root.join(rel),
                    source,
                });
            }
        }
    }
    state.disown(remove.iter());
    if empty_dir || !remove.is_empty() {
        remove_empty_dirs(&root.join("registry"));
        remove_empty_dirs(&root.join(crate::deploy::DIR));
    }
    if let Some(layout) = layout {
        ctx.adopt_layout(layout);
    }
    // The staging folder of a killed run: only its claims are kept (until the state owns them).
    if let Ok(rd) = std::fs::read_dir(root.join(STAGING)) {
        for e in rd.flatten() {
            if e.file_name() != CLAIMS {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// What one top-level entry of the output folder holds, in the folder's sorted order.
enum Entry {
    /// A folder airgap writes files into (the registry tree, `deploy/`): its files, relative
    /// to the output root, and whether a folder in it (or itself) is empty.
    Tree { files: Vec<String>, empty: bool },
    /// Entries that are not airgap's, whatever the state says.
    Foreign(Vec<String>),
}

/// The output folder's top-level entries, each read ([`list_tree`], [`check_blobs`]);
/// `None` when the folder does not exist.
fn scan(root: &Path) -> Result<Option<Vec<Entry>>, TargetError> {
    let entries = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TargetError::Io {
                what: "read",
                path: root.to_path_buf(),
                source,
            });
        }
    };
    let mut names: Vec<(String, bool)> = entries
        .flatten()
        .map(|e| {
            let dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            (e.file_name().to_string_lossy().into_owned(), dir)
        })
        .collect();
    names.sort();
    let mut out = Vec::new();
    for (name, is_dir) in names {
        match (name.as_str(), is_dir) {
            ("registry" | crate::deploy::DIR, true) => {
                let (files, empty) = list_tree(root, &root.join(&name));
                out.push(Entry::Tree { files, empty });
            }
            ("blobs", true) => {
                let mut foreign = Vec::new();
                check_blobs(&root.join("blobs"), &mut foreign);
                out.push(Entry::Foreign(foreign));
            }
            (STAGING, true) => {}
            (
                "oci-layout"
                | crate::oci::layout::INDEX_FILE
                | crate::oci::layout::JOURNAL_FILE
                | crate::bundle::FILE_NAME,
                false,
            ) => {}
            (n, false) if n.starts_with(".tmp-") => {}
            (n, true) => out.push(Entry::Foreign(vec![format!("{n}/")])),
            (n, false) => out.push(Entry::Foreign(vec![n.to_string()])),
        }
    }
    Ok(Some(out))
}

/// The output folder's layout, read-only, when it has one (its marker or its index).
fn open_layout(
    root: &Path,
) -> Option<Result<crate::oci::layout::Layout, crate::oci::error::OciError>> {
    (root.join("oci-layout").exists() || root.join("index.json").exists())
        .then(|| crate::oci::layout::Layout::open_existing(root))
}

/// The files below `dir`, relative to `root`, in sorted order, and whether a folder it reads
/// (`dir` included) has no entries. Sub-folders are read in parallel: at a few thousand
/// stacks the registry tree is tens of thousands of files in thousands of folders.
fn list_tree(root: &Path, dir: &Path) -> (Vec<String>, bool) {
    use rayon::prelude::*;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (Vec::new(), false);
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    let parts: Vec<(Vec<String>, bool)> = entries
        .par_iter()
        .map(|e| {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                return list_tree(root, &p);
            }
            let rel = p
                .strip_prefix(root)
                .map(|r| r.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            (vec![rel], false)
        })
        .collect();
    let mut empty = entries.is_empty();
    let mut files = Vec::with_capacity(parts.iter().map(|(f, _)| f.len()).sum());
    for (f, e) in parts {
        files.extend(f);
        empty |= e;
    }
    (files, empty)
}

/// `blobs/` holds `sha256/<64 hex digits>` and nothing else.
fn check_blobs(blobs: &Path, foreign: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(blobs) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if name != "sha256" || !is_dir {
            foreign.push(format!("blobs/{name}"));
            continue;
        }
        for b in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
            let name = b.file_name().to_string_lossy().into_owned();
            let is_file = b.file_type().map(|t| t.is_file()).unwrap_or(false);
            let hex = name.len() == 64
                && name
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
            if !(is_file && hex) {
                foreign.push(format!("blobs/sha256/{name}"));
            }
        }
    }
}

/// Removes the empty folders below `dir` (not `dir` itself); whether `dir` ended up empty.
fn remove_empty_dirs(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for e in rd.flatten() {
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && remove_empty_dirs(&e.path()) && std::fs::remove_dir(e.path()).is_ok() {
            continue;
        }
        empty = false;
    }
    empty
}

/// The output folder must be a folder of its own: not the manifest's folder or one above it
/// (apply would treat the user's files as its own), not inside the workspace, a path source
/// or a mirror folder (it would read what it writes).
fn check_overlap(ctx: &Ctx) -> Result<(), TargetError> {
    let target = normalized(ctx.out_root());
    let m = &ctx.manifest;
    let mut inside_forbidden: Vec<(&'static str, PathBuf)> =
        vec![("the workspace", normalized(&ctx.ws.root))];
    for s in &m.sources {
        if let crate::manifest::Origin::Path(p) = &s.origin {
            inside_forbidden.push(("the path source", normalized(&m.resolve_path(p))));
        }
    }
    for r in &m.url_mirrors {
        if let Some(path) = r.to.strip_prefix("file://") {
            inside_forbidden.push(("the url-mirror folder", normalized(Path::new(path))));
        }
    }
    for r in &m.registry_mirrors {
        if let crate::oci::mirror::MirrorTo::Layout(p) = &r.to {
            inside_forbidden.push(("the registry-mirror folder", normalized(&m.resolve_path(p))));
        }
    }
    let manifest_dir = normalized(&m.root);
    if manifest_dir.starts_with(&target) {
        return Err(TargetError::Overlaps {
            relation: if manifest_dir == target {
                "is"
            } else {
                "holds"
            },
            what: "the manifest's folder",
            other: manifest_dir,
            target,
        });
    }
    for (what, other) in inside_forbidden {
        if target.starts_with(&other) || other.starts_with(&target) {
            let relation = if target == other {
                "is"
            } else if other.starts_with(&target) {
                "holds"
            } else {
                "is inside"
            };
            return Err(TargetError::Overlaps {
                target,
                relation,
                what,
                other,
            });
        }
    }
    Ok(())
}

/// `p` absolute, with symbolic links and `..` of its existing part resolved.
fn normalized(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return lexical(&out);
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return lexical(&abs),
        }
    }
}

/// `.` and `..` removed without touching the disk.
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}
