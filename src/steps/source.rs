//! Sources: a git source's locked commit fetched into the cache; a path source checked
//! against the hashes the lock recorded (a folder can change under us; a commit cannot).

use git2::Oid;

use crate::context::{Ctx, StepOutput};
use crate::lock::LockedSource;
use crate::source::Files;
use crate::state::Record;
use crate::tree_paths::{DEVFILE_NAMES, stack_dir, stack_yaml_path, versioned_stack_of};
use crate::url_mirror::mirror_url;

pub async fn run(ctx: &Ctx, source: &str) -> Result<StepOutput, String> {
    let locked = super::locked_source(ctx, source)?;
    let mut out = StepOutput::default();
    match locked {
        LockedSource::Git { url, commit, .. } => {
            let lock = ctx.repo_lock(&url);
            let _held = lock.lock().await;
            let git = ctx.git.clone();
            let fetch_url = mirror_url(&ctx.manifest.url_mirrors, &url);
            let c = commit.clone();
            super::blocking(move || {
                let oid = Oid::from_str(&c).map_err(|e| e.to_string())?;
                git.ensure_commit(&url, &fetch_url, oid)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await?;
            out.outputs.insert("commit".into(), commit);
        }
        LockedSource::Path { .. } => {
            let (ctx_dir, entries) = path_inputs(ctx, source);
            let source = source.to_string();
            let digest = super::blocking(move || path_digest(&source, ctx_dir, &entries)).await?;
            out.outputs.insert("content".into(), digest);
        }
    }
    Ok(out)
}

type PathEntries = Vec<(String, crate::lock::LockedStack)>;

fn path_inputs(ctx: &Ctx, source: &str) -> (std::path::PathBuf, PathEntries) {
    let dir = match ctx.lock.sources.get(source) {
        Some(LockedSource::Path { path }) => ctx.manifest.resolve_path(std::path::Path::new(path)),
        _ => std::path::PathBuf::new(),
    };
    let entries = ctx
        .lock
        .stacks
        .iter()
        .filter(|((s, _), _)| s == source)
        .map(|((_, id), e)| (id.clone(), e.clone()))
        .collect();
    (dir, entries)
}

/// Checks a path source's files against the lock; returns a digest of the locked content.
fn path_digest(
    source: &str,
    dir: std::path::PathBuf,
    entries: &PathEntries,
) -> Result<String, String> {
    let files = Files::Dir(dir);
    let mut all = blake3::Hasher::new();
    for (id, e) in entries {
        let base = stack_dir(id);
        let devfile = DEVFILE_NAMES
            .iter()
            .find_map(|n| files.read(&format!("{base}/{n}")).ok().flatten())
            .unwrap_or_default();
        check(
            source,
            &format!("{base}/{}", DEVFILE_NAMES[0]),
            &devfile,
            &e.devfile,
        )?;
        for (f, h) in &e.files {
            let p = format!("{base}/{f}");
            let bytes = files
                .read(&p)
                .ok()
                .flatten()
                .or_else(|| files.read_link(&p).ok().flatten())
                .unwrap_or_default();
            check(source, &p, &bytes, h)?;
        }
        all.update(id.as_bytes());
        all.update(e.devfile.as_bytes());
        // stack.yaml is read by the stack.yaml step and not pinned by the lock: hash it here.
        if let Some(stack) = versioned_stack_of(id)
            && let Some(b) = files.read(&stack_yaml_path(stack)).ok().flatten()
        {
            all.update(blake3::hash(&b).as_bytes());
        }
        for (f, h) in &e.files {
            all.update(f.as_bytes());
            all.update(h.as_bytes());
        }
    }
    if let Some(b) = files.read(crate::discover::EXTRA_ENTRIES).ok().flatten() {
        all.update(blake3::hash(&b).as_bytes());
    }
    Ok(all.finalize().to_hex().to_string())
}

fn check(source: &str, path: &str, bytes: &[u8], locked: &str) -> Result<(), String> {
    if blake3::hash(bytes).to_hex().as_str() != locked {
        return Err(format!(
            "`{path}` of source `{source}` changed since it was locked; run `airgap lock` to lock the new content"
        ));
    }
    Ok(())
}

/// A git source is present when its commit is in the cache; a path source is re-checked by
/// running it (cheap: hashing a few files).
pub fn present(ctx: &Ctx, source: &str, rec: &Record) -> bool {
    match ctx.lock.sources.get(source) {
        Some(LockedSource::Git { url, .. }) => {
            let Some(commit) = rec.outputs.get("commit") else {
                return false;
            };
            let Ok(repo) = ctx.git.open(url) else {
                return false;
            };
            Oid::from_str(commit)
                .ok()
                .is_some_and(|oid| repo.find_commit(oid).is_ok())
        }
        Some(LockedSource::Path { .. }) => {
            let (dir, entries) = path_inputs(ctx, source);
            path_digest(source, dir, &entries).ok().as_ref() == rec.outputs.get("content")
        }
        None => false,
    }
}
