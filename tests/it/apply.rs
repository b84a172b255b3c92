//! `airgap plan` and `airgap apply` on the whole community registry, in a local world.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::world::{self, World};
use crate::support::*;

/// The upstream hosts the community registry names; none may be left outside comments.
pub const UPSTREAM_HOSTS: [&str; 11] = [
    "github.com",
    "raw.githubusercontent.com",
    "registry.access.redhat.com",
    "quay.io",
    "docker.io",
    "icr.io",
    "code.quarkus.io",
    "code.quarkus.redhat.com",
    "design.jboss.org",
    "static.djangoproject.com",
    "go.dev",
];

fn out_dir(w: &World) -> PathBuf {
    w.workspace.join("out")
}

fn plan_json(dir: &Path) -> Value {
    let run = airgap(dir, &["plan", "--format", "json"]).ok();
    serde_json::from_str(&run.stdout).unwrap()
}

fn stale_ids(plan: &Value) -> BTreeSet<String> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "stale")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn devfile_schema() -> jsonschema::Validator {
    let schema: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("devfile-schema/devfile.json")).unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn community_registry_applies_to_a_dir_target_and_reapplies_as_a_no_op() {
    let w = World::community();
    w.write_manifest("");
    let run = airgap(&w.workspace, &["apply"]).ok();
    assert!(run.stderr.contains("Applied"), "{}", run.stderr);
    let reg = out_dir(&w).join("registry");
    let files = tree(&reg);

    // 90 devfiles, each valid against the devfile schema, each pointing inside the air gap.
    let validator = devfile_schema();
    let devfiles: Vec<(&String, &Vec<u8>)> = files
        .iter()
        .filter(|(k, _)| k.starts_with("stacks/") && k.ends_with("/devfile.yaml"))
        .collect();
    assert_eq!(devfiles.len(), 90);
    for (path, bytes) in &devfiles {
        let text = std::str::from_utf8(bytes).unwrap();
        let value: Value = serde_saphyr::from_str(text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{path} does not validate: {errors:?}");
        let hits = airgap::rewrite::upstream_hosts_outside_comments(text, &UPSTREAM_HOSTS);
        // One reference no rewrite can tell from text is known and left (a push-target
        // variable: a bare registry host); nothing else.
        let known: &[(&str, usize)] = &[("stacks/java-wildfly/2.0.1/devfile.yaml", 13)];
        let unexpected: Vec<_> = hits
            .iter()
            .filter(|h| !known.contains(&(path.as_str(), h.line)))
            .collect();
        assert!(
            unexpected.is_empty(),
            "{path} still names upstream: {unexpected:?}"
        );
        // Every container image is pinned to the mirror, with a digest unless a variable
        // stands in its tag.
        let d = airgap::devfile::parse(path, text).unwrap();
        for img in d.images() {
            assert!(
                img.written.starts_with("localhost:8080/"),
                "{path}: {}",
                img.written
            );
            assert!(
                img.written.contains("@sha256:") || img.written.contains("{{"),
                "{path}: {}",
                img.written
            );
        }
    }

    // Every starter project as an offline zip next to its devfile (git and zip ones); a
    // single-version stack in the versioned layout has its starter projects' zips in the
    // stack's folder too, where the registry server looks for them.
    let zips = files
        .keys()
        .filter(|k| k.starts_with("stacks/") && k.ends_with("-offline.zip"))
        .count();
    let devfiles = world::devfiles(&fixtures().join("devfile-registry"));
    let mut expected = 0;
    for (path, d) in &devfiles {
        let dir = Path::new(path)
            .parent()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let names: BTreeSet<String> = world::projects_of(d)
            .into_iter()
            .map(|(_, p)| p.name)
            .collect();
        for n in &names {
            assert!(
                files.contains_key(&format!("{dir}/{n}-offline.zip")),
                "{dir}: {n}-offline.zip missing"
            );
        }
        expected += names.len();
        let stack_dir = Path::new(&dir).parent().unwrap().to_string_lossy();
        let versions = devfiles
            .iter()
            .filter(|(p, _)| p.starts_with(&format!("{stack_dir}/")))
            .count();
        if stack_dir != "stacks" && versions == 1 {
            for (kind, p) in world::projects_of(d) {
                if kind == "starter" {
                    let copy = format!("{stack_dir}/{}-offline.zip", p.name);
                    assert_eq!(
                        files.get(&copy),
                        files.get(&format!("{dir}/{}-offline.zip", p.name)),
                        "{copy}"
                    );
                    expected += 1;
                }
            }
        }
    }
    assert_eq!(zips, expected);

    // A subDir starter holds only that folder, at the zip root.
    let wildfly = &files["stacks/java-wildfly/1.1.0/microprofile-config-offline.zip"];
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(wildfly)).unwrap();
    let names: Vec<String> = (0..z.len())
        .map(|i| z.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"README.md".to_string()) && names.contains(&"src/app.txt".to_string()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains(".git")), "{names:?}");

    // The index lists every stack and sample; its icons are local.
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let entries = index.as_array().unwrap();
    assert_eq!(entries.iter().filter(|e| e["type"] == "stack").count(), 31);
    assert_eq!(entries.iter().filter(|e| e["type"] == "sample").count(), 5);
    for e in entries {
        let icon = e["icon"].as_str().unwrap_or("");
        assert!(
            icon.is_empty() || files.contains_key(icon),
            "{}: icon {icon} is not in the tree",
            e["name"]
        );
    }

    // Images: skopeo reads each from the OCI layout at the digest the lock names.
    let lock = airgap::lock::read("airgap.lock", &w.lock_text()).unwrap();
    let layout = out_dir(&w);
    for (key, img) in lock.images.iter().take(6) {
        let Some(tagged) = img
            .target
            .strip_prefix("localhost:8080/")
            .filter(|t| !t.contains('@'))
        else {
            continue;
        };
        let raw = registry::skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{tagged}", layout.display()),
        ]);
        let digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw))
        );
        assert_eq!(
            Some(digest),
            img.resolved.as_ref().map(|r| r.digest.clone()),
            "{key}"
        );
    }

    // A second apply: nothing stale, nothing run.
    let plan = plan_json(&w.workspace);
    assert_eq!(plan["summary"]["stale"], 0, "{plan:#}");
    let run = airgap(&w.workspace, &["apply"]).ok();
    assert!(run.stderr.contains(" 0 ran"), "{}", run.stderr);
    assert_eq!(tree(&reg), files);
}

#[test]
fn a_changed_devfile_makes_exactly_its_steps_stale() {
    let mut w = World::community();
    w.write_manifest("");
    airgap(&w.workspace, &["apply"]).ok();
    let before = tree(&out_dir(&w).join("registry"));

    // Upstream: one devfile's description changes.
    let path = "stacks/go/2.6.0/devfile.yaml";
    let head = w.source.branch("main");
    let old = {
        let repo = &w.source.repo;
        let tree = repo.find_commit(head).unwrap().tree().unwrap();
        let blob = tree
            .get_path(Path::new(path))
            .unwrap()
            .to_object(repo)
            .unwrap();
        String::from_utf8(blob.as_blob().unwrap().content().to_vec()).unwrap()
    };
    let new = old.replace(
        "A Go project with a simple HTTP server",
        "A Go project with an HTTP server",
    );
    assert_ne!(old, new);
    let c = add_file_on(&mut w, head, path, new.as_bytes());
    w.source.set_branch("main", c);
    airgap(&w.workspace, &["lock", "--update", "community"]).ok();

    let stale = stale_ids(&plan_json(&w.workspace));
    let expected: BTreeSet<String> = [
        "source:community",
        "devfile:community/go/2.6.0",
        "last-modified",
        "index-json",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    let extra: Vec<&String> = stale
        .difference(&expected)
        .filter(|s| !is_registry_wide(s, "go/2.6.0"))
        .collect();
    assert!(
        extra.is_empty(),
        "only go 2.6.0's steps are stale, but also: {extra:?}"
    );
    for e in &expected {
        assert!(stale.contains(e), "{e} is stale: {stale:?}");
    }
    let plan_text = airgap(&w.workspace, &["plan", "--stale"]).ok().stdout;
    assert!(
        plan_text.contains("devfile of go 2.6.0: devfile of go 2.6.0 changed"),
        "{plan_text}"
    );

    let run = airgap(&w.workspace, &["apply"]).ok();
    assert!(
        !run.stderr.contains("Running devfile of go 2.5.0"),
        "{}",
        run.stderr
    );
    let after = tree(&out_dir(&w).join("registry"));
    let changed: Vec<&String> = after
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        changed.contains(&&"stacks/go/2.6.0/devfile.yaml".to_string()),
        "{changed:?}"
    );
    for c in &changed {
        assert!(
            [
                "stacks/go/2.6.0/devfile.yaml",
                "index.json",
                "last_modified.json"
            ]
            .contains(&c.as_str()),
            "{c} changed"
        );
    }
}

/// Steps the registry-wide outputs add for a stack version (the index image, the stack's
/// artifact): stale when that version changes.
fn is_registry_wide(id: &str, version: &str) -> bool {
    id == "index-image" || id == format!("stack-artifact:community/{version}")
}

fn add_file_on(w: &mut World, parent: git2::Oid, path: &str, bytes: &[u8]) -> git2::Oid {
    w.source.amend_file(parent, path, bytes, "change a devfile")
}

#[test]
fn two_workspaces_give_byte_identical_outputs() {
    let w = World::community();
    w.write_manifest("");
    airgap(&w.workspace, &["lock"]).ok();
    let other = tempfile::tempdir().unwrap();
    for f in ["airgap.kdl", "airgap.lock"] {
        std::fs::copy(w.workspace.join(f), other.path().join(f)).unwrap();
    }
    airgap(&w.workspace, &["apply", "--locked"]).ok();
    airgap(other.path(), &["apply", "--locked"]).ok();
    let a = tree(&out_dir(&w));
    let b = tree(&other.path().join("out"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(b[k] == *v, "{k} differs between the two workspaces");
    }
    assert!(a.keys().any(|k| k.ends_with("-offline.zip")));
}

#[test]
fn a_killed_apply_resumes_with_only_the_remaining_steps() {
    let w = World::community();
    w.write_manifest("");
    airgap(&w.workspace, &["lock"]).ok();
    // Apply must download the zips and icons again (not from lock's cache), and one zip is
    // held by the server: the apply is caught with some steps done and some not.
    std::fs::remove_dir_all(w.workspace.join(".airgap/cache/files")).unwrap();
    let held = w
        .served
        .keys()
        .find(|u| u.contains("code.quarkus.io"))
        .unwrap()
        .clone();
    let held_path = format!("/{}", held.trim_start_matches("https://"));
    w.http.hold(&held_path);
    let mut child = airgap_cmd(&w.workspace)
        .args(["apply"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = w.workspace.join(".airgap/state.journal");
    eventually(
        Duration::from_secs(60),
        "apply reaches the held download",
        || {
            assert!(
                child.try_wait().unwrap().is_none(),
                "apply ended before it was killed"
            );
            let done = std::fs::read_to_string(&journal)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            w.http.waiting() > 0 && done >= 20
        },
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done_before = std::fs::read_to_string(&journal).unwrap().lines().count();
    w.http.release_all();

    let run = airgap(&w.workspace, &["apply"]).ok();
    let total = plan_json(&w.workspace)["summary"]["total"]
        .as_u64()
        .unwrap() as usize;
    let ran: usize = run
        .stderr
        .split(" ran")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(done_before >= 20);
    assert!(
        ran <= total - done_before,
        "only the remaining steps run: {ran} ran of {total}, {done_before} were done"
    );
    assert_eq!(stale_ids(&plan_json(&w.workspace)).len(), 0);

    // The outputs equal a clean run's.
    let clean = tempfile::tempdir().unwrap();
    for f in ["airgap.kdl", "airgap.lock"] {
        std::fs::copy(w.workspace.join(f), clean.path().join(f)).unwrap();
    }
    airgap(clean.path(), &["apply", "--locked"]).ok();
    assert_eq!(tree(&out_dir(&w)), tree(&clean.path().join("out")));
}

#[test]
fn a_second_apply_in_the_same_workspace_is_refused_while_one_runs() {
    let dir = empty_source_workspace();
    std::fs::create_dir_all(dir.path().join(".airgap")).unwrap();
    let holder = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.path().join(".airgap/apply.lock"))
        .unwrap();
    holder.lock().unwrap();
    std::fs::write(
        dir.path().join(".airgap/apply.lock"),
        "pid 4242 started at unix time 1",
    )
    .unwrap();
    let run = airgap(dir.path(), &["apply"]).fails(1);
    assert!(
        run.err_text()
            .contains("another airgap apply holds this workspace (pid 4242"),
        "{}",
        run.stderr
    );
    drop(holder);
}
