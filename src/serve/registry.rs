//! The devfile registry REST API over `registry/` of the served folder, compatible with
//! registry-support's index server (`index/server/pkg/server/endpoint.go`).
//!
//! `registry/index.json` (the v2 index) is read once at start; the responses without query
//! parameters are serialised then and served from memory. Devfiles and starter-project
//! archives are read from the registry tree on each request (upstream pulls stacks from its
//! in-pod OCI registry instead; the bytes are the same files).
//!
//! Response types: index and error bodies are `application/json; charset=utf-8`, devfiles
//! `application/yaml` (upstream sniffs both into `text/plain; charset=utf-8`); starter
//! projects `application/zip` with status 202, as upstream.
//!
//! `icon=base64`: an icon that is a path (not a URL) is read from the entry's folder
//! (`stacks/<name>/` or `samples/<name>/`), else from `registry/`, and inlined as a data URI
//! with upstream's type rule (PNG, JPEG, else SVG). This happens once, at start. A remote
//! URL is left as it is: the server never goes to the network. A local icon that cannot be
//! read is also left as it is (upstream answers 500 for the whole index instead).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use serde::Deserialize;

use super::RegistryError;
use super::answers::{Answer, Answers, Key};
use super::filter::{self, Query};
use super::fs::{FileReply, Jail, Refused, content_type_for, file_response, valid_name};
use super::index::{self, IndexType};
use crate::index::{EntryType, IndexEntry};
use crate::tree_paths::{INDEX_JSON, REGISTRY, SAMPLES, STACKS};

const JSON: &str = "application/json; charset=utf-8";
const YAML: &str = "application/yaml";
/// Icons larger than this are not inlined.
const MAX_ICON: u64 = 2 * 1024 * 1024;

/// The registry tree and its index, loaded.
#[derive(Debug)]
pub struct Registry {
    jail: Jail,
    entries: Vec<IndexEntry>,
    /// `(type, name)` → icon as a data URI.
    inline_icons: HashMap<(Option<EntryType>, String), String>,
    /// Unfiltered responses: `[v1, v2]` × `[stack, sample, all]`.
    plain: [[Bytes; 3]; 2],
    /// Filtered responses, computed once per query.
    answers: Answers,
}

fn type_slot(t: IndexType) -> usize {
    match t {
        IndexType::Stack => 0,
        IndexType::Sample => 1,
        IndexType::All => 2,
    }
}

fn to_json(entries: &[IndexEntry]) -> Bytes {
    // Serialising these plain structs cannot fail; an empty array is the safe answer anyway.
    Bytes::from(serde_json::to_vec_pretty(entries).unwrap_or_else(|_| b"[]".to_vec()))
}

/// A JSON response with the given status.
pub fn json(status: StatusCode, body: serde_json::Value) -> Response {
    let bytes = body.to_string().into_bytes();
    bytes_response(status, JSON, Bytes::from(bytes))
}

fn bytes_response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn status(code: StatusCode, message: String) -> Response {
    json(code, serde_json::json!({ "status": message }))
}

fn error_status(code: StatusCode, error: String, message: String) -> Response {
    json(
        code,
        serde_json::json!({ "error": error, "status": message }),
    )
}

/// An answer other than the devfile: upstream's `{"status"}` or `{"error", "status"}` body.
#[derive(Debug)]
struct Failure {
    code: StatusCode,
    error: Option<String>,
    status: String,
}

impl Failure {
    fn status(code: StatusCode, status: String) -> Failure {
        Failure {
            code,
            error: None,
            status,
        }
    }

    /// A 500 with upstream's `{"error", "status"}` body.
    fn error(error: String, status: String) -> Failure {
        Failure {
            code: StatusCode::INTERNAL_SERVER_ERROR,
            error: Some(error),
            status,
        }
    }

    fn response(self) -> Response {
        match self.error {
            Some(error) => error_status(self.code, error, self.status),
            None => status(self.code, self.status),
        }
    }
}

fn has_scheme(s: &str) -> bool {
    match s.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.as_bytes()[0].is_ascii_alphabetic()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        None => false,
    }
}

fn folder_of(entry: &IndexEntry) -> &'static str {
    if entry.is_sample() { SAMPLES } else { STACKS }
}

impl Registry {
    /// Reads `registry/index.json` under `dir` (the served folder).
    pub fn load(dir: &Path) -> Result<Registry, RegistryError> {
        let registry_dir = dir.join(REGISTRY);
        let index_path = registry_dir.join(INDEX_JSON);
        if !index_path.is_file() {
            return Err(RegistryError::MissingIndex { path: index_path });
        }
        let jail = Jail::new(&registry_dir).map_err(|source| RegistryError::Read {
            path: registry_dir.clone(),
            source,
        })?;
        let text = std::fs::read(&index_path).map_err(|source| RegistryError::Read {
            path: index_path.clone(),
            source,
        })?;
        let entries: Vec<IndexEntry> =
            serde_json::from_slice(&text).map_err(|source| RegistryError::Json {
                path: index_path.clone(),
                source,
            })?;

        let mut inline_icons = HashMap::new();
        for entry in &entries {
            if let Some(data) = inline_icon(&jail, entry) {
                inline_icons.insert((entry.entry_type.clone(), entry.name.clone()), data);
            }
        }
        let types = [IndexType::Stack, IndexType::Sample, IndexType::All];
        let of_type = |t: IndexType| -> Vec<IndexEntry> {
            entries.iter().filter(|e| t.admits(e)).cloned().collect()
        };
        let plain = [
            types.map(|t| to_json(&index::to_v1(&of_type(t)))),
            types.map(|t| to_json(&of_type(t))),
        ];
        Ok(Registry {
            jail,
            entries,
            inline_icons,
            plain,
            answers: Answers::default(),
        })
    }

    pub fn count(&self, entry_type: &EntryType) -> usize {
        self.entries
            .iter()
            .filter(|e| e.entry_type.as_ref() == Some(entry_type))
            .count()
    }

    /// `/index[/{type}]` (v1) and `/v2index[/{type}]`. Without filters the body was
    /// serialised at load; with filters it is computed once per snapshot and query
    /// ([`super::answers`]), so this may block: call it on the blocking pool then
    /// ([`Query::is_plain`] says which).
    pub fn index(&self, v1: bool, index_type: &str, query: &Query) -> Response {
        let Answer { status, body } = if query.is_plain() {
            self.answer(v1, index_type, query)
        } else {
            let key = Key {
                v1,
                index_type: index_type.to_string(),
                pairs: query.pairs().to_vec(),
            };
            self.answers
                .get_or_compute(key, || self.answer(v1, index_type, query))
        };
        let mut response = bytes_response(status, JSON, body);
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        response
    }

    fn answer(&self, v1: bool, index_type: &str, query: &Query) -> Answer {
        let status_answer = |status: StatusCode, message: String| Answer {
            status,
            body: Bytes::from(serde_json::json!({ "status": message }).to_string()),
        };
        let Some(t) = IndexType::parse(index_type) else {
            return status_answer(
                StatusCode::NOT_FOUND,
                format!("the devfile with {index_type} type doesn't exist"),
            );
        };
        if self.entries.is_empty() {
            return status_answer(
                StatusCode::OK,
                "No stacks or samples found in the registry".to_string(),
            );
        }
        let inline = match query.get("icon") {
            None | Some("") => false,
            Some("base64") => true,
            Some(other) => {
                return status_answer(
                    StatusCode::BAD_REQUEST,
                    format!("the icon type {other} is not supported"),
                );
            }
        };
        if query.is_plain() {
            return Answer {
                status: StatusCode::OK,
                body: self.plain[usize::from(!v1)][type_slot(t)].clone(),
            };
        }
        let mut entries: Vec<IndexEntry> = self
            .entries
            .iter()
            .filter(|e| t.admits(e))
            .cloned()
            .collect();
        if v1 {
            entries = index::to_v1(&entries);
        }
        let mut entries = match filter::apply(entries, query, v1) {
            Ok(e) => e,
            Err(filter::BadFilter(message)) => {
                return status_answer(StatusCode::BAD_REQUEST, message);
            }
        };
        if inline {
            for e in &mut entries {
                if let Some(data) = self
                    .inline_icons
                    .get(&(e.entry_type.clone(), e.name.clone()))
                {
                    e.icon = data.clone();
                }
            }
        }
        Answer {
            status: StatusCode::OK,
            body: to_json(&entries),
        }
    }

    /// Where the devfile of `name` at `version` (`default`, `latest` or exact) may be, in order
    /// of preference, and its entry. `Err` is upstream's answer for an unknown name or version.
    fn devfile_candidates(
        &self,
        name: &str,
        version: &str,
        query: &Query,
    ) -> Result<(Vec<Vec<String>>, &IndexEntry), Failure> {
        let not_found = || {
            Failure::status(
                StatusCode::NOT_FOUND,
                format!("the devfile of {name} didn't exist"),
            )
        };
        if !valid_name(name) {
            return Err(not_found());
        }
        let Some(entry) = self.entries.iter().find(|e| e.name == name) else {
            return Err(not_found());
        };
        let version_not_found = || {
            Failure::status(
                StatusCode::NOT_FOUND,
                format!("version: {version} not found in stack {name}"),
            )
        };
        let folder = folder_of(entry);
        let mut candidates: Vec<Vec<String>> = Vec::new();
        let path = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        if entry.versions.is_empty() {
            if !entry.is_sample() {
                return Err(version_not_found());
            }
            // As upstream: a sample without versions has one devfile, whatever was asked.
            candidates.push(path(&[folder, name, "devfile.yaml"]));
            candidates.push(path(&[folder, name, ".devfile.yaml"]));
        } else {
            if !valid_name(version) {
                return Err(version_not_found());
            }
            // `latest` honours the schema-version range, as upstream.
            let latest_among;
            let entry_for_lookup = if version == "latest"
                && (query.get("minSchemaVersion").is_some()
                    || query.get("maxSchemaVersion").is_some())
            {
                let schema_query = Query::new(
                    ["minSchemaVersion", "maxSchemaVersion"]
                        .iter()
                        .filter_map(|k| query.get(k).map(|v| (k.to_string(), v.to_string())))
                        .collect(),
                );
                match filter::apply(vec![entry.clone()], &schema_query, false) {
                    Ok(mut kept) if !kept.is_empty() => {
                        latest_among = kept.remove(0);
                        &latest_among
                    }
                    Ok(_) => return Err(not_found()),
                    Err(filter::BadFilter(m)) => {
                        return Err(Failure::status(StatusCode::BAD_REQUEST, m));
                    }
                }
            } else {
                entry
            };
            let Some(found) = index::find_version(entry_for_lookup, version) else {
                return Err(version_not_found());
            };
            let v = found.version.as_str();
            if !valid_name(v) {
                return Err(version_not_found());
            }
            candidates.push(path(&[folder, name, v, "devfile.yaml"]));
            candidates.push(path(&[folder, name, v, ".devfile.yaml"]));
            if entry.versions.len() == 1 {
                // A single-version stack keeps its devfile at the top of its folder.
                candidates.push(path(&[folder, name, "devfile.yaml"]));
                candidates.push(path(&[folder, name, ".devfile.yaml"]));
            }
        }
        Ok((candidates, entry))
    }

    /// The devfile of `name` at `version`: its canonical path and its index entry. The
    /// filesystem checks run on the blocking pool.
    async fn devfile(
        &self,
        name: &str,
        version: &str,
        query: &Query,
    ) -> Result<(PathBuf, &IndexEntry), Failure> {
        let (candidates, entry) = self.devfile_candidates(name, version, query)?;
        let jail = self.jail.clone();
        let found = tokio::task::spawn_blocking(move || {
            let mut last = Refused::NotFound;
            for c in &candidates {
                match jail.file(c) {
                    Ok(path) => return Ok(path),
                    Err(Refused::NotFound) => {}
                    Err(r) => last = r,
                }
            }
            Err(last)
        })
        .await
        .unwrap_or(Err(Refused::NotFound));
        match found {
            Ok(path) => Ok((path, entry)),
            Err(refused) => Err(Failure {
                code: StatusCode::INTERNAL_SERVER_ERROR,
                error: Some(format!("devfile.yaml: {}", refused.describe())),
                status: format!("failed to pull the devfile of {name}"),
            }),
        }
    }

    /// `/devfiles/{name}[/{version}]`.
    pub async fn serve_devfile(&self, name: &str, version: &str, query: &Query) -> Response {
        let (path, _) = match self.devfile(name, version, query).await {
            Ok(found) => found,
            Err(f) => return f.response(),
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => bytes_response(StatusCode::OK, YAML, Bytes::from(bytes)),
            Err(e) => error_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
                format!("failed to pull the devfile of {name}"),
            ),
        }
    }

    /// `/devfiles/{name}[/{version}]/starter-projects/{project}`.
    pub async fn serve_starter_project(
        &self,
        name: &str,
        version: &str,
        project: &str,
        head: bool,
    ) -> Response {
        let (devfile_path, entry) = match self.devfile(name, version, &Query::default()).await {
            Ok(found) => found,
            Err(f) => return f.response(),
        };
        let starter = match starter_project(&devfile_path, name, project).await {
            Ok(starter) => starter,
            Err(f) => return f.response(),
        };
        let location = match zip_location(&starter, project) {
            Ok(location) => location,
            Err(f) => return f.response(),
        };
        let zip_path = match self.archive(&devfile_path, entry, &location, project).await {
            Ok(path) => path,
            Err(f) => return f.response(),
        };
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{project}.zip\"")) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
        let sub_dir = starter
            .sub_dir
            .as_deref()
            .map(|s| s.trim_matches('/').trim_start_matches("./"))
            .unwrap_or("");
        if !sub_dir.is_empty() {
            let archive = Archive {
                path: &zip_path,
                project,
                location: &location,
            };
            return sub_dir_zip(archive, sub_dir, headers, head).await;
        }
        let reply = FileReply {
            path: &zip_path,
            content_type: "application/zip",
            status: StatusCode::ACCEPTED,
            range: None,
            head,
            headers,
        };
        match file_response(reply).await {
            Ok(r) => r,
            Err(e) => error_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
                format!("Problem with reading starter project {project} at {location}"),
            ),
        }
    }

    /// The starter project's archive at `location` (relative to the devfile's folder), which
    /// must stay inside the entry's own folder. The checks run on the blocking pool.
    async fn archive(
        &self,
        devfile_path: &Path,
        entry: &IndexEntry,
        location: &str,
        project: &str,
    ) -> Result<PathBuf, Failure> {
        let base = devfile_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let entry_root = self.jail.root().join(folder_of(entry)).join(&entry.name);
        let jail = self.jail.clone();
        let relative = location.to_string();
        let resolved = tokio::task::spawn_blocking(move || {
            Jail::new(&entry_root)
                .map_err(|_| Refused::NotFound)
                .and_then(|j| j.relative_file(&base, &relative))
                .and_then(|p| jail.check(&p))
        })
        .await
        .unwrap_or(Err(Refused::NotFound));
        resolved.map_err(|refused| {
            Failure::error(
                format!("{location}: {}", refused.describe()),
                format!("Problem with reading starter project {project} at {location}"),
            )
        })
    }

    /// `/stacks/{path}`: files of the stacks folder (icons, archives, devfiles), as upstream's
    /// static route. Never a folder listing.
    pub async fn serve_stack_file(
        &self,
        path: &str,
        range: Option<&HeaderValue>,
        head: bool,
    ) -> Response {
        let segments: Vec<&str> = std::iter::once(STACKS).chain(path.split('/')).collect();
        let jail = self.jail.clone();
        let owned: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
        let found = tokio::task::spawn_blocking(move || jail.file(&owned)).await;
        let Ok(Ok(file)) = found else {
            return super::not_found();
        };
        let reply = FileReply {
            path: &file,
            content_type: content_type_for(path),
            status: StatusCode::OK,
            range,
            head,
            headers: HeaderMap::new(),
        };
        file_response(reply)
            .await
            .unwrap_or_else(|_| super::not_found())
    }
}

/// The starter project named `project` in the devfile at `devfile_path` (of the entry `name`).
async fn starter_project(
    devfile_path: &Path,
    name: &str,
    project: &str,
) -> Result<StarterProject, Failure> {
    let not_in_devfile = || {
        Failure::status(
            StatusCode::NOT_FOUND,
            format!("the starter project named {project} does not exist in the {name} devfile"),
        )
    };
    if !valid_name(project) {
        return Err(not_in_devfile());
    }
    let text = tokio::fs::read_to_string(devfile_path).await.map_err(|e| {
        Failure::error(
            e.to_string(),
            format!("failed to pull the devfile of {name}"),
        )
    })?;
    let devfile: DevfileStarters = serde_saphyr::from_str(&text).map_err(|e| {
        Failure::error(
            e.to_string(),
            format!("failed to parse the devfile of {name}"),
        )
    })?;
    devfile
        .starter_projects
        .into_iter()
        .find(|s| s.name == project)
        .ok_or_else(not_in_devfile)
}

/// Where a starter project's archive is: its `zip.location`, which must be a local path. A git
/// source or a URL would need the network, which `airgap serve` never uses.
fn zip_location(starter: &StarterProject, project: &str) -> Result<String, Failure> {
    let offline = "airgap serve does not download from the network".to_string();
    let location = match (&starter.zip, &starter.git) {
        (Some(zip), _) if !zip.location.is_empty() => zip.location.clone(),
        (_, Some(git)) => {
            let remote = git
                .checkout_from
                .as_ref()
                .map(|c| c.remote.as_str())
                .filter(|r| !r.is_empty())
                .unwrap_or("origin");
            let url = git.remotes.get(remote).cloned().unwrap_or_default();
            return Err(Failure::error(
                offline,
                format!("Problem with downloading starter project {project} from location: {url}"),
            ));
        }
        _ => {
            return Err(Failure::status(
                StatusCode::BAD_REQUEST,
                format!("Starter project {project} has no source to download from"),
            ));
        }
    };
    if has_scheme(&location) {
        return Err(Failure::error(
            offline,
            format!("Problem with downloading starter project {project}"),
        ));
    }
    Ok(location)
}

/// A starter project's archive, and how the messages name it.
struct Archive<'a> {
    path: &'a Path,
    project: &'a str,
    location: &'a str,
}

/// The answer for a starter project with a `subDir`: a zip of that folder of the archive,
/// built on the blocking pool.
async fn sub_dir_zip(
    archive: Archive<'_>,
    sub_dir: &str,
    headers: HeaderMap,
    head: bool,
) -> Response {
    let Archive {
        path,
        project,
        location,
    } = archive;
    let sub = sub_dir.to_string();
    let owned = path.to_path_buf();
    match tokio::task::spawn_blocking(move || extract_sub_dir(&owned, &sub)).await {
        Ok(Ok(bytes)) => {
            let len = bytes.len();
            let body = if head {
                Bytes::new()
            } else {
                Bytes::from(bytes)
            };
            let mut r = bytes_response(StatusCode::ACCEPTED, "application/zip", body);
            r.headers_mut().extend(headers);
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
        Ok(Err(e)) => error_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            e,
            format!(
                "Problem with reading subDir '{sub_dir}' of starter project {project} at {location}"
            ),
        ),
        Err(e) => error_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            format!("Problem with reading starter project {project} at {location}"),
        ),
    }
}

/// The part of a devfile the starter-project endpoint reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DevfileStarters {
    #[serde(default)]
    starter_projects: Vec<StarterProject>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StarterProject {
    #[serde(default)]
    name: String,
    #[serde(default)]
    git: Option<GitSource>,
    #[serde(default)]
    zip: Option<ZipSource>,
    #[serde(default)]
    sub_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GitSource {
    #[serde(default)]
    remotes: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    checkout_from: Option<CheckoutFrom>,
}

#[derive(Debug, Default, Deserialize)]
struct CheckoutFrom {
    #[serde(default)]
    remote: String,
}

#[derive(Debug, Default, Deserialize)]
struct ZipSource {
    #[serde(default)]
    location: String,
}

/// A new archive of the entries under `sub_dir/` of the archive at `path`, renamed to the
/// root; entries are copied raw (not recompressed), so the result is deterministic.
fn extract_sub_dir(path: &Path, sub_dir: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    let prefix = format!("{sub_dir}/");
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut copied = 0usize;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| e.to_string())?;
        let name = entry.name().map_err(|e| e.to_string())?.into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let rest = rest.to_string();
        writer
            .raw_copy_file_rename(entry, rest)
            .map_err(|e| e.to_string())?;
        copied += 1;
    }
    if copied == 0 {
        return Err(format!("no entries under `{sub_dir}/` in the archive"));
    }
    let cursor = writer.finish().map_err(|e| e.to_string())?;
    Ok(cursor.into_inner())
}

/// The entry's icon as a data URI, when it is a readable local file.
fn inline_icon(jail: &Jail, entry: &IndexEntry) -> Option<String> {
    let icon = entry.icon.as_str();
    if icon.is_empty() || icon.starts_with("data:") || has_scheme(icon) || icon.starts_with('/') {
        return None;
    }
    let own = jail.root().join(folder_of(entry)).join(&entry.name);
    let path = if valid_name(&entry.name) {
        jail.relative_file(&own, icon).ok()
    } else {
        None
    }
    .or_else(|| jail.relative_file(jail.root(), icon).ok())?;
    let size = std::fs::metadata(&path).ok()?.len();
    if size > MAX_ICON {
        return None;
    }
    let bytes = std::fs::read(&path).ok()?;
    let media_type = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "image/jpeg"
    } else {
        "image/svg+xml"
    };
    Some(format!(
        "data:{media_type};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}
