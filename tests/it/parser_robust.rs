//! Hostile manifests and lockfiles: deep nesting, endless or huge files. The real binary
//! exits with a diagnostic and code 1, never with a signal, and leaves the files it read as they
//! were.

use std::path::Path;

use crate::support::*;

/// Runs `airgap plan` in `dir` and checks that it failed with a diagnostic (exit code 1, not
/// a signal) whose text contains `expected`.
#[track_caller]
fn plan_refuses(dir: &Path, args: &[&str], expected: &str) -> Run {
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    let run = airgap(dir, &all).fails(1);
    assert!(
        run.err_text().contains(expected),
        "expected `{expected}` in:\n{}",
        run.stderr
    );
    run
}

#[test]
fn deeply_nested_manifest_is_a_diagnostic_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{".repeat(1500), "blocks are nested more than 64 deep"),
        (
            format!(
                "source \"a\" path=\".\" {}{}",
                "a {".repeat(2000),
                "}".repeat(2000)
            ),
            "blocks are nested more than 64 deep",
        ),
        (
            format!("{}{}", "/*".repeat(5000), "*/".repeat(5000)),
            "comments are nested more than 64 deep",
        ),
        (
            format!("/*{}*/", "*".repeat(50_000)),
            "comment holds more than 4096",
        ),
        ("a (".repeat(5000), "more than 64 `(` are open at once"),
        (
            format!("a {}1", "/- ".repeat(5000)),
            "more than 64 `/-` in a row",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.path().join("airgap.kdl"), &text).unwrap();
        let run = plan_refuses(dir.path(), &[], expected);
        assert!(run.err_text().contains("airgap::manifest::too-deep"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("airgap.kdl")).unwrap(),
            text
        );
    }
}

#[test]
fn deeply_nested_lockfile_is_a_diagnostic_not_a_crash() {
    let dir = empty_source_workspace();
    let lock = format!(
        "version 1\ntarget \"x\" naming=\"flat\"\nstack \"ours\" \"go/1.0.0\" devfile=\"abc\" {}{}\n",
        "file {".repeat(2000),
        "}".repeat(2000)
    );
    std::fs::write(dir.path().join("airgap.lock"), &lock).unwrap();
    let run = plan_refuses(dir.path(), &[], "blocks are nested more than 64 deep");
    assert!(run.err_text().contains("airgap::lock::syntax"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("airgap.lock")).unwrap(),
        lock
    );
}

#[test]
fn endless_manifest_is_refused_after_the_size_limit() {
    // /dev/zero reports a size of 0 and never ends: only a read with a limit stops.
    let dir = tempfile::tempdir().unwrap();
    plan_refuses(
        dir.path(),
        &["-m", "/dev/zero"],
        "`/dev/zero` is larger than 1 MiB",
    );
}

#[test]
fn huge_manifest_and_lockfile_are_refused() {
    let dir = empty_source_workspace();
    let manifest = dir.path().join("airgap.kdl");
    let small = std::fs::read_to_string(&manifest).unwrap();
    // Valid KDL: one comment line, just over the limit.
    let huge = format!("{small}// {}\n", "x".repeat(1 << 20));
    std::fs::write(&manifest, &huge).unwrap();
    plan_refuses(dir.path(), &[], "is larger than 1 MiB");
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), huge);

    std::fs::write(&manifest, &small).unwrap();
    let lock = format!(
        "version 1\ntarget \"x\" naming=\"flat\"\n// {}\n",
        "x".repeat(16 << 20)
    );
    std::fs::write(dir.path().join("airgap.lock"), &lock).unwrap();
    plan_refuses(dir.path(), &[], "is larger than 16 MiB");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("airgap.lock")).unwrap(),
        lock
    );
}

#[test]
fn lockfile_type_annotations_are_refused() {
    let dir = empty_source_workspace();
    let lock =
        "version 1\ntarget (u8)\"x\" naming=\"flat\"\n(t)source \"ours\" path=\"registry\"\n";
    std::fs::write(dir.path().join("airgap.lock"), lock).unwrap();
    let run = plan_refuses(dir.path(), &[], "type annotation `(u8)` in the lockfile");
    assert!(
        run.err_text()
            .contains("type annotation `(t)` in the lockfile")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("airgap.lock")).unwrap(),
        lock
    );
}
