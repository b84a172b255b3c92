//! `airgap serve DIR`: the devfile registry REST API and a read-only OCI registry over a built
//! folder ([`crate::serve`]).

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use crate::error::{IoError, Report};
use crate::serve::connections::Limits;

/// `airgap serve [DIR] [--addr A] [--verbose]` with the connection `limits`. Without DIR, the
/// manifest's `dir:` target is served (else the current folder); when the folder is that
/// target and `--addr` has another port than its `address=`, a warning says the devfiles'
/// links point elsewhere.
pub fn run(
    manifest: &Path,
    dir: Option<&Path>,
    addr: SocketAddr,
    verbose: bool,
    limits: Limits,
) -> Result<ExitCode, Report> {
    // Without a folder the manifest decides, so a manifest that does not load is an error;
    // with one, the manifest only tells whether to warn about the address.
    let target = match dir_target(manifest) {
        Ok(t) => t,
        Err(e) if dir.is_none() => return Err(e),
        Err(_) => None,
    };
    let dir = match (dir, &target) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some((path, _))) => path.clone(),
        (None, None) => std::path::PathBuf::from("."),
    };
    if let Some((path, address)) = &target {
        let same = |a: &Path, b: &Path| {
            a.canonicalize()
                .ok()
                .is_some_and(|a| Some(a) == b.canonicalize().ok())
        };
        let port = address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        if same(&dir, path) && port != Some(addr.port()) {
            crate::ui::status(
                "Warning",
                format!(
                    "the devfiles in `{}` point at http://{address}/ (the target's `address=`), \
                     but this server listens on {addr}: clients following those links will \
                     not reach it; serve with `--addr` on port {} or change `address=` and apply",
                    dir.display(),
                    port.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
                ),
            );
        }
    }
    let dir = dir.as_path();
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| IoError::report("cannot start the async runtime", e))?;
    let options = crate::serve::ServeOptions { verbose, limits };
    runtime
        .block_on(crate::serve::serve(dir, addr, options))
        .map_err(|e| Box::new(e) as Report)?;
    Ok(ExitCode::SUCCESS)
}

/// The manifest's `dir:` target folder and `address=`: `None` when there is no manifest or
/// its target is a registry; the manifest's diagnostics when it does not load.
fn dir_target(manifest: &Path) -> Result<Option<(std::path::PathBuf, String)>, Report> {
    if !manifest.is_file() {
        return Ok(None);
    }
    let m = crate::workspace::load_manifest(manifest)?;
    Ok(match &m.target.kind {
        crate::manifest::TargetKind::Dir { path, address } => {
            Some((m.resolve_path(path), address.clone()))
        }
        _ => None,
    })
}
