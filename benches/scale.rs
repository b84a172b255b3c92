//! Scale benchmark: how each command grows with the number of stacks, run as users run it.
//!
//! For each N (default 31, 300 and 3,000; `AIRGAP_SCALE_NS=31,300` overrides), a synthetic
//! registry of N stacks ([`support::synthetic`]: the community registry's proportions, images,
//! starter repositories and icons from small shared pools) is made real on 127.0.0.1 by the
//! test world (images in a loopback `docker-registry`, git repositories reached through
//! `url-mirror` file:// rules, icons over HTTP), and the `airgap` binary of this profile runs as
//! a process against it, to a `dir:` target:
//!
//! - `airgap lock` with cold caches, then (caches cleared again) a cold `airgap apply --locked`;
//! - the no-op `airgap apply --locked` and `airgap plan`, median of 3 each;
//! - `airgap serve` of the output: time until it accepts connections, then 64 concurrent
//!   clients (`AIRGAP_BENCH_CLIENTS`) on `/index` and on `/v2index` for 3 s each
//!   (`AIRGAP_BENCH_SECS`), p50/p99 latency and requests per second.
//!
//! Peak RSS of every command comes from `/usr/bin/time -f %M` (Debian package `time`), or, where
//! that is missing, from polling `VmHWM`; the server's from its `VmHWM` before it is stopped.
//! The output is a markdown table with, per row, the exponent k of a least-squares fit of
//! log(cost) against log(N): k ≤ 1 is linear or better, k > 1.1 is flagged as super-linear.
//! Client and server share the machine's cores, so serve numbers are a floor.
//!
//! `AIRGAP_SCALE_ONLY=serve` measures only what reads a built output — `airgap serve`
//! (`/v2index`, `/index`, and `/v2index` with registry-library's filters), `airgap verify` and
//! `airgap audit` — on a workspace built once per N (not timed), and with
//! `AIRGAP_BENCH_BASE=/path/to/airgap` also another build of airgap on the same workspace,
//! interleaved, so before and after come from the same run ([`serve_main`]).
//!
//! `cargo bench --bench scale` (release; about ten minutes on 2 cores). For a quick run in the
//! debug profile: `AIRGAP_SCALE_NS=31 cargo test --bench scale`. `AIRGAP_SCALE_KEEP=1` keeps
//! each N's workspace (manifest, lock, state, output) for profiling `plan` and the no-op apply,
//! which need no upstream. `AIRGAP_SCALE_BASE=PATH` also measures another build's binary
//! (cold apply, no-op, plan) in the same world right after this one's, for same-run ratios;
//! each line gives user+sys CPU seconds too.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::synthetic::Counts;
use support::world::World;

const GNU_TIME: &str = "/usr/bin/time";
/// A k above this is reported as super-linear.
const SUPER_LINEAR: f64 = 1.1;

/// One run of a command: wall time, peak resident set size and user+sys CPU seconds (the
/// steadier figure on a loaded machine; GNU time only).
#[derive(Clone, Copy)]
struct Measured {
    time: Duration,
    rss_kib: Option<u64>,
    cpu: Option<f64>,
}

/// `AIRGAP_SCALE_BASE`: another `airgap` binary (e.g. main's, built side by side) whose cold
/// apply, no-op and plan are measured at each N in the same world right after this build's,
/// for same-run ratios. Needs GNU time.
fn base_binary() -> Option<std::ffi::OsString> {
    std::env::var_os("AIRGAP_SCALE_BASE").filter(|_| Path::new(GNU_TIME).is_file())
}

/// Runs `airgap ARGS…` in `ws` and measures it; panics with its stderr if it fails.
fn measure(ws: &Path, scratch: &Path, args: &[&str]) -> Measured {
    measure_bin(ws, scratch, args, None)
}

/// [`measure`], running `bin` instead of this build's binary when given (through `sh -c
/// 'exec "$AIRGAP_SCALE_BIN" "$@"'`, so the environment stays the test support's).
fn measure_bin(ws: &Path, scratch: &Path, args: &[&str], bin: Option<&OsStr>) -> Measured {
    let rss_file = scratch.join("rss");
    let gnu_time = Path::new(GNU_TIME).is_file();
    let mut cmd = if gnu_time {
        let mut wrapper = vec![
            OsStr::new("-f"),
            OsStr::new("%M %U %S"),
            OsStr::new("-o"),
            rss_file.as_os_str(),
        ];
        if bin.is_some() {
            wrapper.extend(["/bin/sh", "-c", r#"exec "$AIRGAP_SCALE_BIN" "$@""#].map(OsStr::new));
        }
        let mut cmd = support::wrapped_airgap_cmd(ws, GNU_TIME, &wrapper);
        if let Some(bin) = bin {
            cmd.env("AIRGAP_SCALE_BIN", bin);
        }
        cmd
    } else {
        support::airgap_cmd(ws)
    };
    // stderr to a file, not a pipe: the polling loop below does not drain a pipe, and a cold
    // apply of thousands of stacks writes more progress than a pipe holds.
    let stderr_file = scratch.join("stderr");
    let stderr = std::fs::File::create(&stderr_file).expect("creates a stderr file");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let started = Instant::now();
    let mut child = cmd.spawn().expect("airgap runs");
    // Without GNU time: the highest VmHWM seen while it runs (the last few ms may be missed).
    let mut polled = None;
    if !gnu_time {
        while child.try_wait().expect("waits for airgap").is_none() {
            polled = vm_hwm(child.id()).or(polled);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let status = child.wait().expect("airgap runs");
    let time = started.elapsed();
    assert!(
        status.success(),
        "airgap {args:?} failed:\n{}",
        std::fs::read_to_string(&stderr_file).unwrap_or_default()
    );
    let timed = std::fs::read_to_string(&rss_file).unwrap_or_default();
    let fields: Vec<&str> = timed
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let (rss_kib, cpu) = if gnu_time {
        (
            field(0).map(|k| k as u64),
            field(1).zip(field(2)).map(|(u, s)| u + s),
        )
    } else {
        (polled, None)
    };
    Measured { time, rss_kib, cpu }
}

/// `VmHWM` (peak resident set size, KiB) of a running process.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The median time of `runs` runs, with the highest RSS among them.
fn median_of(runs: usize, mut f: impl FnMut() -> Measured) -> Measured {
    let mut all: Vec<Measured> = (0..runs).map(|_| f()).collect();
    let rss_kib = all.iter().filter_map(|m| m.rss_kib).max();
    all.sort_by_key(|m| m.time);
    let mid = all[all.len() / 2];
    Measured { rss_kib, ..mid }
}

/// What `airgap serve` did at one N.
struct Served {
    ready: Duration,
    rss_kib: Option<u64>,
    /// (path, load row) for `/index` and `/v2index`.
    rows: Vec<(&'static str, support::load::Row)>,
}

/// Starts `airgap serve out`, loads `/index` and `/v2index`, reads its VmHWM, stops it.
fn serve(ws: &Path, clients: usize, seconds: u64) -> Served {
    serve_bin(
        Path::new(env!("CARGO_BIN_EXE_airgap")),
        ws,
        &["/index", "/v2index"],
        clients,
        seconds,
    )
}

/// Everything measured at one N.
struct Point {
    n: usize,
    counts: Counts,
    steps: u64,
    lock: Measured,
    cold: Measured,
    noop: Measured,
    plan: Measured,
    served: Served,
}

fn at(n: usize, clients: usize, seconds: u64) -> Point {
    let built = Instant::now();
    let (w, counts) = World::synthetic(n);
    w.write_manifest("");
    eprintln!(
        "N={n}: world built in {:.1} s ({} devfiles, {} starter projects, {} samples, {} images)",
        built.elapsed().as_secs_f64(),
        counts.devfiles,
        counts.starter_projects,
        counts.samples,
        w.images.len()
    );
    let scratch = tempfile::tempdir().expect("a temp folder");
    let ws = &w.workspace;
    let report = |what: &str, m: &Measured| {
        eprintln!(
            "N={n}: {what}: {:.3} s, {} MB, cpu {} s",
            m.time.as_secs_f64(),
            m.rss_kib
                .map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            m.cpu.map_or("?".into(), |c| format!("{c:.2}"))
        );
    };
    let lock = measure(ws, scratch.path(), &["lock"]);
    report("lock", &lock);
    // Cold: the lock is there, every cache is empty.
    std::fs::remove_dir_all(ws.join(".airgap")).expect("clears the workspace");
    let cold = measure(ws, scratch.path(), &["apply", "--locked"]);
    report("apply, cold", &cold);
    let noop = median_of(3, || measure(ws, scratch.path(), &["apply", "--locked"]));
    report("apply, no-op", &noop);
    let plan = median_of(3, || measure(ws, scratch.path(), &["plan"]));
    report("plan", &plan);
    if let Some(base) = base_binary() {
        let base = Some(base.as_os_str());
        std::fs::remove_dir_all(ws.join(".airgap")).expect("clears the workspace");
        std::fs::remove_dir_all(ws.join("out")).expect("clears the output");
        let run = |args: &[&str]| measure_bin(ws, scratch.path(), args, base);
        report("base apply, cold", &run(&["apply", "--locked"]));
        report(
            "base apply, no-op",
            &median_of(3, || run(&["apply", "--locked"])),
        );
        report("base plan", &median_of(3, || run(&["plan"])));
    }
    let steps = support::plan_step_count(ws);
    let served = serve(ws, clients, seconds);
    for (path, row) in &served.rows {
        eprintln!(
            "N={n}: serve {path}: p50 {:.2} ms, p99 {:.2} ms, {:.0} req/s, {} errors",
            row.percentile_ms(0.50),
            row.percentile_ms(0.99),
            row.requests_per_second(),
            row.errors
        );
    }
    if std::env::var_os("AIRGAP_SCALE_KEEP").is_some() {
        // For profiling plan and the no-op apply afterwards (they need no upstream).
        let ws = w.workspace.clone();
        let _ = w.dir.keep();
        eprintln!("N={n}: workspace kept at {}", ws.display());
    }
    Point {
        n,
        counts,
        steps,
        lock,
        cold,
        noop,
        plan,
        served,
    }
}

/// The slope of the least-squares line through (ln N, ln value): value grows as N^k.
fn exponent(points: &[(usize, f64)]) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|(n, v)| ((*n as f64).ln(), v.ln()))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let len = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / len;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / len;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

fn mb(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn k_cell(k: Option<f64>) -> String {
    match k {
        Some(k) if k > SUPER_LINEAR => format!("**{k:.2}** ⚠"),
        Some(k) => format!("{k:.2}"),
        None => "—".into(),
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::var("AIRGAP_SCALE_ONLY").as_deref() == Ok("serve") {
        serve_main();
        return;
    }
    let ns: Vec<usize> = std::env::var("AIRGAP_SCALE_NS")
        .unwrap_or_else(|_| "31,300,3000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect();
    let clients: usize = env_or("AIRGAP_BENCH_CLIENTS", 64);
    let seconds: u64 = env_or("AIRGAP_BENCH_SECS", 3);
    let points: Vec<Point> = ns.iter().map(|n| at(*n, clients, seconds)).collect();

    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!();
    println!(
        "airgap at scale: synthetic registries, dir: target, {} build, {} cores, {date}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| N stacks | devfiles | starter projects | samples | apply steps |");
    println!("|---:|---:|---:|---:|---:|");
    for p in &points {
        println!(
            "| {} | {} | {} | {} | {} |",
            p.n, p.counts.devfiles, p.counts.starter_projects, p.counts.samples, p.steps
        );
    }
    println!();

    // Rows: (label, value at a point, peak RSS at a point, whether the value is seconds).
    type Getter = fn(&Point) -> f64;
    type Rss = fn(&Point) -> Option<u64>;
    let rows: Vec<(&str, Getter, Option<Rss>, bool)> = vec![
        (
            "`airgap lock`, cold caches (s)",
            |p| p.lock.time.as_secs_f64(),
            Some(|p| p.lock.rss_kib),
            true,
        ),
        (
            "`airgap apply --locked`, cold (s)",
            |p| p.cold.time.as_secs_f64(),
            Some(|p| p.cold.rss_kib),
            true,
        ),
        (
            "`airgap apply --locked`, no-op, median of 3 (s)",
            |p| p.noop.time.as_secs_f64(),
            Some(|p| p.noop.rss_kib),
            true,
        ),
        (
            "`airgap plan`, median of 3 (s)",
            |p| p.plan.time.as_secs_f64(),
            Some(|p| p.plan.rss_kib),
            true,
        ),
        (
            "`airgap serve`, start until listening (s)",
            |p| p.served.ready.as_secs_f64(),
            Some(|p| p.served.rss_kib),
            true,
        ),
        (
            "serve `/index`, p50 (ms)",
            |p| p.served.rows[0].1.percentile_ms(0.50),
            None,
            false,
        ),
        (
            "serve `/index`, p99 (ms)",
            |p| p.served.rows[0].1.percentile_ms(0.99),
            None,
            false,
        ),
        (
            "serve `/index`, req/s (k of s/req)",
            |p| p.served.rows[0].1.requests_per_second(),
            None,
            false,
        ),
        (
            "serve `/v2index`, p50 (ms)",
            |p| p.served.rows[1].1.percentile_ms(0.50),
            None,
            false,
        ),
        (
            "serve `/v2index`, p99 (ms)",
            |p| p.served.rows[1].1.percentile_ms(0.99),
            None,
            false,
        ),
        (
            "serve `/v2index`, req/s (k of s/req)",
            |p| p.served.rows[1].1.requests_per_second(),
            None,
            false,
        ),
    ];
    let mut header = String::from("| command |");
    let mut rule = String::from("|---|");
    for p in &points {
        header.push_str(&format!(" N={} |", p.n));
        rule.push_str("---:|");
    }
    header.push_str(" k | k, last two N |");
    rule.push_str("---:|---:|");
    for p in &points {
        header.push_str(&format!(" peak RSS MB, N={} |", p.n));
        rule.push_str("---:|");
    }
    header.push_str(" k (RSS) |");
    rule.push_str("---:|");
    println!("{header}");
    println!("{rule}");
    let mut super_linear = Vec::new();
    let mut steep_at_the_end = Vec::new();
    for (label, get, rss, is_time) in &rows {
        let mut line = format!("| {label} |");
        let mut costs = Vec::new();
        for p in &points {
            let v = get(p);
            if *is_time {
                line.push_str(&format!(" {v:.3} |"));
            } else if label.contains("req/s") {
                line.push_str(&format!(" {v:.0} |"));
            } else {
                line.push_str(&format!(" {v:.2} |"));
            }
            // Throughput is a benefit: fit its inverse, the time per request.
            let cost = if label.contains("req/s") && v > 0.0 {
                1.0 / v
            } else {
                v
            };
            costs.push((p.n, cost));
        }
        let k = exponent(&costs);
        if k.is_some_and(|k| k > SUPER_LINEAR) {
            super_linear.push(*label);
        }
        // A fixed start-up cost flattens the fit over all N; the slope between the two
        // largest shows what growth looks like at the high end.
        let k_last = (points.len() > 2)
            .then(|| exponent(&costs[costs.len() - 2..]))
            .flatten();
        if k_last.is_some_and(|k| k > SUPER_LINEAR) {
            steep_at_the_end.push(*label);
        }
        line.push_str(&format!(" {} | {} |", k_cell(k), k_cell(k_last)));
        match rss {
            Some(rss) => {
                let mut rss_points = Vec::new();
                for p in &points {
                    line.push_str(&format!(" {} |", mb(rss(p))));
                    if let Some(kib) = rss(p) {
                        rss_points.push((p.n, kib as f64));
                    }
                }
                line.push_str(&format!(" {} |", k_cell(exponent(&rss_points))));
            }
            None => {
                for _ in &points {
                    line.push_str(" |");
                }
                line.push_str(" |");
            }
        }
        println!("{line}");
    }
    println!();
    println!(
        "k: slope of least squares of ln(cost) against ln(N) (cost = time, latency, or seconds \
         per request), over all N and between the two largest; k > {SUPER_LINEAR} is \
         super-linear. Serve: {clients} clients, {seconds} s \
         per path, client and server on the same cores; its RSS is VmHWM after both loads."
    );
    println!();
    println!("Goals (issue 13):");
    if points.len() >= 2 {
        if super_linear.is_empty() {
            println!("- every command grows at most linearly (k ≤ {SUPER_LINEAR}): met");
        } else {
            println!(
                "- every command grows at most linearly (k ≤ {SUPER_LINEAR}): MISSED by {}",
                super_linear.join(", ")
            );
        }
        if !steep_at_the_end.is_empty() {
            println!(
                "  - between the two largest N, k > {SUPER_LINEAR} for {}",
                steep_at_the_end.join(", ")
            );
        }
    } else {
        println!("- growth: needs at least two N");
    }
    match points.iter().find(|p| p.n == 3000) {
        Some(p) => {
            let noop = p.noop.time.as_secs_f64();
            println!(
                "- no-op apply at 3,000 stacks under 1 s: {noop:.3} s, {}",
                if noop < 1.0 { "met" } else { "MISSED" }
            );
            let rss = p.served.rss_kib.map(|k| k as f64 / 1024.0);
            println!(
                "- serve RSS at 3,000 stacks under 200 MB: {}",
                match rss {
                    Some(mb) if mb < 200.0 => format!("{mb:.1} MB, met"),
                    Some(mb) => format!("{mb:.1} MB, MISSED"),
                    None => "not measured".into(),
                }
            );
        }
        None => println!("- no-op and serve RSS goals are at N=3000, not measured in this run"),
    }
}

/// The paths of the serve-only mode: plain, v1, and registry-library's filtered listing
/// (`arch` and the schema-version range it sends with every `/v2index`).
const SERVE_PATHS: [&str; 3] = [
    "/v2index",
    "/index",
    "/v2index?arch=amd64&minSchemaVersion=2.1.0",
];

/// Starts `bin serve out`, loads each of `paths`, reads its VmHWM, stops it.
fn serve_bin(
    bin: &Path,
    ws: &Path,
    paths: &[&'static str],
    clients: usize,
    seconds: u64,
) -> Served {
    let port = support::free_port();
    let started = Instant::now();
    let mut cmd = Command::new(bin);
    support::clean_env(&mut cmd, ws);
    let mut child = cmd
        .args(["serve", "out", "--addr", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("airgap serve starts");
    support::wait_for_port(port);
    let ready = started.elapsed();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let client = support::async_builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("a client");
    let mut rows = Vec::new();
    for &path in paths {
        let url = format!("http://127.0.0.1:{port}{path}");
        let load =
            |d| runtime.block_on(support::load::run(url.clone(), clients, d, client.clone()));
        // The first half second warms up the connections.
        load(Duration::from_millis(500));
        let row = load(Duration::from_secs(seconds));
        assert!(
            row.requests > 0,
            "no request to {path} succeeded ({} errors)",
            row.errors
        );
        rows.push((path, row));
    }
    let rss_kib = vm_hwm(child.id());
    let _ = child.kill();
    let _ = child.wait();
    Served {
        ready,
        rss_kib,
        rows,
    }
}

/// What the serve-only mode measured of one build at one N.
struct ReadSide {
    served: Served,
    verify: Option<Measured>,
    audit: Option<Measured>,
}

fn read_side(bin: &Path, ws: &Path, n: usize, clients: usize, seconds: u64) -> ReadSide {
    let scratch = tempfile::tempdir().expect("a temp folder");
    let served = serve_bin(bin, ws, &SERVE_PATHS, clients, seconds);
    // verify and audit read every devfile and archive: bounded to the N where they finish in
    // reasonable time (`AIRGAP_SCALE_AUDIT_MAX`, default 1000).
    let checked = n <= env_or("AIRGAP_SCALE_AUDIT_MAX", 1000usize);
    let verify = checked.then(|| {
        median_of(3, || {
            measure_bin(ws, scratch.path(), &["verify"], Some(bin.as_os_str()))
        })
    });
    let audit = checked.then(|| measure_bin(ws, scratch.path(), &["audit"], Some(bin.as_os_str())));
    ReadSide {
        served,
        verify,
        audit,
    }
}

/// `AIRGAP_SCALE_ONLY=serve`: serve, verify and audit at each N, this build and
/// (`AIRGAP_BENCH_BASE`) another, on one workspace built (untimed) by this build.
fn serve_main() {
    let ns: Vec<usize> = std::env::var("AIRGAP_SCALE_NS")
        .unwrap_or_else(|_| "31,300,1000,3000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let clients: usize = env_or("AIRGAP_BENCH_CLIENTS", 64);
    let seconds: u64 = env_or("AIRGAP_BENCH_SECS", 3);
    let mine = std::path::PathBuf::from(env!("CARGO_BIN_EXE_airgap"));
    let base = std::env::var_os("AIRGAP_BENCH_BASE").map(std::path::PathBuf::from);
    let mut builds = vec![("this build", mine.clone())];
    if let Some(b) = base {
        builds.push(("base", b));
    }
    // results[n][build]
    let mut results: Vec<Vec<ReadSide>> = Vec::new();
    for &n in &ns {
        let (w, _) = World::synthetic(n);
        w.write_manifest("");
        let scratch = tempfile::tempdir().expect("a temp folder");
        measure_bin(
            &w.workspace,
            scratch.path(),
            &["apply"],
            Some(mine.as_os_str()),
        );
        eprintln!("N={n}: built ({})", load_average());
        // Interleaved: base, this, base, this… would double the time; one each, base first
        // so that the page cache is as warm for this build as for the base.
        let mut at_n: Vec<ReadSide> = builds
            .iter()
            .rev()
            .map(|(_, bin)| read_side(bin, &w.workspace, n, clients, seconds))
            .collect();
        at_n.reverse();
        for ((name, _), r) in builds.iter().zip(&at_n) {
            for (path, row) in &r.served.rows {
                eprintln!(
                    "N={n} {name}: {path}: p50 {:.2} ms, p99 {:.2} ms, {} KB/body",
                    row.percentile_ms(0.5),
                    row.percentile_ms(0.99),
                    row.bytes / row.requests.max(1) / 1024
                );
            }
        }
        results.push(at_n);
    }
    print_read_side(&ns, &builds, &results, clients, seconds);
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| {
            format!(
                "load {}",
                l.split(' ').take(3).collect::<Vec<_>>().join(" ")
            )
        })
        .unwrap_or_default()
}

fn print_read_side(
    ns: &[usize],
    builds: &[(&str, std::path::PathBuf)],
    results: &[Vec<ReadSide>],
    clients: usize,
    seconds: u64,
) {
    type Get = Box<dyn Fn(&ReadSide) -> Option<f64>>;
    let mut rows: Vec<(String, Get)> = vec![
        (
            "serve, start until listening (s)".into(),
            Box::new(|r| Some(r.served.ready.as_secs_f64())),
        ),
        (
            "serve, peak RSS (MB)".into(),
            Box::new(|r| r.served.rss_kib.map(|k| k as f64 / 1024.0)),
        ),
    ];
    for (i, path) in SERVE_PATHS.iter().enumerate() {
        for (q, p) in [("p50", 0.5), ("p99", 0.99)] {
            rows.push((
                format!("serve `{path}` {q} (ms)"),
                Box::new(move |r| Some(r.served.rows[i].1.percentile_ms(p))),
            ));
        }
    }
    rows.push((
        "`airgap verify`, median of 3 (s)".into(),
        Box::new(|r| r.verify.map(|m| m.time.as_secs_f64())),
    ));
    rows.push((
        "`airgap audit` (s)".into(),
        Box::new(|r| r.audit.map(|m| m.time.as_secs_f64())),
    ));
    println!();
    println!(
        "read side at scale: {} build, {clients} clients, {seconds} s per path, {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        load_average()
    );
    println!();
    let mut header = String::from("| row | build |");
    let mut rule = String::from("|---|---|");
    for n in ns {
        header.push_str(&format!(" N={n} |"));
        rule.push_str("---:|");
    }
    println!("{header} k | k, last two N |");
    println!("{rule}---:|---:|");
    for (label, get) in &rows {
        for (b, (name, _)) in builds.iter().enumerate() {
            let values: Vec<(usize, Option<f64>)> = ns
                .iter()
                .zip(results)
                .map(|(n, at_n)| (*n, get(&at_n[b])))
                .collect();
            let mut line = format!("| {label} | {name} |");
            for (_, v) in &values {
                line.push_str(&v.map_or(" — |".into(), |v| format!(" {v:.3} |")));
            }
            let pts: Vec<(usize, f64)> = values
                .iter()
                .filter_map(|(n, v)| Some((*n, (*v)?)))
                .collect();
            let last = (pts.len() > 2)
                .then(|| exponent(&pts[pts.len() - 2..]))
                .flatten();
            line.push_str(&format!(" {} | {} |", k_cell(exponent(&pts)), k_cell(last)));
            println!("{line}");
        }
    }
}
