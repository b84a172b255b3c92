//! `airgap verify` and `airgap audit` on an applied community registry.

use crate::support::world::World;
use crate::support::*;

#[test]
fn verify_and_audit_pass_on_a_clean_build_and_name_what_was_broken() {
    let w = World::community();
    w.write_manifest("");
    airgap(&w.workspace, &["apply"]).ok();
    let out = w.workspace.join("out");

    let run = airgap(&w.workspace, &["verify"]).ok();
    assert!(run.stderr.contains("Verified"), "{}", run.stderr);
    // Samples keep their upstream repositories: notes, not failures.
    assert!(run.stderr.contains("Note"), "{}", run.stderr);
    // audit rebuilds from the caches: the upstream HTTP server sees no request.
    let before = w.http.requests();
    let run = airgap(&w.workspace, &["audit"]).ok();
    assert!(run.stderr.contains("Audited"), "{}", run.stderr);
    assert_eq!(
        w.http.requests(),
        before,
        "a warm audit does not touch the network"
    );

    // One output tampered with: audit fails and names it.
    let devfile = out.join("registry/stacks/go/2.6.0/devfile.yaml");
    let text = std::fs::read_to_string(&devfile).unwrap();
    std::fs::write(
        &devfile,
        text.replace("memoryLimit: 1024Mi", "memoryLimit: 2048Mi"),
    )
    .unwrap();
    let run = airgap(&w.workspace, &["audit"]).fails(1);
    assert!(
        run.err_text().contains(
            "registry/stacks/go/2.6.0/devfile.yaml on the target differs from its rebuild"
        ),
        "{}",
        run.stderr
    );
    // …and a devfile pointing upstream again is a verify finding.
    std::fs::write(
        &devfile,
        text.replace(
            "localhost:8080/go-toolset",
            "registry.access.redhat.com/ubi9/go-toolset",
        ),
    )
    .unwrap();
    let run = airgap(&w.workspace, &["verify"]).fails(1);
    assert!(
        run.err_text()
            .contains("registry/stacks/go/2.6.0/devfile.yaml:"),
        "{}",
        run.stderr
    );
    assert!(
        run.err_text()
            .contains("names `registry.access.redhat.com`"),
        "{}",
        run.stderr
    );
    std::fs::write(&devfile, &text).unwrap();

    // A blob deleted from the target: verify fails, naming it.
    let lock = airgap::lock::read("airgap.lock", &w.lock_text()).unwrap();
    let (_, img) = lock
        .images
        .iter()
        .find(|(k, _)| k.contains("go-toolset:1.25"))
        .unwrap();
    let manifest = std::fs::read(
        out.join("blobs/sha256").join(
            img.resolved
                .as_ref()
                .unwrap()
                .digest
                .trim_start_matches("sha256:"),
        ),
    )
    .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    std::fs::remove_file(
        out.join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:")),
    )
    .unwrap();
    let run = airgap(&w.workspace, &["verify"]).fails(1);
    assert!(
        run.err_text().contains(&format!("blob {layer}")),
        "{}",
        run.stderr
    );
    assert!(run.err_text().contains("is missing"), "{}", run.stderr);
}
