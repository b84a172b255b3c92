//! The one integration-test binary: every test runs real parts (the `airgap` binary, a real
//! `docker-registry`, real git repositories) in temp folders.

mod apply;
mod archive;
mod audit;
mod bundle;
mod index;
mod index_image;
mod lock;
mod manifest;
mod oci;
mod parser_robust;
mod quickstart;
mod readme;
mod rewrite;
mod schema;
mod serve;
mod support;
