//! `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`: the quickstart, locked and applied with every
//! byte from the network (its images from an upstream registry over TLS with a CA file, its
//! zips and icons from an HTTP server, into a registry target over plain HTTP), through a
//! loopback proxy (`support::proxy`) that records what it relays. All of it on 127.0.0.1:
//! loopback is proxied like any other address unless `NO_PROXY` says otherwise.

use std::path::Path;

use airgap::oci::layout::Layout;
use airgap::oci::mirror::{RegistryAccess, Tls};

use crate::quickstart::fresh_example;
use crate::support::http::HttpServer;
use crate::support::proxy::Proxy;
use crate::support::registry::{RegistryOptions, TestRegistry, anonymous_client};
use crate::support::*;

/// An upstream holding the quickstart's images (TLS, self-signed), and an HTTP server with its
/// zips and icons under `/example.com/…`.
struct Upstreams {
    images: TestRegistry,
    files: HttpServer,
}

fn upstreams() -> Upstreams {
    let images = TestRegistry::start_with(RegistryOptions {
        tls: true,
        ..RegistryOptions::default()
    });
    let layout = Layout::open_existing(example_mirror().join("images")).unwrap();
    let mut access = RegistryAccess::new(images.host(), Tls::Verify);
    access.ca_file = Some(images.ca_file());
    let pushed = block_on(async { anonymous_client().push_layout(&layout, &access).await });
    assert!(!pushed.is_empty());
    for (image, result) in pushed {
        result.unwrap_or_else(|e| panic!("{}: {e}", image.repository));
    }
    let files = HttpServer::start();
    let root = example_mirror().join("example.com");
    for (path, bytes) in tree(&root) {
        files.put(&format!("/example.com/{path}"), bytes);
    }
    Upstreams { images, files }
}

fn example_mirror() -> std::path::PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/mirror")
}

use std::path::PathBuf;

/// The quickstart in `ws` with its mirrors on the network and `target` as its target; the
/// local mirror folder removed, so nothing can come from disk.
fn networked_quickstart(ws: &Path, up: &Upstreams, target: &TestRegistry) {
    fresh_example(ws);
    std::fs::remove_dir_all(ws.join("mirror")).unwrap();
    let manifest = std::fs::read_to_string(ws.join("airgap.kdl")).unwrap();
    let edited = manifest
        .replace(
            "target \"dir:out\"",
            &format!("target \"{}/devfiles\" tls=\"plain-http\"", target.host()),
        )
        .replace(
            "to=\"./mirror/example.com/\"",
            &format!("to=\"{}/example.com/\"", up.files.base()),
        )
        .replace(
            "to=\"dir:./mirror/images\"",
            &format!(
                "to=\"{}\" ca-file=\"{}\"",
                up.images.host(),
                up.images.ca_file().display()
            ),
        );
    assert_eq!(edited.matches("127.0.0.1").count(), 3, "{edited}");
    std::fs::write(ws.join("airgap.kdl"), edited).unwrap();
}

fn run_with_proxy(ws: &Path, proxy: &Proxy, no_proxy: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = airgap_cmd(ws);
    cmd.env("HTTPS_PROXY", proxy.url())
        .env("HTTP_PROXY", proxy.url())
        .args(args);
    if let Some(n) = no_proxy {
        cmd.env("NO_PROXY", n);
    }
    cmd.output().expect("the airgap binary runs").into()
}

#[test]
fn lock_and_apply_go_through_the_proxy_and_no_proxy_bypasses_it() {
    let up = upstreams();
    let target = TestRegistry::start();
    let proxy = Proxy::start();
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    networked_quickstart(&ws, &up, &target);

    run_with_proxy(&ws, &proxy, None, &["lock"]).ok();
    let files_host = format!("127.0.0.1:{}", up.files.port);
    // The registry over TLS is reached through a tunnel; the plain HTTP server by
    // absolute-form requests, one per download.
    assert!(
        proxy
            .seen()
            .contains(&format!("CONNECT {} HTTP/1.1", up.images.host())),
        "{:?}",
        proxy.seen()
    );
    assert!(proxy.count_for(&files_host) > 0, "{:?}", proxy.seen());
    assert_eq!(
        proxy.count_for(&target.host()),
        0,
        "lock does not touch the target"
    );
    let downloads = up.files.requests();
    assert!(downloads > 0);

    proxy.clear();
    run_with_proxy(&ws, &proxy, None, &["apply", "--locked"]).ok();
    assert!(
        proxy.count_for(&target.host()) > 0,
        "apply pushed through the proxy: {:?}",
        proxy.seen()
    );
    assert!(
        proxy
            .seen()
            .contains(&format!("CONNECT {} HTTP/1.1", up.images.host())),
        "apply pulled through the proxy: {:?}",
        proxy.seen()
    );
    let relayed = proxy.seen().len();
    assert!(relayed > 2, "{:?}", proxy.seen());

    // NO_PROXY: the same work in a fresh workspace, to a fresh target, and the proxy sees
    // nothing at all while every service is still used.
    let bypassed_target = TestRegistry::start();
    let ws2 = tmp.path().join("ws2");
    networked_quickstart(&ws2, &up, &bypassed_target);
    proxy.clear();
    run_with_proxy(&ws2, &proxy, Some("127.0.0.1"), &["lock"]).ok();
    run_with_proxy(&ws2, &proxy, Some("127.0.0.1"), &["apply", "--locked"]).ok();
    assert_eq!(proxy.seen(), Vec::<String>::new());
    assert!(up.files.requests() > downloads, "the downloads did happen");
    let index = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!(
                "docker://{}/devfiles/devfile-index:latest",
                bypassed_target.host()
            ),
        ])
        .output()
        .unwrap();
    assert!(
        index.status.success(),
        "the bypassing apply landed its index image: {}",
        String::from_utf8_lossy(&index.stderr)
    );
}
