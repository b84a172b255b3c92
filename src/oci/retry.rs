//! Retries with exponential backoff for what may pass: 5xx, 429, dropped connections. A
//! `Retry-After` the registry sent replaces the backoff (up to [`MAX_RETRY_AFTER`]).
//! A connection that cannot be made at all (refused, unknown name) is not retried: see
//! [`OciError::Unreachable`].

use std::future::Future;
use std::time::Duration;

use super::error::OciError;

/// How often and how patiently to retry one request or one blob transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1 = no retry).
    pub attempts: u32,
    /// Delay before the first retry; doubled each time, with ±25 % jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// The longest `Retry-After` honoured; a longer one is cut to this, so a registry cannot park
/// a run for hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
            .min(self.max_delay);
        // Jitter from the clock: enough to keep parallel retries from marching in step.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let factor = 0.75 + f64::from(nanos % 1000) / 2000.0;
        exp.mul_f64(factor)
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not retryable, or the
    /// attempts are used up. `on_retry` hears about each failure that will be retried.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        mut on_retry: impl FnMut(&OciError, u32),
        mut attempt: F,
    ) -> Result<T, OciError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, OciError>>,
    {
        let mut n = 0;
        loop {
            match attempt(n).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && n + 1 < self.attempts.max(1) => {
                    on_retry(&e, n + 1);
                    let delay = match e.retry_after() {
                        Some(asked) => asked.min(MAX_RETRY_AFTER),
                        None => self.delay(n),
                    };
                    tokio::time::sleep(delay).await;
                    n += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
