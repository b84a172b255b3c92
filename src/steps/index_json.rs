//! `registry/index.json`, generated offline from the tree, as upstream's index generator does.

use std::fmt;

use super::kind::{Inputs, Kind, PlanError, PlanInput, Step, TreeOut, Written};
use crate::context::Ctx;
use crate::index::{self, EntryType, LastModifiedFile};
use crate::steps::stale::StaleReason;
use crate::tree_paths::{
    INDEX_JSON, LAST_MODIFIED_JSON, in_registry, sample_dir, stack_dir, versioned_stack_of,
};

use super::stack_artifact::server_accepts_resource;

/// `registry/index.json`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexJson;

impl fmt::Display for IndexJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("index-json")
    }
}

impl Kind for IndexJson {
    type Out = TreeOut;
    const RELOCKED: fn(String) -> StaleReason = |step| StaleReason::MembersChanged { step };
    const WRITES_TREE: bool = true;

    /// The index reads the whole tree: every step that writes into it.
    fn plan(_: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        let deps: Vec<super::StepId> = steps
            .iter()
            .filter(|s| s.id.writes_tree())
            .map(|s| s.id.clone())
            .collect();
        steps.push(Step::new(IndexJson, "index.json").deps(deps));
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, _: &Inputs) -> Result<Written, String> {
        index_json(ctx).await
    }
}

/// `registry/index.json`, generated from the tree. Icons that are local files (rewritten
/// devfiles say `logo.svg`, relative to the devfile) become paths relative to the registry
/// root, so a server or client can find them from the index alone.
///
/// A version's `resources` keep only the names the registry server can start with
/// ([`server_accepts_resource`]). The generator lists every file of the version's folder, and
/// upstream's folders hold nothing else; the files airgap adds beside a devfile (an icon that
/// is not `logo.svg`/`logo.png`, such as `logo.jpg`; `parent-devfile.yaml`) would stop the
/// server at start. They stay in the tree, where the devfile names them, but are not pushed
/// as layers of the stack's artifact (nor are they by airgap's own stack artifact step).
async fn index_json(ctx: &Ctx) -> Result<Written, String> {
    let dir = ctx.registry_dir();
    let multi: std::collections::BTreeSet<String> = ctx
        .lock
        .stacks
        .keys()
        .filter_map(|(_, id)| versioned_stack_of(id).map(str::to_string))
        .collect();
    let bytes = super::blocking(move || {
        let mut entries = index::generate(&dir).map_err(|e| e.to_string())?;
        if let Ok(bytes) = std::fs::read(dir.join(LAST_MODIFIED_JSON)) {
            let file = LastModifiedFile::from_json(&bytes).map_err(|e| e.to_string())?;
            index::apply_last_modified(&mut entries, &file);
        }
        for e in &mut entries {
            let base = match e.entry_type {
                Some(EntryType::Sample) => sample_dir(&e.name),
                _ => stack_dir(&e.name),
            };
            let multi_version = multi.contains(&e.name);
            if e.entry_type != Some(EntryType::Sample) {
                for v in &mut e.versions {
                    v.resources.retain(|r| server_accepts_resource(r));
                }
            }
            e.icon = localize(&e.icon, &base);
            for v in &mut e.versions {
                let vbase = if multi_version && e.entry_type != Some(EntryType::Sample) {
                    format!("{base}/{}", v.version)
                } else {
                    base.clone()
                };
                v.icon = localize(&v.icon, &vbase);
            }
        }
        Ok(index::to_json_bytes(&entries))
    })
    .await?;
    let mut out = Written::default();
    super::write_output(ctx, &in_registry(INDEX_JSON), &bytes, &mut out).await?;
    Ok(out)
}

fn localize(icon: &str, base: &str) -> String {
    if icon.is_empty() || icon.contains("://") || icon.starts_with("data:") {
        icon.to_string()
    } else {
        format!("{base}/{}", icon.trim_start_matches("./"))
    }
}
