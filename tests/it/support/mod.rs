//! Test harness: temp workspaces, real services on 127.0.0.1, fixture paths.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared fixtures (`../shared/fixtures` next to the repository), read-only.
pub fn fixtures() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for candidate in [here.join("../shared/fixtures"), here.join("tests/fixtures/shared")] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!("shared fixtures not found next to the repository");
}
