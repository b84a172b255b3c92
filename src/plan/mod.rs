//! The step graph of `airgap apply`, built from the lockfile alone.
//!
//! Each step is one unit of staleness: fetch a source; mirror an image; package a starter
//! project; fetch an icon or parent devfile; rewrite a devfile; pack a stack's archive; copy a
//! sample's devfile; and the registry-wide steps (the index and its image). A step's *key* is
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

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::lock::{Lockfile, ProjectKey, ProjectKind, Uses};
use crate::manifest::{Manifest, TargetKind};
use crate::tree_paths::{sample_dir, stack_dir, stack_of};

pub mod stale;

/// Bump when what any step writes changes shape, so every step reruns once.
/// 2: `archive.tar` is a gzip stream; single-version stacks in the versioned layout have
/// their starter-project zips in the stack's folder too.
pub const SCHEMA: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// Make a source's locked content available (fetch its commit into the cache, or check a
    /// path source still matches the lock).
    Source { source: String },
    /// Copy one image to the target, by digest.
    Image { image: String },
    /// Download one icon or parent devfile into the cache, checked against its hash.
    Download { url: String },
    /// Package one starter project (or `projects[]` entry) as `<name>-offline.zip`.
    Project { key: ProjectKey },
    /// Rewrite one stack version's devfile (and place its icon and parent).
    Devfile { source: String, id: String },
    /// Pack one stack version's other files into `archive.tar`.
    Archive { source: String, id: String },
    /// Write one sample's devfile from its repository.
    Sample { source: String, id: String },
    /// A multi-version stack's `stack.yaml` (icon made local).
    StackYaml { source: String, stack: String },
    /// `registry/extraDevfileEntries.yaml` (the samples; icons made local).
    Extra,
    /// `registry/last_modified.json`.
    LastModified,
    /// `registry/index.json`.
    IndexJson,
    /// One stack version as the OCI artifact the devfile registry server pushes at start
    /// (`devfile-catalog/<stack>:<version>`).
    StackArtifact { source: String, id: String },
    /// The `devfile-index` image: the mirrored base plus one layer holding `/registry`.
    IndexImage,
    /// `deploy/`: the cluster's manifests, naming the deployment's images by digest.
    Deploy,
}

/// What apply writes into, as far as step keys are concerned: the same image copied into the
/// target registry or into a bundle for it are two different outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// The manifest's target.
    #[default]
    Target,
    /// A sneakernet bundle for the manifest's registry target (`apply --bundle`).
    Bundle,
}

/// One step of the graph.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub kind: StepKind,
    /// Ids of the steps whose outputs this step reads.
    pub deps: Vec<String>,
    /// "devfile of go 2.6.0": how messages name the step.
    pub describe: String,
    /// Configuration and lock entries: the part of the key known before running anything.
    pub config: Value,
    pub lock: Value,
}

/// Every step in dependency order, grouped in levels: a step's dependencies are all in
/// earlier levels, so the steps of one level run in parallel.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub levels: Vec<Vec<usize>>,
    index: BTreeMap<String, usize>,
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

/// The repository (under the target prefix) that stack artifacts land in, one per stack:
/// `devfile-catalog/<stack>:<version>`, as the index's `links.self` names them.
pub const CATALOG: &str = "devfile-catalog";

/// The id of the devfile-index image step.
pub const INDEX_IMAGE_STEP: &str = "index-image";

/// The id of the step that writes `deploy/`.
pub const DEPLOY_STEP: &str = "deploy";

fn id_words(id: &str) -> String {
    id.replace('/', " ")
}

impl Step {
    /// The dependencies whose outputs go into this step's key. A devfile, archive, stack.yaml or
    /// extraDevfileEntries step reads its source only for bytes the lock pins by hash (its key
    /// has them), so the source's
    /// commit is left out: a new commit reruns only the stacks whose content changed. The
    /// dependency still orders the steps (the source is fetched first).
    pub fn key_deps(&self) -> impl Iterator<Item = &String> {
        let skip_source = matches!(
            self.kind,
            StepKind::Devfile { .. }
                | StepKind::Archive { .. }
                | StepKind::StackYaml { .. }
                | StepKind::Extra
        );
        self.deps
            .iter()
            .filter(move |d| !(skip_source && d.starts_with("source:")))
    }
}

impl Plan {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.index.get(id).map(|&i| &self.steps[i])
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
        let mut steps: Vec<Step> = Vec::new();
        let target = json!({
            "target": match (&manifest.target.kind, output) {
                (TargetKind::Registry { prefix, .. }, Output::Target) => json!({"registry": prefix}),
                (TargetKind::Registry { prefix, .. }, Output::Bundle) => json!({"bundle": prefix}),
                (TargetKind::Dir { address, .. }, _) => json!({"dir": address}),
            },
        });
        let platforms: Vec<&str> = manifest
            .images
            .platforms
            .iter()
            .map(|p| p.value.as_str())
            .collect();

        for (name, s) in &lock.sources {
            steps.push(Step {
                id: format!("source:{name}"),
                kind: StepKind::Source {
                    source: name.clone(),
                },
                deps: vec![],
                describe: format!("source {name}"),
                config: json!({}),
                lock: json!(s),
            });
        }
        for (image, entry) in &lock.images {
            steps.push(Step {
                id: format!("image:{image}"),
                kind: StepKind::Image {
                    image: image.clone(),
                },
                deps: vec![],
                describe: format!("image {image}"),
                config: json!({"target": entry.target, "to": target, "platforms": platforms}),
                lock: json!(entry.resolved),
            });
        }
        for (url, d) in &lock.downloads {
            steps.push(Step {
                id: format!("download:{url}"),
                kind: StepKind::Download { url: url.clone() },
                deps: vec![],
                describe: format!("download {url}"),
                config: json!({}),
                lock: json!({"sha256": d.sha256, "size": d.size}),
            });
        }
        for (key, p) in &lock.projects {
            let id = project_step_id(key);
            steps.push(Step {
                id,
                kind: StepKind::Project { key: key.clone() },
                deps: vec![],
                describe: format!(
                    "{} {} of {}",
                    match key.kind {
                        ProjectKind::Starter => "starter project",
                        ProjectKind::Project => "project",
                    },
                    key.name,
                    id_words(&key.owner)
                ),
                config: json!({"files": lock.project_zip_paths(key)}),
                lock: json!(p),
            });
        }

        // Stack folders must be unique across sources.
        let mut stack_owner: BTreeMap<String, String> = BTreeMap::new();
        for (source, id) in lock.stacks.keys() {
            let stack = stack_of(id).to_string();
            if let Some(first) = stack_owner.get(&stack)
                && first != source
            {
                return Err(PlanError::StackCollision {
                    stack,
                    first: first.clone(),
                    second: source.clone(),
                });
            }
            stack_owner.insert(stack, source.clone());
        }

        let image_dep = |key: &str, user: &str| -> Result<String, PlanError> {
            if lock.images.contains_key(key) {
                Ok(format!("image:{key}"))
            } else {
                Err(PlanError::MissingEntry {
                    what: format!("image `{key}`"),
                    user: user.to_string(),
                })
            }
        };
        let download_dep = |url: &str, user: &str| -> Result<String, PlanError> {
            if lock.downloads.contains_key(url) {
                Ok(format!("download:{url}"))
            } else {
                Err(PlanError::MissingEntry {
                    what: format!("`{url}`"),
                    user: user.to_string(),
                })
            }
        };

        // The images and downloads a devfile uses, which `user` names in errors.
        let uses_deps = |uses: &Uses, user: &str| -> Result<Vec<String>, PlanError> {
            let images = uses.images.iter().map(|i| image_dep(i, user));
            let downloads = uses
                .icons
                .iter()
                .chain(&uses.parents)
                .chain(&uses.files)
                .map(|u| download_dep(u, user));
            images.chain(downloads).collect()
        };

        for ((source, id), entry) in &lock.stacks {
            let user = format!("stack {} of source {source}", id_words(id));
            let mut deps = vec![format!("source:{source}")];
            deps.extend(uses_deps(&entry.uses, &user)?);
            let projects: Vec<String> = lock
                .projects
                .keys()
                .filter(|k| &k.source == source && &k.owner == id)
                .map(|k| format!("{}:{}", k.kind.node_name(), k.name))
                .collect();
            steps.push(Step {
                id: format!("devfile:{source}/{id}"),
                kind: StepKind::Devfile {
                    source: source.clone(),
                    id: id.clone(),
                },
                deps: deps.clone(),
                describe: format!("devfile of {}", id_words(id)),
                config: json!({"dir": stack_dir(id), "projects": projects}),
                lock: json!({"devfile": entry.devfile, "uses": entry.uses}),
            });
            if !entry.files.is_empty() {
                let mut deps = vec![format!("source:{source}")];
                // FROM lines of Dockerfiles are rewritten: the images are inputs too.
                for i in &entry.uses.images {
                    deps.push(format!("image:{i}"));
                }
                steps.push(Step {
                    id: format!("archive:{source}/{id}"),
                    kind: StepKind::Archive {
                        source: source.clone(),
                        id: id.clone(),
                    },
                    deps,
                    describe: format!("archive of {}", id_words(id)),
                    config: json!({"dir": stack_dir(id)}),
                    lock: json!({"files": entry.files}),
                });
            }
        }
        for ((source, id), entry) in &lock.samples {
            let user = format!("sample {} of source {source}", id_words(id));
            let deps = uses_deps(&entry.uses, &user)?;
            steps.push(Step {
                id: format!("sample:{source}/{id}"),
                kind: StepKind::Sample {
                    source: source.clone(),
                    id: id.clone(),
                },
                deps,
                describe: format!("sample {}", id_words(id)),
                config: json!({"dir": sample_dir(id)}),
                lock: json!({
                    "remote": entry.remote,
                    "commit": entry.commit,
                    "sub-dir": entry.sub_dir,
                    "devfile": entry.devfile,
                }),
            });
        }

        // stack.yaml of multi-version stacks.
        let mut multi: BTreeMap<(String, String), (BTreeSet<String>, Option<String>)> =
            BTreeMap::new();
        for ((source, id), entry) in &lock.stacks {
            if let Some((stack, _)) = id.split_once('/') {
                let e = multi
                    .entry((source.clone(), stack.to_string()))
                    .or_default();
                e.0.extend(entry.uses.icons.iter().cloned());
                e.1 = entry.stack_yaml.clone();
            }
        }
        for ((source, stack), (icons, hash)) in multi {
            let mut deps = vec![format!("source:{source}")];
            deps.extend(icons.iter().map(|u| format!("download:{u}")));
            steps.push(Step {
                id: format!("stack-yaml:{source}/{stack}"),
                kind: StepKind::StackYaml {
                    source: source.clone(),
                    stack: stack.clone(),
                },
                deps,
                describe: format!("stack.yaml of {stack}"),
                config: json!({"dir": stack_dir(&stack)}),
                lock: json!({"stack.yaml": hash}),
            });
        }
        if !lock.samples.is_empty() {
            let mut deps: BTreeSet<String> = lock
                .samples
                .keys()
                .map(|(s, _)| format!("source:{s}"))
                .collect();
            for e in lock.samples.values() {
                deps.extend(e.uses.icons.iter().map(|u| format!("download:{u}")));
            }
            steps.push(Step {
                id: "extra-entries".into(),
                kind: StepKind::Extra,
                deps: deps.into_iter().collect(),
                describe: "extraDevfileEntries.yaml".into(),
                config: json!({}),
                lock: json!({
                    "samples": lock.samples.keys().collect::<Vec<_>>(),
                    "files": lock.extra_entries,
                }),
            });
        }

        // Registry-wide files.
        let mut lm_deps: Vec<String> = lock.sources.keys().map(|s| format!("source:{s}")).collect();
        lm_deps.extend(
            lock.samples
                .keys()
                .map(|(s, id)| format!("sample:{s}/{id}")),
        );
        steps.push(Step {
            id: "last-modified".into(),
            kind: StepKind::LastModified,
            deps: lm_deps,
            describe: "last_modified.json".into(),
            config: json!({}),
            lock: json!({
                "stacks": lock.stacks.keys().collect::<Vec<_>>(),
                "samples": lock.samples.iter().map(|(k, v)| (k, &v.commit)).collect::<Vec<_>>(),
            }),
        });
        // The index reads the whole tree: every step that writes into it.
        let tree_deps: Vec<String> = steps
            .iter()
            .filter(|s| {
                matches!(
                    s.kind,
                    StepKind::Devfile { .. }
                        | StepKind::Archive { .. }
                        | StepKind::Project { .. }
                        | StepKind::Sample { .. }
                        | StepKind::StackYaml { .. }
                        | StepKind::Extra
                        | StepKind::LastModified
                )
            })
            .map(|s| s.id.clone())
            .collect();
        steps.push(Step {
            id: "index-json".into(),
            kind: StepKind::IndexJson,
            deps: tree_deps.clone(),
            describe: "index.json".into(),
            config: json!({}),
            lock: json!({}),
        });

        // What the registry server would push at start: one artifact per stack version, from
        // that version's devfile (and icon) and archive.
        for ((source, id), entry) in &lock.stacks {
            let mut deps = vec![format!("devfile:{source}/{id}")];
            if !entry.files.is_empty() {
                deps.push(format!("archive:{source}/{id}"));
            }
            let stack = stack_of(id);
            steps.push(Step {
                id: format!("stack-artifact:{source}/{id}"),
                kind: StepKind::StackArtifact {
                    source: source.clone(),
                    id: id.clone(),
                },
                deps,
                describe: format!("stack artifact of {}", id_words(id)),
                config: json!({"to": target, "repository": format!("{CATALOG}/{stack}")}),
                lock: json!({}),
            });
        }

        // The devfile-index image reads every file of the tree (its layer is the tree), not
        // only index.json: a devfile can change without changing the index.
        if let Some(ii) = &lock.index_image {
            let base = crate::lock::resolve::canonical_image(&ii.base).map_err(|_| {
                PlanError::MissingEntry {
                    what: format!("image `{}`", ii.base),
                    user: "the index image".into(),
                }
            })?;
            let mut deps = tree_deps;
            deps.push("index-json".into());
            deps.push(image_dep(&base, &format!("the {} image", ii.name))?);
            let prefix = manifest.target.kind.image_prefix();
            if let Ok(p) = crate::oci::naming::TargetPrefix::parse(prefix) {
                let landing = p.named(&ii.name, Some(&ii.tag)).to_string();
                if let Some((image, _)) = lock.images.iter().find(|(_, e)| e.target == landing) {
                    return Err(PlanError::IndexImageCollision {
                        name: ii.name.clone(),
                        target: landing,
                        image: image.clone(),
                    });
                }
            }
            steps.push(Step {
                id: INDEX_IMAGE_STEP.into(),
                kind: StepKind::IndexImage,
                deps,
                describe: format!("{} image", ii.name),
                config: json!({"to": target, "name": ii.name, "tag": ii.tag}),
                lock: json!({"base": base}),
            });
        }

        // deploy/: names the devfile-index image and the deployment's other images by the
        // digests their steps landed, so those steps' outputs are its inputs.
        if let Some(d) = &lock.deploy {
            let mut deps = vec![INDEX_IMAGE_STEP.to_string()];
            for (role, image) in &d.images {
                deps.push(image_dep(image, &format!("the deployment's {role}"))?);
            }
            steps.push(Step {
                id: DEPLOY_STEP.into(),
                kind: StepKind::Deploy,
                deps,
                describe: "deployment manifests".into(),
                config: json!({"deploy": d}),
                lock: json!({}),
            });
        }

        Ok(Plan::from_steps(steps))
    }

    /// Orders steps into levels by the longest path from a step without dependencies.
    pub fn from_steps(mut steps: Vec<Step>) -> Plan {
        for s in &mut steps {
            s.deps.sort();
            s.deps.dedup();
        }
        let index: BTreeMap<String, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let mut level: Vec<Option<usize>> = vec![None; steps.len()];
        fn depth(
            i: usize,
            steps: &[Step],
            index: &BTreeMap<String, usize>,
            level: &mut Vec<Option<usize>>,
            visiting: &mut BTreeSet<usize>,
        ) -> usize {
            if let Some(l) = level[i] {
                return l;
            }
            if !visiting.insert(i) {
                return 0; // a cycle cannot be built from a lock; guard anyway
            }
            let l = steps[i]
                .deps
                .iter()
                .filter_map(|d| index.get(d))
                .map(|&d| depth(d, steps, index, level, visiting) + 1)
                .max()
                .unwrap_or(0);
            visiting.remove(&i);
            level[i] = Some(l);
            l
        }
        let mut visiting = BTreeSet::new();
        for i in 0..steps.len() {
            depth(i, &steps, &index, &mut level, &mut visiting);
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
        }
    }
}

pub fn project_step_id(key: &ProjectKey) -> String {
    format!(
        "{}:{}/{}/{}",
        key.kind.node_name(),
        key.source,
        key.owner,
        key.name
    )
}

/// The full key input of a step, given its dependencies' recorded outputs.
pub fn key_input(step: &Step, deps: &BTreeMap<String, BTreeMap<String, String>>) -> Value {
    json!({
        "schema": SCHEMA,
        "step": step.id,
        "config": step.config,
        "lock": step.lock,
        "deps": deps,
    })
}

/// blake3 of the canonical JSON of a key input (object keys sorted: serde_json's map is a
/// BTreeMap in this build).
pub fn key_of(input: &Value) -> String {
    blake3::hash(&serde_json::to_vec(input).unwrap_or_default())
        .to_hex()
        .to_string()
}
