//! A no-op `apply` (the lock present and everything fresh) asks no upstream anything: no
//! request reaches the image registry or the file server standing in for upstream, counted at
//! those servers. Only the target is asked (one HEAD per image at a registry target).

use crate::support::registry::{FaultProxy, TestRegistry};
use crate::support::world::World;
use crate::support::*;

#[test]
fn a_no_op_apply_sends_no_request_upstream() {
    let w = World::community();
    let target = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Every upstream registry request goes through a recording proxy.
    let upstream = rt.block_on(FaultProxy::start(&w.upstream.host()));
    let rules = w
        .registry_rules()
        .replace(&w.upstream.host(), &upstream.host());
    std::fs::write(
        w.workspace.join("airgap.kdl"),
        format!(
            "target \"{}/devfiles\" tls=\"plain-http\"\nsource \"community\" git=\"https://github.com/devfile/registry\" ref=\"main\" {{\n    stacks \"go\" \"java-springboot\" \"nodejs\"\n}}\n{}{rules}",
            target.host(),
            w.mirror_rules(),
        ),
    )
    .unwrap();
    airgap(&w.workspace, &["apply"]).ok();
    // The cold apply did read upstream: the counters below can see traffic.
    assert!(!upstream.seen().is_empty());
    assert!(w.http.requests() > 0);

    upstream.clear_seen();
    let files_before = w.http.requests();
    let run = airgap(&w.workspace, &["apply", "--locked"]).ok();
    assert!(run.stderr.contains(" 0 ran"), "{}", run.stderr);
    let seen: Vec<String> = upstream
        .seen()
        .iter()
        .map(|s| format!("{} {}", s.method, s.path_and_query))
        .collect();
    assert!(seen.is_empty(), "upstream registry asked: {seen:?}");
    assert_eq!(w.http.requests(), files_before, "the file server was asked");
}

/// The community world with a manifest that keeps only `stacks` of its source: the world, the
/// manifest's path and its text.
fn community_with_stacks(stacks: &[&str]) -> (World, std::path::PathBuf, String) {
    let w = World::community();
    w.write_manifest("");
    let manifest = w.workspace.join("airgap.kdl");
    let names: Vec<String> = stacks.iter().map(|s| format!("\"{s}\"")).collect();
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "ref=\"main\"\n",
        &format!("ref=\"main\" {{\n    stacks {}\n}}\n", names.join(" ")),
    );
    std::fs::write(&manifest, &text).unwrap();
    (w, manifest, text)
}

/// Makes nothing a check of the lock needs reachable: the git cache removed and the remotes
/// moved away (to the returned folder, from where a test can move them back).
fn cut_off_git(w: &World) -> std::path::PathBuf {
    std::fs::remove_dir_all(w.workspace.join(".airgap/cache/git")).unwrap();
    let away = w.dir.path().join("git-away");
    std::fs::rename(&w.git_root, &away).unwrap();
    away
}

/// The check that the lock satisfies the manifest reads every devfile at its locked commit;
/// once it passed, it is stamped and skipped while the manifest, the lock and the binary are
/// the stamped ones. Seen from outside: with the git cache gone and the remote unreachable,
/// `plan` still works under the stamp, and fails as soon as either text changes.
#[test]
fn a_passed_lock_check_is_skipped_until_the_manifest_or_the_lock_changes() {
    let (w, manifest, text) = community_with_stacks(&["go"]);
    airgap(&w.workspace, &["lock"]).ok();
    airgap(&w.workspace, &["plan"]).ok();
    assert!(w.workspace.join(".airgap/lock-satisfied").is_file());

    let away = cut_off_git(&w);

    airgap(&w.workspace, &["plan"]).ok();

    std::fs::write(&manifest, format!("{text}// a comment changes the text\n")).unwrap();
    let run = airgap(&w.workspace, &["plan"]);
    assert!(
        !run.success(),
        "the changed manifest is checked: {}",
        run.stderr
    );

    std::fs::write(&manifest, &text).unwrap();
    airgap(&w.workspace, &["plan"]).ok();

    let lock = w.lock_text();
    std::fs::write(w.workspace.join("airgap.lock"), format!("{lock}// noted\n")).unwrap();
    let run = airgap(&w.workspace, &["plan"]);
    assert!(
        !run.success(),
        "the changed lock is checked: {}",
        run.stderr
    );

    std::fs::rename(&away, &w.git_root).unwrap();
    airgap(&w.workspace, &["plan"]).ok();
}

/// A lock that `airgap lock` just resolved satisfies the manifest by construction: it is
/// stamped as such, so the next command does not check it again (the check reads every devfile
/// at its locked commit). Seen from outside: with the git cache gone and the remote
/// unreachable right after `lock`, `plan` still succeeds.
#[test]
fn a_lock_just_resolved_is_not_checked_again() {
    let (w, _, _) = community_with_stacks(&["go"]);
    airgap(&w.workspace, &["lock"]).ok();
    assert!(w.workspace.join(".airgap/lock-satisfied").is_file());

    let _away = cut_off_git(&w);
    airgap(&w.workspace, &["plan"]).ok();

    // The check itself still runs when the stamp does not match: it needs the remote.
    std::fs::remove_file(w.workspace.join(".airgap/lock-satisfied")).unwrap();
    let run = airgap(&w.workspace, &["plan"]);
    assert!(
        !run.success(),
        "without the stamp the lock is checked: {}",
        run.stderr
    );
}

/// A no-op `apply` writes nothing in the workspace: the state file is not rewritten (it is
/// megabytes at a few hundred stacks), nor the lock's parse cache once it is there.
#[test]
fn a_no_op_apply_rewrites_neither_the_state_nor_the_lock_cache() {
    use std::os::unix::fs::MetadataExt;
    let (w, _, _) = community_with_stacks(&["go", "nodejs"]);
    airgap(&w.workspace, &["apply"]).ok();
    airgap(&w.workspace, &["apply", "--locked"]).ok();
    let identity = |name: &str| {
        let m = std::fs::metadata(w.workspace.join(".airgap").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        (m.ino(), m.mtime(), m.mtime_nsec(), m.len())
    };
    let state = identity("state.json");
    let cache = identity("lock.parsed");
    let run = airgap(&w.workspace, &["apply", "--locked"]).ok();
    assert!(run.stderr.contains(" 0 ran"), "{}", run.stderr);
    assert_eq!(identity("state.json"), state, "state.json was rewritten");
    assert_eq!(
        identity("lock.parsed"),
        cache,
        "the lock cache was rewritten"
    );
    assert!(!w.workspace.join(".airgap/state.journal").exists());

    // A step that runs is recorded: the state is written again.
    std::fs::remove_dir_all(w.workspace.join("out/registry/stacks/go")).unwrap();
    let run = airgap(&w.workspace, &["apply", "--locked"]).ok();
    assert!(!run.stderr.contains(" 0 ran"), "{}", run.stderr);
    assert_ne!(identity("state.json"), state, "state.json was not written");
}

/// The lock's parse cache (`.airgap/lock.parsed`) holds the parsed lock of every entry kind,
/// is what a read under the same text returns, and is ignored once the text changes.
#[test]
fn the_lock_cache_is_the_parsed_lock_and_follows_the_text() {
    let w = World::community();
    w.write_manifest(crate::deploy::PLAIN);
    airgap(&w.workspace, &["lock"]).ok();
    let text = w.lock_text();
    for kind in [
        "\nstack ",
        "\nsample ",
        "\nstarter ",
        "\ndownload ",
        "\nimage ",
        "\ndeploy ",
    ] {
        assert!(text.contains(kind), "no `{kind}` entry in the lock");
    }
    let parsed = airgap::lock::read("airgap.lock", &text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("lock.parsed");
    let read = |text: &str| airgap::lock::cache::read("airgap.lock", text, &cache).unwrap();
    assert_eq!(read(&text), parsed, "a miss parses");
    assert!(cache.is_file(), "a parse is cached");
    assert_eq!(read(&text), parsed, "the cache holds the parsed value");

    // The cache is what is read: a value planted under this text's key comes back…
    let (go_key, go) = parsed
        .stacks
        .iter()
        .find(|((_, id), _)| id.starts_with("go"))
        .expect("a go stack");
    let cached = std::fs::read_to_string(&cache).unwrap();
    assert!(cached.contains(&go.devfile));
    std::fs::write(&cache, cached.replace(&go.devfile, &"0".repeat(64))).unwrap();
    assert_eq!(read(&text).stacks[go_key].devfile, "0".repeat(64));
    // …and a changed text is parsed again.
    let changed = format!("{text}// noted\n");
    assert_eq!(read(&changed), parsed);
    assert_eq!(read(&changed).stacks[go_key].devfile, go.devfile);
}

/// Requests by method and kind (`GET /v2/` pings, token fetches, manifests, blob checks and
/// downloads, upload sessions, uploads, mounts), counted.
fn census(seen: &[crate::support::registry::Seen]) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for s in seen {
        let path = s.path_and_query.as_str();
        let kind = if path == "/v2/" {
            "ping"
        } else if path.starts_with("/token") {
            "token"
        } else if path.contains("/manifests/") {
            "manifest"
        } else if path.contains("mount=") {
            "mount"
        } else if path.contains("/blobs/uploads/") && s.method == "POST" {
            "upload-session"
        } else if path.contains("/blobs/uploads/") {
            "upload"
        } else {
            "blob"
        };
        *out.entry(format!("{} {kind}", s.method)).or_default() += 1;
    }
    out
}

/// How many requests a registry-to-registry apply sends per image, cold and as a no-op,
/// counted at proxies in front of the upstream and the target. A ping (`GET /v2/`) before each
/// request to an anonymous host would double them; the no-op asks the target once per image.
#[test]
fn requests_per_image_cold_and_no_op() {
    let w = World::community();
    let target = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(FaultProxy::start(&w.upstream.host()));
    let at_target = rt.block_on(FaultProxy::start(&target.host()));
    let rules = w
        .registry_rules()
        .replace(&w.upstream.host(), &upstream.host());
    std::fs::write(
        w.workspace.join("airgap.kdl"),
        format!(
            "target \"{}/devfiles\" tls=\"plain-http\"\nsource \"community\" git=\"https://github.com/devfile/registry\" ref=\"main\" {{\n    stacks \"go\" \"java-springboot\" \"nodejs\"\n}}\n{}{rules}",
            at_target.host(),
            w.mirror_rules(),
        ),
    )
    .unwrap();
    airgap(&w.workspace, &["lock"]).ok();
    upstream.clear_seen();
    airgap(&w.workspace, &["apply", "--locked"]).ok();
    let images = at_target
        .seen()
        .iter()
        .filter(|s| s.method == "PUT" && s.path_and_query.contains("/manifests/"))
        .count();
    let cold_up = census(&upstream.seen());
    let cold_seen = at_target.seen();
    let cold_target = census(&cold_seen);
    // Manifests the cold run read from the (empty) target and found: a presence check of an
    // image not there yet answers 404.
    let found = cold_seen
        .iter()
        .filter(|s| {
            s.method == "GET" && s.path_and_query.contains("/manifests/") && s.status == 200
        })
        .count();
    upstream.clear_seen();
    at_target.clear_seen();
    let noop = airgap(&w.workspace, &["apply", "--locked"]).ok();
    assert!(noop.stderr.contains(" 0 ran"), "{}", noop.stderr);
    let noop_target = census(&at_target.seen());
    let context = format!(
        "{images} manifests pushed, {found} read back\ncold upstream: {cold_up:?}\ncold target: {cold_target:?}\nno-op target: {noop_target:?}"
    );
    // One `GET /v2/` per host and run (to learn whether it hands out tokens), not one per
    // request.
    for census in [&cold_up, &cold_target, &noop_target] {
        assert!(
            census.get("GET ping").copied().unwrap_or(0) <= 1,
            "{context}"
        );
    }
    // An image step does not read back the manifest it pushed (the copy hands it over): the
    // one manifest the cold run finds at the target is the devfile-index base, which the
    // devfile-index step reads after another step mirrored it.
    assert!(found <= 1, "{context}");
    // The no-op asks the target for each image's manifest, and nothing else.
    let asked: usize = noop_target.values().sum();
    let manifests = noop_target.get("GET manifest").copied().unwrap_or(0);
    assert!(asked <= manifests + 1, "{context}");
    assert!(manifests <= images, "{context}");
}
