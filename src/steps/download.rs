//! Icons and parent devfiles: downloaded into the content-addressed cache, checked against
//! the locked sha256.

use crate::exec::{Ctx, StepOutput};

pub async fn run(ctx: &Ctx, url: &str) -> Result<StepOutput, String> {
    bytes(ctx, url).await?;
    let mut out = StepOutput::default();
    out.outputs.insert(
        "sha256".into(),
        format!("sha256:{}", locked_sha256(ctx, url)?),
    );
    Ok(out)
}

/// Bytes of a locked download: from the cache, else fetched and checked against the lock.
pub async fn bytes(ctx: &Ctx, url: &str) -> Result<Vec<u8>, String> {
    ctx.fetcher
        .get_locked(url, locked_sha256(ctx, url)?)
        .await
        .map_err(|e| e.to_string())
}

fn locked_sha256<'a>(ctx: &'a Ctx, url: &str) -> Result<&'a str, String> {
    ctx.lock
        .downloads
        .get(url)
        .map(|entry| entry.sha256.as_str())
        .ok_or_else(|| format!("`{url}` is not in the lock"))
}
