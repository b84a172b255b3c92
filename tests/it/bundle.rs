//! Sneakernet: `airgap apply --bundle DIR` writes what a registry target would receive into a
//! folder, and `airgap push DIR` uploads it, checked, resumable, under the names the bundle
//! carries.
//!
//! The world: the quickstart (its images from the committed OCI layout, one of them on two
//! platforms) plus one image included from an upstream `docker-registry`, built for a target
//! registry named `localhost:PORT/devfiles`; pushes go to the same registry as
//! `127.0.0.1:PORT`, directly or through a fault-injecting proxy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use airgap::oci::Destination;
use airgap::oci::digest::Digest;
use airgap::oci::layout::{REF_NAME, REPOSITORY};
use airgap::oci::naming::TargetRef;

use crate::quickstart::fresh_example;
use crate::support::registry::{
    FaultKind, FaultProxy, TestRegistry, anonymous_client, image, skopeo, try_skopeo,
};
use crate::support::*;

pub(crate) struct World {
    _tmp: tempfile::TempDir,
    pub(crate) ws: PathBuf,
    pub(crate) bundle: PathBuf,
    _upstream: TestRegistry,
    pub(crate) target: TestRegistry,
}

impl World {
    /// The quickstart for a registry target (`localhost:PORT/devfiles`, plain HTTP), with
    /// `docker.io/airgap-test/extra:1` served by an upstream registry and included.
    pub(crate) fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        fresh_example(&ws);
        let upstream = TestRegistry::start();
        let target = TestRegistry::start();
        block_on(async {
            let client = anonymous_client();
            let extra = image(7, &[1200, 900], "linux/amd64");
            let to = TargetRef {
                host: upstream.host(),
                repository: "airgap-test/extra".into(),
                tag: Some("1".into()),
            };
            client
                .push_image(&extra.local, &to, &Destination::Registry(upstream.access()))
                .await
                .unwrap();
        });
        let manifest = std::fs::read_to_string(ws.join("airgap.kdl")).unwrap();
        let manifest = manifest.replace(
            "target \"dir:out\"",
            &format!(
                "target \"localhost:{}/devfiles\" tls=\"plain-http\"",
                target.port
            ),
        );
        assert!(
            manifest.contains("localhost:"),
            "the quickstart's target moved"
        );
        let manifest = format!(
            "{manifest}\nregistry-mirror \"docker.io\" to=\"{}\" tls=\"plain-http\"\n\
             images {{\n    include \"docker.io/airgap-test/extra:1\"\n}}\n",
            upstream.host()
        );
        std::fs::write(ws.join("airgap.kdl"), manifest).unwrap();
        World {
            bundle: tmp.path().join("bundle"),
            _tmp: tmp,
            ws,
            _upstream: upstream,
            target,
        }
    }

    pub(crate) fn airgap(&self, args: &[&str]) -> Run {
        airgap(&self.ws, args)
    }

    fn apply_bundle(&self) -> Run {
        self.airgap(&["apply", "--bundle", "../bundle"]).ok()
    }

    pub(crate) fn push(&self, extra: &[&str]) -> Run {
        let mut args = vec!["push", "../bundle"];
        args.extend_from_slice(extra);
        self.airgap(&args)
    }

    /// `127.0.0.1:PORT`: the target registry under another name than the bundle's.
    fn target_ip(&self) -> String {
        self.target.host()
    }

    /// Lock image → (repository at the target, tag, digest).
    pub(crate) fn locked_images(&self) -> Vec<(String, String, Digest)> {
        let text = std::fs::read_to_string(self.ws.join("airgap.lock")).unwrap();
        let lock = airgap::lock::read("airgap.lock", &text).unwrap();
        let prefix = format!("localhost:{}/", self.target.port);
        lock.images
            .values()
            .map(|entry| {
                let rest = entry
                    .target
                    .strip_prefix(&prefix)
                    .unwrap_or_else(|| panic!("{} is under {prefix}", entry.target));
                let (repository, tag) = rest.rsplit_once(':').unwrap();
                let digest = entry.resolved.as_ref().unwrap().digest.parse().unwrap();
                (repository.to_owned(), tag.to_owned(), digest)
            })
            .collect()
    }

    /// The digest of `repository:tag` at the target registry, if it is tagged there.
    pub(crate) fn at_target(&self, repository: &str, tag: &str) -> Option<Digest> {
        try_skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/{repository}:{tag}", self.target_ip()),
        ])
        .ok()
        .map(|raw| Digest::of(&raw))
    }

    fn catalog(&self) -> Vec<String> {
        let body: serde_json::Value = crate::support::http()
            .get(format!("http://{}/v2/_catalog", self.target_ip()))
            .send()
            .unwrap()
            .json()
            .unwrap();
        body["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    }

    /// How many images the bundle's layout lists.
    fn bundle_images(&self) -> usize {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.bundle.join("index.json")).unwrap())
                .unwrap();
        index["manifests"].as_array().unwrap().len()
    }

    /// Every blob the bundle's images name (configs and layers; not manifests).
    fn bundle_blobs(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.bundle.join("index.json")).unwrap())
                .unwrap();
        let mut pending: Vec<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_owned())
            .collect();
        while let Some(digest) = pending.pop() {
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(self.blob(&digest)).unwrap()).unwrap();
            if let Some(children) = m["manifests"].as_array() {
                pending.extend(
                    children
                        .iter()
                        .map(|c| c["digest"].as_str().unwrap().into()),
                );
            } else {
                out.insert(m["config"]["digest"].as_str().unwrap().into());
                for l in m["layers"].as_array().unwrap() {
                    out.insert(l["digest"].as_str().unwrap().into());
                }
            }
        }
        out
    }

    fn blob(&self, digest: &str) -> PathBuf {
        self.bundle
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// The first layer of go-toolset's first platform in the bundle.
    fn go_toolset_layer(&self) -> PathBuf {
        let raw = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:devfiles/go-toolset:1.22", self.bundle.display()),
        ]);
        let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let child = index["manifests"][0]["digest"].as_str().unwrap();
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.blob(child)).unwrap()).unwrap();
        self.blob(m["layers"][0]["digest"].as_str().unwrap())
    }
}

/// The summary line of a push.
fn summary(run: &Run) -> &str {
    run.stderr
        .lines()
        .rfind(|l| l.trim_start().starts_with("Pushed") || l.trim_start().starts_with("Failed"))
        .unwrap_or_else(|| panic!("no summary line:\n{}", run.stderr))
}

#[test]
fn a_bundle_pushed_lands_the_locked_digests_under_the_names_it_carries() {
    let w = World::new();
    let applied = w.apply_bundle();
    assert!(applied.stderr.contains("Bundled"), "{}", applied.stderr);
    // A bundle is a layout: its images are written there, not sent to the registry it is for.
    assert!(
        applied.stderr.contains("blobs written") && !applied.stderr.contains(" sent"),
        "{}",
        applied.stderr
    );

    // The bundle: a layout whose names carry the target's path, the registry tree, and the
    // registry it is for (no credentials: there are none to record here, and no field for
    // them).
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.bundle.join("airgap-bundle.json")).unwrap())
            .unwrap();
    let mut recorded = info["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["repository"].as_str().unwrap(),
                i["tag"].as_str().unwrap(),
            )
        })
        .collect::<Vec<_>>();
    recorded.sort();
    let mut info = info.clone();
    info.as_object_mut().unwrap().remove("images");
    assert_eq!(
        info,
        serde_json::json!({
            "version": 2,
            "registry": format!("localhost:{}", w.target.port),
            "path": "devfiles",
            "tls": "plain-http",
        })
    );
    assert!(w.bundle.join("registry/index.json").is_file());
    let devfile =
        std::fs::read_to_string(w.bundle.join("registry/stacks/hello-go/devfile.yaml")).unwrap();
    assert!(
        devfile.contains(&format!(
            "image: localhost:{}/devfiles/go-toolset:1.22@sha256:",
            w.target.port
        )),
        "{devfile}"
    );
    let locked = w.locked_images();
    assert_eq!(locked.len(), 6);
    for (repository, tag, digest) in &locked {
        assert!(repository.starts_with("devfiles/"), "{repository}");
        let raw = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{repository}:{tag}", w.bundle.display()),
        ]);
        assert_eq!(
            &Digest::of(&raw),
            digest,
            "{repository}:{tag} in the bundle"
        );
    }
    // Nothing went to the registry, and the workspace's own output root was not used.
    assert!(w.catalog().is_empty());
    assert!(!w.ws.join(".airgap/build").exists());

    // The bundle's state is its own: the registry target has everything still to do.
    let target_plan = w.airgap(&["plan", "--stale"]).ok();
    assert!(
        target_plan
            .stdout
            .contains("stale  image quay.io/airgap-example/go-toolset:1.22: never built"),
        "{}",
        target_plan.stdout
    );
    let bundle_plan = w.airgap(&["plan", "--bundle", "../bundle"]).ok();
    assert!(
        bundle_plan.stdout.contains(" 0 stale"),
        "{}",
        bundle_plan.stdout
    );

    // Applying into it again has nothing to do, and leaves it complete.
    let again = w.apply_bundle();
    assert!(again.stderr.contains(" 0 ran"), "{}", again.stderr);
    assert!(w.bundle.join("airgap-bundle.json").is_file());

    // Pushed to the same registry by another name: the names are the bundle's.
    let pushed = w.push(&["--to", &w.target_ip()]).ok();
    // Every image of the bundle's layout: the lock's, the devfile-index image, the stack
    // artifacts; each one the bundle records.
    let n = w.bundle_images();
    assert_eq!(recorded.len(), n);
    assert!(
        summary(&pushed).contains(&format!("{n} images"))
            && summary(&pushed).contains(&format!("{n} pushed"))
            && summary(&pushed).contains("blobs sent"),
        "{}",
        pushed.stderr
    );
    for (repository, tag, digest) in &locked {
        assert_eq!(
            w.at_target(repository, tag).as_ref(),
            Some(digest),
            "{repository}:{tag} at the target"
        );
    }
    assert!(w.at_target("devfiles/devfile-index", "latest").is_some());
    let mut catalog = w.catalog();
    catalog.sort();
    assert_eq!(
        catalog,
        [
            "devfiles/devfile-catalog/hello-go",
            "devfiles/devfile-catalog/hello-node",
            "devfiles/devfile-index",
            "devfiles/devfile-index-base",
            "devfiles/extra",
            "devfiles/go-toolset",
            "devfiles/nodejs",
            "devfiles/runtime"
        ]
    );

    // Again: nothing to send.
    let again = w.push(&["--to", &w.target_ip()]).ok();
    assert!(
        summary(&again).contains(&format!("0 pushed, {n} already there"))
            && summary(&again).ends_with("already there; no blobs sent"),
        "{}",
        again.stderr
    );
}

#[test]
fn an_interrupted_push_resumes_with_only_what_is_missing() {
    let w = World::new();
    w.apply_bundle();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let proxy = rt.block_on(FaultProxy::start(&w.target_ip()));
    // The first upload of a go-toolset blob is refused: that image stops, the others land.
    proxy.fault(
        "PUT",
        "/v2/devfiles/go-toolset/blobs/uploads/",
        FaultKind::Status(400),
        1,
    );
    let first = w.push(&["--to", &proxy.host()]).fails(1);
    assert_eq!(proxy.fired("/v2/devfiles/go-toolset/blobs/uploads/"), 1);
    assert!(
        first.err_text().contains(&format!(
            "1 of {} images could not be pushed",
            w.bundle_images()
        )) && first.err_text().contains("devfiles/go-toolset:1.22"),
        "{}",
        first.stderr
    );
    assert_eq!(w.at_target("devfiles/go-toolset", "1.22"), None);
    assert!(w.at_target("devfiles/nodejs", "20").is_some());

    let second = w.push(&["--to", &proxy.host()]).ok();
    assert!(
        summary(&second).contains(&format!(
            "1 pushed, {} already there",
            w.bundle_images() - 1
        )),
        "{}",
        second.stderr
    );
    // Across both runs each blob was sent once: the second run sent only what was missing.
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    for s in proxy.seen() {
        if s.method == "PUT" && s.status == 201 && s.path_and_query.contains("/blobs/uploads/") {
            let digest = s
                .path_and_query
                .split("digest=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .replace("%3A", ":");
            *sent.entry(digest).or_default() += 1;
        }
    }
    assert!(sent.values().all(|n| *n == 1), "{sent:?}");
    assert_eq!(
        sent.keys().cloned().collect::<BTreeSet<_>>(),
        w.bundle_blobs()
    );
    for (repository, tag, digest) in w.locked_images() {
        assert_eq!(w.at_target(&repository, &tag), Some(digest));
    }
}

#[test]
fn a_corrupted_blob_is_refused_by_name_and_its_image_is_not_tagged() {
    let w = World::new();
    w.apply_bundle();
    // Same size, different content: only hashing finds it.
    let layer = w.go_toolset_layer();
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&layer, &bytes).unwrap();

    let run = w.push(&["--to", &w.target_ip()]).fails(1);
    // The file as the command line named the bundle (the spaces where the diagnostic's
    // lines were wrapped taken out).
    let hex = layer.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        run.err_text()
            .replace(' ', "")
            .contains(&format!("`../bundle/blobs/sha256/{hex}`doesnotmatch")),
        "{}",
        run.stderr
    );
    assert!(
        run.err_text().contains("devfiles/go-toolset:1.22"),
        "{}",
        run.stderr
    );
    assert_eq!(w.at_target("devfiles/go-toolset", "1.22"), None);
    let blob = crate::support::http()
        .head(format!(
            "http://{}/v2/devfiles/go-toolset/blobs/sha256:{hex}",
            w.target_ip()
        ))
        .send()
        .unwrap();
    assert_eq!(blob.status().as_u16(), 404, "the bad blob never completed");
    // Images that do not name it landed.
    assert!(w.at_target("devfiles/runtime", "1.0").is_some());
}

#[test]
fn a_truncated_bundle_is_refused_before_anything_is_sent() {
    let w = World::new();
    w.apply_bundle();
    let layer = w.go_toolset_layer();
    let bytes = std::fs::read(&layer).unwrap();
    std::fs::write(&layer, &bytes[..bytes.len() / 2]).unwrap();

    let run = w.push(&["--to", &w.target_ip()]).fails(1);
    let err = run.err_text();
    let hex = layer.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        err.contains("damaged or incomplete")
            && err.contains("devfiles/go-toolset:1.22")
            && err.contains(&hex)
            && err.contains("nothing was pushed"),
        "{err}"
    );
    assert!(w.catalog().is_empty());
}

#[test]
fn bundles_are_refused_where_they_make_no_sense() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    fresh_example(&ws);
    // A `dir:` target is already a folder.
    let run = airgap(&ws, &["apply", "--bundle", "../b"]).fails(1);
    assert!(
        run.err_text()
            .contains("`--bundle` builds for a registry target"),
        "{}",
        run.stderr
    );
    assert!(!tmp.path().join("b").exists());

    let text = std::fs::read_to_string(ws.join("airgap.kdl"))
        .unwrap()
        .replace(
            "target \"dir:out\"",
            "target \"registry.internal:5000/devfiles\"",
        );
    std::fs::write(ws.join("airgap.kdl"), text).unwrap();
    // A folder with other things in it is not written into.
    let other = tmp.path().join("notes");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("todo.txt"), "keep me\n").unwrap();
    let run = airgap(&ws, &["apply", "--bundle", "../notes"]).fails(1);
    assert!(
        run.err_text().contains("is not empty and is not a bundle"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);

    // A folder that is not a bundle (or whose apply did not finish) is not pushed.
    let run = airgap(tmp.path(), &["push", "notes"]).fails(1);
    assert!(
        run.err_text().contains("has no airgap-bundle.json"),
        "{}",
        run.stderr
    );
    // --to names a host, never a path: names do not change.
    std::fs::write(
        other.join("airgap-bundle.json"),
        r#"{"version":2,"registry":"registry.internal:5000","path":"devfiles","tls":"verify","images":[]}"#,
    )
    .unwrap();
    let run = airgap(
        tmp.path(),
        &["push", "notes", "--to", "127.0.0.1:5000/elsewhere"],
    )
    .fails(1);
    assert!(
        run.err_text().contains("is not HOST[:PORT]")
            && run.err_text().contains("registry.internal:5000/devfiles/…"),
        "{}",
        run.stderr
    );
}

/// `push` takes no name from the layout's `index.json` on trust: each entry must be one image
/// `apply --bundle` recorded in `airgap-bundle.json`, exactly (name, digest, media type, size).
#[test]
fn push_refuses_names_the_bundle_did_not_record_before_sending_anything() {
    use serde_json::{Value, json};
    let w = World::new();
    w.apply_bundle();
    let index_path = w.bundle.join("index.json");
    let original: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entry = |name: &str| -> Value {
        original["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["annotations"][REF_NAME] == name)
            .unwrap_or_else(|| panic!("no entry `{name}` in the bundle"))
            .clone()
    };
    let go = entry("devfiles/go-toolset:1.22");
    let node = entry("devfiles/nodejs:20");
    let stranger = |name: &str, repository: &str| -> Value {
        let mut e = node.clone();
        let mut annotations = serde_json::Map::new();
        annotations.insert(REF_NAME.into(), name.into());
        annotations.insert(REPOSITORY.into(), repository.into());
        e["annotations"] = Value::Object(annotations);
        e
    };
    let go_digest = go["digest"].as_str().unwrap().to_owned();
    let node_digest = node["digest"].as_str().unwrap().to_owned();

    type Edit<'a> = Box<dyn Fn(&mut Vec<Value>) + 'a>;
    let cases: Vec<(&str, Edit<'_>, Vec<String>)> = vec![
        (
            "go-toolset's tag given nodejs's image",
            Box::new(|entries: &mut Vec<Value>| {
                for e in entries.iter_mut() {
                    if e["annotations"][REF_NAME] == "devfiles/go-toolset:1.22" {
                        for field in ["digest", "size", "mediaType"] {
                            e[field] = node[field].clone();
                        }
                    }
                }
            }),
            vec![
                format!("`devfiles/go-toolset:1.22` ({node_digest}"),
                format!("is recorded as {go_digest}"),
            ],
        ),
        (
            "a name outside the bundle's path",
            Box::new(|entries: &mut Vec<Value>| {
                entries.push(stranger("../../../etc:passwd", "../../../etc"));
            }),
            vec![
                "`../../../etc:passwd`".into(),
                "is not an image the bundle records".into(),
            ],
        ),
        (
            "an empty name",
            Box::new(|entries: &mut Vec<Value>| entries.push(stranger("", "devfiles/nodejs"))),
            vec!["an entry with an empty name".into()],
        ),
        (
            "a descriptor that is not a manifest",
            Box::new(|entries: &mut Vec<Value>| {
                for e in entries.iter_mut() {
                    if e["annotations"][REF_NAME] == "devfiles/nodejs:20" {
                        e["mediaType"] = json!("text/html");
                    }
                }
            }),
            vec!["`devfiles/nodejs:20`".into(), "`text/html`".into()],
        ),
    ];
    for (case, edit, expected) in &cases {
        let mut index = original.clone();
        edit(index["manifests"].as_array_mut().unwrap());
        std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
        let run = w.push(&["--to", &w.target_ip()]).fails(1);
        let err = run.err_text();
        assert!(
            err.contains("does not match what `airgap apply --bundle` recorded")
                && err.contains("nothing was pushed"),
            "{case}: {}",
            run.stderr
        );
        for needle in expected {
            assert!(
                err.contains(needle.as_str()),
                "{case}: `{needle}` in\n{}",
                run.stderr
            );
        }
        assert!(!run.stderr.contains("copying"), "{case}: {}", run.stderr);
        assert!(w.catalog().is_empty(), "{case}: something was pushed");
    }

    // The description itself is checked too: a name it records outside the bundle's path is
    // refused, even when `index.json` agrees with it.
    let info_path = w.bundle.join("airgap-bundle.json");
    let info_text = std::fs::read(&info_path).unwrap();
    let mut info: Value = serde_json::from_slice(&info_text).unwrap();
    let mut index = original.clone();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(stranger("../../../etc:passwd", "../../../etc"));
    let mut recorded = info["images"][0].clone();
    recorded["repository"] = json!("../../../etc");
    recorded["tag"] = json!("passwd");
    for field in ["digest", "size", "mediaType"] {
        recorded[field] = node[field].clone();
    }
    info["images"].as_array_mut().unwrap().push(recorded);
    std::fs::write(&info_path, serde_json::to_vec(&info).unwrap()).unwrap();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let run = w.push(&["--to", &w.target_ip()]).fails(1);
    assert!(
        run.err_text()
            .contains("records `../../../etc:passwd` is not a valid repository name"),
        "{}",
        run.stderr
    );
    assert!(w.catalog().is_empty());

    // The bundle as it was made pushes, with the digests the lock pins.
    std::fs::write(&info_path, &info_text).unwrap();
    std::fs::write(&index_path, serde_json::to_vec(&original).unwrap()).unwrap();
    w.push(&["--to", &w.target_ip()]).ok();
    for (repository, tag, digest) in w.locked_images() {
        assert_eq!(w.at_target(&repository, &tag), Some(digest));
    }
}
