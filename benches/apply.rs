//! Apply benchmark: the whole community registry (31 stacks, 90 devfiles, 173 starter
//! projects, 48 images) in a local world (generated images in a loopback `docker-registry`,
//! local git repositories, a local HTTP server), applied to a `dir:` target by the release
//! binary. Times `airgap lock`, a cold `airgap apply` (empty git and file caches: every starter
//! repository fetched, every image copied), `airgap plan` and the no-op re-apply (median of 5),
//! next to `skopeo sync` of the same images (the world's upstream registry to an empty
//! loopback registry, then its re-run, median of 3) in the same run. Goals (issues 12 and 13):
//! the no-op as a process under 60 ms, and under 0.1 x skopeo sync's re-run.
//! `cargo bench --bench apply`.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::registry::TestRegistry;
use support::world::World;

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
