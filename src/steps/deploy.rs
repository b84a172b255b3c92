//! `deploy/`: the cluster's manifests ([`crate::deploy::render`]), written into the output
//! root through [`super::write_output`]. The images are named as their steps landed them at
//! the target (the devfile-index image's step, and the image step of each of the lock's
//! deployment images), read from those steps' outputs: a new digest there changes this step's
//! key and the manifests' bytes, nothing else does. Files an earlier run wrote and this one
//! does not (the plain form's after a switch to the operator form) are removed by the engine.

use std::fmt;

use super::image::Image;
use super::index_image::IndexImage;
use super::kind::{Inputs, Kind, PlanError, PlanInput, Step, TreeOut, Written};
use crate::context::Ctx;
use crate::deploy::{self, Images};
use crate::lock::LockedDeploy;

/// `deploy/`: the cluster's manifests, naming the deployment's images by digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deploy;

impl fmt::Display for Deploy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deploy")
    }
}

/// The configuration part of the step's key: the lock's `deploy` entry.
#[derive(serde::Serialize)]
struct DeployConfig<'a> {
    deploy: &'a LockedDeploy,
}

impl Kind for Deploy {
    type Out = TreeOut;

    /// Names the devfile-index image and the deployment's other images by the digests their
    /// steps landed, so those steps' outputs are its inputs.
    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        let Some(d) = &p.lock.deploy else {
            return Ok(());
        };
        if p.lock.index_image.is_none() {
            return Err(PlanError::MissingEntry {
                what: "the index image".into(),
                user: "the deployment".into(),
            });
        }
        let mut deps = vec![IndexImage.into()];
        for (role, image) in &d.images {
            if !p.lock.images.contains_key(image) {
                return Err(PlanError::MissingEntry {
                    what: format!("image `{image}`"),
                    user: format!("the deployment's {role}"),
                });
            }
            deps.push(
                Image {
                    image: image.clone(),
                }
                .into(),
            );
        }
        steps.push(
            Step::new(Deploy, "deployment manifests")
                .deps(deps)
                .config(DeployConfig { deploy: d }),
        );
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Written, String> {
        let d = ctx
            .lock
            .deploy
            .as_ref()
            .ok_or("the lock has no `deploy` entry; run `airgap lock`")?;
        let role = |role: &str| -> Result<Option<String>, String> {
            d.images
                .get(role)
                .map(|image| {
                    let image = Image {
                        image: image.clone(),
                    };
                    inputs.out(&image).map(|o| o.reference)
                })
                .transpose()
        };
        let images = Images {
            devfile_index: inputs.out(&IndexImage)?.reference,
            oci_registry: role("oci-registry")?.ok_or(
                "the lock's `deploy` entry names no oci-registry image; run `airgap lock`",
            )?,
            registry_viewer: role("registry-viewer")?,
            operator: role("operator")?,
        };
        let files = deploy::render(&d.config, &images)?;
        let mut out = Written::default();
        for (rel, bytes) in &files {
            super::write_output(ctx, rel, bytes, &mut out).await?;
        }
        Ok(out)
    }
}
