//! The shape every step kind has: the [`Kind`] trait, the [`Step`] of the graph, what a step
//! reads ([`Inputs`]: its dependencies' recorded outputs, nothing else) and what it returns
//! ([`Done`]: its typed outputs and the files it wrote).
//!
//! Outputs are typed per kind (`ImageOut { digest, reference }`, …) and cross the state file
//! in one wire form, [`Recorded`] (name → digest, and files with their sizes), as uv keeps its
//! lock's wire type apart from the domain type. Only [`to_wire`] and [`from_wire`] convert.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::StepId;
use crate::context::Ctx;
use crate::context::Output;
use crate::lock::Lockfile;
use crate::manifest::Manifest;
use crate::oci::digest::Digest;
use crate::oci::naming::TargetRef;
pub use crate::state::Recorded;
use crate::steps::stale::StaleReason;

/// One step kind: how its steps enter the plan, how one runs, and how its outputs are checked.
/// Its value is the step's identity (which image, which stack version…): [`StepId`] has one
/// variant per kind, registered in `steps/mod.rs`.
pub(crate) trait Kind: Clone + fmt::Display + Into<StepId> {
    /// What a run produces, for dependents and for the state.
    type Out: Serialize + DeserializeOwned;

    /// The source this step reads only for bytes its lock entry pins by hash: left out of its
    /// key, so a new commit reruns only the steps whose content changed (it still orders the
    /// steps: the source is fetched first).
    const KEY_SKIPS_SOURCE: bool = false;
    /// Whether the step writes into the registry tree (the index and its image read all such
    /// steps).
    const WRITES_TREE: bool = false;
    /// Whether `airgap audit` takes the step's outputs from what apply recorded instead of
    /// running it (a copy, not a build: `verify` checks those).
    const REPLAYED_IN_AUDIT: bool = false;
    /// Whether the step places an image at the target ([`Kind::landed`] says where).
    const PLACES_IMAGE: bool = false;

    /// Appends this kind's steps; `steps` holds the steps of the kinds registered before.
    fn plan(p: &PlanInput<'_>, steps: &mut Vec<Step>) -> Result<(), PlanError>;

    /// Runs the step. Errors are messages for the final report.
    async fn run(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Done<Self::Out>, String>;

    /// Whether a fresh step's outputs outside the output folder (images at the target,
    /// cached files) are still there; files it wrote are checked by the engine.
    async fn present(&self, _ctx: &Ctx, _out: &Self::Out) -> bool {
        true
    }

    /// The image this step placed at the target (where, and at which digest), for `verify`.
    fn landed(&self, _ctx: &Ctx, _out: &Self::Out) -> Option<(TargetRef, Digest)> {
        None
    }

    /// Why the step must run again although its key is unchanged: its outputs are gone.
    fn missing(&self, describe: &str) -> StaleReason {
        StaleReason::OutputMissing {
            step: describe.to_string(),
        }
    }

    /// Why a step of this kind must run again when the lock entries its key holds changed,
    /// from its description.
    const RELOCKED: fn(String) -> StaleReason = |step| StaleReason::Changed { step };

    /// Why the step must run again when the lock entries its key holds changed.
    fn relocked(&self, _old: &Value, _new: &Value, describe: &str) -> StaleReason {
        Self::RELOCKED(describe.to_string())
    }

    /// A more precise reason than "its input changed" from the dependencies whose outputs
    /// changed, where the kind has one.
    fn deps_changed(&self, _changed: &[&Step]) -> Option<StaleReason> {
        None
    }
}

/// One step of the graph.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: StepId,
    /// The id as the state file and the key name it (`image:quay.io/x:1`).
    pub name: String,
    /// The steps whose outputs this step reads.
    pub deps: Vec<StepId>,
    /// "devfile of go 2.6.0": how messages name the step.
    pub describe: String,
    /// Configuration and lock entries: the part of the key known before running anything.
    pub config: Value,
    pub lock: Value,
}

impl Step {
    pub fn new(id: impl Into<StepId>, describe: impl Into<String>) -> Step {
        let id = id.into();
        Step {
            name: id.to_string(),
            id,
            deps: Vec::new(),
            describe: describe.into(),
            config: Value::Object(Default::default()),
            lock: Value::Object(Default::default()),
        }
    }

    pub fn deps(mut self, deps: impl IntoIterator<Item = StepId>) -> Step {
        self.deps.extend(deps);
        self
    }

    pub fn config(mut self, config: impl Serialize) -> Step {
        self.config = serde_json::to_value(config).unwrap_or_default();
        self
    }

    pub fn lock(mut self, lock: impl Serialize) -> Step {
        self.lock = serde_json::to_value(lock).unwrap_or_default();
        self
    }

    /// The dependencies whose outputs go into this step's key (see
    /// [`Kind::KEY_SKIPS_SOURCE`]).
    pub fn key_deps(&self) -> impl Iterator<Item = &StepId> {
        self.deps.iter().filter(|d| self.keys(d))
    }

    /// Whether dependency `d`'s outputs go into this step's key.
    pub fn keys(&self, d: &StepId) -> bool {
        !(self.id.key_skips_source() && matches!(d, StepId::Source(_)))
    }
}

/// A key's configuration that names the step's folder in the tree.
#[derive(serde::Serialize)]
pub(super) struct DirConfig {
    pub dir: String,
}

/// What the plan's kinds are built from.
pub struct PlanInput<'a> {
    pub manifest: &'a Manifest,
    pub lock: &'a Lockfile,
    pub output: Output,
    /// Where images land, as keys name it (`{"registry": prefix}`, `{"bundle": …}`,
    /// `{"dir": address}`).
    pub target: Value,
    /// The manifest's platform filter.
    pub platforms: Vec<String>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error("stack `{stack}` is in two sources, `{first}` and `{second}`")]
    #[diagnostic(
        code(airgap::plan::stack_collision),
        help(
            "the registry tree has one folder per stack: keep the stack in one source (use the `stacks` filter)"
        )
    )]
    StackCollision {
        stack: String,
        first: String,
        second: String,
    },
    #[error("the {name} image would land on `{target}`, where image `{image}` is mirrored")]
    #[diagnostic(
        code(airgap::plan::index_image_collision),
        help("give the index image another name: `index-image \"NAME\" tag=… base=…`")
    )]
    IndexImageCollision {
        name: String,
        target: String,
        image: String,
    },
    #[error("the lock has no entry for {what}, which {user} uses")]
    #[diagnostic(
        code(airgap::plan::incomplete_lock),
        help("run `airgap lock` to complete airgap.lock")
    )]
    MissingEntry { what: String, user: String },
}

/// What a run of a step of kind `K` produced.
#[derive(Debug, Clone)]
pub struct Done<O> {
    pub out: O,
    /// The files it wrote, relative to the output root, with their sizes.
    pub files: BTreeMap<String, u64>,
    /// `sha256:…` of each file it wrote.
    pub digests: BTreeMap<String, String>,
}

impl<O: Serialize> Done<O> {
    pub fn new(out: O) -> Done<O> {
        Done {
            out,
            files: BTreeMap::new(),
            digests: BTreeMap::new(),
        }
    }

    pub fn recorded(&self) -> Recorded {
        Recorded {
            outputs: to_wire(&self.out),
            files: self.files.clone(),
            digests: self.digests.clone(),
        }
    }
}

/// The outputs of a step that writes files into the tree: the sha256 of each file by its
/// name (what dependents hash and the stack artifacts push).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TreeOut {
    pub sha256: BTreeMap<String, String>,
}

/// Files written into the output folder by one run.
pub type Written = Done<TreeOut>;

impl Default for Written {
    fn default() -> Written {
        Done::new(TreeOut::default())
    }
}

/// A typed output in the wire form: its string fields by name.
pub fn to_wire<O: Serialize>(out: &O) -> BTreeMap<String, String> {
    match serde_json::to_value(out) {
        Ok(Value::Object(m)) => m
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A typed output from the wire form.
pub fn from_wire<O: DeserializeOwned>(outputs: &BTreeMap<String, String>) -> Result<O, String> {
    let value = Value::Object(
        outputs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    );
    serde_json::from_value(value).map_err(|e| format!("a recorded output is unreadable: {e}"))
}

/// The recorded outputs of a step's dependencies: all a step reads of earlier steps.
#[derive(Debug, Default)]
pub struct Inputs {
    deps: BTreeMap<StepId, Recorded>,
}

impl Inputs {
    pub fn new(deps: BTreeMap<StepId, Recorded>) -> Inputs {
        Inputs { deps }
    }

    /// The recorded outputs of dependency `id`.
    pub fn recorded(&self, id: &StepId) -> Result<&Recorded, String> {
        self.deps
            .get(id)
            .ok_or_else(|| format!("step `{id}` has not run"))
    }

    /// The typed outputs of dependency `id` of kind `K`.
    pub(crate) fn out<K: Kind>(&self, id: &K) -> Result<K::Out, String> {
        let id: StepId = id.clone().into();
        from_wire(&self.recorded(&id)?.outputs)
    }

    /// Every dependency with its recorded outputs.
    pub fn iter(&self) -> impl Iterator<Item = (&StepId, &Recorded)> {
        self.deps.iter()
    }
}
