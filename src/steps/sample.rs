//! Each sample's devfile, from its repository at the locked commit, rewritten like a stack's.

use std::fmt;

use super::kind::{Inputs, Kind, PlanError, PlanInput, Step, TreeOut, Written};
use crate::context::Ctx;
use crate::steps::stale::StaleReason;
use crate::tree_paths::{DEVFILE_NAMES, sample_dir};

use super::common::write_devfile;
use super::devfile::uses_deps;

/// The configuration part of a sample's key: its folder, and [`crate::rewrite::VERSION`] (a
/// rewrite that gives other bytes for the same text reruns every sample once).
#[derive(serde::Serialize)]
struct SampleConfig {
    dir: String,
    rewrite: u32,
}

/// Write one sample's devfile from its repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sample {
    pub source: String,
    pub id: String,
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sample:{}/{}", self.source, self.id)
    }
}

/// The lock part of a sample's key.
#[derive(serde::Serialize)]
struct SampleLock<'a> {
    remote: &'a str,
    commit: &'a str,
    #[serde(rename = "sub-dir")]
    sub_dir: Option<&'a str>,
    devfile: &'a str,
}

impl Kind for Sample {
    type Out = TreeOut;
    const RELOCKED: fn(String) -> StaleReason = |step| StaleReason::SampleRelocked { step };
    const WRITES_TREE: bool = true;

    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        for ((source, id), entry) in &p.lock.samples {
            let user = format!("sample {} of source {source}", super::id_words(id));
            let deps = uses_deps(p, &entry.uses, &user)?;
            let step = Sample {
                source: source.clone(),
                id: id.clone(),
            };
            steps.push(
                Step::new(step, format!("sample {}", super::id_words(id)))
                    .deps(deps)
                    .config(SampleConfig {
                        dir: sample_dir(id),
                        rewrite: crate::rewrite::VERSION,
                    })
                    .lock(SampleLock {
                        remote: &entry.remote,
                        commit: &entry.commit,
                        sub_dir: entry.sub_dir.as_deref(),
                        devfile: &entry.devfile,
                    }),
            );
        }
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Written, String> {
        sample(ctx, inputs, &self.source, &self.id).await
    }
}

/// One sample's devfile, from its repository at the locked commit.
async fn sample(ctx: &Ctx, inputs: &Inputs, source: &str, id: &str) -> Result<Written, String> {
    let entry = ctx
        .lock
        .samples
        .get(&(source.to_string(), id.to_string()))
        .ok_or_else(|| format!("sample {id} is not in the lock"))?
        .clone();
    let (commit, sub_dir) = (entry.commit.clone(), entry.sub_dir.clone());
    let read = ctx
        .checkouts
        .read_at(&entry.remote, &entry.commit, move |reader| {
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
        });
    let (path, bytes) = read.await.map_err(|e| e.to_string())??;
    if blake3::hash(&bytes).to_hex().as_str() != entry.devfile {
        return Err(format!(
            "the devfile of sample {id} differs from the locked one"
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| format!("the devfile of sample {id} is not UTF-8"))?;
    let mut out = Written::default();
    let dir = sample_dir(id);
    write_devfile(
        ctx,
        inputs,
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
