//! Why a step must run: [`StaleReason`], typed where the staleness is found (a changed key
//! input, a missing output, a dependency that will be rebuilt) and rendered in one sentence
//! only at the edge (`airgap plan`, `apply --dry-run`), as cargo's `DirtyReason` is.

use std::fmt;

use serde_json::Value;

use super::{Plan, Step, StepKind, id_words};

/// Why a step is stale. Each variant carries what its sentence names (a step's description,
/// an image, a URL…); [`fmt::Display`] gives the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleReason {
    /// The state has no record of the step.
    NeverBuilt,
    /// The step's status was not computed (a step of no level).
    NotEvaluated,
    /// A dependency (named by its description) is stale, so this step's inputs will change.
    InputWillBeRebuilt {
        input: String,
    },
    /// The schema number of the key changed: airgap writes outputs differently now.
    FormatChanged,
    /// The lock entry a step reads (a devfile, a stack yaml, the extra entries, a stack
    /// artifact) changed.
    Changed {
        step: String,
    },
    /// What a devfile uses (its icon, its parent) was locked differently.
    UsesChanged {
        step: String,
    },
    /// The files packed into a stack version's archive changed (the stack id in words).
    ArchiveFilesChanged {
        stack: String,
    },
    ImageRelocked {
        image: String,
    },
    ProjectRelocked {
        step: String,
    },
    SourceRelocked {
        source: String,
    },
    DownloadRelocked {
        url: String,
    },
    SampleRelocked {
        step: String,
    },
    /// The stacks and samples `last_modified.json` or `index.json` list changed.
    MembersChanged {
        step: String,
    },
    /// The lock's base image of the index image changed.
    IndexBaseRelocked {
        step: String,
    },
    /// The target or the options in the step's configuration changed.
    ConfigChanged {
        step: String,
    },
    /// Dependencies' outputs changed: the first (by description) and how many more.
    InputChanged {
        input: String,
        more: usize,
    },
    /// The index image's base image was rebuilt to other content.
    IndexBaseChanged {
        base: String,
    },
    /// The index image's registry tree changed: its first changed part and how many more.
    TreeChanged {
        first: String,
        more: usize,
    },
    /// The key changed in no part that can be named.
    InputsChanged,
    /// A recorded image is not at the target anymore.
    ImageMissing {
        image: String,
    },
    /// A downloaded file is not in the cache anymore.
    DownloadMissing {
        url: String,
    },
    /// A source's content is not in the cache anymore.
    SourceMissing {
        source: String,
    },
    /// An image-like output of the step (a stack artifact, the index image) is not at the
    /// target anymore.
    MissingAtTarget {
        step: String,
    },
    /// A file the step wrote is gone or has another size.
    OutputMissing {
        step: String,
    },
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaleReason::NeverBuilt => write!(f, "never built"),
            StaleReason::NotEvaluated => write!(f, "not evaluated"),
            StaleReason::InputWillBeRebuilt { input } => {
                write!(f, "its input {input} will be rebuilt")
            }
            StaleReason::FormatChanged => {
                write!(f, "airgap's output format changed since it was built")
            }
            StaleReason::Changed { step } => write!(f, "{step} changed"),
            StaleReason::UsesChanged { step } => write!(f, "what {step} uses changed"),
            StaleReason::ArchiveFilesChanged { stack } => {
                write!(f, "files packed with {stack} changed")
            }
            StaleReason::ImageRelocked { image } => {
                write!(f, "image {image} was locked to a new digest")
            }
            StaleReason::ProjectRelocked { step } => {
                write!(f, "{step} was locked to a new revision")
            }
            StaleReason::SourceRelocked { source } => {
                write!(f, "source {source} was locked to a new commit")
            }
            StaleReason::DownloadRelocked { url } => write!(f, "{url} was locked to new content"),
            StaleReason::SampleRelocked { step } => write!(f, "{step} was locked to a new commit"),
            StaleReason::MembersChanged { step } => {
                write!(f, "the set of stacks and samples of {step} changed")
            }
            StaleReason::IndexBaseRelocked { step } => write!(f, "the base of the {step} changed"),
            StaleReason::ConfigChanged { step } => {
                write!(f, "the target or options of {step} changed")
            }
            StaleReason::InputChanged { input, more: 0 } => write!(f, "its input {input} changed"),
            StaleReason::InputChanged { input, more } => {
                write!(f, "its input {input} and {more} more changed")
            }
            StaleReason::IndexBaseChanged { base } => write!(f, "its base {base} changed"),
            StaleReason::TreeChanged { first, more: 0 } => {
                write!(f, "the registry tree changed ({first})")
            }
            StaleReason::TreeChanged { first, more } => {
                write!(f, "the registry tree changed ({first} and {more} more)")
            }
            StaleReason::InputsChanged => write!(f, "its inputs changed"),
            StaleReason::ImageMissing { image } => {
                write!(f, "image {image} is missing at the target")
            }
            StaleReason::DownloadMissing { url } => write!(f, "{url} is missing from the cache"),
            StaleReason::SourceMissing { source } => {
                write!(f, "source {source} is missing from the cache")
            }
            StaleReason::MissingAtTarget { step } => {
                write!(f, "the {step} is missing at the target")
            }
            StaleReason::OutputMissing { step } => {
                write!(f, "an output of {step} is missing or was changed")
            }
        }
    }
}

/// Why a step whose key changed must run again.
pub fn dirty_reason(step: &Step, old: &Value, new: &Value, plan: &Plan) -> StaleReason {
    let describe = || step.describe.clone();
    if old["schema"] != new["schema"] {
        return StaleReason::FormatChanged;
    }
    if old["lock"] != new["lock"] {
        return match &step.kind {
            StepKind::Devfile { .. } => {
                if old["lock"]["devfile"] != new["lock"]["devfile"] {
                    StaleReason::Changed { step: describe() }
                } else {
                    StaleReason::UsesChanged { step: describe() }
                }
            }
            StepKind::Archive { id, .. } => StaleReason::ArchiveFilesChanged {
                stack: id_words(id),
            },
            StepKind::Image { image } => StaleReason::ImageRelocked {
                image: image.clone(),
            },
            StepKind::Project { .. } => StaleReason::ProjectRelocked { step: describe() },
            StepKind::Source { source } => StaleReason::SourceRelocked {
                source: source.clone(),
            },
            StepKind::Download { url } => StaleReason::DownloadRelocked { url: url.clone() },
            StepKind::Sample { .. } => StaleReason::SampleRelocked { step: describe() },
            StepKind::StackYaml { .. }
            | StepKind::Extra
            | StepKind::StackArtifact { .. }
            | StepKind::Deploy => StaleReason::Changed { step: describe() },
            StepKind::LastModified | StepKind::IndexJson => {
                StaleReason::MembersChanged { step: describe() }
            }
            StepKind::IndexImage => StaleReason::IndexBaseRelocked { step: describe() },
        };
    }
    if old["config"] != new["config"] {
        return StaleReason::ConfigChanged { step: describe() };
    }
    if old["deps"] != new["deps"] {
        let empty = serde_json::Map::new();
        let o = old["deps"].as_object().unwrap_or(&empty);
        let n = new["deps"].as_object().unwrap_or(&empty);
        let changed: Vec<String> = n
            .iter()
            .filter(|(k, v)| o.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .chain(o.keys().filter(|k| !n.contains_key(*k)).cloned())
            .collect();
        if step.kind == StepKind::IndexImage
            && let Some(reason) = index_image_reason(&changed, plan)
        {
            return reason;
        }
        if let Some(first) = changed.first() {
            let name = plan
                .step(first)
                .map(|s| s.describe.clone())
                .unwrap_or_else(|| first.clone());
            return StaleReason::InputChanged {
                input: name,
                more: changed.len() - 1,
            };
        }
    }
    StaleReason::InputsChanged
}

/// Why the devfile-index image is stale, from the dependencies whose outputs changed: its
/// base image, or the registry tree (naming the first changed part).
fn index_image_reason(changed: &[String], plan: &Plan) -> Option<StaleReason> {
    let describe = |id: &String| {
        plan.step(id)
            .map(|s| s.describe.clone())
            .unwrap_or_else(|| id.clone())
    };
    if let Some(base) = changed.iter().find(|id| id.starts_with("image:")) {
        return Some(StaleReason::IndexBaseChanged {
            base: describe(base),
        });
    }
    let tree: Vec<&String> = changed
        .iter()
        .filter(|id| id.as_str() != "index-json")
        .collect();
    match tree.as_slice() {
        [] if changed.is_empty() => None,
        [] => Some(StaleReason::TreeChanged {
            first: "index.json".into(),
            more: 0,
        }),
        [first, rest @ ..] => Some(StaleReason::TreeChanged {
            first: describe(first),
            more: rest.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::super::{INDEX_IMAGE_STEP, key_input};
    use super::*;

    fn step(id: &str, kind: StepKind, describe: &str, deps: &[&str]) -> Step {
        Step {
            id: id.into(),
            kind,
            deps: deps.iter().map(|d| d.to_string()).collect(),
            describe: describe.into(),
            config: json!({}),
            lock: json!({}),
        }
    }

    #[test]
    fn the_index_image_says_whether_the_tree_or_its_base_changed() {
        let plan = Plan::from_steps(vec![
            step(
                "image:b",
                StepKind::Image { image: "b".into() },
                "image b",
                &[],
            ),
            step("index-json", StepKind::IndexJson, "index.json", &[]),
            step(
                "devfile:s/go",
                StepKind::Devfile {
                    source: "s".into(),
                    id: "go".into(),
                },
                "devfile of go",
                &[],
            ),
            step(
                "devfile:s/udi",
                StepKind::Devfile {
                    source: "s".into(),
                    id: "udi".into(),
                },
                "devfile of udi",
                &[],
            ),
            step(
                INDEX_IMAGE_STEP,
                StepKind::IndexImage,
                "devfile-index image",
                &["image:b", "index-json", "devfile:s/go", "devfile:s/udi"],
            ),
        ]);
        let image = plan.step(INDEX_IMAGE_STEP).unwrap();
        let deps = |go: &str, udi: &str, index: &str, base: &str| {
            let out = |d: &str| BTreeMap::from([("digest".to_string(), d.to_string())]);
            BTreeMap::from([
                ("devfile:s/go".to_string(), out(go)),
                ("devfile:s/udi".to_string(), out(udi)),
                ("index-json".to_string(), out(index)),
                ("image:b".to_string(), out(base)),
            ])
        };
        let old = key_input(image, &deps("1", "1", "1", "1"));
        let reason = |new| dirty_reason(image, &old, &key_input(image, &new), &plan).to_string();
        assert_eq!(
            reason(deps("2", "1", "2", "1")),
            "the registry tree changed (devfile of go)"
        );
        assert_eq!(
            reason(deps("2", "2", "2", "1")),
            "the registry tree changed (devfile of go and 1 more)"
        );
        assert_eq!(
            reason(deps("1", "1", "2", "1")),
            "the registry tree changed (index.json)"
        );
        assert_eq!(reason(deps("2", "1", "2", "2")), "its base image b changed");
    }
}
