//! Real registries for tests: `docker-registry` (CNCF distribution) on 127.0.0.1 with a free
//! port and a temp storage folder, an in-process fault-injection proxy to put in front of one,
//! and a generator of small random images.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airgap::oci::digest::Digest;
use airgap::oci::media;
use airgap::oci::mirror::{RegistryAccess, Tls};
use airgap::oci::{BlobData, LocalBlob, LocalImage};
use bytes::Bytes;

/// A running `docker-registry serve`, killed on drop.
pub struct TestRegistry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// Options of a test registry.
#[derive(Default, Clone)]
pub struct RegistryOptions {
    /// htpasswd basic auth with this user and password.
    pub basic_auth: Option<(String, String)>,
    /// Serve HTTPS with a self-signed certificate for 127.0.0.1 (see [`TestRegistry::ca_file`]).
    pub tls: bool,
    /// Refuse `DELETE` (distribution's default; the tests' registries allow it otherwise).
    pub deletes_disabled: bool,
    /// With `tls`: the certificate is a CA (`basicConstraints CA:TRUE`), as `openssl req -x509`
    /// makes one by default.
    pub certificate_is_a_ca: bool,
}

impl TestRegistry {
    pub fn start() -> Self {
        Self::start_with(RegistryOptions::default())
    }

    pub fn start_with(options: RegistryOptions) -> Self {
        let mut last = String::new();
        // A port found free can be taken before the registry binds it: try a few.
        for _ in 0..5 {
            match Self::try_start(&options) {
                Ok(r) => return r,
                Err(e) => last = e,
            }
        }
        panic!("docker-registry did not start: {last}");
    }

    fn try_start(options: &RegistryOptions) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = super::free_port();
        let storage = dir.path().join("storage");
        let mut auth = String::new();
        if let Some((user, password)) = &options.basic_auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .map_err(|e| format!("htpasswd: {e}"))?;
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).map_err(|e| e.to_string())?;
            auth = format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            );
        }
        let mut tls = String::new();
        if options.tls {
            let (cert, key) = if options.certificate_is_a_ca {
                certificate(dir.path(), "cert", "CA:TRUE")?
            } else {
                self_signed_certificate(dir.path(), "cert")?
            };
            tls = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        let mut config = config(&storage, &format!("127.0.0.1:{port}"), &tls, &auth);
        if options.deletes_disabled {
            config = config.replace(
                "  delete:\n    enabled: true\n",
                "  delete:\n    enabled: false\n",
            );
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(dir.path().join("registry.log")).map_err(|e| e.to_string())?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run docker-registry: {e}"))?;
        let mut registry = TestRegistry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = registry.child.try_wait() {
                let log = std::fs::read_to_string(registry.dir.path().join("registry.log"))
                    .unwrap_or_default();
                return Err(format!("exited with {status}: {log}"));
            }
            // A TLS server answers plain HTTP with 400: it is up.
            if let Some(status) = http_status(port, "/v2/")
                && (status == 200 || status == 401 || (options.tls && status == 400))
            {
                return Ok(registry);
            }
            if Instant::now() > deadline {
                return Err("`/v2/` did not answer within 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU time the registry process used so far (user + system).
    pub fn cpu(&self) -> Duration {
        cpu_of(&format!("/proc/{}/stat", self.child.id()))
    }

    /// The registry process's id.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn access(&self) -> RegistryAccess {
        RegistryAccess::new(self.host(), Tls::PlainHttp)
    }

    /// The self-signed certificate of a TLS registry.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.crt")
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Whether the registry's storage holds the blob (committed uploads only).
    pub fn stores_blob(&self, digest: &Digest) -> bool {
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data")
            .is_file()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time of this process's children that ended and were waited for so far
/// (a dropped [`TestRegistry`] is one of them).
pub fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// User + system CPU time from a `/proc/…/stat` file (zero if unreadable).
pub fn cpu_of(stat: &str) -> Duration {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the `(comm)`: state is the 3rd field; utime and stime are the 14th and 15th.
    let after = text.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// The status of a plain `GET path` (HTTP/1.0), without any client library or runtime.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
         Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
         application/vnd.docker.distribution.manifest.v2+json\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------- fault-injection proxy

/// What a fault does to a matching request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (and forward nothing).
    Status(u16),
    /// Answer 429 with `Retry-After: <seconds>` (and forward nothing).
    Throttled(u64),
    /// Forward, but flip one byte of the response body (same length).
    CorruptBody,
    /// Forward the first chunk of the response body, then drop the connection.
    DropConnection,
}

struct Fault {
    method: String,
    path_contains: String,
    kind: FaultKind,
    remaining: AtomicUsize,
    fired: AtomicUsize,
}

/// A request seen by the proxy.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub status: u16,
}

#[derive(Default)]
struct ProxyState {
    upstream: String,
    own: String,
    faults: Mutex<Vec<Arc<Fault>>>,
    seen: Mutex<Vec<Seen>>,
    /// Token auth in front of the registry: (user, password, token).
    bearer: Mutex<Option<(String, String, String)>>,
}

/// An HTTP proxy on 127.0.0.1 in front of a registry, in this process: it forwards every
/// request (rewriting `Location` so uploads come back through it), records them, and applies
/// faults.
pub struct FaultProxy {
    pub port: u16,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream_host: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(ProxyState {
            upstream: format!("http://{upstream_host}"),
            own: format!("http://127.0.0.1:{port}"),
            ..ProxyState::default()
        });
        let client = crate::support::async_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("proxy client");
        let app = axum::Router::new().fallback({
            let state = state.clone();
            move |req: axum::extract::Request| forward(state.clone(), client.clone(), req)
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy { port, state, task }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn access(&self) -> RegistryAccess {
        RegistryAccess::new(self.host(), Tls::PlainHttp)
    }

    /// Applies `kind` to the next `times` requests with `method` whose path contains
    /// `path_contains`.
    pub fn fault(&self, method: &str, path_contains: &str, kind: FaultKind, times: usize) {
        self.state.faults.lock().unwrap().push(Arc::new(Fault {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            kind,
            remaining: AtomicUsize::new(times),
            fired: AtomicUsize::new(0),
        }));
    }

    /// How many times the faults matching `path_contains` fired.
    pub fn fired(&self, path_contains: &str) -> usize {
        self.state
            .faults
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.path_contains == path_contains)
            .map(|f| f.fired.load(Ordering::SeqCst))
            .sum()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Requests with `method` whose path and query contain `needle`.
    pub fn count(&self, method: &str, needle: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path_and_query.contains(needle))
            .count()
    }

    /// Requires bearer tokens, as Docker Hub and quay.io do: `/token` (the realm) hands out
    /// `token` for Basic `user:password`, every other request needs `Bearer token`.
    pub fn require_bearer(&self, user: &str, password: &str, token: &str) {
        *self.state.bearer.lock().unwrap() = Some((user.into(), password.into(), token.into()));
    }

    pub fn clear_seen(&self) {
        self.state.seen.lock().unwrap().clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    state: Arc<ProxyState>,
    client: reqwest::Client,
    req: axum::extract::Request,
) -> axum::response::Response {
    use futures::StreamExt as _;
    let method = req.method().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let fault = state
        .faults
        .lock()
        .unwrap()
        .iter()
        .find(|f| {
            f.method == method
                && path_and_query.contains(&f.path_contains)
                && f.remaining
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
        })
        .cloned();
    if let Some(f) = &fault {
        f.fired.fetch_add(1, Ordering::SeqCst);
    }
    let record = |status: u16| {
        state.seen.lock().unwrap().push(Seen {
            method: method.clone(),
            path_and_query: path_and_query.clone(),
            status,
        });
    };
    let bearer = state.bearer.lock().unwrap().clone();
    if let Some((user, password, token)) = bearer {
        let authorization = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if path_and_query.starts_with("/token") {
            use base64::Engine as _;
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            );
            let status = if authorization == expected { 200 } else { 401 };
            record(status);
            return axum::response::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(format!(r#"{{"token":"{token}"}}"#)))
                .unwrap();
        }
        if authorization != format!("Bearer {token}") {
            record(401);
            return axum::response::Response::builder()
                .status(401)
                .header(
                    "www-authenticate",
                    format!(
                        r#"Bearer realm="{}/token",service="test-registry""#,
                        state.own
                    ),
                )
                .body(axum::body::Body::from(
                    r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
                ))
                .unwrap();
        }
    }
    if let Some(FaultKind::Status(status)) = fault.as_ref().map(|f| f.kind) {
        record(status);
        return axum::response::Response::builder()
            .status(status)
            .body(axum::body::Body::from("injected fault"))
            .unwrap();
    }
    if let Some(FaultKind::Throttled(seconds)) = fault.as_ref().map(|f| f.kind) {
        record(429);
        return axum::response::Response::builder()
            .status(429)
            .header("retry-after", seconds.to_string())
            .body(axum::body::Body::from("injected fault"))
            .unwrap();
    }
    let (parts, body) = req.into_parts();
    let mut upstream = client.request(
        parts.method.clone(),
        format!("{}{}", state.upstream, path_and_query),
    );
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "host" | "connection" | "transfer-encoding" | "authorization"
        ) {
            upstream = upstream.header(name, value);
        }
    }
    let response = match upstream
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => {
            record(502);
            return axum::response::Response::builder()
                .status(502)
                .body(axum::body::Body::empty())
                .unwrap();
        }
    };
    record(response.status().as_u16());
    let mut builder = axum::response::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        if matches!(name.as_str(), "connection" | "transfer-encoding") {
            continue;
        }
        if name.as_str() == "location" {
            let text = value
                .to_str()
                .unwrap_or_default()
                .replace(&state.upstream, &state.own);
            builder = builder.header(name, text);
        } else {
            builder = builder.header(name, value);
        }
    }
    let corrupt = fault
        .as_ref()
        .is_some_and(|f| f.kind == FaultKind::CorruptBody);
    let mut first = true;
    let stream = response.bytes_stream().map(move |chunk| {
        chunk.map(|c| {
            if corrupt && first && !c.is_empty() {
                first = false;
                let mut v = c.to_vec();
                v[0] ^= 0xff;
                Bytes::from(v)
            } else {
                c
            }
        })
    });
    builder.body(axum::body::Body::from_stream(stream)).unwrap()
}

// ---------------------------------------------------------------- test images

/// Deterministic incompressible bytes (xorshift64*), so tests and benches make the same
/// images from the same seed without a dependency.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A single-platform image made here.
#[derive(Clone, Debug)]
pub struct GeneratedImage {
    pub local: LocalImage,
    pub digest: Digest,
    pub size: u64,
    pub platform: String,
    pub layer_digests: Vec<Digest>,
    pub config_digest: Digest,
}

/// An image with random layers of `layer_sizes` bytes for `platform` (`os/arch[/variant]`).
pub fn image(seed: u64, layer_sizes: &[usize], platform: &str) -> GeneratedImage {
    let mut parts = platform.split('/');
    let os = parts.next().unwrap_or("linux");
    let arch = parts.next().unwrap_or("amd64");
    let variant = parts.next();
    let mut blobs = Vec::new();
    let mut layers = Vec::new();
    for (i, size) in layer_sizes.iter().enumerate() {
        let data = Bytes::from(random_bytes(seed * 1000 + i as u64, *size));
        let digest = Digest::of(&data);
        layers.push(serde_json::json!({
            "mediaType": media::OCI_LAYER_GZIP,
            "digest": digest.to_string(),
            "size": size,
        }));
        blobs.push(LocalBlob {
            digest,
            size: *size as u64,
            data: BlobData::Bytes(data),
        });
    }
    let mut config = serde_json::json!({
        "architecture": arch,
        "os": os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": blobs.iter().map(|b| b.digest.to_string()).collect::<Vec<_>>()},
        "seed": seed,
    });
    if let Some(v) = variant {
        config["variant"] = v.into();
    }
    let config = Bytes::from(serde_json::to_vec(&config).unwrap());
    let config_digest = Digest::of(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    });
    let manifest = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap());
    let layer_digests = blobs.iter().map(|b| b.digest.clone()).collect();
    blobs.push(LocalBlob {
        digest: config_digest.clone(),
        size: config.len() as u64,
        data: BlobData::Bytes(config),
    });
    GeneratedImage {
        digest: Digest::of(&manifest),
        size: manifest.len() as u64,
        local: LocalImage {
            manifest,
            media_type: media::OCI_MANIFEST.into(),
            blobs,
            mount_from: Vec::new(),
            base: None,
        },
        platform: platform.to_owned(),
        layer_digests,
        config_digest,
    }
}

/// An OCI index of `children` (pushed before it by [`push_index`]).
pub fn index(children: &[GeneratedImage]) -> LocalImage {
    let manifests: Vec<_> = children
        .iter()
        .map(|c| {
            let mut parts = c.platform.split('/');
            let mut platform = serde_json::json!({
                "os": parts.next().unwrap_or("linux"),
                "architecture": parts.next().unwrap_or("amd64"),
            });
            if let Some(v) = parts.next() {
                platform["variant"] = v.into();
            }
            serde_json::json!({
                "mediaType": media::OCI_MANIFEST,
                "digest": c.digest.to_string(),
                "size": c.size,
                "platform": platform,
            })
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    });
    LocalImage {
        manifest: Bytes::from(serde_json::to_vec_pretty(&index).unwrap()),
        media_type: media::OCI_INDEX.into(),
        blobs: Vec::new(),
        mount_from: Vec::new(),
        base: None,
    }
}

/// A client of the library without credentials (the test registries ask for none).
pub fn anonymous_client() -> airgap::oci::Client {
    airgap::oci::Client::new(airgap::oci::ClientConfig {
        credentials: airgap::oci::auth::Credentials::anonymous(),
        ..Default::default()
    })
}

/// A docker-registry configuration: filesystem storage at `storage`, listening on `addr`, with
/// `http_extra` lines inside `http:` (TLS) and `extra` top-level sections (auth).
pub fn config(storage: &Path, addr: &str, http_extra: &str, extra: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {addr}\n{http_extra}\
         {extra}",
        storage.display()
    )
}

/// Runs `skopeo ARGS…` and returns stdout, or panics with its stderr.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `skopeo …` that may fail: `Err(stderr)`.
pub fn try_skopeo(args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// A self-signed certificate for 127.0.0.1 and its PKCS#8 key, written by `openssl` into `dir`
/// as `<name>.crt` and `<name>.key`: a server's own certificate, not a CA, as rustls requires
/// (`oci::tls_refuses_a_ca_certificate_as_the_server_s_and_says_what_to_do` covers a CA).
pub fn self_signed_certificate(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    certificate(dir, name, "CA:FALSE")
}

/// A self-signed certificate for 127.0.0.1 with `basicConstraints` `constraint`.
fn certificate(dir: &Path, name: &str, constraint: &str) -> Result<(PathBuf, PathBuf), String> {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-addext")
        .arg(format!("basicConstraints=critical,{constraint}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!("openssl: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok((cert, key))
}
