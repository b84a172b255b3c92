//! The checks of `airgap verify` and `airgap audit`: a built target against the lock. The
//! commands themselves ([`crate::commands::verify`], [`crate::commands::audit`]) load the
//! workspace and call these.
//!
//! `verify` asks the target: every image the lock names is there at the digest apply recorded,
//! whole (every manifest, config and layer blob), and no reference airgap rewrites still points
//! outside the air gap: a devfile's container images and the fully qualified image references
//! inside its env values, `command`/`args` and exec command lines, starter projects, parent,
//! icon and `metadata` files, `stack.yaml` and sample icons, `index.json`, `FROM` lines of the
//! Dockerfiles in each `archive.tar`. Each is a finding (exit 1). Upstream hosts in text airgap
//! does not rewrite (a bare registry host, a URL in a command, variables, samples' git remotes
//! — nothing inside the gap serves git) are printed as notes with their line, so a reviewer
//! sees them all.
//!
//! `audit` rebuilds every output from the lock in a scratch folder, with the workspace's caches
//! (so no network when they are warm), and compares each rebuilt file with what apply recorded
//! and with the file on the target. Image copies are not rebuilt (they are copies, not builds:
//! `verify` checks them); the steps that consume them take apply's records.
//!
//! Both hold the target to every digest and size the lock records, not only the digests
//! apply recorded: each image's manifest size and media type and each platform's digest and
//! size (read back from the target), and each download's size (`verify` reads the cache apply
//! wrote the tree from; `audit`'s rebuild of the download fails). A lock edited by hand is a
//! finding naming its entry, never a silent pass.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use crate::context::Ctx;
use crate::error::Report;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{} found {} problem(s):\n{}", command, findings.len(), findings.iter().map(|f| format!("- {f}")).collect::<Vec<_>>().join("\n"))]
#[diagnostic(code(airgap::audit::findings))]
pub struct Findings {
    pub command: &'static str,
    pub findings: Vec<String>,
    #[help]
    pub help: Option<String>,
}

impl Findings {
    /// The command's result: these findings when there are any, else success, with `verb`
    /// and `summary` on stderr.
    pub fn conclude(self, verb: &str, summary: String) -> Result<ExitCode, Report> {
        crate::machine::set("findings", &self.findings);
        if self.findings.is_empty() {
            crate::machine::set("summary", &summary);
            crate::ui::status(verb, &summary);
            Ok(ExitCode::SUCCESS)
        } else {
            Err(Box::new(self))
        }
    }
}

/// The upstream hosts the lock names, lower-case: image registries, git remotes, downloads. The
/// target's own host is not one of them, nor the empty host of a `file://` URL.
pub fn upstream_hosts(ctx: &Ctx) -> BTreeSet<String> {
    let mut hosts = BTreeSet::new();
    let host_of = |url: &str| -> Option<String> {
        let rest = url.split_once("://").map(|x| x.1)?;
        let host = rest.split(['/', '?', '#']).next()?;
        let host = host.rsplit('@').next()?;
        // A `file://` URL has no host: nothing upstream to look for.
        Some(host.split(':').next()?.to_ascii_lowercase()).filter(|h| !h.is_empty())
    };
    for key in ctx.lock.images.keys() {
        if let Some(h) = key.split('/').next() {
            hosts.insert(h.split(':').next().unwrap_or(h).to_ascii_lowercase());
        }
    }
    for p in ctx.lock.projects.values() {
        let url = match p {
            crate::lock::LockedProject::Git { remote, .. } => remote,
            crate::lock::LockedProject::Zip { url, .. } => url,
        };
        hosts.extend(host_of(url));
    }
    for s in ctx.lock.samples.values() {
        hosts.extend(host_of(&s.remote));
    }
    for url in ctx.lock.downloads.keys() {
        hosts.extend(host_of(url));
    }
    for s in ctx.lock.sources.values() {
        if let crate::lock::LockedSource::Git { url, .. } = s {
            hosts.extend(host_of(url));
        }
    }
    let own = ctx.manifest.target.kind.image_prefix();
    let own = own
        .split('/')
        .next()
        .unwrap_or(own)
        .split(':')
        .next()
        .unwrap_or(own);
    hosts.remove(own);
    hosts.remove("localhost");
    hosts
}

/// The target's own image prefix (`registry.internal/devfiles`, a `dir:` target's address): a
/// reference under it is inside the air gap, even when `naming="nested"` keeps the upstream
/// host as a path component (`localhost:8080/quay.io/devfile/udi:1@sha256:…`).
#[derive(Clone, Copy)]
pub struct Own<'a>(pub &'a str);

impl Own<'_> {
    /// `s` with every whole token under the target's prefix blanked out (same length, so line
    /// numbers and offsets hold): what is left is what may still name an upstream host.
    fn mask<'s>(self, s: &'s str) -> std::borrow::Cow<'s, str> {
        let own = self.0.trim_end_matches('/');
        if own.is_empty() || !s.contains(own) {
            return std::borrow::Cow::Borrowed(s);
        }
        let pat = format!("{own}/");
        let b = s.as_bytes();
        let mut out = b.to_vec();
        for (p, _) in s.match_indices(&pat) {
            let starts_token =
                p == 0 || !(b[p - 1].is_ascii_alphanumeric() || b"-_./:@".contains(&b[p - 1]));
            if !starts_token {
                continue;
            }
            let end = s[p..]
                .find(|c: char| crate::devfile::is_token_delimiter(c) || c == ',')
                .map_or(s.len(), |e| p + e);
            out[p..end].fill(b' ');
        }
        // Whole characters were replaced by ASCII spaces: still UTF-8.
        std::borrow::Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| s.to_string()))
    }
}

/// The first of `hosts` (lower-case) that `s` names outside references under the target's own
/// prefix.
fn names_upstream(s: &str, hosts: &[&str], own: Own) -> Option<String> {
    let lower = own.mask(s).to_ascii_lowercase();
    hosts
        .iter()
        .find(|h| crate::rewrite::contains_host(&lower, h))
        .map(|h| h.to_string())
}

/// What a devfile still references upstream, field by field: container images and image
/// references inside text values (both in [`crate::devfile::Devfile::images`]), starter
/// projects and projects, the parent, the icon, files named in `metadata`. These are airgap's
/// to rewrite: each is a finding.
fn devfile_references(text: &str, hosts: &[&str], own: Own) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(d) = crate::devfile::parse("devfile.yaml", text) else {
        return vec![("the devfile".into(), "cannot be parsed".into())];
    };
    let upstream = |s: &str| names_upstream(s, hosts, own);
    for img in d.images() {
        if let Some(h) = upstream(&img.written) {
            out.push((img.place.clone(), h));
        }
    }
    for (kind, list) in [
        ("starter project", d.starter_projects()),
        ("project", d.projects()),
    ] {
        for p in list {
            let url = match &p.source {
                crate::devfile::ProjectSource::Git { remote, .. } => remote.clone(),
                crate::devfile::ProjectSource::Zip { location } => location.clone(),
            };
            if let Some(h) = upstream(&url) {
                out.push((format!("{kind} `{}`", p.name), h));
            }
        }
    }
    if let Some(parent) = d.parent()
        && let Some(h) = upstream(&parent.url())
    {
        out.push(("parent".into(), h));
    }
    if let Some(icon) = d.icon()
        && let Some(h) = upstream(&icon)
    {
        out.push(("metadata.icon".into(), h));
    }
    for (key, url) in d.metadata_files() {
        if let Some(h) = upstream(&url) {
            out.push((format!("metadata.{key}"), h));
        }
    }
    out
}

/// Findings (references airgap rewrites that still point upstream) and notes (upstream hosts
/// in text airgap does not rewrite: commands, env values, variables, samples' git remotes) of
/// the registry tree.
pub fn scan_tree(registry: &Path, hosts: &[&str], own: Own) -> (Vec<String>, Vec<String>) {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(registry, &mut files);
    let mut scan = TreeScan {
        hosts,
        own,
        findings: Vec::new(),
        notes: Vec::new(),
    };
    for path in files {
        let rel = path
            .strip_prefix(registry)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let rel = format!("registry/{rel}");
        match name.as_str() {
            "devfile.yaml" => scan.devfile(&rel, &String::from_utf8_lossy(&bytes)),
            "stack.yaml" | crate::discover::EXTRA_ENTRIES => {
                scan.icons_of(&rel, &String::from_utf8_lossy(&bytes))
            }
            "index.json" => scan.index(&rel, &bytes),
            "archive.tar" => scan.archive(&rel, &bytes),
            _ => {}
        }
    }
    (scan.findings, scan.notes)
}

/// What [`scan_tree`] found so far.
struct TreeScan<'a> {
    hosts: &'a [&'a str],
    own: Own<'a>,
    findings: Vec<String>,
    notes: Vec<String>,
}

impl TreeScan<'_> {
    fn upstream(&self, s: &str) -> Option<String> {
        names_upstream(s, self.hosts, self.own)
    }

    /// Notes for upstream hosts in `text` outside comments, with why they are left.
    fn text_notes(&mut self, rel: &str, text: &str, why: &str) {
        let text = self.own.mask(text);
        for hit in crate::rewrite::upstream_hosts_outside_comments(&text, self.hosts) {
            self.notes
                .push(format!("{rel}:{} names `{}` ({why})", hit.line, hit.host));
        }
    }

    fn devfile(&mut self, rel: &str, text: &str) {
        let before = self.findings.len();
        for (place, host) in devfile_references(text, self.hosts, self.own) {
            self.findings.push(format!("{rel}: {place} names `{host}`"));
        }
        if self.findings.len() == before {
            self.text_notes(
                rel,
                text,
                "in text airgap does not rewrite: not a whole, fully qualified image reference, or a variable",
            );
        }
    }

    /// `stack.yaml` and `extraDevfileEntries.yaml`: their icons are rewritten; other hosts
    /// are samples' repositories.
    fn icons_of(&mut self, rel: &str, text: &str) {
        let v: serde_json::Value = serde_saphyr::from_str(text).unwrap_or_default();
        let mut icons = vec![v["icon"].as_str().unwrap_or("").to_string()];
        icons.extend(
            v["samples"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s["icon"].as_str().unwrap_or("").to_string()),
        );
        for icon in icons {
            if let Some(h) = self.upstream(&icon) {
                self.findings
                    .push(format!("{rel}: icon `{icon}` names `{h}`"));
            }
        }
        self.text_notes(
            rel,
            text,
            "a sample's upstream repository: nothing in the air gap serves git",
        );
    }

    fn index(&mut self, rel: &str, bytes: &[u8]) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            self.findings.push(format!("{rel} is not valid JSON"));
            return;
        };
        for entry in v.as_array().into_iter().flatten() {
            let is_sample = entry["type"] == "sample";
            let mut strings = Vec::new();
            collect_strings(entry, "", &mut strings);
            for (at, s) in strings {
                let Some(h) = self.upstream(&s) else {
                    continue;
                };
                let where_ = format!(
                    "{rel}: {}{at} names `{h}`",
                    entry["name"].as_str().unwrap_or("?")
                );
                if is_sample && at.contains("git") {
                    self.notes.push(format!(
                        "{where_} (a sample's upstream repository: nothing in the air gap serves git)"
                    ));
                } else {
                    self.findings.push(where_);
                }
            }
        }
    }

    /// A tar.gz, as upstream's build makes it (see `steps/archive.rs`): Dockerfiles' `FROM`
    /// lines are rewritten; hosts in other YAML files are notes.
    fn archive(&mut self, rel: &str, bytes: &[u8]) {
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let Ok(entries) = ar.entries() else { return };
        for mut e in entries.flatten() {
            let inner = e
                .path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut content = Vec::new();
            if e.read_to_end(&mut content).is_err() {
                continue;
            }
            let Ok(text) = String::from_utf8(content) else {
                continue;
            };
            let base = inner.rsplit('/').next().unwrap_or(&inner);
            if crate::devfile::is_dockerfile(base) {
                for from in crate::devfile::dockerfile_froms(&text) {
                    if let Some(h) = self.upstream(&from.written) {
                        self.findings
                            .push(format!("{rel} → {inner}:{} FROM names `{h}`", from.line));
                    }
                }
            } else if base.ends_with(".yaml") || base.ends_with(".yml") {
                let text = self.own.mask(&text);
                for hit in crate::rewrite::upstream_hosts_outside_comments(&text, self.hosts) {
                    self.notes
                        .push(format!("{rel} → {inner}:{} names `{}`", hit.line, hit.host));
                }
            }
        }
    }
}

fn collect_strings(v: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::String(s) => out.push((at.to_string(), s.clone())),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_strings(x, &format!("{at}[{i}]"), out);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                collect_strings(x, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// What differs between the image apply recorded and every digest and size the lock records
/// for it (its manifest's size, each platform's digest and size), each naming the entry.
pub async fn lock_findings(
    ctx: &Ctx,
    image: &str,
    outputs: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    match crate::steps::image_lock_differences(ctx, image, outputs).await {
        Ok(problems) => problems
            .into_iter()
            .map(|p| format!("image {image} does not match airgap.lock: {p}"))
            .collect(),
        Err(e) => vec![format!("image {image}: {e}")],
    }
}

/// Every image apply placed at the target (mirrored images, stack artifacts, the devfile-index
/// image): each must be there under its name (tag) at the digest apply recorded, with every
/// manifest and blob whole; a mirrored image must also match the lock. Returns the findings and
/// how many images were checked.
pub async fn landed_findings(
    ctx: &Ctx,
    plan: &crate::plan::Plan,
    state: &crate::state::State,
) -> (Vec<String>, usize) {
    let mut findings = Vec::new();
    let mut checked = 0usize;
    let (client, destination) = match ctx.oci().await {
        Ok(x) => x,
        Err(e) => return (vec![format!("the target: {e}")], 0),
    };
    for step in &plan.steps {
        let rec = state.recorded(&step.name);
        let Some((target, digest)) = rec.as_ref().and_then(|r| step.id.landed(ctx, &r.outputs))
        else {
            if let Some(image) = step.id.as_image() {
                findings.push(format!("image {image} was never applied"));
            } else if rec.is_none() && step.id.places_image() {
                findings.push(format!("the {} was never applied", step.describe));
            }
            continue;
        };
        checked += 1;
        // A layout's image counts as held only when whole: ask what is missing either way,
        // so a short blob is named rather than the whole image.
        let held = client.holds(destination, &target, &digest).await;
        let missing = client
            .missing_blobs(destination, &target.repository, &digest)
            .await;
        match (held, missing) {
            (Err(e), _) => findings.push(format!("image {target}: {e}")),
            (Ok(_), Ok(missing)) if !missing.is_empty() => findings.extend(
                missing
                    .into_iter()
                    .map(|m| format!("image {target}: {m} is missing or incomplete")),
            ),
            (Ok(false), _) => findings.push(format!(
                "image {target} is not at the target with {digest} (the {})",
                step.describe
            )),
            (Ok(true), Err(e)) => findings.push(format!("image {target}: {e}")),
            (Ok(true), Ok(_)) => {
                if let (Some(image), Some(rec)) = (step.id.as_image(), &rec) {
                    findings.extend(lock_findings(ctx, image, &rec.outputs).await);
                }
            }
        }
    }
    (findings, checked)
}

/// Downloads whose bytes (in the workspace's cache, what apply wrote into the tree) do not
/// have the size the lock records. A download missing from the cache is not checked here:
/// the files that hold it in the tree are checked by their steps' records.
pub fn download_findings(ctx: &Ctx) -> Vec<String> {
    ctx.lock
        .downloads
        .iter()
        .filter_map(|(url, entry)| {
            let bytes = ctx.fetcher.cached(&entry.sha256)?;
            crate::steps::download_size_mismatch(url, entry, bytes.len() as u64)
                .map(|problem| format!("download {problem}"))
        })
        .collect()
}
