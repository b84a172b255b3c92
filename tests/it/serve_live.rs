//! `airgap serve` over HTTPS, and reloading the folder while serving: the real binary serving
//! the quickstart built by the real binary, a certificate made by `openssl`, clients that
//! verify it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::quickstart::{fresh_example, only_stacks};
use crate::serve::Served;
use crate::support::eventually;
use crate::support::{airgap, airgap_cmd, copy_dir};

/// The quickstart, locked and applied into `<tmp>/quickstart/out`.
fn built_quickstart(tmp: &Path) -> PathBuf {
    let ws = tmp.join("quickstart");
    fresh_example(&ws);
    airgap(&ws, &["apply"]).ok();
    ws
}

/// A self-signed certificate for 127.0.0.1 and its PKCS#8 key, in `dir`.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    crate::support::registry::self_signed_certificate(dir, name)
        .expect("openssl makes a certificate")
}

fn serve_in(ws: &Path, extra: &[&str]) -> Served {
    let mut cmd = airgap_cmd(ws);
    cmd.args(["serve", "--addr", "127.0.0.1:0"]).args(extra);
    Served::spawn(cmd)
}

fn client_trusting(cert: Option<&Path>) -> Client {
    let mut builder = crate::support::blocking_builder().timeout(Duration::from_secs(20));
    if let Some(cert) = cert {
        let pem = std::fs::read(cert).unwrap();
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    builder.build().expect("a client")
}

/// The JSON document `path` answers with (a success status required).
fn get_json(client: &Client, served: &Served, path: &str) -> Value {
    client
        .get(served.url(path))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("{path} answers: {e}"))
}

fn stack_names(client: &Client, served: &Served) -> Vec<String> {
    let index = get_json(client, served, "/index");
    let mut names: Vec<String> = index
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// The served quickstart narrowed to `hello-go` and applied again, seen by the running server.
fn narrow_to_hello_go(ws: &Path, client: &Client, served: &Served) {
    only_stacks(ws, &["hello-go"]);
    airgap(ws, &["apply"]).ok();
    eventually(
        Duration::from_secs(20),
        "/index lists hello-go only",
        || stack_names(client, served) == ["hello-go"],
    );
}

/// The server's next stderr line; if none comes within `bound` the server is killed, so the
/// read ends (empty) and the caller's assertion fails instead of hanging.
fn next_line_within(served: &mut Served, bound: Duration) -> String {
    let pid = served.pid().to_string();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(bound).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    let line = served.next_line();
    let _ = done.send(());
    let _ = watchdog.join();
    line
}

fn hangup(served: &Served) {
    let status = Command::new("kill")
        .args(["-HUP", &served.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

// ---------------------------------------------------------------------------------------------
// TLS

#[test]
fn serves_https_and_survives_plain_http_and_stalled_handshakes() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = built_quickstart(tmp.path());
    let (cert, key) = certificate(tmp.path(), "server");
    let served = serve_in(
        &ws,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--header-timeout",
            "2",
        ],
    );
    assert!(
        served.url("/").starts_with("https://"),
        "{}",
        served.url("/")
    );
    let https = client_trusting(Some(&cert));
    assert_eq!(stack_names(&https, &served), ["hello-go", "hello-node"]);
    let manifest = https
        .get(served.url("/v2/go-toolset/manifests/1.22"))
        .header(
            "Accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .unwrap();
    assert_eq!(manifest.status(), StatusCode::OK);
    let digest = manifest.headers()["Docker-Content-Digest"]
        .to_str()
        .unwrap()
        .to_string();
    let body = manifest.bytes().unwrap();
    assert_eq!(
        digest,
        format!("sha256:{}", hex::encode(Sha256::digest(&body)))
    );

    // A client that does not know the CA refuses the server.
    assert!(
        client_trusting(None)
            .get(served.url("/health"))
            .send()
            .is_err()
    );

    // Plain HTTP on the TLS port: told to use https, and the server goes on.
    let plain = client_trusting(None)
        .get(format!("http://{}/index", served.addr))
        .send()
        .expect("an answer, not a reset");
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    assert!(plain.text().unwrap().contains("https://"));

    // A client that opens a connection and never finishes the handshake (one byte of a TLS
    // record, then nothing) is closed after the header timeout.
    let mut stalled = TcpStream::connect(served.addr).unwrap();
    stalled.write_all(&[0x16]).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(1500) && held < Duration::from_secs(6),
        "a stalled handshake was held {held:?}"
    );

    assert_eq!(
        https.get(served.url("/health")).send().unwrap().status(),
        StatusCode::OK
    );
}

#[test]
fn a_bad_certificate_or_key_is_named_before_listening() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = built_quickstart(tmp.path());
    let (cert, key) = certificate(tmp.path(), "server");
    let (_, other_key) = certificate(tmp.path(), "other");
    let missing = tmp.path().join("missing.key");
    let serve = |cert: &Path, key: &Path| {
        let run: crate::support::Run = airgap_cmd(&ws)
            .args(["serve", "--addr", "127.0.0.1:0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap()
            .into();
        let run = run.fails(1);
        assert!(!run.stderr.contains("listening on"), "{}", run.stderr);
        run.err_text()
    };
    let err = serve(&cert, &missing);
    assert!(
        err.contains(&format!("cannot read `{}`", missing.display())),
        "{err}"
    );
    let err = serve(&cert, &other_key);
    assert!(
        err.contains("does not belong to the certificate") && err.contains("other.key"),
        "{err}"
    );
    let err = serve(&key, &key);
    assert!(
        err.contains("holds no PEM certificate") && err.contains("server.key"),
        "{err}"
    );
    let err = serve(&cert, &cert);
    assert!(
        err.contains("holds no PKCS#8 private key") && err.contains("server.crt"),
        "{err}"
    );

    // Both or neither.
    let run: crate::support::Run = airgap_cmd(&ws)
        .args(["serve", "--tls-cert"])
        .arg(&cert)
        .output()
        .unwrap()
        .into();
    let run = run.fails(2);
    assert!(run.stderr.contains("--tls-key"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// Reload

#[test]
fn an_apply_of_the_served_target_is_picked_up_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = built_quickstart(tmp.path());
    let mut served = serve_in(&ws, &[]);
    let client = client_trusting(None);
    assert_eq!(stack_names(&client, &served), ["hello-go", "hello-node"]);

    narrow_to_hello_go(&ws, &client, &served);
    let line = served.next_line();
    assert!(line.starts_with("reloaded: 1 stacks, "), "{line}");
    assert!(line.trim_end().ends_with(" images"), "{line}");

    // And back: the stack comes back with its devfile.
    let kdl = std::fs::read_to_string(ws.join("airgap.kdl")).unwrap();
    let source = kdl.find("source \"quickstart\"").unwrap();
    let end = source + kdl[source..].find("}\n").unwrap() + 2;
    let mut widened = kdl.clone();
    widened.replace_range(source..end, "source \"quickstart\" path=\"registry\"\n");
    std::fs::write(ws.join("airgap.kdl"), widened).unwrap();
    airgap(&ws, &["apply"]).ok();
    eventually(
        Duration::from_secs(20),
        "/index lists both stacks again",
        || stack_names(&client, &served) == ["hello-go", "hello-node"],
    );
    let devfile = client
        .get(served.url("/devfiles/hello-node"))
        .send()
        .unwrap();
    assert_eq!(devfile.status(), StatusCode::OK);
}

/// While an apply runs (its journal newer than the state file) a changed state file is not
/// acted on: the folder may be half written. Once the journal is gone, the reload happens.
#[test]
fn a_change_seen_while_an_apply_runs_waits_for_it_to_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = built_quickstart(tmp.path());
    let mut served = serve_in(&ws, &[]);
    let client = client_trusting(None);
    let state = ws.join(".airgap/state.json");
    let journal = ws.join(".airgap/state.journal");
    replace(&state, &std::fs::read(&state).unwrap());
    std::fs::write(&journal, b"").unwrap();
    let index_path = ws.join("out/registry/index.json");
    let index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let narrowed: Vec<&Value> = index
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "hello-go")
        .collect();
    replace(&index_path, &serde_json::to_vec(&narrowed).unwrap());
    // The server says when it has seen the change and put it off (no sleep: its line is the
    // proof a poll went by); until the apply ends the old folder is what it serves.
    let line = next_line_within(&mut served, Duration::from_secs(20));
    assert!(
        line.contains("changed while an apply runs: reloading when it finishes"),
        "{line}"
    );
    assert_eq!(stack_names(&client, &served), ["hello-go", "hello-node"]);
    std::fs::remove_file(&journal).unwrap();
    eventually(
        Duration::from_secs(20),
        "the reload after the apply",
        || stack_names(&client, &served) == ["hello-go"],
    );
}

/// A copy of the built folder, served by path (no workspace): reloads on SIGHUP only.
/// Returns the temp folder holding it (keep it), the copy and its server.
fn served_copy() -> (tempfile::TempDir, PathBuf, Served) {
    let tmp = tempfile::tempdir().unwrap();
    let ws = built_quickstart(tmp.path());
    let dir = tmp.path().join("copy");
    copy_dir(&ws.join("out"), &dir);
    let served = Served::start_with(&dir, &[]);
    (tmp, dir, served)
}

/// Replaces `path` whole, as airgap writes (temp file + rename).
fn replace(path: &Path, bytes: &[u8]) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, bytes).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

#[test]
fn sighup_reloads_and_a_bad_folder_keeps_the_old_contents() {
    let (_tmp, dir, mut served) = served_copy();
    // From the listening line on, SIGHUP reloads (it no longer ends the process).
    hangup(&served);
    let line = served.next_line();
    assert!(line.starts_with("reloaded: 2 stacks, "), "{line}");
    let client = client_trusting(None);
    let index_path = dir.join("registry/index.json");
    let index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let narrowed: Vec<Value> = index
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "hello-node")
        .cloned()
        .collect();
    replace(&index_path, &serde_json::to_vec(&narrowed).unwrap());
    // Without a workspace nothing is watched: the change waits for SIGHUP.
    assert_eq!(stack_names(&client, &served), ["hello-go", "hello-node"]);
    hangup(&served);
    eventually(Duration::from_secs(20), "SIGHUP reloads", || {
        stack_names(&client, &served) == ["hello-node"]
    });
    assert!(served.next_line().starts_with("reloaded: 1 stacks, "));

    // A broken index: one warning, and the previous contents stay served.
    replace(&index_path, b"[{\"name\": ");
    hangup(&served);
    let warning = served.next_line();
    assert!(
        warning.contains("not reloaded") && warning.contains("index.json"),
        "{warning}"
    );
    assert_eq!(stack_names(&client, &served), ["hello-node"]);
    // A layout whose index names a manifest that is not there is refused the same way.
    replace(&index_path, &serde_json::to_vec(&index).unwrap());
    let layout_index = dir.join("index.json");
    let mut layout: Value = serde_json::from_slice(&std::fs::read(&layout_index).unwrap()).unwrap();
    layout["manifests"][0]["digest"] = json!(format!("sha256:{}", "0".repeat(64)));
    replace(&layout_index, &serde_json::to_vec(&layout).unwrap());
    hangup(&served);
    let warning = served.next_line();
    assert!(warning.contains("not reloaded"), "{warning}");
    assert_eq!(stack_names(&client, &served), ["hello-node"]);
}

/// Adds an image `big:1` with one layer of `size` bytes to the layout at `dir`; returns the
/// layer's bytes and digest.
fn add_big_image(dir: &Path, size: usize) -> (Vec<u8>, String) {
    let write_blob = |bytes: &[u8]| {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    };
    // Not compressible, not repeating: a wrong offset after the reload would show.
    let mut layer = Vec::with_capacity(size);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while layer.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        layer.extend_from_slice(&x.to_le_bytes());
    }
    layer.truncate(size);
    let layer_digest = write_blob(&layer);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": write_blob(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": size}],
    }))
    .unwrap();
    let manifest_digest = write_blob(&manifest);
    let index_path = dir.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest,
        "size": manifest.len(),
        "annotations": {
            "io.github.airgap.repository": "big",
            "org.opencontainers.image.ref.name": "big:1",
        },
    }));
    replace(&index_path, &serde_json::to_vec(&index).unwrap());
    (layer, layer_digest)
}

#[test]
fn a_download_under_way_finishes_on_the_old_snapshot() {
    let (_tmp, dir, mut served) = served_copy();
    let client = client_trusting(None);
    let index_before = std::fs::read(dir.join("index.json")).unwrap();
    let (layer, digest) = add_big_image(&dir, 32 << 20);
    hangup(&served);
    assert!(served.next_line().starts_with("reloaded: "));

    // Start the download and read only its first mebibyte.
    let mut download = client
        .get(served.url(&format!("/v2/big/blobs/{digest}")))
        .send()
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    let mut received = vec![0u8; 1 << 20];
    download.read_exact(&mut received).unwrap();

    // Meanwhile the image goes away (as a prune would remove it) and the server reloads.
    replace(&dir.join("index.json"), &index_before);
    std::fs::remove_file(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    hangup(&served);
    assert!(served.next_line().starts_with("reloaded: "));
    let gone = client
        .get(served.url(&format!("/v2/big/blobs/{digest}")))
        .send()
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    // The download started before still completes with the right bytes.
    download.read_to_end(&mut received).unwrap();
    assert_eq!(received.len(), layer.len());
    assert!(received == layer, "the bytes differ from the layer");
}

/// SIGHUP from a closed terminal still stops the server: `serve` in a pseudo-terminal made by
/// `script(1)`, whose death hangs the terminal up.
#[test]
fn closing_the_terminal_stops_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = built_quickstart(tmp.path());
    let port = crate::support::free_port();
    let bin = env!("CARGO_BIN_EXE_airgap");
    let mut script = Command::new("script")
        .args([
            "-qec",
            &format!("exec {bin} serve --addr 127.0.0.1:{port}"),
            "/dev/null",
        ])
        .current_dir(&ws)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("script(1) runs");
    crate::support::wait_for_port(port);
    // While the terminal is open, SIGHUP reloads and the server stays up (tested above);
    // killing `script` closes the terminal's master side.
    script.kill().unwrap();
    script.wait().unwrap();
    eventually(Duration::from_secs(20), "the server stops", || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}

fn catalog(client: &Client, served: &Served) -> Vec<String> {
    get_json(client, served, "/v2/_catalog")["repositories"]
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Issue 12: what prune removes is no longer served. A narrowed apply leaves the dropped
/// stack's artifacts in the layout (served, and listed by `plan` as removals); `prune` removes
/// them and the running server stops listing them, without a restart.
#[test]
fn what_prune_removes_is_no_longer_served() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = built_quickstart(tmp.path());
    let served = serve_in(&ws, &[]);
    let client = client_trusting(None);
    let dropped = "devfile-catalog/hello-node";
    assert!(catalog(&client, &served).iter().any(|r| r == dropped));

    narrow_to_hello_go(&ws, &client, &served);
    // Not pruned yet: still in the layout, so still served.
    assert!(catalog(&client, &served).iter().any(|r| r == dropped));
    let manifest_status = || {
        client
            .get(served.url(&format!("/v2/{dropped}/manifests/1.0.0")))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(manifest_status(), StatusCode::OK);

    airgap(&ws, &["prune"]).ok();
    eventually(
        Duration::from_secs(20),
        "/v2/_catalog no longer lists the dropped stack's artifacts",
        || !catalog(&client, &served).iter().any(|r| r == dropped),
    );
    assert_eq!(manifest_status(), StatusCode::NOT_FOUND);
    assert!(
        catalog(&client, &served)
            .iter()
            .any(|r| r == "devfile-catalog/hello-go"),
        "what the lock still names stays"
    );
}
