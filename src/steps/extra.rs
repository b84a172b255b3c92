//! `registry/extraDevfileEntries.yaml`: the samples, icons made local.

use std::fmt;

use super::kind::{Inputs, Kind, PlanError, PlanInput, Step, TreeOut, Written};
use crate::context::Ctx;
use std::collections::BTreeSet;

use crate::devfile;
use crate::rewrite;
use crate::tree_paths::{in_registry, sample_dir};

use super::common::{IconOnly, check_locked, icon_file_name, is_remote, read_source};
use super::download::Download;
use super::source::Source;

/// `registry/extraDevfileEntries.yaml` (the samples; icons made local).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Extra;

impl fmt::Display for Extra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("extra-entries")
    }
}

#[derive(serde::Deserialize, Default)]
struct ExtraIcons {
    #[serde(default)]
    samples: Vec<IconOnly>,
}

/// The lock part of `extraDevfileEntries.yaml`'s key: the samples and each source's file hash.
#[derive(serde::Serialize)]
struct ExtraLock<'a> {
    samples: Vec<&'a (String, String)>,
    files: &'a std::collections::BTreeMap<String, String>,
}

impl Kind for Extra {
    type Out = TreeOut;
    const KEY_SKIPS_SOURCE: bool = true;
    const WRITES_TREE: bool = true;

    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError> {
        if p.lock.samples.is_empty() {
            return Ok(());
        }
        let mut deps: BTreeSet<super::StepId> = p
            .lock
            .samples
            .keys()
            .map(|(s, _)| Source { source: s.clone() }.into())
            .collect();
        for e in p.lock.samples.values() {
            deps.extend(
                e.uses
                    .icons
                    .iter()
                    .map(|u| Download { url: u.clone() }.into()),
            );
        }
        steps.push(
            Step::new(Extra, "extraDevfileEntries.yaml")
                .deps(deps)
                .lock(ExtraLock {
                    samples: p.lock.samples.keys().collect(),
                    files: &p.lock.extra_entries,
                }),
        );
        Ok(())
    }

    async fn run(&self, ctx: &Ctx, _: &Inputs) -> Result<Written, String> {
        extra(ctx).await
    }
}

/// `registry/extraDevfileEntries.yaml`: the samples of every source that includes them, with
/// icons made local (`samples/<name>/logo.<ext>`). One source's file is kept as written (icons
/// edited in place); several sources' samples are merged into one document (as JSON, which is
/// YAML).
async fn extra(ctx: &Ctx) -> Result<Written, String> {
    let sources: Vec<String> = ctx
        .manifest
        .sources
        .iter()
        .filter(|s| s.samples && ctx.lock.samples.keys().any(|(src, _)| src == &s.name.value))
        .map(|s| s.name.value.clone())
        .collect();
    let mut out = Written::default();
    let mut texts = Vec::new();
    for source in &sources {
        let (named, _) = read_source(
            ctx,
            source,
            String::new(),
            vec![crate::discover::EXTRA_ENTRIES.into()],
            false,
        )
        .await?;
        let bytes = named.into_iter().flatten().next().unwrap_or_default();
        let locked = ctx.lock.extra_entries.get(source).map(String::as_str);
        check_locked(&bytes, locked, crate::discover::EXTRA_ENTRIES, source)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            format!(
                "`{}` of source `{source}` is not UTF-8",
                crate::discover::EXTRA_ENTRIES
            )
        })?;
        let parsed: ExtraIcons = serde_saphyr::from_str(&text).map_err(|e| {
            format!(
                "`{}` of source `{source}`: {e}",
                crate::discover::EXTRA_ENTRIES
            )
        })?;
        let mut edits = Vec::new();
        for s in &parsed.samples {
            let (Some(name), Some(icon)) = (&s.name, &s.icon) else {
                continue;
            };
            if !is_remote(icon.value.as_str()) {
                continue;
            }
            let url = icon.value.as_str().to_string();
            let bytes = super::download::bytes(ctx, &url).await?;
            let file = icon_file_name(&url, &bytes);
            super::write_output(
                ctx,
                &in_registry(&format!("{}/{file}", sample_dir(name.as_str()))),
                &bytes,
                &mut out,
            )
            .await?;
            if let Some(range) = devfile::byte_range(icon) {
                edits.push((range, file));
            }
        }
        let new = rewrite::replace_scalars(crate::discover::EXTRA_ENTRIES, &text, &edits)
            .map_err(|e| crate::diag::render_plain(&e))?;
        texts.push(new);
    }
    let merged = match texts.len() {
        0 => return Ok(out),
        1 => texts.remove(0),
        _ => {
            let mut samples = Vec::new();
            let mut schema = serde_json::Value::Null;
            for t in &texts {
                let v: serde_json::Value = serde_saphyr::from_str(t).map_err(|e| e.to_string())?;
                if schema.is_null() {
                    schema = v["schemaVersion"].clone();
                }
                samples.extend(v["samples"].as_array().cloned().unwrap_or_default());
            }
            let doc = serde_json::json!({"schemaVersion": schema, "samples": samples});
            format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            )
        }
    };
    super::write_output(
        ctx,
        &in_registry(crate::discover::EXTRA_ENTRIES),
        merged.as_bytes(),
        &mut out,
    )
    .await?;
    Ok(out)
}
