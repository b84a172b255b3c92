//! Each stack version's devfile, rewritten by spans: images pinned to what landed at the
//! target, starter projects as offline zips, icon and parent as local files (see
//! [`super::common::write_devfile`]).

use std::fmt;

use super::kind::{Inputs, Kind, PlanError, PlanInput, Step, TreeOut, Written};
use crate::context::Ctx;
use crate::lock::Uses;
use crate::steps::stale::StaleReason;
use crate::tree_paths::{DEVFILE_NAMES, stack_dir};

use super::common::{locked_stack, locked_text, write_devfile};
use super::download::Download;
use super::image::Image;
use super::source::Source;

/// Rewrite one stack version's devfile (and place its icon and parent).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Devfile {
    pub source: String,
    pub id: String,
}

impl fmt::Display for Devfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "devfile:{}/{}", self.source, self.id)
    }
}

/// The image and download steps of what a devfile uses; `user` names the devfile in errors.
pub(super) fn uses_deps(
    p: &PlanInput<'_>,
    uses: &Uses,
    user: &str,
) -> Result<Vec<super::StepId>, PlanError> {
    let mut deps = Vec::new();
    for i in &uses.images {
        if !p.lock.images.contains_key(i) {
            return Err(PlanError::MissingEntry {
                what: format!("image `{i}`"),
                user: user.to_string(),
            });
        }
        deps.push(Image { image: i.clone() }.into());
    }
    for u in uses.icons.iter().chain(&uses.parents).chain(&uses.files) {
        if !p.lock.downloads.contains_key(u) {
            return Err(PlanError::MissingEntry {
                what: format!("`{u}`"),
                user: user.to_string(),
            });
        }
        deps.push(Download { url: u.clone() }.into());
    }
    Ok(deps)
}

/// The configuration part of a devfile's key: its folder and the projects packaged for it.
#[derive(serde::Serialize)]
struct DevfileConfig {
    dir: String,
    /// `starter:NAME` / `project:NAME`.
    projects: Vec<String>,
    /// [`crate::rewrite::VERSION`]: a rewrite that gives other bytes for the same text reruns
    /// every devfile step once.
    rewrite: u32,
}

/// The lock part of a devfile's key: its hash and what it uses.
#[derive(serde::Serialize)]
struct DevfileLock<'a> {
    devfile: &'a str,
    uses: &'a Uses,
}

impl Kind for Devfile {
    type Out = TreeOut;
    const KEY_SKIPS_SOURCE: bool = true;
    const WRITES_TREE: bool = true;

    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        for ((source, id), entry) in &p.lock.stacks {
            let user = format!("stack {} of source {source}", super::id_words(id));
            let mut deps = vec![
                Source {
                    source: source.clone(),
                }
                .into(),
            ];
            deps.extend(uses_deps(p, &entry.uses, &user)?);
            let projects: Vec<String> = p
                .lock
                .projects_of(source, id)
                .map(|k| format!("{}:{}", k.kind.node_name(), k.name))
                .collect();
            let step = Devfile {
                source: source.clone(),
                id: id.clone(),
            };
            steps.push(
                Step::new(step, format!("devfile of {}", super::id_words(id)))
                    .deps(deps)
                    .config(DevfileConfig {
                        dir: stack_dir(id),
                        projects,
                        rewrite: crate::rewrite::VERSION,
                    })
                    .lock(DevfileLock {
                        devfile: &entry.devfile,
                        uses: &entry.uses,
                    }),
            );
        }
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Written, String> {
        stack_devfile(ctx, inputs, &self.source, &self.id).await
    }

    fn relocked(
        &self,
        old: &serde_json::Value,
        new: &serde_json::Value,
        describe: &str,
    ) -> StaleReason {
        let step = describe.to_string();
        if old["devfile"] != new["devfile"] {
            StaleReason::Changed { step }
        } else {
            StaleReason::UsesChanged { step }
        }
    }
}

/// One stack version's devfile.
async fn stack_devfile(
    ctx: &Ctx,
    inputs: &Inputs,
    source: &str,
    id: &str,
) -> Result<Written, String> {
    let entry = locked_stack(ctx, source, id)?;
    let dir = stack_dir(id);
    let text = locked_text(ctx, source, &dir, &DEVFILE_NAMES, Some(&entry.devfile)).await?;
    let mut out = Written::default();
    write_devfile(
        ctx,
        inputs,
        &dir,
        id,
        source,
        &format!("{dir}/devfile.yaml"),
        &text,
        &mut out,
    )
    .await?;
    Ok(out)
}
