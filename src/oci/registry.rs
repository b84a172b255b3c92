//! One registry as contacted (host, TLS), on `oci_client::Client`: oci-client speaks the
//! distribution protocol (the auth challenge and token exchange, manifests, blobs, mounts,
//! uploads); this module adds what airgap needs around it and maps its errors to [`OciError`].
//!
//! What oci-client 0.18 does here, and how it is used:
//! - Manifests: `pull_manifest_raw` (bytes and digest; the digest is checked against
//!   `Docker-Content-Digest` and a pinned reference; no `Content-Type`, so the media type is
//!   read from the body) and `push_manifest_raw` (the bytes as given, so digests survive).
//!   A presence check ([`Registry::head_manifest`]) is a GET too: oci-client's HEAD
//!   (`fetch_manifest_digest`) gives neither the media type nor the size, and falls back to a
//!   GET on a miss anyway.
//! - Blobs: `blob_exists`, `pull_blob_stream` (it verifies the digest, failing before the
//!   stream's end; airgap's [`super::digest::Verifier`] then only counts the size, and the copy
//!   still holds the last chunk of an upload back until that end), `push_blob_stream` with
//!   `use_monolithic_push` (one
//!   streamed PUT; the chunked mode sends a PATCH per frame), `mount_blob` (a refused mount,
//!   202, is an error after which a normal upload works; its upload session is left to the
//!   registry to expire: oci-client cannot cancel one).
//! - Auth: credentials are looked up (see [`super::auth`]) on the first call to a host, which
//!   also asks `/v2/` once, through oci-client's `auth` for that call's repository and
//!   operation (storing the credential, since blob and mount calls take no auth argument).
//!   oci-client then fetches a token per repository and operation (pull, or pull+push),
//!   cached until it expires, or after a basic challenge caches the basic credential the same
//!   way. What it does not cache is "this host asks for nothing": with a credential stored
//!   (`pull_manifest_raw` stores even an anonymous one) and no token cached, it asks `/v2/`
//!   again before every request, which doubled the requests to an anonymous registry. So
//!   for an anonymous host whose `/v2/` sent no challenge, an empty basic credential is put in
//!   oci-client's token cache (its public `tokens`) for each repository and operation before
//!   a call: no `/v2/` after the first, and a registry without auth ignores the header.
//!   Credentials that were found are left to oci-client (sent only after a challenge, at the
//!   cost of one `/v2/` per repository and operation). A mount's token has no pull scope on
//!   the source repository, so a registry with token auth refuses cross-repository mounts and
//!   the blob is uploaded instead. A docker identity (refresh) token cannot be used by
//!   oci-client: such a host is contacted anonymously, with one warning.
//! - TLS and proxies: one oci-client client per TLS set-up ([`Transports`]: plain HTTP, or
//!   HTTPS with a given CA file, or HTTPS unverified), built when the first host with that
//!   set-up is called and shared by all of them (oci-client keys credentials and tokens by
//!   host). `ClientProtocol::Http` for `tls=false`, the CA file's certificates as extra
//!   roots, `accept_invalid_certificates` for `tls="insecure"`. Building one costs a TLS
//!   context even for plain HTTP (rustls reads the system's CA roots, see [`crate::tls`];
//!   oci-client 0.18's `TryFrom` also builds a default reqwest client, with its own TLS
//!   context, that it throws away), so
//!   a run that calls no registry (a `dir:` target's no-op) builds none, and one that calls
//!   only plain-http registries builds one. `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
//!   `NO_PROXY` are honoured by reqwest's system proxy (oci-client's proxy settings are left
//!   unset), loopback addresses included.
//! - `Retry-After`: oci-client's errors keep the status and body, not the headers. When a call
//!   fails with 429 or 503, one HEAD of the same manifest or blob, with the same credentials
//!   (a bearer token from oci-client's `auth`, or the basic credential), is sent with airgap's
//!   own reqwest client (one per TLS set-up, built on first need, as for a delete), and its
//!   `Retry-After` (seconds or a date; capped by [`super::retry`]) makes the error
//!   [`OciError::Throttled`]. A HEAD that is not throttled or names no delay leaves the
//!   backoff. Only a throttled call pays.
//! - Not in oci-client, so not here: retries (see [`super::retry`]), the digest the registry
//!   reports for a pushed manifest.
//!
//! Unreachable hosts: a request whose connection cannot be made (refused, a name that does not
//! resolve, a failed TLS handshake) is [`OciError::Unreachable`], which is not retried; the
//! [`Registry`] remembers it, and every later request to the host fails at once with the same
//! error instead of knocking again. A stopped target so stops a run after the requests already
//! in flight, not after minutes of retries; the caller reports the host once
//! ([`Registry::unreachable`]).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use oci_client::Reference;
use oci_client::RegistryOperation;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciEnvelope, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::RegistryTokenType;

use super::auth::{Credential, Credentials};
use super::digest::{Digest, Mismatch};
use super::error::OciError;
use super::media;
use super::mirror::{RegistryAccess, Tls};

/// What a presence check of a manifest says.
#[derive(Debug, Clone)]
pub(crate) struct ManifestHead {
    pub digest: Digest,
    pub media_type: Option<String>,
    pub size: u64,
    /// The manifest itself (the check is a GET).
    pub bytes: Bytes,
}

/// A manifest as fetched: raw bytes and what the registry said about them.
pub(crate) struct FetchedManifest {
    pub bytes: Bytes,
    pub content_type: Option<String>,
    pub header_digest: Option<Digest>,
}

/// The credential stored in the client for this host, looked up once.
#[derive(Clone)]
struct HostAuth {
    auth: RegistryAuth,
    /// Whether a credential was found (so a refusal means it was refused, not missing).
    found: bool,
    /// For an anonymous host whose `/v2/` asks for no token: what is put in oci-client's
    /// token cache for each repository and operation before a call, so that oci-client does
    /// not ask `/v2/` again (see the module doc). `None` otherwise: oci-client caches a token
    /// (or the basic credential) per repository and operation itself.
    standing: Option<RegistryTokenType>,
}

/// What a call asks the registry for, so that a throttled call can be asked again by a HEAD
/// whose headers are kept (see [`Registry::throttled`]).
#[derive(Clone, Copy)]
struct Resource<'a> {
    image: &'a Reference,
    manifest: bool,
    op: RegistryOperation,
}

impl<'a> Resource<'a> {
    fn manifest(image: &'a Reference, op: RegistryOperation) -> Self {
        Resource {
            image,
            manifest: true,
            op,
        }
    }

    fn blob(image: &'a Reference, op: RegistryOperation) -> Self {
        Resource {
            image,
            manifest: false,
            op,
        }
    }

    /// The path of the manifest or blob, after the host.
    fn path(&self) -> String {
        let reference = self.image.digest().or(self.image.tag()).unwrap_or("latest");
        let kind = if self.manifest { "manifests" } else { "blobs" };
        format!("/v2/{}/{kind}/{reference}", self.image.repository())
    }
}

/// What makes two clients differ: the TLS mode and the extra CA file (which a plain-http host
/// never uses).
#[derive(Clone, PartialEq, Eq, Hash)]
struct TlsSetUp {
    tls: Tls,
    ca_file: Option<PathBuf>,
}

impl TlsSetUp {
    fn of(access: &RegistryAccess) -> Self {
        TlsSetUp {
            tls: access.tls,
            ca_file: match access.tls {
                Tls::PlainHttp => None,
                Tls::Verify | Tls::Insecure => access.ca_file.clone(),
            },
        }
    }
}

/// The HTTP clients of a run, one per TLS set-up, each built when a host that needs it is
/// first called and shared by every host with that set-up: a reqwest client (oci-client's, and
/// airgap's own for the requests oci-client does not make) costs a TLS context, which means
/// reading the system's CA bundle ([`crate::tls`]), whatever the scheme of the hosts it serves.
/// oci-client keys its credentials and tokens by host, so hosts share one client safely.
#[derive(Default)]
pub(crate) struct Transports {
    oci: Mutex<HashMap<TlsSetUp, oci_client::Client>>,
    http: Mutex<HashMap<TlsSetUp, reqwest::Client>>,
}

impl Transports {
    /// oci-client's client for `access`'s TLS set-up.
    fn oci(&self, access: &RegistryAccess) -> Result<oci_client::Client, OciError> {
        shared(&self.oci, access, || {
            let insecure = access.tls == Tls::Insecure;
            let config = ClientConfig {
                protocol: match access.tls {
                    Tls::PlainHttp => ClientProtocol::Http,
                    Tls::Verify | Tls::Insecure => ClientProtocol::Https,
                },
                accept_invalid_certificates: insecure,
                use_monolithic_push: true,
                extra_root_certificates: ca_certificates(access)?,
                platform_resolver: None,
                connect_timeout: Some(Duration::from_secs(30)),
                read_timeout: Some(Duration::from_secs(300)),
                user_agent: concat!("airgap/", env!("CARGO_PKG_VERSION")),
                ..ClientConfig::default()
            };
            oci_client::Client::try_from(config).map_err(|e| set_up_failed(access, &e))
        })
    }

    /// airgap's own HTTP client for `access`'s TLS set-up (a delete, the HEAD that reads a
    /// `Retry-After`): most runs never build it.
    fn http(&self, access: &RegistryAccess) -> Result<reqwest::Client, OciError> {
        shared(&self.http, access, || {
            let insecure = access.tls == Tls::Insecure;
            let mut builder = reqwest::Client::builder()
                .user_agent(concat!("airgap/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(30))
                .read_timeout(Duration::from_secs(300))
                .danger_accept_invalid_certs(insecure);
            for c in ca_certificates(access)? {
                if let Ok(cert) = reqwest::Certificate::from_pem(&c.data) {
                    builder = builder.add_root_certificate(cert);
                }
            }
            builder.build().map_err(|e| set_up_failed(access, &e))
        })
    }
}

/// The client of `map` for `access`'s TLS set-up, built by `build` if there is none yet (under
/// the lock, so two first calls build one).
fn shared<C: Clone>(
    map: &Mutex<HashMap<TlsSetUp, C>>,
    access: &RegistryAccess,
    build: impl FnOnce() -> Result<C, OciError>,
) -> Result<C, OciError> {
    crate::tls::install_provider();
    let mut map = map.lock().map_err(|_| OciError::Connection {
        host: access.host.clone(),
        action: "set up TLS".into(),
        message: "an earlier task panicked".into(),
    })?;
    let key = TlsSetUp::of(access);
    if let Some(client) = map.get(&key) {
        return Ok(client.clone());
    }
    let client = build()?;
    map.insert(key, client.clone());
    Ok(client)
}

fn set_up_failed(access: &RegistryAccess, e: &dyn std::error::Error) -> OciError {
    OciError::Connection {
        host: access.host.clone(),
        action: "set up TLS".into(),
        message: error_chain(e),
    }
}

/// One registry as contacted (host, TLS), shared by every copy of a run.
pub(crate) struct Registry {
    pub(crate) host: String,
    access: RegistryAccess,
    /// The clients of the run, shared by every host with the same TLS set-up.
    transports: Arc<Transports>,
    /// This host's client from `transports`, taken on the first call.
    client: OnceLock<oci_client::Client>,
    credentials: Credentials,
    auth: tokio::sync::OnceCell<HostAuth>,
    /// Why the first connection that could not be made failed (see the module docs).
    unreachable: OnceLock<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({})", self.host)
    }
}

impl Registry {
    /// A host as contacted; nothing is built or sent until the first call.
    pub(crate) fn new(
        access: &RegistryAccess,
        credentials: Credentials,
        transports: Arc<Transports>,
    ) -> Self {
        Registry {
            host: access.host.clone(),
            access: access.clone(),
            transports,
            client: OnceLock::new(),
            credentials,
            auth: tokio::sync::OnceCell::new(),
            unreachable: OnceLock::new(),
        }
    }

    /// The oci-client client for this host's TLS set-up (built by the first host that needs
    /// it).
    fn client(&self) -> Result<&oci_client::Client, OciError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = self.transports.oci(&self.access)?;
        Ok(self.client.get_or_init(|| client))
    }

    /// `host/repository:tag` or `host/repository@digest` for oci-client.
    fn reference(&self, repository: &str, reference: &str) -> Reference {
        if reference.contains(':') {
            Reference::with_digest(self.host.clone(), repository.into(), reference.into())
        } else {
            Reference::with_tag(self.host.clone(), repository.into(), reference.into())
        }
    }

    /// The credential for this host, looked up on first use and stored in the client (blob
    /// and mount calls take none of their own); `resource` is the first call's, whose token
    /// the first contact fetches.
    async fn host_auth(
        &self,
        client: &oci_client::Client,
        resource: Resource<'_>,
    ) -> Result<HostAuth, OciError> {
        let auth = self
            .auth
            .get_or_try_init(|| self.first_contact(client, resource))
            .await?;
        if let Some(token) = &auth.standing {
            client
                .tokens
                .insert(resource.image, resource.op, token.clone())
                .await;
        }
        Ok(auth.clone())
    }

    /// The first call to a host: the credential lookup, and one `GET /v2/` (through
    /// oci-client's `auth`, for the first call's repository and operation) to learn whether
    /// the host hands out bearer tokens.
    async fn first_contact(
        &self,
        client: &oci_client::Client,
        resource: Resource<'_>,
    ) -> Result<HostAuth, OciError> {
        let credentials = self.credentials.clone();
        let host = self.host.clone();
        let looked_up = tokio::task::spawn_blocking(move || credentials.lookup(&host))
            .await
            .map_err(|e| OciError::Connection {
                host: String::new(),
                action: "look up credentials".into(),
                message: e.to_string(),
            })??;
        let (auth, found) = match looked_up {
            Some(Credential::Basic { username, password }) => {
                (RegistryAuth::Basic(username, password), true)
            }
            Some(Credential::IdentityToken(_)) => {
                eprintln!(
                    "warning: the credential for `{}` is an identity token, which airgap cannot use; it is contacted anonymously (log in with a username and password or token instead)",
                    self.host
                );
                (RegistryAuth::Anonymous, false)
            }
            None => (RegistryAuth::Anonymous, false),
        };
        // `auth` stores the credential for the host, and caches the token it gets (or, after
        // a basic challenge, the basic credential) for this repository and operation.
        let standing = match client.auth(resource.image, &auth, resource.op).await {
            // An anonymous host that asks for no token: an empty basic credential stands in
            // for the answer oci-client does not cache. Credentials found are left to
            // oci-client, which sends them only after a challenge.
            Ok(None) if !found => Some(RegistryTokenType::Basic(String::new(), String::new())),
            Ok(_) => None,
            Err(e) => match self.error("a version check".into(), e, found) {
                e @ OciError::Unreachable { .. } => return Err(e),
                // A token refused: the call itself fails and says why.
                _ => None,
            },
        };
        Ok(HostAuth {
            auth,
            found,
            standing,
        })
    }

    /// Runs one oci-client call with the host's credential stored, mapping its error.
    async fn call<'s, T, Fut>(
        &'s self,
        action: &dyn Fn() -> String,
        resource: Resource<'_>,
        f: impl FnOnce(&'s oci_client::Client, RegistryAuth) -> Fut,
    ) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        self.check_reachable().map_err(Failure::Mapped)?;
        let client = self.client().map_err(Failure::Mapped)?;
        let auth = self
            .host_auth(client, resource)
            .await
            .map_err(Failure::Mapped)?;
        match f(client, auth.auth.clone()).await {
            Ok(v) => Ok(v),
            Err(e) if is_not_found(&e) => Err(Failure::NotFound),
            Err(e) => {
                let e = self.error(action(), e, auth.found);
                Err(Failure::Mapped(self.throttled(e, resource, &auth).await))
            }
        }
    }

    /// A 429 or 503 as oci-client reports it has lost its headers, and with them the
    /// `Retry-After`: one HEAD of the same manifest or blob, with the same credentials, asks
    /// again and reads it. Only a throttled call pays for it. A HEAD that is not throttled, or
    /// that names no delay, leaves the error as it was (retried after the backoff): some
    /// registries do not count HEADs against a rate limit, so an answered HEAD does not mean
    /// the GET would pass.
    async fn throttled(&self, e: OciError, resource: Resource<'_>, auth: &HostAuth) -> OciError {
        match e {
            OciError::Status {
                host,
                action,
                status: status @ (429 | 503),
                body,
            } => match self.asked_delay(resource, auth).await {
                Some(retry_after) => OciError::Throttled {
                    host,
                    action,
                    status,
                    retry_after,
                },
                None => OciError::Status {
                    host,
                    action,
                    status,
                    body,
                },
            },
            e => e,
        }
    }

    /// The `Retry-After` of a throttled HEAD of `resource`, if it is throttled and says.
    async fn asked_delay(&self, resource: Resource<'_>, auth: &HostAuth) -> Option<Duration> {
        let http = self.http().ok()?;
        let url = format!("{}://{}{}", self.scheme(), self.host, resource.path());
        let mut request = http
            .head(url)
            .header(reqwest::header::ACCEPT, media::ACCEPT_MANIFESTS);
        // The token oci-client holds is not readable (its cache's `get` is private): `auth`
        // hands out the one it fetches (a bearer token), or `None` for basic auth, sent as such.
        match self
            .client()
            .ok()?
            .auth(resource.image, &auth.auth, resource.op)
            .await
        {
            Ok(Some(token)) => request = request.bearer_auth(token),
            _ => {
                if let RegistryAuth::Basic(user, password) = &auth.auth {
                    request = request.basic_auth(user, Some(password));
                }
            }
        }
        let response = request.send().await.ok()?;
        if !matches!(response.status().as_u16(), 429 | 503) {
            return None;
        }
        retry_after(response.headers().get(reqwest::header::RETRY_AFTER)?)
    }

    fn scheme(&self) -> &'static str {
        if self.access.tls == Tls::PlainHttp {
            "http"
        } else {
            "https"
        }
    }

    /// airgap's own HTTP client for this host's TLS set-up (see [`Transports::http`]).
    fn http(&self) -> Result<reqwest::Client, OciError> {
        self.transports.http(&self.access)
    }

    /// [`Registry::call`] where a 404 is an error like any other status.
    async fn call_found<'s, T, Fut>(
        &'s self,
        action: &dyn Fn() -> String,
        resource: Resource<'_>,
        f: impl FnOnce(&'s oci_client::Client, RegistryAuth) -> Fut,
    ) -> Result<T, OciError>
    where
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        let status = |action: String| OciError::Status {
            host: self.host.clone(),
            action,
            status: 404,
            body: None,
        };
        self.call(action, resource, f).await.map_err(|e| match e {
            Failure::NotFound => status(action()),
            Failure::Mapped(e) => e,
        })
    }

    /// [`Registry::call`] answering `not_found` when the registry says 404.
    async fn call_or<'s, T, Fut>(
        &'s self,
        action: &dyn Fn() -> String,
        resource: Resource<'_>,
        not_found: T,
        f: impl FnOnce(&'s oci_client::Client, RegistryAuth) -> Fut,
    ) -> Result<T, OciError>
    where
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        match self.call(action, resource, f).await {
            Ok(v) => Ok(v),
            Err(Failure::NotFound) => Ok(not_found),
            Err(Failure::Mapped(e)) => Err(e),
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

    /// One request without credentials: whether anything answers at the address (whatever
    /// the status; a 401 or a 404 is an answer). A HEAD of a blob no repository has, as
    /// oci-client has no bare `/v2/` call.
    pub(crate) async fn ping(&self) -> Result<(), OciError> {
        self.check_reachable()?;
        let probe = self.reference("airgap/ping", "latest");
        match self
            .client()?
            .blob_exists(&probe, Digest::of(b"").as_str())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.error("a version check".into(), e, false) {
                e @ OciError::Unreachable { .. } => Err(e),
                _ => Ok(()),
            },
        }
    }

    /// GET a manifest by tag or digest, accepting every manifest and index type. The digest
    /// is checked by oci-client against `Docker-Content-Digest` and a pinned reference.
    pub(crate) async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, OciError> {
        let image = self.reference(repository, reference);
        let accept: Vec<&str> = media::ACCEPT_MANIFESTS.split(", ").collect();
        let action = || format!("a manifest request for `{}`", named(repository, reference));
        let image = &image;
        let resource = Resource::manifest(image, RegistryOperation::Pull);
        let result = self
            .call(&action, resource, |client, auth| async move {
                client.pull_manifest_raw(image, &auth, &accept).await
            })
            .await;
        match result {
            Ok((bytes, digest)) => Ok(FetchedManifest {
                bytes,
                content_type: None,
                header_digest: digest.parse().ok(),
            }),
            Err(Failure::NotFound) => Err(OciError::NotFound {
                what: format!("{}/{}", self.host, named(repository, reference)),
            }),
            Err(Failure::Mapped(e)) => Err(e),
        }
    }

    /// Whether the registry has a manifest, and which: `None` when it does not. A GET (see
    /// the module doc), so the digest, media type and size come from the bytes themselves.
    pub(crate) async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>, OciError> {
        match self.get_manifest(repository, reference).await {
            Ok(fetched) => Ok(Some(ManifestHead {
                digest: Digest::of(&fetched.bytes),
                media_type: media::detect(&fetched.bytes, None, repository)
                    .ok()
                    .map(|(m, _)| m),
                size: fetched.bytes.len() as u64,
                bytes: fetched.bytes,
            })),
            Err(OciError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `repository` has the blob.
    pub(crate) async fn has_blob(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, OciError> {
        let image = self.reference(repository, digest.as_str());
        let action = || format!("a blob check for `{digest}` in `{repository}`");
        let resource = Resource::blob(&image, RegistryOperation::Pull);
        self.call_or(&action, resource, false, |client, _| {
            client.blob_exists(&image, digest.as_str())
        })
        .await
    }

    /// A blob's bytes, as they arrive (oci-client checks them against the digest and fails
    /// before the end on a mismatch; the caller checks the size).
    pub(crate) async fn blob_stream(
        &self,
        repository: &str,
        digest: &Digest,
        what: String,
    ) -> Result<BoxStream<'static, Result<Bytes, OciError>>, OciError> {
        let image = self.reference(repository, digest.as_str());
        let action = || format!("a download of `{digest}` from `{repository}`");
        let sized = match self
            .call(
                &action,
                Resource::blob(&image, RegistryOperation::Pull),
                |client, _| client.pull_blob_stream(&image, digest.as_str()),
            )
            .await
        {
            Ok(s) => s,
            Err(Failure::NotFound) => {
                return Err(OciError::NotFound {
                    what: format!("{}/{repository}@{digest}", self.host),
                });
            }
            Err(Failure::Mapped(e)) => return Err(e),
        };
        let host = self.host.clone();
        let expected = digest.clone();
        Ok(sized
            .stream
            .map_err(move |e| stream_error(&host, &what, &expected, e))
            .boxed())
    }

    /// Mounts `digest` from `from` into `repository` (same registry): `false` when the
    /// registry refused (it answered 202: the blob is uploaded instead).
    pub(crate) async fn mount(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<bool, OciError> {
        let image = self.reference(repository, digest.as_str());
        let source = self.reference(from, digest.as_str());
        let action = || format!("a mount of `{digest}` from `{from}` into `{repository}`");
        let resource = Resource::blob(&image, RegistryOperation::Push);
        let (image, source) = (&image, &source);
        self.call_or(&action, resource, false, |client, _| async move {
            match client.mount_blob(image, source, digest.as_str()).await {
                Ok(()) => Ok(true),
                Err(OciDistributionError::SpecViolationError(_)) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Uploads a blob in one streamed PUT (a POST opens the session first).
    pub(crate) async fn upload(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        body: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(), OciError> {
        let image = self.reference(repository, digest.as_str());
        let action = || format!("an upload of `{digest}` to `{repository}`");
        let body = body.map_err(OciDistributionError::IoError);
        let resource = Resource::blob(&image, RegistryOperation::Push);
        self.call_found(&action, resource, |client, _| {
            client.push_blob_stream(&image, body, digest.as_str(), Some(size))
        })
        .await
        .map(|_| ())
    }

    /// DELETE a manifest by digest (distribution removes the tags that point at it too).
    /// `Ok(false)` when it was not there. oci-client has no delete call, so this one request
    /// is made here, with the host's basic credential when it has one; a registry that wants a
    /// bearer token for deletes refuses it, and says so.
    pub(crate) async fn delete_manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, OciError> {
        let action = format!("delete `{repository}@{digest}`");
        let client = self.http()?;
        let url = format!(
            "{}://{}/v2/{repository}/manifests/{digest}",
            self.scheme(),
            self.host
        );
        let mut request = client.delete(url);
        if let Ok(Some(Credential::Basic { username, password })) =
            self.credentials.lookup(&self.host)
        {
            request = request.basic_auth(username, Some(password));
        }
        let response = request.send().await.map_err(|e| OciError::Connection {
            host: self.host.clone(),
            action: action.clone(),
            message: error_chain(&e),
        })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(OciError::Status {
                host: self.host.clone(),
                action,
                status,
                body: response.text().await.ok().filter(|b| !b.is_empty()),
            }),
        }
    }

    /// PUT a manifest's raw bytes under a tag or its digest.
    pub(crate) async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<(), OciError> {
        let image = self.reference(repository, reference);
        let action = || format!("a manifest push to `{}`", named(repository, reference));
        let content_type =
            reqwest::header::HeaderValue::from_str(media_type).map_err(|e| OciError::Manifest {
                what: named(repository, reference),
                reason: format!("its media type `{media_type}` is not a header value: {e}"),
            })?;
        let resource = Resource::manifest(&image, RegistryOperation::Push);
        self.call_found(&action, resource, |client, _| {
            client.push_manifest_raw(&image, bytes.clone(), content_type)
        })
        .await
        .map(|_| ())
    }

    /// An oci-client error as an [`OciError`]: connections that could not be made are
    /// remembered (see the module doc), refusals name the credentials, statuses keep their
    /// code so the retry policy can judge them.
    fn error(&self, action: String, e: OciDistributionError, found: bool) -> OciError {
        match e {
            OciDistributionError::RequestError(r) => {
                if r.is_connect() {
                    let message = self.unreachable.get_or_init(|| root_cause(&r)).clone();
                    return OciError::Unreachable {
                        host: self.host.clone(),
                        message,
                    };
                }
                match r.status() {
                    Some(s) => self.status(action, s.as_u16(), None, found),
                    None => OciError::Connection {
                        host: self.host.clone(),
                        action,
                        message: error_chain(&r.without_url()),
                    },
                }
            }
            OciDistributionError::UnauthorizedError { .. } => self.status(action, 401, None, found),
            OciDistributionError::ServerError { code, message, .. } => {
                let body = message.trim().chars().take(300).collect::<String>();
                self.status(action, code, Some(body).filter(|b| !b.is_empty()), found)
            }
            OciDistributionError::RegistryError { envelope, .. } => self.status(
                action,
                envelope_status(&envelope),
                Some(envelope.to_string()),
                found,
            ),
            OciDistributionError::RegistryNoLocationError => OciError::Status {
                host: self.host.clone(),
                action,
                status: 202,
                body: Some("the registry sent no `Location` for the upload".into()),
            },
            OciDistributionError::DigestError(
                oci_client::errors::DigestError::VerificationError { expected, actual },
            ) => mismatch(format!("{} ({action})", self.host), &expected, &actual),
            OciDistributionError::IoError(io) => OciError::Connection {
                host: self.host.clone(),
                action,
                message: error_chain(&io),
            },
            other => OciError::Protocol {
                host: self.host.clone(),
                action,
                message: error_chain(&other),
            },
        }
    }

    fn status(&self, action: String, status: u16, body: Option<String>, found: bool) -> OciError {
        match status {
            401 | 403 if found => OciError::Unauthorized {
                host: self.host.clone(),
                action,
            },
            401 | 403 => OciError::NoCredentials {
                host: self.host.clone(),
                action,
                searched: self.credentials.searched(),
            },
            _ => OciError::Status {
                host: self.host.clone(),
                action,
                status,
                body,
            },
        }
    }
}

/// How a call failed: what was asked for is not there (each caller says what that means),
/// or an error.
enum Failure {
    NotFound,
    Mapped(OciError),
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope_status(envelope) == 404,
        OciDistributionError::RequestError(r) => r.status().is_some_and(|s| s.as_u16() == 404),
        _ => false,
    }
}

/// The status an error envelope stands for (oci-client keeps the envelope of a 4xx, not its
/// status): the codes of the distribution spec, 400 for the rest.
fn envelope_status(envelope: &OciEnvelope) -> u16 {
    let Some(first) = envelope.errors.first() else {
        return 400;
    };
    match first.code {
        OciErrorCode::BlobUnknown
        | OciErrorCode::ManifestUnknown
        | OciErrorCode::NameUnknown
        | OciErrorCode::NotFound => 404,
        OciErrorCode::Unauthorized => 401,
        OciErrorCode::Denied => 403,
        OciErrorCode::Toomanyrequests => 429,
        _ => 400,
    }
}

fn mismatch(what: String, expected: &str, actual: &str) -> OciError {
    match (expected.parse::<Digest>(), actual.parse::<Digest>()) {
        (Ok(expected), Ok(actual)) => OciError::DigestMismatch {
            what,
            expected,
            mismatch: Mismatch::Digest { actual },
        },
        _ => OciError::Protocol {
            host: what,
            action: "a digest check".into(),
            message: format!("expected `{expected}`, got `{actual}`"),
        },
    }
}

/// An error in the middle of a blob download: a digest mismatch oci-client found at the end,
/// or a dropped connection (worth a retry).
fn stream_error(host: &str, what: &str, expected: &Digest, e: std::io::Error) -> OciError {
    if let Some(oci_client::errors::DigestError::VerificationError { actual, .. }) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>())
    {
        return mismatch(what.to_owned(), expected.as_str(), actual);
    }
    OciError::Connection {
        host: host.to_owned(),
        action: format!("the download of {what}"),
        message: error_chain(&e),
    }
}

/// The CA file's certificates, each checked here so a bad file is named.
fn ca_certificates(access: &RegistryAccess) -> Result<Vec<Certificate>, OciError> {
    let Some(ca) = &access.ca_file else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(ca).map_err(OciError::io("cannot read the CA file", ca))?;
    let mut certificates = Vec::new();
    for block in pem_blocks(&pem) {
        native_tls::Certificate::from_pem(block.as_bytes()).map_err(|e| OciError::Layout {
            path: ca.clone(),
            reason: format!("not a PEM certificate bundle: {e}"),
        })?;
        certificates.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data: block.into_bytes(),
        });
    }
    if certificates.is_empty() {
        return Err(OciError::Layout {
            path: ca.clone(),
            reason: "no PEM certificate in it".into(),
        });
    }
    Ok(certificates)
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

/// A `Retry-After` value: seconds, or an HTTP date (a date past is no wait). The cap is the
/// retry policy's ([`super::retry::MAX_RETRY_AFTER`]).
fn retry_after(value: &reqwest::header::HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

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
/// A TLS refusal airgap can explain gets the explanation after it ([`crate::tls::hint`]).
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    match crate::tls::hint(&last) {
        Some(hint) => format!("{last}: {hint}"),
        None => last,
    }
}

/// The error and its causes on one line (reqwest's own message is often just "error sending
/// request").
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let secs = |v: &str| retry_after(&HeaderValue::from_str(v).unwrap());
        assert_eq!(secs("7"), Some(Duration::from_secs(7)));
        assert_eq!(secs(" 0 "), Some(Duration::ZERO));
        assert_eq!(secs("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        let asked = secs(&httpdate::fmt_http_date(later)).unwrap();
        assert!(asked > Duration::from_secs(100) && asked <= Duration::from_secs(120));
        assert_eq!(secs("soon"), None);
        assert_eq!(secs("-3"), None);
    }
}
