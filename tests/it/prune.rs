//! `airgap prune`: what the lock no longer names leaves the target — only images airgap placed,
//! a `dir:` layout down to exactly the blobs a fresh apply of the new lock has, a registry by
//! its delete API — and `plan` lists it first.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::quickstart::{fresh_example, only_stacks};
use super::support::airgap;
use super::support::layout_index;
use super::support::registry::{RegistryOptions, TestRegistry, http_status};

/// The quickstart applied to the registry `target` (under `devfiles/`), in a fresh workspace.
fn applied_to(target: &TestRegistry) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().to_path_buf();
    fresh_example(&ws);
    let kdl = std::fs::read_to_string(ws.join("airgap.kdl"))
        .unwrap()
        .replace(
            "target \"dir:out\"",
            &format!("target \"{}/devfiles\" tls=\"plain-http\"", target.host()),
        );
    std::fs::write(ws.join("airgap.kdl"), kdl).unwrap();
    airgap(&ws, &["apply"]).ok();
    (dir, ws)
}

fn blobs(out: &Path) -> BTreeSet<String> {
    std::fs::read_dir(out.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn ref_names(out: &Path) -> BTreeSet<String> {
    layout_index(out)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_owned)
        .collect()
}

#[test]
fn narrowing_the_stacks_then_prune_leaves_a_dir_target_as_a_fresh_apply_of_the_new_lock() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fresh_example(&ws);
    airgap(&ws, &["apply"]).ok();
    let out = ws.join("out");
    assert!(ref_names(&out).contains("devfile-catalog/hello-node:1.0.0"));

    only_stacks(&ws, &["hello-go"]);
    airgap(&ws, &["apply"]).ok();
    // The dropped stack's artifacts and the old index image are still there, and plan says
    // prune would remove them.
    assert!(ref_names(&out).contains("devfile-catalog/hello-node:1.0.0"));
    let plan = airgap(&ws, &["plan"]).ok();
    for name in [
        "devfile-catalog/hello-node:1.0.0@",
        "devfile-catalog/hello-node:1.1.0@",
        "devfile-index:latest@",
    ] {
        assert!(
            plan.stdout.contains(&format!("remove image {name}")),
            "{name}:\n{}",
            plan.stdout
        );
    }

    let (before_refs, before_blobs) = (ref_names(&out), blobs(&out));
    let dry = airgap(&ws, &["prune", "--dry-run"]).ok();
    assert!(
        dry.stderr
            .contains("Would remove image devfile-catalog/hello-node:1.0.0"),
        "{}",
        dry.stderr
    );
    assert_eq!(
        (ref_names(&out), blobs(&out)),
        (before_refs, before_blobs.clone())
    );

    airgap(&ws, &["prune"]).ok();
    // A fresh apply of the narrowed manifest, elsewhere: the same images and the same blobs.
    let fresh = dir.path().join("fresh");
    fresh_example(&fresh);
    only_stacks(&fresh, &["hello-go"]);
    airgap(&fresh, &["apply"]).ok();
    assert_eq!(ref_names(&out), ref_names(&fresh.join("out")));
    assert_eq!(blobs(&out), blobs(&fresh.join("out")));
    assert!(blobs(&out).len() < before_blobs.len());
    airgap(&ws, &["verify"]).ok();
    let plan = airgap(&ws, &["plan"]).ok();
    assert!(!plan.stdout.contains("remove image"), "{}", plan.stdout);
    let again = airgap(&ws, &["prune"]).ok();
    assert!(again.stderr.contains("Pruned nothing"), "{}", again.stderr);
}

#[test]
fn prune_deletes_from_a_registry_and_names_one_that_refuses_deletes() {
    for deletes_disabled in [false, true] {
        let target = TestRegistry::start_with(RegistryOptions {
            deletes_disabled,
            ..Default::default()
        });
        let (_dir, ws) = applied_to(&target);
        let artifact = "/v2/devfiles/devfile-catalog/hello-node/manifests/1.0.0";
        assert_eq!(http_status(target.port, artifact), Some(200));

        only_stacks(&ws, &["hello-go"]);
        airgap(&ws, &["apply"]).ok();
        if deletes_disabled {
            let run = airgap(&ws, &["prune"]).fails(1);
            assert!(run.stderr.contains("refuses deletes"), "{}", run.stderr);
            assert!(
                run.stderr.contains("REGISTRY_STORAGE_DELETE_ENABLED"),
                "{}",
                run.stderr
            );
            assert_eq!(http_status(target.port, artifact), Some(200));
            continue;
        }
        airgap(&ws, &["prune"]).ok();
        assert_eq!(http_status(target.port, artifact), Some(404));
        // What the lock names is still there.
        assert_eq!(
            http_status(
                target.port,
                "/v2/devfiles/devfile-catalog/hello-go/manifests/1.0.0"
            ),
            Some(200)
        );
        airgap(&ws, &["verify"]).ok();
        let again = airgap(&ws, &["prune"]).ok();
        assert!(again.stderr.contains("Pruned nothing"), "{}", again.stderr);
    }
}

#[test]
fn a_manifest_deleted_at_a_registry_target_is_found_and_restored() {
    let target = TestRegistry::start();
    let (_dir, ws) = applied_to(&target);
    let path = "/v2/devfiles/devfile-catalog/hello-go/manifests/1.0.0";
    assert_eq!(http_status(target.port, path), Some(200));
    // Deleted behind airgap's back (by digest: the tag goes with it).
    let plan: Value =
        serde_json::from_str(&airgap(&ws, &["plan", "--format", "json"]).ok().stdout).unwrap();
    assert_eq!(plan["summary"]["stale"], 0);
    let state: Value =
        serde_json::from_slice(&std::fs::read(ws.join(".airgap/state.json")).unwrap()).unwrap();
    let digest = state["steps"]["stack-artifact:quickstart/hello-go"]["outputs"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let client = crate::support::http();
    let status = client
        .delete(format!(
            "http://{}/v2/devfiles/devfile-catalog/hello-go/manifests/{digest}",
            target.host()
        ))
        .send()
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    assert_eq!(http_status(target.port, path), Some(404));

    let verify = airgap(&ws, &["verify"]).fails(1);
    assert!(
        verify.stderr.contains("devfile-catalog/hello-go"),
        "{}",
        verify.stderr
    );
    let plan = airgap(&ws, &["plan", "--stale"]).ok();
    assert!(
        plan.stdout
            .contains("stale  stack artifact of hello-go: the stack artifact of hello-go is missing at the target"),
        "{}",
        plan.stdout
    );
    let run = airgap(&ws, &["apply"]).ok();
    assert!(run.stderr.contains(": 1 ran,"), "{}", run.stderr);
    assert_eq!(http_status(target.port, path), Some(200));
    airgap(&ws, &["verify"]).ok();
}
