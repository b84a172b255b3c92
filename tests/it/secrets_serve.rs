//! Nothing lost, nothing wrong accepted: `airgap serve` against slow and idle clients, and
//! credentials in git URLs (a real `git http-backend` behind basic auth) kept out of every
//! file and line airgap writes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::serve::{Served, server_registry};
use crate::support::git::{GitHttp, Repo};
use crate::support::{Run, airgap, copy_dir, tree};

/// Reads from `stream` until the server closes it, or fails after `bound`; returns how long
/// the server took.
fn time_until_closed(stream: &mut TcpStream, bound: Duration) -> Duration {
    stream
        .set_read_timeout(Some(bound))
        .expect("sets a read timeout");
    let started = Instant::now();
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => started.elapsed(),
        Err(e) => panic!(
            "the server kept the connection open for {:?} ({e}); it sent {:?}",
            started.elapsed(),
            String::from_utf8_lossy(&rest)
        ),
    }
}

fn health(served: &Served) -> String {
    let client = crate::support::blocking_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client");
    let response = client
        .get(served.url("/health"))
        .send()
        .unwrap_or_else(|e| panic!("/health did not answer within 10 s: {e}"));
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.text().expect("a body")
}

#[test]
fn serve_closes_connections_that_send_partial_headers_or_nothing() {
    let dir = server_registry();
    let served = Served::start_with(dir.path(), &["--header-timeout", "1"]);

    let mut slow = TcpStream::connect(served.addr).expect("connects");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: airgap\r\nX-Slow: ")
        .expect("writes");
    let mut silent = TcpStream::connect(served.addr).expect("connects");

    let took = time_until_closed(&mut slow, Duration::from_secs(20));
    assert!(
        took < Duration::from_secs(10),
        "closed after {took:?}, not within the 1 s header timeout"
    );
    let took = time_until_closed(&mut silent, Duration::from_secs(20));
    assert!(took < Duration::from_secs(10), "closed after {took:?}");

    // A kept-alive connection idle after its response is closed as well.
    let mut idle = TcpStream::connect(served.addr).expect("connects");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: airgap\r\n\r\n")
        .expect("writes");
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("sets a read timeout");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).expect("a response");
    assert_eq!(&first, b"HTTP/1.1 200");
    time_until_closed(&mut idle, Duration::from_secs(20));

    assert!(health(&served).contains("the server is up and running"));
}

#[test]
fn serve_drops_a_client_that_stops_reading_a_response() {
    let dir = server_registry();
    let size = 64 << 20; // far more than the loopback socket buffers hold
    std::fs::write(dir.path().join("registry/stacks/big.bin"), vec![7u8; size])
        .expect("writes a large file");
    let served = Served::start_with(dir.path(), &["--idle-timeout", "1"]);

    let mut stalled = TcpStream::connect(served.addr).expect("connects");
    stalled
        .write_all(b"GET /stacks/big.bin HTTP/1.1\r\nHost: airgap\r\n\r\n")
        .expect("writes");
    // The behaviour under test, not a synchronisation: the client reads nothing for three
    // times the idle timeout, so the server's writes stop with the socket buffers full.
    std::thread::sleep(Duration::from_secs(3));
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("sets a read timeout");
    let mut received = Vec::new();
    let _ = stalled.read_to_end(&mut received); // a reset is as good as an end here
    assert!(
        received.len() < size,
        "the whole {} bytes arrived: the stalled connection was kept",
        received.len()
    );

    assert!(health(&served).contains("the server is up and running"));
}

#[test]
fn serve_answers_health_with_more_idle_connections_than_file_descriptors() {
    let dir = server_registry();
    // 256 descriptors for the server; 300 connections that never send a byte. The header
    // timeout is long, so only the connection limit can keep the server answering.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -n 256 && exec "$0" serve "$1" --addr 127.0.0.1:0 --header-timeout 120"#)
        .arg(env!("CARGO_BIN_EXE_airgap"))
        .arg(dir.path());
    let served = Served::spawn(cmd);

    let idle: Vec<TcpStream> = (0..300)
        .map(|i| TcpStream::connect(served.addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let started = Instant::now();
    assert!(health(&served).contains("the server is up and running"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "/health took {:?}",
        started.elapsed()
    );
    // And again: the server still accepts after making room.
    assert!(health(&served).contains("the server is up and running"));
    drop(idle);
}

// ---------------------------------------------------------------------------------------------
// Credentials in git URLs

const USER: &str = "alice";
const SECRET: &str = "S3cretPassw0rd";

/// The quickstart's registry as a git repository on a smart-HTTP server that demands
/// `alice`/`SECRET`, and a workspace whose manifest reaches its images and zips through the
/// quickstart's mirror folder. `source` is the manifest's `source` line, `extra` more lines.
struct PrivateForge {
    _root: tempfile::TempDir,
    server: GitHttp,
    workspace: std::path::PathBuf,
}

impl PrivateForge {
    fn new() -> PrivateForge {
        let root = tempfile::tempdir().expect("a temp folder");
        let quickstart =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
        let files = tree(&quickstart.join("registry"));
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        let mut repo = Repo::init_bare(&root.path().join("git/quickstart.git"));
        let commit = repo.commit(None, &files, "the quickstart registry");
        repo.set_branch("main", commit);
        copy_dir(
            &quickstart.join("mirror/example.com"),
            &root.path().join("git/files/example.com"),
        );
        let server = GitHttp::start(&root.path().join("git"), USER, SECRET);
        let workspace = root.path().join("workspace");
        std::fs::create_dir_all(&workspace).expect("a workspace");
        PrivateForge {
            _root: root,
            server,
            workspace,
        }
    }

    /// Writes the manifest: `lines` (the source and more), then the images from the
    /// quickstart's folder and `https://example.com/` (zips, icons) from the quickstart's
    /// folder too, unless `lines` has its own rule for it.
    fn write_manifest(&self, lines: &str) {
        let mirror =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/mirror");
        let files = if lines.contains("url-mirror \"https://example.com/\"") {
            String::new()
        } else {
            format!(
                "url-mirror \"https://example.com/\" to=\"{}/example.com/\"\n",
                mirror.display()
            )
        };
        std::fs::write(
            self.workspace.join("airgap.kdl"),
            format!(
                "target \"dir:out\"\n{lines}\n{files}registry-mirror \"quay.io\" to=\"dir:{}/images\"\n",
                mirror.display()
            ),
        )
        .expect("writes the manifest");
    }

    /// Every file of the workspace but the manifest that holds `needle`.
    fn files_holding(&self, needle: &str) -> Vec<String> {
        tree(&self.workspace)
            .into_iter()
            .filter(|(path, bytes)| {
                path != "airgap.kdl" && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            })
            .map(|(path, _)| path)
            .collect()
    }
}

#[track_caller]
fn assert_no_secret(run: &Run, secret: &str) {
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "the secret is printed:\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn git_credentials_in_a_source_url_fetch_but_are_never_stored_or_printed() {
    let forge = PrivateForge::new();
    let host = forge.server.host();
    // Zips and icons come from the same private host, through a mirror holding credentials.
    forge.write_manifest(&format!(
        "source \"quickstart\" git=\"http://{USER}:{SECRET}@{host}/quickstart.git\" ref=\"main\"\nurl-mirror \"https://example.com/\" to=\"http://{USER}:{SECRET}@{host}/files/example.com/\""
    ));

    let lock = airgap(&forge.workspace, &["lock"]).ok();
    assert_no_secret(&lock, SECRET);
    let apply = airgap(&forge.workspace, &["apply"]).ok();
    assert_no_secret(&apply, SECRET);
    // Cold caches fetch again, with the credentials from the manifest.
    std::fs::remove_dir_all(forge.workspace.join(".airgap/cache")).expect("clears the caches");
    std::fs::remove_dir_all(forge.workspace.join("out")).expect("clears the target");
    let again = airgap(&forge.workspace, &["apply"]).ok();
    assert_no_secret(&again, SECRET);
    assert!(
        forge.workspace.join("out/registry/index.json").is_file(),
        "the registry was built"
    );

    let lock_text = std::fs::read_to_string(forge.workspace.join("airgap.lock")).expect("a lock");
    assert!(
        lock_text.contains(&format!("\"http://{host}/quickstart.git\"")),
        "the lock keeps the URL without its credentials:\n{lock_text}"
    );
    for needle in [SECRET, &format!("{USER}:")] {
        let leaks = forge.files_holding(needle);
        assert!(leaks.is_empty(), "`{needle}` is stored in {leaks:?}");
    }
}

#[test]
fn a_failing_git_fetch_prints_no_credentials() {
    let forge = PrivateForge::new();
    let host = forge.server.host();

    // A mistake on the line holding the credentials: the diagnostic quotes the line, masked.
    forge.write_manifest(&format!(
        "source \"quickstart\" git=\"http://{USER}:{SECRET}@{host}/quickstart.git\" ref=\"\""
    ));
    let run = airgap(&forge.workspace, &["lock"]);
    assert!(!run.success());
    assert!(run.err_text().contains("`ref` is empty"), "{}", run.stderr);
    assert_no_secret(&run, SECRET);
    assert_no_secret(&run, &format!("{USER}:"));

    // A wrong password in the source URL: refused by the server, and said so.
    let wrong = "Wr0ngPassw0rd";
    forge.write_manifest(&format!(
        "source \"quickstart\" git=\"http://{USER}:{wrong}@{host}/quickstart.git\" ref=\"main\""
    ));
    let run = airgap(&forge.workspace, &["lock"]).fails(1);
    assert_no_secret(&run, wrong);
    assert!(
        run.err_text()
            .contains(&format!("http://{host}/quickstart.git")),
        "the error names the remote:\n{}",
        run.stderr
    );
    assert!(forge.files_holding(wrong).is_empty());

    // A `url-mirror` holding the credentials, to a repository the forge does not have.
    forge.write_manifest(&format!(
        "source \"quickstart\" git=\"https://git.example.com/missing.git\" ref=\"main\"\nurl-mirror \"https://git.example.com/\" to=\"http://{USER}:{SECRET}@{host}/\""
    ));
    let run = airgap(&forge.workspace, &["lock"]).fails(1);
    assert_no_secret(&run, SECRET);
    assert!(
        run.err_text()
            .contains(&format!("http://{host}/missing.git")),
        "the error names where it fetched from:\n{}",
        run.stderr
    );
    assert!(forge.files_holding(SECRET).is_empty());

    // The same mirror to a repository the forge has: its credentials get the fetch through.
    forge.write_manifest(&format!(
        "source \"quickstart\" git=\"https://git.example.com/quickstart.git\" ref=\"main\"\nurl-mirror \"https://git.example.com/\" to=\"http://{USER}:{SECRET}@{host}/\""
    ));
    let run = airgap(&forge.workspace, &["lock"]).ok();
    assert_no_secret(&run, SECRET);
    assert!(forge.files_holding(SECRET).is_empty());

    // An apply from that lock whose fetch is refused (a wrong password in the mirror, a cold
    // cache): the failed step, the journal and the state hold no credentials either.
    forge.write_manifest(&format!(
        "source \"quickstart\" git=\"https://git.example.com/quickstart.git\" ref=\"main\"\nurl-mirror \"https://git.example.com/\" to=\"http://{USER}:{wrong}@{host}/\""
    ));
    std::fs::remove_dir_all(forge.workspace.join(".airgap/cache/git")).expect("clears the cache");
    let run = airgap(&forge.workspace, &["apply", "--locked"]).fails(1);
    assert_no_secret(&run, wrong);
    assert!(
        run.err_text().contains("authentication failed"),
        "the error says why:\n{}",
        run.stderr
    );
    assert!(forge.files_holding(wrong).is_empty());
}
