//! Sneakernet: `airgap apply --bundle DIR` and `airgap push DIR`.
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
//!   credential). It is removed when an apply into the bundle starts and written when every
//!   step succeeded, so a folder without it is not a bundle to push.
//!
//! A bundle has its own step state (see [`crate::exec::Ctx::state_dir`]) and its image steps
//! have their own keys ([`crate::plan::Output::Bundle`]): building one never makes the
//! registry target look up to date, nor the other way round.
//!
//! `push` checks the bundle before sending anything (every manifest read and checked against
//! its digest, every blob present with its size: [`Layout::check_complete`]), then uploads each
//! image with [`crate::oci::Client::push_layout`]: blobs the registry has are skipped, so a
//! re-run after an interruption sends only what is missing; every blob is hashed as it
//! streams, and one whose content does not match its digest is never completed at the
//! registry, nor is any manifest that names it (so its image is not tagged). `--to` changes
//! the host the bytes are sent to, never the repositories or tags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{Report, runtime};
use crate::manifest::{Manifest, TargetKind};
use crate::oci::layout::{Layout, LayoutProblem};
use crate::oci::mirror::{RegistryAccess, Tls};

/// The bundle's description, at the bundle's root.
pub const FILE_NAME: &str = "airgap-bundle.json";
/// The format of [`FILE_NAME`] this build reads and writes.
pub const VERSION: u32 = 1;

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
        "the bundle at `{}` is damaged or incomplete: image `{}`: {}\n  (file `{}`){}",
        dir.display(),
        first.image,
        first.problem,
        first.path.display(),
        if *more > 0 { format!("\nand {more} more problems") } else { String::new() }
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

    #[error(
        "the bundle at `{}` is incomplete, so `{FILE_NAME}` was not written: image `{}`: {}\n  (file `{}`){}",
        dir.display(),
        first.image,
        first.problem,
        first.path.display(),
        if *more > 0 { format!("\nand {more} more problems") } else { String::new() }
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

/// Writes `DIR/airgap-bundle.json` for the manifest's registry target: the bundle is complete.
/// The layout is checked first as `push` will check it ([`Layout::check_complete`]): a bundle
/// that `push` would refuse is never marked complete.
pub async fn finish(m: &Manifest, dir: &Path) -> Result<BundleInfo, BundleError> {
    let TargetKind::Registry { prefix, tls, .. } = &m.target.kind else {
        return Err(BundleError::NotRegistryTarget {
            target: m.target.kind.describe(),
        });
    };
    let mut problems = Layout::open_existing(dir)?.check_complete().await;
    if !problems.is_empty() {
        let more = problems.len() - 1;
        return Err(BundleError::Incomplete {
            dir: dir.to_path_buf(),
            first: problems.remove(0),
            more,
        });
    }
    let (registry, path) = prefix.split_once('/').unwrap_or((prefix, ""));
    let info = BundleInfo {
        version: VERSION,
        registry: registry.to_owned(),
        path: path.to_owned(),
        tls: *tls,
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

/// Options of `airgap push`.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// `HOST[:PORT]` to send the bytes to instead of the registry the bundle names.
    pub to: Option<String>,
    pub tls: Option<Tls>,
    pub ca_file: Option<PathBuf>,
    pub jobs: usize,
}

/// `airgap push DIR`.
pub fn cmd_push(dir: &Path, options: &PushOptions) -> Result<ExitCode, Report> {
    let info = BundleInfo::read(dir).map_err(boxed)?;
    let host = match &options.to {
        Some(to) => {
            check_host(to).map_err(|reason| {
                boxed(BundleError::BadTo {
                    to: to.clone(),
                    reason,
                    target: info.target(),
                })
            })?;
            to.clone()
        }
        None => info.registry.clone(),
    };
    let tls = options.tls.unwrap_or(info.tls);
    let mut access = RegistryAccess::new(host.clone(), tls);
    if let Some(ca) = &options.ca_file {
        if tls != Tls::Verify {
            return Err(boxed(BundleError::CaFileUnused { tls }));
        }
        access = access.with_ca_file(ca);
    }
    let layout = Layout::open_existing(dir)
        .map_err(BundleError::from)
        .map_err(boxed)?;

    let runtime = runtime(options.jobs)?;
    runtime.block_on(async {
        let mut problems = layout.check_complete().await;
        if !problems.is_empty() {
            let more = problems.len() - 1;
            return Err(boxed(BundleError::Damaged {
                dir: dir.to_path_buf(),
                first: problems.remove(0),
                more,
            }));
        }
        let images = layout.images().await;
        let sent_to = if host == info.registry {
            format!("`{host}`")
        } else {
            format!("`{host}` (names stay `{}/…`)", info.target())
        };
        eprintln!(
            "{:>12} {} images of `{}` to {sent_to}",
            "Pushing",
            images.len(),
            dir.display()
        );
        let client = crate::oci::Client::new(crate::oci::ClientConfig {
            jobs: options.jobs.max(1),
            progress: crate::oci::progress::Progress::stderr(),
            ..Default::default()
        });
        let started = std::time::Instant::now();
        let results = client.push_layout(&layout, &access).await;
        let total = results.len();
        let mut failures = Vec::new();
        let (mut pushed, mut present) = (0, 0);
        let mut stats = crate::oci::CopyStats::default();
        for (image, result) in results {
            match result {
                Ok(outcome) if outcome.stats.manifests_pushed == 0 => present += 1,
                Ok(outcome) => {
                    pushed += 1;
                    let s = outcome.stats;
                    stats.blobs_uploaded += s.blobs_uploaded;
                    stats.blobs_skipped += s.blobs_skipped;
                    stats.blobs_mounted += s.blobs_mounted;
                    stats.bytes_uploaded += s.bytes_uploaded;
                }
                Err(e) => {
                    let name = match &image.tag {
                        Some(tag) => format!("{}:{tag}", image.repository),
                        None => format!("{}@{}", image.repository, image.digest),
                    };
                    failures.push((name, e.to_string()));
                }
            }
        }
        eprintln!(
            "{:>12} {total} images in {:.2}s: {pushed} pushed, {present} already there{}; \
             {} blobs uploaded ({} bytes), {} skipped, {} mounted{}",
            if failures.is_empty() {
                "Pushed"
            } else {
                "Failed"
            },
            started.elapsed().as_secs_f64(),
            if failures.is_empty() {
                String::new()
            } else {
                format!(", {} failed", failures.len())
            },
            stats.blobs_uploaded,
            stats.bytes_uploaded,
            stats.blobs_skipped,
            stats.blobs_mounted,
            if failures.is_empty() {
                ""
            } else {
                " (blobs of the failed images not counted)"
            },
        );
        if failures.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            Err(boxed(BundleError::PushFailed {
                host: host.clone(),
                total,
                failures,
            }))
        }
    })
}

fn boxed(e: BundleError) -> Report {
    Box::new(e)
}

/// `host[:port]`, nothing else: no scheme, no path.
fn check_host(s: &str) -> Result<(), String> {
    if s.contains("://") {
        return Err("it has a scheme; say `--tls` instead".into());
    }
    if s.contains('/') {
        return Err("it has a path".into());
    }
    crate::oci::naming::TargetPrefix::parse(s)
        .map(|_| ())
        .map_err(|e| e.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_is_a_host_and_port_only() {
        assert!(check_host("localhost:5000").is_ok());
        assert!(check_host("127.0.0.1:5000").is_ok());
        assert!(check_host("registry.internal").is_ok());
        assert!(check_host("localhost:5000/devfiles").is_err());
        assert!(check_host("https://localhost:5000").is_err());
        assert!(check_host("").is_err());
    }

    #[test]
    fn the_description_round_trips_and_names_its_target() {
        let info = BundleInfo {
            version: VERSION,
            registry: "registry.internal:5000".into(),
            path: "devfiles".into(),
            tls: Tls::PlainHttp,
        };
        let text = serde_json::to_string(&info).unwrap();
        assert_eq!(
            text,
            r#"{"version":1,"registry":"registry.internal:5000","path":"devfiles","tls":"plain-http"}"#
        );
        assert_eq!(serde_json::from_str::<BundleInfo>(&text).unwrap(), info);
        assert_eq!(info.target(), "registry.internal:5000/devfiles");
    }
}
