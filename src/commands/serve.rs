//! `airgap serve DIR`: the devfile registry REST API and a read-only OCI registry over a built
//! folder ([`crate::serve`]).

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use crate::error::{IoError, Report};
use crate::serve::connections::Limits;

/// `airgap serve DIR [--addr A] [--verbose]` with the connection `limits`.
pub fn run(
    dir: &Path,
    addr: SocketAddr,
    verbose: bool,
    limits: Limits,
) -> Result<ExitCode, Report> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| IoError::report("cannot start the async runtime", e))?;
    let options = crate::serve::ServeOptions { verbose, limits };
    runtime
        .block_on(crate::serve::serve(dir, addr, options))
        .map_err(|e| Box::new(e) as Report)?;
    Ok(ExitCode::SUCCESS)
}
