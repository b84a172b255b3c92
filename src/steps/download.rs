//! Icons and parent devfiles: downloaded into the content-addressed cache, checked against
//! the locked sha256.

use crate::exec::{Ctx, StepOutput};

pub async fn run(ctx: &Ctx, url: &str) -> Result<StepOutput, String> {
    let entry = ctx
        .lock
        .downloads
        .get(url)
        .ok_or_else(|| format!("`{url}` is not in the lock"))?;
    ctx.fetcher
        .get_locked(url, &entry.sha256)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = StepOutput::default();
    out.outputs
        .insert("sha256".into(), format!("sha256:{}", entry.sha256));
    Ok(out)
}
