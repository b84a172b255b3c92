//! Apply benchmark: the whole community registry (31 stacks, 90 devfiles, 173 starter
//! projects, 48 images) in a local world (generated images in a loopback `docker-registry`,
//! local git repositories, a local HTTP server), applied to a `dir:` target by the release
//! binary. Times `airgap lock`, a cold `airgap apply` (empty git and file caches: every starter
//! repository fetched, every image copied), `airgap plan` and the no-op re-apply (median of 5),
//! next to `skopeo sync` of the same images (the world's upstream registry to an empty
//! loopback registry, then its re-run, median of 3) in the same run. Goals (issues 12 and 13):
//! the no-op as a process under 60 ms, and under 0.1 x skopeo sync's re-run.
//! Also `airgap lock` with warm caches, four ways (issue 13's goal: ≤ 0.25 s without a lock).
//! `cargo bench --bench apply` (`-- --lock-only` for the lock rows
//! alone, `-- --lock-only --hold` to keep the world up for a profiler until a line is read).

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::registry::{TestRegistry, children_cpu};
use support::world::World;

/// Median wall time and median user+sys CPU of `n` runs of `airgap args`, each after `before`.
fn timed(w: &World, args: &[&str], n: usize, before: impl Fn()) -> (Duration, Duration) {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..n {
        before();
        let cpu0 = children_cpu();
        wall.push(run(w, args));
        cpu.push(children_cpu() - cpu0);
    }
    (median(wall), median(cpu))
}

/// `airgap lock` with warm caches (every git repository and download already fetched by a
/// first lock): without airgap.lock (everything resolved again), with it and nothing changed,
/// `--update` of everything, and `--update` of one stack. Each: median wall and CPU of 5.
fn lock_rows(w: &World) -> Vec<(String, (Duration, Duration))> {
    let lock = w.workspace.join("airgap.lock");
    let kept = std::fs::read(&lock).expect("a first lock was written");
    let restore = || std::fs::write(&lock, &kept).expect("restores airgap.lock");
    let remove = || {
        let _ = std::fs::remove_file(&lock);
    };
    vec![
        (
            "airgap lock, warm caches, no airgap.lock".into(),
            timed(w, &["lock"], 5, remove),
        ),
        (
            "airgap lock, warm caches, airgap.lock up to date".into(),
            timed(w, &["lock"], 5, restore),
        ),
        (
            "airgap lock --update, warm caches".into(),
            timed(w, &["lock", "--update"], 5, restore),
        ),
        (
            "airgap lock --update go, warm caches".into(),
            timed(w, &["lock", "--update", "go"], 5, restore),
        ),
    ]
}

fn print_lock_rows(rows: &[(String, (Duration, Duration))]) {
    for (what, (wall, cpu)) in rows {
        println!(
            "| {what} (median of 5; user+sys {:.3} s) | {:.3} |",
            cpu.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
}

fn run(w: &World, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = support::airgap_cmd(&w.workspace)
        .args(args)
        .output()
        .expect("airgap runs");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "airgap {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// `skopeo sync` of every image of the world (by tag, or by digest when it has none) from its
/// upstream registry to an empty one: the cold run and the median of 3 re-runs (`None`, with
/// its error printed, when skopeo fails: the airgap rows are printed regardless).
fn skopeo_sync(w: &World) -> Option<(Duration, Duration)> {
    let target = TestRegistry::start();
    let dir = tempfile::tempdir().expect("a temp folder");
    let yaml = dir.path().join("sync.yaml");
    let mut by_repo: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (reference, digest) in &w.images {
        let (repo, tag) = match reference.rsplit_once('@') {
            Some((repo, _)) => (repo.to_string(), digest.to_string()),
            None => match reference.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
                _ => (reference.clone(), digest.to_string()),
            },
        };
        by_repo.entry(repo).or_default().push(tag);
    }
    let mut text = format!("{}:\n  tls-verify: false\n  images:\n", w.upstream.host());
    for (repo, tags) in &by_repo {
        text.push_str(&format!("    {repo}: {tags:?}\n"));
    }
    std::fs::write(&yaml, text).expect("writes sync.yaml");
    // `--all`: every platform, as airgap copies them (and a list named by digest keeps it).
    let sync = || {
        let started = Instant::now();
        let out = Command::new("skopeo")
            .args(["sync", "--all", "--src", "yaml", "--dest", "docker"])
            .arg("--dest-tls-verify=false")
            .arg(&yaml)
            .arg(format!("{}/sync", target.host()))
            .output()
            .expect("skopeo runs");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            eprintln!("skopeo sync failed: {}", err.lines().last().unwrap_or(""));
            return None;
        }
        Some(started.elapsed())
    };
    let cold = sync()?;
    let reruns: Option<Vec<Duration>> = (0..3).map(|_| sync()).collect();
    Some((cold, median(reruns?)))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let w = World::community();
    w.write_manifest("");
    let lock = run(&w, &["lock"]);
    let lock_rows = lock_rows(&w);
    if std::env::args().any(|a| a == "--lock-only") {
        println!();
        println!("| run | time (s) |");
        println!("|---|---:|");
        println!("| airgap lock (cold caches) | {:.3} |", lock.as_secs_f64());
        print_lock_rows(&lock_rows);
        if std::env::args().any(|a| a == "--hold") {
            // For profiling by hand: the world stays up until a line is read.
            println!("world held; workspace: {}", w.workspace.display());
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        return;
    }
    // Cold: the lock is there, every cache is empty.
    std::fs::remove_dir_all(w.workspace.join(".airgap")).expect("clears the workspace");
    let cold = run(&w, &["apply", "--locked"]);
    let plan = median((0..5).map(|_| run(&w, &["plan"])).collect());
    let noop = median((0..5).map(|_| run(&w, &["apply", "--locked"])).collect());
    let steps = support::plan_step_count(&w.workspace);
    let sync = skopeo_sync(&w);
    println!();
    println!("airgap apply, whole community registry ({steps} steps), dir: target, release build");
    println!();
    println!("| run | time (s) |");
    println!("|---|---:|");
    println!("| airgap lock (cold caches) | {:.3} |", lock.as_secs_f64());
    print_lock_rows(&lock_rows);
    println!(
        "| airgap apply, cold (lock present, empty caches) | {:.3} |",
        cold.as_secs_f64()
    );
    println!(
        "| airgap plan, all fresh (median of 5) | {:.3} |",
        plan.as_secs_f64()
    );
    println!(
        "| airgap apply, no-op re-run (median of 5) | {:.3} |",
        noop.as_secs_f64()
    );
    if let Some((sync_cold, sync_rerun)) = sync {
        println!(
            "| skopeo sync --all of the same {} images to a registry, cold | {:.3} |",
            w.images.len(),
            sync_cold.as_secs_f64()
        );
        println!(
            "| skopeo sync --all, re-run (median of 3) | {:.3} |",
            sync_rerun.as_secs_f64()
        );
    }
    println!();
    println!(
        "no-op re-apply: {:.3} s (goal ≤ 0.060 s); {:.1}% of the cold apply{}",
        noop.as_secs_f64(),
        100.0 * noop.as_secs_f64() / cold.as_secs_f64(),
        sync.map_or(String::new(), |(_, rerun)| format!(
            "; {:.3} x skopeo sync's re-run (goal ≤ 0.1)",
            noop.as_secs_f64() / rerun.as_secs_f64()
        ))
    );
}
