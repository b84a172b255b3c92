//! `airgap serve DIR`: the devfile registry REST API and a read-only OCI registry over a built
//! folder ([`crate::serve`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::error::{IoError, Report};
use crate::serve::ServeOptions;

/// `airgap serve [DIR] [--addr A] [--verbose] [--tls-cert F --tls-key F]` with the connection
/// limits of `options`. Without DIR, the manifest's `dir:` target is served (else the current
/// folder). When the folder is that target, it is reloaded each time an apply of the
/// workspace finishes, and a warning says when `--addr` has another port than its
/// `address=` (the devfiles' image references then lead elsewhere).
pub fn run(
    manifest: &Path,
    dir: Option<&Path>,
    addr: SocketAddr,
    mut options: ServeOptions,
) -> Result<ExitCode, Report> {
    // Without a folder the manifest decides, so a manifest that does not load is an error;
    // with one, the manifest only tells whether to warn about the address and what to watch.
    let target = match dir_target(manifest) {
        Ok(t) => t,
        Err(e) if dir.is_none() => return Err(e),
        Err(_) => None,
    };
    let dir = match (dir, &target) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(t)) => t.path.clone(),
        (None, None) => PathBuf::from("."),
    };
    if let Some(target) = target.filter(|t| same_folder(&dir, &t.path)) {
        warn_about_address(&dir, &target.address, addr, options.tls.is_some());
        options.watch = Some(target.state_file);
    }
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| IoError::report("cannot start the async runtime", e))?;
    runtime
        .block_on(crate::serve::serve(&dir, addr, options))
        .map_err(|e| Box::new(e) as Report)?;
    Ok(ExitCode::SUCCESS)
}

fn same_folder(a: &Path, b: &Path) -> bool {
    a.canonicalize()
        .ok()
        .is_some_and(|a| Some(a) == b.canonicalize().ok())
}

/// The devfiles name images as `ADDRESS/name:tag`, without a scheme (`address=` cannot have
/// one): the container runtime picks it, HTTPS unless the registry is configured as
/// insecure. So only the port can disagree with `--addr`; the warning names the scheme this
/// server speaks so the fix is complete.
fn warn_about_address(dir: &Path, address: &str, addr: SocketAddr, tls: bool) {
    let port = address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok());
    if port == Some(addr.port()) {
        return;
    }
    let scheme = if tls { "https" } else { "http" };
    crate::ui::status(
        "Warning",
        format!(
            "the devfiles in `{}` name their images at `{address}` (the target's `address=`), \
             but this server listens on {scheme}://{addr}: clients following those references \
             will not reach it; serve with `--addr` on port {} or change `address=` and apply",
            dir.display(),
            port.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        ),
    );
}

/// The manifest's `dir:` target.
struct DirTarget {
    path: PathBuf,
    /// Its `address=`: `host[:port]`, no scheme.
    address: String,
    /// The workspace's state file, which every apply rewrites when it finishes.
    state_file: PathBuf,
}

/// The manifest's `dir:` target: `None` when there is no manifest or its target is a
/// registry; the manifest's diagnostics when it does not load.
fn dir_target(manifest: &Path) -> Result<Option<DirTarget>, Report> {
    if !manifest.is_file() {
        return Ok(None);
    }
    let m = crate::workspace::load_manifest(manifest)?;
    Ok(match &m.target.kind {
        crate::manifest::TargetKind::Dir { path, address } => Some(DirTarget {
            path: m.resolve_path(path),
            address: address.clone(),
            state_file: crate::workspace::Workspace::new(&m).root.join("state.json"),
        }),
        _ => None,
    })
}
