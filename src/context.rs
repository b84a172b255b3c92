//! What every step runs with: the [`Ctx`] (manifest, lock, workspace caches, where outputs go,
//! the registry client), built once from a [`Mode`]. Steps never test the mode: what differs
//! between modes is decided here (where outputs go, where images land, whether a built image
//! is pushed) and in the engine (which steps an audit replays).
//!
//! It sits below both the engine ([`crate::exec`], which runs steps) and the steps
//! ([`crate::steps`], which use it), so neither imports the other's layer upward.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::fetch::Fetcher;
use crate::git::GitCache;
use crate::lock::Lockfile;
use crate::manifest::Manifest;
use crate::state::Recorded;
use crate::workspace::Workspace;

/// What apply writes into, as far as step keys are concerned: the same image copied into the
/// target registry or into a bundle for it are two different outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// The manifest's target.
    #[default]
    Target,
    /// A sneakernet bundle for the manifest's registry target (`apply --bundle`).
    Bundle,
}

/// What a run writes.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    /// The manifest's target.
    #[default]
    Target,
    /// `apply --bundle DIR`: the registry target's images go into an OCI layout at DIR
    /// (absolute), which is also the output root.
    Bundle(PathBuf),
    /// `airgap audit`: the tree is rebuilt in `scratch`, images are read from the real
    /// target, built images are not pushed, and copies are replayed from `records` (what apply
    /// recorded).
    Audit {
        scratch: PathBuf,
        records: BTreeMap<String, Recorded>,
    },
}

/// [`Ctx::state_dir`] of a context for `ws` writing the target, or the bundle at `bundle`
/// (absolute), known before the context is: a command may load the state while it builds
/// the plan.
pub fn state_dir(ws: &Workspace, bundle: Option<&std::path::Path>) -> PathBuf {
    match bundle {
        None => ws.root.clone(),
        Some(dir) => {
            let key = blake3::hash(dir.as_os_str().as_encoded_bytes()).to_hex();
            ws.root.join("bundles").join(&key.as_str()[..16])
        }
    }
}

/// Everything steps need; shared by all of them.
pub struct Ctx {
    pub manifest: Manifest,
    pub lock: Lockfile,
    pub ws: Workspace,
    pub git: GitCache,
    /// Git commits' files: the cache, the mirror rules and a lock per remote.
    pub checkouts: crate::checkout::Checkouts,
    pub fetcher: Fetcher,
    mode: Mode,
    /// Where the registry tree (and, for a `dir:` target or a bundle, the OCI layout) is
    /// written.
    out_root: PathBuf,
    /// The `dir:` target's folder, where its OCI layout is: `out_root` except during an audit.
    target_root: PathBuf,
    pub jobs: usize,
    oci: tokio::sync::OnceCell<(crate::oci::Client, crate::oci::Destination)>,
    /// The output folder's layout as apply's output check read it ([`Ctx::adopt_layout`]),
    /// until [`Ctx::oci`] takes it instead of reading `index.json` again.
    checked_layout: std::sync::Mutex<Option<crate::oci::layout::Layout>>,
    progress: crate::oci::progress::Progress,
}

impl Ctx {
    pub fn new(manifest: Manifest, lock: Lockfile, jobs: usize, mode: Mode) -> Ctx {
        let ws = Workspace::new(&manifest);
        let target_root = match &manifest.target.kind {
            crate::manifest::TargetKind::Dir { path, .. } => manifest.resolve_path(path),
            crate::manifest::TargetKind::Registry { .. } => ws.root.join("build"),
        };
        let (out_root, target_root) = match &mode {
            Mode::Target => (target_root.clone(), target_root),
            Mode::Bundle(dir) => (dir.clone(), dir.clone()),
            Mode::Audit { scratch, .. } => (scratch.clone(), target_root),
        };
        Ctx {
            git: ws.git_cache(),
            checkouts: crate::checkout::Checkouts::new(
                ws.git_cache(),
                manifest.url_mirrors.clone(),
            ),
            fetcher: Fetcher::new(
                manifest.url_mirrors.clone(),
                manifest.url_credentials.clone(),
                ws.files_cache(),
            ),
            manifest,
            lock,
            ws,
            mode,
            target_root,
            out_root,
            jobs: jobs.max(1),
            oci: tokio::sync::OnceCell::new(),
            checked_layout: std::sync::Mutex::new(None),
            progress: crate::oci::progress::Progress::hidden(),
        }
    }

    /// The same context reporting image copies through `progress` (before any use).
    pub fn with_progress(mut self, progress: crate::oci::progress::Progress) -> Ctx {
        self.progress = progress;
        self
    }

    /// Where the registry tree is written.
    pub fn out_root(&self) -> &std::path::Path {
        &self.out_root
    }

    /// The bundle this context writes, if any.
    pub fn bundle_dir(&self) -> Option<&std::path::Path> {
        match &self.mode {
            Mode::Bundle(dir) => Some(dir),
            _ => None,
        }
    }

    /// Whether images land in a layout on this machine (a `dir:` target's or a bundle's), so
    /// that checking one is reading files, not a request to a registry.
    pub fn images_are_local(&self) -> bool {
        self.bundle_dir().is_some()
            || matches!(
                self.manifest.target.kind,
                crate::manifest::TargetKind::Dir { .. }
            )
    }

    /// What the plan's keys name as the output.
    pub fn output(&self) -> Output {
        match self.mode {
            Mode::Bundle(_) => Output::Bundle,
            _ => Output::Target,
        }
    }

    /// What apply recorded for the step named `name` (`describe` in words), when this run
    /// replays copies instead of making them (an audit).
    pub fn replayed(&self, name: &str, describe: &str) -> Option<Result<Recorded, String>> {
        match &self.mode {
            Mode::Audit { records, .. } => Some(
                records
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("{describe} was never applied")),
            ),
            _ => None,
        }
    }

    /// Where the state of this output lives: the workspace for the target; for a bundle, a
    /// folder of the workspace named after the bundle's path, so that the target's records
    /// and each bundle's never stand in for one another.
    pub fn state_dir(&self) -> PathBuf {
        state_dir(&self.ws, self.bundle_dir())
    }

    /// Keeps the layout of the output folder that apply's output check opened read-only, for
    /// [`Ctx::oci`] to write through (made writable then) instead of parsing `index.json` a
    /// second time; at a few thousand stacks it is megabytes. A layout of another folder is
    /// ignored.
    pub fn adopt_layout(&self, layout: crate::oci::layout::Layout) {
        *self
            .checked_layout
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(layout);
    }

    /// The layout images land in when they land in one (a `dir:` target's or a bundle's):
    /// the adopted one when it is of that folder, else opened (and created) now.
    fn open_layout(&self, dir: &std::path::Path) -> Result<crate::oci::layout::Layout, String> {
        let checked = self
            .checked_layout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match checked {
            Some(layout) if layout.dir() == dir => {
                layout.make_writable().map_err(|e| e.to_string())?;
                Ok(layout)
            }
            _ => crate::oci::layout::Layout::open(dir).map_err(|e| e.to_string()),
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
                    _ if self.bundle_dir().is_some() => {
                        crate::oci::Destination::Layout(Arc::new(self.open_layout(&self.out_root)?))
                    }
                    crate::manifest::TargetKind::Dir { .. } => crate::oci::Destination::Layout(
                        Arc::new(self.open_layout(&self.target_root)?),
                    ),
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
}

impl Ctx {
    /// Pushes an image built here to `target`; returns its digest. An audit builds to compare
    /// and never writes to the target: it only computes the digest.
    pub async fn push_built(
        &self,
        image: &crate::oci::LocalImage,
        target: &crate::oci::naming::TargetRef,
    ) -> Result<crate::oci::digest::Digest, String> {
        if matches!(self.mode, Mode::Audit { .. }) {
            return Ok(crate::oci::digest::Digest::of(&image.manifest));
        }
        let (client, destination) = self.oci().await?;
        let outcome = client.push_image(image, target, destination).await;
        outcome.map(|o| o.digest).map_err(|e| e.to_string())
    }
}
