//! Runs a [`Plan`]: stale steps in parallel, `jobs` at a time, each started once the steps it
//! depends on have ended and recorded their success in the [`State`] (see [`Schedule`]).
//!
//! A step is *fresh* when the key computed from its current inputs equals the recorded key and
//! its recorded outputs still exist (files with their sizes; images at the target). Keys are
//! computed just before a step would run, from the outputs its dependencies recorded in this
//! run, so a dependency rebuilt to the same bytes leaves its dependents fresh.
//!
//! A failed step records nothing; steps that depend on it are skipped, every other step still
//! runs, and all failures are reported at the end. Outputs are written whole (temp file +
//! rename), so a killed apply leaves no partial file where a later run would trust it.
//!
//! A host no connection could be made to (a stopped target, a name that does not resolve) is
//! reported once, by the first step that failed on it: the steps that fail on it afterwards
//! fail at once without a request (the image layer remembers the host, see
//! [`crate::oci::error::OciError::Unreachable`]) and are counted as skipped.
//!
//! What comes out is typed, and put into words only by the commands: a step's [`Status`]
//! before running (stale for a [`StaleReason`]), how each step ended ([`Outcome`]), and the
//! progress [`Event`]s of a run. Steps run with a [`Ctx`] from [`crate::context`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::context::Ctx;
use crate::plan::stale::StaleReason;
use crate::plan::{self, Plan};
use crate::state::{Placed, Record, Recorded, Stamp, State};
use crate::steps::{Inputs, Step};

/// A step's failure, as shown to the user.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub step: String,
    pub describe: String,
    pub message: String,
}

/// How a recorded step's outputs stand.
enum Check {
    /// Every file has its size and content, and the step's other outputs are present.
    Intact,
    /// Intact, but some files had to be read to tell (their inode or mtime changed, or the
    /// state had no stamp for them): the new stamps, so the next run need not read them.
    Restamped(BTreeMap<String, Stamp>),
    Stale(StaleReason),
}

/// What a recorded step's files say before any is read: the step's recorded outputs and
/// placed image, and the files whose inode or mtime changed since they were stamped (or that
/// have no stamp), each with the digest the step recorded for it, if any.
#[derive(Default)]
struct Stated {
    outputs: BTreeMap<String, String>,
    placed: Option<Placed>,
    unstamped: Vec<(String, Option<String>)>,
}

/// Each file of a recorded step with its recorded size (a missing or resized file makes the
/// step stale), and which files must be read to tell whether their content is unchanged
/// (with the digest the step recorded for each, if any). Runs under the state's lock, on
/// the record itself: only stats.
fn stat_outputs(
    ctx: &Ctx,
    step: &Step,
    rec: &Record,
) -> Result<Vec<(String, Option<String>)>, StaleReason> {
    let mut unstamped = Vec::new();
    for (file, size) in &rec.files {
        let meta = match std::fs::metadata(ctx.out_root().join(file)) {
            Ok(m) if m.len() == *size => m,
            _ => return Err(step.id.missing(&step.describe)),
        };
        let stamp = rec.stamps.get(file);
        if stamp.is_some_and(|s| s.matches(&meta)) {
            continue;
        }
        // The digest the step recorded: its stamp's, else its output named after the file
        // (a state written before stamps) when no other file of the step has that name.
        let name = file.rsplit('/').next().unwrap_or(file);
        let unique = || {
            rec.files
                .keys()
                .filter(|f| f.rsplit('/').next() == Some(name))
                .count()
                == 1
        };
        let expected = stamp
            .map(|s| s.sha256.clone())
            .or_else(|| rec.outputs.get(name).filter(|_| unique()).cloned());
        unstamped.push((file.clone(), expected));
    }
    Ok(unstamped)
}

/// Whether a recorded step's outputs are still what it left: each file with its size and
/// content (read only when its inode or mtime changed since it was stamped), then the kind's
/// own presence check (images at the target, cached files).
async fn check_outputs(ctx: &Ctx, step: &Step, stated: &Stated) -> Check {
    let mut restamped = BTreeMap::new();
    for (file, expected) in &stated.unstamped {
        let path = ctx.out_root().join(file);
        let read = path.clone();
        let actual = tokio::task::spawn_blocking(move || std::fs::read(&read).ok())
            .await
            .ok()
            .flatten()
            .map(|b| format!("sha256:{}", crate::fetch::sha256_hex(&b)));
        let Some(actual) = actual else {
            return Check::Stale(step.id.missing(&step.describe));
        };
        // Without a recorded digest, the size matched: what is there is taken as written (as
        // before stamps existed) and stamped from now on.
        if expected.as_ref().is_some_and(|e| *e != actual) {
            return Check::Stale(StaleReason::OutputChanged { file: file.clone() });
        }
        if let Some(s) = Stamp::of(&path, &actual) {
            restamped.insert(file.clone(), s);
        }
    }
    if !step.id.present(ctx, &stated.outputs).await {
        return Check::Stale(step.id.missing(&step.describe));
    }
    if restamped.is_empty() {
        Check::Intact
    } else {
        Check::Restamped(restamped)
    }
}

/// The recorded step's outputs checked, when it ran with `key`: `None` when it did not.
async fn recheck(ctx: &Ctx, step: &Step, state: &State, key: &str) -> Option<(Check, Stated)> {
    let stated = state.with_ran(&step.name, key, |rec| {
        stat_outputs(ctx, step, rec).map(|unstamped| Stated {
            outputs: rec.outputs.clone(),
            placed: rec.placed.clone(),
            unstamped,
        })
    })?;
    Some(match stated {
        Err(reason) => (Check::Stale(reason), Stated::default()),
        Ok(stated) => (check_outputs(ctx, step, &stated).await, stated),
    })
}

/// The stamps of the files a step just wrote.
fn stamps_of(ctx: &Ctx, out: &Recorded) -> BTreeMap<String, Stamp> {
    out.digests
        .iter()
        .filter_map(|(file, digest)| {
            Some((file.clone(), Stamp::of(&ctx.out_root().join(file), digest)?))
        })
        .collect()
}

/// The status of one step before running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Fresh,
    Stale(StaleReason),
}

/// Computes each step's status without running anything: what `airgap plan` prints. A step
/// whose dependency is stale is reported stale (its inputs will be rebuilt), although the run
/// may find it fresh if the rebuilt outputs come out identical.
pub async fn statuses(plan: &Plan, state: &State, ctx: &Ctx) -> Vec<Status> {
    let mut out: Vec<Option<Status>> = vec![None; plan.steps.len()];
    let pre = prejudge(plan, state, ctx, &vec![false; plan.steps.len()]);
    for level in &plan.levels {
        let results: Vec<(usize, Status)> = futures::stream::iter(level.iter().copied())
            .map(|i| {
                let step = &plan.steps[i];
                let pre = &pre[i];
                let stale_dep = step.key_deps().find_map(|d| {
                    let j = plan.position(d)?;
                    matches!(out[j], Some(Status::Stale(_))).then(|| plan.steps[j].describe.clone())
                });
                async move {
                    if let Some(dep) = stale_dep {
                        return (
                            i,
                            Status::Stale(StaleReason::InputWillBeRebuilt { input: dep }),
                        );
                    }
                    if pre.fresh {
                        return (i, Status::Fresh);
                    }
                    (i, status_of(plan, step, state, ctx, pre.key.clone()).await)
                }
            })
            .buffer_unordered(ctx.jobs * 4)
            .collect()
            .await;
        for (i, s) in results {
            out[i] = Some(s);
        }
    }
    out.into_iter()
        .map(|s| s.unwrap_or(Status::Stale(StaleReason::NotEvaluated)))
        .collect()
}

/// The recorded outputs of a step's dependencies, from the state.
fn inputs_of(plan: &Plan, step: &Step, state: &State) -> Inputs {
    Inputs::new(
        step.deps
            .iter()
            .filter_map(|d| {
                let name = &plan.step(d)?.name;
                Some((d.clone(), state.recorded(name)?))
            })
            .collect(),
    )
}

/// The key input of a step: its configuration, lock entries, and the outputs its key reads of
/// its dependencies, as the state records them.
fn key_input(plan: &Plan, step: &Step, state: &State) -> serde_json::Value {
    let deps: BTreeMap<String, BTreeMap<String, String>> = step
        .key_deps()
        .filter_map(|d| plan.step(d))
        .map(|d| (d.name.clone(), state.outputs(&d.name).unwrap_or_default()))
        .collect();
    plan::key_input(step, &deps)
}

/// The key of a step ([`plan::key_of`]): blake3 of its [`key_input`], computed without building it.
fn key_of(plan: &Plan, step: &Step, state: &State) -> String {
    let Some(i) = plan.position(&step.id) else {
        return plan::key_of(step, &BTreeMap::new());
    };
    state.with_records(|records| key_in(plan, i, &|j| records.get(&plan.steps[j].name)))
}

/// [`key_of`] of the step at `i`, given the record of the step at each position.
fn key_in<'a>(plan: &Plan, i: usize, record: &dyn Fn(usize) -> Option<&'a Record>) -> String {
    let none = BTreeMap::new();
    let deps = plan
        .key_dep_positions(i)
        .iter()
        .map(|&j| {
            let outputs = record(j).map_or(&none, |r| &r.outputs);
            (plan.steps[j].name.as_str(), outputs)
        })
        .collect();
    plan::key_of(&plan.steps[i], &deps)
}

/// What the pre-pass ([`prejudge`]) found of one step, from the state as loaded.
#[derive(Debug, Default)]
struct Prejudged {
    /// The step's key from its dependencies' outputs as loaded: its key in this run while none
    /// of them runs (`None` for a step the pre-pass left alone).
    key: Option<String>,
    /// Fresh as recorded: it ran with that key, each of its files is there with its size and
    /// the stamp it was last known by (nothing to read), its other outputs are present, and
    /// its record names the image it places. Nothing is left to check or record.
    fresh: bool,
}

/// The key of each step but the `skip`ped ones, and whether it is fresh as recorded
/// ([`Prejudged`]), on rayon's threads: at thousands of steps, keys (serializing and hashing
/// each key input), stats and a layout's presence checks were most of a no-op apply, and run
/// one after the other. The state is read under one lock for the whole pass. Images at a
/// registry target are not checked here (each is a request: the run makes them, `jobs` at a
/// time); their steps are left for the run to check, with their keys.
///
/// Every check is the one [`recheck`] makes, so a step found fresh here is one the run would
/// find fresh; a step it did not find fresh (a file to read, a stamp to add, a stale key) goes
/// through [`recheck`] as before.
fn prejudge(plan: &Plan, state: &State, ctx: &Ctx, skip: &[bool]) -> Vec<Prejudged> {
    use rayon::prelude::*;
    let handle = tokio::runtime::Handle::current();
    let local_images = ctx.images_are_local();
    state.with_records(|records| {
        // Each step's record, found once (not once more for each dependent).
        let by_position: Vec<Option<&Record>> = plan
            .steps
            .par_iter()
            .map(|s| records.get(&s.name))
            .collect();
        let record = |j: usize| by_position[j];
        plan.steps
            .par_iter()
            .zip(skip)
            .enumerate()
            .map(|(i, (step, &skip))| {
                if skip {
                    return Prejudged::default();
                }
                let key = key_in(plan, i, &record);
                let fresh = by_position[i]
                    .filter(|rec| rec.key == key)
                    .is_some_and(|rec| {
                        (local_images || !step.id.places_image())
                            && stat_outputs(ctx, step, rec).is_ok_and(|u| u.is_empty())
                            && placed_by(ctx, step, &rec.outputs) == rec.placed
                            // Off the runtime's threads: a layout's check reads files, and
                            // the other kinds' look at caches, without waiting on the network.
                            && handle.block_on(step.id.present(ctx, &rec.outputs))
                    });
                Prejudged {
                    key: Some(key),
                    fresh,
                }
            })
            .collect()
    })
}

/// The status of a step, given its key when the pre-pass computed it.
async fn status_of(
    plan: &Plan,
    step: &Step,
    state: &State,
    ctx: &Ctx,
    key: Option<String>,
) -> Status {
    let key = key.unwrap_or_else(|| key_of(plan, step, state));
    if let Some((check, _)) = recheck(ctx, step, state, &key).await {
        return match check {
            Check::Intact | Check::Restamped(_) => Status::Fresh,
            Check::Stale(reason) => Status::Stale(reason),
        };
    }
    match state.get(&step.name) {
        None => Status::Stale(StaleReason::NeverBuilt),
        Some(rec) => {
            let old = serde_json::from_str(rec.input.get()).unwrap_or_default();
            let input = key_input(plan, step, state);
            Status::Stale(plan::stale::dirty_reason(step, &old, &input, plan))
        }
    }
}

/// How one step of a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It was stale and ran; its outputs are recorded.
    Ran,
    /// Its key and outputs were as recorded: nothing to do.
    Fresh,
    /// It did not run because a step it depends on failed.
    Skipped,
    /// It ran and failed, with the message for the report.
    Failed(String),
}

/// Counts of a run.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub ran: usize,
    pub fresh: usize,
    pub skipped: usize,
    pub failures: Vec<StepFailure>,
}

/// What a run reports as it goes, for the command to show as it likes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A step was found fresh: nothing to do.
    Fresh(&'a Step),
    /// A stale step starts running.
    Started(&'a Step),
    /// A step failed, with the message that goes in the final report (not sent for a
    /// step that failed on a host an earlier step already reported unreachable).
    Failed(&'a Step, &'a str),
}

/// Runs one step unless it is fresh (or `forced`); `key` is its key when the pre-pass's still
/// holds (none of its key dependencies ran in this run).
async fn run_one(
    plan: &Plan,
    step: &Step,
    state: &State,
    ctx: &Ctx,
    forced: bool,
    key: Option<String>,
    progress: &dyn Fn(Event),
) -> Outcome {
    let key = key.unwrap_or_else(|| key_of(plan, step, state));
    if !forced && let Some((check, rec)) = recheck(ctx, step, state, &key).await {
        let stamps = match check {
            Check::Intact => Some(BTreeMap::new()),
            Check::Restamped(stamps) => Some(stamps),
            Check::Stale(_) => None,
        };
        if let Some(stamps) = stamps {
            // A fresh step whose record lacks what this version records (new stamps, the
            // image it placed) gets it without running.
            let placed = placed_by(ctx, step, &rec.outputs);
            progress(Event::Fresh(step));
            if stamps.is_empty() && placed == rec.placed {
                return Outcome::Fresh;
            }
            return match state.refresh(&step.name, stamps, placed) {
                Ok(()) => Outcome::Fresh,
                Err(e) => Outcome::Failed(e.to_string()),
            };
        }
    }
    // What the record keeps to explain a later change of key: the deps' outputs it reads are
    // of earlier levels, so the same as when the key was computed.
    let input = key_input(plan, step, state);
    progress(Event::Started(step));
    let replayed = step
        .id
        .replayed_in_audit()
        .then(|| ctx.replayed(&step.name, &step.describe))
        .flatten();
    let ran = match replayed {
        Some(replay) => replay,
        None => step.id.run(ctx, &inputs_of(plan, step, state)).await,
    };
    let out = match ran {
        Ok(out) => out,
        Err(e) => return Outcome::Failed(e),
    };
    let rec = Record {
        step: step.name.clone(),
        key,
        input: serde_json::value::to_raw_value(&input)
            .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
        stamps: stamps_of(ctx, &out),
        placed: placed_by(ctx, step, &out.outputs),
        outputs: out.outputs,
        files: out.files,
    };
    let before = state.recorded(&step.name);
    if let Err(e) = state.record(rec.clone()) {
        return Outcome::Failed(e.to_string());
    }
    // Files its previous run wrote and this one did not are airgap's and now wrong (a form
    // switched, a stack's icon changed type): gone before anything reads the folder.
    let dropped: Vec<String> = before
        .map(|b| {
            b.files
                .into_keys()
                .filter(|f| !rec.files.contains_key(f))
                .collect()
        })
        .unwrap_or_default();
    for rel in &dropped {
        let path = ctx.out_root().join(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Outcome::Failed(format!("cannot remove `{}`: {e}", path.display())),
        }
    }
    state.disown(dropped.iter());
    Outcome::Ran
}

/// The image a step placed at the target, as the state records it.
fn placed_by(ctx: &Ctx, step: &Step, outputs: &BTreeMap<String, String>) -> Option<Placed> {
    let (target, digest) = step.id.landed(ctx, outputs)?;
    Some(Placed {
        repository: target.repository,
        tag: target.tag,
        digest: digest.to_string(),
    })
}

/// Which steps may start: a step is ready once every step it depends on has ended, and the
/// ready step earliest in the plan's level order goes first. With one job at a time the order
/// is the plan's, level by level; with more, a step no longer waits for the slowest step of
/// the level before it (the devfile-index image is built while images still copy).
struct Schedule {
    /// Each step's place in the levels, read in order.
    rank: Vec<usize>,
    /// Dependencies of each step that have not ended yet.
    waiting: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    ready: BinaryHeap<Reverse<(usize, usize)>>,
}

impl Schedule {
    fn new(plan: &Plan) -> Self {
        let n = plan.steps.len();
        let mut rank = vec![0; n];
        for (r, &i) in plan.levels.iter().flatten().enumerate() {
            rank[i] = r;
        }
        let mut waiting = vec![0; n];
        let mut dependents = vec![Vec::new(); n];
        for (i, waits) in waiting.iter_mut().enumerate() {
            let deps = plan.dep_positions(i);
            *waits = deps.len();
            for &d in deps {
                dependents[d].push(i);
            }
        }
        let ready = (0..n)
            .filter(|&i| waiting[i] == 0)
            .map(|i| Reverse((rank[i], i)))
            .collect();
        Schedule {
            rank,
            waiting,
            dependents,
            ready,
        }
    }

    fn next(&mut self) -> Option<usize> {
        self.ready.pop().map(|Reverse((_, i))| i)
    }

    /// Step `i` ended: the steps that waited only for it become ready.
    fn ended(&mut self, i: usize) {
        for &d in &self.dependents[i] {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.ready.push(Reverse((self.rank[d], d)));
            }
        }
    }
}

/// Runs every stale step of the plan, `jobs` at a time, each as soon as the steps it depends
/// on have ended (see [`Schedule`]); a step for which `force` says so runs whether it is stale
/// or not (`apply --force`).
pub async fn run(
    plan: &Plan,
    state: &State,
    ctx: &Ctx,
    force: &dyn Fn(&Step) -> bool,
    progress: &dyn Fn(Event),
) -> RunReport {
    let mut report = RunReport::default();
    // The steps that failed or were skipped, by position: their dependents are skipped.
    let mut failed = vec![false; plan.steps.len()];
    // The unreachable hosts already reported by a failed step.
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut schedule = Schedule::new(plan);
    let forced: Vec<bool> = plan.steps.iter().map(force).collect();
    let mut pre = prejudge(plan, state, ctx, &forced);
    // The steps that ran (recorded new outputs) in this run: their dependents' keys are
    // computed again.
    let mut ran = vec![false; plan.steps.len()];
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < ctx.jobs.max(1)
            && let Some(i) = schedule.next()
        {
            let step = &plan.steps[i];
            let blocked = plan.dep_positions(i).iter().any(|&j| failed[j]);
            let deps_ran = plan.key_dep_positions(i).iter().any(|&j| ran[j]);
            let pre = if deps_ran {
                Prejudged::default()
            } else {
                std::mem::take(&mut pre[i])
            };
            if !blocked && pre.fresh {
                progress(Event::Fresh(step));
                report.fresh += 1;
                schedule.ended(i);
                continue;
            }
            let forced = forced[i];
            running.push(async move {
                if blocked {
                    return (i, Outcome::Skipped);
                }
                let outcome = run_one(plan, step, state, ctx, forced, pre.key, progress).await;
                (i, outcome)
            });
        }
        let Some((i, outcome)) = running.next().await else {
            break;
        };
        let step = &plan.steps[i];
        match outcome {
            Outcome::Ran => {
                report.ran += 1;
                ran[i] = true;
            }
            Outcome::Fresh => report.fresh += 1,
            Outcome::Skipped => {
                report.skipped += 1;
                failed[i] = true;
            }
            Outcome::Failed(message) => {
                let unreachable = ctx.unreachable();
                let cause = unreachable.iter().find(|u| message.contains(u.as_str()));
                let repeated = cause.is_some_and(|u| !reported.insert(u.clone()));
                if repeated {
                    report.skipped += 1;
                } else {
                    progress(Event::Failed(step, &message));
                    report.failures.push(StepFailure {
                        step: step.name.clone(),
                        describe: step.describe.clone(),
                        message,
                    });
                }
                failed[i] = true;
            }
        }
        schedule.ended(i);
    }
    report
}
