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
