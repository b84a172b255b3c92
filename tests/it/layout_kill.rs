//! An apply killed (SIGKILL) while it adds images to a `dir:` target's OCI layout: the layout
//! stays readable and names only whole images, every image a step recorded is named, and the
//! next apply does not copy those images again.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use airgap::oci::digest::Digest;
use airgap::oci::layout::{JOURNAL_FILE, Layout};
use serde_json::Value;

use crate::support::world::World;
use crate::support::*;

/// The images the state's records (`state.json`, then its journal) say their steps placed:
/// step id → (repository, tag, digest). A torn last line of the journal (the step in flight)
/// is skipped, as the state's reader does.
fn placed_records(workspace: &Path) -> BTreeMap<String, (String, Option<String>, Digest)> {
    let dir = workspace.join(".airgap");
    let folded: Vec<Value> = std::fs::read(dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|s| {
            s["steps"]
                .as_object()
                .map(|m| m.values().cloned().collect())
        })
        .unwrap_or_default();
    let journal = std::fs::read_to_string(dir.join("state.journal")).unwrap_or_default();
    let journalled = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok());
    folded
        .into_iter()
        .chain(journalled)
        .filter_map(|r| {
            let p = r.get("placed")?;
            let tag = p.get("tag").and_then(Value::as_str).map(str::to_owned);
            Some((
                r["step"].as_str()?.to_owned(),
                (
                    p["repository"].as_str()?.to_owned(),
                    tag,
                    p["digest"].as_str()?.parse().ok()?,
                ),
            ))
        })
        .collect()
}

fn journal_lines(out: &Path) -> usize {
    std::fs::read_to_string(out.join(JOURNAL_FILE))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn step_statuses(workspace: &Path) -> BTreeMap<String, String> {
    let run = airgap(workspace, &["plan", "--format", "json"]).ok();
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let id = s["id"].as_str().unwrap().to_owned();
            (id, s["status"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Every image the state records is named by the layout, and every image the layout names
/// is whole.
fn assert_layout_holds_the_records(workspace: &Path, out: &Path) -> usize {
    let layout = Layout::open_existing(out).expect("the layout is readable");
    let problems = block_on(layout.check_complete());
    assert!(problems.is_empty(), "incomplete images: {problems:?}");
    let placed = placed_records(workspace);
    for (step, (repository, tag, digest)) in &placed {
        assert!(
            layout.image(repository, tag.as_deref(), digest).is_some(),
            "{step} is recorded as placing {repository}:{tag:?}@{digest}, which the layout does not name"
        );
    }
    placed.len()
}

#[test]
fn an_apply_killed_while_adding_images_leaves_a_whole_layout_and_resumes_without_copying_them_again()
 {
    let w = World::community();
    w.write_manifest("");
    airgap(&w.workspace, &["lock"]).ok();
    let out = w.workspace.join("out");
    // Downloads are fetched again (not from lock's cache), and one is held by the server: the
    // apply is caught with images landed and the run not finished.
    std::fs::remove_dir_all(w.workspace.join(".airgap/cache/files")).unwrap();
    let held = w
        .served
        .keys()
        .find(|u| u.contains("code.quarkus.io"))
        .unwrap()
        .clone();
    w.http
        .hold(&format!("/{}", held.trim_start_matches("https://")));
    let mut child = airgap_cmd(&w.workspace)
        .args(["apply", "--locked"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "apply adds images while the download is held",
        || {
            assert!(
                child.try_wait().unwrap().is_none(),
                "apply ended before it was killed"
            );
            w.http.waiting() > 0 && journal_lines(&out) >= 5
        },
    );
    child.kill().unwrap(); // SIGKILL: no drop, no fold.
    child.wait().unwrap();
    w.http.release_all();

    assert!(
        out.join(JOURNAL_FILE).exists(),
        "the killed run's images are in the journal"
    );
    let landed = assert_layout_holds_the_records(&w.workspace, &out);
    assert!(landed >= 5, "{landed} images recorded before the kill");
    let before = placed_records(&w.workspace);
    let statuses = step_statuses(&w.workspace);
    for step in before.keys() {
        assert_eq!(
            statuses.get(step).map(String::as_str),
            Some("fresh"),
            "{step} landed before the kill and is not done again"
        );
    }

    let run = airgap(&w.workspace, &["apply", "--locked", "-v"]).ok();
    assert!(run.stderr.contains("Applied"), "{}", run.stderr);
    assert!(
        !out.join(JOURNAL_FILE).exists(),
        "the journal is folded into index.json at the end of the run"
    );
    assert_layout_holds_the_records(&w.workspace, &out);
    let after = placed_records(&w.workspace);
    for (step, placed) in &before {
        assert_eq!(after.get(step), Some(placed), "{step} kept its record");
    }
    assert!(
        step_statuses(&w.workspace).values().all(|s| s == "fresh"),
        "the resumed run finished every step"
    );
    let named = layout_index(&out)["manifests"].as_array().unwrap().len();
    assert!(named >= landed, "index.json alone names every image");
}
