//! A load client for `airgap serve`: `clients` tasks sharing one reqwest connection pool, each
//! requesting one URL in a loop and reading every body to the end, for a fixed time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What one load run measured.
pub struct Row {
    pub name: String,
    pub requests: u64,
    pub bytes: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Latency of every successful request, sorted.
    pub latencies: Vec<Duration>,
}

impl Row {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// The `p` quantile (0..=1) of the latencies, in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies, p)
    }
}

/// `clients` concurrent tasks requesting `url` for `duration`.
pub async fn run(url: String, clients: usize, duration: Duration, client: reqwest::Client) -> Row {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, client, stop) = (url.clone(), client.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let (mut requests, mut bytes, mut errors) = (0u64, 0u64, 0u64);
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(b) => {
                            requests += 1;
                            bytes += b.len() as u64;
                            latencies.push(t.elapsed());
                        }
                        Err(_) => errors += 1,
                    },
                    _ => errors += 1,
                }
            }
            (requests, bytes, errors, latencies)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut row = Row {
        name: String::new(),
        requests: 0,
        bytes: 0,
        errors: 0,
        seconds: 0.0,
        latencies: Vec::new(),
    };
    for t in tasks {
        let (r, b, e, l) = t.await.expect("a client task");
        row.requests += r;
        row.bytes += b;
        row.errors += e;
        row.latencies.extend(l);
    }
    row.seconds = started.elapsed().as_secs_f64();
    row.latencies.sort();
    row
}

/// The `p` quantile (0..=1) of sorted latencies, in milliseconds (0 when there are none).
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}
