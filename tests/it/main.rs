//! The one integration-test binary: every test runs real parts (the `airgap` binary, a real
//! `docker-registry`, real git repositories) in temp folders.

mod serve;
mod support;
