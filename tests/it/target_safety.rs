//! apply touches only what it wrote: a target folder holding someone else's files, or one that
//! overlaps the manifest's folder or a source, is refused before anything is removed or
//! written; files airgap recorded as its own are removed when no step produces them any more.
//! And `verify` ends on a workspace whose source is a `file://` git URL.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::quickstart::fresh_example;
use crate::support::git::Repo;
use crate::support::*;

fn quickstart() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fresh_example(&tmp.path().join("qs"));
    tmp
}

#[test]
fn a_file_airgap_did_not_write_stops_apply_before_anything_is_touched() {
    let tmp = quickstart();
    let ws = tmp.path().join("qs");
    let notes = ws.join("out/registry/notes.txt");
    std::fs::create_dir_all(notes.parent().unwrap()).unwrap();
    std::fs::write(&notes, "the operator's notes\n").unwrap();

    let run = airgap(&ws, &["apply"]).fails(1);
    assert!(
        run.err_text().contains("holds files airgap did not write")
            && run.err_text().contains("`registry/notes.txt`"),
        "{}",
        run.stderr
    );
    // Nothing was removed and nothing was written into the folder.
    assert_eq!(
        tree(&ws.join("out")).into_keys().collect::<Vec<_>>(),
        ["registry/notes.txt"]
    );
    assert_eq!(std::fs::read(&notes).unwrap(), b"the operator's notes\n");

    // Moved away, the same folder is applied.
    std::fs::remove_file(&notes).unwrap();
    airgap(&ws, &["apply"]).ok();

    // A file dropped into a built tree is refused the same way, and kept.
    let stray = ws.join("out/registry/stacks/hello-go/README.md");
    std::fs::write(&stray, "mine\n").unwrap();
    let before = tree(&ws.join("out"));
    let run = airgap(&ws, &["apply"]).fails(1);
    assert!(
        run.err_text()
            .contains("`registry/stacks/hello-go/README.md`"),
        "{}",
        run.stderr
    );
    assert_eq!(tree(&ws.join("out")), before);
}

#[test]
fn a_target_that_is_the_manifests_folder_or_inside_a_source_is_refused_and_nothing_is_lost() {
    for (target, says) in [
        ("dir:.", "is the manifest's folder"),
        ("dir:..", "holds the manifest's folder"),
        ("dir:registry/out", "is inside the path source"),
        ("dir:mirror", "holds the url-mirror folder"),
    ] {
        let tmp = quickstart();
        let ws = tmp.path().join("qs");
        let kdl = std::fs::read_to_string(ws.join("airgap.kdl")).unwrap();
        std::fs::write(
            ws.join("airgap.kdl"),
            kdl.replace("target \"dir:out\"", &format!("target \"{target}\"")),
        )
        .unwrap();
        airgap(&ws, &["lock"]).ok();
        let before = tree(tmp.path());
        let run = airgap(&ws, &["apply"]).fails(1);
        assert!(run.err_text().contains(says), "{target}: {}", run.stderr);
        // Every file of the manifest's folder is still there, unchanged (the workspace's lock
        // file and the lock's parse cache, both in `.airgap/`, are all apply may have created).
        let mut after = tree(tmp.path());
        after.retain(|k, _| {
            !k.ends_with(".airgap/apply.lock") && !k.ends_with(".airgap/lock.parsed")
        });
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "{target}"
        );
        assert_eq!(after, before, "{target}");
    }
}

#[test]
fn a_folder_with_a_foreign_index_json_is_refused_before_its_tree_is_emptied() {
    let tmp = quickstart();
    let ws = tmp.path().join("qs");
    let out = ws.join("out");
    std::fs::create_dir_all(out.join("registry/stacks/mine")).unwrap();
    std::fs::write(out.join("index.json"), "{\"not\": \"an OCI index\"}\n").unwrap();
    std::fs::write(out.join("registry/stacks/mine/devfile.yaml"), "mine\n").unwrap();
    let before = tree(&out);
    let run = airgap(&ws, &["apply"]).fails(1);
    assert!(
        run.err_text().contains("holds files airgap did not write"),
        "{}",
        run.stderr
    );
    assert_eq!(tree(&out), before);
}

#[test]
fn airgaps_own_files_that_no_step_produces_are_removed() {
    let tmp = quickstart();
    let ws = tmp.path().join("qs");
    airgap(&ws, &["apply"]).ok();
    let out = ws.join("out");
    assert!(out.join("registry/stacks/hello-node").is_dir());

    // A file renamed into place by a step killed before its record was written: the step's
    // claim in the staging folder makes it airgap's, so the next apply removes it.
    std::fs::write(out.join("registry/stacks/hello-go/half.zip"), "x").unwrap();
    std::fs::write(
        out.join(".airgap-staging/claims"),
        "registry/stacks/hello-go/half.zip\n",
    )
    .unwrap();
    airgap(&ws, &["apply"]).ok();
    assert!(!out.join("registry/stacks/hello-go/half.zip").exists());

    // A stack dropped from the manifest: its files were airgap's, so they go.
    crate::quickstart::only_stacks(&ws, &["hello-go"]);
    airgap(&ws, &["apply"]).ok();
    assert!(!out.join("registry/stacks/hello-node").exists());
    assert!(out.join("registry/stacks/hello-go/devfile.yaml").is_file());
    // …and the state still knows what is its own: a second apply is a no-op that succeeds.
    let run = airgap(&ws, &["apply"]).ok();
    assert!(run.stderr.contains("0 ran"), "{}", run.stderr);
}

/// `airgap verify` on a workspace whose source is a `file://` git URL ends (its host is
/// empty, and searching text for an empty host name never advanced).
#[test]
fn verify_ends_with_a_file_url_source() {
    let tmp = tempfile::tempdir().unwrap();
    let example = crate::quickstart::example_dir();
    let mut repo = Repo::init_bare(&tmp.path().join("registry.git"));
    let files = tree(&example.join("registry"));
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let head = repo.commit(None, &files, "stacks");
    repo.repo
        .reference("refs/heads/main", head, true, "main")
        .unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("airgap.kdl"),
        format!(
            "target \"dir:out\"\nsource \"quickstart\" git=\"{}\"\nurl-mirror \"https://example.com/\" to=\"file://{}/\"\nregistry-mirror \"quay.io\" to=\"dir:{}\"\n",
            repo.url(),
            example.join("mirror/example.com").display(),
            example.join("mirror/images").display(),
        ),
    )
    .unwrap();
    airgap(&ws, &["apply"]).ok();
    let run = run_with_deadline(&ws, &["verify"], Duration::from_secs(120));
    let run = run.ok();
    assert!(run.stderr.contains("Verified"), "{}", run.stderr);
}

/// Runs `airgap ARGS…` and kills it when it has not ended by the deadline (a test failure,
/// not a pass).
fn run_with_deadline(dir: &Path, args: &[&str], limit: Duration) -> Run {
    let mut child = airgap_cmd(dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap().into();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "`airgap {}` did not end within {limit:?}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
