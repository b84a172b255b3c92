//! `airgap` builds an offline devfile registry from a manifest kept in version control.
//!
//! The flow is `Manifest ──lock──▶ Lockfile ──plan──▶ Plan ──exec──▶ outputs`; only `lock`
//! talks to upstreams to resolve names (refs, tags) into content addresses.

pub mod archive;
pub mod audit;
pub mod bundle;
pub mod checkout;
pub mod cli;
pub mod commands;
pub mod context;
pub mod deploy;
pub mod devfile;
pub mod diag;
pub mod discover;
pub mod error;
pub mod escape;
pub mod exec;
pub mod fetch;
pub mod git;
pub mod index;
pub mod kdl_read;
pub mod kdl_text;
pub mod lock;
pub mod machine;
pub mod manifest;
pub mod oci;
pub mod plan;
pub mod rewrite;
pub mod serve;
pub mod source;
pub mod staging;
pub mod state;
pub mod steps;
pub mod target;
pub mod tls;
pub mod tree_paths;
pub mod ui;
pub mod url_mirror;
pub mod userinfo;
pub mod workspace;

/// Runs the command line and maps the outcome to an exit code.
pub fn run() -> std::process::ExitCode {
    cli::main()
}
