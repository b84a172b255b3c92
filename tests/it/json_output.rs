//! `--format json`: each command prints exactly one document on stdout, accepted by its schema
//! in `schema/output/`, whether it succeeds or fails; its `exit_code` is the process's.

use serde_json::Value;

use super::quickstart::fresh_example;
use super::support::{Run, airgap};

/// The document of `command` in `run`'s stdout, checked against its schema and exit code.
#[track_caller]
fn document(run: &Run, command: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("schema/output/{command}.schema.json"));
    let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout of {command} is not one JSON document ({e}):\n{}",
            run.stdout
        )
    });
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{command}: {errors:?}\n{doc:#}");
    assert_eq!(doc["command"], command);
    assert_eq!(
        doc["exit_code"].as_i64(),
        run.code.map(i64::from),
        "{doc:#}"
    );
    assert_eq!(doc["ok"], run.code == Some(0));
    doc
}

#[test]
fn every_command_prints_one_document_its_schema_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    fresh_example(ws);
    let json = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        airgap(ws, &all)
    };

    let lock = document(&json(&["lock"]).ok(), "lock");
    assert_eq!(lock["written"], true);
    assert_eq!(
        lock["changes"],
        serde_json::json!([]),
        "a first lock lists no change"
    );
    assert!(lock["summary"]["stacks"].as_u64().unwrap() >= 2);

    let plan = document(&json(&["plan"]).ok(), "plan");
    let total = plan["summary"]["total"].as_u64().unwrap();
    assert_eq!(plan["summary"]["stale"], total);

    let apply = document(&json(&["apply"]).ok(), "apply");
    assert_eq!(apply["steps"]["ran"], total);
    let again = document(&json(&["apply"]).ok(), "apply");
    assert_eq!(again["steps"]["ran"], 0);
    assert_eq!(again["steps"]["fresh"], total);

    for command in ["verify", "audit"] {
        let doc = document(&json(&[command]).ok(), command);
        assert_eq!(doc["findings"], serde_json::json!([]));
    }
    let prune = document(&json(&["prune", "--dry-run"]).ok(), "prune");
    assert_eq!(prune["images"], serde_json::json!([]));
    let check = document(&json(&["lock", "--check"]).ok(), "lock");
    assert_eq!(check["up_to_date"], true);

    // Failures are documents too: a usage error, and findings.
    let usage = document(&json(&["apply", "--force", "nosuch"]).fails(2), "apply");
    assert_eq!(usage["error"]["code"], "airgap::usage");
    let out = ws.join("out");
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    std::fs::remove_file(out.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap();
    let verify = document(&json(&["verify"]).fails(1), "verify");
    assert!(
        !verify["findings"].as_array().unwrap().is_empty(),
        "{verify:#}"
    );
    assert!(
        verify["error"]["message"]
            .as_str()
            .unwrap()
            .contains(digest)
    );
}

#[test]
fn push_prints_its_document() {
    let w = super::bundle::World::new();
    w.airgap(&["apply", "--bundle", "../bundle"]).ok();
    let run = w.push(&["--format", "json"]).ok();
    let doc = document(&run, "push");
    let total = doc["images"]["total"].as_u64().unwrap();
    assert!(total > 0);
    assert_eq!(doc["images"]["pushed"], total);
    assert_eq!(doc["failures"], serde_json::json!([]));
}
