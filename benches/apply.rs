//! Apply benchmark: the whole community registry (31 stacks, 90 devfiles, 173 starter
//! projects, 48 images) in a local world (generated images in a loopback `docker-registry`,
//! local git repositories, a local HTTP server), applied to a `dir:` target by the release
//! binary. Times `airgap lock`, a cold `airgap apply` (empty git and file caches: every starter
//! repository fetched, every image copied), `airgap plan` and the no-op re-apply (median of 5;
//! target: under 1 second on a 2-core machine). `cargo bench --bench apply`.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

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
    println!();
    println!(
        "no-op re-apply: {:.3} s (target < 1 s); {:.1}% of the cold apply",
        noop.as_secs_f64(),
        100.0 * noop.as_secs_f64() / cold.as_secs_f64()
    );
}
