//! What every step runs with: the [`Ctx`] (manifest, lock, workspace caches, where outputs go,
//! the registry client) and what a step returns, [`StepOutput`].
//!
//! It sits below both the engine ([`crate::exec`], which runs steps) and the steps
//! ([`crate::steps`], which use it), so neither imports the other's layer upward.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::fetch::Fetcher;
use crate::git::GitCache;
use crate::lock::Lockfile;
use crate::manifest::Manifest;
use crate::state::Record;
use crate::workspace::Workspace;

/// What a step produced: named output digests and the files it wrote (relative to the
/// output root) with their sizes.
#[derive(Debug, Clone, Default)]
pub struct StepOutput {
    pub outputs: BTreeMap<String, String>,
    pub files: BTreeMap<String, u64>,
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
}
