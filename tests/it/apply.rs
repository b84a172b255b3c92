//! `airgap plan` and `airgap apply` on the whole community registry, in a local world.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::world::World;
use crate::support::*;

/// Every file below `dir`, relative path → bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[allow(dead_code)]
pub const UPSTREAM_HOSTS: [&str; 10] = [
    "github.com",
    "raw.githubusercontent.com",
    "registry.access.redhat.com",
    "quay.io",
    "docker.io",
    "icr.io",
    "code.quarkus.io",
    "code.quarkus.redhat.com",
    "design.jboss.org",
    "static.djangoproject.com",
];

fn registry_dir(w: &World) -> PathBuf {
    w.workspace.join("out/registry")
}

#[test]
fn community_registry_applies_to_a_dir_target() {
    let w = World::community();
    w.write_manifest("");
    let run = airgap(&w.workspace, &["apply"]).ok();
    eprintln!("{}", run.stderr);
    let reg = registry_dir(&w);
    let files = tree(&reg);
    let devfiles: Vec<&String> = files
        .keys()
        .filter(|k| k.starts_with("stacks/") && k.ends_with("/devfile.yaml"))
        .collect();
    assert_eq!(devfiles.len(), 90);
}

#[test]
#[ignore]
fn inspect_world() {
    let w = World::community();
    w.write_manifest("");
    airgap(&w.workspace, &["apply"]).ok();
    let _ = std::fs::remove_dir_all("/tmp/inspect");
    copy_dir(&w.workspace, Path::new("/tmp/inspect"));
}
