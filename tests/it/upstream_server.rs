//! The devfile-index image under upstream's own server: the `/registry` tree is extracted from
//! the image `airgap apply` built (from a `dir:` target's OCI layout, and pulled with skopeo
//! from a registry target), and upstream's index server (devfile/registry-support, built from
//! the vendored source in `../shared/upstream-server`) runs on it with a real `docker-registry`
//! as its OCI sidecar on localhost:5000, as the devfile-index pod runs. registry-library, the
//! client code odo uses, then pulls every stack and downloads every starter project.
//!
//! Both run in a private network namespace (`unshare -n`, root): the server's ports are fixed
//! (8080, 7071, the sidecar's 5000), so nothing outside can clash with them.
//! `upstream_server.py`, run inside, starts the processes, asks the questions and writes the
//! answers to a file; the assertions are here. Every process it starts runs in one process
//! group, killed when the check ends, whatever happened.
//!
//! The programs come from `$AIRGAP_UPSTREAM_BIN` (`.ci/run` builds them), else from
//! `build.sh` (idempotent, cached in `~/.cache/airgap-upstream`). When they cannot be built or
//! the namespace cannot be made, the tests fail on CI (`CI=true`) and are skipped, with the
//! reason on stderr, elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use airgap::oci::digest::Digest;
use serde_json::{Value, json};

use crate::index_image::{
    blob, extract_with_gnu_tar, layer_digests, layout_manifest, manifest_text,
};
use crate::support::registry::{self, TestRegistry, skopeo};
use crate::support::world::{self, World};
use crate::support::*;

/// One version of a stack as the fixture has it: its devfile's `metadata.version`, the folder
/// of its devfile in the tree, its starter projects.
struct VersionSpec {
    version: String,
    dir: String,
    starters: Vec<String>,
}

/// What the fixture says a stack has, read without airgap: every version, and which one is
/// the default.
struct StackSpec {
    versions: Vec<VersionSpec>,
    default: usize,
}

impl StackSpec {
    fn default_version(&self) -> &VersionSpec {
        &self.versions[self.default]
    }
}

fn fixture_stacks() -> BTreeMap<String, StackSpec> {
    let registry = fixtures().join("devfile-registry");
    let version = |dir: String| {
        let devfile = world::yaml(&registry.join(&dir).join("devfile.yaml"));
        VersionSpec {
            version: devfile["metadata"]["version"].as_str().unwrap().to_owned(),
            starters: world::projects_of(&devfile)
                .into_iter()
                .filter(|(kind, _)| *kind == "starter")
                .map(|(_, p)| p.name)
                .collect(),
            dir,
        }
    };
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(registry.join("stacks")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let spec = if dir.join("stack.yaml").is_file() {
            let stack = world::yaml(&dir.join("stack.yaml"));
            let listed = stack["versions"].as_array().unwrap();
            StackSpec {
                versions: listed
                    .iter()
                    .map(|v| version(format!("stacks/{name}/{}", v["version"].as_str().unwrap())))
                    .collect(),
                default: listed
                    .iter()
                    .position(|v| v["default"] == true)
                    .expect("stack.yaml names a default"),
            }
        } else {
            StackSpec {
                versions: vec![version(format!("stacks/{name}"))],
                default: 0,
            }
        };
        out.insert(name, spec);
    }
    out
}

fn fixture_samples() -> BTreeSet<String> {
    let extra = world::yaml(&fixtures().join("devfile-registry/extraDevfileEntries.yaml"));
    extra["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs on CI (which sets `CI=true`): what cannot run there is a failure, not a skip.
pub(crate) fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The folder holding upstream's `index-server` and `registry-library`, or why there is none.
fn upstream_programs() -> &'static Result<PathBuf, String> {
    static PROGRAMS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let dir = match std::env::var_os("AIRGAP_UPSTREAM_BIN") {
            Some(dir) => PathBuf::from(dir),
            None => {
                let build = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../shared/upstream-server/build.sh");
                let out = Command::new(&build)
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("cannot run `{}`: {e}", build.display()))?;
                if !out.status.success() {
                    return Err(format!(
                        "`{}` failed: {}",
                        build.display(),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        for program in ["index-server", "registry-library"] {
            if !dir.join(program).is_file() {
                return Err(format!("no `{program}` in `{}`", dir.display()));
            }
        }
        let unshare = Command::new("unshare")
            .args(["-n", "ip", "link", "set", "lo", "up"])
            .output()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        if !unshare.status.success() {
            return Err(format!(
                "cannot make a network namespace (root is needed): {}",
                String::from_utf8_lossy(&unshare.stderr)
            ));
        }
        Ok(dir)
    })
}

/// The programs, or `None` (after saying why) when this machine cannot run them and is not CI.
pub(crate) fn programs_or_skip(test: &str) -> Option<PathBuf> {
    match upstream_programs() {
        Ok(dir) => Some(dir.clone()),
        Err(why) if on_ci() => panic!("upstream's server cannot run: {why}"),
        Err(why) => {
            eprintln!("skipping {test}: upstream's server cannot run here: {why}");
            None
        }
    }
}

/// Kills a process group when dropped (the check's, whatever state it ended in).
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(Stdio::null())
            .status();
    }
}

/// The `/registry` tree of the devfile-index image `ref_name` of an OCI layout, extracted
/// from the image's last layer with GNU tar.
pub(crate) fn registry_tree_of(layout: &Path, ref_name: &str) -> tempfile::TempDir {
    let (manifest, _) = layout_manifest(layout, ref_name);
    let last = layer_digests(&manifest).pop().unwrap();
    let extracted = extract_with_gnu_tar(&blob(layout, &last));
    assert!(extracted.path().join("registry/index.json").is_file());
    extracted
}

/// The regular files of a tar.gz, name → bytes (GNU tar: a plain tar fails here).
fn tar_gz_files(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let listing = Command::new("tar").arg("-tzf").arg(path).output().unwrap();
    assert!(
        listing.status.success(),
        "`{}` is not a tar.gz: {}",
        path.display(),
        String::from_utf8_lossy(&listing.stderr)
    );
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(path)
        .arg("-C")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mut files = BTreeMap::new();
    for name in String::from_utf8(listing.stdout).unwrap().lines() {
        let p = out.path().join(name);
        if p.is_file() && !p.is_symlink() {
            files.insert(name.to_owned(), std::fs::read(&p).unwrap());
        }
    }
    files
}

/// The names of the files (not folders) of a zip.
fn zip_file_names(path: &Path) -> BTreeSet<String> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap())
        .unwrap_or_else(|e| panic!("`{}` is not a zip: {e}", path.display()));
    let mut names = BTreeSet::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        if !f.is_dir() {
            let name = f.name().unwrap().into_owned();
            // Reading checks the data inflates to its CRC.
            let mut sink = Vec::new();
            f.read_to_end(&mut sink)
                .unwrap_or_else(|e| panic!("`{}`: {name}: {e}", path.display()));
            names.insert(name);
        }
    }
    names
}

/// Every file below `dir`, relative.
fn files_below(dir: &Path) -> BTreeSet<String> {
    tree(dir).into_keys().collect()
}

/// Runs `upstream_server.py` on `plan` (written to `work/plan.json`) in new namespaces
/// (`unshare` flags), after the shell commands `setup`, in a process group killed at the end;
/// returns the answers it wrote to `work/results.json`.
pub(crate) fn run_check(namespaces: &[&str], setup: &str, plan: &Value, work: &Path) -> Value {
    let plan_path = work.join("plan.json");
    std::fs::write(&plan_path, serde_json::to_vec(plan).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/upstream_server.py");
    let child = Command::new("unshare")
        .args(namespaces)
        .args([
            "bash",
            "-c",
            &format!("{setup} && exec python3 \"$0\" \"$1\""),
        ])
        .arg(&script)
        .arg(&plan_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("unshare runs");
    let _group = KillGroup(child.id());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the check script failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(work.join("results.json")).unwrap()).unwrap()
}

/// Starts upstream's server on `registry` (an extracted `/registry` tree) with a sidecar, in a
/// private network namespace, runs the client against it, and asserts what a cluster needs.
fn check_under_upstream(bin: &Path, registry: &Path) {
    let stacks = fixture_stacks();
    let samples = fixture_samples();
    let work = tempfile::tempdir().unwrap();
    let sidecar = work.path().join("sidecar");
    std::fs::create_dir_all(sidecar.join("storage")).unwrap();
    std::fs::write(
        sidecar.join("config.yml"),
        registry::config(&sidecar.join("storage"), "127.0.0.1:5000", "", ""),
    )
    .unwrap();
    let plan = json!({
        "bin": bin,
        "registry": registry,
        "sidecar_config": sidecar.join("config.yml"),
        "work": work.path(),
        "stacks": stacks
            .iter()
            .map(|(name, s)| {
                let versions: serde_json::Map<String, Value> = s
                    .versions
                    .iter()
                    .map(|v| (v.version.clone(), json!(v.starters)))
                    .collect();
                (
                    name.clone(),
                    json!({"versions": versions, "starters": s.default_version().starters}),
                )
            })
            .collect::<serde_json::Map<_, _>>(),
    });
    let started = std::time::Instant::now();
    let results = run_check(&["-n"], "ip link set lo up", &plan, work.path());
    eprintln!("upstream check took {:?}", started.elapsed());

    // The server starts: every stack version was pushed to the sidecar, /health answers.
    assert_eq!(
        results["started"],
        true,
        "upstream's server did not start ({}):\n{}",
        results["exit"],
        results["server_log"].as_str().unwrap_or_default()
    );

    // The indexes list every stack (and, for /index/all, every sample).
    let names = |path: &str| -> BTreeSet<String> {
        let answer = &results["index"][path];
        assert_eq!(answer[0], 200, "{path}: {answer}");
        let body: Value = serde_json::from_str(answer[1].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
        body.as_array()
            .unwrap_or_else(|| panic!("{path} is not an array: {body}"))
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let stack_names: BTreeSet<String> = stacks.keys().cloned().collect();
    assert_eq!(names("/index"), stack_names);
    assert_eq!(names("/v2index"), stack_names);
    assert_eq!(
        names("/index/all"),
        stack_names.union(&samples).cloned().collect()
    );

    // Every version's devfile, read back from the sidecar; every version's starter projects
    // over the server's API (202 and the zip's bytes: registry-library downloads only the
    // default version's).
    for (name, s) in &stacks {
        for v in &s.versions {
            let path = format!("/devfiles/{name}/{}", v.version);
            assert_eq!(results["devfiles"][&path], 200, "{path}");
            for starter in &v.starters {
                let path = format!("{path}/starter-projects/{starter}");
                let answer = &results["starters"][&path];
                let zip =
                    std::fs::read(registry.join(&v.dir).join(format!("{starter}-offline.zip")))
                        .unwrap();
                assert_eq!(
                    (answer[0].as_u64(), answer[1].as_str()),
                    (Some(202), Some(Digest::of(&zip).as_str())),
                    "{path}: {answer}"
                );
            }
        }
    }

    for (name, s) in &stacks {
        // registry-library pulls the default version: the devfile, and archive.tar un-gzipped
        // into its files and removed.
        let (code, text) = (
            &results["pull"][name][0],
            results["pull"][name][1].as_str().unwrap(),
        );
        assert!(code == 0 && !text.contains("Failed"), "pull {name}: {text}");
        let pulled = work.path().join("pull").join(name);
        let got = files_below(&pulled);
        let from = registry.join(&s.default_version().dir);
        assert_eq!(
            std::fs::read(pulled.join("devfile.yaml")).ok(),
            Some(std::fs::read(from.join("devfile.yaml")).unwrap()),
            "pull {name}: {got:?}"
        );
        assert!(!got.contains("archive.tar"), "pull {name}: {got:?}");
        if from.join("archive.tar").exists() {
            for (file, bytes) in tar_gz_files(&from.join("archive.tar")) {
                assert_eq!(
                    std::fs::read(pulled.join(&file)).ok().as_ref(),
                    Some(&bytes),
                    "pull {name}: `{file}` of archive.tar; got {got:?}"
                );
            }
        }

        // registry-library downloads every starter project: a zip with the tree's files.
        for starter in &s.default_version().starters {
            let key = format!("{name}/{starter}");
            let text = results["download"][&key][1].as_str().unwrap();
            assert!(
                results["download"][&key][0] == 0 && !text.contains("failed"),
                "download {key}: {text}"
            );
            let expected = zip_file_names(&from.join(format!("{starter}-offline.zip")));
            assert!(!expected.is_empty(), "{key}");
            let got = files_below(&work.path().join("download").join(name).join(starter));
            assert_eq!(got, expected, "download {key}");
        }
    }
}

#[test]
fn upstream_server_and_client_run_on_the_index_image_of_a_dir_target() {
    let Some(bin) =
        programs_or_skip("upstream_server_and_client_run_on_the_index_image_of_a_dir_target")
    else {
        return;
    };
    let w = World::community();
    w.write_manifest("");
    airgap(&w.workspace, &["apply"]).ok();
    let tree = registry_tree_of(&w.workspace.join("out"), "devfile-index:latest");
    check_under_upstream(&bin, &tree.path().join("registry"));
}

#[test]
fn upstream_server_and_client_run_on_the_index_image_of_a_registry_target() {
    let Some(bin) =
        programs_or_skip("upstream_server_and_client_run_on_the_index_image_of_a_registry_target")
    else {
        return;
    };
    let w = World::community();
    let target = TestRegistry::start();
    std::fs::write(
        w.workspace.join("airgap.kdl"),
        manifest_text(
            &w,
            &format!("target \"{}/devfiles\" tls=\"plain-http\"", target.host()),
            &[],
        ),
    )
    .unwrap();
    airgap(&w.workspace, &["apply"]).ok();
    let copy = tempfile::tempdir().unwrap();
    let layout = copy.path().join("oci");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/devfiles/devfile-index:latest", target.host()),
        &format!("oci:{}:pulled", layout.display()),
    ]);
    let tree = registry_tree_of(&layout, "pulled");
    check_under_upstream(&bin, &tree.path().join("registry"));
}
