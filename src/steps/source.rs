//! Sources: a git source's locked commit fetched into the cache; a path source checked
//! against the hashes the lock recorded (a folder can change under us; a commit cannot).

use std::fmt;

use super::kind::{Done, Inputs, Kind, PlanError, PlanInput, Step};
use crate::context::Ctx;
use crate::lock::LockedSource;
use crate::source::Files;
use crate::steps::stale::StaleReason;
use crate::tree_paths::{DEVFILE_NAMES, stack_dir, stack_yaml_path, versioned_stack_of};

/// Make a source's locked content available: fetch its commit into the cache, or check a path
/// source still matches the lock.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    pub source: String,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "source:{}", self.source)
    }
}

/// A git source's commit, or a path source's content digest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SourceOut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl Kind for Source {
    type Out = SourceOut;

    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        for (name, s) in &p.lock.sources {
            let id = Source {
                source: name.clone(),
            };
            steps.push(Step::new(id, format!("source {name}")).lock(s));
        }
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, _: &Inputs) -> Result<Done<SourceOut>, String> {
        let source = &self.source;
        let locked = super::locked_source(ctx, source)?;
        let out = match locked {
            LockedSource::Git { url, commit, .. } => {
                ctx.checkouts
                    .ensure(&url, &commit)
                    .await
                    .map_err(|e| e.to_string())?;
                SourceOut {
                    commit: Some(commit),
                    content: None,
                }
            }
            LockedSource::Path { .. } => {
                let (ctx_dir, entries) = path_inputs(ctx, source);
                let source = source.to_string();
                let digest =
                    super::blocking(move || path_digest(&source, ctx_dir, &entries)).await?;
                SourceOut {
                    commit: None,
                    content: Some(digest),
                }
            }
        };
        Ok(Done::new(out))
    }

    /// A git source is present when its cache repository is there; a path source is
    /// re-checked by running it (cheap: hashing a few files).
    ///
    /// The commit itself is not looked up: that would start libgit2, whose start-up sets up
    /// OpenSSL and parses the system CA bundle (a tenth to a third of a no-op's CPU), and the
    /// steps that read the commit fetch it on demand anyway ([`crate::checkout::Checkouts`]);
    /// the cache never drops a commit it fetched.
    async fn present(&self, ctx: &Ctx, out: &SourceOut) -> bool {
        let source = &self.source;
        match ctx.lock.sources.get(source) {
            Some(LockedSource::Git { url, commit, .. }) => {
                out.commit.as_ref() == Some(commit)
                    && ctx.git.path_for(url).join("objects").is_dir()
            }
            Some(LockedSource::Path { .. }) => {
                let (dir, entries) = path_inputs(ctx, source);
                path_digest(source, dir, &entries).ok() == out.content
            }
            None => false,
        }
    }

    fn missing(&self, _: &str) -> StaleReason {
        StaleReason::SourceMissing {
            source: self.source.clone(),
        }
    }

    fn relocked(&self, _: &serde_json::Value, _: &serde_json::Value, _: &str) -> StaleReason {
        StaleReason::SourceRelocked {
            source: self.source.clone(),
        }
    }
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
