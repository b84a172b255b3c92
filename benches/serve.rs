//! Throughput of `airgap serve` with 64 concurrent clients.
//!
//! The server runs in this process on its own tokio runtime (its own threads), loaded from a
//! temp folder: upstream's index-server test registry plus an OCI layout holding one 10 MB
//! layer. The clients are 64 tasks sharing one reqwest connection pool (64 connections) on a
//! second runtime; each task requests the same URL in a loop and reads every body to the end.
//! Client and server share the machine's cores, so the numbers are a floor, not a ceiling.
//!
//! `cargo bench --bench serve` (release). `AIRGAP_BENCH_SECS` sets the seconds per row
//! (default 5); `AIRGAP_BENCH_CLIENTS` the number of clients (default 64).

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use airgap::serve::{ServeOptions, Server};
use sha2::{Digest, Sha256};
use support::copy_dir;
use support::load::run;

const BLOB_SIZE: usize = 10 * 1024 * 1024;

fn write_blob(dir: &Path, bytes: &[u8]) -> String {
    let hex = hex::encode(Sha256::digest(bytes));
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("creates blobs/sha256");
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).expect("writes a blob");
    format!("sha256:{hex}")
}

/// The served folder; returns the big blob's digest.
fn build(dir: &Path) -> String {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upstream/registry-support-tests/index-server/registry");
    copy_dir(&fixture, &dir.join("registry"));
    std::fs::copy(
        fixture.join("index_main.json"),
        dir.join("registry/index.json"),
    )
    .expect("copies the index");

    // Incompressible, deterministic bytes (xorshift64).
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut big = Vec::with_capacity(BLOB_SIZE);
    while big.len() < BLOB_SIZE {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        big.extend_from_slice(&state.to_le_bytes());
    }
    big.truncate(BLOB_SIZE);
    let layer = write_blob(dir, &big);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = write_blob(dir, config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer, "size": big.len()}],
    }))
    .expect("JSON");
    let manifest_digest = write_blob(dir, &manifest);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("writes oci-layout");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"io.github.airgap.repository": "bench/big",
                            "org.opencontainers.image.ref.name": "bench/big:1"},
        }],
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("JSON"),
    )
    .expect("writes index.json");
    layer
}

fn main() {
    let seconds: u64 = std::env::var("AIRGAP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let clients: usize = std::env::var("AIRGAP_BENCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let tmp = tempfile::tempdir().expect("a temp folder");
    let blob = build(tmp.path());

    // The server, on its own runtime and threads.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dir = tmp.path().to_path_buf();
    let server_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        runtime.block_on(async move {
            let server = Server::bind(
                &dir,
                "127.0.0.1:0".parse().expect("an address"),
                ServeOptions::default(),
            )
            .await
            .expect("the server starts");
            addr_tx
                .send(server.local_addr())
                .expect("sends the address");
            server
                .run_until(async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("the server runs");
        });
    });
    let addr = addr_rx.recv().expect("the server's address");

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let client = support::async_builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("a client");
    let rows: Vec<(&str, String)> = vec![
        ("GET /index", "/index".to_string()),
        ("GET /v2index", "/v2index".to_string()),
        (
            "GET /v2index/all?tags=Java&arch=amd64",
            "/v2index/all?tags=Java&arch=amd64".to_string(),
        ),
        ("GET /devfiles/go", "/devfiles/go".to_string()),
        (
            "GET /v2/bench/big/manifests/1",
            "/v2/bench/big/manifests/1".to_string(),
        ),
        ("GET 10 MB blob", format!("/v2/bench/big/blobs/{blob}")),
    ];
    println!(
        "airgap serve, {clients} concurrent clients, {seconds} s per row, {} cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| {:<38} | {:>9} | {:>10} | {:>9} | {:>8} | {:>8} | {:>6} |",
        "request", "requests", "req/s", "MB/s", "p50 ms", "p99 ms", "errors"
    );
    println!(
        "|{:-<40}|{:->11}|{:->12}|{:->11}|{:->10}|{:->10}|{:->8}|",
        "", "", "", "", "", "", ""
    );
    for (name, path) in rows {
        let url = format!("http://{addr}{path}");
        // Warm up the connections and caches.
        runtime.block_on(run(
            url.clone(),
            clients,
            Duration::from_millis(500),
            client.clone(),
        ));
        let mut row = runtime.block_on(run(
            url,
            clients,
            Duration::from_secs(seconds),
            client.clone(),
        ));
        row.name = name.to_string();
        println!(
            "| {:<38} | {:>9} | {:>10.0} | {:>9.1} | {:>8.2} | {:>8.2} | {:>6} |",
            row.name,
            row.requests,
            row.requests_per_second(),
            row.bytes as f64 / row.seconds / 1e6,
            row.percentile_ms(0.50),
            row.percentile_ms(0.99),
            row.errors
        );
    }
    let _ = stop_tx.send(());
    server_thread.join().expect("the server thread");
}
