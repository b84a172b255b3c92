//! Test harness: the real `airgap` binary in temp workspaces, real services on 127.0.0.1,
//! fixture paths.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The upstream fixtures (a copy of the project's shared fixtures, kept in the repository so
/// a clean clone tests the same data). Read-only: a test that must change one copies it.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upstream")
}

/// The test fixtures of this repository (`tests/fixtures`).
pub fn own_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stderr with miette's line wrapping undone (the frame characters removed, lines joined
    /// by one space), for `contains` checks that must not depend on the terminal width.
    pub fn err_text(&self) -> String {
        self.stderr
            .lines()
            .map(|l| l.trim_start().trim_start_matches(['│', '·', '×']).trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with both streams unless the run succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(
            self.success(),
            "airgap failed ({:?})\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the run failed with exit code `code`.
    #[track_caller]
    pub fn fails(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A command running the real `airgap` binary in `dir`, with a clean, colourless environment
/// (no user credentials, no terminal).
pub fn airgap_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airgap"));
    clean_env(&mut cmd, dir);
    cmd
}

/// `wrapper WRAPPER_ARGS… airgap` in `dir`, with the environment of [`airgap_cmd`]: the
/// binary run under a measuring program such as `/usr/bin/time -f %M -o FILE`.
pub fn wrapped_airgap_cmd(dir: &Path, wrapper: &str, wrapper_args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(wrapper);
    cmd.args(wrapper_args).arg(env!("CARGO_BIN_EXE_airgap"));
    clean_env(&mut cmd, dir);
    cmd
}

/// The environment of [`airgap_cmd`] on any command (another build of airgap, in benches).
pub fn clean_env(cmd: &mut Command, dir: &Path) {
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("HOME", dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("GIT_CONFIG_NOSYSTEM", "1");
}

/// How many steps `airgap plan` lists for the workspace at `dir` (0 when it cannot tell).
pub fn plan_step_count(dir: &Path) -> u64 {
    airgap_cmd(dir)
        .args(["plan", "--format", "json"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["summary"]["total"].as_u64())
        .unwrap_or(0)
}

/// The `index.json` of the OCI layout at `dir`.
pub fn layout_index(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
}

/// Runs `airgap ARGS…` in `dir`.
pub fn airgap(dir: &Path, args: &[&str]) -> Run {
    airgap_cmd(dir)
        .args(args)
        .output()
        .expect("the airgap binary runs")
        .into()
}

/// Every file below `dir`: relative path → bytes. Panics on a folder it cannot read.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", dir.display()));
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs `future` to the end on a runtime of its own (one thread), for the library's async API.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// A workspace whose manifest names one path source, `registry`, without any stack.
pub fn empty_source_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("registry/stacks")).unwrap();
    std::fs::write(
        dir.path().join("airgap.kdl"),
        "source \"ours\" path=\"registry\"\n",
    )
    .unwrap();
    dir
}

/// Copies a folder recursively (files and folders only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub mod git;
pub mod http;
pub mod load;
pub mod proxy;
pub mod synthetic;
pub mod world;

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Polls `probe` until it is true, failing after `bound` (a deadline on a condition the test
/// observes, not a sleep standing in for one).
#[track_caller]
pub fn eventually(bound: std::time::Duration, what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + bound;
    while !probe() {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {bound:?}: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Waits until something accepts connections on 127.0.0.1:port (polling, 20 s deadline).
pub fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port} after 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub mod registry;

/// A blocking HTTP client builder for tests. airgap's clients use rustls with the `ring`
/// provider installed by airgap itself (`airgap::tls`); a test's own reqwest client needs it
/// installed too, or reqwest panics when it builds.
pub fn blocking_builder() -> reqwest::blocking::ClientBuilder {
    airgap::tls::install_provider();
    reqwest::blocking::Client::builder()
}

/// A blocking HTTP client for tests (see [`blocking_builder`]).
pub fn http() -> reqwest::blocking::Client {
    blocking_builder().build().expect("an HTTP client")
}

/// An async HTTP client builder for tests and benchmarks (see [`blocking_builder`]).
pub fn async_builder() -> reqwest::ClientBuilder {
    airgap::tls::install_provider();
    reqwest::Client::builder()
}
