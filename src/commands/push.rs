//! `airgap push DIR`: upload a bundle made by `apply --bundle` to the registry it names (or
//! the host `--to` says), after checking it whole; see [`crate::bundle`] for what a bundle is
//! and what is checked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::bundle::{BundleError, BundleInfo, unrecorded};
use crate::error::Report;
use crate::oci::error::OciError;
use crate::oci::layout::{Layout, LayoutImage};
use crate::oci::mirror::{RegistryAccess, Tls};
use crate::oci::{CopyOutcome, CopyStats};
use crate::workspace::runtime;

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
pub fn run(dir: &Path, options: &PushOptions) -> Result<ExitCode, Report> {
    let info = BundleInfo::read(dir).map_err(boxed)?;
    let (host, tls, access) = destination(&info, options)?;
    let layout = Layout::open_existing(dir)
        .map_err(BundleError::from)
        .map_err(boxed)?;

    let runtime = runtime(options.jobs)?;
    runtime.block_on(async {
        check_bundle(dir, &info, &layout).await?;
        let progress = if crate::ui::verbosity() == crate::ui::Verbosity::Quiet {
            crate::oci::progress::Progress::hidden()
        } else {
            crate::oci::progress::Progress::stderr()
        };
        let client = crate::oci::Client::new(crate::oci::ClientConfig {
            jobs: options.jobs.max(1),
            progress: progress.clone(),
            ..Default::default()
        });
        // One request first: an address nothing answers at is one error, not one per image.
        match client.check_reachable(&access).await {
            Err(OciError::Unreachable { host, message }) => {
                return Err(boxed(BundleError::Unreachable {
                    host,
                    message,
                    target: info.target(),
                    tls,
                }));
            }
            Err(e) => return Err(boxed(e.into())),
            Ok(()) => {}
        }
        let images = layout.images().await;
        let sent_to = if host == info.registry {
            format!("`{host}`")
        } else {
            format!("`{host}` (names stay `{}/…`)", info.target())
        };
        crate::ui::status(
            "Pushing",
            format!(
                "{} of `{}` to {sent_to}",
                crate::ui::plural(images.len() as u64, "image"),
                dir.display()
            ),
        );
        let started = std::time::Instant::now();
        let tally = Tally::of(client.push_layout(&layout, &access).await);
        progress.finish();
        tally.print(started.elapsed());
        tally.record(&host);
        if tally.failures.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            Err(boxed(BundleError::PushFailed {
                host: host.clone(),
                total: tally.total,
                failures: tally.failures,
            }))
        }
    })
}

/// Where the bytes go: the host (`--to` or the bundle's registry), the TLS mode and the
/// access to it.
fn destination(
    info: &BundleInfo,
    options: &PushOptions,
) -> Result<(String, Tls, RegistryAccess), Report> {
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
    Ok((host, tls, access))
}

/// The bundle holds exactly what its record says, and every blob whole.
async fn check_bundle(dir: &Path, info: &BundleInfo, layout: &Layout) -> Result<(), Report> {
    let problems = unrecorded(info, &layout.entries().await);
    if !problems.is_empty() {
        return Err(boxed(BundleError::Unrecorded {
            dir: dir.to_path_buf(),
            problems,
        }));
    }
    let mut problems = layout.check_complete().await;
    if !problems.is_empty() {
        let more = problems.len() - 1;
        return Err(boxed(BundleError::Damaged {
            dir: dir.to_path_buf(),
            first: problems.remove(0),
            more,
        }));
    }
    Ok(())
}

/// What a push did, image by image, summed.
struct Tally {
    total: usize,
    pushed: usize,
    present: usize,
    /// Blob counts of the images pushed (not of the failed ones).
    stats: CopyStats,
    /// Each failed image's name and error.
    failures: Vec<(String, String)>,
}

impl Tally {
    fn of(results: Vec<(LayoutImage, Result<CopyOutcome, OciError>)>) -> Tally {
        let mut tally = Tally {
            total: results.len(),
            pushed: 0,
            present: 0,
            stats: CopyStats::default(),
            failures: Vec::new(),
        };
        for (image, result) in results {
            match result {
                Ok(outcome) if outcome.stats.manifests_pushed == 0 => tally.present += 1,
                Ok(outcome) => {
                    tally.pushed += 1;
                    let s = outcome.stats;
                    tally.stats.blobs_uploaded += s.blobs_uploaded;
                    tally.stats.blobs_skipped += s.blobs_skipped;
                    tally.stats.blobs_mounted += s.blobs_mounted;
                    tally.stats.bytes_uploaded += s.bytes_uploaded;
                }
                Err(e) => {
                    let name = match &image.tag {
                        Some(tag) => format!("{}:{tag}", image.repository),
                        None => format!("{}@{}", image.repository, image.digest),
                    };
                    tally.failures.push((name, e.to_string()));
                }
            }
        }
        tally
    }

    /// The summary line on stderr.
    fn print(&self, elapsed: std::time::Duration) {
        let Tally {
            total,
            pushed,
            present,
            stats,
            failures,
        } = self;
        crate::ui::status(
            if failures.is_empty() {
                "Pushed"
            } else {
                "Failed"
            },
            format!(
                "{} in {:.2}s: {pushed} pushed, {present} already there{}; {}{}",
                crate::ui::plural(*total as u64, "image"),
                elapsed.as_secs_f64(),
                if failures.is_empty() {
                    String::new()
                } else {
                    format!(", {} failed", failures.len())
                },
                stats.describe(false),
                if failures.is_empty() {
                    ""
                } else {
                    " (blobs of the failed images not counted)"
                },
            ),
        );
    }

    /// The `--format json` fields.
    fn record(&self, host: &str) {
        crate::machine::set(
            "images",
            serde_json::json!({
                "total": self.total, "pushed": self.pushed, "present": self.present,
                "failed": self.failures.len(),
            }),
        );
        let s = &self.stats;
        crate::machine::set(
            "blobs",
            serde_json::json!({
                "uploaded": s.blobs_uploaded, "bytes_uploaded": s.bytes_uploaded,
                "skipped": s.blobs_skipped, "mounted": s.blobs_mounted,
            }),
        );
        crate::machine::set(
            "failures",
            self.failures
                .iter()
                .map(|(image, message)| serde_json::json!({"image": image, "message": message}))
                .collect::<Vec<_>>(),
        );
        crate::machine::set("registry", host);
    }
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
}
