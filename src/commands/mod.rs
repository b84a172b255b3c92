//! The subcommands, one file each. A command is thin: it opens the [`Workspace`] of a manifest,
//! calls the engine (`lock::resolve`, `plan`, `exec`, `audit`, `bundle`, `serve`) and reports on
//! stderr; data (plans, completions, the manual) goes to stdout. `cli` parses the command line,
//! calls one `run` here and renders the error it returns.

use std::path::Path;

use crate::error::{Report, UsageError};
use crate::lock::Lockfile;
use crate::manifest::Manifest;
use crate::plan::Plan;
use crate::workspace::{Workspace, load_manifest};

pub mod apply;
pub mod audit;
pub mod docs;
pub mod init;
pub mod lock;
pub mod plan;
pub mod prune;
pub mod push;
pub mod serve;
pub mod verify;

/// The manifest, its lock and the plan of what apply built: both commands check a target
/// that was applied, so the lock must exist.
pub fn load_built(manifest: &Path) -> Result<(Manifest, Lockfile, Plan), Report> {
    let m = load_manifest(manifest)?;
    let lock = Workspace::new(&m).read_lock()?.ok_or_else(|| {
        Box::new(UsageError(
            "there is no airgap.lock: run `airgap lock` and `airgap apply` first".into(),
        )) as Report
    })?;
    let plan = Plan::build(&m, &lock).map_err(|e| Box::new(e) as Report)?;
    Ok((m, lock, plan))
}
