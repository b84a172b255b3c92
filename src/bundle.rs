//! Sneakernet: `airgap apply --bundle DIR` and `airgap push DIR`. This module is what a bundle
//! is and how it is checked; the commands are [`crate::commands::apply`] (which calls
//! [`prepare`] and [`finish`]) and [`crate::commands::push`].
//!
//! A bundle is what `apply` would have pushed to a registry target, written to a folder
//! instead, to be carried into the air gap:
//!
//! - `DIR/` is an OCI image layout ([`Layout`]) whose references already name the final
//!   registry: repository `devfiles/go-toolset` for a target `registry.internal:5000/devfiles`
//!   (the host is not part of a layout's names; `airgap-bundle.json` records it);
//! - `DIR/registry/` is the registry tree, whose devfiles reference
//!   `registry.internal:5000/devfiles/…@sha256:…`;
//! - `DIR/airgap-bundle.json` ([`BundleInfo`]) names the registry and its path prefix (never a
//!   credential), and records every image of the layout as the apply left it: repository,
//!   tag, digest, media type and size ([`BundleImage`]). It is removed when an apply into the
//!   bundle starts and written when every step succeeded, so a folder without it is not a
//!   bundle to push.
//!
//! A bundle has its own step state (see [`crate::context::Ctx::state_dir`]) and its image steps
//! have their own keys ([`crate::plan::Output::Bundle`]): building one never makes the
//! registry target look up to date, nor the other way round.
//!
//! `push` trusts no name of the layout's `index.json`: each entry must be exactly one image
//! the description records (so a tag moved to another image's digest, a name outside the
//! bundle's path such as `../../../etc:passwd`, an empty name, or a descriptor that is not a
//! manifest is refused, by name, before anything is sent), and every recorded image must be
//! listed. The description is checked too: repositories under the bundle's path, valid tags,
//! manifest media types.
//!
//! `push` checks the bundle before sending anything (every manifest read and checked against
//! its digest, every blob present with its size: [`Layout::check_complete`]), then uploads each
//! image with [`crate::oci::Client::push_layout`]: blobs the registry has are skipped, so a
//! re-run after an interruption sends only what is missing; every blob is hashed as it
//! streams, and one whose content does not match its digest is never completed at the
//! registry, nor is any manifest that names it (so its image is not tagged). `--to` changes
//! the host the bytes are sent to, never the repositories or tags.

use std::path::{Path, PathBuf};

use crate::manifest::{Manifest, TargetKind};
use crate::oci::digest::Digest;
use crate::oci::layout::{IndexEntry, Layout, LayoutProblem, REF_NAME, REPOSITORY};
use crate::oci::mirror::Tls;

/// The bundle's description, at the bundle's root.
pub const FILE_NAME: &str = "airgap-bundle.json";
/// The format of [`FILE_NAME`] this build reads and writes.
/// Version 2 added the images (version 1 trusted the layout's names).
pub const VERSION: u32 = 2;

/// `airgap-bundle.json`: where the bundle's images belong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BundleInfo {
    pub version: u32,
    /// `host[:port]` of the registry the references name.
    pub registry: String,
    /// The path under it every repository of the bundle starts with (may be empty).
    pub path: String,
    /// How the manifest said the registry is reached; `push` uses it unless told `--tls`.
    pub tls: Tls,
    /// Every image of the layout, as `apply --bundle` wrote it; sorted.
    pub images: Vec<BundleImage>,
}

/// One image of a bundle: what `push` sends, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleImage {
    /// Its repository on the target, path included (`devfiles/go-toolset`).
    pub repository: String,
    /// `None` for an image pushed by digest only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

impl BundleImage {
    /// `repository:tag`, or `repository@digest` without a tag.
    pub fn name(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}", self.repository),
            None => format!("{}@{}", self.repository, self.digest),
        }
    }

    /// The `index.json` entry the layout has for it (see [`crate::oci::layout`]).
    fn entry(&self) -> IndexEntry {
        let mut annotations = std::collections::BTreeMap::new();
        annotations.insert(REPOSITORY.to_owned(), self.repository.clone());
        if let Some(tag) = &self.tag {
            annotations.insert(REF_NAME.to_owned(), format!("{}:{tag}", self.repository));
        }
        IndexEntry {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            annotations,
        }
    }

    /// The image an `index.json` entry written by airgap describes, if its names are ours.
    fn of_entry(e: &IndexEntry) -> Result<BundleImage, String> {
        let repository = e
            .annotations
            .get(REPOSITORY)
            .ok_or_else(|| format!("{} has no `{REPOSITORY}` annotation", describe(e)))?;
        let tag = match e.annotations.get(REF_NAME) {
            None => None,
            Some(name) => Some(
                name.strip_prefix(repository.as_str())
                    .and_then(|t| t.strip_prefix(':'))
                    .ok_or_else(|| {
                        format!(
                            "{} is not a tag of its repository `{repository}`",
                            describe(e)
                        )
                    })?
                    .to_owned(),
            ),
        };
        Ok(BundleImage {
            repository: repository.clone(),
            tag,
            digest: e.digest.clone(),
            media_type: e.media_type.clone(),
            size: e.size,
        })
    }

    /// Why it may not be pushed under the bundle's path `path`, if it may not.
    fn check(&self, path: &str) -> Result<(), String> {
        let name = self.name();
        let components: Vec<&str> = self.repository.split('/').collect();
        if !components
            .iter()
            .all(|c| crate::oci::reference::valid_path_component(c))
        {
            return Err(format!("`{name}` is not a valid repository name"));
        }
        if !path.is_empty()
            && !self
                .repository
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('/'))
        {
            return Err(format!("`{name}` is not under the bundle's path `{path}/`"));
        }
        if let Some(tag) = &self.tag
            && !crate::oci::reference::valid_tag(tag)
        {
            return Err(format!("`{name}`: `{tag}` is not a valid tag"));
        }
        if ![
            crate::oci::media::OCI_MANIFEST,
            crate::oci::media::OCI_INDEX,
            crate::oci::media::DOCKER_MANIFEST,
            crate::oci::media::DOCKER_MANIFEST_LIST,
        ]
        .contains(&self.media_type.as_str())
        {
            return Err(format!(
                "`{name}` has media type `{}`, which is not an image manifest or index",
                self.media_type
            ));
        }
        Ok(())
    }
}

/// An `index.json` entry in words: its name as written, digest and media type.
fn describe(e: &IndexEntry) -> String {
    let name = match (e.annotations.get(REF_NAME), e.annotations.get(REPOSITORY)) {
        (Some(n), _) if n.is_empty() => "an entry with an empty name".to_owned(),
        (Some(n), _) => format!("`{n}`"),
        (None, Some(r)) => format!("`{r}@{}`", e.digest),
        (None, None) => "an entry without a name".to_owned(),
    };
    format!("{name} ({}, `{}`)", e.digest, e.media_type)
}

/// What in the layout's `index.json` is not exactly what the description records, and what
/// in the description may not be pushed (see the module docs). Empty when the bundle may be
/// pushed.
pub fn unrecorded(info: &BundleInfo, entries: &[IndexEntry]) -> Vec<String> {
    let mut problems: Vec<String> = info
        .images
        .iter()
        .filter_map(|image| image.check(&info.path).err())
        .map(|why| format!("{FILE_NAME} records {why}"))
        .collect();
    let recorded: Vec<IndexEntry> = info.images.iter().map(BundleImage::entry).collect();
    // Recorded images already named by a problem: not reported again as missing.
    let mut named = std::collections::BTreeSet::new();
    for e in entries {
        if recorded.contains(e) {
            continue;
        }
        let same_name = info.images.iter().find(|image| {
            let r = image.entry();
            r.annotations.contains_key(REF_NAME)
                && r.annotations.get(REF_NAME) == e.annotations.get(REF_NAME)
        });
        if let Some(image) = same_name {
            named.insert(image.name());
        }
        problems.push(match same_name {
            Some(image) => format!(
                "{} is recorded as {} (`{}`)",
                describe(e),
                image.digest,
                image.media_type
            ),
            None => format!("{} is not an image the bundle records", describe(e)),
        });
    }
    for (image, entry) in info.images.iter().zip(&recorded) {
        if !entries.contains(entry) && !named.contains(&image.name()) {
            problems.push(format!(
                "`{}` is recorded but `index.json` does not list it as {}",
                image.name(),
                image.digest
            ));
        }
    }
    problems
}

impl BundleInfo {
    /// The `host[:port][/path]` the references name.
    pub fn target(&self) -> String {
        if self.path.is_empty() {
            self.registry.clone()
        } else {
            format!("{}/{}", self.registry, self.path)
        }
    }

    /// Reads `DIR/airgap-bundle.json`.
    pub fn read(dir: &Path) -> Result<BundleInfo, BundleError> {
        let path = dir.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BundleError::NotABundle {
                    dir: dir.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(BundleError::Io {
                    what: format!("cannot read `{}`", path.display()),
                    source,
                });
            }
        };
        let version = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64));
        if let Some(v) = version
            && v != u64::from(VERSION)
        {
            return Err(BundleError::UnknownVersion { path, version: v });
        }
        serde_json::from_slice(&bytes).map_err(|e| BundleError::Invalid {
            path,
            reason: e.to_string(),
        })
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BundleError {
    #[error("`--bundle` builds for a registry target, and this manifest's target is `{target}`")]
    #[diagnostic(
        code(airgap::bundle::not_registry),
        help(
            "a `dir:` target is already a folder to carry: `airgap apply` builds it and `airgap serve` serves it"
        )
    )]
    NotRegistryTarget { target: String },

    #[error("`{}` is not empty and is not a bundle", dir.display())]
    #[diagnostic(
        code(airgap::bundle::not_empty),
        help(
            "choose a new or empty folder: a bundle is an OCI image layout plus `registry/`, and airgap does not write into other folders"
        )
    )]
    NotEmpty { dir: PathBuf },

    #[error("`{}` is not a bundle: it has no {FILE_NAME}", dir.display())]
    #[diagnostic(
        code(airgap::bundle::missing),
        help(
            "make one with `airgap apply --bundle DIR`; a bundle whose apply did not finish has no {FILE_NAME}: run that apply again"
        )
    )]
    NotABundle { dir: PathBuf },

    #[error("`{}` is not a bundle description airgap can read: {reason}", path.display())]
    #[diagnostic(code(airgap::bundle::invalid))]
    Invalid { path: PathBuf, reason: String },

    #[error("`{}` has version {version}, and this airgap reads version {VERSION}", path.display())]
    #[diagnostic(
        code(airgap::bundle::version),
        help("push it with the airgap release that made it, or make the bundle again")
    )]
    UnknownVersion { path: PathBuf, version: u64 },

    #[error(
        "the bundle at `{}` lists images that cannot be pushed to `{target}`:\n{}",
        dir.display(),
        bullets(problems)
    )]
    #[diagnostic(
        code(airgap::bundle::unpushable),
        help(
            "something other than `airgap apply --bundle` wrote into this folder: make the bundle in a new folder"
        )
    )]
    Unpushable {
        dir: PathBuf,
        target: String,
        problems: Vec<String>,
    },

    #[error(
        "the bundle at `{}` does not match what `airgap apply --bundle` recorded:\n{}",
        dir.display(),
        bullets(problems)
    )]
    #[diagnostic(
        code(airgap::push::unrecorded),
        help(
            "nothing was pushed: `index.json` or {FILE_NAME} was changed after the bundle was made; copy the bundle again from where it was made, or make it again with `airgap apply --bundle`"
        )
    )]
    Unrecorded { dir: PathBuf, problems: Vec<String> },

    #[error("`--to {to}` is not HOST[:PORT]: {reason}")]
    #[diagnostic(
        code(airgap::push::to),
        help(
            "--to changes only where the bytes are sent; the repositories stay as the bundle names them (`{target}/…`)"
        )
    )]
    BadTo {
        to: String,
        reason: String,
        target: String,
    },

    #[error("`--ca-file` is only used with `--tls verify`, not `{}`", tls.as_str())]
    #[diagnostic(
        code(airgap::push::ca_file),
        help("remove --ca-file, or use --tls verify")
    )]
    CaFileUnused { tls: Tls },

    #[error(
        "the bundle at `{}` is damaged or incomplete: {}",
        dir.display(),
        first_and_more(first, *more)
    )]
    #[diagnostic(
        code(airgap::push::damaged),
        help(
            "nothing was pushed: copy the bundle again from where it was made, or make it again with `airgap apply --bundle`"
        )
    )]
    Damaged {
        dir: PathBuf,
        first: LayoutProblem,
        more: usize,
    },

    #[error("cannot connect to `{host}`: {message}")]
    #[diagnostic(
        code(airgap::push::unreachable),
        help(
            "nothing was pushed; send to another address with `--to HOST[:PORT]` (the names stay `{target}/…`), or change how it is reached with `--tls verify|insecure|plain-http` (now `{}`)", tls.as_str()
        )
    )]
    Unreachable {
        host: String,
        message: String,
        target: String,
        tls: Tls,
    },

    #[error(
        "the bundle at `{}` is incomplete, so `{FILE_NAME}` was not written: {}",
        dir.display(),
        first_and_more(first, *more)
    )]
    #[diagnostic(
        code(airgap::bundle::incomplete),
        help("run `airgap apply --bundle` again: it writes what is missing")
    )]
    Incomplete {
        dir: PathBuf,
        first: LayoutProblem,
        more: usize,
    },

    #[error(
        "{} of {total} images could not be pushed to `{host}`:\n{}",
        failures.len(),
        failures.iter().map(|(image, why)| format!("- {image}: {why}")).collect::<Vec<_>>().join("\n")
    )]
    #[diagnostic(
        code(airgap::push::failed),
        help(
            "no manifest naming a failed blob was pushed, so those images are not tagged; what succeeded is at the registry: fix the cause and run `airgap push` again to send only what is missing"
        )
    )]
    PushFailed {
        host: String,
        total: usize,
        failures: Vec<(String, String)>,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Oci(#[from] crate::oci::error::OciError),

    #[error("{what}")]
    #[diagnostic(code(airgap::io))]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Checks that `apply --bundle DIR` may write into `dir` for this manifest, and returns the
/// bundle's absolute path. With `write`, creates the folder and removes its
/// [`FILE_NAME`] (put back by [`finish`] once every step succeeded).
pub fn prepare(m: &Manifest, dir: &Path, write: bool) -> Result<PathBuf, BundleError> {
    if let TargetKind::Dir { .. } = m.target.kind {
        return Err(BundleError::NotRegistryTarget {
            target: m.target.kind.describe(),
        });
    }
    let io = |what: String| move |source| BundleError::Io { what, source };
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(io("cannot read the current directory".into()))?
            .join(dir)
    };
    match std::fs::read_dir(&absolute) {
        Ok(mut entries) => {
            let empty = entries.next().is_none();
            if !empty && !absolute.join("oci-layout").is_file() {
                return Err(BundleError::NotEmpty { dir: absolute });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("cannot read `{}`", absolute.display()))(e)),
    }
    if !write {
        // The same path apply records the bundle's state under, when the folder exists.
        return Ok(std::fs::canonicalize(&absolute).unwrap_or(absolute));
    }
    std::fs::create_dir_all(&absolute)
        .map_err(io(format!("cannot create `{}`", absolute.display())))?;
    let absolute = std::fs::canonicalize(&absolute)
        .map_err(io(format!("cannot resolve `{}`", absolute.display())))?;
    match std::fs::remove_file(absolute.join(FILE_NAME)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("cannot remove `{FILE_NAME}`"))(e)),
    }
    Ok(absolute)
}

/// Writes `DIR/airgap-bundle.json` for the manifest's registry target, recording the images of
/// the layout the apply wrote: the bundle is complete. The layout is checked first as `push`
/// will check it ([`Layout::check_complete`]): a bundle that `push` would refuse is never
/// marked complete.
pub async fn finish(m: &Manifest, dir: &Path) -> Result<BundleInfo, BundleError> {
    let TargetKind::Registry { prefix, tls, .. } = &m.target.kind else {
        return Err(BundleError::NotRegistryTarget {
            target: m.target.kind.describe(),
        });
    };
    let layout = Layout::open_existing(dir)?;
    let mut problems = layout.check_complete().await;
    if !problems.is_empty() {
        let more = problems.len() - 1;
        return Err(BundleError::Incomplete {
            dir: dir.to_path_buf(),
            first: problems.remove(0),
            more,
        });
    }
    let (registry, path) = prefix.split_once('/').unwrap_or((prefix, ""));
    let mut images = Vec::new();
    let mut problems = Vec::new();
    for entry in layout.entries().await {
        match BundleImage::of_entry(&entry).and_then(|image| image.check(path).map(|()| image)) {
            Ok(image) => images.push(image),
            Err(why) => problems.push(why),
        }
    }
    if !problems.is_empty() {
        // Only something other than this apply writing into the bundle gets here.
        return Err(BundleError::Unpushable {
            dir: dir.to_path_buf(),
            target: prefix.clone(),
            problems,
        });
    }
    images.sort_by(|a, b| {
        (&a.repository, &a.tag, &a.digest).cmp(&(&b.repository, &b.tag, &b.digest))
    });
    let info = BundleInfo {
        version: VERSION,
        registry: registry.to_owned(),
        path: path.to_owned(),
        tls: *tls,
        images,
    };
    let mut bytes = serde_json::to_vec_pretty(&info).map_err(|e| BundleError::Invalid {
        path: dir.join(FILE_NAME),
        reason: e.to_string(),
    })?;
    bytes.push(b'\n');
    let path = dir.join(FILE_NAME);
    crate::fetch::write_atomic(&path, &bytes).map_err(|source| BundleError::Io {
        what: format!("cannot write `{}`", path.display()),
        source,
    })?;
    Ok(info)
}

/// The first problem of a layout and how many more, for the errors above.
fn first_and_more(first: &LayoutProblem, more: usize) -> String {
    let more = if more > 0 {
        format!("\nand {more} more problems")
    } else {
        String::new()
    };
    format!(
        "image `{}`: {}\n  (file `{}`){more}",
        first.image,
        first.problem,
        first.path.display()
    )
}

/// One `- problem` line per problem, for the errors above.
fn bullets(problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| format!("- {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_round_trips_and_names_its_target() {
        let info = BundleInfo {
            version: VERSION,
            registry: "registry.internal:5000".into(),
            path: "devfiles".into(),
            tls: Tls::PlainHttp,
            images: vec![BundleImage {
                repository: "devfiles/go".into(),
                tag: Some("1".into()),
                digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
                media_type: crate::oci::media::OCI_MANIFEST.into(),
                size: 7,
            }],
        };
        let text = serde_json::to_string(&info).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"version":2,"registry":"registry.internal:5000","path":"devfiles","tls":"plain-http","images":[{{"repository":"devfiles/go","tag":"1","digest":"sha256:{}","mediaType":"application/vnd.oci.image.manifest.v1+json","size":7}}]}}"#,
                "a".repeat(64)
            )
        );
        assert_eq!(serde_json::from_str::<BundleInfo>(&text).unwrap(), info);
        assert_eq!(info.target(), "registry.internal:5000/devfiles");
    }
}
