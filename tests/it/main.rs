//! The one integration-test binary: every test runs real parts (the `airgap` binary, a real
//! `docker-registry`, real git repositories) in temp folders.

mod apply;
mod archive;
mod audit;
mod bundle;
mod deploy;
mod index;
mod index_image;
mod init;
mod json_output;
mod layout_kill;
mod lock;
mod lock_scope;
mod manifest;
mod network_faults;
mod noop;
mod oci;
mod parser_robust;
mod platforms;
mod progress_wording;
mod proxy;
mod prune;
mod quickstart;
mod readme;
mod repair;
mod rewrite;
mod schema;
mod secrets_serve;
mod serve;
mod serve_live;
mod storage_integrity;
mod support;
mod target_safety;
mod text_refs;
mod upstream_server;
