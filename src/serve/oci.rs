//! A read-only OCI distribution API (`/v2/…`) over the OCI image layout of the served folder.
//!
//! At start the layout's `oci-layout` and `index.json` are read once, with the readers of
//! [`crate::oci::layout`] (the module that writes layouts and owns their naming convention):
//! each top-level descriptor names its repository in the `io.github.airgap.repository`
//! annotation (else the part of `org.opencontainers.image.ref.name` before the tag) and, when
//! tagged, its tag in `org.opencontainers.image.ref.name` (`<repository>:<tag>`, or a bare
//! tag). Every manifest and image index reachable from there is read, its size and digest
//! verified, and kept in memory (they are small); the config and layer digests they name become
//! the blobs of that repository. A repository serves only what its own manifests reach, so one
//! repository cannot be used to read another's blobs, and nothing but `blobs/<alg>/<hex>` files
//! is ever opened. Layer blobs are not hashed at start (they can be large): a missing one is a
//! 404 when asked.
//!
//! Deliberate choices:
//! - Manifests are served as stored, whatever the `Accept` header says (no conversion).
//! - Anything but GET and HEAD is `405` with the `UNSUPPORTED` error code and `Allow: GET, HEAD`
//!   (a read-only registry), rather than `401`: there is nobody to authenticate.
//! - A name that is not a valid repository name is `400 NAME_INVALID`, an unknown one
//!   `404 NAME_UNKNOWN`; a malformed blob digest is `400 DIGEST_INVALID`; a manifest reference
//!   that is neither a tag nor a digest, or unknown, is `404 MANIFEST_UNKNOWN`.
//! - `/v2/_catalog` and `tags/list` support `n` and `last` pagination with a `Link` header.
//! - Paths are matched undecoded: `%2F` and friends are not valid in names, tags or digests, so
//!   they simply do not match.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use sha2::{Digest as _, Sha256, Sha512};

use super::LayoutError;
use super::fs::{FileReply, Jail, file_response};
use crate::oci::reference::{valid_path_component, valid_tag};
use crate::oci::{layout, media};

const API_VERSION: &str = "registry/2.0";
/// How deep image indexes may nest.
const MAX_DEPTH: usize = 4;
/// Manifests larger than this are refused (distribution's own limit is 4 MiB).
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// A `sha256:` or `sha512:` digest with a lower-case hex part of the right length.
pub fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let len = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A repository name as the distribution spec defines it: at most 255 bytes of lower-case
/// components separated by `/`, each `[a-z0-9]+` joined by `.`, `_`, `__` or dashes.
pub fn valid_repository(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.split('/').all(valid_path_component)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct LayoutIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// What a manifest or index body refers to.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestBody {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    blobs: Vec<Descriptor>,
}

/// A manifest or image index, verified, in memory.
#[derive(Debug)]
pub struct Manifest {
    pub media_type: String,
    pub bytes: Bytes,
}

#[derive(Debug, Default)]
struct Repository {
    tags: BTreeMap<String, String>,
    manifests: HashMap<String, Arc<Manifest>>,
    blobs: BTreeSet<String>,
}

/// The OCI image layout of the served folder, indexed by repository.
#[derive(Debug)]
pub struct Layout {
    blobs: Jail,
    repositories: BTreeMap<String, Repository>,
}

impl Layout {
    /// Reads `dir/oci-layout` and `dir/index.json` and every manifest they reach. `Ok(None)`
    /// when neither file exists (a folder with only the registry tree).
    pub fn load(dir: &Path) -> Result<Option<Layout>, LayoutError> {
        let layout_file = dir.join(layout::MARKER_FILE);
        let index_file = dir.join(layout::INDEX_FILE);
        match (layout_file.exists(), index_file.exists()) {
            (false, false) => return Ok(None),
            (true, false) => return Err(LayoutError::MissingIndex { path: index_file }),
            (false, true) => return Err(LayoutError::MissingLayoutFile { path: layout_file }),
            (true, true) => {}
        }
        let version = layout::read_marker(&layout_file)
            .map_err(|e| LayoutError::top_file(&layout_file, e))?;
        if version != layout::LAYOUT_VERSION {
            return Err(LayoutError::LayoutVersion {
                path: layout_file,
                version,
            });
        }
        let index: LayoutIndex =
            layout::read_index_folded(dir).map_err(|e| LayoutError::top_file(&index_file, e))?;

        let blobs_dir = dir.join("blobs");
        let blobs = Jail::new(&blobs_dir).map_err(|source| LayoutError::Read {
            path: blobs_dir,
            source,
        })?;
        let mut loader = Loader {
            blobs: &blobs,
            cache: HashMap::new(),
        };
        let mut repositories: BTreeMap<String, Repository> = BTreeMap::new();
        for (position, descriptor) in index.manifests.iter().enumerate() {
            if !valid_digest(&descriptor.digest) {
                return Err(LayoutError::BadDigest {
                    digest: descriptor.digest.clone(),
                });
            }
            let ref_name = descriptor.annotations.get(layout::REF_NAME);
            let (repository, tag) = match descriptor.annotations.get(layout::REPOSITORY) {
                Some(repository) => {
                    let tag = ref_name.map(|r| {
                        r.strip_prefix(repository.as_str())
                            .and_then(|t| t.strip_prefix(':'))
                            .unwrap_or(r)
                            .to_string()
                    });
                    (repository.clone(), tag)
                }
                None => match ref_name.and_then(|r| r.rsplit_once(':')) {
                    Some((repository, tag)) if !tag.contains('/') => {
                        (repository.to_string(), Some(tag.to_string()))
                    }
                    _ => {
                        eprintln!(
                            "warning: entry {position} of the layout's index.json ({}) names no \
                             repository (annotation `{}`); it is not served",
                            descriptor.digest,
                            layout::REPOSITORY
                        );
                        continue;
                    }
                },
            };
            if !valid_repository(&repository) {
                return Err(LayoutError::BadRepository {
                    position,
                    repository,
                });
            }
            if let Some(tag) = &tag
                && !valid_tag(tag)
            {
                return Err(LayoutError::BadTag {
                    position,
                    tag: tag.clone(),
                });
            }
            let repo = repositories.entry(repository.clone()).or_default();
            loader.reach(descriptor, repo, 0)?;
            if let Some(tag) = tag
                && let Some(previous) = repo.tags.insert(tag.clone(), descriptor.digest.clone())
                && previous != descriptor.digest
            {
                return Err(LayoutError::DuplicateTag {
                    reference: format!("{repository}:{tag}"),
                    first: previous,
                    second: descriptor.digest.clone(),
                });
            }
        }
        Ok(Some(Layout {
            blobs,
            repositories,
        }))
    }

    /// Tagged images (`repository:tag`) served.
    pub fn image_count(&self) -> usize {
        self.repositories.values().map(|r| r.tags.len()).sum()
    }

    /// Repository names, sorted.
    pub fn repositories(&self) -> impl Iterator<Item = &str> {
        self.repositories.keys().map(String::as_str)
    }
}

struct Loader<'a> {
    blobs: &'a Jail,
    cache: HashMap<String, Arc<Manifest>>,
}

fn blob_segments(digest: &str) -> Option<[&str; 2]> {
    valid_digest(digest).then(|| {
        let (alg, hex) = digest.split_once(':').unwrap_or_default();
        [alg, hex]
    })
}

impl Loader<'_> {
    /// Adds the manifest `descriptor` points at, and everything it reaches, to `repo`.
    fn reach(
        &mut self,
        descriptor: &Descriptor,
        repo: &mut Repository,
        depth: usize,
    ) -> Result<(), LayoutError> {
        let manifest = self.manifest(descriptor)?;
        repo.manifests
            .insert(descriptor.digest.clone(), manifest.clone());
        let body: ManifestBody =
            serde_json::from_slice(&manifest.bytes).map_err(|source| LayoutError::Manifest {
                digest: descriptor.digest.clone(),
                source,
            })?;
        if let Some(children) = body.manifests {
            if depth >= MAX_DEPTH {
                return Err(LayoutError::TooDeep {
                    digest: descriptor.digest.clone(),
                });
            }
            for child in &children {
                self.reach(child, repo, depth + 1)?;
            }
            return Ok(());
        }
        for blob in body.config.iter().chain(&body.layers).chain(&body.blobs) {
            if !valid_digest(&blob.digest) {
                return Err(LayoutError::BadDigest {
                    digest: blob.digest.clone(),
                });
            }
            repo.blobs.insert(blob.digest.clone());
        }
        Ok(())
    }

    fn manifest(&mut self, descriptor: &Descriptor) -> Result<Arc<Manifest>, LayoutError> {
        if let Some(m) = self.cache.get(&descriptor.digest) {
            return Ok(m.clone());
        }
        let digest = &descriptor.digest;
        let segments = blob_segments(digest).ok_or_else(|| LayoutError::BadDigest {
            digest: digest.clone(),
        })?;
        let size = u64::try_from(descriptor.size)
            .ok()
            .filter(|s| *s <= MAX_MANIFEST)
            .ok_or_else(|| LayoutError::ManifestSize {
                digest: digest.clone(),
                size: descriptor.size,
            })?;
        let path = self
            .blobs
            .file(&segments)
            .map_err(|refused| LayoutError::MissingBlob {
                digest: digest.clone(),
                reason: refused.describe(),
            })?;
        let bytes = std::fs::read(&path).map_err(|source| LayoutError::Read {
            path: path.clone(),
            source,
        })?;
        if bytes.len() as u64 != size {
            return Err(LayoutError::SizeMismatch {
                digest: digest.clone(),
                expected: size,
                actual: bytes.len() as u64,
            });
        }
        let actual = digest_of(digest, &bytes);
        if &actual != digest {
            return Err(LayoutError::DigestMismatch {
                digest: digest.clone(),
                actual,
            });
        }
        let body: ManifestBody =
            serde_json::from_slice(&bytes).map_err(|source| LayoutError::Manifest {
                digest: digest.clone(),
                source,
            })?;
        let media_type = body
            .media_type
            .filter(|m| !m.is_empty())
            .or_else(|| Some(descriptor.media_type.clone()).filter(|m| !m.is_empty()))
            .ok_or_else(|| LayoutError::NoMediaType {
                digest: digest.clone(),
            })?;
        if body.manifests.is_some() != media::is_index(&media_type)
            && (body.manifests.is_some() || media::is_index(&media_type))
        {
            return Err(LayoutError::MediaTypeMismatch {
                digest: digest.clone(),
                media_type,
            });
        }
        let manifest = Arc::new(Manifest {
            media_type,
            bytes: Bytes::from(bytes),
        });
        self.cache.insert(digest.clone(), manifest.clone());
        Ok(manifest)
    }
}

fn digest_of(like: &str, bytes: &[u8]) -> String {
    if like.starts_with("sha512:") {
        format!("sha512:{}", hex::encode(Sha512::digest(bytes)))
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }
}

fn api_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static(API_VERSION),
    );
    h
}

fn json_response(status: StatusCode, mut headers: HeaderMap, body: Vec<u8>) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// An error in the distribution spec's format: `{"errors":[{"code","message","detail"}]}`.
pub fn error(status: StatusCode, code: &str, message: &str, detail: serde_json::Value) -> Response {
    let body = serde_json::json!({
        "errors": [{"code": code, "message": message, "detail": detail}]
    });
    let mut headers = api_headers();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    json_response(status, headers, body.to_string().into_bytes())
}

fn name_unknown(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        "repository name not known to registry",
        serde_json::json!({"name": name}),
    )
}

fn name_invalid(name: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "NAME_INVALID",
        "invalid repository name",
        serde_json::json!({"name": name}),
    )
}

/// What a `/v2/…` path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Unknown,
}

fn route(rest: &str) -> Route<'_> {
    if rest.is_empty() {
        return Route::Base;
    }
    if rest == "_catalog" {
        return Route::Catalog;
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags(name);
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/")
        && !reference.contains('/')
    {
        return Route::Manifest(name, reference);
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/")
        && !digest.contains('/')
    {
        return Route::Blob(name, digest);
    }
    Route::Unknown
}

/// `n` and `last` of a listing request.
fn page(query: Option<&str>) -> (Option<usize>, Option<String>) {
    let mut n = None;
    let mut last = None;
    for pair in query.unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("n", v)) => n = v.parse().ok(),
            Some(("last", v)) => last = Some(v.to_string()),
            _ => {}
        }
    }
    (n, last)
}

/// The page of `items` after `last`, at most `n` of them, and whether more follow.
fn paginate<'a>(
    items: impl Iterator<Item = &'a str>,
    n: Option<usize>,
    last: Option<&str>,
) -> (Vec<&'a str>, bool) {
    let mut after: Vec<&str> = items.filter(|i| last.is_none_or(|l| *i > l)).collect();
    match n {
        Some(n) if after.len() > n => {
            after.truncate(n);
            (after, true)
        }
        _ => (after, false),
    }
}

fn listing(
    path: &str,
    key: &str,
    mut body: serde_json::Map<String, serde_json::Value>,
    items: Vec<&str>,
    more: bool,
    n: Option<usize>,
) -> Response {
    let mut headers = api_headers();
    if more
        && let (Some(n), Some(last)) = (n, items.last())
        && let Ok(v) = HeaderValue::from_str(&format!("<{path}?n={n}&last={last}>; rel=\"next\""))
    {
        headers.insert(header::LINK, v);
    }
    body.insert(key.to_string(), serde_json::json!(items));
    json_response(
        StatusCode::OK,
        headers,
        serde_json::Value::Object(body).to_string().into_bytes(),
    )
}

/// Answers a request under `/v2`. `rest` is the undecoded path after `/v2/`.
pub async fn handle(
    layout: Option<&Layout>,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    request_headers: &HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "The operation is unsupported: this registry is read-only.",
            serde_json::Value::Null,
        );
    }
    let head = method == Method::HEAD;
    match route(rest) {
        Route::Base => json_response(StatusCode::OK, api_headers(), b"{}".to_vec()),
        Route::Catalog => catalog(layout, query),
        Route::Tags(name) => tags(layout, name, query),
        Route::Manifest(name, reference) => manifest(layout, name, reference, head),
        Route::Blob(name, digest) => {
            blob(
                layout,
                name,
                digest,
                request_headers.get(header::RANGE),
                head,
            )
            .await
        }
        Route::Unknown => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such endpoint in the distribution API",
            serde_json::Value::Null,
        ),
    }
}

/// `GET /v2/_catalog`: the repositories, paginated.
fn catalog(layout: Option<&Layout>, query: Option<&str>) -> Response {
    let (n, last) = page(query);
    let names: Vec<&str> = layout
        .map(|l| l.repositories().collect())
        .unwrap_or_default();
    let (items, more) = paginate(names.into_iter(), n, last.as_deref());
    listing(
        "/v2/_catalog",
        "repositories",
        serde_json::Map::new(),
        items,
        more,
        n,
    )
}

/// `GET /v2/<name>/tags/list`: a repository's tags, paginated.
fn tags(layout: Option<&Layout>, name: &str, query: Option<&str>) -> Response {
    if !valid_repository(name) {
        return name_invalid(name);
    }
    let Some(repo) = layout.and_then(|l| l.repositories.get(name)) else {
        return name_unknown(name);
    };
    let (n, last) = page(query);
    let (items, more) = paginate(repo.tags.keys().map(String::as_str), n, last.as_deref());
    let mut body = serde_json::Map::new();
    body.insert("name".into(), serde_json::json!(name));
    listing(
        &format!("/v2/{name}/tags/list"),
        "tags",
        body,
        items,
        more,
        n,
    )
}

/// `GET|HEAD /v2/<name>/manifests/<tag or digest>`: served from memory.
fn manifest(layout: Option<&Layout>, name: &str, reference: &str, head: bool) -> Response {
    if !valid_repository(name) {
        return name_invalid(name);
    }
    let Some(repo) = layout.and_then(|l| l.repositories.get(name)) else {
        return name_unknown(name);
    };
    let digest = if valid_digest(reference) {
        Some(reference)
    } else if valid_tag(reference) {
        repo.tags.get(reference).map(String::as_str)
    } else {
        None
    };
    let Some((digest, manifest)) = digest.and_then(|d| repo.manifests.get(d).map(|m| (d, m)))
    else {
        return error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
            serde_json::json!({"name": name, "reference": reference}),
        );
    };
    let mut headers = api_headers();
    let content_type = HeaderValue::from_str(&manifest.media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Ok(d) = HeaderValue::from_str(digest) {
        headers.insert("Docker-Content-Digest", d.clone());
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{digest}\"")) {
            headers.insert(header::ETAG, etag);
        }
    }
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(manifest.bytes.len()),
    );
    let body = if head {
        Body::empty()
    } else {
        Body::from(manifest.bytes.clone())
    };
    let mut r = Response::new(body);
    *r.headers_mut() = headers;
    r
}

/// `GET|HEAD /v2/<name>/blobs/<digest>`: a file of the layout's blob folder, ranges honoured.
async fn blob(
    layout: Option<&Layout>,
    name: &str,
    digest: &str,
    range: Option<&HeaderValue>,
    head: bool,
) -> Response {
    if !valid_repository(name) {
        return name_invalid(name);
    }
    let Some(layout) = layout else {
        return name_unknown(name);
    };
    let Some(repo) = layout.repositories.get(name) else {
        return name_unknown(name);
    };
    let Some(segments) = blob_segments(digest) else {
        return error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest is not a valid digest",
            serde_json::json!({"digest": digest}),
        );
    };
    let blob_unknown = || {
        error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
            serde_json::json!({"digest": digest}),
        )
    };
    if !repo.blobs.contains(digest) && !repo.manifests.contains_key(digest) {
        return blob_unknown();
    }
    let jail = layout.blobs.clone();
    let segments = segments.map(str::to_string);
    let path = match tokio::task::spawn_blocking(move || jail.file(&segments)).await {
        Ok(Ok(path)) => path,
        _ => return blob_unknown(),
    };
    let mut headers = api_headers();
    if let Ok(d) = HeaderValue::from_str(digest) {
        headers.insert("Docker-Content-Digest", d);
    }
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000, immutable"),
    );
    let reply = FileReply {
        path: &path,
        content_type: "application/octet-stream",
        status: StatusCode::OK,
        range,
        head,
        headers,
    };
    match file_response(reply).await {
        Ok(r) => r,
        Err(_) => blob_unknown(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in [
            "go-toolset",
            "devfiles/go-toolset",
            "devfile-catalog/go",
            "a/b/c",
            "a__b",
            "a.b_c--d",
        ] {
            assert!(valid_repository(ok), "{ok}");
        }
        for bad in [
            "", "Go", "a//b", "/a", "a/", "..", "a/../b", "%2e%2e", "a___b", "a_.b", "-a", "a\\b",
        ] {
            assert!(!valid_repository(bad), "{bad}");
        }
    }

    #[test]
    fn routes() {
        assert_eq!(route(""), Route::Base);
        assert_eq!(
            route("devfiles/go-toolset/manifests/1.0"),
            Route::Manifest("devfiles/go-toolset", "1.0")
        );
        assert_eq!(
            route("a/manifests/b/manifests/c"),
            Route::Manifest("a/manifests/b", "c")
        );
        assert_eq!(route("a/blobs/sha256:ab"), Route::Blob("a", "sha256:ab"));
        assert_eq!(route("a/b/tags/list"), Route::Tags("a/b"));
        assert_eq!(route("a/blobs/uploads/"), Route::Unknown);
    }

    #[test]
    fn pages() {
        let tags = ["a", "b", "c", "d"];
        assert_eq!(
            paginate(tags.into_iter(), Some(2), None),
            (vec!["a", "b"], true)
        );
        assert_eq!(
            paginate(tags.into_iter(), Some(2), Some("b")),
            (vec!["c", "d"], false)
        );
        assert_eq!(
            paginate(tags.into_iter(), None, Some("c")),
            (vec!["d"], false)
        );
    }
}
