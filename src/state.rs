//! What apply has done: step id → the key it ran with and the outputs it produced.
//!
//! The state is `.airgap/state.json` plus an append-only journal, `.airgap/state.journal`, of
//! one JSON record per line. Each step that succeeds appends its record (one `write` of a
//! whole line), so an apply killed at any moment loses at most the step in flight: a torn last
//! line is not valid JSON and is ignored on load. At the end of a run the journal is folded
//! into `state.json` (temp file + rename) and removed. Rewriting the whole state after each of
//! hundreds of steps would cost more than the steps themselves on a no-op run; and a run that
//! changed nothing (a no-op apply) does not rewrite it at all: at a few thousand stacks it is
//! tens of megabytes. It is compact JSON, and each record keeps its key input as JSON text
//! (read only to explain a changed key), so loading it builds no value tree per step.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub const STATE_VERSION: u32 = 1;

/// A step's outputs in the state file's form: named digests and the files it wrote (relative
/// to the output root) with their sizes and content digests. Each kind reads and writes its own typed form
/// (`steps::kind::from_wire`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub outputs: BTreeMap<String, String>,
    pub files: BTreeMap<String, u64>,
    /// `sha256:…` of each file of `files` whose content is known.
    pub digests: BTreeMap<String, String>,
}

/// One completed step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub step: String,
    /// blake3 of the step's key input.
    pub key: String,
    /// The key input itself, so `plan` can say which input changed. Kept as its JSON text:
    /// it is read only when a key changed, and parsing, cloning and dropping it as a tree
    /// for every step was a sixth of a no-op apply.
    pub input: Box<serde_json::value::RawValue>,
    /// Named output digests (`sha256:…`), what dependents hash.
    pub outputs: BTreeMap<String, String>,
    /// Files the step wrote, relative to the output root, with their sizes: the step is fresh
    /// only while they all exist with these sizes.
    #[serde(default)]
    pub files: BTreeMap<String, u64>,
    /// What each file was when written or last checked: its content digest and where it sat
    /// on disk. Not part of the key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stamps: BTreeMap<String, Stamp>,
    /// The image the step placed at the target, if it places one: what `airgap prune` may
    /// remove once no step places it any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed: Option<Placed>,
}

/// An image a step placed at the target: its repository (under the target's host), its tag
/// (none for an image copied by digest only) and the digest the tag pointed at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Placed {
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: String,
}

impl std::fmt::Display for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        write!(f, "@{}", self.digest)
    }
}

/// A file's content digest with the inode and modification time it had when its digest was
/// last known: while those match, the content is taken as unchanged without reading it (the
/// fast path of a no-op apply); when they differ, the file is hashed and compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub sha256: String,
    pub ino: u64,
    pub mtime_ns: i128,
}

impl Stamp {
    /// The stamp of the file at `path` whose content hashes to `sha256` (`sha256:…`).
    pub fn of(path: &Path, sha256: &str) -> Option<Stamp> {
        let (ino, mtime_ns) = disk_identity(&std::fs::metadata(path).ok()?)?;
        Some(Stamp {
            sha256: sha256.to_string(),
            ino,
            mtime_ns,
        })
    }

    /// Whether `meta` is the file this stamp was taken of, unchanged since.
    pub fn matches(&self, meta: &std::fs::Metadata) -> bool {
        disk_identity(meta) == Some((self.ino, self.mtime_ns))
    }
}

fn disk_identity(meta: &std::fs::Metadata) -> Option<(u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let mtime = meta.modified().ok()?;
    let ns = match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    Some((meta.ino(), ns))
}

impl Record {
    /// The step's outputs, as dependents read them.
    pub fn recorded(&self) -> Recorded {
        Recorded {
            outputs: self.outputs.clone(),
            files: self.files.clone(),
            digests: self
                .stamps
                .iter()
                .map(|(f, s)| (f.clone(), s.sha256.clone()))
                .collect(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    steps: BTreeMap<String, Record>,
    /// Files of the output root airgap wrote and has not removed, beyond those of `steps`
    /// (the files of steps dropped from the plan, until apply removes them): what apply may
    /// remove. Anything else in the output folder is the user's.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    owned: BTreeSet<String>,
    /// Images steps placed at the target that no step places any more (the step left the plan,
    /// or placed another digest under the same name): what `airgap prune` removes.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    abandoned: BTreeSet<Placed>,
}

/// The loaded state, shared by the steps of one run.
#[derive(Debug)]
pub struct State {
    dir: PathBuf,
    steps: Mutex<BTreeMap<String, Record>>,
    owned: Mutex<BTreeSet<String>>,
    abandoned: Mutex<BTreeSet<Placed>>,
    journal: Mutex<Option<std::fs::File>>,
    /// Whether anything differs from `state.json` as loaded (a replayed journal, a record, a
    /// file owned or disowned): [`State::compact`] rewrites the file only then, so a no-op
    /// apply writes nothing.
    changed: std::sync::atomic::AtomicBool,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot {what} `{}`: {source}", path.display())]
#[diagnostic(code(airgap::state))]
pub struct StateError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl State {
    /// Loads `state.json` and replays the journal of an interrupted run.
    pub fn load(dir: &Path) -> Result<State, StateError> {
        let state_path = dir.join("state.json");
        // Whether the file on disk is not what this state would write.
        let mut changed = false;
        let (mut steps, mut owned, mut abandoned) = match std::fs::read(&state_path) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(f) if f.version == STATE_VERSION => (f.steps, f.owned, f.abandoned),
                // An unreadable or older state only costs a rebuild: start empty.
                _ => {
                    changed = true;
                    Default::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                changed = true;
                Default::default()
            }
            Err(source) => {
                return Err(StateError {
                    what: "read",
                    path: state_path,
                    source,
                });
            }
        };
        if let Ok(text) = std::fs::read_to_string(dir.join("state.journal")) {
            // Even an empty journal is folded (removed) by the next compaction.
            changed = true;
            for line in text.lines() {
                if let Ok(r) = serde_json::from_str::<Record>(line) {
                    let old = steps.insert(r.step.clone(), r.clone());
                    abandon_replaced(&mut abandoned, old.as_ref(), &r);
                }
            }
        }
        owned.extend(steps.values().flat_map(|r| r.files.keys().cloned()));
        Ok(State {
            dir: dir.to_path_buf(),
            steps: Mutex::new(steps),
            owned: Mutex::new(owned),
            abandoned: Mutex::new(abandoned),
            journal: Mutex::new(None),
            changed: std::sync::atomic::AtomicBool::new(changed),
        })
    }

    fn mark_changed(&self) {
        self.changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The outputs recorded for `step` (without the key input: cheaper than [`State::get`]).
    pub fn recorded(&self, step: &str) -> Option<Recorded> {
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(step)
            .map(Record::recorded)
    }

    /// The named outputs recorded for `step` (what its dependents' keys read).
    pub fn outputs(&self, step: &str) -> Option<BTreeMap<String, String>> {
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(step)
            .map(|r| r.outputs.clone())
    }

    /// Calls `f` with every record, borrowed from the state under one lock: what a pass over
    /// all steps reads (from several threads at once; see `exec`'s pre-pass) without taking
    /// the lock once per step.
    pub fn with_records<R>(&self, f: impl FnOnce(&BTreeMap<String, Record>) -> R) -> R {
        f(&self.steps.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The files the given steps' records name.
    pub fn files_of<'a>(&self, steps: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let records = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        steps
            .into_iter()
            .filter_map(|s| records.get(s))
            .flat_map(|r| r.files.keys().cloned())
            .collect()
    }

    /// The image recorded as placed by `step`, if any.
    pub fn placed(&self, step: &str) -> Option<Placed> {
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(step)
            .and_then(|r| r.placed.clone())
    }

    /// Calls `f` with the record of `step` when it ran with key `key`, borrowed from the
    /// state: what checking a fresh step's outputs reads (without copying its files and
    /// stamps, for each of tens of thousands of steps of a no-op apply).
    pub fn with_ran<R>(&self, step: &str, key: &str, f: impl FnOnce(&Record) -> R) -> Option<R> {
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        steps.get(step).filter(|r| r.key == key).map(f)
    }

    /// Adds `stamps` to the record of `step` and sets the image it placed, when that changes
    /// it (journaled like [`State::record`]).
    pub fn refresh(
        &self,
        step: &str,
        stamps: BTreeMap<String, Stamp>,
        placed: Option<Placed>,
    ) -> Result<(), StateError> {
        let updated = {
            let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
            let Some(r) = steps.get(step) else {
                return Ok(());
            };
            if stamps.iter().all(|(f, s)| r.stamps.get(f) == Some(s)) && r.placed == placed {
                return Ok(());
            }
            let mut r = r.clone();
            r.stamps.extend(stamps);
            r.placed = placed;
            r
        };
        self.record(updated)
    }

    pub fn get(&self, step: &str) -> Option<Record> {
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(step)
            .cloned()
    }

    /// Every record.
    pub fn records(&self) -> BTreeMap<String, Record> {
        self.steps.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every file of the output root airgap wrote and has not removed.
    pub fn owned(&self) -> BTreeSet<String> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds files to [`State::owned`] (saved by [`State::compact`]).
    pub fn own(&self, files: impl IntoIterator<Item = String>) {
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        let before = owned.len();
        owned.extend(files);
        if owned.len() != before {
            self.mark_changed();
        }
    }

    /// Images no step places any more (see [`Placed`]).
    pub fn abandoned(&self) -> BTreeSet<Placed> {
        self.abandoned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets abandoned images `airgap prune` removed (saved by [`State::compact`]).
    pub fn forget_abandoned<'a>(&self, removed: impl IntoIterator<Item = &'a Placed>) {
        let mut abandoned = self.abandoned.lock().unwrap_or_else(|e| e.into_inner());
        for p in removed {
            if abandoned.remove(p) {
                self.mark_changed();
            }
        }
    }

    /// Removes files apply deleted from [`State::owned`].
    pub fn disown<'a>(&self, files: impl IntoIterator<Item = &'a String>) {
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        for f in files {
            if owned.remove(f) {
                self.mark_changed();
            }
        }
    }

    /// Records a completed step: appended to the journal before it counts as done.
    pub fn record(&self, r: Record) -> Result<(), StateError> {
        let path = self.dir.join("state.journal");
        let mut line = serde_json::to_vec(&r).unwrap_or_default();
        line.push(b'\n');
        {
            let mut j = self.journal.lock().unwrap_or_else(|e| e.into_inner());
            if j.is_none() {
                std::fs::create_dir_all(&self.dir).map_err(|source| StateError {
                    what: "create",
                    path: self.dir.clone(),
                    source,
                })?;
                *j = Some(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(|source| StateError {
                            what: "open",
                            path: path.clone(),
                            source,
                        })?,
                );
            }
            if let Some(f) = j.as_mut() {
                f.write_all(&line).map_err(|source| StateError {
                    what: "append to",
                    path: path.clone(),
                    source,
                })?;
            }
        }
        self.mark_changed();
        self.own(r.files.keys().cloned());
        let old = self
            .steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(r.step.clone(), r.clone());
        let mut abandoned = self.abandoned.lock().unwrap_or_else(|e| e.into_inner());
        abandon_replaced(&mut abandoned, old.as_ref(), &r);
        Ok(())
    }

    /// Folds the journal into `state.json`, keeping only the given steps (the current plan's:
    /// records of steps that no longer exist are dropped).
    pub fn compact(&self, keep: &dyn Fn(&str) -> bool) -> Result<(), StateError> {
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = steps.keys().any(|k| !keep(k));
        let mut abandoned = self.abandoned();
        abandoned.extend(
            steps
                .iter()
                .filter(|(k, _)| !keep(k))
                .filter_map(|(_, r)| r.placed.clone()),
        );
        // What a kept step places now is not abandoned, whatever placed it before.
        for (_, r) in steps.iter().filter(|(k, _)| keep(k)) {
            if let Some(p) = &r.placed {
                abandoned.remove(p);
            }
        }
        let changed = self.changed.load(std::sync::atomic::Ordering::Relaxed)
            || dropped
            || abandoned != *self.abandoned.lock().unwrap_or_else(|e| e.into_inner());
        if !changed {
            // `state.json` already says all this (a no-op run): not rewritten.
            return Ok(());
        }
        let mut owned = self.owned();
        for (_, r) in steps.iter().filter(|(k, _)| keep(k)) {
            for f in r.files.keys() {
                owned.remove(f);
            }
        }
        let file = StateFileView {
            version: STATE_VERSION,
            steps: KeptSteps(&steps, keep),
            owned: &owned,
            abandoned: &abandoned,
        };
        // Compact: a state of thousands of steps is megabytes, read by every command.
        let bytes = serde_json::to_vec(&file).unwrap_or_default();
        drop(steps);
        let path = self.dir.join("state.json");
        crate::fetch::write_atomic(&path, &bytes).map_err(|source| StateError {
            what: "write",
            path: path.clone(),
            source,
        })?;
        *self.abandoned.lock().unwrap_or_else(|e| e.into_inner()) = abandoned;
        *self.journal.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let _ = std::fs::remove_file(self.dir.join("state.journal"));
        self.changed
            .store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// [`StateFile`] as written, borrowing the records instead of copying them.
#[derive(Serialize)]
struct StateFileView<'a> {
    version: u32,
    steps: KeptSteps<'a>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    owned: &'a BTreeSet<String>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    abandoned: &'a BTreeSet<Placed>,
}

/// The records whose step `keep` says is still planned.
struct KeptSteps<'a>(&'a BTreeMap<String, Record>, &'a dyn Fn(&str) -> bool);

impl Serialize for KeptSteps<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().filter(|(k, _)| (self.1)(k)))
    }
}

/// When a step's new record places another image than its old one did, the old one is
/// abandoned; what it places now is not.
fn abandon_replaced(abandoned: &mut BTreeSet<Placed>, old: Option<&Record>, new: &Record) {
    if let Some(before) = old.and_then(|o| o.placed.as_ref())
        && new.placed.as_ref() != Some(before)
    {
        abandoned.insert(before.clone());
    }
    if let Some(now) = &new.placed {
        abandoned.remove(now);
    }
}
