//! `airgap lock` on the whole community registry, in a local world.

use std::collections::{BTreeMap, BTreeSet};

use kdl::{KdlDocument, KdlNode};
use sha2::{Digest, Sha256};

use crate::support::world::{self, World};
use crate::support::*;

fn args(n: &KdlNode) -> Vec<String> {
    n.entries()
        .iter()
        .filter(|e| e.name().is_none())
        .map(|e| e.value().as_string().unwrap().to_string())
        .collect()
}

fn prop(n: &KdlNode, key: &str) -> Option<String> {
    n.get(key).and_then(|v| v.as_string()).map(str::to_string)
}

fn nodes<'a>(doc: &'a KdlDocument, name: &str) -> Vec<&'a KdlNode> {
    doc.nodes()
        .iter()
        .filter(|n| n.name().value() == name)
        .collect()
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The facts of the fixture, counted independently of airgap (README of the fixtures).
const STACKS: usize = 31;
const DEVFILES: usize = 90;
const STARTER_PROJECTS: usize = 173;

#[test]
fn community_registry_lock_pins_everything_and_is_stable() {
    let w = World::community();
    w.write_manifest("");
    let run = airgap(&w.workspace, &["lock"]).ok();
    assert!(run.stderr.contains("airgap.lock written"), "{}", run.stderr);
    let text = w.lock_text();
    let doc: KdlDocument = text.parse().unwrap();

    // Every stack and devfile.
    let stacks = nodes(&doc, "stack");
    assert_eq!(stacks.len(), DEVFILES);
    let names: BTreeSet<String> = stacks
        .iter()
        .map(|n| args(n)[1].split('/').next().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), STACKS);

    // Every starter project, each at the commit its remote's revision names in the world.
    let starters = nodes(&doc, "starter");
    assert_eq!(starters.len(), STARTER_PROJECTS);
    let mut zips = 0;
    for s in &starters {
        if let Some(url) = prop(s, "zip") {
            zips += 1;
            assert_eq!(prop(s, "sha256").unwrap(), sha256(&w.served[&url]), "{url}");
            continue;
        }
        let remote = prop(s, "remote").unwrap();
        let rev = prop(s, "revision").unwrap_or_else(|| "HEAD".into());
        let expected = w.remote(&remote).revisions[&rev].to_string();
        assert_eq!(
            prop(s, "commit").unwrap(),
            expected,
            "{:?} {remote} {rev}",
            args(s)
        );
    }
    assert_eq!(zips, 12, "the fixture has 12 zip starter projects");
    let sub_dirs = starters
        .iter()
        .filter(|s| prop(s, "sub-dir").is_some())
        .count();
    assert_eq!(
        sub_dirs, 33,
        "the fixture has 33 starter projects with subDir"
    );

    // projects[] of the 4 devfiles that have them.
    let mut expected_projects = 0;
    let mut owners = BTreeSet::new();
    for (path, d) in world::devfiles(&fixtures().join("devfile-registry")) {
        let n = world::projects_of(&d)
            .iter()
            .filter(|(k, _)| *k == "project")
            .count();
        if n > 0 {
            owners.insert(path);
        }
        expected_projects += n;
    }
    assert_eq!(owners.len(), 4);
    assert_eq!(nodes(&doc, "project").len(), expected_projects);

    // Samples: each version at its revision's commit.
    let samples = nodes(&doc, "sample");
    assert_eq!(samples.len(), 8, "5 samples, 8 sample versions");
    for s in &samples {
        let remote = prop(s, "remote").unwrap();
        let rev = prop(s, "revision").unwrap_or_else(|| "HEAD".into());
        assert_eq!(
            prop(s, "commit").unwrap(),
            w.remote(&remote).revisions[&rev].to_string()
        );
    }

    // Icons: every one downloaded through the local server, hashed.
    let downloads = nodes(&doc, "download");
    assert!(!downloads.is_empty());
    for d in &downloads {
        let url = &args(d)[0];
        assert_eq!(prop(d, "sha256").unwrap(), sha256(&w.served[url]), "{url}");
    }
    let icons_in_world: BTreeSet<&String> =
        w.served.keys().filter(|u| !u.contains("/d?")).collect();
    assert_eq!(downloads.len(), icons_in_world.len());

    // Images: the 40 distinct devfile images, the 7 FROM-only images, the index base, each
    // keeping its spelling(s).
    let images = nodes(&doc, "image");
    let written: BTreeSet<String> = images
        .iter()
        .flat_map(|n| {
            n.children()
                .unwrap()
                .nodes()
                .iter()
                .filter(|c| c.name().value() == "written")
                .map(|c| args(c)[0].clone())
        })
        .collect();
    for (_, text) in world::dockerfiles() {
        let from = text.lines().find(|l| l.starts_with("FROM")).unwrap();
        let image = from.split_whitespace().nth(1).unwrap();
        assert!(written.contains(image), "FROM image {image} is locked");
    }
    assert!(written.contains("icr.io/appcafe/open-liberty-devfile-stack:{{liberty-version}}"));
    assert!(images.iter().any(|n| {
        args(n)[0].starts_with("icr.io/appcafe/open-liberty-devfile-stack:")
            && !args(n)[0].contains("{{")
    }));

    // Lock again: nothing changes, and the file is not even rewritten.
    let before = std::fs::metadata(w.workspace.join("airgap.lock"))
        .unwrap()
        .modified()
        .unwrap();
    let run = airgap(&w.workspace, &["lock"]).ok();
    assert!(run.stderr.contains("unchanged"), "{}", run.stderr);
    assert_eq!(w.lock_text(), text);
    let after = std::fs::metadata(w.workspace.join("airgap.lock"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "an unchanged lockfile is not rewritten");

    // A fresh workspace (empty cache) writes byte-identical text.
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(
        w.workspace.join("airgap.kdl"),
        other.path().join("airgap.kdl"),
    )
    .unwrap();
    airgap(other.path(), &["lock"]).ok();
    assert_eq!(
        std::fs::read_to_string(other.path().join("airgap.lock")).unwrap(),
        text
    );

    // --locked agrees.
    airgap(&w.workspace, &["lock", "--locked"]).ok();
}

/// Lines of the lockfile that differ between two texts.
fn changed_lines(a: &str, b: &str) -> Vec<String> {
    let a: BTreeSet<&str> = a.lines().collect();
    let b: BTreeSet<&str> = b.lines().collect();
    a.symmetric_difference(&b).map(|s| s.to_string()).collect()
}

#[test]
fn update_moves_only_the_named_stacks_pins() {
    let mut w = World::community();
    w.write_manifest("");
    airgap(&w.workspace, &["lock"]).ok();
    let first = w.lock_text();

    // Upstream moves: the nodejs starter's remote (also a sample's remote), and another stack's.
    let nodejs_remote = "https://github.com/nodeshift-starters/devfile-sample.git";
    let angular_remote = "https://github.com/devfile-samples/devfile-stack-nodejs-angular.git";
    let new_nodejs = w.advance(nodejs_remote, "main");
    let new_angular = w.advance(angular_remote, "main");

    // Without --update, pins stay.
    airgap(&w.workspace, &["lock"]).ok();
    assert_eq!(w.lock_text(), first);

    airgap(&w.workspace, &["lock", "--update", "nodejs"]).ok();
    let second = w.lock_text();
    let changed = changed_lines(&first, &second);
    assert!(!changed.is_empty());
    for line in &changed {
        assert!(
            line.starts_with("starter \"community\" \"nodejs/"),
            "only nodejs's pins move, but this changed: {line}"
        );
    }
    assert!(second.contains(&new_nodejs.to_string()));
    assert!(!second.contains(&new_angular.to_string()));
    // The sample on the same remote keeps its pin: it is not nodejs's.
    let doc: KdlDocument = second.parse().unwrap();
    let basic = nodes(&doc, "sample")
        .into_iter()
        .find(|n| args(n)[1].starts_with("nodejs-basic"))
        .unwrap();
    assert_ne!(prop(basic, "commit").unwrap(), new_nodejs.to_string());

    // An unknown name is a usage error that suggests the near one, and changes nothing.
    let run = airgap(&w.workspace, &["lock", "--update", "nodjs"]).fails(2);
    assert!(
        run.err_text().contains("did you mean `nodejs`?"),
        "{}",
        run.stderr
    );
    assert_eq!(w.lock_text(), second);
    // A name near nothing lists the names there are, without resolution or mirror advice.
    let run = airgap(&w.workspace, &["lock", "--update", "nosuch"]).fails(2);
    assert!(
        run.err_text()
            .contains("no source, stack or sample is named `nosuch`"),
        "{}",
        run.stderr
    );
    assert!(run.err_text().contains("`community`"), "{}", run.stderr);
    assert!(!run.stderr.contains("mirror"), "{}", run.stderr);
    assert_eq!(w.lock_text(), second);

    // --update with no name moves everything that moved.
    airgap(&w.workspace, &["lock", "--update"]).ok();
    assert!(w.lock_text().contains(&new_angular.to_string()));
}

#[test]
fn resolution_errors_name_the_stack_the_starter_and_the_url_and_keep_the_lock() {
    let root = tempfile::tempdir().unwrap();
    let reg = root.path().join("registry");
    copy_dir(
        &fixtures().join("devfile-registry/stacks/go"),
        &reg.join("stacks/go"),
    );
    let mut w = World::new(&reg);
    w.write_manifest("");
    airgap(&w.workspace, &["lock"]).ok();
    let before = w.lock_text();

    // A starter's tag disappears upstream and the source moves to a devfile naming it again…
    let go_remote = "https://github.com/devfile-samples/devfile-stack-go.git";
    let path = w.remote(go_remote).path.clone();
    let repo = git2::Repository::open(&path).unwrap();
    repo.find_reference("refs/tags/v2.6.0")
        .unwrap()
        .delete()
        .unwrap();
    // …and an icon host answers 404.
    w.http
        .remove("/raw.githubusercontent.com/devfile-samples/devfile-stack-icons/main/golang.svg");
    let _ = &mut w;

    let run = airgap(&w.workspace, &["lock", "--update"]).fails(1);
    let err = &run.err_text();
    assert!(err.contains("go-starter"), "{err}");
    assert!(err.contains("stack `go` 2.6.0"), "{err}");
    assert!(err.contains(go_remote), "{err}");
    assert!(err.contains("no branch or tag `v2.6.0`"), "{err}");
    assert!(
        err.contains("golang.svg") && err.contains("HTTP 404"),
        "{err}"
    );
    assert_eq!(
        w.lock_text(),
        before,
        "a failed lock leaves the previous lockfile untouched"
    );
}

#[test]
fn locked_fails_with_help_when_the_manifest_changed() {
    let root = tempfile::tempdir().unwrap();
    let reg = root.path().join("registry");
    for s in ["go", "nodejs"] {
        copy_dir(
            &fixtures().join("devfile-registry/stacks").join(s),
            &reg.join("stacks").join(s),
        );
    }
    let w = World::new(&reg);
    w.write_manifest("");
    airgap(&w.workspace, &["lock"]).ok();
    let before = w.lock_text();
    // Narrow the source to one stack: the lock now has entries the manifest does not want.
    let manifest = std::fs::read_to_string(w.workspace.join("airgap.kdl"))
        .unwrap()
        .replace("ref=\"main\"\n", "ref=\"main\" {\n    stacks \"go\"\n}\n");
    std::fs::write(w.workspace.join("airgap.kdl"), manifest).unwrap();
    let run = airgap(&w.workspace, &["lock", "--locked"]).fails(1);
    let err = run.err_text();
    assert!(err.contains("does not satisfy"), "{err}");
    assert!(
        err.contains(
            "stack `nodejs/2.2.1` of source `community` is in the lock but no longer in the sources"
        ),
        "{err}"
    );
    assert!(err.contains("help: run `airgap lock`"), "{err}");
    assert_eq!(w.lock_text(), before);
    // A misspelt stack in the filter is a diagnostic pointing at it.
    let manifest = std::fs::read_to_string(w.workspace.join("airgap.kdl"))
        .unwrap()
        .replace("stacks \"go\"", "stacks \"golang\"");
    std::fs::write(w.workspace.join("airgap.kdl"), manifest).unwrap();
    let run = airgap(&w.workspace, &["lock"]).fails(1);
    let err = run.err_text();
    assert!(
        err.contains("source `community` has no stack `golang`"),
        "{err}"
    );
    assert!(err.contains("help: did you mean `go`?"), "{err}");
}

#[test]
fn sources_and_starters_over_a_real_git_daemon() {
    let root = tempfile::tempdir().unwrap();
    let reg = root.path().join("registry");
    copy_dir(
        &fixtures().join("devfile-registry/stacks/go"),
        &reg.join("stacks/go"),
    );
    let w = World::new(&reg);
    let daemon = git::GitDaemon::start(&w.git_root);
    // Everything on github.com through git://, icons through HTTP.
    let rules = w.mirror_rules().replace(
        &format!("file://{}/github.com/", w.git_root.display()),
        &format!("{}github.com/", daemon.url()),
    );
    std::fs::write(
        w.workspace.join("airgap.kdl"),
        format!(
            "source \"community\" git=\"https://github.com/devfile/registry\" ref=\"main\"\n{rules}{}",
            w.registry_rules()
        ),
    )
    .unwrap();
    airgap(&w.workspace, &["lock"]).ok();
    let doc: KdlDocument = w.lock_text().parse().unwrap();
    let source = nodes(&doc, "source")[0];
    assert_eq!(
        prop(source, "commit").unwrap(),
        w.source.branch("main").to_string()
    );
    let by_rev: BTreeMap<String, String> = nodes(&doc, "starter")
        .iter()
        .map(|s| (prop(s, "revision").unwrap(), prop(s, "commit").unwrap()))
        .collect();
    let remote = w.remote("https://github.com/devfile-samples/devfile-stack-go.git");
    assert_eq!(by_rev.len(), 15);
    for (rev, commit) in by_rev {
        assert_eq!(commit, remote.revisions[&rev].to_string(), "{rev}");
    }
}

#[test]
fn lockfile_round_trips_byte_for_byte() {
    let w = World::new(&{
        let root = tempfile::tempdir().unwrap().keep();
        copy_dir(
            &fixtures().join("devfile-registry/stacks/java-quarkus"),
            &root.join("stacks/java-quarkus"),
        );
        copy_dir(
            &fixtures().join("devfile-registry/stacks/java-wildfly"),
            &root.join("stacks/java-wildfly"),
        );
        root
    });
    w.write_manifest("");
    airgap(&w.workspace, &["lock"]).ok();
    let text = w.lock_text();
    let parsed = airgap::lock::read("airgap.lock", &text).unwrap();
    assert_eq!(airgap::lock::write(&parsed), text);
}

#[test]
fn lockfile_errors_are_diagnostics() {
    let dir = empty_source_workspace();
    std::fs::write(
        dir.path().join("airgap.lock"),
        "// This file is generated by airgap. Do not edit.\nversion 7\n",
    )
    .unwrap();
    let run = airgap(dir.path(), &["lock"]).fails(1);
    insta::assert_snapshot!("lock-unknown-version", run.stderr);
    std::fs::write(
        dir.path().join("airgap.lock"),
        "version 1\ntarget \"x\" naming=\"flat\"\nstack \"ours\" devfile=\"abc\"\nimgae \"x\"\n",
    )
    .unwrap();
    let run = airgap(dir.path(), &["lock"]).fails(1);
    insta::assert_snapshot!("lock-malformed", run.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("airgap.lock")).unwrap(),
        "version 1\ntarget \"x\" naming=\"flat\"\nstack \"ours\" devfile=\"abc\"\nimgae \"x\"\n",
        "a lockfile that cannot be read is left as it is"
    );
}

/// `lock --check` resolves upstream anew and writes nothing: exit 0 on a current lock; exit 1
/// listing the change after a starter's remote gets a new commit and after an image tag moves.
/// `lock --update` then prints the same changes as it writes them.
#[test]
fn check_reports_drift_without_writing_and_update_prints_it() {
    use crate::support::registry::{anonymous_client, image};
    use airgap::oci::Destination;
    use airgap::oci::naming::TargetRef;

    let mut w = World::community();
    w.write_manifest("");
    airgap(&w.workspace, &["lock"]).ok();
    let lock_path = w.workspace.join("airgap.lock");
    let first = w.lock_text();
    let mtime = || std::fs::metadata(&lock_path).unwrap().modified().unwrap();
    let before = mtime();

    let run = airgap(&w.workspace, &["lock", "--check"]).ok();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("up to date"), "{}", run.stderr);

    // A starter project's remote moves.
    let remote = "https://github.com/devfile-samples/devfile-stack-nodejs-angular.git";
    let old = w.remote(remote).revisions["main"];
    let new = w.advance(remote, "main");
    let run = airgap(&w.workspace, &["lock", "--check"]).fails(1);
    let short = |id: git2::Oid| id.to_string()[..7].to_string();
    let line = format!("{} → {}", short(old), short(new));
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("Updating starter community ") && l.ends_with(&line)),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("behind upstream"), "{}", run.stderr);

    // An image tag moves: another image pushed to the tag the lock pinned.
    let key = "registry.access.redhat.com/ubi9/go-toolset:1.25";
    let lock = airgap::lock::read("airgap.lock", &first).unwrap();
    let (pinned_key, pinned) = lock
        .images
        .iter()
        .find(|(k, _)| k.starts_with(key))
        .expect("the lock pins go-toolset:1.25");
    let old_digest = pinned.resolved.as_ref().unwrap().digest.clone();
    let replacement = image(4242, &[1000], "linux/amd64");
    let (repository, tag) = pinned_key
        .strip_prefix("registry.access.redhat.com/")
        .unwrap()
        .split_once(':')
        .unwrap();
    block_on(anonymous_client().push_image(
        &replacement.local,
        &TargetRef {
            host: w.upstream.host(),
            repository: format!("registry.access.redhat.com/{repository}"),
            tag: Some(tag.into()),
        },
        &Destination::Registry(w.upstream.access()),
    ))
    .unwrap();
    let run = airgap(&w.workspace, &["lock", "--check"]).fails(1);
    assert!(
        run.stdout.lines().any(|l| l.starts_with(&format!(
            "Updating image {pinned_key}: {}",
            &old_digest[..19]
        ))),
        "{}",
        run.stdout
    );
    // Nothing was written in any of these runs.
    assert_eq!(w.lock_text(), first);
    assert_eq!(mtime(), before);

    // --update takes the changes and says which.
    let run = airgap(&w.workspace, &["lock", "--update"]).ok();
    assert!(run.stderr.contains(&line), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("Updating image {pinned_key}")),
        "{}",
        run.stderr
    );
    airgap(&w.workspace, &["lock", "--check"]).ok();

    // Contradicting flags are a usage error: exit 2.
    airgap(&w.workspace, &["lock", "--check", "--locked"]).fails(2);
    airgap(&w.workspace, &["lock", "--update", "--locked"]).fails(2);
}

/// `plan` and `apply --dry-run` on a lock the manifest no longer matches resolve it in memory,
/// print what would change and the plan, and write nothing; `apply --locked` still refuses.
#[test]
fn plan_and_dry_run_preview_an_outdated_lock_without_writing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("qs");
    crate::quickstart::fresh_example(&ws);
    airgap(&ws, &["lock"]).ok();
    crate::quickstart::only_stacks(&ws, &["hello-go"]);
    let lock = std::fs::read(ws.join("airgap.lock")).unwrap();
    for args in [&["plan"][..], &["apply", "--dry-run"]] {
        let run = airgap(&ws, args).ok();
        assert!(
            run.stderr.contains("Removing stack quickstart hello-node"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.contains("stale"), "{args:?}: {}", run.stdout);
        assert!(
            !run.stdout.contains("hello-node"),
            "{args:?}: {}",
            run.stdout
        );
        assert_eq!(std::fs::read(ws.join("airgap.lock")).unwrap(), lock);
        assert!(!ws.join("out").exists());
    }
    let run = airgap(&ws, &["apply", "--locked"]).fails(1);
    assert!(run.err_text().contains("airgap lock"), "{}", run.stderr);
    assert_eq!(std::fs::read(ws.join("airgap.lock")).unwrap(), lock);
}
