//! The quickstart example runs on a fresh clone with no network and no registry: its images
//! are small stand-ins kept in `examples/quickstart/mirror/images`, an OCI image layout that
//! `registry-mirror "quay.io" to="dir:./mirror/images"` reads.
//!
//! The layout is made by [`generate`] (deterministic bytes: fixed configs, tar and gzip
//! without times or owners) and committed. To remake it after changing the generator:
//!
//! ```text
//! AIRGAP_REGENERATE_QUICKSTART_IMAGES=1 cargo test --test it quickstart::committed_images
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airgap::archive::{Entry, write_tar_gz};
use airgap::oci::digest::Digest;
use airgap::oci::layout::{Layout, LayoutImage};
use airgap::oci::media;
use bytes::Bytes;
use serde_json::json;

use crate::support::registry::{skopeo, try_skopeo};
use crate::support::*;

/// The images the quickstart's devfiles, Dockerfile and index base name, as
/// `(repository under quay.io, tag, platforms)`.
pub const IMAGES: &[(&str, &str, &[&str])] = &[
    (
        "airgap-example/go-toolset",
        "1.22",
        &["linux/amd64", "linux/arm64"],
    ),
    ("airgap-example/nodejs", "18", &["linux/amd64"]),
    ("airgap-example/nodejs", "20", &["linux/amd64"]),
    ("airgap-example/runtime", "1.0", &["linux/amd64"]),
    ("devfile/devfile-index-base", "next", &["linux/amd64"]),
];

pub fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart")
}

fn committed_layout() -> PathBuf {
    example_dir().join("mirror/images")
}

/// One platform's image: a tiny gzip layer holding a marker file and a script, and a config
/// with an environment and an entrypoint. Returns (manifest bytes, blobs).
fn platform_image(repository: &str, tag: &str, platform: &str) -> (Bytes, Vec<(Digest, Bytes)>) {
    let (os, arch) = platform.split_once('/').expect("os/arch");
    let name = repository.rsplit('/').next().unwrap_or(repository);
    let reference = format!("quay.io/{repository}:{tag}");
    let entries = vec![
        Entry::file(
            "etc/airgap-example/image",
            format!(
                "{reference} ({platform})\nA stand-in made for the airgap quickstart: it holds no {name}.\n"
            ),
        ),
        Entry::executable(
            "usr/local/bin/hello",
            format!("#!/bin/sh\necho \"hello from the {name} {tag} stand-in ({platform})\"\n"),
        ),
    ];
    let (layer, digests) = write_tar_gz(entries, Vec::new()).expect("a layer");
    let layer = Bytes::from(layer);
    let config = json!({
        "architecture": arch,
        "os": os,
        "config": {
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                format!("AIRGAP_EXAMPLE_IMAGE={reference}"),
            ],
            "Entrypoint": ["/usr/local/bin/hello"],
            "WorkingDir": "/",
            "Labels": {
                "org.opencontainers.image.title": name,
                "org.opencontainers.image.version": tag,
                "org.opencontainers.image.description": "a stand-in image of the airgap quickstart",
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [digests.uncompressed.oci()]},
        "history": [{"created_by": "airgap quickstart generator"}],
    });
    let config = Bytes::from(serde_json::to_vec(&config).unwrap());
    let config_digest = Digest::of(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {
            "mediaType": media::OCI_CONFIG,
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": media::OCI_LAYER_GZIP,
            "digest": digests.compressed.oci(),
            "size": digests.compressed.size,
        }],
    });
    let manifest = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let blobs = vec![
        (Digest::of(&layer), layer),
        (config_digest, config),
        (Digest::of(&manifest), manifest.clone()),
    ];
    (manifest, blobs)
}

/// Writes the quickstart's images into a new OCI layout at `dir`: one `index.json` entry per
/// image, named `<repository>:<tag>`; a multi-platform image is an index whose platform
/// manifests are blobs only.
pub fn generate(dir: &Path) {
    block_on(async {
        let layout = Layout::open(dir).unwrap();
        for (repository, tag, platforms) in IMAGES {
            let mut children = Vec::new();
            for platform in *platforms {
                let (manifest, blobs) = platform_image(repository, tag, platform);
                for (digest, bytes) in blobs {
                    layout.write_blob_bytes(&digest, bytes).await.unwrap();
                }
                children.push((platform, manifest));
            }
            let (top, media_type) = if children.len() == 1 {
                (children.remove(0).1, media::OCI_MANIFEST)
            } else {
                let manifests: Vec<_> = children
                    .iter()
                    .map(|(platform, manifest)| {
                        let (os, arch) = platform.split_once('/').unwrap();
                        json!({
                            "mediaType": media::OCI_MANIFEST,
                            "digest": Digest::of(manifest).to_string(),
                            "size": manifest.len(),
                            "platform": {"architecture": arch, "os": os},
                        })
                    })
                    .collect();
                let index = json!({
                    "schemaVersion": 2,
                    "mediaType": media::OCI_INDEX,
                    "manifests": manifests,
                });
                (
                    Bytes::from(serde_json::to_vec(&index).unwrap()),
                    media::OCI_INDEX,
                )
            };
            let digest = Digest::of(&top);
            layout.write_blob_bytes(&digest, top.clone()).await.unwrap();
            layout
                .add_image(&LayoutImage {
                    repository: repository.to_string(),
                    tag: Some(tag.to_string()),
                    digest,
                    media_type: media_type.into(),
                    size: top.len() as u64,
                })
                .await
                .unwrap();
        }
    });
}

/// Every file under `dir` (temp files of a writer left out): relative path → bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = tree(dir);
    files.retain(|rel, _| {
        let name = Path::new(rel).file_name().unwrap();
        !name.to_string_lossy().starts_with(".tmp")
    });
    files
}

#[test]
fn committed_images_are_intact_and_what_the_generator_makes() {
    if std::env::var_os("AIRGAP_REGENERATE_QUICKSTART_IMAGES").is_some() {
        let _ = std::fs::remove_dir_all(committed_layout());
        generate(&committed_layout());
    }
    let committed = Layout::open_existing(committed_layout()).expect("the committed layout");
    // 5 images, one of them on two platforms: 6 layers, 6 configs, 6 manifests, 1 index.
    assert_eq!(committed.verify().expect("every blob matches its name"), 19);

    let fresh = tempfile::tempdir().unwrap();
    generate(fresh.path());
    let want = files(fresh.path());
    let have = files(&committed_layout());
    assert_eq!(
        have.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the committed layout has other files than the generator makes; regenerate it \
         (see the module doc)"
    );
    for (name, bytes) in &want {
        assert!(
            &have[name] == bytes,
            "`{name}` differs from what the generator makes; regenerate (see the module doc)"
        );
    }
    let total: usize = have.values().map(Vec::len).sum();
    assert!(
        total < 32 * 1024,
        "the committed images stay small: {total} bytes"
    );
}

/// `skopeo` reads the committed layout by the names the mirror rule looks up.
#[test]
fn committed_images_are_readable_by_skopeo() {
    let dir = committed_layout();
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:airgap-example/go-toolset:1.22", dir.display()),
    ]);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let config = skopeo(&[
        "inspect",
        "--config",
        &format!("oci:{}:airgap-example/runtime:1.0", dir.display()),
    ]);
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(
        config["config"]["Entrypoint"],
        json!(["/usr/local/bin/hello"])
    );
}

/// A copy of the example as a fresh clone has it (no lock, no output, no workspace).
pub fn fresh_example(into: &Path) {
    copy_dir(&example_dir(), into);
    for leftover in ["airgap.lock", "out", ".airgap"] {
        let p = into.join(leftover);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else if p.exists() {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

/// Narrows the quickstart manifest in `ws` to the given stacks.
pub fn only_stacks(ws: &Path, stacks: &[&str]) {
    let names: Vec<String> = stacks.iter().map(|s| format!("\"{s}\"")).collect();
    let kdl = std::fs::read_to_string(ws.join("airgap.kdl")).unwrap();
    let narrowed = kdl.replace(
        "source \"quickstart\" path=\"registry\"",
        &format!(
            "source \"quickstart\" path=\"registry\" {{\n    stacks {}\n}}",
            names.join(" ")
        ),
    );
    assert_ne!(
        narrowed, kdl,
        "the quickstart manifest names its source as expected"
    );
    std::fs::write(ws.join("airgap.kdl"), narrowed).unwrap();
}

/// `airgap` with every proxy variable pointing at a closed port: an attempt to reach the
/// network fails instead of passing unnoticed.
fn offline(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = airgap_cmd(dir);
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
    ] {
        cmd.env(var, "http://127.0.0.1:9");
    }
    cmd.env_remove("NO_PROXY").env_remove("no_proxy");
    cmd.args(args)
        .output()
        .expect("the airgap binary runs")
        .into()
}

#[test]
fn the_quickstart_applies_with_no_network_and_no_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("quickstart");
    fresh_example(&ws);
    offline(&ws, &["lock"]).ok();
    offline(&ws, &["apply"]).ok();

    let lock = std::fs::read_to_string(ws.join("airgap.lock")).unwrap();
    let out = ws.join("out");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("registry/index.json")).unwrap()).unwrap();
    let mut stacks: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    stacks.sort();
    assert_eq!(stacks, ["hello-go", "hello-node"]);

    // Every image landed in the output layout with the digest the lock pinned, which is the
    // digest of the committed mirror.
    let mirror = committed_layout();
    for (repository, tag, _) in IMAGES {
        let upstream = format!("quay.io/{repository}:{tag}");
        let mirrored = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{repository}:{tag}", mirror.display()),
        ]);
        let digest = Digest::of(&mirrored);
        assert!(
            lock.contains(&format!("image \"{upstream}\" ")) && lock.contains(&digest.to_string()),
            "the lock pins {upstream} to {digest}:\n{lock}"
        );
        let name = repository.rsplit('/').next().unwrap();
        let landed = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{name}:{tag}", out.display()),
        ]);
        assert_eq!(Digest::of(&landed), digest, "{name}:{tag} in the output");
    }
    // skopeo resolves the multi-platform go-toolset to this machine's platform.
    let inspected: serde_json::Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        &format!("oci:{}:go-toolset:1.22", out.display()),
    ]))
    .unwrap();
    assert!(
        inspected["Env"]
            .to_string()
            .contains("AIRGAP_EXAMPLE_IMAGE=quay.io/airgap-example/go-toolset:1.22"),
        "{inspected}"
    );
    let devfile =
        std::fs::read_to_string(out.join("registry/stacks/hello-go/devfile.yaml")).unwrap();
    assert!(
        devfile.contains("image: localhost:8080/go-toolset:1.22@sha256:"),
        "{devfile}"
    );

    // A second apply has nothing to do.
    let again = offline(&ws, &["apply"]).ok();
    assert!(again.stderr.contains("0 ran"), "{}", again.stderr);
}

/// Copies one image of the committed layout into `to` with skopeo (digests preserved): a
/// mirror folder as a user would fill it, with no annotation of airgap's own.
fn skopeo_copy(repository: &str, tag: &str, to: &Path) {
    skopeo(&[
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        &format!("oci:{}:{repository}:{tag}", committed_layout().display()),
        &format!("oci:{}:{repository}:{tag}", to.display()),
    ]);
}

#[test]
fn a_layout_written_by_skopeo_is_a_mirror_and_its_faults_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    fresh_example(&reference);
    offline(&reference, &["lock"]).ok();

    let ws = tmp.path().join("quickstart");
    fresh_example(&ws);
    let mirror = ws.join("mirror/images");
    std::fs::remove_dir_all(&mirror).unwrap();
    for (repository, tag, _) in IMAGES {
        if *repository != "airgap-example/runtime" {
            skopeo_copy(repository, tag, &mirror);
        }
    }
    // An image the folder does not hold: named, with the name looked up.
    let run = offline(&ws, &["lock"]).fails(1);
    let err = run.err_text();
    assert!(
        err.contains("quay.io/airgap-example/runtime:1.0")
            && err.contains("names no image `airgap-example/runtime:1.0`"),
        "{err}"
    );
    assert!(!ws.join("airgap.lock").exists());

    // Complete, it resolves to what the committed layout resolves to: the same lock.
    skopeo_copy("airgap-example/runtime", "1.0", &mirror);
    offline(&ws, &["lock"]).ok();
    assert_eq!(
        std::fs::read_to_string(ws.join("airgap.lock")).unwrap(),
        std::fs::read_to_string(reference.join("airgap.lock")).unwrap()
    );

    // A damaged blob in the mirror is refused by name, and the image does not land.
    let manifest: serde_json::Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:airgap-example/runtime:1.0", mirror.display()),
    ]))
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = mirror
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let run = offline(&ws, &["apply"]).fails(1);
    // (The progress line is not wrapped: the whole path is on it.)
    assert!(
        run.stderr.lines().any(
            |l| l.contains("Failed image quay.io/airgap-example/runtime:1.0")
                && l.contains(&format!("`{}` does not match", path.display()))
        ),
        "{}",
        run.stderr
    );
    let out = ws.join("out");
    assert!(
        try_skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:runtime:1.0", out.display())
        ])
        .is_err()
    );
    assert!(
        !out.join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:"))
            .exists()
    );
    // The other images landed.
    skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:nodejs:20", out.display()),
    ]);
}

/// Resolution through a layout mirror, by tag and by pinned digest, as the library sees it.
#[test]
fn a_layout_mirror_resolves_tags_and_pinned_digests() {
    use airgap::oci::mirror::RegistryMirror;
    use airgap::oci::reference::ImageRef;
    use airgap::oci::{Client, ClientConfig};

    block_on(async {
        let client = Client::new(ClientConfig {
            mirrors: vec![RegistryMirror::layout("quay.io", committed_layout())],
            credentials: airgap::oci::auth::Credentials::anonymous(),
            ..Default::default()
        });
        let by_tag = client
            .resolve(&ImageRef::parse("quay.io/airgap-example/go-toolset:1.22").unwrap())
            .await
            .unwrap();
        assert_eq!(by_tag.media_type, media::OCI_INDEX);
        let platforms: Vec<&str> = by_tag
            .platforms
            .iter()
            .map(|p| p.platform.as_str())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

        let pinned = format!("quay.io/airgap-example/go-toolset:1.22@{}", by_tag.digest);
        let by_digest = client
            .resolve(&ImageRef::parse(&pinned).unwrap())
            .await
            .unwrap();
        assert_eq!(by_digest.digest, by_tag.digest);
        assert_eq!(by_digest.media_type, media::OCI_INDEX);

        // A digest the folder does not hold, and a tag it does not name.
        let absent = format!(
            "quay.io/airgap-example/go-toolset@{}",
            Digest::of(b"absent")
        );
        let err = client
            .resolve(&ImageRef::parse(&absent).unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not in the OCI layout"), "{err}");
        let err = client
            .resolve(&ImageRef::parse("quay.io/airgap-example/go-toolset:9").unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("names no image `airgap-example/go-toolset:9`"),
            "{err}"
        );

        // A folder that is not a layout is named as such.
        let client = Client::new(ClientConfig {
            mirrors: vec![RegistryMirror::layout(
                "quay.io",
                example_dir().join("registry"),
            )],
            credentials: airgap::oci::auth::Credentials::anonymous(),
            ..Default::default()
        });
        let err = client
            .resolve(&ImageRef::parse("quay.io/airgap-example/runtime:1.0").unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no `oci-layout` file"), "{err}");
    });
}
