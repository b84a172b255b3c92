//! `airgap lock`: the manifest and the sources → a [`Lockfile`].
//!
//! Resolution walks every source (a git commit read from the cache, or a folder), discovers
//! its stacks and samples, reads each devfile, and collects what they reference: images,
//! starter projects and projects, parent devfiles, icons. Each reference becomes one lock
//! entry. An entry already in the previous lock with the same request is kept as it is (a pin)
//! unless `--update` names its owner; everything else is resolved over the network, in
//! parallel: one `ls-remote` per git remote, one download per URL, one manifest request per
//! image.
//!
//! Under `--locked` nothing is resolved: a reference without a matching pin is reported as the
//! reason the lock no longer satisfies the manifest. Content is still fetched by its locked
//! address (a source's commit, to read its devfiles), as `cargo build --locked` still
//! downloads crates.
//!
//! Errors never stop at the first: every unreachable remote, missing revision and failed
//! download is collected and reported together, each naming its stack, its starter project and
//! the URL. Nothing is written unless everything resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures::StreamExt;

use super::*;
use crate::checkout::{CheckoutError, Checkouts};
use crate::devfile::{self, ImageUse, ParentRef, ProjectRef, ProjectSource};
use crate::diag::{SpanDiagnostic, did_you_mean};
use crate::discover::{self, Discovered};
use crate::fetch::Fetcher;
use crate::git::{GitCache, RemoteRefs};
use crate::manifest::{Manifest, Origin};
use crate::source::Files;

/// Which pins `airgap lock` may move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Keep every pin that still matches its request.
    Nothing,
    /// Re-resolve everything.
    All,
    /// Re-resolve the pins owned by these sources, stacks or samples.
    Names(BTreeSet<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Resolve what is missing or stale over the network.
    Resolve,
    /// Resolve nothing: report what is missing (`--locked`).
    Locked,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub sources: usize,
    pub stacks: usize,
    pub devfiles: usize,
    pub samples: usize,
    pub starter_projects: usize,
    pub projects: usize,
    pub images: usize,
    pub downloads: usize,
    /// Entries resolved over the network this run (not taken from the previous lock).
    pub resolved: usize,
}

/// Where resolution keeps what it fetches: git repositories and downloads (the workspace's,
/// see `crate::workspace::Workspace::caches`).
#[derive(Debug, Clone)]
pub struct Caches {
    pub git: GitCache,
    pub files: PathBuf,
}

/// What resolution does with one entry: keep the previous lock's pin, or resolve it.
enum Pin<T> {
    Keep(T),
    /// `pinned`: a pin matched the request, but `--update` moves it.
    Resolve {
        pinned: bool,
    },
}

/// One reason resolution failed, naming what needed it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {message}")]
pub struct Problem {
    /// "starter project `go-starter` of stack `go/2.6.0` (source `community`)".
    pub what: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LockError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Manifest(#[from] crate::diag::Diagnostics),
    #[error("{} could not be resolved:\n{}", crate::ui::plural(problems.len() as u64, "reference"), list(problems))]
    #[diagnostic(
        code(airgap::lock::resolve),
        help(
            "the previous airgap.lock was left untouched; fix the references (or add `url-mirror` / `registry-mirror` rules) and run `airgap lock` again"
        )
    )]
    Resolve { problems: Vec<Problem> },
    #[error(
        "airgap.lock does not satisfy the manifest:\n{}",
        list_reasons(reasons)
    )]
    #[diagnostic(
        code(airgap::lock::unsatisfied),
        help("run `airgap lock` (without --locked) to update airgap.lock")
    )]
    Unsatisfied { reasons: Vec<Problem> },
    /// `airgap lock --strict`: images that have none of the requested platforms.
    #[error(
        "{} {} none of the platforms asked for:\n{}",
        crate::ui::plural(lacking.len() as u64, "image"),
        if lacking.len() == 1 { "has" } else { "have" },
        lacking.iter().map(|l| format!("- {l}")).collect::<Vec<_>>().join("\n")
    )]
    #[diagnostic(
        code(airgap::lock::platforms),
        help(
            "airgap.lock was left untouched; add a platform they have to `images {{ platforms }}`, or drop --strict to lock them anyway (apply then copies each such image as it is)"
        )
    )]
    Platforms {
        lacking: Vec<super::platforms::Lacking>,
    },
    /// `--update NAME` names nothing of the manifest: the command line is wrong (exit 2).
    #[error("{}", unknown.join("\n"))]
    #[diagnostic(code(airgap::usage), help("{help}"))]
    UnknownUpdate { unknown: Vec<String>, help: String },
    #[error("{what}")]
    #[diagnostic(code(airgap::lock::source))]
    Source {
        what: String,
        #[source]
        #[diagnostic_source]
        cause: Box<dyn miette::Diagnostic + Send + Sync>,
    },
}

/// Problems grouped by cause (one unreachable remote fails every starter project using it),
/// causes sorted, each followed by up to three of the things that needed it.
fn list(problems: &[Problem]) -> String {
    let mut by_cause: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for p in problems {
        by_cause.entry(&p.message).or_default().insert(&p.what);
    }
    let mut out = Vec::new();
    for (cause, whats) in by_cause {
        out.push(format!("- {cause}"));
        let shown: Vec<&str> = whats.iter().copied().take(3).collect();
        let more = whats.len().saturating_sub(shown.len());
        for w in shown {
            out.push(format!("    needed by {w}"));
        }
        if more > 0 {
            out.push(format!("    and {more} more"));
        }
    }
    out.join("\n")
}

/// Reasons a lock does not satisfy the manifest, one line each, sorted, the first 20.
fn list_reasons(reasons: &[Problem]) -> String {
    let lines: BTreeSet<String> = reasons
        .iter()
        .map(|r| format!("- {} {}", r.what, r.message))
        .collect();
    let mut out: Vec<String> = lines.iter().take(20).cloned().collect();
    if lines.len() > 20 {
        out.push(format!("- and {} more", lines.len() - 20));
    }
    out.join("\n")
}

/// A starter project or project to resolve.
enum ProjectJob {
    Git {
        key: ProjectKey,
        remote: String,
        revision: Option<String>,
        sub_dir: Option<String>,
        what: String,
    },
    Zip {
        key: ProjectKey,
        url: String,
        sub_dir: Option<String>,
        what: String,
    },
}

/// What one source holds, as the lock records it.
struct SourceRead {
    discovered: Discovered,
    units: Vec<Unit>,
    stacks: Vec<((String, String), LockedStack)>,
    samples: Vec<(String, LockedSample)>,
    /// blake3 of `extraDevfileEntries.yaml`, when samples are included.
    extra: Option<String>,
}

/// What a stack version or sample references, as read from its devfile (and Dockerfiles).
#[derive(Debug, Clone)]
struct Unit {
    source: String,
    /// Stack version id or `sample:<id>`: the lock's owner key.
    owner: String,
    /// The stack (or sample) name: what `--update` matches.
    name: String,
    label: String,
    images: Vec<ImageUse>,
    projects: Vec<(ProjectKind, ProjectRef)>,
    parent: Option<ParentRef>,
    icons: Vec<String>,
    /// Files `metadata` names by URL.
    files: Vec<String>,
}

impl Unit {
    /// The lock entries this unit reads, for its `uses-*` children.
    fn uses(&self) -> Uses {
        Uses {
            images: self
                .images
                .iter()
                .filter_map(|i| canonical_image(&i.resolved).ok())
                .collect(),
            icons: self.icons.iter().cloned().collect(),
            parents: self.parent.iter().map(|p| p.url()).collect(),
            files: self.files.iter().cloned().collect(),
        }
    }
}

/// Resolves the manifest into a lockfile, on the command's `runtime` (one per process).
pub fn lock(
    manifest: &Manifest,
    previous: Option<&Lockfile>,
    update: &Update,
    mode: Mode,
    jobs: usize,
    caches: Caches,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Lockfile, Stats), LockError> {
    runtime.block_on(Resolver::new(manifest, previous, update, mode, jobs, caches).run())
}

struct Resolver<'a> {
    manifest: &'a Manifest,
    previous: Option<&'a Lockfile>,
    update: &'a Update,
    mode: Mode,
    jobs: usize,
    checkouts: Checkouts,
    fetcher: Fetcher,
    problems: Vec<Problem>,
    unsatisfied: Vec<Problem>,
    resolved: usize,
}

fn progress(msg: impl AsRef<str>) {
    crate::ui::status("Locking", msg.as_ref());
}

impl<'a> Resolver<'a> {
    fn new(
        manifest: &'a Manifest,
        previous: Option<&'a Lockfile>,
        update: &'a Update,
        mode: Mode,
        jobs: usize,
        caches: Caches,
    ) -> Self {
        Self {
            manifest,
            previous,
            update,
            mode,
            jobs: jobs.max(1),
            checkouts: Checkouts::new(caches.git, manifest.url_mirrors.clone()),
            fetcher: Fetcher::new(
                manifest.url_mirrors.clone(),
                manifest.url_credentials.clone(),
                caches.files,
            ),
            problems: Vec::new(),
            unsatisfied: Vec::new(),
            resolved: 0,
        }
    }

    /// Whether `--update` moves the pins of an entry these sources, stacks or samples own
    /// (`--update` with no names moves every pin, owned or not).
    fn updating<'o>(&self, owners: impl IntoIterator<Item = &'o str>) -> bool {
        match self.update {
            Update::Nothing => false,
            Update::All => true,
            Update::Names(n) => owners.into_iter().any(|o| n.contains(o)),
        }
    }

    /// The one rule of pins: the previous lock's entry is kept when it still matches the
    /// request and `--update` names none of its owners; otherwise it is resolved again.
    fn pin_or_resolve<'p, 'o, T>(
        &self,
        previous: Option<&'p T>,
        matches_request: impl FnOnce(&T) -> bool,
        owners: impl IntoIterator<Item = &'o str>,
    ) -> Pin<&'p T> {
        match previous.filter(|p| matches_request(p)) {
            Some(p) if !self.updating(owners) => Pin::Keep(p),
            pinned => Pin::Resolve {
                pinned: pinned.is_some(),
            },
        }
    }

    /// Resolves a git revision over the network (one `ls-remote` per remote per run). A
    /// failure is recorded against `what`: `None`.
    async fn resolve_rev(&mut self, url: &str, rev: Option<&str>, what: String) -> Option<String> {
        let resolved = self
            .ls_remote(url)
            .await
            .and_then(|refs| refs.resolve(url, rev).map_err(|e| e.to_string()));
        match resolved {
            Ok(oid) => {
                self.resolved += 1;
                Some(oid.to_string())
            }
            Err(message) => {
                self.problems.push(Problem { what, message });
                None
            }
        }
    }

    fn unsatisfied(&mut self, what: impl Into<String>, message: impl Into<String>) {
        self.unsatisfied.push(Problem {
            what: what.into(),
            message: message.into(),
        });
    }

    async fn run(mut self) -> Result<(Lockfile, Stats), LockError> {
        let m = self.manifest;
        let mut lock = Lockfile {
            target: LockedTarget {
                prefix: m.target.kind.image_prefix().to_string(),
                naming: m.images.naming.as_str().to_string(),
            },
            index_image: Some(LockedIndexImage {
                name: m.index_image.name.clone(),
                tag: m.index_image.tag.clone(),
                base: m.index_image.base.value.clone(),
            }),
            deploy: m.deploy.as_ref().map(|d| LockedDeploy {
                config: d.config.clone(),
                images: d
                    .images
                    .iter()
                    .filter_map(|(role, i)| Some((role.to_string(), canonical_image(i).ok()?)))
                    .collect(),
            }),
            ..Default::default()
        };
        let mut stats = Stats::default();
        let mut units: Vec<Unit> = Vec::new();
        let mut known_names: BTreeSet<String> = BTreeSet::new();

        // 1. Sources, one at a time (there are few); their content read from the cache.
        for decl in &m.sources {
            let name = decl.name.value.clone();
            known_names.insert(name.clone());
            stats.sources += 1;
            let Some((locked, commit)) = self.pin_source(decl).await else {
                continue;
            };
            lock.sources.insert(name.clone(), locked);

            // Read the source's content.
            let read = self.read_source(decl, commit.as_deref()).await;
            let SourceRead {
                discovered,
                units: source_units,
                stacks: stack_entries,
                samples: sample_pins,
                extra,
            } = read?;
            if let Some(h) = extra {
                lock.extra_entries.insert(name.clone(), h);
            }
            self.check_stacks_filter(decl, &discovered)?;
            let keep = |stack: &str| -> bool {
                decl.stacks
                    .as_ref()
                    .is_none_or(|f| f.iter().any(|s| s.value == stack))
            };
            for s in &discovered.stacks {
                if keep(&s.name) {
                    known_names.insert(s.name.clone());
                    stats.stacks += 1;
                }
            }
            for s in &discovered.samples {
                known_names.insert(s.name.clone());
            }
            for ((id, stack), entry) in stack_entries {
                if keep(&stack) {
                    stats.devfiles += 1;
                    lock.stacks.insert((name.clone(), id), entry);
                }
            }
            for (id, entry) in sample_pins {
                stats.samples += 1;
                lock.samples.insert((name.clone(), id), entry);
            }
            units.extend(
                source_units
                    .into_iter()
                    .filter(|u| u.owner.starts_with("sample:") || keep(&u.name)),
            );
        }

        if m.deploy.is_some() {
            known_names.insert(DEPLOY_OWNER.to_string());
        }
        self.check_update_names(&known_names)?;

        if !self.problems.is_empty() {
            return Err(LockError::Resolve {
                problems: std::mem::take(&mut self.problems),
            });
        }

        // 2. Projects, downloads and images, each resolved at most once, in parallel.
        self.resolve_projects(&units, &mut lock, &mut stats).await;
        self.resolve_downloads(&units, &mut lock, &mut stats).await;
        self.collect_images(&units, &mut lock, &mut stats).await?;
        self.land_images(&mut lock).await;

        if !self.problems.is_empty() {
            return Err(LockError::Resolve {
                problems: std::mem::take(&mut self.problems),
            });
        }
        if self.mode == Mode::Locked {
            if let Some(prev) = self.previous {
                compare_entries(prev, &lock, &mut self.unsatisfied);
            } else {
                self.unsatisfied.push(Problem {
                    what: "airgap.lock".into(),
                    message: "does not exist".into(),
                });
            }
            if !self.unsatisfied.is_empty() {
                return Err(LockError::Unsatisfied {
                    reasons: std::mem::take(&mut self.unsatisfied),
                });
            }
        }
        stats.resolved = self.resolved;
        Ok((lock, stats))
    }

    /// A source's lock entry and commit (`None` for a path source): the previous pin, or
    /// resolved now. `None` when it could not be (the problem is recorded).
    async fn pin_source(
        &mut self,
        decl: &crate::manifest::SourceDecl,
    ) -> Option<(LockedSource, Option<String>)> {
        let name = decl.name.value.clone();
        Some(match &decl.origin {
            Origin::Git { url, rev } => {
                let previous = self.previous.and_then(|p| p.sources.get(&name));
                let same = |p: &LockedSource| match p {
                    LockedSource::Git { url: u, rev: r, .. } => u == url && r == rev,
                    LockedSource::Path { .. } => false,
                };
                let commit = match self.pin_or_resolve(previous, same, [name.as_str()]) {
                    Pin::Keep(LockedSource::Git { commit, .. }) => commit.clone(),
                    Pin::Keep(LockedSource::Path { .. }) => unreachable!("matched a git pin"),
                    Pin::Resolve { pinned } => {
                        if self.mode == Mode::Locked {
                            let msg = if pinned {
                                "is asked to update".to_string()
                            } else {
                                format!(
                                    "has no pin in the lock for {url}{}",
                                    rev.as_ref()
                                        .map(|r| format!(" at `{r}`"))
                                        .unwrap_or_default()
                                )
                            };
                            self.unsatisfied(format!("source `{name}`"), msg);
                            return None;
                        }
                        progress(format!("source `{name}` ({url})"));
                        let what = format!("source `{name}`");
                        match self.resolve_rev(url, rev.as_deref(), what).await {
                            Some(c) => c,
                            None => return None,
                        }
                    }
                };
                (
                    LockedSource::Git {
                        url: url.clone(),
                        rev: rev.clone(),
                        commit: commit.clone(),
                    },
                    Some(commit),
                )
            }
            Origin::Path(p) => (
                LockedSource::Path {
                    path: p.to_string_lossy().replace('\\', "/"),
                },
                None,
            ),
        })
    }

    /// Every name of a source's `stacks` filter must be one of its stacks.
    fn check_stacks_filter(
        &self,
        decl: &crate::manifest::SourceDecl,
        discovered: &Discovered,
    ) -> Result<(), LockError> {
        let m = self.manifest;
        let name = &decl.name.value;
        let stack_names: BTreeSet<&str> =
            discovered.stacks.iter().map(|s| s.name.as_str()).collect();
        if let Some(filter) = &decl.stacks {
            let mut bad = Vec::new();
            for f in filter {
                if !stack_names.contains(f.value.as_str()) {
                    let help = match did_you_mean(&f.value, stack_names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => {
                            let near: Vec<&str> = stack_names
                                .iter()
                                .copied()
                                .filter(|n| {
                                    n.contains(f.value.as_str())
                                        || f.value.contains(n)
                                        || strsim::levenshtein(n, &f.value) <= 3
                                })
                                .collect();
                            if near.is_empty() {
                                format!(
                                    "source `{}` has {} stacks: {}",
                                    crate::diag::literal(name),
                                    stack_names.len(),
                                    stack_names.iter().copied().collect::<Vec<_>>().join(", ")
                                )
                            } else {
                                format!(
                                    "near names in source `{}`: {}",
                                    crate::diag::literal(name),
                                    near.join(", ")
                                )
                            }
                        }
                    };
                    bad.push(
                        SpanDiagnostic::new(
                            &m.src,
                            "airgap::manifest::unknown-stack",
                            f.span,
                            format!(
                                "source `{}` has no stack `{}`",
                                crate::diag::literal(name),
                                crate::diag::literal(&f.value)
                            ),
                        )
                        .label("no such stack")
                        .help(help),
                    );
                }
            }
            if !bad.is_empty() {
                return Err(LockError::Manifest(crate::diag::Diagnostics {
                    file: m.src.name().to_string(),
                    items: bad,
                }));
            }
        }
        Ok(())
    }

    /// `--update NAME…` must name a source, stack or sample of the manifest.
    fn check_update_names(&self, known_names: &BTreeSet<String>) -> Result<(), LockError> {
        if let Update::Names(names) = self.update {
            let unknown: Vec<String> = names
                .iter()
                .filter(|n| !known_names.contains(*n))
                .map(|n| {
                    let near = did_you_mean(n, known_names.iter().map(String::as_str))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    format!(
                        "no source, stack or sample is named `{}`{near}",
                        crate::diag::literal(n)
                    )
                })
                .collect();
            if !unknown.is_empty() {
                let shown: Vec<String> = known_names
                    .iter()
                    .take(12)
                    .map(|n| format!("`{n}`"))
                    .collect();
                let more = known_names.len().saturating_sub(shown.len());
                return Err(LockError::UnknownUpdate {
                    unknown,
                    help: format!(
                        "`--update` takes names of the manifest's sources, stacks and samples: {}{}",
                        shown.join(", "),
                        if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        }
                    ),
                });
            }
        }

        Ok(())
    }

    async fn ls_remote(&self, url: &str) -> Result<RemoteRefs, String> {
        self.checkouts.ls_remote(url).await
    }

    /// Fetches `commit` of `url` into the cache (when missing) and runs `f` on its files.
    async fn with_commit<T: Send + 'static>(
        &self,
        url: &str,
        commit: &str,
        f: impl FnOnce(&Files<'_>) -> Result<T, LockError> + Send + 'static,
    ) -> Result<T, LockError> {
        let read = self
            .checkouts
            .read_at(url, commit, move |reader| f(&Files::Git(reader)))
            .await;
        read.map_err(|e| checkout_error(e, url, commit))?
    }

    /// Discovers a source's stacks and samples; hashes every devfile and packed file; reads
    /// every devfile's references. Samples' repositories are resolved and read here too.
    #[allow(clippy::type_complexity)]
    async fn read_source(
        &mut self,
        decl: &crate::manifest::SourceDecl,
        commit: Option<&str>,
    ) -> Result<SourceRead, LockError> {
        let name = decl.name.value.clone();
        let samples = decl.samples;
        let read = move |files: &Files<'_>| read_stacks(&name, samples, files);
        let (discovered, mut units, (entries, extra)) = match (&decl.origin, commit) {
            (Origin::Git { url, .. }, Some(commit)) => self.with_commit(url, commit, read).await?,
            (Origin::Path(p), _) => {
                let dir = self.manifest.resolve_path(p);
                if !dir.is_dir() {
                    return Err(LockError::Manifest(crate::diag::Diagnostics {
                        file: self.manifest.src.name().to_string(),
                        items: vec![
                            SpanDiagnostic::new(
                                &self.manifest.src,
                                "airgap::manifest::missing-path",
                                decl.span,
                                format!(
                                    "source `{}`: `{}` is not a folder",
                                    crate::diag::literal(&decl.name.value),
                                    crate::diag::literal(&dir.display().to_string())
                                ),
                            )
                            .help("`path` is relative to the folder of airgap.kdl"),
                        ],
                    }));
                }
                read(&Files::Dir(dir))?
            }
            (Origin::Git { .. }, None) => unreachable!("git sources have a commit"),
        };

        // Samples: each is a git repository of its own, holding the devfile.
        let mut sample_pins = Vec::new();
        for s in &discovered.samples {
            let id = s.id();
            let what = format!(
                "sample `{id}` of source `{}` ({})",
                decl.name.value, s.remote
            );
            let previous = self
                .previous
                .and_then(|p| p.samples.get(&(decl.name.value.clone(), id.clone())));
            let same = |p: &LockedSample| {
                p.remote == s.remote && p.revision == s.revision && p.sub_dir == s.sub_dir
            };
            let commit = match self.pin_or_resolve(previous, same, [s.name.as_str()]) {
                Pin::Keep(p) => p.commit.clone(),
                Pin::Resolve { .. } if self.mode == Mode::Locked => {
                    self.unsatisfied(what, "has no pin in the lock");
                    continue;
                }
                Pin::Resolve { .. } => {
                    let rev = s.revision.as_deref();
                    match self.resolve_rev(&s.remote, rev, what.clone()).await {
                        Some(c) => c,
                        None => continue,
                    }
                }
            };
            let sub_dir = s.sub_dir.clone();
            let sample_name = s.name.clone();
            let owner = format!("sample:{id}");
            let source_name = decl.name.value.clone();
            let label = format!("sample `{id}`");
            let read = self
                .with_commit(&s.remote, &commit, move |files| {
                    read_sample(files, sub_dir, label, source_name, sample_name, owner)
                })
                .await;
            match read {
                Ok(Ok((mut unit, hash))) => {
                    unit.icons
                        .extend(s.icon.iter().filter(|i| is_remote(i)).cloned());
                    let uses = unit.uses();
                    units.push(unit);
                    sample_pins.push((
                        id,
                        LockedSample {
                            remote: s.remote.clone(),
                            revision: s.revision.clone(),
                            commit,
                            sub_dir: s.sub_dir.clone(),
                            devfile: hash,
                            uses,
                        },
                    ));
                }
                Ok(Err(message)) => self.problems.push(Problem { what, message }),
                Err(e) => self.problems.push(Problem {
                    what,
                    message: describe(&e),
                }),
            }
        }
        Ok(SourceRead {
            discovered,
            units,
            stacks: entries,
            samples: sample_pins,
            extra,
        })
    }

    async fn resolve_projects(&mut self, units: &[Unit], lock: &mut Lockfile, stats: &mut Stats) {
        let mut jobs = Vec::new();
        for u in units {
            for (kind, p) in &u.projects {
                match kind {
                    ProjectKind::Starter => stats.starter_projects += 1,
                    ProjectKind::Project => stats.projects += 1,
                }
                let key = ProjectKey {
                    source: u.source.clone(),
                    owner: u.owner.clone(),
                    kind: *kind,
                    name: p.name.clone(),
                };
                let what = format!(
                    "{} `{}` of {} (source `{}`)",
                    match kind {
                        ProjectKind::Starter => "starter project",
                        ProjectKind::Project => "project",
                    },
                    p.name,
                    u.label,
                    u.source
                );
                let problem = match &p.source {
                    ProjectSource::Git { remote, .. } if remote.is_empty() => {
                        Some("its git source names no remote".to_string())
                    }
                    ProjectSource::Zip { location } if !is_remote(location) => {
                        Some(format!("zip location `{location}` is not an http(s) URL"))
                    }
                    _ => None,
                };
                if let Some(message) = problem {
                    self.problems.push(Problem { what, message });
                    continue;
                }
                let previous = self.previous.and_then(|l| l.projects.get(&key));
                let same = |l: &LockedProject| match (l, &p.source) {
                    (
                        LockedProject::Git {
                            remote: r,
                            revision: rv,
                            sub_dir,
                            ..
                        },
                        ProjectSource::Git {
                            remote, revision, ..
                        },
                    ) => r == remote && rv == revision && sub_dir == &p.sub_dir,
                    (LockedProject::Zip { url, sub_dir, .. }, ProjectSource::Zip { location }) => {
                        url == location && sub_dir == &p.sub_dir
                    }
                    _ => false,
                };
                if let Pin::Keep(l) = self.pin_or_resolve(previous, same, [u.name.as_str()]) {
                    lock.projects.insert(key, l.clone());
                    continue;
                }
                jobs.push(match &p.source {
                    ProjectSource::Git {
                        remote, revision, ..
                    } => ProjectJob::Git {
                        key,
                        remote: remote.clone(),
                        revision: revision.clone(),
                        sub_dir: p.sub_dir.clone(),
                        what,
                    },
                    ProjectSource::Zip { location } => ProjectJob::Zip {
                        key,
                        url: location.clone(),
                        sub_dir: p.sub_dir.clone(),
                        what,
                    },
                });
            }
        }
        if jobs.is_empty() {
            return;
        }
        if self.mode == Mode::Locked {
            for j in jobs {
                let what = match j {
                    ProjectJob::Git { what, .. } | ProjectJob::Zip { what, .. } => what,
                };
                self.unsatisfied(what, "has no matching pin in the lock");
            }
            return;
        }
        progress(format!("{} starter projects and projects", jobs.len()));
        let this = &*self;
        let results: Vec<Result<(ProjectKey, LockedProject), Problem>> =
            futures::stream::iter(jobs.into_iter().map(|j| this.resolve_project(j)))
                .buffer_unordered(self.jobs * 4)
                .collect()
                .await;
        for r in results {
            match r {
                Ok((k, v)) => {
                    self.resolved += 1;
                    lock.projects.insert(k, v);
                }
                Err(p) => self.problems.push(p),
            }
        }
    }

    /// Resolves one starter project or project: a git revision to a commit, or a zip's hash.
    async fn resolve_project(&self, j: ProjectJob) -> Result<(ProjectKey, LockedProject), Problem> {
        match j {
            ProjectJob::Git {
                key,
                remote,
                revision,
                sub_dir,
                what,
            } => {
                let refs = self.ls_remote(&remote).await.map_err(|message| Problem {
                    what: what.clone(),
                    message,
                })?;
                let commit = refs
                    .resolve(&remote, revision.as_deref())
                    .map_err(|e| Problem {
                        what: what.clone(),
                        message: e.to_string(),
                    })?;
                Ok((
                    key,
                    LockedProject::Git {
                        remote,
                        revision,
                        commit: commit.to_string(),
                        sub_dir,
                    },
                ))
            }
            ProjectJob::Zip {
                key,
                url,
                sub_dir,
                what,
            } => {
                let (sha256, _) = self
                    .fetcher
                    .get_and_store(&url)
                    .await
                    .map_err(|e| Problem {
                        what,
                        message: e.to_string(),
                    })?;
                Ok((
                    key,
                    LockedProject::Zip {
                        url,
                        sha256,
                        sub_dir,
                    },
                ))
            }
        }
    }

    async fn resolve_downloads(&mut self, units: &[Unit], lock: &mut Lockfile, stats: &mut Stats) {
        // URL → (kinds, owners' names, first user's label)
        let mut wanted: BTreeMap<String, (BTreeSet<DownloadKind>, BTreeSet<String>, String)> =
            BTreeMap::new();
        for u in units {
            if let Some(p) = &u.parent {
                let e = wanted.entry(p.url()).or_insert_with(|| {
                    (
                        BTreeSet::new(),
                        BTreeSet::new(),
                        format!("parent devfile of {} (source `{}`)", u.label, u.source),
                    )
                });
                e.0.insert(DownloadKind::Parent);
                e.1.insert(u.name.clone());
            }
            for icon in &u.icons {
                let e = wanted.entry(icon.clone()).or_insert_with(|| {
                    (
                        BTreeSet::new(),
                        BTreeSet::new(),
                        format!("icon of {} (source `{}`)", u.label, u.source),
                    )
                });
                e.0.insert(DownloadKind::Icon);
                e.1.insert(u.name.clone());
            }
            for file in &u.files {
                let e = wanted.entry(file.clone()).or_insert_with(|| {
                    (
                        BTreeSet::new(),
                        BTreeSet::new(),
                        format!(
                            "a file named in the metadata of {} (source `{}`)",
                            u.label, u.source
                        ),
                    )
                });
                e.0.insert(DownloadKind::File);
                e.1.insert(u.name.clone());
            }
        }
        stats.downloads = wanted.len();
        let mut jobs = Vec::new();
        for (url, (kinds, owners, what)) in wanted {
            let previous = self.previous.and_then(|l| l.downloads.get(&url));
            let owned = owners.iter().map(String::as_str);
            match self.pin_or_resolve(previous, |_| true, owned) {
                Pin::Keep(prev) => {
                    lock.downloads.insert(
                        url,
                        LockedDownload {
                            kinds,
                            sha256: prev.sha256.clone(),
                            size: prev.size,
                        },
                    );
                }
                Pin::Resolve { .. } => jobs.push((url, kinds, what)),
            }
        }
        if jobs.is_empty() {
            return;
        }
        if self.mode == Mode::Locked {
            for (url, _, what) in jobs {
                self.unsatisfied(format!("{what} ({url})"), "has no pin in the lock");
            }
            return;
        }
        progress(format!("{} icons and parent devfiles", jobs.len()));
        let fetcher = &self.fetcher;
        let results: Vec<_> =
            futures::stream::iter(jobs.into_iter().map(|(url, kinds, what)| async move {
                match fetcher.get_and_store(&url).await {
                    Ok((sha256, size)) => Ok((
                        url,
                        LockedDownload {
                            kinds,
                            sha256,
                            size,
                        },
                    )),
                    Err(e) => Err(Problem {
                        what,
                        message: e.to_string(),
                    }),
                }
            }))
            .buffer_unordered(self.jobs * 4)
            .collect()
            .await;
        for r in results {
            match r {
                Ok((url, d)) => {
                    self.resolved += 1;
                    lock.downloads.insert(url, d);
                }
                Err(p) => self.problems.push(p),
            }
        }
    }

    /// Two upstream images that would land on one target reference: a problem naming both.
    fn target_collisions<'w>(
        &mut self,
        prefix: &crate::oci::naming::TargetPrefix,
        wanted: impl Iterator<Item = (&'w String, &'w BTreeSet<String>)>,
    ) {
        let mut by_target: BTreeMap<String, Vec<(&String, &BTreeSet<String>)>> = BTreeMap::new();
        for (c, users) in wanted {
            by_target
                .entry(target_image(prefix, self.manifest.images.naming, c))
                .or_default()
                .push((c, users));
        }
        for (target, list) in &by_target {
            if list.len() > 1 {
                let detail = list
                    .iter()
                    .map(|(c, users)| {
                        format!(
                            "`{c}` (used by {})",
                            users.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" and ");
                self.problems.push(Problem {
                    what: format!("target `{target}`"),
                    message: format!(
                        "two different upstream images would land on it: {detail}; use naming=\"nested\" in `images`, or pin both to one image"
                    ),
                });
            }
        }
    }

    /// Records the manifest's `platforms` and what lands of each image under them
    /// ([`super::platforms`]); nothing more once resolution has failed.
    async fn land_images(&mut self, lock: &mut Lockfile) {
        let m = self.manifest;
        lock.platforms =
            super::platforms::normalized(m.images.platforms.iter().map(|p| p.value.clone()));
        if !self.problems.is_empty() {
            return;
        }
        let (mirrors, jobs) = (m.oci_mirrors(), self.jobs);
        let client = || {
            crate::oci::Client::new(crate::oci::ClientConfig {
                mirrors,
                jobs,
                ..Default::default()
            })
        };
        let landed = super::platforms::land(lock, self.previous, client, self.mode, jobs).await;
        self.resolved += landed.resolved;
        self.problems.extend(landed.problems);
        self.unsatisfied.extend(landed.unsatisfied);
    }

    async fn collect_images(
        &mut self,
        units: &[Unit],
        lock: &mut Lockfile,
        stats: &mut Stats,
    ) -> Result<(), LockError> {
        let m = self.manifest;
        let (wanted, problems) = wanted_images(m, units);
        self.problems.extend(problems);
        stats.images = wanted.len();

        // Two upstream images on one target reference: an error naming both.
        let prefix = match crate::oci::naming::TargetPrefix::parse(&lock.target.prefix) {
            Ok(p) => p,
            Err(e) => {
                self.problems.push(Problem {
                    what: "the target".into(),
                    message: e.to_string(),
                });
                return Ok(());
            }
        };
        let users = wanted.iter().map(|(c, w)| (c, &w.users));
        self.target_collisions(&prefix, users);
        if !self.problems.is_empty() {
            return Ok(());
        }

        // Keep pins; resolve the rest, all at once.
        let mut to_resolve: Vec<(String, String)> = Vec::new(); // (key, what)
        for (c, w) in &wanted {
            let target = target_image(&prefix, m.images.naming, c);
            let previous = self.previous.and_then(|l| l.images.get(c));
            let owned = w.owners.iter().map(String::as_str);
            let prev = match self.pin_or_resolve(previous, |p| p.resolved.is_some(), owned) {
                Pin::Keep(p) => p.resolved.clone(),
                Pin::Resolve { .. } => None,
            };
            if prev.is_none() {
                let users: Vec<&str> = w.users.iter().map(String::as_str).take(2).collect();
                to_resolve.push((
                    c.clone(),
                    format!("image `{c}` (used by {})", users.join("; ")),
                ));
            }
            lock.images.insert(
                c.clone(),
                LockedImage {
                    written: w.written.clone(),
                    target,
                    resolved: prev,
                },
            );
        }
        if to_resolve.is_empty() {
            return Ok(());
        }
        if self.mode == Mode::Locked {
            for (_, what) in to_resolve {
                self.unsatisfied(what, "has no digest in the lock");
            }
            return Ok(());
        }
        progress(format!("{} images", to_resolve.len()));
        let client = crate::oci::Client::new(crate::oci::ClientConfig {
            mirrors: m.oci_mirrors(),
            jobs: self.jobs,
            ..Default::default()
        });
        let refs: Vec<crate::oci::reference::ImageRef> = to_resolve
            .iter()
            .filter_map(|(k, _)| crate::oci::reference::ImageRef::parse(k).ok())
            .collect();
        let results = client.resolve_all(&refs).await;
        for ((key, what), result) in to_resolve.into_iter().zip(results) {
            match result {
                Ok(r) => {
                    self.resolved += 1;
                    if let Some(entry) = lock.images.get_mut(&key) {
                        entry.resolved = Some(resolved_digest(r));
                    }
                }
                Err(e) => self.problems.push(Problem {
                    what,
                    message: e.to_string(),
                }),
            }
        }
        Ok(())
    }
}

/// An image the lock needs: as written, who uses it, and who owns its pin.
struct Wanted {
    written: BTreeSet<String>,
    users: BTreeSet<String>,
    /// Names `--update` matches (stacks, samples).
    owners: BTreeSet<String>,
}

/// Every image the units, `images { include }` and the index image's base name, by
/// canonical reference; and the problems of those that name no image.
fn wanted_images(m: &Manifest, units: &[Unit]) -> (BTreeMap<String, Wanted>, Vec<Problem>) {
    let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
    let mut add = |c: String, written: &str, user: String, owner: Option<&str>| {
        let e = wanted.entry(c).or_insert_with(|| Wanted {
            written: BTreeSet::new(),
            users: BTreeSet::new(),
            owners: BTreeSet::new(),
        });
        e.written.insert(written.to_string());
        e.users.insert(user);
        if let Some(o) = owner {
            e.owners.insert(o.to_string());
        }
    };
    let mut problems = Vec::new();
    for u in units {
        for img in &u.images {
            let what = format!(
                "image `{}` in {} of {} (source `{}`)",
                img.written, img.place, u.label, u.source
            );
            if img.resolved.contains("{{") || img.resolved.contains('$') {
                problems.push(Problem {
                    what,
                    message: "it uses a variable that has no value".into(),
                });
                continue;
            }
            match canonical_image(&img.resolved) {
                Ok(c) => add(
                    c,
                    &img.written,
                    format!("{} {}", u.label, img.place),
                    Some(&u.name),
                ),
                Err(message) => problems.push(Problem { what, message }),
            }
        }
    }
    for inc in &m.images.include {
        if let Ok(c) = canonical_image(&inc.value) {
            add(c, &inc.value, "images { include }".into(), None);
        }
    }
    if let Ok(c) = canonical_image(&m.index_image.base.value) {
        add(
            c,
            &m.index_image.base.value,
            "index-image base".into(),
            None,
        );
    }
    for (role, image) in m.deploy.iter().flat_map(|d| &d.images) {
        if let Ok(c) = canonical_image(image) {
            add(c, image, format!("deploy {role}"), Some(DEPLOY_OWNER));
        }
    }
    (wanted, problems)
}

/// A resolved image as the lock records it.
fn resolved_digest(r: crate::oci::ResolvedImage) -> ResolvedDigest {
    ResolvedDigest {
        digest: r.digest.to_string(),
        media_type: r.media_type,
        size: r.size,
        filtered: None,
        config_platform: None,
        platforms: r
            .platforms
            .into_iter()
            .map(|p| {
                (
                    p.platform,
                    PlatformDigest {
                        digest: p.digest.to_string(),
                        media_type: p.media_type,
                        size: p.size,
                    },
                )
            })
            .collect(),
    }
}

/// What a source's folder (or commit) holds: its stacks and samples as discovered, each
/// stack version's unit and lock entry, and the hash of `extraDevfileEntries.yaml`.
#[allow(clippy::type_complexity)]
fn read_stacks(
    name: &str,
    samples: bool,
    files: &Files<'_>,
) -> Result<(Discovered, Vec<Unit>, (StackEntries, Option<String>)), LockError> {
    let discovered = discover::discover(name, files, samples).map_err(|e| LockError::Source {
        what: format!("cannot read the stacks of source `{name}`"),
        cause: Box::new(e),
    })?;
    let mut units = Vec::new();
    let mut entries = Vec::new();
    let read_err = |e: crate::source::FilesError| LockError::Source {
        what: format!("cannot read source `{name}`"),
        cause: Box::new(e),
    };
    for stack in &discovered.stacks {
        let stack_yaml = if stack.multi_version {
            files
                .read(&format!("stacks/{}/stack.yaml", stack.name))
                .map_err(read_err)?
                .map(|b| blake3::hash(&b).to_hex().to_string())
        } else {
            None
        };
        for v in &stack.versions {
            let (unit, mut entry) = read_stack_version(name, stack, v, files)?;
            entry.stack_yaml = stack_yaml.clone();
            units.push(unit);
            entries.push(((v.id.clone(), stack.name.clone()), entry));
        }
    }
    let extra = if samples && !discovered.samples.is_empty() {
        files
            .read(discover::EXTRA_ENTRIES)
            .map_err(read_err)?
            .map(|b| blake3::hash(&b).to_hex().to_string())
    } else {
        None
    };
    Ok((discovered, units, (entries, extra)))
}

/// Each stack version's lock entry, keyed by (version id, stack name).
type StackEntries = Vec<((String, String), LockedStack)>;

/// A sample's devfile (`devfile.yaml` or `.devfile.yaml` in `sub_dir`) read into its unit,
/// with the devfile's hash. The inner error is a problem of the sample, not of reading.
fn read_sample(
    files: &Files<'_>,
    sub_dir: Option<String>,
    label: String,
    source_name: String,
    sample_name: String,
    owner: String,
) -> Result<Result<(Unit, String), String>, LockError> {
    let dir = sub_dir.clone().unwrap_or_default();
    let join = |n: &str| {
        if dir.is_empty() {
            n.to_string()
        } else {
            format!("{dir}/{n}")
        }
    };
    let (path, bytes) = match files
        .read(&join("devfile.yaml"))
        .map_err(|e| LockError::Source {
            what: format!("cannot read {label}"),
            cause: Box::new(e),
        })? {
        Some(b) => (join("devfile.yaml"), b),
        None => match files
            .read(&join(".devfile.yaml"))
            .map_err(|e| LockError::Source {
                what: format!("cannot read {label}"),
                cause: Box::new(e),
            })? {
            Some(b) => (join(".devfile.yaml"), b),
            None => {
                return Ok(Err(format!(
                    "its repository has no devfile.yaml{}",
                    if dir.is_empty() {
                        String::new()
                    } else {
                        format!(" in `{dir}`")
                    }
                )));
            }
        },
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let d = match devfile::parse(&path, &text) {
        Ok(d) => d,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let unit = Unit {
        source: source_name,
        owner,
        name: sample_name,
        label,
        images: d.images(),
        projects: d
            .starter_projects()
            .into_iter()
            .map(|p| (ProjectKind::Starter, p))
            .chain(d.projects().into_iter().map(|p| (ProjectKind::Project, p)))
            .collect(),
        parent: d.parent(),
        icons: d.icon().into_iter().filter(|i| is_remote(i)).collect(),
        files: d.metadata_files().into_iter().map(|(_, u)| u).collect(),
    };
    Ok(Ok((unit, blake3::hash(&bytes).to_hex().to_string())))
}

/// Reads one stack version: hashes, and the references of its devfile and Dockerfiles.
fn read_stack_version(
    source: &str,
    stack: &discover::Stack,
    v: &discover::StackVersion,
    files: &Files<'_>,
) -> Result<(Unit, LockedStack), LockError> {
    let label = match &v.version_dir {
        Some(ver) => format!("stack `{}` {ver}", stack.name),
        None => format!("stack `{}`", stack.name),
    };
    let src_err = |e: crate::source::FilesError| LockError::Source {
        what: format!("cannot read {label} of source `{source}`"),
        cause: Box::new(e),
    };
    let path = v.devfile_path();
    let bytes = files.read(&path).map_err(src_err)?.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let d = devfile::parse(&path, &text).map_err(|e| LockError::Source {
        what: format!("cannot read {label} of source `{source}`"),
        cause: Box::new(e),
    })?;
    let mut images = d.images();
    let mut file_hashes = BTreeMap::new();
    for f in &v.packed {
        let full = format!("{}/{}", v.dir, f.path);
        let content = match f.kind {
            crate::git::FileKind::Symlink => files.read_link(&full).map_err(src_err)?,
            _ => files.read(&full).map_err(src_err)?,
        }
        .unwrap_or_default();
        file_hashes.insert(f.path.clone(), blake3::hash(&content).to_hex().to_string());
        let file_name = f.path.rsplit('/').next().unwrap_or(&f.path);
        if devfile::is_dockerfile(file_name) && !matches!(f.kind, crate::git::FileKind::Symlink) {
            let text = String::from_utf8_lossy(&content);
            for from in devfile::dockerfile_froms(&text) {
                images.push(ImageUse {
                    written: from.written,
                    resolved: from.resolved,
                    place: format!("{}:{}", f.path, from.line),
                });
            }
        }
    }
    let mut projects: Vec<(ProjectKind, ProjectRef)> = d
        .starter_projects()
        .into_iter()
        .map(|p| (ProjectKind::Starter, p))
        .collect();
    projects.extend(d.projects().into_iter().map(|p| (ProjectKind::Project, p)));
    let mut icons: Vec<String> = d.icon().into_iter().filter(|i| is_remote(i)).collect();
    if v.default
        && let Some(i) = &stack.icon
        && is_remote(i)
    {
        icons.push(i.clone());
    }
    icons.dedup();
    let unit = Unit {
        source: source.to_string(),
        owner: v.id.clone(),
        name: stack.name.clone(),
        label,
        images,
        projects,
        parent: d.parent(),
        icons,
        files: d.metadata_files().into_iter().map(|(_, u)| u).collect(),
    };
    let uses = unit.uses();
    Ok((
        unit,
        LockedStack {
            devfile: blake3::hash(&bytes).to_hex().to_string(),
            files: file_hashes,
            uses,
            stack_yaml: None,
        },
    ))
}

fn is_remote(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// A checkout's failure, worded by the step that failed.
fn checkout_error(e: CheckoutError, url: &str, commit: &str) -> LockError {
    match e {
        CheckoutError::BadCommit { commit, source } => LockError::Source {
            what: format!("`{commit}` is not a commit id"),
            cause: Box::new(crate::git::GitError::Read {
                commit: commit.clone(),
                path: String::new(),
                message: source.message().to_string(),
            }),
        },
        CheckoutError::Fetch(e) => LockError::Source {
            what: format!("cannot fetch commit {commit} of `{url}`"),
            cause: Box::new(e),
        },
        CheckoutError::Read(e) => LockError::Source {
            what: format!("cannot read commit {commit} of `{url}`"),
            cause: Box::new(e),
        },
        CheckoutError::Task(e) => LockError::Resolve {
            problems: vec![Problem {
                what: "a background task".into(),
                message: e.to_string(),
            }],
        },
    }
}

fn describe(e: &LockError) -> String {
    match e {
        LockError::Source { what, cause } => format!("{what}: {cause}"),
        other => other.to_string(),
    }
}

/// Entries the previous lock has that this resolution no longer needs (or that differ): for
/// `--locked`, the lock must equal what resolution would write.
fn compare_entries(prev: &Lockfile, now: &Lockfile, out: &mut Vec<Problem>) {
    if prev.target != now.target {
        out.push(Problem {
            what: "the target".into(),
            message: format!(
                "differs: the lock was made for `{}` (naming {}), the manifest asks for `{}` (naming {})",
                prev.target.prefix, prev.target.naming, now.target.prefix, now.target.naming
            ),
        });
    }
    if prev.platforms != now.platforms {
        out.push(Problem {
            what: "images { platforms }".into(),
            message: format!(
                "differs: the lock was made for {}, the manifest asks for {}",
                super::platforms::shown(&prev.platforms),
                super::platforms::shown(&now.platforms)
            ),
        });
    }
    if prev.index_image != now.index_image {
        out.push(Problem {
            what: "index-image".into(),
            message: "differs between the manifest and the lock".into(),
        });
    }
    if prev.deploy != now.deploy {
        out.push(Problem {
            what: "deploy".into(),
            message: "differs between the manifest and the lock".into(),
        });
    }
    for ((s, id), _) in prev
        .stacks
        .iter()
        .filter(|(k, _)| !now.stacks.contains_key(k))
    {
        out.push(Problem {
            what: format!("stack `{id}` of source `{s}`"),
            message: "is in the lock but no longer in the sources".into(),
        });
    }
    for ((s, id), v) in &now.stacks {
        match prev.stacks.get(&(s.clone(), id.clone())) {
            None => out.push(Problem {
                what: format!("stack `{id}` of source `{s}`"),
                message: "is not in the lock".into(),
            }),
            Some(p) if p != v => out.push(Problem {
                what: format!("stack `{id}` of source `{s}`"),
                message: if p.devfile != v.devfile {
                    "has a different devfile than the lock records".into()
                } else {
                    "has different packed files than the lock records".into()
                },
            }),
            _ => {}
        }
    }
    for k in prev
        .projects
        .keys()
        .filter(|k| !now.projects.contains_key(*k))
    {
        out.push(Problem {
            what: format!("{} `{}` of `{}`", k.kind.node_name(), k.name, k.owner),
            message: "is in the lock but no longer in the devfiles".into(),
        });
    }
    for (img, v) in &now.images {
        match prev.images.get(img) {
            None => out.push(Problem {
                what: format!("image `{img}`"),
                message: "is not in the lock".into(),
            }),
            Some(p) if p.target != v.target => out.push(Problem {
                what: format!("image `{img}`"),
                message: format!("would land at `{}`, the lock says `{}`", v.target, p.target),
            }),
            _ => {}
        }
    }
    for img in prev.images.keys().filter(|k| !now.images.contains_key(*k)) {
        out.push(Problem {
            what: format!("image `{img}`"),
            message: "is in the lock but no devfile uses it".into(),
        });
    }
}

/// The name `airgap lock --update NAME` moves the deployment's images by (the sidecar,
/// viewer and operator images are pinned like any image, kept until asked).
pub const DEPLOY_OWNER: &str = "deploy";

/// The normalized form of an image reference, used as its key.
pub fn canonical_image(s: &str) -> Result<String, String> {
    crate::oci::reference::ImageRef::parse(s)
        .map(|r| r.to_string())
        .map_err(|e| e.reason)
}

/// Where an upstream image (a lock key) lands under the target prefix.
pub fn target_image(
    prefix: &crate::oci::naming::TargetPrefix,
    naming: crate::manifest::Naming,
    canonical: &str,
) -> String {
    match crate::oci::reference::ImageRef::parse(canonical) {
        Ok(r) => {
            let t = prefix.target_for(&r, naming);
            match (t.tag.is_none(), r.digest()) {
                (true, Some(d)) => format!("{t}@{d}"),
                _ => t.to_string(),
            }
        }
        Err(_) => canonical.to_string(),
    }
}
