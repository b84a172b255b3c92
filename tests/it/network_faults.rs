//! Targets that do not answer: a stopped registry, a name that does not resolve. A connection
//! that cannot be made is not retried, the host is reported once, and what does not need it
//! is not held up by it.
//!
//! The world: the quickstart (images from its committed OCI layout, no upstream registry)
//! built for a registry target, real `docker-registry` processes (behind the fault-injecting
//! proxy for throttling), the real binary. Also the messages of the other network failures: a
//! missing file behind a `url-mirror`, missing or broken credentials, references by digest.

use std::path::Path;
use std::time::Duration;

use airgap::oci::auth::Credentials;
use airgap::oci::mirror::{RegistryMirror, Tls};
use airgap::oci::naming::TargetRef;
use airgap::oci::reference::ImageRef;
use airgap::oci::retry::RetryPolicy;
use airgap::oci::{Client, ClientConfig, Destination};

use crate::quickstart::fresh_example;
use crate::support::registry::{
    FaultKind, FaultProxy, RegistryOptions, TestRegistry, anonymous_client, image,
};
use crate::support::*;

/// The quickstart in `ws`, for the registry target `host/devfiles` over plain HTTP.
pub(crate) fn quickstart_for_registry(ws: &Path, host: &str) {
    fresh_example(ws);
    let manifest = std::fs::read_to_string(ws.join("airgap.kdl")).unwrap();
    let retargeted = manifest.replace(
        "target \"dir:out\"",
        &format!("target \"{host}/devfiles\" tls=\"plain-http\""),
    );
    assert_ne!(retargeted, manifest, "the quickstart's target moved");
    std::fs::write(ws.join("airgap.kdl"), retargeted).unwrap();
}

fn lines_starting(stderr: &str, word: &str) -> Vec<String> {
    stderr
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with(word))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_stopped_target_stops_the_apply_at_once_with_one_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let target = TestRegistry::start();
    let host = format!("127.0.0.1:{}", target.port);
    quickstart_for_registry(&ws, &host);
    airgap(&ws, &["lock"]).ok();
    // The registry was there when the manifest was written; it is stopped (killed and reaped,
    // so its port refuses connections) before the apply reaches it.
    drop(target);

    let run = airgap(&ws, &["apply", "--locked"]).fails(1);
    let retries = lines_starting(&run.stderr, "retrying");
    assert!(
        retries.is_empty(),
        "a refused connection is not retried:\n{}",
        run.stderr
    );
    // One step line, one summary line: the host is reported once.
    let failed = lines_starting(&run.stderr, "Failed");
    let step_failures: Vec<&String> = failed
        .iter()
        .filter(|l| !l.contains(" steps in "))
        .collect();
    assert_eq!(step_failures.len(), 1, "{}", run.stderr);
    assert!(
        step_failures[0].contains(&format!("cannot connect to `{host}`")),
        "{}",
        run.stderr
    );
    let err = run.err_text();
    assert!(err.contains("1 of "), "{err}");
    assert_eq!(
        err.matches(&format!("cannot connect to `{host}`")).count(),
        2,
        "once on the step's line, once in the error:\n{}",
        run.stderr
    );
    // The other image steps did not knock again: they are counted as skipped.
    let summary = failed
        .iter()
        .find(|l| l.contains(" steps in "))
        .unwrap_or_else(|| panic!("no summary line:\n{}", run.stderr));
    assert!(
        summary.contains(", 1 failed") && summary.contains(" skipped"),
        "{summary}"
    );
    // The steps that do not need the target still ran, and are recorded.
    assert!(!summary.contains(" 0 ran"), "{summary}");
}

#[test]
fn push_to_a_name_that_does_not_resolve_is_one_error_with_a_help_line() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    // The bundle names a registry that is never contacted: it is built offline.
    quickstart_for_registry(&ws, "registry.internal:5000");
    airgap(&ws, &["apply", "--bundle", "../bundle"]).ok();

    let run = airgap(&ws, &["push", "../bundle", "--to", "nosuch.invalid:5000"]).fails(1);
    assert!(
        lines_starting(&run.stderr, "retrying").is_empty(),
        "an unknown name is not retried:\n{}",
        run.stderr
    );
    // Nothing was started: no image line, no summary, just the error.
    assert!(
        !run.stderr.contains("copying") && !run.stderr.contains("Pushing"),
        "{}",
        run.stderr
    );
    let err = run.err_text();
    assert_eq!(
        err.matches("cannot connect to `nosuch.invalid:5000`")
            .count(),
        1,
        "{}",
        run.stderr
    );
    let help: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("help:"))
        .collect();
    assert_eq!(help.len(), 1, "{}", run.stderr);
    assert!(
        err.contains("nothing was pushed") && err.contains("--to") && err.contains("--tls"),
        "{err}"
    );
}

#[test]
fn a_missing_file_behind_a_url_mirror_is_named_not_reported_as_http_404() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    fresh_example(&ws);
    let icon = ws.join("mirror/example.com/icons/go.svg");
    std::fs::remove_file(&icon).unwrap();

    let run = airgap(&ws, &["lock"]).fails(1);
    let err = run.err_text().replace(' ', "");
    assert!(
        err.contains("`https://example.com/icons/go.svg`isreadfromthefile")
            && err.contains("mirror/example.com/icons/go.svg`,whichdoesnotexist"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("HTTP 404"), "{}", run.stderr);
    assert!(!ws.join("airgap.lock").exists());
}

#[test]
fn a_registry_that_wants_credentials_none_were_found_for_says_where_airgap_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let target = TestRegistry::start_with(RegistryOptions {
        basic_auth: Some(("robot".into(), "s3cret-pass".into())),
        ..RegistryOptions::default()
    });
    quickstart_for_registry(&ws, &target.host());
    airgap(&ws, &["lock"]).ok();

    // No credentials file anywhere: nothing was sent, so nothing was "refused".
    let run = airgap(&ws, &["apply", "--locked"]).fails(1);
    let err = run.err_text().replace(' ', "");
    let host = target.host();
    assert!(
        err.contains(&format!("`{host}`askedforcredentials"))
            && err.contains("foundnoneforit")
            && err.contains(&format!(
                "`{}`(nosuchfile)",
                ws.join(".docker/config.json")
                    .display()
                    .to_string()
                    .replace(' ', "")
            )),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("refused the credentials"),
        "{}",
        run.stderr
    );

    // A broken `$REGISTRY_AUTH_FILE` is named once, with why, and listed as looked at.
    let broken = tmp.path().join("auth.json");
    std::fs::write(&broken, "{\"auths\": {").unwrap();
    let run: Run = airgap_cmd(&ws)
        .env("REGISTRY_AUTH_FILE", &broken)
        .args(["apply", "--locked"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains(&format!("`{}`", broken.display()))
            && warnings[0].contains("EOF while parsing"),
        "{}",
        warnings[0]
    );
    assert!(
        run.err_text()
            .replace(' ', "")
            .contains(&format!("`{}`(notJSON)", broken.display()).replace(' ', "")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_reference_by_digest_is_printed_with_an_at_sign() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    fresh_example(&ws);
    let upstream = TestRegistry::start();
    let missing = format!("sha256:{}", "0".repeat(64));
    let manifest = std::fs::read_to_string(ws.join("airgap.kdl")).unwrap();
    std::fs::write(
        ws.join("airgap.kdl"),
        format!(
            "{manifest}\nregistry-mirror \"docker.io\" to=\"{}\" tls=\"plain-http\"\n\
             images {{\n    include \"docker.io/airgap-test/gone@{missing}\"\n}}\n",
            upstream.host()
        ),
    )
    .unwrap();

    let run = airgap(&ws, &["lock"]).fails(1);
    let err = run.err_text().replace(' ', "");
    assert!(
        err.contains(&format!(
            "`{}/airgap-test/gone@{missing}`wasnotfound",
            upstream.host()
        )),
        "{}",
        run.stderr
    );
    assert!(!err.contains(&format!("gone:{missing}")), "{}", run.stderr);
}

/// A registry at `proxy` whose `quay.io/devfile/busy:1` is an image, and a client whose
/// backoff is an hour: only an honoured `Retry-After: 0` lets a retry happen in time.
async fn throttled_setup(
    upstream: &TestRegistry,
    proxy: &FaultProxy,
    credentials: Credentials,
) -> (Client, airgap::oci::digest::Digest) {
    let img = image(31, &[800], "linux/amd64");
    anonymous_client()
        .push_image(
            &img.local,
            &TargetRef {
                host: upstream.host(),
                repository: "devfile/busy".into(),
                tag: Some("1".into()),
            },
            &Destination::Registry(upstream.access()),
        )
        .await
        .unwrap();
    let client = Client::new(ClientConfig {
        mirrors: vec![RegistryMirror::registry(
            "quay.io",
            proxy.host(),
            Tls::PlainHttp,
        )],
        credentials,
        jobs: 2,
        retry: RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_secs(3600),
            max_delay: Duration::from_secs(3600),
        },
        progress: airgap::oci::progress::Progress::hidden(),
    });
    (client, img.digest)
}

/// `quay.io/devfile/busy:1` resolved through `proxy`, whose GET and HEAD of the manifest are
/// each throttled once (`Retry-After: 0`): its digest; fails with `why` when it takes the
/// normal backoff.
async fn resolve_throttled_once(
    client: &Client,
    proxy: &FaultProxy,
    why: &str,
) -> airgap::oci::digest::Digest {
    proxy.fault("GET", "/manifests/1", FaultKind::Throttled(0), 1);
    proxy.fault("HEAD", "/manifests/1", FaultKind::Throttled(0), 1);
    tokio::time::timeout(
        Duration::from_secs(60),
        client.resolve(&ImageRef::parse("quay.io/devfile/busy:1").unwrap()),
    )
    .await
    .expect(why)
    .unwrap()
    .digest
}

/// A 429 is retried after the `Retry-After` the registry sent, not after the backoff.
/// oci-client's errors carry no headers, so airgap asks again with one HEAD of the same
/// manifest, which the throttling registry answers with the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_request_is_retried_after_the_delay_the_registry_asked_for() {
    let upstream = TestRegistry::start();
    let proxy = FaultProxy::start(&upstream.host()).await;
    let (client, digest) = throttled_setup(&upstream, &proxy, Credentials::anonymous()).await;
    let resolved_digest = resolve_throttled_once(
        &client,
        &proxy,
        "the retry waited for the backoff, not for Retry-After",
    )
    .await;
    assert_eq!(resolved_digest, digest);
    assert_eq!(proxy.fired("/manifests/1"), 2, "the GET and the HEAD");
    assert_eq!(
        proxy.count("GET", "/manifests/1"),
        2,
        "one 429, then the answer"
    );
    assert_eq!(proxy.count("HEAD", "/manifests/1"), 1);
}

/// The HEAD that reads `Retry-After` carries the same credentials as the request it stands
/// for: behind token auth, a HEAD without the token would be refused (401, no `Retry-After`)
/// and the retry would wait for the hour-long backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_request_behind_token_auth_reads_the_delay_with_the_token() {
    let upstream = TestRegistry::start();
    let proxy = FaultProxy::start(&upstream.host()).await;
    let credentials = Credentials::anonymous().with(
        proxy.host(),
        airgap::oci::auth::Credential::Basic {
            username: "robot".into(),
            password: "t0ken-pass".into(),
        },
    );
    let (client, digest) = throttled_setup(&upstream, &proxy, credentials).await;
    proxy.require_bearer("robot", "t0ken-pass", "the-token");
    let resolved_digest = resolve_throttled_once(
        &client,
        &proxy,
        "the HEAD went without the token, so no Retry-After was read",
    )
    .await;
    assert_eq!(resolved_digest, digest);
    let heads: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "HEAD" && s.path_and_query.contains("/manifests/1"))
        .map(|s| s.status)
        .collect();
    assert_eq!(heads, [429], "one HEAD, authorized and throttled");
}

/// A request that is not throttled costs nothing extra: no HEAD follows a plain 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_throttled_request_is_asked_again_for_its_delay() {
    let upstream = TestRegistry::start();
    let proxy = FaultProxy::start(&upstream.host()).await;
    let (_, digest) = throttled_setup(&upstream, &proxy, Credentials::anonymous()).await;
    proxy.fault("GET", "/manifests/1", FaultKind::Status(500), 1);
    let client = Client::new(ClientConfig {
        mirrors: vec![RegistryMirror::registry(
            "quay.io",
            proxy.host(),
            Tls::PlainHttp,
        )],
        credentials: Credentials::anonymous(),
        jobs: 2,
        retry: RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        },
        progress: airgap::oci::progress::Progress::hidden(),
    });
    let resolved = client
        .resolve(&ImageRef::parse("quay.io/devfile/busy:1").unwrap())
        .await
        .unwrap();
    assert_eq!(resolved.digest, digest);
    assert_eq!(proxy.count("GET", "/manifests/1"), 2);
    assert_eq!(proxy.count("HEAD", "/manifests/"), 0);
}
