//! The engine: resolution of references to digests, and copies by digest from a registry, a
//! layout or local files to a registry or a layout.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use tokio::sync::Semaphore;

use super::auth::Credentials;
use super::digest::{Digest, Mismatch, Verifier};
use super::error::OciError;
use super::layout::{Layout, LayoutImage};
use super::media::{self, Descriptor, Parsed, Platforms};
use super::mirror::{Endpoint, Mirrors, RegistryAccess, RegistryMirror, Upstream};
use super::naming::TargetRef;
use super::progress::{ImageProgress, Progress, Verbs};
use super::reference::ImageRef;
use super::registry::{Registry, Transports};
use super::retry::RetryPolicy;

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub mirrors: Vec<RegistryMirror>,
    pub credentials: Credentials,
    /// Requests in flight at once: manifests resolved, images copied, blobs transferred.
    pub jobs: usize,
    pub retry: RetryPolicy,
    pub progress: Progress,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            mirrors: Vec::new(),
            credentials: Credentials::from_environment(),
            jobs: 8,
            retry: RetryPolicy::default(),
            progress: Progress::hidden(),
        }
    }
}

/// What a reference resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The reference asked for, pinned to `digest`.
    pub image: ImageRef,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// One entry per platform manifest of an index (attestations left out); empty for a
    /// single manifest.
    pub platforms: Vec<PlatformManifest>,
}

/// One platform's manifest in an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformManifest {
    /// `os/arch[/variant]`, e.g. `linux/arm64/v8`.
    pub platform: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// What lands for an upstream image under a platform filter (see [`Client::landing`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Landing {
    /// The index that lands instead of the upstream one; `None` when the upstream one does.
    pub filtered: Option<FilteredIndex>,
    /// A single manifest's platform (`os/arch[/variant]`) as its config says; `None` for an
    /// index, or a config that names none.
    pub config_platform: Option<String>,
}

/// An index filtered by `platforms`: its digest, size and media type, and the platforms it
/// keeps (attestations left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredIndex {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub platforms: Vec<String>,
}

/// The largest image config read to learn its platform.
const MAX_CONFIG: u64 = 4 << 20;

/// Where copies land.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A registry, reached as given (for a bundle, `--to` changes only this).
    Registry(RegistryAccess),
    /// An OCI image layout shared by all images (see [`Layout`] for the naming convention).
    Layout(Arc<Layout>),
}

impl Destination {
    /// The image `repository[:tag]` at this destination, in words for progress and errors:
    /// on a registry, `host/repository:tag`; in a layout, `repository:tag in layout DIR`,
    /// with the layout's folder as the user would type it (relative to the current folder
    /// when it is under it). Never the `address=` a `dir:` target's devfiles name: nothing is
    /// sent there.
    fn name_of(&self, target: &TargetRef) -> String {
        match self {
            Destination::Registry(_) => target.to_string(),
            Destination::Layout(layout) => {
                let name = match &target.tag {
                    Some(tag) => format!("{}:{tag}", target.repository),
                    None => target.repository.clone(),
                };
                format!("{name} in layout {}", folder_name(layout.dir()))
            }
        }
    }
}

/// `dir` relative to the current folder when it is under it (`out`, `.`), else as it is.
fn folder_name(dir: &std::path::Path) -> String {
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| dir.strip_prefix(cwd).ok().map(std::path::Path::to_path_buf));
    match relative {
        Some(r) if r.as_os_str().is_empty() => ".".to_string(),
        Some(r) => r.display().to_string(),
        None => dir.display().to_string(),
    }
}

/// One image to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    /// The upstream image, pinned to a digest (copies never go by tag).
    pub source: ImageRef,
    /// Its name on the target; the host part is not used to send bytes (see [`Destination`]).
    pub target: TargetRef,
    pub platforms: Platforms,
}

/// Counts of one copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Blobs whose bytes were sent (registry) or written (layout).
    pub blobs_uploaded: u64,
    /// Blobs the target already had.
    pub blobs_skipped: u64,
    /// Blobs mounted from another repository of the same target registry.
    pub blobs_mounted: u64,
    pub bytes_uploaded: u64,
    pub manifests_pushed: u64,
}

/// What landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOutcome {
    /// The digest of the top manifest at the target: the upstream digest, or that of the
    /// filtered index when the platforms filter kept a subset.
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub stats: CopyStats,
    /// The top manifest's bytes when the copy had them in hand: those it pushed, or those
    /// the target answered its presence check with (`None` when a layout already held it).
    pub manifest: Option<Bytes>,
}

/// An image built here (the devfile-index image, stack artifacts): manifest bytes plus the
/// blobs it needs. Blobs the manifest names but `blobs` lacks must already be at the
/// destination, or in one of `mount_from` (repositories of the target registry), or in `base`.
/// For an index, the child manifests built here go in `blobs` (as bytes).
#[derive(Debug, Clone)]
pub struct LocalImage {
    pub manifest: Bytes,
    pub media_type: String,
    pub blobs: Vec<LocalBlob>,
    pub mount_from: Vec<String>,
    /// An upstream image (pinned) whose repository holds the remaining blobs.
    pub base: Option<ImageRef>,
}

#[derive(Debug, Clone)]
pub struct LocalBlob {
    pub digest: Digest,
    pub size: u64,
    pub data: BlobData,
}

#[derive(Debug, Clone)]
pub enum BlobData {
    Bytes(Bytes),
    File(std::path::PathBuf),
}

/// The image layer's entry point: one per run, shared by every resolution and copy so that
/// connections, tokens and the knowledge of which target repository holds which blob are
/// reused.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci::Client(jobs={})", self.inner.jobs)
    }
}

struct Inner {
    mirrors: Mirrors,
    credentials: Credentials,
    registries: Mutex<HashMap<RegistryAccess, Arc<Registry>>>,
    /// The HTTP clients, one per TLS set-up, shared by the registries.
    transports: Arc<Transports>,
    /// Mirror layouts (`registry-mirror … to="dir:…"`), opened once per run.
    mirror_layouts: Mutex<HashMap<std::path::PathBuf, Arc<Layout>>>,
    jobs: usize,
    transfers: Semaphore,
    retry: RetryPolicy,
    progress: Progress,
    /// (target host, digest) → repositories known to hold the blob in this run.
    known: Mutex<HashMap<(String, Digest), BTreeSet<String>>>,
    /// One transfer per (target, digest) at a time, so the second waits and mounts.
    blob_locks: Mutex<HashMap<(String, Digest), BlobLock>>,
}

type BlobLock = Arc<tokio::sync::Mutex<()>>;

#[derive(Default)]
struct Stats {
    uploaded: AtomicU64,
    skipped: AtomicU64,
    mounted: AtomicU64,
    bytes: AtomicU64,
    manifests: AtomicU64,
}

impl Stats {
    fn snapshot(&self) -> CopyStats {
        CopyStats {
            blobs_uploaded: self.uploaded.load(Ordering::Relaxed),
            blobs_skipped: self.skipped.load(Ordering::Relaxed),
            blobs_mounted: self.mounted.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes.load(Ordering::Relaxed),
            manifests_pushed: self.manifests.load(Ordering::Relaxed),
        }
    }
}

enum Source<'a> {
    Registry {
        registry: Arc<Registry>,
        repository: String,
    },
    Layout(&'a Layout),
    /// A `registry-mirror` in an OCI image layout.
    Mirror(Arc<Layout>),
    Local {
        image: &'a LocalImage,
        fallback: Option<Box<Source<'a>>>,
    },
}

enum Dest<'a> {
    Registry {
        registry: Arc<Registry>,
        repository: String,
    },
    Layout {
        layout: &'a Layout,
        repository: String,
    },
}

impl Dest<'_> {
    fn key(&self, digest: &Digest) -> (String, Digest) {
        match self {
            Dest::Registry { registry, .. } => (registry.host.clone(), digest.clone()),
            Dest::Layout { layout, .. } => {
                (format!("layout:{}", layout.dir().display()), digest.clone())
            }
        }
    }
}

/// The top manifest of a copy.
struct Top {
    bytes: Bytes,
    media_type: String,
    digest: Digest,
}

impl Client {
    /// A client; the HTTP clients (and with them the TLS set-up, which reads the system's CA
    /// bundle) are built on a registry's first call, one per TLS set-up, so a run that only
    /// reads OCI layouts never sets up TLS.
    pub fn new(config: ClientConfig) -> Self {
        let jobs = config.jobs.max(1);
        Client {
            inner: Arc::new(Inner {
                mirrors: Mirrors::new(config.mirrors),
                credentials: config.credentials,
                registries: Mutex::new(HashMap::new()),
                transports: Arc::default(),
                mirror_layouts: Mutex::new(HashMap::new()),
                jobs,
                transfers: Semaphore::new(jobs),
                retry: config.retry,
                progress: config.progress,
                known: Mutex::new(HashMap::new()),
                blob_locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Where `image` is fetched from (mirrors applied).
    pub fn endpoint(&self, image: &ImageRef) -> Endpoint {
        self.inner.mirrors.endpoint(image)
    }

    fn registry(&self, access: &RegistryAccess) -> Result<Arc<Registry>, OciError> {
        let mut map = self
            .inner
            .registries
            .lock()
            .map_err(|_| OciError::Connection {
                host: access.host.clone(),
                action: "set up a connection".into(),
                message: "an earlier task panicked".into(),
            })?;
        if let Some(r) = map.get(access) {
            return Ok(r.clone());
        }
        let r = Arc::new(Registry::new(
            access,
            self.inner.credentials.clone(),
            self.inner.transports.clone(),
        ));
        map.insert(access.clone(), r.clone());
        Ok(r)
    }

    /// The registries no connection could be made to in this run, each with its error
    /// (see [`OciError::Unreachable`]), sorted by host.
    pub fn unreachable(&self) -> Vec<OciError> {
        let mut out: Vec<OciError> = match self.inner.registries.lock() {
            Ok(map) => map.values().filter_map(|r| r.unreachable()).collect(),
            Err(_) => Vec::new(),
        };
        out.sort_by_key(|e| e.to_string());
        out.dedup_by_key(|e| e.to_string());
        out
    }

    /// Whether anything answers at `access` (one request, no credentials): for a command
    /// to stop with one error before it starts work the host would refuse.
    pub async fn check_reachable(&self, access: &RegistryAccess) -> Result<(), OciError> {
        self.registry(access)?.ping().await
    }

    /// A mirror layout, opened (read-only) on first use.
    fn mirror_layout(&self, dir: &std::path::Path) -> Result<Arc<Layout>, OciError> {
        let poisoned = || OciError::Layout {
            path: dir.to_path_buf(),
            reason: "an earlier task panicked".into(),
        };
        if let Some(l) = self
            .inner
            .mirror_layouts
            .lock()
            .map_err(|_| poisoned())?
            .get(dir)
        {
            return Ok(l.clone());
        }
        let layout = Arc::new(Layout::open_existing(dir)?);
        self.inner
            .mirror_layouts
            .lock()
            .map_err(|_| poisoned())?
            .entry(dir.to_path_buf())
            .or_insert(layout.clone());
        Ok(layout)
    }

    /// Where an upstream image's bytes come from.
    fn upstream_source(&self, endpoint: &Endpoint) -> Result<Source<'static>, OciError> {
        Ok(match &endpoint.upstream {
            Upstream::Registry(access) => Source::Registry {
                registry: self.registry(access)?,
                repository: endpoint.repository.clone(),
            },
            Upstream::Layout(dir) => Source::Mirror(self.mirror_layout(dir)?),
        })
    }

    /// Runs `attempt` under the retry policy, noting each retry of `what` on the progress
    /// display.
    async fn retrying<T, F, Fut>(&self, what: &str, attempt: F) -> Result<T, OciError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, OciError>>,
    {
        let note = |e: &OciError, n: u32| {
            self.inner
                .progress
                .note(format!("retrying {what} (attempt {}): {e}", n + 1))
        };
        self.inner.retry.run(note, attempt).await
    }

    /// Counts one more image and opens its progress line.
    fn start_image(&self, verbs: Verbs, what: String) -> ImageProgress {
        self.inner.progress.add_images(1);
        self.inner.progress.start(verbs, what)
    }

    // ------------------------------------------------------------------ resolution

    /// Resolves one reference: a GET of the manifest by tag (or by digest when pinned, which
    /// verifies the pin), the digest computed from the raw bytes and cross-checked with
    /// `Docker-Content-Digest`.
    ///
    /// From a mirror layout: the `index.json` entry whose `ref.name` is
    /// `<repository>:<tag>` (or the blob of a pinned digest), read and checked against its
    /// digest, so the result is the one the registry would give for the same bytes.
    pub async fn resolve(&self, image: &ImageRef) -> Result<ResolvedImage, OciError> {
        let endpoint = self.endpoint(image);
        let what = format!("{image}");
        let fetched = match &endpoint.upstream {
            Upstream::Registry(access) => {
                let registry = self.registry(access)?;
                self.retrying(&what, |_| {
                    registry.get_manifest(&endpoint.repository, image.reference())
                })
                .await?
            }
            Upstream::Layout(dir) => {
                let layout = self.mirror_layout(dir)?;
                self.layout_manifest(&layout, &endpoint, image).await?
            }
        };
        let digest = Digest::of(&fetched.bytes);
        if let Some(pinned) = image.digest() {
            expect_digest(pinned, &digest, || what.clone())?;
        }
        if let Some(reported) = &fetched.header_digest {
            expect_digest(reported, &digest, || {
                format!("{what} (the registry's Docker-Content-Digest)")
            })?;
        }
        let (media_type, parsed) =
            media::detect(&fetched.bytes, fetched.content_type.as_deref(), &what)?;
        let platforms = platform_manifests(&parsed);
        Ok(ResolvedImage {
            image: image.with_digest(digest.clone()),
            digest,
            media_type,
            size: fetched.bytes.len() as u64,
            platforms,
        })
    }

    /// A manifest of a mirror layout, as a registry GET would give it.
    async fn layout_manifest(
        &self,
        layout: &Layout,
        endpoint: &Endpoint,
        image: &ImageRef,
    ) -> Result<super::registry::FetchedManifest, OciError> {
        let (digest, media_type) = match (image.digest(), image.tag()) {
            (Some(pinned), _) => (pinned.clone(), None),
            (None, Some(tag)) => {
                let ref_name = format!("{}:{tag}", endpoint.repository);
                let entry =
                    layout
                        .find_ref(&ref_name)
                        .await?
                        .ok_or_else(|| OciError::NotFound {
                            what: format!(
                                "{image} (the OCI layout `{}` names no image `{ref_name}`)",
                                layout.dir().display()
                            ),
                        })?;
                (entry.digest, Some(entry.media_type))
            }
            (None, None) => {
                return Err(OciError::NotFound {
                    what: format!("{image} (no tag, no digest)"),
                });
            }
        };
        let bytes = layout.read_blob(&digest).await.map_err(|e| match e {
            OciError::NotFound { .. } => OciError::NotFound {
                what: format!(
                    "{image} (manifest {digest} is not in the OCI layout `{}`)",
                    layout.dir().display()
                ),
            },
            other => other,
        })?;
        Ok(super::registry::FetchedManifest {
            bytes,
            content_type: media_type,
            header_digest: Some(digest),
        })
    }

    /// What lands at a target for the upstream image `image` (pinned) under `platforms`,
    /// as the copy would land it ([`media::land_index`]): for an index, the filtered index
    /// (or `None` when it lands whole); for a single manifest, the platform its config names.
    /// What `airgap lock` records when the manifest sets `platforms`.
    pub async fn landing(
        &self,
        image: &ImageRef,
        platforms: &Platforms,
    ) -> Result<Landing, OciError> {
        let pinned = image.digest().ok_or_else(|| OciError::Unpinned {
            image: image.to_string(),
        })?;
        let what = image.to_string();
        let endpoint = self.endpoint(image);
        let source = self.upstream_source(&endpoint)?;
        let bytes = self.source_manifest(&source, pinned, &what).await?;
        let (media_type, parsed) = media::detect(&bytes, None, &what)?;
        match parsed {
            Parsed::Index { manifests } => {
                let filtered = match media::land_index(&bytes, &manifests, platforms, &what)? {
                    media::IndexLanding::Whole => None,
                    media::IndexLanding::Filtered { keep, bytes } => Some(FilteredIndex {
                        digest: Digest::of(&bytes),
                        size: bytes.len() as u64,
                        media_type,
                        platforms: keep
                            .iter()
                            .filter(|d| media::attestation_subject(d).is_none())
                            .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                            .collect(),
                    }),
                };
                Ok(Landing {
                    filtered,
                    config_platform: None,
                })
            }
            Parsed::Image { config, .. } => {
                let config_what = format!("the config {} of {what}", config.digest);
                let raw = match &source {
                    Source::Registry {
                        registry,
                        repository,
                    } => {
                        self.registry_small_blob(
                            registry,
                            repository,
                            &config.digest,
                            MAX_CONFIG,
                            &config_what,
                        )
                        .await?
                    }
                    Source::Layout(layout) => layout.read_blob(&config.digest).await?,
                    Source::Mirror(layout) => layout.read_blob(&config.digest).await?,
                    Source::Local { .. } => {
                        return Err(OciError::NotFound { what: config_what });
                    }
                };
                Ok(Landing {
                    filtered: None,
                    config_platform: media::config_platform(&raw),
                })
            }
        }
    }

    /// Resolves many references, `jobs` at a time; results in input order.
    pub async fn resolve_all(&self, images: &[ImageRef]) -> Vec<Result<ResolvedImage, OciError>> {
        self.jobs_at_a_time(images.iter().map(|i| self.resolve(i)))
            .await
    }

    /// Runs `tasks`, `jobs` at a time; their results in input order.
    async fn jobs_at_a_time<T>(
        &self,
        tasks: impl Iterator<Item = impl Future<Output = T>>,
    ) -> Vec<T> {
        futures::stream::iter(tasks)
            .buffered(self.inner.jobs)
            .collect()
            .await
    }

    // ------------------------------------------------------------------ copies

    /// Copies one upstream image by digest (see the module doc for the order of operations).
    pub async fn copy(
        &self,
        request: &CopyRequest,
        destination: &Destination,
    ) -> Result<CopyOutcome, OciError> {
        let pinned = request.source.digest().ok_or_else(|| OciError::Unpinned {
            image: request.source.to_string(),
        })?;
        let target = destination.name_of(&request.target);
        let what = format!("{} → {target}", request.source);
        let short = match request.source.tag() {
            Some(tag) => format!("{}:{tag}", request.source.name()),
            None => format!("{}@{}", request.source.name(), &pinned.hex()[..12]),
        };
        let progress = self.start_image(Verbs::COPY, format!("{short} → {target}"));
        let dest = self.dest(destination, &request.target.repository)?;
        let tag = request.target.tag.as_deref();

        // The cheap check first: a re-run whose image is there costs one request.
        let present = self.present(&dest, tag, pinned).await?;
        if let Some(outcome) = present.as_ref().filter(|o| &o.digest == pinned) {
            progress.already_there();
            return Ok(outcome.clone());
        }

        let endpoint = self.endpoint(&request.source);
        let source = self.upstream_source(&endpoint)?;
        let bytes = self.source_manifest(&source, pinned, &what).await?;
        let (media_type, _) = media::detect(&bytes, None, &what)?;
        let top = Top {
            bytes,
            media_type,
            digest: pinned.clone(),
        };
        let outcome = self
            .copy_tree(
                &source,
                &dest,
                top,
                tag,
                &request.platforms,
                &what,
                present.map(|p| p.digest),
            )
            .await?;
        progress.done(&summary(&outcome, &dest));
        Ok(outcome)
    }

    /// Copies many images, `jobs` at a time (blobs of all of them share the same `jobs`
    /// transfer slots); results in input order.
    pub async fn copy_all(
        &self,
        requests: &[CopyRequest],
        destination: &Destination,
    ) -> Vec<Result<CopyOutcome, OciError>> {
        self.jobs_at_a_time(requests.iter().map(|r| self.copy(r, destination)))
            .await
    }

    /// Uploads every image of a layout (a sneakernet bundle) to a registry, under the
    /// repository and tag the layout names. Blobs the registry has are skipped, so an
    /// interrupted push resumes; every blob is checked against its digest as it streams, and a
    /// bad one stops that image (its manifest is never pushed), naming the blob.
    pub async fn push_layout(
        &self,
        layout: &Layout,
        destination: &RegistryAccess,
    ) -> Vec<(LayoutImage, Result<CopyOutcome, OciError>)> {
        let images = layout.images().await;
        let destination = Destination::Registry(destination.clone());
        let destination = &destination;
        self.jobs_at_a_time(images.into_iter().map(|image| async move {
            let result = self.push_layout_image(layout, &image, destination).await;
            (image, result)
        }))
        .await
    }

    async fn push_layout_image(
        &self,
        layout: &Layout,
        image: &LayoutImage,
        destination: &Destination,
    ) -> Result<CopyOutcome, OciError> {
        let host = match destination {
            Destination::Registry(access) => access.host.as_str(),
            Destination::Layout(_) => "a layout",
        };
        let what = match &image.tag {
            Some(tag) => format!("{}:{tag} → {host}", image.repository),
            None => format!(
                "{}@{} → {host}",
                image.repository,
                &image.digest.hex()[..12]
            ),
        };
        let progress = self.start_image(Verbs::PUSH, what.clone());
        let dest = self.dest(destination, &image.repository)?;
        let tag = image.tag.as_deref();
        let present = self.present(&dest, tag, &image.digest).await?;
        if let Some(outcome) = present.as_ref().filter(|o| o.digest == image.digest) {
            progress.already_there();
            return Ok(outcome.clone());
        }
        let source = Source::Layout(layout);
        let bytes = self.source_manifest(&source, &image.digest, &what).await?;
        let top = Top {
            bytes,
            media_type: image.media_type.clone(),
            digest: image.digest.clone(),
        };
        self.copy_whole(&source, &dest, top, tag, &what, progress)
            .await
    }

    /// Pushes an image built here to a registry or a layout, under `target`'s repository and
    /// tag.
    pub async fn push_image(
        &self,
        image: &LocalImage,
        target: &TargetRef,
        destination: &Destination,
    ) -> Result<CopyOutcome, OciError> {
        let what = destination.name_of(target);
        let verbs = match destination {
            Destination::Registry(_) => Verbs::PUSH,
            Destination::Layout(_) => Verbs::WRITE,
        };
        let progress = self.start_image(verbs, what.clone());
        let dest = self.dest(destination, &target.repository)?;
        let digest = Digest::of(&image.manifest);
        let fallback = match &image.base {
            Some(base) => Some(Box::new(self.upstream_source(&self.endpoint(base))?)),
            None => None,
        };
        let source = Source::Local { image, fallback };
        let top = Top {
            bytes: image.manifest.clone(),
            media_type: image.media_type.clone(),
            digest,
        };
        let tag = target.tag.as_deref();
        self.copy_whole(&source, &dest, top, tag, &what, progress)
            .await
    }

    /// Copies a whole image (every platform) and reports it done.
    async fn copy_whole(
        &self,
        source: &Source<'_>,
        dest: &Dest<'_>,
        top: Top,
        tag: Option<&str>,
        what: &str,
        progress: ImageProgress,
    ) -> Result<CopyOutcome, OciError> {
        let outcome = self
            .copy_tree(source, dest, top, tag, &Platforms::All, what, None)
            .await?;
        progress.done(&summary(&outcome, dest));
        Ok(outcome)
    }

    /// Everything an image at the destination needs that is not there: walks the manifest
    /// `digest` of `repository` (an index's children too) and checks every manifest, config
    /// and layer blob. Empty when the image is whole. What `airgap verify` asks of each image.
    pub async fn missing_blobs(
        &self,
        destination: &Destination,
        repository: &str,
        digest: &Digest,
    ) -> Result<Vec<String>, OciError> {
        let dest = self.dest(destination, repository)?;
        let mut missing = Vec::new();
        let mut manifests = vec![digest.clone()];
        while let Some(d) = manifests.pop() {
            let bytes = match &dest {
                Dest::Registry {
                    registry,
                    repository,
                } => {
                    // One GET: a manifest's presence and its bytes come together.
                    match self
                        .retrying(repository, |_| {
                            registry.get_manifest(repository, d.as_str())
                        })
                        .await
                    {
                        Ok(fetched) => fetched.bytes,
                        Err(OciError::NotFound { .. }) => {
                            missing.push(format!("manifest {d}"));
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Dest::Layout { layout, .. } => match layout.read_blob(&d).await {
                    Ok(bytes) => bytes,
                    Err(OciError::NotFound { .. }) => {
                        missing.push(format!("manifest {d}"));
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            let what = format!("{repository}@{d}");
            let (_, parsed) = media::detect(&bytes, None, &what)?;
            let blobs = match parsed {
                Parsed::Index {
                    manifests: children,
                } => {
                    manifests.extend(children.into_iter().map(|c| c.digest));
                    Vec::new()
                }
                Parsed::Image { config, layers } => {
                    std::iter::once(config).chain(layers).collect::<Vec<_>>()
                }
            };
            for b in blobs {
                let present = match &dest {
                    Dest::Registry {
                        registry,
                        repository,
                    } => {
                        self.retrying(repository, |_| registry.has_blob(repository, &b.digest))
                            .await?
                    }
                    Dest::Layout { layout, .. } => layout.has_blob(&b.digest, b.size),
                };
                if !present {
                    missing.push(format!("blob {} ({} bytes) of {what}", b.digest, b.size));
                }
            }
        }
        Ok(missing)
    }

    /// A manifest (or index) the destination holds, by digest, checked against it: how an
    /// image built on a mirrored one (the devfile-index image on its base) reads the base
    /// without going upstream. Returns the bytes and the media type.
    pub async fn read_manifest(
        &self,
        destination: &Destination,
        repository: &str,
        digest: &Digest,
    ) -> Result<(Bytes, String), OciError> {
        let what = format!("{repository}@{digest}");
        let (bytes, content_type) = match self.dest(destination, repository)? {
            Dest::Registry {
                registry,
                repository,
            } => {
                let fetched = self
                    .retrying(&what, |_| {
                        registry.get_manifest(&repository, digest.as_str())
                    })
                    .await?;
                (fetched.bytes, fetched.content_type)
            }
            Dest::Layout { layout, .. } => (layout.read_blob(digest).await?, None),
        };
        expect_digest(digest, &Digest::of(&bytes), || what.clone())?;
        let (media_type, _) = media::detect(&bytes, content_type.as_deref(), &what)?;
        Ok((bytes, media_type))
    }

    /// A small blob (an image config) the destination holds, checked against its digest and
    /// read whole; refused beyond `limit` bytes.
    pub async fn read_blob(
        &self,
        destination: &Destination,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Bytes, OciError> {
        let what = format!("{repository}@{digest}");
        match self.dest(destination, repository)? {
            Dest::Registry {
                registry,
                repository,
            } => {
                self.registry_small_blob(&registry, &repository, digest, limit, &what)
                    .await
            }
            Dest::Layout { layout, .. } => layout.read_blob(digest).await,
        }
    }

    /// A small blob of a registry repository, read whole and checked against its digest;
    /// refused beyond `limit` bytes.
    async fn registry_small_blob(
        &self,
        registry: &Registry,
        repository: &str,
        digest: &Digest,
        limit: u64,
        what: &str,
    ) -> Result<Bytes, OciError> {
        self.retrying(what, |_| async {
            let stream = registry
                .blob_stream(repository, digest, format!("the download of {what}"))
                .await?;
            let mut verifier = Verifier::new(digest.clone(), None);
            let mut out = bytes::BytesMut::new();
            let mut stream = std::pin::pin!(stream);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if (out.len() + chunk.len()) as u64 > limit {
                    return Err(OciError::Manifest {
                        what: what.to_owned(),
                        reason: format!("it is larger than {limit} bytes"),
                    });
                }
                let _ = verifier.update(&chunk);
                out.extend_from_slice(&chunk);
            }
            verifier
                .finish()
                .map_err(OciError::digest_mismatch(what, digest))?;
            Ok(out.freeze())
        })
        .await
    }

    /// Whether the destination holds `target` (its tag, or the digest when untagged) at
    /// `digest`: one HEAD for a registry, a lookup for a layout. What `plan` asks of every
    /// image step it would call fresh.
    pub async fn holds(
        &self,
        destination: &Destination,
        target: &TargetRef,
        digest: &Digest,
    ) -> Result<bool, OciError> {
        let dest = self.dest(destination, &target.repository)?;
        Ok(self
            .present(&dest, target.tag.as_deref(), digest)
            .await?
            .is_some_and(|o| &o.digest == digest))
    }

    /// Removes an image airgap placed: a layout's entry (`tag`, or untagged, at `digest`), or
    /// a registry's manifest by digest (with the tags that name it). `Ok(false)` when it was
    /// not there any more.
    pub async fn delete_image(
        &self,
        destination: &Destination,
        repository: &str,
        tag: Option<&str>,
        digest: &Digest,
    ) -> Result<bool, OciError> {
        match destination {
            Destination::Layout(layout) => layout.remove_image(repository, tag, digest).await,
            Destination::Registry(access) => {
                self.registry(access)?
                    .delete_manifest(repository, digest)
                    .await
            }
        }
    }

    fn dest<'a>(
        &self,
        destination: &'a Destination,
        repository: &str,
    ) -> Result<Dest<'a>, OciError> {
        Ok(match destination {
            Destination::Registry(access) => Dest::Registry {
                registry: self.registry(access)?,
                repository: repository.to_owned(),
            },
            Destination::Layout(layout) => Dest::Layout {
                layout,
                repository: repository.to_owned(),
            },
        })
    }

    /// What the destination holds under the tag (or the digest, untagged): its digest, type
    /// and size, as an outcome with zero counts.
    async fn present(
        &self,
        dest: &Dest<'_>,
        tag: Option<&str>,
        digest: &Digest,
    ) -> Result<Option<CopyOutcome>, OciError> {
        match dest {
            Dest::Registry {
                registry,
                repository,
            } => {
                let reference = tag.unwrap_or(digest.as_str());
                let head = self
                    .retrying(repository, |_| {
                        registry.head_manifest(repository, reference)
                    })
                    .await?;
                Ok(head.map(|h| CopyOutcome {
                    digest: h.digest,
                    media_type: h.media_type.unwrap_or_default(),
                    size: h.size,
                    stats: CopyStats::default(),
                    manifest: Some(h.bytes),
                }))
            }
            Dest::Layout { layout, repository } => {
                let Some(i) = layout.image(repository, tag, digest) else {
                    return Ok(None);
                };
                // Named is not enough: a blob left short (a full disk) must be written again.
                if !layout.is_whole(&i.digest, i.size, &i.media_type).await {
                    return Ok(None);
                }
                Ok(Some(CopyOutcome {
                    digest: i.digest,
                    media_type: i.media_type,
                    size: i.size,
                    stats: CopyStats::default(),
                    manifest: None,
                }))
            }
        }
    }

    /// A manifest from the source, checked against its digest.
    async fn source_manifest(
        &self,
        source: &Source<'_>,
        digest: &Digest,
        what: &str,
    ) -> Result<Bytes, OciError> {
        match source {
            Source::Registry {
                registry,
                repository,
            } => {
                let fetched = self
                    .retrying(what, |_| registry.get_manifest(repository, digest.as_str()))
                    .await?;
                expect_digest(digest, &Digest::of(&fetched.bytes), || {
                    format!("{}/{repository}@{digest}", registry.host)
                })?;
                Ok(fetched.bytes)
            }
            Source::Layout(layout) => layout.read_blob(digest).await,
            Source::Mirror(layout) => layout.read_blob(digest).await,
            Source::Local { image, fallback } => {
                if Digest::of(&image.manifest) == *digest {
                    return Ok(image.manifest.clone());
                }
                // The child manifests of an index built here travel as in-memory blobs.
                if let Some(LocalBlob {
                    data: BlobData::Bytes(b),
                    ..
                }) = image.blobs.iter().find(|b| &b.digest == digest)
                {
                    return Ok(b.clone());
                }
                match fallback {
                    Some(f) => Box::pin(self.source_manifest(f, digest, what)).await,
                    None => Err(OciError::NotFound {
                        what: format!("manifest {digest} of {what}"),
                    }),
                }
            }
        }
    }

    /// Copies a manifest and everything under it; the top manifest goes last, under `tag`
    /// when there is one.
    #[allow(clippy::too_many_arguments)]
    async fn copy_tree(
        &self,
        source: &Source<'_>,
        dest: &Dest<'_>,
        top: Top,
        tag: Option<&str>,
        platforms: &Platforms,
        what: &str,
        present: Option<Digest>,
    ) -> Result<CopyOutcome, OciError> {
        let stats = &Stats::default();
        let (media_type, parsed) = media::detect(&top.bytes, Some(&top.media_type), what)?;
        let (bytes, digest) = match &parsed {
            Parsed::Index { manifests } => {
                let (keep, bytes, digest) =
                    match media::land_index(&top.bytes, manifests, platforms, what)? {
                        media::IndexLanding::Whole => {
                            (manifests.clone(), top.bytes.clone(), top.digest.clone())
                        }
                        media::IndexLanding::Filtered { keep, bytes } => {
                            let bytes = Bytes::from(bytes);
                            let digest = Digest::of(&bytes);
                            (keep, bytes, digest)
                        }
                    };
                if present.as_ref() == Some(&digest) {
                    return Ok(CopyOutcome {
                        digest,
                        media_type,
                        size: bytes.len() as u64,
                        stats: stats.snapshot(),
                        manifest: Some(bytes),
                    });
                }
                let results: Vec<Result<(), OciError>> = futures::stream::iter(
                    keep.iter()
                        .map(|child| self.copy_child(source, dest, child, stats, what)),
                )
                .buffer_unordered(self.inner.jobs)
                .collect()
                .await;
                results.into_iter().collect::<Result<Vec<()>, _>>()?;
                (bytes, digest)
            }
            Parsed::Image { .. } => {
                self.copy_blobs(source, dest, &parsed, stats).await?;
                (top.bytes.clone(), top.digest.clone())
            }
        };
        self.put_manifest(dest, tag, &media_type, &bytes, &digest, true, stats)
            .await?;
        Ok(CopyOutcome {
            size: bytes.len() as u64,
            digest,
            media_type,
            stats: stats.snapshot(),
            manifest: Some(bytes),
        })
    }

    /// One manifest of an index: its blobs, then itself by digest.
    async fn copy_child(
        &self,
        source: &Source<'_>,
        dest: &Dest<'_>,
        child: &Descriptor,
        stats: &Stats,
        what: &str,
    ) -> Result<(), OciError> {
        if self.has_manifest(dest, child).await? {
            return Ok(());
        }
        let bytes = self.source_manifest(source, &child.digest, what).await?;
        let (media_type, parsed) = media::detect(&bytes, Some(&child.media_type), what)?;
        match &parsed {
            Parsed::Index { manifests } => {
                // A nested index is copied whole.
                let nested = futures::stream::iter(
                    manifests
                        .iter()
                        .map(|m| Box::pin(self.copy_child(source, dest, m, stats, what))),
                )
                .buffer_unordered(self.inner.jobs)
                .collect::<Vec<_>>()
                .await;
                nested.into_iter().collect::<Result<Vec<()>, _>>()?;
            }
            Parsed::Image { .. } => self.copy_blobs(source, dest, &parsed, stats).await?,
        }
        self.put_manifest(dest, None, &media_type, &bytes, &child.digest, false, stats)
            .await
    }

    /// Whether the destination has the manifest `child`: a registry checks what a manifest
    /// names when it is pushed; a layout is asked whether everything below it is whole.
    async fn has_manifest(&self, dest: &Dest<'_>, child: &Descriptor) -> Result<bool, OciError> {
        let digest = &child.digest;
        match dest {
            Dest::Registry {
                registry,
                repository,
            } => Ok(self
                .retrying(repository, |_| {
                    registry.head_manifest(repository, digest.as_str())
                })
                .await?
                .is_some()),
            Dest::Layout { layout, .. } => {
                Ok(layout.is_whole(digest, child.size, &child.media_type).await)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_manifest(
        &self,
        dest: &Dest<'_>,
        tag: Option<&str>,
        media_type: &str,
        bytes: &Bytes,
        digest: &Digest,
        top_level: bool,
        stats: &Stats,
    ) -> Result<(), OciError> {
        match dest {
            Dest::Registry {
                registry,
                repository,
            } => {
                let reference = tag.unwrap_or(digest.as_str());
                self.retrying(repository, |_| {
                    registry.put_manifest(repository, reference, media_type, bytes)
                })
                .await?;
            }
            Dest::Layout { layout, repository } => {
                layout.write_blob_bytes(digest, bytes.clone()).await?;
                if top_level {
                    layout
                        .add_image(&LayoutImage {
                            repository: repository.clone(),
                            tag: tag.map(str::to_owned),
                            digest: digest.clone(),
                            media_type: media_type.to_owned(),
                            size: bytes.len() as u64,
                        })
                        .await?;
                }
            }
        }
        stats.manifests.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn copy_blobs(
        &self,
        source: &Source<'_>,
        dest: &Dest<'_>,
        parsed: &Parsed,
        stats: &Stats,
    ) -> Result<(), OciError> {
        let blobs = parsed.blobs();
        let results: Vec<Result<(), OciError>> =
            futures::stream::iter(blobs.iter().map(|b| self.copy_blob(source, dest, b, stats)))
                .buffer_unordered(self.inner.jobs)
                .collect()
                .await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
    }

    fn blob_lock(&self, key: &(String, Digest)) -> BlobLock {
        match self.inner.blob_locks.lock() {
            Ok(mut locks) => locks.entry(key.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    fn known_repos(&self, key: &(String, Digest)) -> BTreeSet<String> {
        self.inner
            .known
            .lock()
            .ok()
            .and_then(|k| k.get(key).cloned())
            .unwrap_or_default()
    }

    fn remember(&self, key: (String, Digest), repository: &str) {
        if let Ok(mut known) = self.inner.known.lock() {
            known.entry(key).or_default().insert(repository.to_owned());
        }
    }

    /// One blob into one destination repository: skip what is there, mount what another
    /// repository of the same registry has, stream the rest.
    async fn copy_blob(
        &self,
        source: &Source<'_>,
        dest: &Dest<'_>,
        blob: &Descriptor,
        stats: &Stats,
    ) -> Result<(), OciError> {
        let key = dest.key(&blob.digest);
        let lock = self.blob_lock(&key);
        let _one_at_a_time = lock.lock().await;
        match dest {
            Dest::Layout { layout, .. } => {
                if layout.has_blob(&blob.digest, blob.size) {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                let _permit = self.inner.transfers.acquire().await.map_err(|_| closed())?;
                self.inner.progress.add_bytes_total(blob.size);
                let written = self
                    .retrying(blob.digest.as_str(), |_| async {
                        let counted = Arc::new(AtomicU64::new(0));
                        let stream = self.blob_stream(source, blob, &counted).await?;
                        let result = layout
                            .write_blob(
                                &blob.digest,
                                Some(blob.size),
                                stream,
                                &self.blob_what(source, blob),
                            )
                            .await;
                        if result.is_err() {
                            self.inner.progress.unbytes(counted.load(Ordering::Relaxed));
                        }
                        result
                    })
                    .await?;
                stats.uploaded.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(written, Ordering::Relaxed);
                Ok(())
            }
            Dest::Registry {
                registry,
                repository,
            } => {
                let known = self.known_repos(&key);
                if known.contains(repository) {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                let there = self
                    .retrying(repository, |_| registry.has_blob(repository, &blob.digest))
                    .await?;
                if there {
                    self.remember(key, repository);
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                let mut candidates: Vec<String> =
                    known.into_iter().filter(|r| r != repository).collect();
                if let Source::Local { image, .. } = source {
                    candidates.extend(
                        image
                            .mount_from
                            .iter()
                            .filter(|r| *r != repository)
                            .cloned(),
                    );
                }
                for from in &candidates {
                    let mounted = self
                        .retrying(repository, |_| {
                            registry.mount(repository, &blob.digest, from)
                        })
                        .await?;
                    if mounted {
                        self.remember(key, repository);
                        stats.mounted.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                }
                let _permit = self.inner.transfers.acquire().await.map_err(|_| closed())?;
                self.inner.progress.add_bytes_total(blob.size);
                self.retrying(blob.digest.as_str(), |_| async {
                    let counted = Arc::new(AtomicU64::new(0));
                    let failure: Arc<Mutex<Option<OciError>>> = Arc::default();
                    let stream = self.blob_stream(source, blob, &counted).await?;
                    let stream = hold_errors(stream, failure.clone());
                    let result = registry
                        .upload(repository, &blob.digest, blob.size, stream)
                        .await;
                    let result = match failure.lock().ok().and_then(|mut f| f.take()) {
                        // What made the body stop matters more than how the PUT ended.
                        Some(cause) => Err(cause),
                        None => result,
                    };
                    if result.is_err() {
                        self.inner.progress.unbytes(counted.load(Ordering::Relaxed));
                    }
                    result
                })
                .await?;
                self.remember(key, repository);
                stats.uploaded.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(blob.size, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    fn blob_what(&self, source: &Source<'_>, blob: &Descriptor) -> String {
        match source {
            Source::Registry {
                registry,
                repository,
            } => format!("{}/{repository}@{}", registry.host, blob.digest),
            Source::Layout(layout) => layout.blob_path(&blob.digest).display().to_string(),
            Source::Mirror(layout) => layout.blob_path(&blob.digest).display().to_string(),
            Source::Local { .. } => format!("local blob {}", blob.digest),
        }
    }

    /// The blob's bytes from the source, verified as they stream (see [`verified`]), counted
    /// into progress and `counted`.
    async fn blob_stream(
        &self,
        source: &Source<'_>,
        blob: &Descriptor,
        counted: &Arc<AtomicU64>,
    ) -> Result<BoxStream<'static, Result<Bytes, OciError>>, OciError> {
        let what = self.blob_what(source, blob);
        let raw: BoxStream<'static, Result<Bytes, OciError>> = match source {
            Source::Registry {
                registry,
                repository,
            } => {
                registry
                    .blob_stream(repository, &blob.digest, format!("the download of {what}"))
                    .await?
            }
            Source::Layout(layout) => layout.blob_stream(&blob.digest).await?.boxed(),
            Source::Mirror(layout) => layout.blob_stream(&blob.digest).await?.boxed(),
            Source::Local { image, fallback } => {
                match image.blobs.iter().find(|b| b.digest == blob.digest) {
                    Some(LocalBlob {
                        data: BlobData::Bytes(b),
                        ..
                    }) => futures::stream::iter([Ok(b.clone())]).boxed(),
                    Some(LocalBlob {
                        data: BlobData::File(path),
                        ..
                    }) => {
                        let file = tokio::fs::File::open(path)
                            .await
                            .map_err(OciError::io("cannot read", path))?;
                        let path = path.clone();
                        super::layout::read_file_chunks(file)
                            .map_err(move |e| OciError::io("cannot read", path.clone())(e))
                            .boxed()
                    }
                    None => match fallback {
                        Some(f) => return Box::pin(self.blob_stream(f, blob, counted)).await,
                        None => {
                            return Err(OciError::NotFound {
                                what: format!(
                                    "blob {} (not given, and not at the destination)",
                                    blob.digest
                                ),
                            });
                        }
                    },
                }
            }
        };
        let progress = self.inner.progress.clone();
        let counted = counted.clone();
        let counting = coalesce(raw, CHUNK).inspect_ok(move |chunk| {
            progress.bytes(chunk.len() as u64);
            counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        });
        // oci-client checks a registry's blob against its digest and fails before the end:
        // the size and the held-back last chunk are what is left to do here.
        let verifier = match source {
            Source::Registry { .. } => Verifier::size_only(blob.digest.clone(), Some(blob.size)),
            _ => Verifier::new(blob.digest.clone(), Some(blob.size)),
        };
        Ok(verified(counting, verifier, what).boxed())
    }
}

/// The media type of a manifest's bytes and, for an index, its platform manifests, as
/// [`Client::resolve`] gives them (what the lock records).
pub(crate) fn describe_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
    what: &str,
) -> Result<(String, Vec<PlatformManifest>), OciError> {
    let (media_type, parsed) = media::detect(bytes, content_type, what)?;
    Ok((media_type, platform_manifests(&parsed)))
}

/// The platform manifests of an index (attestations left out); empty for a single manifest.
fn platform_manifests(parsed: &Parsed) -> Vec<PlatformManifest> {
    match parsed {
        Parsed::Index { manifests } => manifests
            .iter()
            .filter(|d| media::attestation_subject(d).is_none())
            .filter_map(|d| {
                Some(PlatformManifest {
                    platform: d.platform.as_ref()?.to_string(),
                    digest: d.digest.clone(),
                    media_type: d.media_type.clone(),
                    size: d.size,
                })
            })
            .collect(),
        Parsed::Image { .. } => Vec::new(),
    }
}

fn closed() -> OciError {
    OciError::Connection {
        host: String::new(),
        action: "wait for a transfer slot".into(),
        message: "the client is shutting down".into(),
    }
}

/// Fails when `actual`, the digest of the bytes read for `what`, is not `expected`.
fn expect_digest(
    expected: &Digest,
    actual: &Digest,
    what: impl FnOnce() -> String,
) -> Result<(), OciError> {
    if actual == expected {
        return Ok(());
    }
    Err(OciError::DigestMismatch {
        what: what(),
        expected: expected.clone(),
        mismatch: Mismatch::Digest {
            actual: actual.clone(),
        },
    })
}

/// The end of an image's progress line: its digest and what the copy took.
fn summary(o: &CopyOutcome, dest: &Dest<'_>) -> String {
    let into_layout = matches!(dest, Dest::Layout { .. });
    format!("{} ({})", o.digest, o.stats.describe(into_layout))
}

impl CopyStats {
    /// The counts in words, zeros left out: `2 blobs written; 890 B` into a layout,
    /// `1 blob sent, 2 blobs already there, 1 blob mounted; 1.2 KiB` to a registry. A layout
    /// is written, never sent to, and cannot mount.
    pub fn describe(&self, into_layout: bool) -> String {
        let moved = if into_layout { "written" } else { "sent" };
        let counts = [
            (self.blobs_uploaded, moved),
            (self.blobs_skipped, "already there"),
            (self.blobs_mounted, "mounted"),
        ];
        let parts: Vec<String> = counts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, how)| format!("{} {how}", crate::ui::plural(*n, "blob")))
            .collect();
        let mut words = if parts.is_empty() {
            format!("no blobs {moved}")
        } else {
            parts.join(", ")
        };
        if self.bytes_uploaded > 0 {
            words.push_str(&format!("; {}", indicatif::HumanBytes(self.bytes_uploaded)));
        }
        words
    }
}

/// Checks a stream of bytes with `verifier` (its digest and size) while it passes. The last
/// chunk is held back until the end is verified, so a consumer that commits on the final byte
/// (a registry completing a monolithic upload) never sees a complete body when the content is
/// wrong: the stream ends with an error instead. With a [`Verifier::size_only`], the digest is
/// the inner stream's to check, by an error before its end, which holds the last chunk back
/// just the same.
pub(crate) fn verified<S>(
    inner: S,
    verifier: Verifier,
    what: String,
) -> impl Stream<Item = Result<Bytes, OciError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, OciError>> + Send + 'static,
{
    struct State<S> {
        inner: std::pin::Pin<Box<S>>,
        verifier: Option<Verifier>,
        held: Option<Bytes>,
        digest: Digest,
        what: String,
    }
    let state = State {
        inner: Box::pin(inner),
        digest: verifier.expected().clone(),
        verifier: Some(verifier),
        held: None,
        what,
    };
    futures::stream::unfold(state, |mut st| async move {
        let mismatch = |st: &State<S>, mismatch| OciError::DigestMismatch {
            what: st.what.clone(),
            expected: st.digest.clone(),
            mismatch,
        };
        loop {
            let verifier = st.verifier.as_mut()?;
            match st.inner.next().await {
                Some(Ok(chunk)) => {
                    if let Err(m) = verifier.update(&chunk) {
                        let e = mismatch(&st, m);
                        st.verifier = None;
                        return Some((Err(e), st));
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    if let Some(previous) = st.held.replace(chunk) {
                        return Some((Ok(previous), st));
                    }
                }
                Some(Err(e)) => {
                    st.verifier = None;
                    return Some((Err(e), st));
                }
                None => {
                    let verifier = st.verifier.take()?;
                    return match verifier.finish() {
                        Ok(_) => st.held.take().map(|last| (Ok(last), st)),
                        Err(m) => {
                            let e = mismatch(&st, m);
                            Some((Err(e), st))
                        }
                    };
                }
            }
        }
    })
}

/// Chunks handed to uploads: network reads come in pieces of a few KiB, and fewer, larger
/// writes cost the receiving registry less.
const CHUNK: usize = 256 * 1024;

/// Joins small chunks into ones of at least `target` bytes (big chunks pass as they are).
fn coalesce<S>(
    inner: S,
    target: usize,
) -> impl Stream<Item = Result<Bytes, OciError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, OciError>> + Send + 'static,
{
    let state = (Box::pin(inner), bytes::BytesMut::new(), false);
    futures::stream::unfold(state, move |(mut inner, mut buf, done)| async move {
        if done {
            return None;
        }
        loop {
            match inner.next().await {
                Some(Ok(chunk)) if buf.is_empty() && chunk.len() >= target => {
                    return Some((Ok(chunk), (inner, buf, false)));
                }
                Some(Ok(chunk)) => {
                    buf.extend_from_slice(&chunk);
                    if buf.len() >= target {
                        let out = buf.split().freeze();
                        return Some((Ok(out), (inner, buf, false)));
                    }
                }
                Some(Err(e)) => return Some((Err(e), (inner, buf, true))),
                None if buf.is_empty() => return None,
                None => {
                    let out = buf.split().freeze();
                    return Some((Ok(out), (inner, buf, true)));
                }
            }
        }
    })
}

/// Keeps the first error of a request body in `slot` (reqwest reports a failed body only as
/// "error sending request").
fn hold_errors<S>(
    inner: S,
    slot: Arc<Mutex<Option<OciError>>>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, OciError>> + Send + 'static,
{
    inner.map(move |r| {
        r.map_err(|e| {
            let message = e.to_string();
            if let Ok(mut s) = slot.lock()
                && s.is_none()
            {
                *s = Some(e);
            }
            std::io::Error::other(message)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        parts: &[&'static [u8]],
    ) -> impl Stream<Item = Result<Bytes, OciError>> + Send + 'static {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn small_chunks_are_joined() {
        let out: Vec<Bytes> = coalesce(chunks(&[b"ab", b"cd", b"efgh", b"i"]), 4)
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(out, [&b"abcd"[..], b"efgh", b"i"]);
    }

    /// The chunks `verified` lets through for `parts`, checked against the digest of "abcdef".
    async fn through(parts: &[&'static [u8]]) -> Vec<Result<Bytes, OciError>> {
        let verifier = Verifier::new(Digest::of(b"abcdef"), Some(6));
        verified(chunks(parts), verifier, "x".into())
            .collect()
            .await
    }

    #[tokio::test]
    async fn the_last_chunk_is_held_back_until_the_digest_is_checked() {
        let out = through(&[b"ab", b"cd", b"ef"]).await;
        let bytes: Vec<u8> = out
            .iter()
            .flat_map(|r| r.as_ref().unwrap().to_vec())
            .collect();
        assert_eq!(bytes, b"abcdef");

        // Wrong content: every chunk but the last passes, then an error, never the end.
        let out = through(&[b"ab", b"cd", b"eX"]).await;
        assert_eq!(out.len(), 3);
        assert!(out[..2].iter().all(Result::is_ok));
        assert!(matches!(&out[2], Err(OciError::DigestMismatch { .. })));

        // Too many bytes: stopped as soon as the size is passed.
        let out = through(&[b"abcdef", b"g"]).await;
        assert!(matches!(
            out.last(),
            Some(Err(OciError::DigestMismatch { .. }))
        ));
        assert!(out.iter().filter(|r| r.is_ok()).count() <= 1);
    }

    /// Size only (a registry's stream, which checks its digest itself): the inner stream's
    /// error at its end still keeps the last chunk back.
    #[tokio::test]
    async fn size_only_holds_the_last_chunk_back_for_the_inner_streams_error() {
        let inner = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(Bytes::from_static(b"cd")),
            Err(OciError::NotFound { what: "x".into() }),
        ]);
        let verifier = Verifier::size_only(Digest::of(b"abcd"), Some(4));
        let out: Vec<_> = verified(inner, verifier, "x".into()).collect().await;
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].as_ref().unwrap(), &b"ab"[..]);
        assert!(out[1].is_err());
        // Without an error, the bytes pass whatever they hash to.
        let verifier = Verifier::size_only(Digest::of(b"abcd"), Some(4));
        let out: Vec<_> = verified(chunks(&[b"ab", b"cX"]), verifier, "x".into())
            .collect()
            .await;
        assert!(out.iter().all(Result::is_ok));
    }
}
