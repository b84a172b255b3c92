//! Runs a [`Plan`]: each level's stale steps in parallel, each success recorded in the
//! [`State`] before the next level starts.
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

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use crate::fetch::Fetcher;
use crate::git::GitCache;
use crate::lock::Lockfile;
use crate::manifest::Manifest;
use crate::plan::{self, Plan, Step};
use crate::state::{Record, State};
use crate::workspace::Workspace;

/// What a step produced: named output digests and the files it wrote (relative to the
/// output root) with their sizes.
#[derive(Debug, Clone, Default)]
pub struct StepOutput {
    pub outputs: BTreeMap<String, String>,
    pub files: BTreeMap<String, u64>,
}

/// A step's failure, as shown to the user.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub step: String,
    pub describe: String,
    pub message: String,
}

/// Everything steps need; shared by all of them.
pub struct Ctx {
    pub manifest: Manifest,
    pub lock: Lockfile,
    pub ws: Workspace,
    pub git: GitCache,
    pub fetcher: Fetcher,
    /// Where the registry tree (and, for a `dir:` target or a bundle, the OCI layout) is
    /// written.
    pub out_root: PathBuf,
    /// The `dir:` target's folder, where its OCI layout is: `out_root` except during an audit,
    /// which rebuilds the tree elsewhere but reads images from the real target.
    pub target_root: PathBuf,
    /// `apply --bundle DIR`: the registry target's images go into an OCI layout at DIR (the
    /// output root) instead of the registry. `None` for the manifest's own target.
    pub bundle: Option<PathBuf>,
    pub jobs: usize,
    repo_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    oci: tokio::sync::OnceCell<(crate::oci::Client, crate::oci::Destination)>,
    pub progress: crate::oci::progress::Progress,
    /// Records of steps that are replayed instead of run (`airgap audit` takes image copies
    /// from what apply recorded: they are copies, not builds, and `verify` checks them).
    pub replay: Option<BTreeMap<String, Record>>,
}

impl Ctx {
    pub fn new(manifest: Manifest, lock: Lockfile, jobs: usize) -> Ctx {
        let ws = Workspace::new(&manifest);
        let out_root = match &manifest.target.kind {
            crate::manifest::TargetKind::Dir { path, .. } => manifest.resolve_path(path),
            crate::manifest::TargetKind::Registry { .. } => ws.root.join("build"),
        };
        Ctx {
            git: ws.git_cache(),
            fetcher: Fetcher::new(
                manifest.url_mirrors.clone(),
                manifest.url_credentials.clone(),
                ws.files_cache(),
            ),
            manifest,
            lock,
            ws,
            target_root: out_root.clone(),
            out_root,
            bundle: None,
            jobs: jobs.max(1),
            repo_locks: Mutex::new(HashMap::new()),
            oci: tokio::sync::OnceCell::new(),
            progress: crate::oci::progress::Progress::hidden(),
            replay: None,
        }
    }

    /// A context that writes a sneakernet bundle at `dir` (absolute) for the manifest's
    /// registry target: the bundle is the output root and the images' destination, and its
    /// state is its own ([`Ctx::state_dir`]).
    pub fn for_bundle(manifest: Manifest, lock: Lockfile, jobs: usize, dir: PathBuf) -> Ctx {
        let mut ctx = Ctx::new(manifest, lock, jobs);
        ctx.out_root = dir.clone();
        ctx.target_root = dir.clone();
        ctx.bundle = Some(dir);
        ctx
    }

    /// Where the state of this output lives: the workspace for the target; for a bundle, a
    /// folder of the workspace named after the bundle's path, so that the target's records
    /// and each bundle's never stand in for one another.
    pub fn state_dir(&self) -> PathBuf {
        match &self.bundle {
            None => self.ws.root.clone(),
            Some(dir) => {
                let key = blake3::hash(dir.as_os_str().as_encoded_bytes()).to_hex();
                self.ws.root.join("bundles").join(&key.as_str()[..16])
            }
        }
    }

    /// The registry client and where images land, made on first use (a `dir:` target's
    /// or a bundle's layout is created then).
    pub async fn oci(&self) -> Result<(&crate::oci::Client, &crate::oci::Destination), String> {
        let (c, d) = self
            .oci
            .get_or_try_init(|| async {
                let client = crate::oci::Client::new(crate::oci::ClientConfig {
                    mirrors: self.manifest.oci_mirrors(),
                    jobs: self.jobs,
                    progress: self.progress.clone(),
                    ..Default::default()
                });
                let destination = match &self.manifest.target.kind {
                    _ if self.bundle.is_some() => crate::oci::Destination::Layout(Arc::new(
                        crate::oci::layout::Layout::open(&self.out_root)
                            .map_err(|e| e.to_string())?,
                    )),
                    crate::manifest::TargetKind::Dir { .. } => {
                        crate::oci::Destination::Layout(Arc::new(
                            crate::oci::layout::Layout::open(&self.target_root)
                                .map_err(|e| e.to_string())?,
                        ))
                    }
                    crate::manifest::TargetKind::Registry {
                        prefix,
                        tls,
                        ca_file,
                    } => {
                        let host = prefix.split('/').next().unwrap_or(prefix).to_string();
                        let mut access = crate::oci::mirror::RegistryAccess::new(host, *tls);
                        if let Some(ca) = ca_file {
                            access = access.with_ca_file(self.manifest.resolve_path(ca));
                        }
                        crate::oci::Destination::Registry(access)
                    }
                };
                Ok::<_, String>((client, destination))
            })
            .await?;
        Ok((c, d))
    }

    /// The errors of the hosts no connection could be made to in this run, as steps report
    /// them.
    pub fn unreachable(&self) -> Vec<String> {
        match self.oci.get() {
            Some((client, _)) => client
                .unreachable()
                .iter()
                .map(ToString::to_string)
                .collect(),
            None => Vec::new(),
        }
    }

    pub fn registry_dir(&self) -> PathBuf {
        self.out_root.join(crate::tree_paths::REGISTRY)
    }

    /// A lock per git remote: two steps never fetch into one cache repository at once.
    pub fn repo_lock(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.repo_locks.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(url.to_string()).or_default().clone()
    }

    /// Whether a recorded step's outputs are still where it left them.
    pub async fn outputs_exist(&self, step: &Step, rec: &Record) -> bool {
        for (file, size) in &rec.files {
            match std::fs::metadata(self.out_root.join(file)) {
                Ok(m) if m.len() == *size => {}
                _ => return false,
            }
        }
        crate::steps::outputs_exist(self, step, rec).await
    }
}

/// The status of one step before running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Fresh,
    Stale(String),
}

/// Computes each step's status without running anything: what `airgap plan` prints. A step
/// whose dependency is stale is reported stale (its inputs will be rebuilt), although the run
/// may find it fresh if the rebuilt outputs come out identical.
pub async fn statuses(plan: &Plan, state: &State, ctx: &Ctx) -> Vec<Status> {
    let mut out: Vec<Option<Status>> = vec![None; plan.steps.len()];
    for level in &plan.levels {
        let results: Vec<(usize, Status)> = futures::stream::iter(level.iter().copied())
            .map(|i| {
                let step = &plan.steps[i];
                let stale_dep = step.key_deps().find_map(|d| {
                    let j = plan.steps.iter().position(|s| &s.id == d)?;
                    matches!(out[j], Some(Status::Stale(_))).then(|| plan.steps[j].describe.clone())
                });
                async move {
                    if let Some(dep) = stale_dep {
                        return (i, Status::Stale(format!("its input {dep} will be rebuilt")));
                    }
                    (i, status_of(plan, step, state, ctx).await)
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
        .map(|s| s.unwrap_or(Status::Stale("not evaluated".into())))
        .collect()
}

fn dep_outputs(step: &Step, state: &State) -> BTreeMap<String, BTreeMap<String, String>> {
    step.key_deps()
        .map(|d| {
            (
                d.clone(),
                state.get(d).map(|r| r.outputs).unwrap_or_default(),
            )
        })
        .collect()
}

async fn status_of(plan: &Plan, step: &Step, state: &State, ctx: &Ctx) -> Status {
    let input = plan::key_input(step, &dep_outputs(step, state));
    let key = plan::key_of(&input);
    match state.get(&step.id) {
        None => Status::Stale("never built".into()),
        Some(rec) if rec.key != key => {
            Status::Stale(plan::dirty_reason(step, &rec.input, &input, plan))
        }
        Some(rec) => {
            if ctx.outputs_exist(step, &rec).await {
                Status::Fresh
            } else {
                Status::Stale(crate::steps::missing_reason(step))
            }
        }
    }
}

/// Counts of a run.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub ran: usize,
    pub fresh: usize,
    pub skipped: usize,
    pub failures: Vec<StepFailure>,
}

/// Runs every stale step of the plan, level by level.
pub async fn run(
    plan: &Plan,
    state: &State,
    ctx: &Ctx,
    progress: &dyn Fn(&str, &str),
) -> RunReport {
    let mut report = RunReport::default();
    let mut failed: BTreeMap<String, ()> = BTreeMap::new();
    // The unreachable hosts already reported by a failed step.
    let mut reported: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for level in &plan.levels {
        let results: Vec<(usize, Result<bool, String>)> =
            futures::stream::iter(level.iter().copied())
                .map(|i| {
                    let step = &plan.steps[i];
                    let blocked = step.deps.iter().find(|d| failed.contains_key(*d)).cloned();
                    async move {
                        if let Some(dep) = blocked {
                            let name = plan.step(&dep).map(|s| s.describe.clone()).unwrap_or(dep);
                            return (i, Err(format!("skipped: its input {name} failed")));
                        }
                        let input = plan::key_input(step, &dep_outputs(step, state));
                        let key = plan::key_of(&input);
                        if let Some(rec) = state.get(&step.id)
                            && rec.key == key
                            && ctx.outputs_exist(step, &rec).await
                        {
                            return (i, Ok(false));
                        }
                        progress("Running", &step.describe);
                        match crate::steps::run(ctx, step, state).await {
                            Ok(out) => {
                                let rec = Record {
                                    step: step.id.clone(),
                                    key,
                                    input,
                                    outputs: out.outputs,
                                    files: out.files,
                                };
                                match state.record(rec) {
                                    Ok(()) => (i, Ok(true)),
                                    Err(e) => (i, Err(e.to_string())),
                                }
                            }
                            Err(e) => (i, Err(e)),
                        }
                    }
                })
                .buffer_unordered(ctx.jobs)
                .collect()
                .await;
        let unreachable = ctx.unreachable();
        for (i, r) in results {
            let step = &plan.steps[i];
            match r {
                Ok(true) => report.ran += 1,
                Ok(false) => report.fresh += 1,
                Err(message) => {
                    let cause = unreachable.iter().find(|u| message.contains(u.as_str()));
                    let repeated = cause.is_some_and(|u| !reported.insert(u.clone()));
                    if message.starts_with("skipped:") || repeated {
                        report.skipped += 1;
                    } else {
                        progress("Failed", &format!("{}: {message}", step.describe));
                        report.failures.push(StepFailure {
                            step: step.id.clone(),
                            describe: step.describe.clone(),
                            message,
                        });
                    }
                    failed.insert(step.id.clone(), ());
                }
            }
        }
    }
    report
}
