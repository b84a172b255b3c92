//! The step kinds of `airgap apply`, one file each, each implementing [`kind::Kind`]: its
//! identity (a variant of [`StepId`]), how its steps enter the plan, its run, its presence
//! check and its typed outputs.
//!
//! Adding a kind: a new file here with a type implementing `Kind`, plus one line in the
//! [`step_kinds!`] list below (the order of that list is the order kinds are planned in: a
//! kind's `plan` sees the steps of the kinds above it).

mod archive;
mod common;
mod deploy;
mod devfile;
mod download;
mod extra;
mod image;
mod index_image;
mod index_json;
pub mod kind;
mod last_modified;
mod project;
mod sample;
mod source;
mod stack_artifact;
mod stack_yaml;
pub mod stale;

pub use archive::Archive;
pub use deploy::Deploy;
pub use devfile::Devfile;
pub use download::Download;
pub use download::size_mismatch as download_size_mismatch;
pub use extra::Extra;
pub use image::Image;
pub use image::{ImageOut, recorded_lock_differences as image_lock_differences};
pub use index_image::IndexImage;
pub use index_json::IndexJson;
pub use kind::{Inputs, PlanError, PlanInput, Recorded, Step};
pub use last_modified::LastModified;
pub use project::Project;
pub use sample::Sample;
pub use source::Source;
pub use stack_artifact::StackArtifact;
pub use stack_artifact::{CATALOG, server_accepts_resource};
pub use stack_yaml::StackYaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use kind::{Kind, Written};

use crate::context::Ctx;
use crate::lock::LockedSource;
use crate::oci::digest::Digest;
use crate::oci::naming::TargetRef;
use crate::steps::stale::StaleReason;

/// Declares [`StepId`], one variant per kind, and dispatches to each kind's [`Kind`] impl.
macro_rules! step_kinds {
    ($($variant:ident($ty:ty),)*) => {
        /// Which step: its kind and what it works on. `Display` gives the name the state file
        /// and the keys use (`image:quay.io/devfile/go:1`, `devfile:community/go/2.6.0`).
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum StepId {
            $($variant($ty),)*
        }

        $(impl From<$ty> for StepId {
            fn from(k: $ty) -> StepId {
                StepId::$variant(k)
            }
        })*

        impl fmt::Display for StepId {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(StepId::$variant(k) => k.fmt(f),)*
                }
            }
        }

        impl StepId {
            /// Every kind's steps, in the order of the list.
            pub fn plan_all(p: &PlanInput<'_>) -> Result<Vec<Step>, PlanError> {
                let mut steps = Vec::new();
                $(<$ty as Kind>::plan(p, &mut steps)?;)*
                Ok(steps)
            }

            pub fn key_skips_source(&self) -> bool {
                match self {
                    $(StepId::$variant(_) => <$ty as Kind>::KEY_SKIPS_SOURCE,)*
                }
            }

            pub fn writes_tree(&self) -> bool {
                match self {
                    $(StepId::$variant(_) => <$ty as Kind>::WRITES_TREE,)*
                }
            }

            pub fn places_image(&self) -> bool {
                match self {
                    $(StepId::$variant(_) => <$ty as Kind>::PLACES_IMAGE,)*
                }
            }

            pub fn replayed_in_audit(&self) -> bool {
                match self {
                    $(StepId::$variant(_) => <$ty as Kind>::REPLAYED_IN_AUDIT,)*
                }
            }

            /// Runs the step; its outputs in the wire form.
            pub async fn run(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Recorded, String> {
                match self {
                    $(StepId::$variant(k) => k.run(ctx, inputs).await.map(|d| d.recorded()),)*
                }
            }

            /// Whether a recorded step's outputs outside the output folder are still there,
            /// from its recorded outputs (in the wire form).
            pub async fn present(&self, ctx: &Ctx, outputs: &BTreeMap<String, String>) -> bool {
                match self {
                    $(StepId::$variant(k) => match kind::from_wire(outputs) {
                        Ok(out) => k.present(ctx, &out).await,
                        Err(_) => false,
                    },)*
                }
            }

            /// The image the step placed at the target, from its recorded outputs (in the
            /// wire form); `None` at once for kinds that place none.
            pub fn landed(
                &self,
                ctx: &Ctx,
                outputs: &BTreeMap<String, String>,
            ) -> Option<(TargetRef, Digest)> {
                if !self.places_image() {
                    return None;
                }
                match self {
                    $(StepId::$variant(k) => k.landed(ctx, &kind::from_wire(outputs).ok()?),)*
                }
            }

            pub fn missing(&self, describe: &str) -> StaleReason {
                match self {
                    $(StepId::$variant(k) => k.missing(describe),)*
                }
            }

            pub fn relocked(
                &self,
                old: &serde_json::Value,
                new: &serde_json::Value,
                describe: &str,
            ) -> StaleReason {
                match self {
                    $(StepId::$variant(k) => k.relocked(old, new, describe),)*
                }
            }

            pub fn deps_changed(&self, changed: &[&Step]) -> Option<StaleReason> {
                match self {
                    $(StepId::$variant(k) => k.deps_changed(changed),)*
                }
            }
        }
    };
}

step_kinds! {
    Source(source::Source),
    Image(image::Image),
    Download(download::Download),
    Project(project::Project),
    Devfile(devfile::Devfile),
    Archive(archive::Archive),
    Sample(sample::Sample),
    StackYaml(stack_yaml::StackYaml),
    Extra(extra::Extra),
    LastModified(last_modified::LastModified),
    IndexJson(index_json::IndexJson),
    StackArtifact(stack_artifact::StackArtifact),
    IndexImage(index_image::IndexImage),
    Deploy(deploy::Deploy),
}

impl StepId {
    /// The image step of `image` (a lock key).
    pub fn image(image: &str) -> StepId {
        StepId::Image(image::Image {
            image: image.to_string(),
        })
    }

    /// The image a step copies, for an image step.
    pub fn as_image(&self) -> Option<&str> {
        match self {
            StepId::Image(i) => Some(&i.image),
            _ => None,
        }
    }
}

/// "go/2.6.0" → "go 2.6.0": how messages name a stack version.
pub(crate) fn id_words(id: &str) -> String {
    id.replace('/', " ")
}

/// Whether the target still holds `target` at `digest`; `false` when it cannot tell.
async fn target_holds(ctx: &Ctx, target: &TargetRef, digest: &Digest) -> bool {
    let Ok((client, destination)) = ctx.oci().await else {
        return false;
    };
    client
        .holds(destination, target, digest)
        .await
        .unwrap_or(false)
}

/// The lock's entry for `source`.
fn locked_source(ctx: &Ctx, source: &str) -> Result<LockedSource, String> {
    ctx.lock
        .sources
        .get(source)
        .cloned()
        .ok_or_else(|| format!("source `{source}` is not in the lock"))
}

/// Writes `bytes` at `rel` under the output root (whole or not at all); records its sha256
/// under its file name and the file with its size. The claim, the write and its fsync run on
/// the blocking pool: steps run concurrently on one thread (see `crate::exec`), so a write
/// there would hold every other step for its fsync.
pub async fn write_output(
    ctx: &Ctx,
    rel: &str,
    bytes: &[u8],
    out: &mut Written,
) -> Result<(), String> {
    let root = ctx.out_root().to_path_buf();
    let owned = (rel.to_string(), bytes.to_vec());
    let digest = blocking(move || {
        let (rel, bytes) = owned;
        let path = root.join(&rel);
        crate::staging::claim(&root, &rel)
            .map_err(|e| format!("cannot write in `{}`: {e}", root.display()))?;
        write_staged(&root, &path, &bytes)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        Ok(format!("sha256:{}", crate::fetch::sha256_hex(&bytes)))
    })
    .await?;
    let name = Path::new(rel)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.out.sha256.insert(name, digest.clone());
    out.digests.insert(rel.to_string(), digest);
    out.files.insert(rel.to_string(), bytes.len() as u64);
    Ok(())
}

/// Runs CPU-bound work (parsing a devfile, building an archive) on rayon's pool, one thread
/// per core, and waits for it without holding the thread that runs the steps (see
/// [`write_output`]). A panic in `f` is an error of the step, as in [`blocking`]. Called on
/// one of rayon's own threads (the pre-pass, `exec::prejudge`, drives `present` there), `f`
/// runs in place: queued behind the thread that waits for it, it could never start.
pub async fn cpu<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    if rayon::current_thread_index().is_some() {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err("a background task failed: it panicked".into()));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err("a background task failed: it panicked".into()),
        Err(_) => Err("a background task failed: it ended without an answer".into()),
    }
}

/// Runs blocking work (git, file reads and writes) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("a background task failed: {e}"))?
}

use crate::staging::STAGING;

fn write_staged(out_root: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let staging = out_root.join(STAGING);
    std::fs::create_dir_all(&staging)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fetch::write_atomic_in(&staging, path, bytes)
}

#[cfg(test)]
mod tests {
    use super::cpu;

    #[tokio::test]
    async fn cpu_work_answers_and_a_panic_is_an_error() {
        assert_eq!(cpu(|| Ok(6 * 7)).await, Ok(42));
        let panicked: Result<(), String> = cpu(|| panic!("boom")).await;
        assert!(panicked.unwrap_err().contains("panicked"));
    }

    /// Every rayon thread waiting on `cpu` at once (as the pre-pass's `present` checks could)
    /// must not wait on work queued behind them. Without the in-place rule this hangs; the
    /// bound only turns a hang into a failure.
    #[test]
    fn cpu_called_on_every_rayon_thread_at_once_finishes() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let handle = rt.handle().clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let answers = rayon::broadcast(|c| {
                let i = c.index();
                handle.block_on(cpu(move || Ok(i)))
            });
            let _ = tx.send(answers);
        });
        let answers = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("every rayon thread got its answer");
        assert_eq!(answers.len(), rayon::current_num_threads());
        assert!(answers.iter().enumerate().all(|(i, a)| a == &Ok(i)));
    }
}
