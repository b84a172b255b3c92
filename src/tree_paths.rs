//! The registry tree's paths: where stacks, samples, starter projects and the index files sit,
//! in a source's checkout and in the built tree under `registry/`.
//!
//! The tree has upstream's layout (devfile/registry): `stacks/<stack>/` for a single-version
//! stack, `stacks/<stack>/<version>/` beside a `stacks/<stack>/stack.yaml` for a multi-version
//! one, `samples/<sample>/`, and `index.json`, `last_modified.json` and
//! `extraDevfileEntries.yaml` at the top. A stack id, as the lock keys stacks, is the stack
//! version's folder under `stacks/`: `<stack>` or `<stack>/<version>`.
//!
//! Every path here is relative, with `/` separators, as the lock, the steps' recorded outputs
//! and git trees name files; [`in_registry`] turns a path of the tree into the path a step
//! writes under the output root. Nothing here reads or writes files.

/// The folder, under the output root, that holds the registry tree.
pub const REGISTRY: &str = "registry";
/// The folder of the stacks, in a source and in the tree.
pub const STACKS: &str = "stacks";
/// The folder of the samples in the tree.
pub const SAMPLES: &str = "samples";
/// The registry index, at the top of the tree.
pub const INDEX_JSON: &str = "index.json";
/// When each stack and sample version last changed, at the top of the tree.
pub const LAST_MODIFIED_JSON: &str = "last_modified.json";
/// A multi-version stack's list of versions, in the stack's folder.
pub const STACK_YAML: &str = "stack.yaml";
/// The names a stack version's devfile may have in its folder, the visible one first.
pub const DEVFILE_NAMES: [&str; 2] = ["devfile.yaml", ".devfile.yaml"];

/// `rel` (a path of the registry tree) as a step writes it, under [`REGISTRY`].
pub fn in_registry(rel: &str) -> String {
    format!("{REGISTRY}/{rel}")
}

/// The stack of a stack id: `go` for both `go` and `go/1.0.0`.
pub fn stack_of(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

/// The stack of a multi-version stack id (`go` for `go/1.0.0`); `None` for a single-version
/// stack's id.
pub fn versioned_stack_of(id: &str) -> Option<&str> {
    id.split_once('/').map(|(stack, _)| stack)
}

/// The folder of a stack version in the tree (relative to `registry/`) and in its source.
pub fn stack_dir(id: &str) -> String {
    format!("{STACKS}/{id}")
}

/// A multi-version stack's `stack.yaml`, in the tree and in its source.
pub fn stack_yaml_path(stack: &str) -> String {
    format!("{}/{STACK_YAML}", stack_dir(stack))
}

/// The folder of a sample (version) in the registry tree (relative to `registry/`).
pub fn sample_dir(id: &str) -> String {
    format!("{SAMPLES}/{id}")
}

/// The folder of the devfile that declares a project: a stack version's, or a sample's
/// (owners `sample:<id>`).
pub fn owner_dir(owner: &str) -> String {
    match owner.strip_prefix("sample:") {
        Some(id) => sample_dir(id),
        None => stack_dir(owner),
    }
}

/// The file name a starter project is packaged as.
pub fn project_zip_name(name: &str) -> String {
    format!("{name}-offline.zip")
}
