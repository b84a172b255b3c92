//! Downloads by URL (zip starter projects, parent devfiles, icons) and a content-addressed
//! cache of what was downloaded.
//!
//! URLs go through the manifest's `url-mirror` rules ([`crate::url_mirror`]); the lockfile
//! records them as written. Credentials the manifest wrote in a mirror's URL
//! ([`crate::userinfo`]) go in an `Authorization` header; errors name the URL as written,
//! without credentials, and never the mirror's URL (reqwest's errors are stripped of it).
//! `file://` URLs (a local mirror folder) are read from disk. The cache
//! (`.airgap/cache/files/sha256/<hex>`) is keyed by the SHA-256 the lock records, so apply reads
//! what lock saw, and a cache entry is only ever written whole (temp file + rename).
//!
//! Plain `http://` URLs that no proxy takes (a loopback or in-house mirror) go through a
//! plain HTTP/1.1 client (hyper-util's, which reqwest is built on) rather than reqwest:
//! building a reqwest client builds a TLS context, which reads the system's CA roots (with
//! native-tls that was about a sixth of a warm `airgap lock`'s CPU; with rustls, see
//! [`crate::tls`], it is about 3.5 ms and some 150 file opens, still for no TLS). A redirect answered
//! there is followed by reqwest, as is every `https://` URL and every URL a proxy takes
//! (`HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, read as reqwest reads them).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::url_mirror::{UrlMirror, mirror_url};
use crate::userinfo::{UrlCredentials, redact};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum FetchError {
    #[error("GET `{url}` answered HTTP {status}")]
    #[diagnostic(code(airgap::fetch::status))]
    Status { url: String, status: u16 },
    #[error("`{url}` is read from the file `{path}`, which does not exist")]
    #[diagnostic(
        code(airgap::fetch::missing_file),
        help(
            "put the file there, or correct the `url-mirror` rule (or the `file://` URL) that points at it"
        )
    )]
    MissingFile { url: String, path: String },
    #[error("cannot download `{url}`: {message}")]
    #[diagnostic(
        code(airgap::fetch::unreachable),
        help(
            "check the URL and the network, or add a `url-mirror` rule that points at a reachable copy"
        )
    )]
    Unreachable { url: String, message: String },
    #[error("`{url}` has sha256 {actual}, but the lock says {expected}")]
    #[diagnostic(
        code(airgap::fetch::digest),
        help("the content changed upstream; run `airgap lock --update` to accept the new content")
    )]
    Mismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("cache error at `{}`: {source}", path.display())]
    #[diagnostic(code(airgap::fetch::cache))]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The client for plain `http://` URLs: no TLS.
type PlainClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

/// What one GET answered.
enum Answer {
    Body(Vec<u8>),
    /// Neither a success nor a redirect.
    Status(u16),
    /// A 3xx from the plain client: reqwest follows it.
    Redirect,
    /// No answer: the connection or the body failed.
    Failed(String),
}

/// An HTTP client plus the mirror rules and the cache. The clients (reqwest's with its TLS
/// set-up, which reads the system's CA bundle, and the plain one) are made on the first
/// request that needs each: a run that reads only the cache and `file://` mirrors pays for
/// neither, one that reads only plain-http mirrors never builds TLS. Clones share them.
#[derive(Clone)]
pub struct Fetcher {
    client: std::sync::Arc<std::sync::OnceLock<reqwest::Client>>,
    plain: std::sync::Arc<
        std::sync::OnceLock<(PlainClient, hyper_util::client::proxy::matcher::Matcher)>,
    >,
    mirrors: Vec<UrlMirror>,
    credentials: UrlCredentials,
    cache: PathBuf,
}

impl Fetcher {
    pub fn new(mirrors: Vec<UrlMirror>, credentials: UrlCredentials, cache: PathBuf) -> Self {
        Self {
            client: Default::default(),
            plain: Default::default(),
            mirrors,
            credentials,
            cache,
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            crate::tls::install_provider();
            reqwest::Client::builder()
                .user_agent(concat!("airgap/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default()
        })
    }

    /// The URL actually fetched for a URL as written.
    pub fn effective_url(&self, url: &str) -> String {
        mirror_url(&self.mirrors, url)
    }

    /// Downloads `url` (through mirrors), retrying dropped connections and 5xx answers.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let effective = self.effective_url(url);
        let url = &redact(url);
        if let Some(path) = effective.strip_prefix("file://") {
            let path =
                crate::userinfo::percent_decode(path.split(['?', '#']).next().unwrap_or(path));
            return std::fs::read(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => FetchError::MissingFile {
                    url: url.to_string(),
                    path: path.clone(),
                },
                _ => FetchError::Unreachable {
                    url: url.to_string(),
                    message: format!("{}: {e}", path),
                },
            });
        }
        let mut delay = std::time::Duration::from_millis(200);
        let mut attempt = 0;
        let mut plain = self.plain_uri(&effective);
        loop {
            attempt += 1;
            let answer = match &plain {
                Some(uri) => self.get_plain(uri.clone(), &effective).await,
                None => self.get_reqwest(&effective).await,
            };
            let retry = match answer {
                Answer::Body(bytes) => return Ok(bytes),
                Answer::Redirect => {
                    plain = None;
                    attempt -= 1;
                    continue;
                }
                Answer::Status(status) if (500..600).contains(&status) => FetchError::Status {
                    url: url.to_string(),
                    status,
                },
                Answer::Status(status) => {
                    return Err(FetchError::Status {
                        url: url.to_string(),
                        status,
                    });
                }
                Answer::Failed(message) => FetchError::Unreachable {
                    url: url.to_string(),
                    message,
                },
            };
            if attempt >= 4 {
                return Err(retry);
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }

    /// The URI to GET with the plain client: `effective` when it is `http://` and no proxy
    /// takes it.
    fn plain_uri(&self, effective: &str) -> Option<hyper::Uri> {
        if !effective.starts_with("http://") {
            return None;
        }
        let uri: hyper::Uri = effective.parse().ok()?;
        let (_, proxies) = self.plain_client();
        proxies.intercept(&uri).is_none().then_some(uri)
    }

    fn plain_client(&self) -> &(PlainClient, hyper_util::client::proxy::matcher::Matcher) {
        self.plain.get_or_init(|| {
            let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
            connector.set_connect_timeout(Some(std::time::Duration::from_secs(30)));
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build(connector);
            (
                client,
                hyper_util::client::proxy::matcher::Matcher::from_system(),
            )
        })
    }

    async fn get_plain(&self, uri: hyper::Uri, effective: &str) -> Answer {
        use base64::Engine as _;
        use http_body_util::BodyExt as _;
        let mut request = hyper::Request::get(uri).header(
            hyper::header::USER_AGENT,
            concat!("airgap/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(c) = self.credentials.lookup(effective) {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.username, c.password));
            request = request.header(hyper::header::AUTHORIZATION, format!("Basic {token}"));
        }
        let Ok(request) = request.body(http_body_util::Empty::new()) else {
            return Answer::Redirect; // not a request hyper can send: let reqwest say why
        };
        let response = match self.plain_client().0.request(request).await {
            Ok(r) => r,
            Err(e) => return Answer::Failed(error_chain(&e)),
        };
        let status = response.status();
        if status.is_redirection() {
            return Answer::Redirect;
        }
        if !status.is_success() {
            return Answer::Status(status.as_u16());
        }
        match response.into_body().collect().await {
            Ok(body) => Answer::Body(body.to_bytes().to_vec()),
            Err(e) => Answer::Failed(error_chain(&e)),
        }
    }

    async fn get_reqwest(&self, effective: &str) -> Answer {
        let mut request = self.client().get(effective);
        if let Some(c) = self.credentials.lookup(effective) {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        match request.send().await {
            Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                Ok(b) => Answer::Body(b.to_vec()),
                Err(e) => Answer::Failed(error_chain(&e.without_url())),
            },
            Ok(resp) => Answer::Status(resp.status().as_u16()),
            Err(e) => Answer::Failed(error_chain(&e.without_url())),
        }
    }

    fn cache_path(&self, sha256: &str) -> PathBuf {
        self.cache.join("sha256").join(sha256)
    }

    /// Cached bytes for a digest, if present and intact.
    pub fn cached(&self, sha256: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.cache_path(sha256)).ok()?;
        (sha256_hex(&bytes) == sha256).then_some(bytes)
    }

    /// Stores bytes in the cache under their digest; returns the digest.
    pub fn store(&self, bytes: &[u8]) -> Result<String, FetchError> {
        let sha = sha256_hex(bytes);
        let path = self.cache_path(&sha);
        if path.exists() {
            return Ok(sha);
        }
        write_atomic(&path, bytes).map_err(|source| FetchError::Cache {
            path: path.clone(),
            source,
        })?;
        Ok(sha)
    }

    /// Downloads and caches; returns (sha256, size).
    pub async fn get_and_store(&self, url: &str) -> Result<(String, u64), FetchError> {
        let bytes = self.get(url).await?;
        let sha = self.store(&bytes)?;
        Ok((sha, bytes.len() as u64))
    }

    /// The bytes of `url` with the locked digest: from the cache, or downloaded and checked.
    pub async fn get_locked(&self, url: &str, sha256: &str) -> Result<Vec<u8>, FetchError> {
        if let Some(b) = self.cached(sha256) {
            return Ok(b);
        }
        let bytes = self.get(url).await?;
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            return Err(FetchError::Mismatch {
                url: redact(url),
                expected: sha256.to_string(),
                actual,
            });
        }
        self.store(&bytes)?;
        Ok(bytes)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Writes a file whole or not at all: a temp file in the same folder, written, fsync'd, its
/// size on disk checked, then renamed over `path`. Every error (a full disk) is returned and
/// leaves `path` as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    write_atomic_in(dir, path, bytes)
}

/// [`write_atomic`] with the temp file in `tmp_dir`, which must be on the file system of
/// `path` (a staging folder outside a tree that others list).
pub fn write_atomic_in(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(tmp_dir)?;
    tmp.write_all(bytes)?;
    tmp.flush()?;
    tmp.as_file().sync_all()?;
    let on_disk = tmp.as_file().metadata()?.len();
    if on_disk != bytes.len() as u64 {
        return Err(std::io::Error::other(format!(
            "`{}` holds {on_disk} bytes after {} were written",
            tmp.path().display(),
            bytes.len()
        )));
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
