//! `airgap` builds an offline devfile registry from a manifest kept in version control.
//!
//! The flow is `Manifest ──lock──▶ Lockfile ──plan──▶ Plan ──exec──▶ outputs`; only `lock`
//! talks to upstreams to resolve names (refs, tags) into content addresses.

pub mod archive;
pub mod cli;
pub mod index;
pub mod oci;
pub mod serve;

/// Runs the command line and maps the outcome to an exit code.
pub fn run() -> std::process::ExitCode {
    cli::main()
}
