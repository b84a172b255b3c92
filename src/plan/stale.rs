//! Why a step must run: the [`StaleReason`] of a step whose key changed, found by comparing
//! the key input the state recorded with the current one. The reasons themselves are typed in
//! [`crate::steps::stale`] (each kind names its own) and rendered in one sentence only at the
//! edge (`airgap plan`, `apply --dry-run`), as cargo's `DirtyReason` is.

use serde_json::Value;

use super::Plan;
use crate::steps::Step;
pub use crate::steps::stale::StaleReason;

/// Why a step whose key changed must run again.
pub fn dirty_reason(step: &Step, old: &Value, new: &Value, plan: &Plan) -> StaleReason {
    if old["schema"] != new["schema"] {
        return StaleReason::FormatChanged;
    }
    if old["lock"] != new["lock"] {
        return step.id.relocked(&old["lock"], &new["lock"], &step.describe);
    }
    if old["config"] != new["config"] {
        return StaleReason::ConfigChanged {
            step: step.describe.clone(),
        };
    }
    if old["deps"] != new["deps"] {
        let empty = serde_json::Map::new();
        let o = old["deps"].as_object().unwrap_or(&empty);
        let n = new["deps"].as_object().unwrap_or(&empty);
        let changed: Vec<&String> = n
            .iter()
            .filter(|(k, v)| o.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .chain(o.keys().filter(|k| !n.contains_key(*k)))
            .collect();
        let steps: Vec<&Step> = changed.iter().filter_map(|k| plan.step_named(k)).collect();
        if let Some(reason) = step.id.deps_changed(&steps) {
            return reason;
        }
        if let Some(first) = changed.first() {
            let name = plan
                .step_named(first)
                .map(|s| s.describe.clone())
                .unwrap_or_else(|| first.to_string());
            return StaleReason::InputChanged {
                input: name,
                more: changed.len() - 1,
            };
        }
    }
    StaleReason::InputsChanged
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::steps::{Devfile, IndexImage, IndexJson, StepId};

    #[test]
    fn the_index_image_says_whether_the_tree_or_its_base_changed() {
        let devfile = |id: &str| -> StepId {
            Devfile {
                source: "s".into(),
                id: id.into(),
            }
            .into()
        };
        let plan = Plan::from_steps(vec![
            Step::new(StepId::image("b"), "image b"),
            Step::new(IndexJson, "index.json"),
            Step::new(devfile("go"), "devfile of go"),
            Step::new(devfile("udi"), "devfile of udi"),
            Step::new(IndexImage, "devfile-index image").deps([
                StepId::image("b"),
                IndexJson.into(),
                devfile("go"),
                devfile("udi"),
            ]),
        ]);
        let image = plan.step(&IndexImage.into()).unwrap();
        let deps = |go: &str, udi: &str, index: &str, base: &str| {
            let out = |d: &str| BTreeMap::from([("digest".to_string(), d.to_string())]);
            BTreeMap::from([
                ("devfile:s/go".to_string(), out(go)),
                ("devfile:s/udi".to_string(), out(udi)),
                ("index-json".to_string(), out(index)),
                ("image:b".to_string(), out(base)),
            ])
        };
        let key_input = crate::plan::key_input;
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
