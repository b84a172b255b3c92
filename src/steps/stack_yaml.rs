//! A multi-version stack's `stack.yaml`, its icon made local.

use std::fmt;

use super::kind::{DirConfig, Inputs, Kind, PlanError, PlanInput, Step, TreeOut, Written};
use crate::context::Ctx;
use std::collections::{BTreeMap, BTreeSet};

use crate::devfile;
use crate::rewrite;
use crate::tree_paths::{STACK_YAML, in_registry, stack_dir, stack_of, stack_yaml_path};

use super::common::{IconOnly, icon_file_name, is_remote, locked_text};
use super::download::Download;
use super::source::Source;

/// A multi-version stack's `stack.yaml` (icon made local).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StackYaml {
    pub source: String,
    pub stack: String,
}

impl fmt::Display for StackYaml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stack-yaml:{}/{}", self.source, self.stack)
    }
}

/// The lock part of a `stack.yaml`'s key: its locked hash.
#[derive(serde::Serialize)]
struct StackYamlLock<'a> {
    #[serde(rename = "stack.yaml")]
    stack_yaml: Option<&'a str>,
}

impl Kind for StackYaml {
    type Out = TreeOut;
    const KEY_SKIPS_SOURCE: bool = true;
    const WRITES_TREE: bool = true;

    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        // (source, stack) → the icons of its versions and the locked stack.yaml hash.
        type Icons<'a> = (BTreeSet<&'a str>, Option<&'a str>);
        let mut multi: BTreeMap<(&str, &str), Icons<'_>> = BTreeMap::new();
        for ((source, id), entry) in &p.lock.stacks {
            if let Some((stack, _)) = id.split_once('/') {
                let e = multi.entry((source, stack)).or_default();
                e.0.extend(entry.uses.icons.iter().map(String::as_str));
                e.1 = entry.stack_yaml.as_deref();
            }
        }
        for ((source, stack), (icons, hash)) in multi {
            let deps = std::iter::once(
                Source {
                    source: source.to_string(),
                }
                .into(),
            )
            .chain(icons.iter().map(|u| Download { url: u.to_string() }.into()));
            let step = StackYaml {
                source: source.to_string(),
                stack: stack.to_string(),
            };
            steps.push(
                Step::new(step, format!("stack.yaml of {stack}"))
                    .deps(deps)
                    .config(DirConfig {
                        dir: stack_dir(stack),
                    })
                    .lock(StackYamlLock { stack_yaml: hash }),
            );
        }
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, _: &Inputs) -> Result<Written, String> {
        stack_yaml(ctx, &self.source, &self.stack).await
    }
}

/// A multi-version stack's `stack.yaml`, its icon made local (`logo.<ext>` beside it).
async fn stack_yaml(ctx: &Ctx, source: &str, stack: &str) -> Result<Written, String> {
    let dir = stack_dir(stack);
    let locked = ctx
        .lock
        .stacks
        .iter()
        .find(|((s, id), _)| s == source && stack_of(id) == stack)
        .and_then(|(_, e)| e.stack_yaml.as_deref());
    let text = locked_text(ctx, source, &dir, &[STACK_YAML], locked).await?;
    let parsed: IconOnly =
        serde_saphyr::from_str(&text).map_err(|e| format!("`{}`: {e}", stack_yaml_path(stack)))?;
    let mut out = Written::default();
    let mut edits = Vec::new();
    if let Some(icon) = &parsed.icon
        && is_remote(icon.value.as_str())
    {
        let url = icon.value.as_str().to_string();
        let bytes = super::download::bytes(ctx, &url).await?;
        let name = icon_file_name(&url, &bytes);
        super::write_output(
            ctx,
            &in_registry(&format!("{dir}/{name}")),
            &bytes,
            &mut out,
        )
        .await?;
        if let Some(range) = devfile::byte_range(icon) {
            edits.push((range, name));
        }
    }
    let new = rewrite::replace_scalars(&stack_yaml_path(stack), &text, &edits)
        .map_err(|e| crate::diag::render_plain(&e))?;
    super::write_output(
        ctx,
        &in_registry(&stack_yaml_path(stack)),
        new.as_bytes(),
        &mut out,
    )
    .await?;
    Ok(out)
}
