//! A lock that changes one source touches only that source: a manifest change to source `a`,
//! or `lock --update` naming `a` or its stack, sends no request to source `b`'s git remotes,
//! file server or image repository (counted at those servers), and leaves `b`'s lock entries
//! as they were.
//!
//! Two sources on one smart-HTTP git server (each with a stack whose starter project is a
//! repository of its own there), a file server per source for the icons, and one
//! `docker-registry` behind a recording proxy for the images.

use std::collections::BTreeMap;

use crate::support::git::{GitHttp, Repo};
use crate::support::http::HttpServer;
use crate::support::registry::{self as reg, FaultProxy, TestRegistry};
use crate::support::*;

const USER: &str = "locker";
const PASSWORD: &str = "scope-pw";

fn devfile(stack: &str, image_tag: &str) -> String {
    format!(
        "schemaVersion: 2.2.0\nmetadata:\n  name: {stack}\n  version: 1.0.0\n  icon: https://files-{stack}.example/{stack}.svg\nstarterProjects:\n  - name: {stack}-starter\n    git:\n      remotes:\n        origin: https://git.example/{stack}-starter.git\ncomponents:\n  - name: runtime\n    container:\n      image: docker.io/library/{stack}:{image_tag}\n"
    )
}

struct TwoSources {
    _root: tempfile::TempDir,
    git: GitHttp,
    files: BTreeMap<&'static str, HttpServer>,
    proxy: FaultProxy,
    _registry: TestRegistry,
    _rt: tokio::runtime::Runtime,
    a: Repo,
    workspace: std::path::PathBuf,
}

impl TwoSources {
    /// Source `a` holds stack `alpha`, source `b` stack `beta`.
    fn new() -> TwoSources {
        let root = tempfile::tempdir().unwrap();
        let git_base = root.path().join("git");
        let mut repos = BTreeMap::new();
        for (source, stack) in [("a", "alpha"), ("b", "beta")] {
            let mut repo = Repo::init_bare(&git_base.join(format!("{source}.git")));
            let text = devfile(stack, "1");
            let path = format!("stacks/{stack}/devfile.yaml");
            let commit = repo.commit(None, &[(&path, text.as_bytes())], "the stack");
            repo.set_branch("main", commit);
            repos.insert(source, repo);
            let mut starter = Repo::init_bare(&git_base.join(format!("{stack}-starter.git")));
            let commit = starter.commit(None, &[("main.go", b"package main\n")], "starter");
            starter.set_branch("main", commit);
        }
        let git = GitHttp::start(&git_base, USER, PASSWORD);
        let mut files = BTreeMap::new();
        for stack in ["alpha", "beta"] {
            let server = HttpServer::start();
            server.put(
                &format!("/files-{stack}.example/{stack}.svg"),
                format!("<svg>{stack}</svg>").into_bytes(),
            );
            files.insert(stack, server);
        }
        let registry = TestRegistry::start();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let proxy = rt.block_on(FaultProxy::start(&registry.host()));
        let client = reg::anonymous_client();
        let dest = airgap::oci::Destination::Registry(registry.access());
        block_on(async {
            let images = [
                ("docker.io/library/alpha", "1"),
                ("docker.io/library/alpha", "2"),
                ("docker.io/library/beta", "1"),
                ("quay.io/devfile/devfile-index-base", "next"),
            ];
            for (seed, (repository, tag)) in images.into_iter().enumerate() {
                let img = reg::image(seed as u64 + 1, &[300], "linux/amd64");
                let target = airgap::oci::naming::TargetRef {
                    host: registry.host(),
                    repository: repository.to_string(),
                    tag: Some(tag.to_string()),
                };
                client.push_image(&img.local, &target, &dest).await.unwrap();
            }
        });
        let workspace = root.path().join("workspace");
        std::fs::create_dir_all(&workspace).unwrap();
        let a = repos.remove("a").unwrap();
        let world = TwoSources {
            _root: root,
            git,
            files,
            proxy,
            _registry: registry,
            _rt: rt,
            a,
            workspace,
        };
        world.write_manifest("main");
        world
    }

    /// The manifest, with source `a` at `a_ref`.
    fn write_manifest(&self, a_ref: &str) {
        let mut text = format!(
            "target \"dir:out\"\nsource \"a\" git=\"https://git.example/a.git\" ref=\"{a_ref}\"\nsource \"b\" git=\"https://git.example/b.git\" ref=\"main\"\nurl-mirror \"https://git.example/\" to=\"http://{USER}:{PASSWORD}@{}/\"\nregistry-mirror \"docker.io\" to=\"{}/docker.io\" tls=\"plain-http\"\nregistry-mirror \"quay.io\" to=\"{}/quay.io\" tls=\"plain-http\"\n",
            self.git.host(),
            self.proxy.host(),
            self.proxy.host(),
        );
        for (stack, server) in &self.files {
            text.push_str(&format!(
                "url-mirror \"https://files-{stack}.example/\" to=\"{}/files-{stack}.example/\"\n",
                server.base()
            ));
        }
        std::fs::write(self.workspace.join("airgap.kdl"), text).unwrap();
    }

    /// Requests that reached `b`'s servers: its git repositories, its file server, its
    /// image repository.
    fn requests_for_b(&self) -> (usize, usize, usize) {
        (
            self.git.requests("/b.git/") + self.git.requests("/beta-starter.git/"),
            self.files["beta"].requests(),
            self.proxy
                .seen()
                .iter()
                .filter(|s| s.path_and_query.contains("library/beta"))
                .count(),
        )
    }

    fn requests_for_a(&self) -> usize {
        self.git.requests("/a.git/") + self.git.requests("/alpha-starter.git/")
    }

    fn lock(&self) -> airgap::lock::Lockfile {
        let text = std::fs::read_to_string(self.workspace.join("airgap.lock")).unwrap();
        airgap::lock::read("airgap.lock", &text).unwrap()
    }
}

/// Source `b`'s entries of a lock, in its own text form: the source, its stack, its starter
/// project, its icon and its image.
fn entries_of_b(lock: &airgap::lock::Lockfile) -> String {
    let mut out = format!("{:?}\n", lock.sources.get("b"));
    for (k, v) in lock.stacks.iter().filter(|(k, _)| k.0 == "b") {
        out.push_str(&format!("{k:?} {v:?}\n"));
    }
    for (k, v) in lock.projects.iter().filter(|(k, _)| k.source == "b") {
        out.push_str(&format!("{k:?} {v:?}\n"));
    }
    for (k, v) in lock.downloads.iter().filter(|(k, _)| k.contains("beta")) {
        out.push_str(&format!("{k} {v:?}\n"));
    }
    for (k, v) in lock.images.iter().filter(|(k, _)| k.contains("beta")) {
        out.push_str(&format!("{k} {v:?}\n"));
    }
    out
}

/// Runs `airgap args` and checks that `b` was not asked anything and its entries stayed,
/// while `a` was asked (so the counters can see traffic).
#[track_caller]
fn relock_touches_only_a(w: &TwoSources, args: &[&str]) -> Run {
    let before = entries_of_b(&w.lock());
    let b_before = w.requests_for_b();
    let a_before = w.requests_for_a();
    let run = airgap(&w.workspace, args).ok();
    assert_eq!(
        w.requests_for_b(),
        b_before,
        "`airgap {}` asked source b's servers (git, files, images)",
        args.join(" ")
    );
    assert!(
        w.requests_for_a() > a_before,
        "`airgap {}` did not ask source a's git server",
        args.join(" ")
    );
    assert_eq!(entries_of_b(&w.lock()), before, "b's entries changed");
    run
}

#[test]
fn a_lock_that_changes_one_source_touches_only_that_source() {
    let mut w = TwoSources::new();
    airgap(&w.workspace, &["lock"]).ok();
    let (git_b, files_b, images_b) = w.requests_for_b();
    assert!(
        git_b > 0 && files_b > 0 && images_b > 0,
        "the first lock asked b"
    );
    let b_entries = entries_of_b(&w.lock());
    assert!(b_entries.contains("beta-starter") && b_entries.contains("library/beta:1"));

    // Source a's ref moves to a branch where its stack uses another image.
    let main = w.a.branch("main");
    let next = w.a.amend_file(
        main,
        "stacks/alpha/devfile.yaml",
        devfile("alpha", "2").as_bytes(),
        "alpha 2",
    );
    w.a.set_branch("next", next);
    w.write_manifest("next");
    relock_touches_only_a(&w, &["lock"]);
    let lock = w.lock();
    assert!(lock.images.contains_key("docker.io/library/alpha:2"));
    assert!(!lock.images.contains_key("docker.io/library/alpha:1"));

    // `--update` naming a's stack, then a itself.
    relock_touches_only_a(&w, &["lock", "--update", "alpha"]);
    relock_touches_only_a(&w, &["lock", "--update", "a"]);
}

/// The counters can fail: `--update` of everything asks b too.
#[test]
fn a_lock_update_of_everything_asks_every_source() {
    let w = TwoSources::new();
    airgap(&w.workspace, &["lock"]).ok();
    let before = w.requests_for_b();
    airgap(&w.workspace, &["lock", "--update"]).ok();
    let after = w.requests_for_b();
    assert!(after.0 > before.0, "b's git remotes were not asked");
    assert!(after.2 > before.2, "b's image was not asked");
}
