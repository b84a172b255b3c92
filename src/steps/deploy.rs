//! `deploy/`: the cluster's manifests ([`crate::deploy::render`]), written into the output
//! root through [`super::write_output`]. The images are named as their steps landed them at
//! the target (the devfile-index image's step, and the image step of each of the lock's
//! deployment images), read from the state as [`super::index_image`] reads its base: a new
//! digest there changes this step's key and the manifests' bytes, nothing else does. Files
//! its previous run wrote and this one does not are removed.

use crate::context::{Ctx, StepOutput};
use crate::deploy::{self, Images};
use crate::plan::{INDEX_IMAGE_STEP, Step};
use crate::state::State;

pub fn run(ctx: &Ctx, _step: &Step, state: &State) -> Result<StepOutput, String> {
    let d = ctx
        .lock
        .deploy
        .as_ref()
        .ok_or("the lock has no `deploy` entry; run `airgap lock`")?;
    let landed = |step: &str| -> Result<String, String> {
        state
            .get(step)
            .and_then(|r| r.outputs.get("reference").cloned())
            .ok_or_else(|| format!("step `{step}` has not run"))
    };
    let role = |role: &str| -> Result<Option<String>, String> {
        d.images
            .get(role)
            .map(|image| landed(&format!("image:{image}")))
            .transpose()
    };
    let images = Images {
        devfile_index: landed(INDEX_IMAGE_STEP)?,
        oci_registry: role("oci-registry")?
            .ok_or("the lock's `deploy` entry names no oci-registry image; run `airgap lock`")?,
        registry_viewer: role("registry-viewer")?,
        operator: role("operator")?,
    };
    let files = deploy::render(&d.config, &images)?;
    let mut out = StepOutput::default();
    for (rel, bytes) in &files {
        super::write_output(ctx, rel, bytes, &mut out)?;
    }
    remove_stale(ctx, state, &out)?;
    Ok(out)
}

/// Removes the files the previous run of this step wrote and this one did not (the plain
/// form's after a switch to the operator form, `pvc.yaml` once `storage` is dropped): a
/// `kubectl apply -k` of the folder must not see them.
fn remove_stale(ctx: &Ctx, state: &State, out: &StepOutput) -> Result<(), String> {
    let Some(previous) = state.get(crate::plan::DEPLOY_STEP) else {
        return Ok(());
    };
    let stale: Vec<String> = previous
        .files
        .into_keys()
        .filter(|f| !out.files.contains_key(f) && f.starts_with(&format!("{}/", deploy::DIR)))
        .collect();
    for rel in &stale {
        let path = ctx.out_root.join(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove `{}`: {e}", path.display())),
        }
    }
    state.disown(stale.iter());
    Ok(())
}
