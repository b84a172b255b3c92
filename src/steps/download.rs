//! Icons and parent devfiles: downloaded into the content-addressed cache, checked against
//! the locked sha256 and size.

use std::fmt;

use super::kind::{Done, Inputs, Kind, PlanError, PlanInput, Step};
use crate::context::Ctx;
use crate::lock::LockedDownload;
use crate::steps::stale::StaleReason;

/// Download one icon or parent devfile into the cache, checked against its hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Download {
    pub url: String,
}

impl fmt::Display for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "download:{}", self.url)
    }
}

/// The downloaded bytes' digest (`sha256:…`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DownloadOut {
    pub sha256: String,
}

/// The lock part of a download's key.
#[derive(serde::Serialize)]
struct DownloadLock<'a> {
    sha256: &'a str,
    size: u64,
}

impl Kind for Download {
    type Out = DownloadOut;

    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        for (url, d) in &p.lock.downloads {
            let id = Download { url: url.clone() };
            steps.push(Step::new(id, format!("download {url}")).lock(DownloadLock {
                sha256: &d.sha256,
                size: d.size,
            }));
        }
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, _: &Inputs) -> Result<Done<DownloadOut>, String> {
        bytes(ctx, &self.url).await?;
        Ok(Done::new(DownloadOut {
            sha256: format!("sha256:{}", locked(ctx, &self.url)?.sha256),
        }))
    }

    async fn present(&self, ctx: &Ctx, out: &DownloadOut) -> bool {
        ctx.fetcher
            .cached(out.sha256.trim_start_matches("sha256:"))
            .is_some()
    }

    fn missing(&self, _: &str) -> StaleReason {
        StaleReason::DownloadMissing {
            url: self.url.clone(),
        }
    }

    fn relocked(&self, _: &serde_json::Value, _: &serde_json::Value, _: &str) -> StaleReason {
        StaleReason::DownloadRelocked {
            url: self.url.clone(),
        }
    }
}

/// Bytes of a locked download: from the cache, else fetched; checked against the lock's
/// sha256 and size.
pub async fn bytes(ctx: &Ctx, url: &str) -> Result<Vec<u8>, String> {
    let entry = locked(ctx, url)?;
    let bytes = ctx
        .fetcher
        .get_locked(url, &entry.sha256)
        .await
        .map_err(|e| e.to_string())?;
    match size_mismatch(url, entry, bytes.len() as u64) {
        Some(problem) => Err(problem),
        None => Ok(bytes),
    }
}

/// The difference between the size of a download's bytes and the size its lock entry
/// records, as a sentence naming the entry; `None` when they agree.
pub fn size_mismatch(url: &str, entry: &LockedDownload, size: u64) -> Option<String> {
    (size != entry.size).then(|| {
        format!(
            "`{url}` has {size} bytes (sha256 {}), but airgap.lock says size={}: restore airgap.lock (it is generated), or run `airgap lock --update` to resolve it again",
            entry.sha256, entry.size
        )
    })
}

fn locked<'a>(ctx: &'a Ctx, url: &str) -> Result<&'a LockedDownload, String> {
    ctx.lock
        .downloads
        .get(url)
        .ok_or_else(|| format!("`{url}` is not in the lock"))
}
