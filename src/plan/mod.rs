//! The step graph of `airgap apply`, built from the lockfile alone.
//!
//! Each step is one unit of staleness: fetch a source; mirror an image; package a starter
//! project; fetch an icon or parent devfile; rewrite a devfile; pack a stack's archive; copy a
//! sample's devfile; and the registry-wide steps (the index and its image). Each kind lives in
//! its own file under `steps/` and adds its steps to the graph ([`crate::steps::StepId::plan_all`]);
//! this module orders them into levels and computes keys. A step's *key* is
//! blake3 over a serialized [`serde_json::Value`] of:
//!
//! - a schema number ([`SCHEMA`]), bumped when a step's output format changes;
//! - the step's id and its normalized configuration (target, naming, platforms…);
//! - the lock entries it reads (a devfile's hash, an image's digest, a starter's commit);
//! - the *output digests* of the steps it depends on — not their keys, so a dependency that
//!   is rebuilt to identical bytes reruns nothing downstream (as `just`'s cache and cargo's
//!   fingerprints do).
//!
//! No mtimes, no paths of this machine. The key's input is kept next to the key in the state,
//! so `plan` can name the input that changed in one sentence ([`stale::dirty_reason`], a
//! [`stale::StaleReason`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::lock::Lockfile;
use crate::manifest::{Manifest, TargetKind};
use crate::steps::{PlanInput, Step, StepId};
use crate::tree_paths::stack_of;

pub use crate::context::Output;
pub use crate::steps::PlanError;

pub mod stale;

/// Bump when what any step writes changes shape, so every step reruns once.
/// 2: `archive.tar` is a gzip stream; single-version stacks in the versioned layout have
/// their starter-project zips in the stack's folder too.
pub const SCHEMA: u32 = 2;

/// Every step in dependency order, grouped in levels: a step's dependencies are all in
/// earlier levels, so the steps of one level run in parallel.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub levels: Vec<Vec<usize>>,
    index: HashMap<StepId, usize>,
    by_name: HashMap<String, usize>,
    /// Where each step's dependencies are in `steps` (those the plan has), and which of them
    /// its key reads ([`Step::key_deps`]): looked up once here, not for each use.
    deps: Vec<Vec<usize>>,
    key_deps: Vec<Vec<usize>>,
}

impl Plan {
    pub fn step(&self, id: &StepId) -> Option<&Step> {
        self.position(id).map(|i| &self.steps[i])
    }

    /// Where step `id` is in [`Plan::steps`].
    pub fn position(&self, id: &StepId) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Where the dependencies of the step at `i` are in [`Plan::steps`].
    pub fn dep_positions(&self, i: usize) -> &[usize] {
        &self.deps[i]
    }

    /// Where the key dependencies ([`Step::key_deps`]) of the step at `i` are in
    /// [`Plan::steps`].
    pub fn key_dep_positions(&self, i: usize) -> &[usize] {
        &self.key_deps[i]
    }

    /// The step the state file names `name`.
    pub fn step_named(&self, name: &str) -> Option<&Step> {
        self.by_name.get(name).map(|&i| &self.steps[i])
    }

    /// Builds the graph for a lock (which must satisfy the manifest).
    pub fn build(manifest: &Manifest, lock: &Lockfile) -> Result<Plan, PlanError> {
        Self::build_for(manifest, lock, Output::Target)
    }

    /// Builds the graph for a lock, writing into `output`.
    pub fn build_for(
        manifest: &Manifest,
        lock: &Lockfile,
        output: Output,
    ) -> Result<Plan, PlanError> {
        check_stack_folders(lock)?;
        let target = json!({
            "target": match (&manifest.target.kind, output) {
                (TargetKind::Registry { prefix, .. }, Output::Target) => json!({"registry": prefix}),
                (TargetKind::Registry { prefix, .. }, Output::Bundle) => json!({"bundle": prefix}),
                (TargetKind::Dir { address, .. }, _) => json!({"dir": address}),
            },
        });
        let input = PlanInput {
            manifest,
            lock,
            output,
            target,
            platforms: manifest
                .images
                .platforms
                .iter()
                .map(|p| p.value.clone())
                .collect(),
        };
        Ok(Plan::from_steps(StepId::plan_all(&input)?))
    }

    /// Orders steps into levels by the longest path from a step without dependencies.
    pub fn from_steps(mut steps: Vec<Step>) -> Plan {
        for s in &mut steps {
            s.deps.sort();
            s.deps.dedup();
        }
        let index: HashMap<StepId, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let by_name: HashMap<String, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let mut deps = Vec::with_capacity(steps.len());
        let mut key_deps = Vec::with_capacity(steps.len());
        for s in &steps {
            let (mut all, mut keyed) = (Vec::new(), Vec::new());
            for d in &s.deps {
                if let Some(&j) = index.get(d) {
                    all.push(j);
                    if s.keys(d) {
                        keyed.push(j);
                    }
                }
            }
            deps.push(all);
            key_deps.push(keyed);
        }
        let mut level: Vec<Option<usize>> = vec![None; steps.len()];
        fn depth(
            i: usize,
            deps: &[Vec<usize>],
            level: &mut Vec<Option<usize>>,
            visiting: &mut BTreeSet<usize>,
        ) -> usize {
            if let Some(l) = level[i] {
                return l;
            }
            if !visiting.insert(i) {
                return 0; // a cycle cannot be built from a lock; guard anyway
            }
            let l = deps[i]
                .iter()
                .map(|&d| depth(d, deps, level, visiting) + 1)
                .max()
                .unwrap_or(0);
            visiting.remove(&i);
            level[i] = Some(l);
            l
        }
        let mut visiting = BTreeSet::new();
        for i in 0..steps.len() {
            depth(i, &deps, &mut level, &mut visiting);
        }
        let max = level.iter().flatten().copied().max().unwrap_or(0);
        let mut levels = vec![Vec::new(); if steps.is_empty() { 0 } else { max + 1 }];
        for (i, l) in level.iter().enumerate() {
            levels[l.unwrap_or(0)].push(i);
        }
        Plan {
            steps,
            levels,
            index,
            by_name,
            deps,
            key_deps,
        }
    }
}

/// A step's key input: its fields in the order serde_json's sorted map writes them, so the
/// struct serializes to the same bytes as its JSON value ([`key_input`], which the state
/// records to explain a changed key) and [`key_of`] can hash it without building that value
/// (a no-op apply computes the key of each of tens of thousands of steps, and building,
/// cloning and dropping each key's value tree was a tenth of its time).
#[derive(serde::Serialize)]
struct KeyInput<'a, D> {
    config: &'a Value,
    deps: &'a D,
    lock: &'a Value,
    schema: u32,
    step: &'a str,
}

impl<'a, D> KeyInput<'a, D> {
    fn new(step: &'a Step, deps: &'a D) -> Self {
        KeyInput {
            config: &step.config,
            deps,
            lock: &step.lock,
            schema: SCHEMA,
            step: &step.name,
        }
    }
}

/// The full key input of a step, given its dependencies' recorded outputs.
pub fn key_input(step: &Step, deps: &BTreeMap<String, BTreeMap<String, String>>) -> Value {
    serde_json::to_value(KeyInput::new(step, deps)).unwrap_or_default()
}

/// The key of a step: blake3 of its key input's JSON ([`key_input`]'s bytes), written from
/// borrowed parts straight into the hasher. `deps`: each key dependency's name and recorded
/// outputs (empty when it has none).
pub fn key_of(step: &Step, deps: &BTreeMap<&str, &BTreeMap<String, String>>) -> String {
    let mut hasher = blake3::Hasher::new();
    // Writing into a hasher cannot fail, and these values always serialize.
    let _ = serde_json::to_writer(&mut hasher, &KeyInput::new(step, deps));
    hasher.finalize().to_hex().to_string()
}

/// Stack folders must be unique across sources: the tree has one folder per stack.
fn check_stack_folders(lock: &Lockfile) -> Result<(), PlanError> {
    let mut stack_owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (source, id) in lock.stacks.keys() {
        let stack = stack_of(id);
        if let Some(first) = stack_owner.get(stack)
            && first != source
        {
            return Err(PlanError::StackCollision {
                stack: stack.to_string(),
                first: first.to_string(),
                second: source.clone(),
            });
        }
        stack_owner.insert(stack, source);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key computed from borrowed parts is blake3 of the key input as the state keeps it
    /// (a key input serialized by a JSON value, keys sorted): otherwise every step of an
    /// existing state would run again once.
    #[test]
    fn key_of_is_the_hash_of_the_key_input() {
        let mut step = Step::new(StepId::image("quay.io/a/b:1"), "image b");
        step.config = json!({"target": {"dir": "out"}, "z": [1, "\u{1F600} \"q\"\n"], "a": null});
        step.lock = json!({"digest": "sha256:00", "n": 2.5});
        let a: BTreeMap<String, String> = [("x".to_string(), "1".to_string())].into();
        let none = BTreeMap::new();
        let mut named = BTreeMap::new();
        named.insert("source:b".to_string(), a.clone());
        named.insert("download:a".to_string(), none.clone());
        let mut borrowed = BTreeMap::new();
        borrowed.insert("source:b", &a);
        borrowed.insert("download:a", &none);
        let hash_of_input = || {
            let input = key_input(&step, &named);
            // The shape states written before `KeyInput` recorded (their keys stay valid).
            let recorded = json!({
                "schema": SCHEMA, "step": step.name, "config": step.config,
                "lock": step.lock, "deps": named,
            });
            assert_eq!(input, recorded);
            blake3::hash(&serde_json::to_vec(&input).unwrap())
                .to_hex()
                .to_string()
        };
        assert_eq!(key_of(&step, &borrowed), hash_of_input());
        // And it can differ: another dependency output is another key.
        let b: BTreeMap<String, String> = [("x".to_string(), "2".to_string())].into();
        borrowed.insert("source:b", &b);
        assert_ne!(key_of(&step, &borrowed), hash_of_input());
    }
}
