//! `airgap serve`: the devfile registry REST API and a read-only OCI distribution API over a
//! built output folder, so that a laptop or a cluster without any registry can use it.
//!
//! The served folder `DIR` holds:
//! - `registry/index.json` (the v2 index, as the upstream index generator writes it),
//!   `registry/stacks/<stack>[/<version>]/{devfile.yaml, archive.tar, <starter>-offline.zip}`,
//!   `registry/samples/<name>[/<version>]/devfile.yaml`, `registry/last_modified.json`;
//! - an OCI image layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) whose top-level
//!   descriptors name their repository in the `io.github.airgap.repository` annotation.
//!
//! Both are read at start ([`Server::bind`]); a missing `registry/index.json` or a malformed
//! layout is an error then, not at the first request. A folder without any layout (neither
//! `oci-layout` nor `index.json`) serves the REST API and an empty `/v2/`. The folder is read
//! again, and swapped in whole, on SIGHUP and when an apply of its workspace finishes
//! ([`reload`]): requests in flight finish on what they started with, and a folder that does
//! not load keeps the previous contents served.
//!
//! HTTPS with a PEM certificate and key ([`tls`]); the handshake is bounded like the headers.
//!
//! Endpoints (see [`registry`] and [`oci`] for the details and every deliberate difference from
//! upstream):
//! - `GET /health`, `GET /` (302 to `/index`: upstream sends browsers to `/viewer`, a UI we do
//!   not ship, so everybody goes to `/index`), `/index[/{stack|sample|all}]`,
//!   `/v2index[/{stack|sample|all}]` with upstream's query filters ([`filter`]),
//!   `/devfiles/{stack}[/{version}]`, `/devfiles/{stack}[/{version}]/starter-projects/{name}`,
//!   `/stacks/{path}` (files of the stacks folder, as upstream's static route);
//! - `/v2/`, `/v2/_catalog`, `/v2/<name>/tags/list`, `/v2/<name>/manifests/<ref>`,
//!   `/v2/<name>/blobs/<digest>` (GET and HEAD).
//!
//! Methods: outside `/v2` anything but GET and HEAD is `405` with upstream's body
//! `{"message":"Only GET requests are supported."}`. HEAD is answered wherever GET is (upstream
//! answers HEAD with 405 outside `/v2`; HTTP says HEAD goes with GET). An unknown path is `404`
//! with `404 page not found` in `text/plain`, as upstream's router (gin) answers it.
//!
//! Limits ([`connections`]): request headers must arrive within a timeout (which also closes
//! connections left idle), a connection moving no byte for the idle timeout is dropped, and
//! the number of connections is capped below the open-file limit;
//! at the cap the oldest connection is closed gracefully to make room, so idle clients cannot
//! keep `/health` or anyone else out.
//!
//! Logging: the server prints what it serves and `listening on http://ADDR` (or `https://`)
//! on stderr at start, and `reloaded: N stacks, M images` after each reload; with `verbose` it also prints one line per request (`client method path status
//! duration`) on stderr. Nothing is ever printed on stdout.
//!
//! Safety: no file outside `DIR` is ever served ([`fs`]): URL segments are validated,
//! joined, canonicalised and checked against the canonical root, so `..`, encoded separators,
//! absolute paths, backslashes and symbolic links leading out of `DIR` are all refused.

pub mod answers;
pub mod connections;
pub mod filter;
pub mod fs;
pub mod index;
pub mod oci;
pub mod registry;
pub mod reload;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path as UrlPath, Query as UrlQuery, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get};

use crate::index::EntryType;
use filter::Query;
use oci::Layout;
use registry::Registry;
use reload::{Hangups, Snapshot, Watch};

/// How the server runs.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Print one line per request on stderr.
    pub verbose: bool,
    /// Header timeout and connection limit.
    pub limits: connections::Limits,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<tls::TlsFiles>,
    /// The state file of the served folder's workspace: the folder is reloaded when an apply
    /// rewrites it ([`reload`]).
    pub watch: Option<PathBuf>,
}

/// Everything that can stop `airgap serve`.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ServeError {
    #[error("`{}` is not a folder", path.display())]
    #[diagnostic(
        code(airgap::serve::not_a_folder),
        help("pass the output folder of a `dir:` target, e.g. `airgap serve airgap-out`")
    )]
    NotAFolder { path: PathBuf },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] RegistryError),

    #[error("`{}` is not a valid OCI image layout", dir.display())]
    #[diagnostic(
        code(airgap::serve::layout),
        help("rebuild the folder with `airgap apply`, or remove the broken layout files")
    )]
    Layout {
        dir: PathBuf,
        #[source]
        source: LayoutError,
    },

    #[error("cannot listen on `{addr}`")]
    #[diagnostic(
        code(airgap::serve::bind),
        help("is another server listening there? choose another address with `--addr`")
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Tls(#[from] tls::TlsError),

    #[error("loading the served folder was interrupted")]
    #[diagnostic(code(airgap::serve::internal))]
    Interrupted,
}

/// Problems with `registry/` of the served folder.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RegistryError {
    #[error("there is no registry index at `{}`", path.display())]
    #[diagnostic(
        code(airgap::serve::no_index),
        help(
            "serve the output folder of `airgap apply` with a `dir:` target: it holds \
             `registry/index.json` next to the OCI image layout"
        )
    )]
    MissingIndex { path: PathBuf },

    #[error("cannot read `{}`", path.display())]
    #[diagnostic(code(airgap::serve::read))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{}` is not a valid registry index", path.display())]
    #[diagnostic(
        code(airgap::serve::bad_index),
        help("it must be a JSON array of index entries, as the devfile index generator writes it")
    )]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// What is wrong with the OCI image layout of the served folder.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LayoutError {
    #[error("`{}` is missing (the folder has an `oci-layout` file)", path.display())]
    MissingIndex { path: PathBuf },
    #[error("`{}` is missing (the folder has an `index.json`)", path.display())]
    MissingLayoutFile { path: PathBuf },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not valid JSON of the expected shape", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{}` declares layout version `{version}`; only `1.0.0` is known", path.display())]
    LayoutVersion { path: PathBuf, version: String },
    #[error("entry {position} of `index.json` names the invalid repository `{repository}`")]
    BadRepository { position: usize, repository: String },
    #[error("entry {position} of `index.json` names the invalid tag `{tag}`")]
    BadTag { position: usize, tag: String },
    #[error("`{reference}` is tagged twice, on `{first}` and on `{second}`")]
    DuplicateTag {
        reference: String,
        first: String,
        second: String,
    },
    #[error("`{digest}` is not a sha256 or sha512 digest")]
    BadDigest { digest: String },
    #[error("manifest `{digest}` has the size {size}, not between 0 and 4 MiB")]
    ManifestSize { digest: String, size: i64 },
    #[error("blob `{digest}` of a manifest cannot be read: {reason}")]
    MissingBlob {
        digest: String,
        reason: &'static str,
    },
    #[error("blob `{digest}` has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob `{digest}` has the digest `{actual}`")]
    DigestMismatch { digest: String, actual: String },
    #[error("manifest `{digest}` is not valid JSON")]
    Manifest {
        digest: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("manifest `{digest}` has no media type, neither in itself nor in its descriptor")]
    NoMediaType { digest: String },
    #[error(
        "manifest `{digest}` has the media type `{media_type}`, which does not fit its content"
    )]
    MediaTypeMismatch { digest: String, media_type: String },
    #[error("image index `{digest}` nests image indexes too deeply")]
    TooDeep { digest: String },
}

impl LayoutError {
    /// Words what `oci::layout` found wrong with `oci-layout` or `index.json` at `path`.
    fn top_file(path: &Path, e: crate::oci::layout::TopFileError) -> Self {
        use crate::oci::layout::TopFileError;
        let path = path.to_path_buf();
        match e {
            TopFileError::Io(source) => LayoutError::Read { path, source },
            TopFileError::NotJson(source) | TopFileError::Shape(source) => {
                LayoutError::Json { path, source }
            }
        }
    }
}

/// What the handlers share: one snapshot of the folder ([`reload`]).
struct App {
    registry: Registry,
    layout: Option<Layout>,
}

impl App {
    /// Stacks, and tagged images, served.
    fn counts(&self) -> (usize, usize) {
        let images = self.layout.as_ref().map_or(0, Layout::image_count);
        (self.registry.count(&EntryType::Stack), images)
    }
}

/// The snapshot current when a request starts, which it keeps to its end.
struct Current(Arc<App>);

impl FromRequestParts<Arc<Snapshot>> for Current {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        _: &mut axum::http::request::Parts,
        snapshot: &Arc<Snapshot>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Current(snapshot.current()))
    }
}

/// A bound, loaded server that has not started answering yet.
pub struct Server {
    listener: tokio::net::TcpListener,
    router: Router,
    local_addr: SocketAddr,
    summary: String,
    limits: connections::Limits,
    tls: Option<tokio_native_tls::TlsAcceptor>,
    snapshot: Arc<Snapshot>,
    watch: Option<Watch>,
    hangups: Hangups,
}

impl Server {
    /// Loads `dir` and binds `addr` (port 0 picks a free port: see [`Server::local_addr`]).
    pub async fn bind(
        dir: &Path,
        addr: SocketAddr,
        options: ServeOptions,
    ) -> Result<Server, ServeError> {
        let tls = match &options.tls {
            Some(files) => Some(tls::load(files).await?),
            None => None,
        };
        let watch = options.watch.clone().map(Watch::new);
        let dir = dir.to_path_buf();
        let loading = dir.clone();
        let (app, summary) = tokio::task::spawn_blocking(move || load(&loading))
            .await
            .map_err(|_| ServeError::Interrupted)??;
        let snapshot = Arc::new(Snapshot::new(dir, app));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Server {
            listener,
            router: router(snapshot.clone(), &options),
            local_addr,
            summary,
            limits: options.limits,
            tls,
            snapshot,
            watch,
            hangups: Hangups::new(),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// One line saying what is served.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// `https` with a certificate, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves until Ctrl-C.
    pub async fn run(self) -> Result<(), ServeError> {
        self.run_until(async {
            // Without a signal handler the server runs until the process is killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
    }

    /// Serves until `shutdown` completes, then finishes the requests under way; reloads the
    /// folder meanwhile ([`reload`]).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let reloads = tokio::spawn(reload::reloads(self.snapshot, self.watch, self.hangups));
        connections::serve(self.listener, self.router, self.limits, self.tls, shutdown).await;
        reloads.abort();
        Ok(())
    }
}

/// Serves `dir` on `addr` until Ctrl-C, printing what it serves and
/// `listening on http[s]://ADDR` on stderr once it accepts connections.
pub async fn serve(dir: &Path, addr: SocketAddr, options: ServeOptions) -> Result<(), ServeError> {
    let watching = options.watch.is_some();
    let server = Server::bind(dir, addr, options).await?;
    eprintln!("{}", server.summary());
    eprintln!(
        "reloading on SIGHUP{}",
        if watching {
            " and when `airgap apply` finishes"
        } else {
            ""
        }
    );
    eprintln!("listening on {}://{}", server.scheme(), server.local_addr());
    server.run().await
}

fn load(dir: &Path) -> Result<(App, String), ServeError> {
    if !dir.is_dir() {
        return Err(ServeError::NotAFolder {
            path: dir.to_path_buf(),
        });
    }
    let registry = Registry::load(dir)?;
    let layout = Layout::load(dir).map_err(|source| ServeError::Layout {
        dir: dir.to_path_buf(),
        source,
    })?;
    let repositories = layout.as_ref().map_or(0, |l| l.repositories().count());
    let summary = format!(
        "serving {} stacks, {} samples and {} image repositories from {}",
        registry.count(&EntryType::Stack),
        registry.count(&EntryType::Sample),
        repositories,
        dir.display()
    );
    Ok((App { registry, layout }, summary))
}

fn router(app: Arc<Snapshot>, options: &ServeOptions) -> Router {
    let router = Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/index", get(index_v1))
        .route("/index/{type}", get(index_v1_typed))
        .route("/v2index", get(index_v2))
        .route("/v2index/{type}", get(index_v2_typed))
        .route("/devfiles/{name}", get(devfile_default))
        .route("/devfiles/{name}/{version}", get(devfile_version))
        .route(
            "/devfiles/{name}/starter-projects/{project}",
            get(starter_default),
        )
        .route(
            "/devfiles/{name}/{version}/starter-projects/{project}",
            get(starter_version),
        )
        .route("/stacks/{*path}", get(stack_file))
        .route("/v2", any(distribution))
        .route("/v2/", any(distribution))
        .route("/v2/{*rest}", any(distribution))
        .fallback(fallback)
        .layer(middleware::from_fn(only_get))
        .with_state(app);
    if options.verbose {
        router.layer(middleware::from_fn(log_request))
    } else {
        router
    }
}

type Params<T> = Result<UrlPath<T>, axum::extract::rejection::PathRejection>;
type QueryPairs = Result<UrlQuery<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

fn query_of(q: QueryPairs) -> Query {
    Query::new(q.map(|UrlQuery(pairs)| pairs).unwrap_or_default())
}

/// 404 in the words of upstream's router.
pub(crate) fn not_found() -> Response {
    let mut r = Response::new(Body::from("404 page not found"));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn fallback() -> Response {
    not_found()
}

async fn only_get(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let distribution = path == "/v2" || path.starts_with("/v2/");
    let method = request.method();
    if !distribution && method != Method::GET && method != Method::HEAD {
        let mut r = registry::json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"message": "Only GET requests are supported."}),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    next.run(request).await
}

async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".to_string(), |ConnectInfo(a)| a.to_string());
    let response = next.run(request).await;
    eprintln!(
        "{client} {method} {uri} {} {:.1}ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    response
}

async fn root() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/index"));
    r
}

async fn health() -> Response {
    registry::json(
        StatusCode::OK,
        serde_json::json!({"message": "the server is up and running"}),
    )
}

/// An index endpoint: served from memory without filters; with filters the answer may have
/// to be computed ([`answers`]), which happens on the blocking pool.
async fn index_answer(app: Arc<App>, v1: bool, index_type: String, q: QueryPairs) -> Response {
    let query = query_of(q);
    if query.is_plain() {
        return app.registry.index(v1, &index_type, &query);
    }
    tokio::task::spawn_blocking(move || app.registry.index(v1, &index_type, &query))
        .await
        .unwrap_or_else(|_| {
            registry::json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"status": "the index could not be filtered"}),
            )
        })
}

async fn index_v1(Current(app): Current, q: QueryPairs) -> Response {
    index_answer(app, true, EntryType::Stack.as_str().to_string(), q).await
}

async fn index_v2(Current(app): Current, q: QueryPairs) -> Response {
    index_answer(app, false, EntryType::Stack.as_str().to_string(), q).await
}

async fn index_v1_typed(Current(app): Current, p: Params<String>, q: QueryPairs) -> Response {
    let Ok(UrlPath(t)) = p else {
        return not_found();
    };
    index_answer(app, true, t, q).await
}

async fn index_v2_typed(Current(app): Current, p: Params<String>, q: QueryPairs) -> Response {
    let Ok(UrlPath(t)) = p else {
        return not_found();
    };
    index_answer(app, false, t, q).await
}

async fn devfile_default(Current(app): Current, p: Params<String>, q: QueryPairs) -> Response {
    let Ok(UrlPath(name)) = p else {
        return not_found();
    };
    app.registry
        .serve_devfile(&name, "default", &query_of(q))
        .await
}

async fn devfile_version(
    Current(app): Current,
    p: Params<(String, String)>,
    q: QueryPairs,
) -> Response {
    let Ok(UrlPath((name, version))) = p else {
        return not_found();
    };
    app.registry
        .serve_devfile(&name, &version, &query_of(q))
        .await
}

async fn starter_default(
    Current(app): Current,
    method: Method,
    p: Params<(String, String)>,
) -> Response {
    let Ok(UrlPath((name, project))) = p else {
        return not_found();
    };
    app.registry
        .serve_starter_project(&name, "default", &project, method == Method::HEAD)
        .await
}

async fn starter_version(
    Current(app): Current,
    method: Method,
    p: Params<(String, String, String)>,
) -> Response {
    let Ok(UrlPath((name, version, project))) = p else {
        return not_found();
    };
    app.registry
        .serve_starter_project(&name, &version, &project, method == Method::HEAD)
        .await
}

async fn stack_file(
    Current(app): Current,
    method: Method,
    headers: HeaderMap,
    p: Params<String>,
) -> Response {
    let Ok(UrlPath(path)) = p else {
        return not_found();
    };
    app.registry
        .serve_stack_file(&path, headers.get(header::RANGE), method == Method::HEAD)
        .await
}

async fn distribution(Current(app): Current, request: Request) -> Response {
    let uri = request.uri();
    let path = uri.path();
    let rest = path
        .strip_prefix("/v2/")
        .or_else(|| path.strip_prefix("/v2"))
        .unwrap_or("");
    oci::handle(
        app.layout.as_ref(),
        request.method(),
        rest,
        uri.query(),
        request.headers(),
    )
    .await
}
