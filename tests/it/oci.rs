//! Image resolution and copies against real `docker-registry` processes (see
//! `support::registry`), checked independently with `skopeo` and with a counting proxy.

use std::sync::Arc;
use std::time::Duration;

use airgap::oci::auth::Credentials;
use airgap::oci::digest::Digest;
use airgap::oci::layout::{self, Layout};
use airgap::oci::media::Platforms;
use airgap::oci::mirror::{MirrorTo, RegistryAccess, RegistryMirror, Tls};
use airgap::oci::naming::{Naming, TargetPrefix, TargetRef};
use airgap::oci::reference::ImageRef;
use airgap::oci::retry::RetryPolicy;
use airgap::oci::{Client, ClientConfig, CopyOutcome, CopyRequest, Destination, LocalImage};

use crate::support::registry::{
    FaultKind, FaultProxy, GeneratedImage, RegistryOptions, TestRegistry, image, index, skopeo,
    try_skopeo,
};

fn mirror(from: &str, to: &str) -> RegistryMirror {
    RegistryMirror::registry(from, to, Tls::PlainHttp)
}

/// A client whose `quay.io` and `docker.io` are the given loopback host.
fn client_via(upstream_host: &str, credentials: Credentials) -> Client {
    Client::new(ClientConfig {
        mirrors: vec![
            mirror("quay.io", upstream_host),
            mirror("docker.io", &format!("{upstream_host}/dockerhub")),
        ],
        credentials,
        jobs: 4,
        retry: RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        progress: airgap::oci::progress::Progress::hidden(),
    })
}

fn r(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap()
}

/// Pushes a generated image (or index) to `access` as `repository:tag`.
async fn push(
    client: &Client,
    access: &RegistryAccess,
    repository: &str,
    tag: Option<&str>,
    image: &LocalImage,
) -> CopyOutcome {
    let target = TargetRef {
        host: access.host.clone(),
        repository: repository.into(),
        tag: tag.map(str::to_owned),
    };
    client
        .push_image(image, &target, &Destination::Registry(access.clone()))
        .await
        .unwrap_or_else(|e| panic!("pushing {repository}: {e}"))
}

/// Three platform images and their index, pushed as `repository:tag`.
async fn push_multi(
    client: &Client,
    access: &RegistryAccess,
    repository: &str,
    tag: &str,
    seed: u64,
) -> (Vec<GeneratedImage>, CopyOutcome) {
    let children = vec![
        image(seed, &[3000, 2000], "linux/amd64"),
        image(seed + 1, &[3100, 2100], "linux/arm64/v8"),
        image(seed + 2, &[3200], "linux/ppc64le"),
    ];
    for c in &children {
        push(client, access, repository, None, &c.local).await;
    }
    let outcome = push(client, access, repository, Some(tag), &index(&children)).await;
    (children, outcome)
}

/// What `skopeo inspect --raw` sees at `reference` (`docker://…` or `oci:…`): the digest of
/// the exact bytes.
fn skopeo_digest(reference: &str) -> Digest {
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", reference]);
    Digest::of(&raw)
}

fn request(source: &ImageRef, prefix: &TargetPrefix, platforms: Platforms) -> CopyRequest {
    CopyRequest {
        source: source.clone(),
        target: prefix.target_for(source, Naming::Flat),
        platforms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_single_and_multi_arch_images_and_reruns_upload_nothing() {
    let upstream = TestRegistry::start();
    let target = TestRegistry::start();
    let client = client_via(&upstream.host(), Credentials::anonymous());
    let single = image(1, &[5000, 7000, 1], "linux/amd64");
    push(
        &client,
        &upstream.access(),
        "devfile/single",
        Some("1.0"),
        &single.local,
    )
    .await;
    let (children, multi) =
        push_multi(&client, &upstream.access(), "devfile/multi", "2.0", 10).await;

    let resolved = client
        .resolve_all(&[
            r("quay.io/devfile/single:1.0"),
            r("quay.io/devfile/multi:2.0"),
        ])
        .await;
    let single_r = resolved[0].as_ref().unwrap();
    let multi_r = resolved[1].as_ref().unwrap();
    assert_eq!(single_r.digest, single.digest);
    assert_eq!(single_r.media_type, airgap::oci::media::OCI_MANIFEST);
    assert!(single_r.platforms.is_empty());
    assert_eq!(multi_r.digest, multi.digest);
    assert_eq!(
        multi_r
            .platforms
            .iter()
            .map(|p| p.platform.as_str())
            .collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64/v8", "linux/ppc64le"]
    );
    assert_eq!(multi_r.platforms[1].digest, children[1].digest);
    // Independent check of resolution: skopeo reads the same digests upstream.
    assert_eq!(
        skopeo_digest(&format!("docker://{}/devfile/single:1.0", upstream.host())),
        single_r.digest
    );
    assert_eq!(
        skopeo_digest(&format!("docker://{}/devfile/multi:2.0", upstream.host())),
        multi_r.digest
    );

    let prefix = TargetPrefix::parse(&format!("{}/mirror", target.host())).unwrap();
    let requests = vec![
        request(&single_r.image, &prefix, Platforms::All),
        request(&multi_r.image, &prefix, Platforms::All),
    ];
    let dest = Destination::Registry(target.access());
    let outcomes: Vec<CopyOutcome> = client
        .copy_all(&requests, &dest)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(outcomes[0].digest, single.digest);
    assert_eq!(outcomes[1].digest, multi.digest);
    assert_eq!(outcomes[0].stats.blobs_uploaded, 4, "3 layers and a config");
    assert_eq!(
        outcomes[1].stats.blobs_uploaded, 8,
        "5 layers and 3 configs"
    );
    assert_eq!(
        outcomes[1].stats.manifests_pushed, 4,
        "3 platform manifests and the index"
    );
    assert_eq!(
        outcomes[0].stats.bytes_uploaded,
        12001 + single.local.blobs[3].size
    );
    for (req, outcome) in requests.iter().zip(&outcomes) {
        let at_target = format!("docker://{}", req.target);
        assert_eq!(skopeo_digest(&at_target), outcome.digest, "{at_target}");
        // skopeo's own view (it picks the amd64 image of the index and reads its config).
        let inspect: serde_json::Value =
            serde_json::from_slice(&skopeo(&["inspect", "--tls-verify=false", &at_target]))
                .unwrap();
        assert_eq!(inspect["Architecture"], "amd64");
    }
    for child in &children {
        let by_digest = format!("docker://{}/mirror/multi@{}", target.host(), child.digest);
        assert_eq!(skopeo_digest(&by_digest), child.digest);
    }

    // A second run, with a fresh client (no memory of the first), uploads nothing.
    let again = client_via(&upstream.host(), Credentials::anonymous());
    for outcome in again.copy_all(&requests, &dest).await {
        let outcome = outcome.unwrap();
        assert_eq!(outcome.stats, Default::default(), "{outcome:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_pinned_references_are_verified_and_land_untagged() {
    let upstream = TestRegistry::start();
    let target = TestRegistry::start();
    let client = client_via(&upstream.host(), Credentials::anonymous());
    let a = image(20, &[1000], "linux/amd64");
    let b = image(21, &[1000], "linux/amd64");
    push(
        &client,
        &upstream.access(),
        "bitnami/mongodb",
        Some("7"),
        &a.local,
    )
    .await;
    push(
        &client,
        &upstream.access(),
        "bitnami/other",
        Some("7"),
        &b.local,
    )
    .await;

    // Docker Hub short names go through the `docker.io` mirror.
    let pinned = r(&format!("bitnami/mongodb@{}", a.digest));
    assert_eq!(
        pinned.to_string(),
        format!("docker.io/bitnami/mongodb@{}", a.digest)
    );
    assert_eq!(
        client.endpoint(&pinned).to_string(),
        format!("{}/dockerhub/bitnami/mongodb", upstream.host())
    );
    push(
        &client,
        &upstream.access(),
        "dockerhub/bitnami/mongodb",
        Some("7"),
        &a.local,
    )
    .await;
    let resolved = client.resolve(&pinned).await.unwrap();
    assert_eq!(resolved.digest, a.digest);
    assert_eq!(resolved.image, pinned);

    // A pin to a digest the repository does not have is an error, not a silent re-resolve.
    let wrong = r(&format!("quay.io/bitnami/mongodb:7@{}", b.digest));
    let err = client.resolve(&wrong).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");

    let prefix = TargetPrefix::parse(&target.host()).unwrap();
    let req = request(&pinned, &prefix, Platforms::All);
    assert_eq!(req.target.tag, None);
    let outcome = client
        .copy(&req, &Destination::Registry(target.access()))
        .await
        .unwrap();
    assert_eq!(outcome.digest, a.digest);
    assert_eq!(
        skopeo_digest(&format!("docker://{}/mongodb@{}", target.host(), a.digest)),
        a.digest
    );
    // No tag at the target (distribution answers 404 for a repository without tags).
    match try_skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/mongodb", target.host()),
    ]) {
        Ok(tags) => {
            let tags: serde_json::Value = serde_json::from_slice(&tags).unwrap();
            assert!(
                tags["Tags"].as_array().is_none_or(|t| t.is_empty()),
                "{tags}"
            );
        }
        Err(e) => assert!(e.contains("404"), "{e}"),
    }

    // Copies go by digest only.
    let unpinned = request(&r("quay.io/bitnami/mongodb:7"), &prefix, Platforms::All);
    let err = client
        .copy(&unpinned, &Destination::Registry(target.access()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("must be pinned"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_subset_lands_as_a_new_index_with_only_those_platforms() {
    let upstream = TestRegistry::start();
    let target = TestRegistry::start();
    let client = client_via(&upstream.host(), Credentials::anonymous());
    let (children, multi) =
        push_multi(&client, &upstream.access(), "devfile/udi", "ubi9", 30).await;
    let source = r(&format!("quay.io/devfile/udi:ubi9@{}", multi.digest));
    let prefix = TargetPrefix::parse(&target.host()).unwrap();
    let platforms = Platforms::Only(vec!["linux/arm64".into(), "linux/ppc64le".into()]);
    let outcome = client
        .copy(
            &request(&source, &prefix, platforms.clone()),
            &Destination::Registry(target.access()),
        )
        .await
        .unwrap();
    assert_ne!(outcome.digest, multi.digest);
    let at_target = format!("docker://{}/udi:ubi9", target.host());
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &at_target]);
    assert_eq!(Digest::of(&raw), outcome.digest);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let digests: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        digests,
        [children[1].digest.as_str(), children[2].digest.as_str()]
    );
    let amd64 = format!("docker://{}/udi@{}", target.host(), children[0].digest);
    assert!(
        try_skopeo(&["inspect", "--tls-verify=false", "--raw", &amd64]).is_err(),
        "amd64 must not be at the target"
    );
    assert_eq!(
        outcome.stats.blobs_uploaded,
        3 + 2,
        "arm64: 2 layers + config; ppc64le: 1 layer + config"
    );

    // The same subset always gives the same bytes: into a layout, the same digest.
    let dir = tempfile::tempdir().unwrap();
    let layout = Arc::new(Layout::open(dir.path().join("oci")).unwrap());
    let again = client
        .copy(
            &request(&source, &prefix, platforms),
            &Destination::Layout(layout),
        )
        .await
        .unwrap();
    assert_eq!(again.digest, outcome.digest);

    // A filter that keeps every platform copies the index whole: the upstream digest.
    let every = Platforms::Only(vec![
        "linux/amd64".into(),
        "linux/arm64".into(),
        "linux/ppc64le".into(),
    ]);
    let whole = client
        .copy(
            &request(
                &source,
                &TargetPrefix::parse(&format!("{}/all", target.host())).unwrap(),
                every,
            ),
            &Destination::Registry(target.access()),
        )
        .await
        .unwrap();
    assert_eq!(whole.digest, multi.digest);
    assert_eq!(
        skopeo_digest(&format!("docker://{}/all/udi:ubi9", target.host())),
        multi.digest
    );

    // A filter that matches nothing copies the image as it is (`airgap lock` warns).
    let none = Platforms::Only(vec!["linux/s390x".into()]);
    let as_is = client
        .copy(
            &request(
                &source,
                &TargetPrefix::parse(&format!("{}/x", target.host())).unwrap(),
                none,
            ),
            &Destination::Registry(target.access()),
        )
        .await
        .unwrap();
    assert_eq!(as_is.digest, multi.digest);
    assert_eq!(
        skopeo_digest(&format!("docker://{}/x/udi:ubi9", target.host())),
        multi.digest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_repository_in_the_target_mounts_blobs_instead_of_uploading() {
    let upstream = TestRegistry::start();
    let target = TestRegistry::start();
    let proxy = FaultProxy::start(&target.host()).await;
    let client = client_via(&upstream.host(), Credentials::anonymous());
    let img = image(40, &[20_000, 30_000], "linux/amd64");
    push(
        &client,
        &upstream.access(),
        "devfile/go",
        Some("1"),
        &img.local,
    )
    .await;
    let source = r(&format!("quay.io/devfile/go:1@{}", img.digest));
    let dest = Destination::Registry(proxy.access());
    let first = CopyRequest {
        source: source.clone(),
        target: TargetPrefix::parse("t/a")
            .unwrap()
            .target_for(&source, Naming::Flat),
        platforms: Platforms::All,
    };
    let second = CopyRequest {
        target: TargetPrefix::parse("t/b")
            .unwrap()
            .target_for(&source, Naming::Flat),
        ..first.clone()
    };
    let one = client.copy(&first, &dest).await.unwrap();
    assert_eq!(one.stats.blobs_uploaded, 3);
    assert_eq!(proxy.count("PUT", "/v2/a/go/blobs/uploads/"), 3);
    proxy.clear_seen();

    let two = client.copy(&second, &dest).await.unwrap();
    assert_eq!(
        (
            two.stats.blobs_mounted,
            two.stats.blobs_uploaded,
            two.stats.bytes_uploaded
        ),
        (3, 0, 0)
    );
    // Independently: the proxy saw three mount requests answered 201, and no blob bytes.
    let mounts: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST" && s.path_and_query.contains("mount="))
        .collect();
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    assert!(
        mounts
            .iter()
            .all(|m| m.status == 201 && m.path_and_query.contains("from=a%2Fgo")),
        "{mounts:?}"
    );
    assert_eq!(proxy.count("PUT", "/blobs/uploads/"), 0);
    assert_eq!(
        skopeo_digest(&format!("docker://{}/b/go:1", target.host())),
        img.digest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_upstream_blob_is_rejected_and_nothing_is_tagged() {
    let upstream = TestRegistry::start();
    let target = TestRegistry::start();
    let proxy = FaultProxy::start(&upstream.host()).await;
    let setup = client_via(&upstream.host(), Credentials::anonymous());
    let img = image(50, &[64 * 1024, 300_000], "linux/amd64");
    push(
        &setup,
        &upstream.access(),
        "devfile/bad",
        Some("1"),
        &img.local,
    )
    .await;
    let bad_layer = img.layer_digests[1].clone();
    proxy.fault(
        "GET",
        &format!("/blobs/{bad_layer}"),
        FaultKind::CorruptBody,
        usize::MAX,
    );

    for dest in [
        Destination::Registry(target.access()),
        Destination::Layout(Arc::new(
            Layout::open(target.dir.path().join("layout")).unwrap(),
        )),
    ] {
        let client = client_via(&proxy.host(), Credentials::anonymous());
        let source = r(&format!("quay.io/devfile/bad:1@{}", img.digest));
        let req = request(
            &source,
            &TargetPrefix::parse(&target.host()).unwrap(),
            Platforms::All,
        );
        let err = client.copy(&req, &dest).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&bad_layer.to_string()) && text.contains("does not match"),
            "{text}"
        );
        match dest {
            Destination::Registry(_) => {
                let tag = format!("docker://{}/bad:1", target.host());
                assert!(
                    try_skopeo(&["inspect", "--tls-verify=false", "--raw", &tag]).is_err(),
                    "no tag at the target"
                );
                let blob = target.storage().join(format!(
                    "docker/registry/v2/blobs/sha256/{}/{}",
                    &bad_layer.hex()[..2],
                    bad_layer.hex()
                ));
                assert!(!blob.exists(), "the bad blob was not committed");
            }
            Destination::Layout(layout) => {
                assert!(!layout.blob_path(&bad_layer).exists());
                assert!(!layout.blob_path(&img.digest).exists(), "no manifest");
                assert!(layout.images().await.is_empty());
                let leftovers: Vec<_> = std::fs::read_dir(layout.dir())
                    .unwrap()
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name())
                    .filter(|n| n.to_string_lossy().starts_with(".tmp"))
                    .collect();
                assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
            }
        }
    }
    assert!(proxy.fired(&format!("/blobs/{bad_layer}")) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_answering_500_twice_is_retried() {
    let upstream = TestRegistry::start();
    let target = TestRegistry::start();
    let proxy = FaultProxy::start(&upstream.host()).await;
    let setup = client_via(&upstream.host(), Credentials::anonymous());
    let img = image(60, &[10_000], "linux/amd64");
    push(
        &setup,
        &upstream.access(),
        "devfile/flaky",
        Some("1"),
        &img.local,
    )
    .await;
    let layer = img.layer_digests[0].clone();
    proxy.fault("GET", "/manifests/1", FaultKind::Status(500), 2);
    proxy.fault("GET", &format!("/blobs/{layer}"), FaultKind::Status(503), 2);

    let client = client_via(&proxy.host(), Credentials::anonymous());
    let resolved = client.resolve(&r("quay.io/devfile/flaky:1")).await.unwrap();
    assert_eq!(resolved.digest, img.digest);
    let req = request(
        &resolved.image,
        &TargetPrefix::parse(&target.host()).unwrap(),
        Platforms::All,
    );
    let outcome = client
        .copy(&req, &Destination::Registry(target.access()))
        .await
        .unwrap();
    assert_eq!(outcome.digest, img.digest);
    assert_eq!(proxy.fired("/manifests/1"), 2);
    assert_eq!(proxy.fired(&format!("/blobs/{layer}")), 2);
    assert_eq!(
        proxy.count("GET", &format!("/blobs/{layer}")),
        3,
        "two 503s, then the download"
    );
    assert_eq!(
        skopeo_digest(&format!("docker://{}/flaky:1", target.host())),
        img.digest
    );

    // With fewer attempts than failures, the error says what the registry answered.
    proxy.fault("GET", "/manifests/1", FaultKind::Status(500), 10);
    let err = client
        .resolve(&r("quay.io/devfile/flaky:1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_basic_auth_uses_the_registry_auth_file() {
    let upstream = TestRegistry::start();
    let target = TestRegistry::start_with(RegistryOptions {
        basic_auth: Some(("mirror".into(), "s3cret-pass".into())),
        ..RegistryOptions::default()
    });
    let setup = client_via(&upstream.host(), Credentials::anonymous());
    let img = image(70, &[4000], "linux/amd64");
    push(
        &setup,
        &upstream.access(),
        "devfile/auth",
        Some("1"),
        &img.local,
    )
    .await;
    let source = r(&format!("quay.io/devfile/auth:1@{}", img.digest));
    let req = request(
        &source,
        &TargetPrefix::parse(&target.host()).unwrap(),
        Platforms::All,
    );
    let dest = Destination::Registry(target.access());

    // No credentials: refused, and the error says none were found (none were sent).
    let err = setup.copy(&req, &dest).await.unwrap_err();
    assert!(err.to_string().contains("found none for it"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("auth.json");
    use base64::Engine as _;
    let encoded =
        |u: &str, p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
    std::fs::write(
        &auth_file,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            target.host(),
            encoded("mirror", "wrong")
        ),
    )
    .unwrap();
    let vars = |file: std::path::PathBuf| {
        move |k: &str| (k == "REGISTRY_AUTH_FILE").then(|| file.clone().into_os_string())
    };
    let wrong = client_via(
        &upstream.host(),
        Credentials::from_environment_with(vars(auth_file.clone())),
    );
    let err = wrong.copy(&req, &dest).await.unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert!(!format!("{err:?}").contains("wrong"), "no secret in errors");

    std::fs::write(
        &auth_file,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            target.host(),
            encoded("mirror", "s3cret-pass")
        ),
    )
    .unwrap();
    let client = client_via(
        &upstream.host(),
        Credentials::from_environment_with(vars(auth_file.clone())),
    );
    assert!(!format!("{client:?}").contains("s3cret"));
    let outcome = client.copy(&req, &dest).await.unwrap();
    assert_eq!(outcome.digest, img.digest);
    let inspect = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        "--authfile",
        auth_file.to_str().unwrap(),
        &format!("docker://{}/auth:1", target.host()),
    ]);
    assert_eq!(Digest::of(&inspect), img.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_destination_is_readable_by_skopeo_and_pushable_as_a_bundle() {
    let upstream = TestRegistry::start();
    let target = TestRegistry::start();
    let client = client_via(&upstream.host(), Credentials::anonymous());
    let single = image(80, &[6000, 100], "linux/amd64");
    push(
        &client,
        &upstream.access(),
        "devfile/go-toolset",
        Some("1.25"),
        &single.local,
    )
    .await;
    let (_, multi) = push_multi(&client, &upstream.access(), "devfile/udi", "9", 90).await;
    let untagged = image(85, &[500], "linux/amd64");
    push(
        &client,
        &upstream.access(),
        "bitnami/mongodb",
        Some("x"),
        &untagged.local,
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join("bundle");
    let layout = Arc::new(Layout::open(&layout_dir).unwrap());
    let dest = Destination::Layout(layout.clone());
    let prefix = TargetPrefix::parse("registry.internal:5000/devfiles").unwrap();
    let requests = vec![
        request(
            &r(&format!(
                "quay.io/devfile/go-toolset:1.25@{}",
                single.digest
            )),
            &prefix,
            Platforms::All,
        ),
        request(
            &r(&format!("quay.io/devfile/udi:9@{}", multi.digest)),
            &prefix,
            Platforms::All,
        ),
        request(
            &r(&format!("quay.io/bitnami/mongodb@{}", untagged.digest)),
            &prefix,
            Platforms::All,
        ),
    ];
    for outcome in client.copy_all(&requests, &dest).await {
        outcome.unwrap();
    }
    // Added images are journalled; a flush (or dropping the layout) folds them into index.json.
    layout.flush().await.unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout_dir.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let names: Vec<(&str, Option<&str>)> = entries
        .iter()
        .map(|e| {
            (
                e["annotations"][layout::REPOSITORY].as_str().unwrap(),
                e["annotations"][layout::REF_NAME].as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("devfiles/go-toolset", Some("devfiles/go-toolset:1.25")),
            ("devfiles/mongodb", None),
            ("devfiles/udi", Some("devfiles/udi:9")),
        ]
    );
    // skopeo reads the layout by the ref name.
    let oci = format!("oci:{}:devfiles/go-toolset:1.25", layout_dir.display());
    assert_eq!(skopeo_digest(&oci), single.digest);
    let oci = format!("oci:{}:devfiles/udi:9", layout_dir.display());
    assert_eq!(skopeo_digest(&oci), multi.digest);
    let inspect: serde_json::Value = serde_json::from_slice(&skopeo(&["inspect", &oci])).unwrap();
    assert_eq!(inspect["Architecture"], "amd64");

    // A re-run writes nothing; a new digest under a tag replaces the entry.
    for outcome in client_via(&upstream.host(), Credentials::anonymous())
        .copy_all(&requests, &dest)
        .await
    {
        assert_eq!(outcome.unwrap().stats, Default::default());
    }
    let newer = image(81, &[6000], "linux/amd64");
    push(
        &client,
        &upstream.access(),
        "devfile/go-toolset",
        Some("1.25"),
        &newer.local,
    )
    .await;
    let replaced = client
        .copy(
            &request(
                &r(&format!("quay.io/devfile/go-toolset:1.25@{}", newer.digest)),
                &prefix,
                Platforms::All,
            ),
            &dest,
        )
        .await
        .unwrap();
    assert_eq!(replaced.digest, newer.digest);
    let images = layout.images().await;
    assert_eq!(images.len(), 3);
    assert!(
        images
            .iter()
            .any(|i| i.digest == newer.digest && i.tag.as_deref() == Some("1.25"))
    );
    // Blobs: go-toolset 2 layers + config + manifest; udi 5 layers + 3 configs + 3 manifests +
    // index; mongodb layer + config + manifest; the newer go-toolset layer + config + manifest.
    assert_eq!(layout.verify().unwrap(), 4 + 12 + 3 + 3);

    // Inside the gap: the bundle goes to the registry it names (here, another address).
    let pushed = client.push_layout(&layout, &target.access()).await;
    assert_eq!(pushed.len(), 3);
    for (image, result) in &pushed {
        let outcome = result.as_ref().unwrap();
        assert_eq!(outcome.digest, image.digest);
        let reference = match &image.tag {
            Some(tag) => format!("docker://{}/{}:{tag}", target.host(), image.repository),
            None => format!(
                "docker://{}/{}@{}",
                target.host(),
                image.repository,
                image.digest
            ),
        };
        assert_eq!(skopeo_digest(&reference), image.digest, "{reference}");
    }
    // Resumable: a second push uploads nothing.
    for (_, result) in client.push_layout(&layout, &target.access()).await {
        assert_eq!(result.unwrap().stats.blobs_uploaded, 0);
    }
    // A bundle with a bad blob is refused, naming the blob; its image is not pushed.
    let bad = newer.layer_digests[0].clone();
    let path = layout.blob_path(&bad);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let fresh = TestRegistry::start();
    let pushed = client.push_layout(&layout, &fresh.access()).await;
    let (failed, err) = pushed
        .iter()
        .find_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
        .unwrap();
    assert_eq!(failed.digest, newer.digest);
    assert!(
        err.to_string().contains(&bad.hex()[..12]) && err.to_string().contains("does not match"),
        "{err}"
    );
    assert!(
        try_skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{}/devfiles/go-toolset:1.25", fresh.host())
        ])
        .is_err()
    );
    let verify = layout.verify().unwrap_err();
    assert!(verify.to_string().contains(bad.hex()), "{verify}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locally_built_image_goes_to_a_layout_and_a_registry() {
    let target = TestRegistry::start();
    let client = client_via("127.0.0.1:1", Credentials::anonymous());
    let built = image(95, &[2048], "linux/amd64");
    let dir = tempfile::tempdir().unwrap();
    // Layers may come from files.
    let layer_file = dir.path().join("layer.tar.gz");
    let mut local = built.local.clone();
    for blob in &mut local.blobs {
        if blob.size == 2048 {
            if let airgap::oci::BlobData::Bytes(b) = &blob.data {
                std::fs::write(&layer_file, b).unwrap();
            }
            blob.data = airgap::oci::BlobData::File(layer_file.clone());
        }
    }
    let layout = Arc::new(Layout::open(dir.path().join("out")).unwrap());
    let prefix = TargetPrefix::parse("localhost:8080").unwrap();
    let name = prefix.named("devfile-index", Some("latest"));
    let outcome = client
        .push_image(&local, &name, &Destination::Layout(layout))
        .await
        .unwrap();
    assert_eq!(outcome.digest, built.digest);
    let oci = format!(
        "oci:{}:devfile-index:latest",
        dir.path().join("out").display()
    );
    assert_eq!(skopeo_digest(&oci), built.digest);
    let name = TargetRef {
        host: target.host(),
        ..name
    };
    let outcome = client
        .push_image(&local, &name, &Destination::Registry(target.access()))
        .await
        .unwrap();
    assert_eq!(outcome.stats.blobs_uploaded, 2);
    assert_eq!(
        skopeo_digest(&format!("docker://{}/devfile-index:latest", target.host())),
        built.digest
    );
}

#[test]
fn collisions_and_naming_for_the_fixture_images() {
    let prefix = TargetPrefix::parse("registry.internal:5000/devfiles").unwrap();
    let go = r("registry.access.redhat.com/ubi9/go-toolset:1.24.4-1752083840");
    let jdk = r("openjdk:11-jdk");
    assert_eq!(jdk.to_string(), "docker.io/library/openjdk:11-jdk");
    assert_eq!(
        prefix.target_for(&go, Naming::Flat).to_string(),
        "registry.internal:5000/devfiles/go-toolset:1.24.4-1752083840"
    );
    assert_eq!(
        prefix.target_for(&jdk, Naming::Nested).to_string(),
        "registry.internal:5000/devfiles/docker.io/library/openjdk:11-jdk"
    );
    let other_jdk = r("quay.io/someone/openjdk:11-jdk");
    let errs = airgap::oci::naming::check_collisions(
        &prefix,
        Naming::Flat,
        [
            (&jdk, vec!["stacks/java-maven/Dockerfile"]),
            (&other_jdk, vec!["stacks/x/devfile.yaml"]),
            (&go, vec!["stacks/go"]),
        ],
    )
    .unwrap_err();
    assert_eq!(errs.len(), 1);
    let text = errs[0].to_string();
    assert!(
        text.contains("docker.io/library/openjdk:11-jdk")
            && text.contains("quay.io/someone/openjdk:11-jdk"),
        "{text}"
    );
    assert!(
        text.contains("stacks/java-maven/Dockerfile") && text.contains("stacks/x/devfile.yaml"),
        "{text}"
    );
}

/// A registry over TLS (its certificate a CA when `certificate_is_a_ca`) holding a one-layer
/// image (`seed`) at `repository:1`, pushed without verification.
async fn tls_upstream(
    certificate_is_a_ca: bool,
    repository: &str,
    seed: u64,
) -> (TestRegistry, GeneratedImage) {
    let upstream = TestRegistry::start_with(RegistryOptions {
        tls: true,
        certificate_is_a_ca,
        ..RegistryOptions::default()
    });
    let insecure = RegistryAccess::new(upstream.host(), Tls::Insecure);
    let setup = client_via("127.0.0.1:1", Credentials::anonymous());
    let img = image(seed, &[1500], "linux/amd64");
    push(&setup, &insecure, repository, Some("1"), &img.local).await;
    (upstream, img)
}

/// A client that pulls quay.io's images from `upstream` with `tls` and `ca_file`, trying once.
fn quay_from(upstream: &TestRegistry, tls: Tls, ca_file: Option<std::path::PathBuf>) -> Client {
    Client::new(ClientConfig {
        mirrors: vec![RegistryMirror {
            from: "quay.io".into(),
            to: MirrorTo::Registry {
                to: upstream.host(),
                tls,
                ca_file,
            },
        }],
        credentials: Credentials::anonymous(),
        jobs: 2,
        retry: RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        },
        progress: airgap::oci::progress::Progress::hidden(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_verify_with_a_private_ca_or_not_at_all() {
    let (upstream, img) = tls_upstream(false, "devfile/tls", 99).await;
    let target = TestRegistry::start();

    let with = |tls, ca_file| quay_from(&upstream, tls, ca_file);
    let image_ref = r("quay.io/devfile/tls:1");
    let err = with(Tls::Verify, None)
        .resolve(&image_ref)
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    let verified = with(Tls::Verify, Some(upstream.ca_file()));
    let resolved = verified.resolve(&image_ref).await.unwrap();
    assert_eq!(resolved.digest, img.digest);
    assert_eq!(
        with(Tls::Insecure, None)
            .resolve(&image_ref)
            .await
            .unwrap()
            .digest,
        img.digest
    );
    let outcome = verified
        .copy(
            &request(
                &resolved.image,
                &TargetPrefix::parse(&target.host()).unwrap(),
                Platforms::All,
            ),
            &Destination::Registry(target.access()),
        )
        .await
        .unwrap();
    assert_eq!(
        skopeo_digest(&format!("docker://{}/tls:1", target.host())),
        outcome.digest
    );
}

/// rustls refuses a server certificate that is a CA, even one the CA file names (OpenSSL and Go
/// accept it, and `openssl req -x509` makes one by default): the error says so and what to do,
/// and `tls="insecure"` still reaches the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_refuses_a_ca_certificate_as_the_server_s_and_says_what_to_do() {
    let (upstream, img) = tls_upstream(true, "devfile/ca", 98).await;

    let with = |tls, ca_file| quay_from(&upstream, tls, ca_file);
    let image_ref = r("quay.io/devfile/ca:1");
    let err = with(Tls::Verify, Some(upstream.ca_file()))
        .resolve(&image_ref)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&upstream.host()), "{err}");
    assert!(err.contains("CA:FALSE"), "{err}");
    assert!(err.contains("tls=\"insecure\""), "{err}");
    let resolved = with(Tls::Insecure, None).resolve(&image_ref).await.unwrap();
    assert_eq!(resolved.digest, img.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_fetched_once_per_scope_with_the_credentials() {
    let upstream = TestRegistry::start();
    let target = TestRegistry::start();
    let proxy = FaultProxy::start(&upstream.host()).await;
    let setup = client_via(&upstream.host(), Credentials::anonymous());
    let img = image(97, &[3000, 4000], "linux/amd64");
    push(
        &setup,
        &upstream.access(),
        "devfile/private",
        Some("1"),
        &img.local,
    )
    .await;
    proxy.require_bearer("robot", "t0ken-pass", "the-token");

    let anonymous = client_via(&proxy.host(), Credentials::anonymous());
    let err = anonymous
        .resolve(&r("quay.io/devfile/private:1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("found none for it"), "{err}");
    proxy.clear_seen();

    let credentials = Credentials::anonymous().with(
        proxy.host(),
        airgap::oci::auth::Credential::Basic {
            username: "robot".into(),
            password: "t0ken-pass".into(),
        },
    );
    let client = client_via(&proxy.host(), credentials);
    let resolved = client
        .resolve(&r("quay.io/devfile/private:1"))
        .await
        .unwrap();
    assert_eq!(resolved.digest, img.digest);
    let req = request(
        &resolved.image,
        &TargetPrefix::parse(&target.host()).unwrap(),
        Platforms::All,
    );
    client
        .copy(&req, &Destination::Registry(target.access()))
        .await
        .unwrap();
    assert_eq!(
        skopeo_digest(&format!("docker://{}/private:1", target.host())),
        img.digest
    );
    let tokens: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.path_and_query.starts_with("/token"))
        .collect();
    assert!(
        !tokens.is_empty() && tokens.iter().all(|t| t.status == 200),
        "{tokens:?}"
    );
    assert!(
        tokens.iter().all(|t| t
            .path_and_query
            .contains("scope=repository%3Adevfile%2Fprivate%3Apull")),
        "{tokens:?}"
    );
    assert!(
        tokens
            .iter()
            .all(|t| t.path_and_query.contains("service=test-registry")),
        "{tokens:?}"
    );
    assert_eq!(
        tokens.len(),
        1,
        "one token for the one pull scope, then cached: {tokens:?}"
    );
}
