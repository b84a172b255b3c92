//! A small client for the OCI distribution API, on reqwest.
//!
//! Why not `oci_client::Client`: its raw manifest pull drops `Content-Type` and
//! `Docker-Content-Digest`, a refused cross-repository mount (202) is an error rather than an
//! upload session, its errors do not say which statuses are worth a retry, and a registry that
//! omits `Location` hits an `expect`. Here every call is one request (plus the auth challenge
//! once per host and scope), so the copy engine can count, bound and retry them itself.
//!
//! Unreachable hosts: a request whose connection cannot be made (refused, a name that does not
//! resolve, a failed TLS handshake) is [`OciError::Unreachable`], which is not retried; the
//! [`Registry`] remembers it, and every later request to the host fails at once with the same
//! error instead of knocking again. A stopped target so stops a run after the requests already
//! in flight, not after minutes of retries; the caller reports the host once
//! ([`Registry::unreachable`]).
//!
//! Auth: the first 401 of a host tells its scheme. Basic: the credential goes on every request
//! from then on. Bearer: a token is fetched from the challenge's realm for the scope of the
//! request (`repository:NAME:pull` or `:pull,push`, plus `repository:FROM:pull` for a mount),
//! anonymously or with the credential, and cached per scope.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};

use super::auth::{Credential, Credentials};
use super::digest::Digest;
use super::error::OciError;
use super::media;
use super::mirror::{RegistryAccess, Tls};

/// Access a request needs; bearer tokens are scoped by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    Pull(String),
    Push(String),
    /// Push to the first repository, pull from the second (a cross-repository mount).
    Mount(String, String),
}

impl Scope {
    fn params(&self) -> Vec<String> {
        match self {
            Scope::Pull(r) => vec![format!("repository:{r}:pull")],
            Scope::Push(r) => vec![format!("repository:{r}:pull,push")],
            Scope::Mount(to, from) => vec![
                format!("repository:{to}:pull,push"),
                format!("repository:{from}:pull"),
            ],
        }
    }
}

#[derive(Debug, Clone)]
enum Scheme {
    Unknown,
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// What a HEAD of a manifest says.
#[derive(Debug, Clone)]
pub(crate) struct ManifestHead {
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
}

/// A manifest as fetched: raw bytes and what the registry said about them.
pub(crate) struct FetchedManifest {
    pub bytes: Bytes,
    pub content_type: Option<String>,
    pub header_digest: Option<Digest>,
}

/// The start of a blob upload.
pub(crate) enum UploadStart {
    /// A cross-repository mount succeeded: nothing to upload.
    Mounted,
    /// An upload session to PUT the content to.
    Session(Url),
}

/// One registry as contacted (host, TLS), shared by every copy of a run.
pub(crate) struct Registry {
    pub(crate) host: String,
    base: Url,
    http: reqwest::Client,
    credentials: Credentials,
    credential: tokio::sync::OnceCell<Option<Credential>>,
    scheme: Mutex<Scheme>,
    tokens: Mutex<HashMap<Scope, String>>,
    /// Why the first connection that could not be made failed (see the module docs).
    unreachable: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({})", self.base)
    }
}

impl Registry {
    pub(crate) fn new(access: &RegistryAccess, credentials: Credentials) -> Result<Self, OciError> {
        let scheme = match access.tls {
            Tls::PlainHttp => "http",
            Tls::Verify | Tls::Insecure => "https",
        };
        let base = Url::parse(&format!("{scheme}://{}/", access.host)).map_err(|e| {
            OciError::Connection {
                host: access.host.clone(),
                action: "parse its address".into(),
                message: e.to_string(),
            }
        })?;
        let connector = tls_connector(access)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("airgap/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300))
            .pool_max_idle_per_host(64)
            .use_preconfigured_tls(connector)
            .build()
            .map_err(|e| OciError::Connection {
                host: access.host.clone(),
                action: "set up TLS".into(),
                message: error_chain(&e),
            })?;
        Ok(Registry {
            host: access.host.clone(),
            base,
            http,
            credentials,
            credential: tokio::sync::OnceCell::new(),
            scheme: Mutex::new(Scheme::Unknown),
            tokens: Mutex::new(HashMap::new()),
            unreachable: std::sync::OnceLock::new(),
        })
    }

    fn url(&self, path: &str) -> Result<Url, OciError> {
        self.base.join(path).map_err(|e| OciError::Connection {
            host: self.host.clone(),
            action: format!("build the URL for `{path}`"),
            message: e.to_string(),
        })
    }

    async fn credential(&self) -> Result<Option<Credential>, OciError> {
        let credentials = self.credentials.clone();
        let host = self.host.clone();
        self.credential
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || credentials.lookup(&host))
                    .await
                    .map_err(|e| OciError::Connection {
                        host: String::new(),
                        action: "look up credentials".into(),
                        message: e.to_string(),
                    })?
                    .map_err(OciError::from)
            })
            .await
            .cloned()
    }

    fn scheme(&self) -> Scheme {
        self.scheme
            .lock()
            .map(|s| s.clone())
            .unwrap_or(Scheme::Unknown)
    }

    /// The Authorization header for `scope`, fetching a token if the host uses bearer auth.
    async fn authorization(&self, scope: &Scope) -> Result<Option<HeaderValue>, OciError> {
        match self.scheme() {
            Scheme::Unknown | Scheme::Anonymous => Ok(None),
            Scheme::Basic => Ok(self.basic_header().await?),
            Scheme::Bearer { realm, service } => {
                let cached = self.tokens.lock().ok().and_then(|t| t.get(scope).cloned());
                let token = match cached {
                    Some(t) => t,
                    None => {
                        let t = self.fetch_token(&realm, service.as_deref(), scope).await?;
                        if let Ok(mut tokens) = self.tokens.lock() {
                            tokens.insert(scope.clone(), t.clone());
                        }
                        t
                    }
                };
                Ok(HeaderValue::from_str(&format!("Bearer {token}"))
                    .ok()
                    .map(sensitive))
            }
        }
    }

    async fn basic_header(&self) -> Result<Option<HeaderValue>, OciError> {
        match self.credential().await? {
            Some(Credential::Basic { username, password }) => {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                Ok(HeaderValue::from_str(&format!("Basic {encoded}"))
                    .ok()
                    .map(sensitive))
            }
            _ => Ok(None),
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<String, OciError> {
        let action = || format!("a token request for {}", scope.params().join(" "));
        let mut url = Url::parse(realm).map_err(|e| OciError::Connection {
            host: self.host.clone(),
            action: action(),
            message: format!("the token realm `{realm}` is not a URL: {e}"),
        })?;
        let credential = self.credential().await?;
        let request = match &credential {
            Some(Credential::IdentityToken(token)) => {
                let mut form = Url::parse("http://form/").map_err(|e| OciError::Connection {
                    host: self.host.clone(),
                    action: action(),
                    message: e.to_string(),
                })?;
                {
                    let mut q = form.query_pairs_mut();
                    q.append_pair("grant_type", "refresh_token");
                    q.append_pair("refresh_token", token);
                    q.append_pair("client_id", "airgap");
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for p in scope.params() {
                        q.append_pair("scope", &p);
                    }
                }
                let body = form.query().unwrap_or_default().to_owned();
                self.http
                    .post(url)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for p in scope.params() {
                        q.append_pair("scope", &p);
                    }
                }
                let r = self.http.get(url);
                match other {
                    Some(Credential::Basic { username, password }) => {
                        r.basic_auth(username, Some(password))
                    }
                    _ => r,
                }
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| self.connection(action(), &e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(match credential {
                Some(_) => OciError::Unauthorized {
                    host: self.host.clone(),
                    action: action(),
                },
                None => self.no_credentials(action()),
            });
        }
        if !status.is_success() {
            return Err(OciError::Status {
                host: self.host.clone(),
                action: action(),
                status: status.as_u16(),
                body: None,
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| self.connection(action(), &e))?;
        body.token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OciError::Status {
                host: self.host.clone(),
                action: action(),
                status: status.as_u16(),
                body: Some("the token response has no token".into()),
            })
    }

    /// The error of a request that got no response: [`OciError::Unreachable`] (remembered)
    /// when no connection could be made, else a dropped connection worth a retry.
    fn connection(&self, action: String, e: &reqwest::Error) -> OciError {
        if e.is_connect() {
            let message = self.unreachable.get_or_init(|| root_cause(e)).clone();
            return OciError::Unreachable {
                host: self.host.clone(),
                message,
            };
        }
        OciError::Connection {
            host: self.host.clone(),
            action,
            message: error_chain(e),
        }
    }

    /// Why no connection to this host could be made, if that happened in this run.
    pub(crate) fn unreachable(&self) -> Option<OciError> {
        self.unreachable.get().map(|message| OciError::Unreachable {
            host: self.host.clone(),
            message: message.clone(),
        })
    }

    /// Fails at once when a connection to this host could not be made earlier in the run.
    fn check_reachable(&self) -> Result<(), OciError> {
        match self.unreachable() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One `GET /v2/` without credentials: whether anything answers at the address (whatever
    /// the status; a 401 is an answer).
    pub(crate) async fn ping(&self) -> Result<(), OciError> {
        self.check_reachable()?;
        let url = self.url("v2/")?;
        self.http
            .get(url)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.connection("a version check".into(), &e))
    }

    /// Sends a request built by `build` (called again after an auth challenge), with auth.
    /// Returns the response whatever its status, except a 401 that auth cannot fix.
    pub(crate) async fn send(
        &self,
        scope: &Scope,
        action: &dyn Fn() -> String,
        build: &dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OciError> {
        self.check_reachable()?;
        let mut challenged = false;
        loop {
            let mut request = build(&self.http);
            if let Some(auth) = self.authorization(scope).await? {
                request = request.header(header::AUTHORIZATION, auth);
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.connection(action(), &e))?;
            if response.status() != StatusCode::UNAUTHORIZED {
                if matches!(self.scheme(), Scheme::Unknown)
                    && let Ok(mut s) = self.scheme.lock()
                {
                    *s = Scheme::Anonymous;
                }
                return Ok(response);
            }
            if challenged {
                return Err(self.denied(action()).await);
            }
            challenged = true;
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(parse_challenge);
            let new_scheme = match challenge {
                Some(Some(Challenge::Bearer { realm, service })) => {
                    Scheme::Bearer { realm, service }
                }
                Some(Some(Challenge::Basic)) => {
                    if self.credential().await?.is_none() {
                        return Err(self.denied(action()).await);
                    }
                    Scheme::Basic
                }
                _ => return Err(self.denied(action()).await),
            };
            if let Ok(mut tokens) = self.tokens.lock() {
                // A token that got a 401 is stale or too narrow.
                tokens.remove(scope);
            }
            if let Ok(mut s) = self.scheme.lock() {
                *s = new_scheme;
            }
        }
    }

    /// A refusal of access: the credentials sent were refused, or none were found to send.
    async fn denied(&self, action: String) -> OciError {
        match self.credential().await {
            Ok(Some(_)) => OciError::Unauthorized {
                host: self.host.clone(),
                action,
            },
            Ok(None) => self.no_credentials(action),
            Err(e) => e,
        }
    }

    fn no_credentials(&self, action: String) -> OciError {
        OciError::NoCredentials {
            host: self.host.clone(),
            action,
            searched: self.credentials.searched(),
        }
    }

    fn status_error(&self, action: String, status: StatusCode, body: Option<String>) -> OciError {
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // Credentials are looked up only once a registry asks for them: none looked up,
            // or none found, means none were sent.
            return match self.credential.get() {
                Some(Some(_)) => OciError::Unauthorized {
                    host: self.host.clone(),
                    action,
                },
                _ => self.no_credentials(action),
            };
        }
        OciError::Status {
            host: self.host.clone(),
            action,
            status: status.as_u16(),
            body,
        }
    }

    async fn fail(&self, action: String, response: reqwest::Response) -> OciError {
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            // Delay-seconds only: registries send that; an HTTP date falls back to the backoff.
            if let Some(seconds) = header_str(response.headers(), header::RETRY_AFTER.as_str())
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                return OciError::Throttled {
                    host: self.host.clone(),
                    action,
                    status: status.as_u16(),
                    retry_after: Duration::from_secs(seconds),
                };
            }
        }
        let body = response
            .text()
            .await
            .ok()
            .map(|b| b.trim().chars().take(300).collect::<String>())
            .filter(|b| !b.is_empty());
        self.status_error(action, status, body)
    }

    /// GET a manifest by tag or digest, accepting every manifest and index type.
    pub(crate) async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, OciError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let action = || format!("a manifest request for `{}`", named(repository, reference));
        let response = self
            .send(&Scope::Pull(repository.into()), &action, &|c| {
                c.get(url.clone())
                    .header(header::ACCEPT, media::ACCEPT_MANIFESTS)
            })
            .await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(OciError::NotFound {
                    what: format!("{}/{}", self.host, named(repository, reference)),
                });
            }
            _ => return Err(self.fail(action(), response).await),
        }
        let content_type = header_str(response.headers(), header::CONTENT_TYPE.as_str())
            .map(|ct| ct.split(';').next().unwrap_or(ct).trim().to_owned());
        let header_digest =
            header_str(response.headers(), "docker-content-digest").and_then(|d| d.parse().ok());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.connection(action(), &e))?;
        Ok(FetchedManifest {
            bytes,
            content_type,
            header_digest,
        })
    }

    /// HEAD a manifest: `None` when the registry does not have it.
    pub(crate) async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
        scope: &Scope,
    ) -> Result<Option<ManifestHead>, OciError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let action = || format!("a manifest check for `{}`", named(repository, reference));
        let response = self
            .send(scope, &action, &|c| {
                c.head(url.clone())
                    .header(header::ACCEPT, media::ACCEPT_MANIFESTS)
            })
            .await?;
        match response.status() {
            s if s.is_success() => Ok(Some(ManifestHead {
                digest: header_str(response.headers(), "docker-content-digest")
                    .and_then(|d| d.parse().ok()),
                media_type: header_str(response.headers(), header::CONTENT_TYPE.as_str())
                    .map(|ct| ct.split(';').next().unwrap_or(ct).trim().to_owned()),
                size: header_str(response.headers(), header::CONTENT_LENGTH.as_str())
                    .and_then(|l| l.parse().ok()),
            })),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(self.status_error(action(), s, None)),
        }
    }

    /// Whether `repository` has the blob.
    pub(crate) async fn has_blob(
        &self,
        repository: &str,
        digest: &Digest,
        scope: &Scope,
    ) -> Result<bool, OciError> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let action = || format!("a blob check for `{digest}` in `{repository}`");
        let response = self.send(scope, &action, &|c| c.head(url.clone())).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(self.status_error(action(), s, None)),
        }
    }

    /// GET a blob; the caller streams the body.
    pub(crate) async fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<reqwest::Response, OciError> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let action = || format!("a download of `{digest}` from `{repository}`");
        let response = self
            .send(&Scope::Pull(repository.into()), &action, &|c| {
                c.get(url.clone())
            })
            .await?;
        match response.status() {
            s if s.is_success() => Ok(response),
            StatusCode::NOT_FOUND => Err(OciError::NotFound {
                what: format!("{}/{repository}@{digest}", self.host),
            }),
            _ => Err(self.fail(action(), response).await),
        }
    }

    /// Starts an upload to `repository`, as a mount of `digest` from `mount_from` when given.
    pub(crate) async fn start_upload(
        &self,
        repository: &str,
        mount: Option<(&Digest, &str)>,
    ) -> Result<UploadStart, OciError> {
        let mut url = self.url(&format!("v2/{repository}/blobs/uploads/"))?;
        let scope = match mount {
            Some((digest, from)) => {
                url.query_pairs_mut()
                    .append_pair("mount", digest.as_str())
                    .append_pair("from", from);
                Scope::Mount(repository.into(), from.into())
            }
            None => Scope::Push(repository.into()),
        };
        let action = || match mount {
            Some((d, from)) => format!("a mount of `{d}` from `{from}` into `{repository}`"),
            None => format!("an upload to `{repository}`"),
        };
        let response = self
            .send(&scope, &action, &|c| {
                c.post(url.clone()).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        match response.status() {
            StatusCode::CREATED if mount.is_some() => Ok(UploadStart::Mounted),
            StatusCode::ACCEPTED | StatusCode::CREATED => {
                Ok(UploadStart::Session(self.location(&response, &action)?))
            }
            _ => Err(self.fail(action(), response).await),
        }
    }

    fn location(
        &self,
        response: &reqwest::Response,
        action: &dyn Fn() -> String,
    ) -> Result<Url, OciError> {
        let location =
            header_str(response.headers(), header::LOCATION.as_str()).ok_or_else(|| {
                OciError::Status {
                    host: self.host.clone(),
                    action: action(),
                    status: response.status().as_u16(),
                    body: Some("the registry sent no `Location` for the upload".into()),
                }
            })?;
        self.base.join(location).map_err(|e| OciError::Status {
            host: self.host.clone(),
            action: action(),
            status: response.status().as_u16(),
            body: Some(format!("the upload `Location` is not a URL: {e}")),
        })
    }

    /// Completes an upload session with the whole blob in one PUT (the body may be a stream).
    pub(crate) async fn put_upload(
        &self,
        repository: &str,
        mut session: Url,
        digest: &Digest,
        size: u64,
        body: reqwest::Body,
    ) -> Result<(), OciError> {
        session
            .query_pairs_mut()
            .append_pair("digest", digest.as_str());
        let action = || format!("an upload of `{digest}` to `{repository}`");
        self.check_reachable()?;
        // Auth is already established by `start_upload`; the body cannot be replayed, so a
        // challenge here is an error the caller retries from the start.
        let mut request = self
            .http
            .put(session)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size.to_string())
            .body(body);
        if let Some(auth) = self.authorization(&Scope::Push(repository.into())).await? {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.connection(action(), &e))?;
        match response.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::ACCEPTED => Ok(()),
            StatusCode::UNAUTHORIZED => {
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.remove(&Scope::Push(repository.into()));
                }
                Err(OciError::Status {
                    host: self.host.clone(),
                    action: action(),
                    status: 503,
                    body: Some("the token expired during the upload".into()),
                })
            }
            _ => Err(self.fail(action(), response).await),
        }
    }

    /// Abandons an upload session (best effort).
    pub(crate) async fn cancel_upload(&self, repository: &str, session: Url) {
        let _ = self
            .send(
                &Scope::Push(repository.into()),
                &|| "an upload cancel".into(),
                &|c| c.delete(session.clone()),
            )
            .await;
    }

    /// PUT a manifest's raw bytes under a tag or its digest; checks the digest the registry
    /// reports.
    pub(crate) async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
        digest: &Digest,
    ) -> Result<(), OciError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let action = || format!("a manifest push to `{}`", named(repository, reference));
        let response = self
            .send(&Scope::Push(repository.into()), &action, &|c| {
                c.put(url.clone())
                    .header(header::CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.fail(action(), response).await);
        }
        if let Some(reported) = header_str(response.headers(), "docker-content-digest")
            .and_then(|d| d.parse::<Digest>().ok())
            && &reported != digest
        {
            return Err(OciError::Status {
                host: self.host.clone(),
                action: action(),
                status: response.status().as_u16(),
                body: Some(format!(
                    "the registry stored it as `{reported}`, not `{digest}`"
                )),
            });
        }
        Ok(())
    }

    /// Streams the body of a GET, as `Bytes` chunks.
    pub(crate) fn body_stream(
        &self,
        response: reqwest::Response,
        action: String,
    ) -> impl futures::Stream<Item = Result<Bytes, OciError>> + Send + 'static + use<> {
        use futures::TryStreamExt as _;
        let host = self.host.clone();
        response
            .bytes_stream()
            .map_err(move |e| OciError::Connection {
                host: host.clone(),
                action: action.clone(),
                message: error_chain(&e),
            })
    }
}

type ConnectorKey = (bool, Option<std::path::PathBuf>);

/// TLS connectors, built once per process and per setup (verify, insecure, extra CA): building
/// one loads the system CA bundle, which takes tens of milliseconds with OpenSSL 3, more than a
/// whole no-op run. Each [`Registry`] still gets its own reqwest client (and connection pool),
/// so nothing outlives the runtime that made it.
static CONNECTORS: std::sync::LazyLock<Mutex<HashMap<ConnectorKey, native_tls::TlsConnector>>> =
    std::sync::LazyLock::new(Mutex::default);
static DEFAULT_CONNECTOR: std::sync::OnceLock<Result<native_tls::TlsConnector, String>> =
    std::sync::OnceLock::new();

fn default_connector() -> Result<native_tls::TlsConnector, String> {
    DEFAULT_CONNECTOR
        .get_or_init(|| {
            native_tls::TlsConnector::builder()
                .build()
                .map_err(|e| error_chain(&e))
        })
        .clone()
}

fn tls_connector(access: &RegistryAccess) -> Result<native_tls::TlsConnector, OciError> {
    let fail = |action: &str, message: String| OciError::Connection {
        host: access.host.clone(),
        action: action.into(),
        message,
    };
    let insecure = access.tls == Tls::Insecure;
    if !insecure && access.ca_file.is_none() {
        return default_connector().map_err(|m| fail("set up TLS", m));
    }
    let key = (insecure, access.ca_file.clone());
    if let Some(c) = CONNECTORS.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(c);
    }
    let mut builder = native_tls::TlsConnector::builder();
    if insecure {
        builder
            .danger_accept_invalid_certs(true)
            .danger_accept_invalid_hostnames(true);
    }
    if let Some(ca) = &access.ca_file {
        let pem = std::fs::read(ca).map_err(OciError::io("cannot read the CA file", ca))?;
        let mut found = false;
        for block in pem_blocks(&pem) {
            let cert = native_tls::Certificate::from_pem(block.as_bytes()).map_err(|e| {
                OciError::Layout {
                    path: ca.clone(),
                    reason: format!("not a PEM certificate bundle: {e}"),
                }
            })?;
            builder.add_root_certificate(cert);
            found = true;
        }
        if !found {
            return Err(OciError::Layout {
                path: ca.clone(),
                reason: "no PEM certificate in it".into(),
            });
        }
    }
    let connector = builder
        .build()
        .map_err(|e| fail("set up TLS", error_chain(&e)))?;
    if let Ok(mut m) = CONNECTORS.lock() {
        m.insert(key, connector.clone());
    }
    Ok(connector)
}

/// The `-----BEGIN CERTIFICATE-----` blocks of a PEM bundle.
fn pem_blocks(pem: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(pem);
    let mut blocks = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(len) = rest[start..].find("-----END CERTIFICATE-----") else {
            break;
        };
        let end = start + len + "-----END CERTIFICATE-----".len();
        blocks.push(rest[start..end].to_owned());
        rest = &rest[end..];
    }
    blocks
}

fn sensitive(mut v: HeaderValue) -> HeaderValue {
    v.set_sensitive(true);
    v
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The error and its causes on one line (reqwest's own message is often just "error sending
/// request").
/// `repository:tag`, or `repository@sha256:…` when `reference` is a digest (a tag has no `:`).
fn named(repository: &str, reference: &str) -> String {
    if reference.contains(':') {
        format!("{repository}@{reference}")
    } else {
        format!("{repository}:{reference}")
    }
}

/// The innermost cause of an error (`Connection refused (os error 111)`, `failed to lookup
/// address information: …`): what a connection failure comes down to, without the URL and the
/// layers of the HTTP stack around it.
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// `Bearer realm="https://auth.example/token",service="registry.example",scope="…"` or
/// `Basic realm="…"`.
fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, params) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        let after = after.trim_start();
        let (val, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(val.to_owned()),
            "service" => service = Some(val.to_owned()),
            _ => {}
        }
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/node:pull""#,
        );
        assert!(
            matches!(c, Some(Challenge::Bearer { realm, service: Some(s) })
            if realm == "https://auth.docker.io/token" && s == "registry.docker.io")
        );
        assert!(matches!(
            parse_challenge(r#"Basic realm="Registry""#),
            Some(Challenge::Basic)
        ));
        assert!(parse_challenge("Negotiate").is_none());
    }
}
