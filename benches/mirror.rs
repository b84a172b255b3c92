//! Mirror benchmark: airgap against `skopeo copy`, `skopeo sync`, the manual podman loop, and
//! the physical limit (the same blobs PUT straight to an empty registry), on loopback
//! `docker-registry` processes. Prints a table; `cargo bench --bench mirror`.
//!
//! airgap is measured twice: through the library (the copy engine alone), and as users run it,
//! the `airgap` process: `airgap apply --locked` of a manifest whose one stack names the first
//! image and whose `images { include }` names the other 19, to a registry target (so it also
//! rewrites one devfile, builds the registry tree and pushes a devfile-index image on a tiny
//! base, which skopeo does not).
//!
//! 20 images of 3 layers (5, 3 and 2 MB of random, incompressible bytes in valid tar.gz
//! layers, so podman can unpack them): 200 MB in all. Each method copies into its own fresh,
//! empty target registry. Then airgap's peak RSS while copying one 1 GiB layer, measured in a
//! child process (this binary re-run with `--rss-child`) from `/proc/self/status` `VmHWM`.
//!
//! Big layers ([`big_layers`], issue 13): one image of 3 layers of 300 MB (files on disk, in
//! the temp folder; removed at the end) copied registry to registry by the `airgap apply`
//! process under GNU time (its peak RSS; goal < 150 MB), against the raw parallel PUT of the
//! same bytes to an empty registry. `AIRGAP_BENCH_SKIP_BIG=1` skips it.
//!
//! For profiling: `AIRGAP_BENCH_SKIP_SKOPEO=1` leaves skopeo out (its rows read 0), and
//! `AIRGAP_BENCH_WRAP` runs the cold `airgap apply` under a command (see [`airgap_process`]).
//! The CPU lines give each run's CPU seconds: the target registry's, the upstream's (serving
//! the GETs, which the raw PUT does not pay) and airgap's own (the process's: its children's
//! rusage, so a wrapper counts too). `AIRGAP_BENCH_KEEP=1` leaves the last process row's
//! world behind (both registries keep running, the workspace stays) and prints where it is,
//! so the `airgap` binary can be profiled on it directly; kill the registries when done.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use airgap::oci::auth::Credentials;
use airgap::oci::digest::Digest;
use airgap::oci::media::{self, Platforms};
use airgap::oci::mirror::{RegistryAccess, RegistryMirror, Tls};
use airgap::oci::naming::{Naming, TargetPrefix, TargetRef};
use airgap::oci::progress::Progress;
use airgap::oci::reference::ImageRef;
use airgap::oci::retry::RetryPolicy;
use airgap::oci::{
    BlobData, Client, ClientConfig, CopyRequest, Destination, LocalBlob, LocalImage, ResolvedImage,
};
use bytes::Bytes;
use futures::StreamExt as _;
use support::registry::{self, TestRegistry, children_cpu, random_bytes};

const IMAGES: usize = 20;
const LAYER_SIZES: [usize; 3] = [5_000_000, 3_000_000, 2_000_000];

fn jobs() -> usize {
    std::env::var("AIRGAP_BENCH_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(8)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss-child") {
        rss_child(&args[i + 1], &args[i + 2], &args[i + 3]);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(bench());
}

fn client(upstream: &str, jobs: usize) -> Client {
    Client::new(ClientConfig {
        mirrors: vec![RegistryMirror::registry(
            "quay.io",
            upstream,
            Tls::PlainHttp,
        )],
        credentials: Credentials::anonymous(),
        jobs,
        retry: RetryPolicy::default(),
        // Bars (or plain lines when stderr is not a terminal) for a look at the display.
        progress: if std::env::var_os("AIRGAP_BENCH_PROGRESS").is_some() {
            Progress::stderr()
        } else {
            Progress::hidden()
        },
    })
}

/// A tar.gz layer holding one file of random bytes (gzip level 0: valid, and as large as
/// the random content), and its diff ID (digest of the tar).
fn layer(seed: u64, size: usize) -> (Bytes, Digest) {
    let content = random_bytes(seed, size);
    let mut tar = tar::Builder::new(Vec::with_capacity(size + 2048));
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, format!("data-{seed}.bin"), content.as_slice())
        .expect("tar");
    let tar = tar.into_inner().expect("tar");
    let diff_id = Digest::of(&tar);
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::none());
    gz.write_all(&tar).expect("gzip");
    (Bytes::from(gz.finish().expect("gzip")), diff_id)
}

fn bench_image(i: usize) -> LocalImage {
    let layers = LAYER_SIZES
        .iter()
        .enumerate()
        .map(|(n, size)| layer((i * 10 + n) as u64 + 1, *size))
        .collect();
    image_of(layers)
}

/// A single-platform OCI image of the given (gzip layer, diff ID) pairs.
fn image_of(layers: Vec<(Bytes, Digest)>) -> LocalImage {
    let mut blobs = Vec::new();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (gz, diff_id) in layers {
        let digest = Digest::of(&gz);
        descriptors.push(serde_json::json!({"mediaType": media::OCI_LAYER_GZIP, "digest": digest.to_string(), "size": gz.len()}));
        diff_ids.push(diff_id.to_string());
        blobs.push(LocalBlob {
            digest,
            size: gz.len() as u64,
            data: BlobData::Bytes(gz),
        });
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = Bytes::from(serde_json::to_vec(&config).expect("json"));
    let config_digest = Digest::of(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": descriptors,
    });
    blobs.push(LocalBlob {
        digest: config_digest,
        size: config.len() as u64,
        data: BlobData::Bytes(config),
    });
    LocalImage {
        manifest: Bytes::from(serde_json::to_vec(&manifest).expect("json")),
        media_type: media::OCI_MANIFEST.into(),
        blobs,
        mount_from: Vec::new(),
        base: None,
    }
}

fn repo(i: usize) -> String {
    format!("bench/img{i:02}")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn repeats() -> usize {
    std::env::var("AIRGAP_BENCH_REPEATS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(3)
        .max(1)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn self_cpu() -> Duration {
    registry::cpu_of("/proc/self/stat")
}

/// CPU seconds used while a run went: (target registry, upstream registry, this process).
#[derive(Default, Clone, Copy)]
struct Cpu {
    target: Duration,
    upstream: Duration,
    own: Duration,
}

/// Every blob PUT from memory into an empty registry, `jobs` at a time: what the target
/// registry can take, with no source to read from.
async fn raw_upload(images: &[LocalImage], upstream: &TestRegistry) -> (Duration, Cpu) {
    let target = TestRegistry::start();
    let http = support::async_builder().build().expect("a client");
    let base = format!("http://{}", target.host());
    let blobs: Vec<(String, &LocalBlob)> = images
        .iter()
        .enumerate()
        .flat_map(|(i, img)| img.blobs.iter().map(move |b| (repo(i), b)))
        .collect();
    let before = (target.cpu(), upstream.cpu(), self_cpu());
    let t = Instant::now();
    futures::stream::iter(blobs.iter().map(|(repo, blob)| {
        let http = &http;
        let base = &base;
        async move {
            let BlobData::Bytes(data) = &blob.data else {
                unreachable!()
            };
            put_blob(http, base, repo, &blob.digest, data.clone()).await;
        }
    }))
    .buffer_unordered(jobs())
    .collect::<Vec<_>>()
    .await;
    let time = t.elapsed();
    let cpu = Cpu {
        target: target.cpu() - before.0,
        upstream: upstream.cpu() - before.1,
        own: self_cpu() - before.2,
    };
    (time, cpu)
}

/// airgap cold into an empty registry, then a no-op re-run with a new client; both through
/// the library, as `airgap apply` calls it. Then the no-op floor: one HEAD per image, with
/// the target registry's CPU for answering them.
async fn airgap(
    resolved: &[ResolvedImage],
    upstream: &TestRegistry,
) -> (Duration, Duration, (Duration, Duration), Cpu) {
    let up = upstream.host();
    let target = TestRegistry::start();
    let prefix = TargetPrefix::parse(&format!("{}/airgap", target.host())).expect("prefix");
    let requests: Vec<CopyRequest> = resolved
        .iter()
        .map(|r| CopyRequest {
            source: r.image.clone(),
            target: prefix.target_for(&r.image, Naming::Nested),
            platforms: Platforms::All,
        })
        .collect();
    let dest = Destination::Registry(RegistryAccess::new(target.host(), Tls::PlainHttp));
    let before = (target.cpu(), upstream.cpu(), self_cpu());
    let t = Instant::now();
    let c = client(&up, jobs());
    for r in c.copy_all(&requests, &dest).await {
        r.expect("airgap copy");
    }
    let cold = t.elapsed();
    let cpu = Cpu {
        target: target.cpu() - before.0,
        upstream: upstream.cpu() - before.1,
        own: self_cpu() - before.2,
    };
    let t = Instant::now();
    let c = client(&up, jobs());
    for r in c.copy_all(&requests, &dest).await {
        assert_eq!(r.expect("airgap re-run").stats.blobs_uploaded, 0);
    }
    let rerun = t.elapsed();
    // The floor of a no-op run that checks the target at all: one HEAD per image, `jobs` at a
    // time, from a client built before the clock starts.
    let http = support::async_builder().build().expect("a client");
    let before = target.cpu();
    let t = Instant::now();
    futures::stream::iter(requests.iter().map(|req| {
        let url = format!(
            "http://{}/v2/{}/manifests/1.0",
            target.host(),
            req.target.repository
        );
        let http = &http;
        async move {
            let r = http
                .head(url)
                .header("accept", media::OCI_MANIFEST)
                .send()
                .await
                .expect("HEAD");
            assert_eq!(r.status(), 200);
        }
    }))
    .buffer_unordered(jobs())
    .collect::<Vec<_>>()
    .await;
    let heads = t.elapsed();
    let heads_cpu = target.cpu() - before;
    // Independent check: skopeo sees the digests resolution gave.
    for (req, res) in requests.iter().zip(resolved) {
        let raw = registry::skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{}", req.target),
        ]);
        assert_eq!(Digest::of(&raw), res.digest);
    }
    (cold, rerun, (heads, heads_cpu), cpu)
}

/// A one-layer image of a few bytes: the devfile-index base of the process run.
fn tiny_image() -> LocalImage {
    image_of(vec![layer(999_999, 1000)])
}

/// The `airgap` process, as users run it: `airgap lock` (not timed), then `airgap apply
/// --locked` cold into an empty registry and again as a no-op. Returns (cold, no-op) and the
/// CPU the cold run took (`own` is the airgap process's).
///
/// `AIRGAP_BENCH_WRAP="strace -f -c -o FILE"` (or `perf record -g -o FILE`) runs the cold
/// apply under that command, for a profile of the process as the bench runs it.
fn airgap_process(upstream: &TestRegistry) -> (Duration, Duration, Cpu, Cpu) {
    let up = upstream.host();
    let target = TestRegistry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path();
    let stack = ws.join("registry/stacks/one");
    std::fs::create_dir_all(&stack).expect("mkdir");
    std::fs::write(
        stack.join("devfile.yaml"),
        format!(
            "schemaVersion: 2.2.0\nmetadata:\n  name: one\n  version: 1.0.0\ncomponents:\n  - name: tools\n    container:\n      image: quay.io/{}:1.0\n",
            repo(0)
        ),
    )
    .expect("write devfile");
    let include: String = (1..IMAGES)
        .map(|i| format!("    include \"quay.io/{}:1.0\"\n", repo(i)))
        .collect();
    std::fs::write(
        ws.join("airgap.kdl"),
        format!(
            "target \"{}/airgap\" tls=\"plain-http\"\nsource \"bench\" path=\"registry\"\nregistry-mirror \"quay.io\" to=\"{up}\" tls=\"plain-http\"\nimages naming=\"nested\" {{\n{include}}}\n",
            target.host()
        ),
    )
    .expect("write airgap.kdl");
    let airgap = |args: &[&str]| {
        let mut c = support::airgap_cmd(ws);
        c.args(args).args(["-j", &jobs().to_string()]);
        let t = Instant::now();
        run(&mut c);
        t.elapsed()
    };
    airgap(&["lock"]);
    let before = (target.cpu(), upstream.cpu(), children_cpu());
    let cold = match std::env::var("AIRGAP_BENCH_WRAP") {
        Ok(wrap) if !wrap.trim().is_empty() => {
            let mut words = wrap.split_whitespace();
            let program = words.next().unwrap_or_default();
            let args: Vec<&std::ffi::OsStr> = words.map(std::ffi::OsStr::new).collect();
            let mut c = support::wrapped_airgap_cmd(ws, program, &args);
            c.args(["apply", "--locked", "-j", &jobs().to_string()]);
            let t = Instant::now();
            run(&mut c);
            t.elapsed()
        }
        _ => airgap(&["apply", "--locked"]),
    };
    let cpu = Cpu {
        target: target.cpu() - before.0,
        upstream: upstream.cpu() - before.1,
        own: children_cpu() - before.2,
    };
    let before = (target.cpu(), upstream.cpu(), children_cpu());
    let noop = airgap(&["apply", "--locked"]);
    let noop_cpu = Cpu {
        target: target.cpu() - before.0,
        upstream: upstream.cpu() - before.1,
        own: children_cpu() - before.2,
    };
    if std::env::var_os("AIRGAP_BENCH_KEEP").is_some() {
        eprintln!(
            "kept: workspace {} (target registry pid {}, upstream {})",
            dir.keep().display(),
            target.pid(),
            upstream.pid()
        );
        std::mem::forget(target);
    }
    (cold, noop, cpu, noop_cpu)
}

fn skopeo_copy(up: &str) -> Duration {
    let target = TestRegistry::start();
    let t = Instant::now();
    for i in 0..IMAGES {
        run(Command::new("skopeo").args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{up}/{}:1.0", repo(i)),
            &format!("docker://{}/copy/{}:1.0", target.host(), repo(i)),
        ]));
    }
    t.elapsed()
}

fn skopeo_sync(up: &str) -> (Duration, Duration) {
    let target = TestRegistry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = dir.path().join("sync.yaml");
    let mut text = format!("{up}:\n  tls-verify: false\n  images:\n");
    for i in 0..IMAGES {
        text.push_str(&format!("    {}: [\"1.0\"]\n", repo(i)));
    }
    std::fs::write(&yaml, text).expect("write sync.yaml");
    let sync = || {
        let mut c = Command::new("skopeo");
        c.args([
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
        ])
        .arg(&yaml)
        .arg(format!("{}/sync", target.host()));
        c
    };
    let t = Instant::now();
    run(&mut sync());
    let cold = t.elapsed();
    let t = Instant::now();
    run(&mut sync());
    (cold, t.elapsed())
}

/// The manual procedure: podman pull, tag, push per image (vfs storage, no daemon).
fn podman(up: &str) -> (Duration, Duration) {
    let target = TestRegistry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let runroot = dir.path().join("runroot");
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root").arg(&root).arg("--runroot").arg(&runroot);
        c.args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]);
        c.args(args);
        run(&mut c);
    };
    let loop_once = || {
        for i in 0..IMAGES {
            let from = format!("{up}/{}:1.0", repo(i));
            let to = format!("{}/podman/{}:1.0", target.host(), repo(i));
            podman(&["pull", "-q", "--tls-verify=false", &from]);
            podman(&["tag", &from, &to]);
            podman(&["push", "-q", "--tls-verify=false", &to]);
        }
    };
    let t = Instant::now();
    loop_once();
    let cold = t.elapsed();
    let t = Instant::now();
    loop_once();
    (cold, t.elapsed())
}

async fn bench() {
    let upstream = TestRegistry::start();
    let up = upstream.host();
    eprintln!("generating and pushing {IMAGES} images to {up} …");
    let images: Vec<LocalImage> = (0..IMAGES).map(bench_image).collect();
    let total: u64 = images
        .iter()
        .flat_map(|i| i.blobs.iter().map(|b| b.size))
        .sum();
    let setup = client(&up, 8);
    let up_access = RegistryAccess::new(up.clone(), Tls::PlainHttp);
    let pushes = images.iter().enumerate().map(|(i, image)| {
        let setup = &setup;
        let target = TargetRef {
            host: up.clone(),
            repository: repo(i),
            tag: Some("1.0".into()),
        };
        let dest = Destination::Registry(up_access.clone());
        async move {
            setup
                .push_image(image, &target, &dest)
                .await
                .expect("push to upstream")
        }
    });
    futures::stream::iter(pushes)
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
    setup
        .push_image(
            &tiny_image(),
            &TargetRef {
                host: up.clone(),
                repository: "devfile/devfile-index-base".into(),
                tag: Some("next".into()),
            },
            &Destination::Registry(up_access.clone()),
        )
        .await
        .expect("push the index base to upstream");

    let refs: Vec<ImageRef> = (0..IMAGES)
        .map(|i| ImageRef::parse(&format!("quay.io/{}:1.0", repo(i))).expect("ref"))
        .collect();
    let t = Instant::now();
    let resolved: Vec<ResolvedImage> = client(&up, jobs())
        .resolve_all(&refs)
        .await
        .into_iter()
        .map(|r| r.expect("resolve"))
        .collect();
    let resolve_time = t.elapsed();

    // Interleaved repeats, medians: the machine is shared, so single runs are noisy.
    let (mut raw, mut cold, mut rerun, mut copy, mut sync_cold, mut sync_rerun, mut heads) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut proc_cold, mut proc_noop) = (vec![], vec![]);
    let mut cpu_raw = Cpu::default();
    let mut cpu_airgap = Cpu::default();
    let mut cpu_process = Cpu::default();
    // Summed over the rounds (the kernel counts in 10 ms ticks; a no-op costs a few).
    let (mut noop_cpu, mut heads_cpu) = (Cpu::default(), Duration::ZERO);
    for round in 0..repeats() {
        eprintln!("round {} of {} …", round + 1, repeats());
        let (t, c) = raw_upload(&images, &upstream).await;
        raw.push(t);
        cpu_raw = c;
        let (c1, r1, (h, hc), c) = airgap(&resolved, &upstream).await;
        cold.push(c1);
        rerun.push(r1);
        heads.push(h);
        heads_cpu += hc;
        cpu_airgap = c;
        let (p1, p2, c, n) = airgap_process(&upstream);
        cpu_process = c;
        noop_cpu.target += n.target;
        noop_cpu.own += n.own;
        proc_cold.push(p1);
        proc_noop.push(p2);
        if std::env::var_os("AIRGAP_BENCH_SKIP_SKOPEO").is_some() {
            // Only airgap against the raw PUT: the skopeo rows read 0 (quicker profiling).
            copy.push(Duration::ZERO);
            sync_cold.push(Duration::ZERO);
            sync_rerun.push(Duration::ZERO);
            continue;
        }
        copy.push(skopeo_copy(&up));
        let (s1, s2) = skopeo_sync(&up);
        sync_cold.push(s1);
        sync_rerun.push(s2);
    }
    let podman = if std::env::var_os("AIRGAP_BENCH_SKIP_PODMAN").is_none() {
        eprintln!("podman loop (once) …");
        Some(podman(&up))
    } else {
        None
    };
    let rss = rss_of_one_gib_copy(&upstream).await;

    let heads = median(heads);
    let (proc_cold, proc_noop) = (median(proc_cold), median(proc_noop));
    let (raw, cold, rerun, copy, sync_cold, sync_rerun) = (
        median(raw),
        median(cold),
        median(rerun),
        median(copy),
        median(sync_cold),
        median(sync_rerun),
    );
    let mut rows: Vec<(&str, Duration, bool)> = vec![
        ("`airgap apply` process, cold", proc_cold, true),
        ("`airgap apply` process, no-op re-run", proc_noop, false),
        ("airgap mirror (library), cold", cold, true),
        ("airgap mirror (library), no-op re-run", rerun, false),
        ("skopeo copy, one per image, cold", copy, true),
        ("skopeo sync, cold", sync_cold, true),
        ("skopeo sync, re-run", sync_rerun, false),
    ];
    if let Some((c, r)) = podman {
        rows.push(("podman pull/tag/push loop, cold (1 run)", c, true));
        rows.push(("podman pull/tag/push loop, re-run (1 run)", r, false));
    }
    rows.push(("raw parallel PUTs of the same blobs (limit)", raw, true));
    rows.push((
        "one HEAD per image, `jobs` at a time (no-op floor)",
        heads,
        false,
    ));

    println!();
    println!(
        "{IMAGES} images × {} layers, {:.0} MB in all; jobs = {}; median of {} interleaved runs; resolve of all {IMAGES}: {:.3} s",
        LAYER_SIZES.len(),
        total as f64 / 1e6,
        jobs(),
        repeats(),
        secs(resolve_time)
    );
    println!();
    println!("| method | time (s) | ratio to skopeo sync (cold to cold, re-run to re-run) |");
    println!("|---|---:|---:|");
    for (name, time, is_cold) in &rows {
        let base = if *is_cold { sync_cold } else { sync_rerun };
        println!(
            "| {name} | {:.3} | {:.3} |",
            secs(*time),
            secs(*time) / secs(base)
        );
    }
    println!();
    println!(
        "process: airgap apply cold / skopeo sync cold = {:.2} (target ≤ 0.55)\nprocess: airgap apply cold / raw upload = {:.2} (target ≤ 1.3)\nprocess: airgap apply no-op / skopeo sync re-run = {:.3} (target ≤ 0.1)",
        secs(proc_cold) / secs(sync_cold),
        secs(proc_cold) / secs(raw),
        secs(proc_noop) / secs(sync_rerun),
    );
    println!(
        "library: airgap cold / skopeo sync cold = {:.2}\nlibrary: airgap cold / raw upload = {:.2}\nlibrary: airgap no-op / skopeo sync re-run = {:.3}",
        secs(cold) / secs(sync_cold),
        secs(cold) / secs(raw),
        secs(rerun) / secs(sync_rerun),
    );
    println!(
        "CPU seconds (last round): raw upload: target registry {:.2}, this process {:.2}; airgap cold: target registry {:.2}, upstream registry {:.2}, airgap {:.2}",
        secs(cpu_raw.target),
        secs(cpu_raw.own),
        secs(cpu_airgap.target),
        secs(cpu_airgap.upstream),
        secs(cpu_airgap.own),
    );
    println!(
        "CPU seconds (last round): `airgap apply` process cold: target registry {:.2}, upstream registry {:.2}, airgap {:.2}",
        secs(cpu_process.target),
        secs(cpu_process.upstream),
        secs(cpu_process.own),
    );
    let rounds = repeats() as u32;
    println!(
        "CPU seconds per no-op (mean of {rounds} rounds): `airgap apply` process: target registry {:.3}, airgap {:.3}; one HEAD per image (floor row): target registry {:.3}",
        secs(noop_cpu.target / rounds),
        secs(noop_cpu.own / rounds),
        secs(heads_cpu / rounds),
    );
    big_layers(&upstream).await;
    if std::env::var_os("AIRGAP_BENCH_KEEP").is_some() {
        std::mem::forget(upstream);
    }
    match rss {
        Some((kb, time)) => println!(
            "airgap peak RSS copying one 1 GiB layer: {:.1} MB (VmHWM of a child process; target < 150 MB), in {:.1} s",
            kb as f64 / 1024.0,
            secs(time)
        ),
        None => println!("airgap peak RSS copying one 1 GiB layer: not measured"),
    }
}

/// A single-platform image of `layers` (digest, file, size): its blobs are read from the
/// files as they are pushed, so no layer is held in memory.
fn file_image(layers: &[(Digest, std::path::PathBuf, u64)]) -> LocalImage {
    let config = Bytes::from(
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let config_digest = Digest::of(&config);
    let descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, _, size)| serde_json::json!({"mediaType": media::OCI_LAYER_GZIP, "digest": d.to_string(), "size": size}))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": descriptors,
    });
    let mut blobs: Vec<LocalBlob> = layers
        .iter()
        .map(|(digest, path, size)| LocalBlob {
            digest: digest.clone(),
            size: *size,
            data: BlobData::File(path.clone()),
        })
        .collect();
    blobs.push(LocalBlob {
        digest: config_digest,
        size: config.len() as u64,
        data: BlobData::Bytes(config),
    });
    LocalImage {
        manifest: Bytes::from(serde_json::to_vec(&manifest).expect("json")),
        media_type: media::OCI_MANIFEST.into(),
        blobs,
        mount_from: Vec::new(),
        base: None,
    }
}

/// Pushes `image` to the upstream registry `up` as `repository:1`.
async fn push_upstream(up: &str, repository: &str, image: &LocalImage) -> bool {
    client(up, 4)
        .push_image(
            image,
            &TargetRef {
                host: up.to_string(),
                repository: repository.into(),
                tag: Some("1".into()),
            },
            &Destination::Registry(RegistryAccess::new(up.to_string(), Tls::PlainHttp)),
        )
        .await
        .is_ok()
}

/// Size of each big layer, and how many.
const BIG_LAYER: usize = 300_000_000;
const BIG_LAYERS: usize = 3;

/// A file of `size` random bytes at `path`, and its digest.
fn random_file(path: &std::path::Path, seed: u64, size: usize) -> Digest {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("creates a layer"));
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let chunk = 8 << 20;
    let mut left = size;
    let mut n = 0;
    while left > 0 {
        let data = random_bytes(seed * 1_000 + n, chunk.min(left));
        sha2::Digest::update(&mut hasher, &data);
        file.write_all(&data).expect("writes a layer");
        left -= data.len().min(left);
        n += 1;
    }
    file.flush().expect("writes a layer");
    format!("sha256:{}", hex::encode(sha2::Digest::finalize(hasher)))
        .parse()
        .expect("a digest")
}

/// A monolithic upload of one blob (POST, then PUT of the whole body) to `base`'s `repo`.
async fn put_blob(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    digest: &Digest,
    body: impl Into<reqwest::Body>,
) {
    let start = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("POST");
    let location = start.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let put = http
        .put(format!("{url}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 201);
}

/// The raw parallel PUT of `files` (digest, path) to an empty registry.
async fn raw_put_files(files: &[(Digest, std::path::PathBuf)]) -> Duration {
    let target = TestRegistry::start();
    let http = support::async_builder().build().expect("a client");
    let base = format!("http://{}", target.host());
    let t = Instant::now();
    futures::stream::iter(files.iter().map(|(digest, path)| {
        let (http, base) = (&http, &base);
        async move {
            let data = tokio::fs::read(path).await.expect("reads a layer");
            put_blob(http, base, "bench/raw", digest, data).await;
        }
    }))
    .buffer_unordered(jobs())
    .collect::<Vec<_>>()
    .await;
    t.elapsed()
}

/// Big layers: `airgap apply` (a process, under GNU time) copying one image of
/// [`BIG_LAYERS`] layers of [`BIG_LAYER`] bytes registry to registry, against the raw PUT of
/// the same bytes; prints throughput and airgap's peak RSS.
async fn big_layers(upstream: &TestRegistry) {
    if std::env::var_os("AIRGAP_BENCH_SKIP_BIG").is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp folder");
    eprintln!(
        "big layers: writing {BIG_LAYERS} x {} MB in {} …",
        BIG_LAYER / 1_000_000,
        dir.path().display()
    );
    let files: Vec<(Digest, std::path::PathBuf)> = (0..BIG_LAYERS)
        .map(|n| {
            let path = dir.path().join(format!("layer-{n}.bin"));
            (random_file(&path, 77 + n as u64, BIG_LAYER), path)
        })
        .collect();
    let layers: Vec<(Digest, std::path::PathBuf, u64)> = files
        .iter()
        .map(|(d, p)| (d.clone(), p.clone(), BIG_LAYER as u64))
        .collect();
    assert!(
        push_upstream(&upstream.host(), "bench/big3", &file_image(&layers)).await,
        "pushes the big image upstream"
    );
    let raw = raw_put_files(&files).await;
    let (apply, rss_kib) = big_layers_process(&upstream.host());
    let bytes = (BIG_LAYERS * BIG_LAYER) as f64;
    println!();
    println!(
        "Big layers: {BIG_LAYERS} x {} MB, registry to registry",
        BIG_LAYER / 1_000_000
    );
    println!();
    println!("| method | time (s) | MB/s | ratio to raw PUT | peak RSS (MB) |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| `airgap apply --locked` (process) | {:.3} | {:.0} | {:.2} | {} |",
        secs(apply),
        bytes / 1e6 / secs(apply),
        secs(apply) / secs(raw),
        rss_kib.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
    );
    println!(
        "| raw parallel PUT of the same bytes | {:.3} | {:.0} | 1.00 | |",
        secs(raw),
        bytes / 1e6 / secs(raw)
    );
    println!("peak RSS goal: < 150 MB");
}

/// `airgap lock`, then `airgap apply --locked` under GNU time, of a manifest naming the big
/// image, to a fresh registry: the apply's time and peak RSS.
fn big_layers_process(up: &str) -> (Duration, Option<u64>) {
    let target = TestRegistry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path();
    let stack = ws.join("registry/stacks/big");
    std::fs::create_dir_all(&stack).expect("mkdir");
    std::fs::write(
        stack.join("devfile.yaml"),
        "schemaVersion: 2.2.0\nmetadata:\n  name: big\n  version: 1.0.0\ncomponents:\n  - name: tools\n    container:\n      image: quay.io/bench/big3:1\n",
    )
    .expect("write devfile");
    std::fs::write(
        ws.join("airgap.kdl"),
        format!(
            "target \"{}/airgap\" tls=\"plain-http\"\nsource \"bench\" path=\"registry\"\nregistry-mirror \"quay.io\" to=\"{up}\" tls=\"plain-http\"\n",
            target.host()
        ),
    )
    .expect("write airgap.kdl");
    run(support::airgap_cmd(ws).args(["lock"]));
    let rss = ws.join("rss");
    let mut apply = support::wrapped_airgap_cmd(
        ws,
        "/usr/bin/time",
        &[
            std::ffi::OsStr::new("-f"),
            std::ffi::OsStr::new("%M"),
            std::ffi::OsStr::new("-o"),
            rss.as_os_str(),
        ],
    );
    apply.args(["apply", "--locked", "-j", &jobs().to_string()]);
    let t = Instant::now();
    run(&mut apply);
    let time = t.elapsed();
    let kib = std::fs::read_to_string(&rss)
        .ok()
        .and_then(|t| t.lines().last()?.trim().parse().ok());
    (time, kib)
}

/// Pushes a 1 GiB single-layer image (from a file, so this process stays small too) and copies
/// it in a child process that reports its peak RSS.
async fn rss_of_one_gib_copy(upstream: &TestRegistry) -> Option<(u64, Duration)> {
    if std::env::var_os("AIRGAP_BENCH_SKIP_RSS").is_some() {
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("layer.bin");
    let size: usize = 1 << 30;
    let digest = random_file(&path, 9, size);
    let image = file_image(&[(digest, path, size as u64)]);
    let manifest_digest = Digest::of(&image.manifest);
    eprintln!("pushing a 1 GiB layer to the upstream …");
    let up = upstream.host();
    if !push_upstream(&up, "bench/big", &image).await {
        return None;
    }
    let target = TestRegistry::start();
    let t = Instant::now();
    let out = Command::new(std::env::current_exe().ok()?)
        .args([
            "--rss-child",
            &up,
            &target.host(),
            &format!("quay.io/bench/big:1@{manifest_digest}"),
        ])
        .output()
        .ok()?;
    let time = t.elapsed();
    if !out.status.success() {
        eprintln!(
            "the RSS child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let kb = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((kb, time))
}

/// In the child: copy one image, print VmHWM in kB.
fn rss_child(upstream: &str, target: &str, reference: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let source = ImageRef::parse(reference).expect("reference");
    let request = CopyRequest {
        target: TargetPrefix::parse(target)
            .expect("target")
            .target_for(&source, Naming::Flat),
        source,
        platforms: Platforms::All,
    };
    let dest = Destination::Registry(RegistryAccess::new(target, Tls::PlainHttp));
    let outcome = runtime
        .block_on(client(upstream, jobs()).copy(&request, &dest))
        .expect("copy of the 1 GiB image");
    assert_eq!(outcome.stats.blobs_uploaded, 2);
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM");
    println!("{hwm}");
}
