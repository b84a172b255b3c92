//! The one integration-test binary: every test runs real parts (the `airgap` binary, a real
//! `docker-registry`, real git repositories) in temp folders.

mod lock;
mod manifest;
mod schema;
mod support;

mod archive;
mod index;
mod rewrite;
