//! Icons and parent devfiles: downloaded into the content-addressed cache, checked against
//! the locked sha256 and size.

use crate::context::{Ctx, StepOutput};
use crate::lock::LockedDownload;

pub async fn run(ctx: &Ctx, url: &str) -> Result<StepOutput, String> {
    bytes(ctx, url).await?;
    let mut out = StepOutput::default();
    out.outputs.insert(
        "sha256".into(),
        format!("sha256:{}", locked(ctx, url)?.sha256),
    );
    Ok(out)
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
