//! Test harness: temp workspaces, real services on 127.0.0.1, fixture paths.
#![allow(dead_code)]

use std::path::PathBuf;

/// The upstream fixtures (a copy of the project's shared fixtures, kept in the repository so
/// a clean clone tests the same data). Read-only: a test that must change one copies it.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upstream")
}
pub mod registry;
