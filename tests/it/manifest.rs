//! Manifest diagnostics: every invalid manifest in `tests/fixtures/invalid/<case>/airgap.kdl`
//! fails `airgap lock` with exit code 1, before touching the network or the workspace, and
//! its diagnostic (rendered without colour) matches the snapshot.

use crate::support::*;

#[test]
fn invalid_manifests_have_snapshotted_diagnostics() {
    let root = own_fixtures().join("invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 12,
        "at least 12 invalid manifests, found {}",
        cases.len()
    );
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            root.join(&case).join("airgap.kdl"),
            dir.path().join("airgap.kdl"),
        )
        .unwrap();
        let run = airgap(dir.path(), &["lock"]).fails(1);
        assert!(
            !dir.path().join("airgap.lock").exists() && !dir.path().join(".airgap").exists(),
            "{case}: an invalid manifest must leave the workspace untouched"
        );
        insta::assert_snapshot!(format!("invalid-{case}"), run.stderr);
    }
}
