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

/// With `naming="nested"` the mirrored references keep the upstream host as a path component
/// under the target (`localhost:8080/quay.io/…`): inside the gap, so verify passes; an image put
/// back upstream is still a finding.
#[test]
fn verify_accepts_nested_names_under_the_target_and_still_finds_upstream_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("qs");
    crate::quickstart::fresh_example(&ws);
    let kdl = ws.join("airgap.kdl");
    let text = std::fs::read_to_string(&kdl).unwrap();
    let nested = if text.contains("\nimages {") {
        text.replacen("\nimages {", "\nimages naming=\"nested\" {", 1)
    } else {
        format!("{text}\nimages naming=\"nested\"\n")
    };
    std::fs::write(&kdl, nested).unwrap();
    airgap(&ws, &["apply"]).ok();
    let devfile = ws.join("out/registry/stacks/hello-go/devfile.yaml");
    let built = std::fs::read_to_string(&devfile).unwrap();
    assert!(
        built.contains("image: localhost:8080/quay.io/airgap-example/go-toolset:1.22@sha256:"),
        "nested naming keeps the upstream path: {built}"
    );

    let run = airgap(&ws, &["verify"]).ok();
    assert!(!run.stderr.contains("names `quay.io`"), "{}", run.stderr);

    // The same image named upstream again: a finding, naming the field.
    std::fs::write(
        &devfile,
        built.replace("localhost:8080/quay.io/", "quay.io/"),
    )
    .unwrap();
    let run = airgap(&ws, &["verify"]).fails(1);
    assert!(
        run.err_text().contains(
            "registry/stacks/hello-go/devfile.yaml: components[runtime].container.image names `quay.io`"
        ),
        "{}",
        run.stderr
    );
}
