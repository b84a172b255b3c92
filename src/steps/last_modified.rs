//! `registry/last_modified.json`: dates from git history at the locked commits, so they are
//! reproducible.

use std::fmt;

use super::kind::{Inputs, Kind, PlanError, PlanInput, Step, TreeOut, Written};
use crate::context::Ctx;
use crate::git::CommitReader;
use crate::index::{self, EntryType, LastModifiedRecord, Timestamp};
use crate::lock::LockedSource;
use crate::steps::stale::StaleReason;
use crate::tree_paths::{DEVFILE_NAMES, LAST_MODIFIED_JSON, in_registry, stack_dir, stack_of};

use super::sample::Sample;
use super::source::Source;

/// `registry/last_modified.json`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LastModified;

impl fmt::Display for LastModified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("last-modified")
    }
}

/// The lock part of `last_modified.json`'s key: the members it dates, and the samples'
/// commits.
#[derive(serde::Serialize)]
struct LastModifiedLock<'a> {
    stacks: Vec<&'a (String, String)>,
    samples: Vec<(&'a (String, String), &'a String)>,
}

impl Kind for LastModified {
    type Out = TreeOut;
    const RELOCKED: fn(String) -> StaleReason = |step| StaleReason::MembersChanged { step };
    const WRITES_TREE: bool = true;

    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        let deps = p
            .lock
            .sources
            .keys()
            .map(|s| Source { source: s.clone() }.into())
            .chain(p.lock.samples.keys().map(|(s, id)| {
                Sample {
                    source: s.clone(),
                    id: id.clone(),
                }
                .into()
            }));
        steps.push(
            Step::new(LastModified, "last_modified.json")
                .deps(deps)
                .lock(LastModifiedLock {
                    stacks: p.lock.stacks.keys().collect(),
                    samples: p.lock.samples.iter().map(|(k, v)| (k, &v.commit)).collect(),
                }),
        );
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, _: &Inputs) -> Result<Written, String> {
        last_modified(ctx).await
    }
}

/// `registry/last_modified.json`: for each stack version of a git source, the author date of
/// the newest commit (up to the locked one) that changed its devfile; for each sample, the
/// date of its locked commit. Path sources have no history: their entries are left out (the
/// index then has no `lastModified` for them).
async fn last_modified(ctx: &Ctx) -> Result<Written, String> {
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
    let mut records = Vec::new();
    for (url, commit, ids) in jobs {
        let at = commit.clone();
        let read = ctx
            .checkouts
            .read_at(&url, &commit, move |r| stack_records(&r, &at, &ids));
        records.extend(read.await.map_err(|e| e.to_string())??);
    }
    for (id, remote, commit) in samples {
        let read = ctx
            .checkouts
            .read_at(&remote, &commit, move |r| sample_record(&r, &id));
        records.push(read.await.map_err(|e| e.to_string())??);
    }
    let bytes = index::last_modified_json(&records);
    let mut out = Written::default();
    super::write_output(ctx, &in_registry(LAST_MODIFIED_JSON), &bytes, &mut out).await?;
    Ok(out)
}

/// The records of the stack versions `ids` of a source at `commit`: the author date of the
/// newest commit that changed each devfile, with the name and version the index has.
fn stack_records(
    reader: &CommitReader<'_>,
    commit: &str,
    ids: &[String],
) -> Result<Vec<LastModifiedRecord>, String> {
    // The devfile of each stack version, and its name and version as the index has them.
    let mut paths = Vec::new();
    let mut meta = Vec::new();
    for id in ids {
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
    let dates = crate::git::last_modified(reader.repo(), reader.commit(), &paths)
        .map_err(|e| e.to_string())?;
    // Upstream's order: devfile paths as `git ls-tree` lists them.
    meta.sort_by(|a, b| a.0.cmp(&b.0));
    let mut records = Vec::new();
    for (path, name, version) in meta {
        if let Some((secs, offset)) = dates.get(&path) {
            records.push(LastModifiedRecord {
                kind: EntryType::Stack,
                name,
                version,
                last_modified: Timestamp::from_unix(*secs, *offset).map_err(|e| e.to_string())?,
            });
        }
    }
    Ok(records)
}

/// The record of sample `id`: the author date of its locked commit.
fn sample_record(reader: &CommitReader<'_>, id: &str) -> Result<LastModifiedRecord, String> {
    let c = reader
        .repo()
        .find_commit(reader.commit())
        .map_err(|e| e.to_string())?;
    let when = c.author().when();
    let (name, version) = match id.split_once('/') {
        Some((n, v)) => (n.to_string(), v.to_string()),
        None => (id.to_string(), index::UNDEFINED_VERSION.to_string()),
    };
    Ok(LastModifiedRecord {
        kind: EntryType::Sample,
        name,
        version,
        last_modified: Timestamp::from_unix(when.seconds(), when.offset_minutes())
            .map_err(|e| e.to_string())?,
    })
}
