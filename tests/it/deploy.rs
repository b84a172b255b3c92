//! `deploy`: the images the registry's pod runs are locked and mirrored like any image, and
//! `apply` writes `deploy/` (kustomize-ready manifests or a `DevfileRegistry` CR, and client
//! registration), every image by digest.
//!
//! The manifests are checked by independent tools: `kubectl kustomize` builds them,
//! `kubernetes-validate` (PyPI, a pinned Kubernetes version, `--strict`) validates the core
//! kinds, and `jsonschema` validates the CRs against registry-operator's CRDs (made strict:
//! an unknown field is an error, as `kubectl apply --validate=strict` makes it). The Python
//! packages live in a venv under `~/.cache/airgap-k8s-validate` (made on first use). The pod
//! itself runs as the kubelet would run it: see [`the_rendered_pod_runs_as_the_kubelet_would`].

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::index_image::{change_upstream_file, layout_manifest, manifest_text};
use crate::support::world::World;
use crate::support::*;
use crate::upstream_server::{on_ci, programs_or_skip, registry_tree_of, run_check};

/// The Kubernetes version the core kinds are validated against.
const KUBERNETES: &str = "1.32.0";
const VALIDATORS: &str = "kubernetes-validate==1.34.1 jsonschema==4.26.0";

fn deploy_dir(w: &World) -> PathBuf {
    w.workspace.join("out/deploy")
}

fn yaml_of(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every string under a key named `image`.
fn images_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::String(s) if k == "image" => out.push(s.clone()),
                    _ => images_in(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| images_in(v, out)),
        _ => {}
    }
}

/// What the manifests must name: each deployment image at its lock target and digest, and
/// the devfile-index image at the digest the layout holds.
fn expected_images(w: &World) -> BTreeMap<String, String> {
    let lock = airgap::lock::read("airgap.lock", &w.lock_text()).unwrap();
    let deploy = lock.deploy.as_ref().expect("the lock has a deploy entry");
    let mut out = BTreeMap::new();
    for (role, key) in &deploy.images {
        let entry = &lock.images[key];
        let digest = &entry.resolved.as_ref().expect("pinned").digest;
        out.insert(role.clone(), format!("{}@{digest}", entry.target));
    }
    let (_, digest) = layout_manifest(&w.workspace.join("out"), "devfile-index:latest");
    out.insert(
        "devfile-index".into(),
        format!("localhost:8080/devfile-index:latest@{digest}"),
    );
    out
}

/// The venv's `bin/` with the validators, or why there is none.
fn validators() -> &'static Result<PathBuf, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .ok_or("no HOME")?;
        let venv = cache.join("airgap-k8s-validate/venv");
        let bin = venv.join("bin");
        let stamp = venv.join(format!(".installed {VALIDATORS}"));
        if stamp.exists() {
            return Ok(bin);
        }
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)))
            }
        };
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run(Command::new(bin.join("pip"))
            .args(["install", "-q"])
            .args(VALIDATORS.split(' ')))?;
        std::fs::write(&stamp, b"").map_err(|e| e.to_string())?;
        Ok(bin)
    })
}

fn validators_or_skip(test: &str) -> Option<PathBuf> {
    match validators() {
        Ok(bin) => Some(bin.clone()),
        Err(why) if on_ci() => panic!("the validators cannot be installed: {why}"),
        Err(why) => {
            eprintln!("skipping the validation in {test}: {why}");
            None
        }
    }
}

/// Validates the core kinds with kubernetes-validate (strict) and the CRs against the CRDs.
fn validate(bin: &Path, deploy: &Path, core: &[&str], crs: &[&str]) {
    let out = Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", KUBERNETES])
        .args(core.iter().map(|f| deploy.join(f)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubernetes-validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let crds = fixtures().join("registry-operator/crd");
    let script = r#"
import json, sys, glob, yaml, jsonschema
def strict(s):
    if isinstance(s, dict):
        if "properties" in s and "additionalProperties" not in s:
            s["additionalProperties"] = False
        for v in s.values():
            strict(v)
    elif isinstance(s, list):
        for v in s:
            strict(v)
schemas = {}
for path in glob.glob(sys.argv[1] + "/*.yaml"):
    crd = yaml.safe_load(open(path))
    for v in crd["spec"]["versions"]:
        schema = v["schema"]["openAPIV3Schema"]
        strict(schema)
        schemas[(crd["spec"]["group"] + "/" + v["name"], crd["spec"]["names"]["kind"])] = schema
for path in sys.argv[2:]:
    cr = yaml.safe_load(open(path))
    schema = schemas[(cr["apiVersion"], cr["kind"])]
    jsonschema.validate(cr, schema)
    print("valid", path)
"#;
    let out = Command::new(bin.join("python3"))
        .arg("-c")
        .arg(script)
        .arg(&crds)
        .args(crs.iter().map(|f| deploy.join(f)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the CRs against the CRDs:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kubectl kustomize DIR` builds (offline); its output names every expected image.
fn kustomize_builds(deploy: &Path, images: &BTreeMap<String, String>, roles: &[&str]) {
    let Ok(out) = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy)
        .output()
    else {
        assert!(!on_ci(), "kubectl is not installed");
        eprintln!("skipping `kubectl kustomize`: kubectl is not installed");
        return;
    };
    let built = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for role in roles {
        assert!(built.contains(&images[*role]), "{role}: {built}");
    }
}

/// (mtime, inode) of every file below `dir`.
fn stamps(dir: &Path) -> BTreeMap<String, (i64, i64, u64)> {
    tree(dir)
        .into_keys()
        .map(|rel| {
            let m = std::fs::metadata(dir.join(&rel)).unwrap();
            (rel, (m.mtime(), m.mtime_nsec(), m.ino()))
        })
        .collect()
}

/// A `deploy` node with an ingress and storage (also used by `noop`).
pub const PLAIN: &str = r#"deploy namespace="devfiles" {
    ingress host="devfile-registry.apps.internal" class="nginx"
    storage size="2Gi"
}
"#;

#[test]
fn deploy_manifests_are_pinned_valid_and_rewritten_only_when_the_lock_moves() {
    let mut w = World::community();
    let base = manifest_text(&w, "target \"dir:out\"", &["go", "nodejs"]);
    let manifest = |deploy: &str| format!("{base}{deploy}");
    std::fs::write(w.workspace.join("airgap.kdl"), manifest(PLAIN)).unwrap();
    airgap(&w.workspace, &["lock"]).ok();
    let lock_text = w.lock_text();
    assert!(
        lock_text.contains(
            "deploy \"devfile-registry\" namespace=\"devfiles\" headless=#false operator=#false storage=\"2Gi\" expose=\"ingress\" host=\"devfile-registry.apps.internal\" class=\"nginx\" {"
        ),
        "{lock_text}"
    );
    assert!(
        lock_text.contains("image \"quay.io/devfile/oci-registry:next\""),
        "{lock_text}"
    );
    assert!(!lock_text.contains("registry-operator"), "{lock_text}");
    airgap(&w.workspace, &["apply"]).ok();

    let deploy = deploy_dir(&w);
    let files: BTreeSet<String> = tree(&deploy).into_keys().collect();
    let expected_files: BTreeSet<String> = [
        "README.md",
        "clients/checluster-patch.yaml",
        "clients/cluster-devfile-registries-list.yaml",
        "configmap.yaml",
        "deployment.yaml",
        "ingress.yaml",
        "kustomization.yaml",
        "namespace.yaml",
        "pvc.yaml",
        "service.yaml",
    ]
    .map(String::from)
    .into();
    assert_eq!(files, expected_files);

    // Every image by digest: the lock's, as it landed in the target's layout.
    let images = expected_images(&w);
    let mut named = Vec::new();
    images_in(&yaml_of(&deploy.join("deployment.yaml")), &mut named);
    let roles = ["devfile-index", "registry-viewer", "oci-registry"];
    assert_eq!(named, roles.map(|r| images[r].clone()));
    for image in images.values() {
        let digest: airgap::oci::digest::Digest =
            image.rsplit_once('@').unwrap().1.parse().unwrap();
        assert!(
            crate::index_image::blob(&w.workspace.join("out"), &digest).is_file(),
            "{image} is not at the target"
        );
    }
    let readme = std::fs::read_to_string(deploy.join("README.md")).unwrap();
    assert!(
        readme.contains(
            "odo preference add registry devfile-registry http://devfile-registry.apps.internal"
        ),
        "{readme}"
    );

    kustomize_builds(&deploy, &images, &roles);
    if let Some(bin) = validators_or_skip("deploy_manifests_are_pinned_valid…") {
        validate(
            &bin,
            &deploy,
            &[
                "namespace.yaml",
                "configmap.yaml",
                "deployment.yaml",
                "service.yaml",
                "pvc.yaml",
                "ingress.yaml",
            ],
            &["clients/cluster-devfile-registries-list.yaml"],
        );
    }

    // verify checks deploy/: an image from outside the gap is named.
    let verified = airgap(&w.workspace, &["verify"]).ok();
    assert!(verified.stderr.contains("deploy/"), "{}", verified.stderr);
    let deployment = std::fs::read_to_string(deploy.join("deployment.yaml")).unwrap();
    let tampered = deployment.replace(&images["oci-registry"], "quay.io/devfile/oci-registry:next");
    std::fs::write(deploy.join("deployment.yaml"), &tampered).unwrap();
    let run = airgap(&w.workspace, &["verify"]);
    assert!(!run.success(), "{}", run.stderr);
    let text = run.err_text();
    assert!(text.contains("quay.io/devfile/oci-registry:next"), "{text}");
    assert!(text.contains("names `quay.io`"), "{text}");
    std::fs::write(deploy.join("deployment.yaml"), &deployment).unwrap();

    // A second apply: nothing ran, no file of deploy/ rewritten.
    let before = stamps(&deploy);
    let run = airgap(&w.workspace, &["apply"]).ok();
    assert!(run.stderr.contains(" 0 ran"), "{}", run.stderr);
    assert_eq!(stamps(&deploy), before);

    relock_moves_only_the_index_digest(&mut w, &images);
    operator_form(&w, &manifest(OPERATOR));
}

/// A changed devfile, relocked: only the devfile-index digest moves in the Deployment (and
/// the README's list of images); the other manifests keep their bytes.
fn relock_moves_only_the_index_digest(w: &mut World, images: &BTreeMap<String, String>) {
    let deploy = deploy_dir(w);
    let old = tree(&deploy);
    change_upstream_file(w, "stacks/go/2.6.0/devfile.yaml", |b| {
        String::from_utf8_lossy(b)
            .replace(
                "A Go project with a simple HTTP server",
                "A Go project with an HTTP server",
            )
            .into_bytes()
    });
    airgap(&w.workspace, &["lock", "--update", "community"]).ok();
    airgap(&w.workspace, &["apply"]).ok();
    let new = tree(&deploy);
    let new_images = expected_images(w);
    assert_ne!(new_images["devfile-index"], images["devfile-index"]);
    for (file, bytes) in &old {
        if file == "deployment.yaml" || file == "README.md" {
            let text = String::from_utf8(bytes.clone()).unwrap();
            let moved = text.replace(&images["devfile-index"], &new_images["devfile-index"]);
            assert_ne!(moved, text, "{file}");
            assert_eq!(moved.as_bytes(), &new[file][..], "{file}");
        } else {
            assert_eq!(bytes, &new[file], "{file} changed");
        }
    }
}

const OPERATOR: &str = "deploy namespace=\"devfiles\" {\n    route host=\"registry.apps.internal\"\n    operator #true\n    headless #true\n}\n";

/// The operator form: a DevfileRegistry CR the CRD accepts, the operator's image pinned, the
/// plain form's files gone.
fn operator_form(w: &World, manifest: &str) {
    let deploy = deploy_dir(w);
    std::fs::write(w.workspace.join("airgap.kdl"), manifest).unwrap();
    airgap(&w.workspace, &["lock"]).ok();
    airgap(&w.workspace, &["apply"]).ok();
    let images = expected_images(w);
    assert!(images.contains_key("operator") && !images.contains_key("registry-viewer"));
    let files: BTreeSet<String> = tree(&deploy).into_keys().collect();
    assert!(
        files.contains("devfile-registry.yaml") && !files.contains("deployment.yaml"),
        "{files:?}"
    );
    let cr = yaml_of(&deploy.join("devfile-registry.yaml"));
    assert_eq!(
        cr["spec"]["devfileIndex"]["image"],
        json!(images["devfile-index"])
    );
    assert_eq!(
        cr["spec"]["ociRegistry"]["image"],
        json!(images["oci-registry"])
    );
    assert_eq!(cr["spec"]["headless"], json!(true));
    let readme = std::fs::read_to_string(deploy.join("README.md")).unwrap();
    assert!(readme.contains(&images["operator"]), "{readme}");
    kustomize_builds(&deploy, &images, &["devfile-index", "oci-registry"]);
    if let Some(bin) = validators_or_skip("the operator form") {
        validate(
            &bin,
            &deploy,
            &["namespace.yaml"],
            &[
                "devfile-registry.yaml",
                "clients/cluster-devfile-registries-list.yaml",
            ],
        );
    }
    airgap(&w.workspace, &["verify"]).ok();
}

/// A container of the rendered Deployment.
fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// The (port, path) of every httpGet probe of a container.
fn probes(c: &Value) -> Vec<(u64, String)> {
    ["livenessProbe", "readinessProbe", "startupProbe"]
        .iter()
        .filter_map(|p| c[p]["httpGet"].as_object())
        .map(|g| {
            (
                g["port"].as_u64().unwrap(),
                g["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The sidecar's volumes, made as the kubelet makes them: a ConfigMap's items as files, an
/// emptyDir empty. Returns (folder on this machine, mount path in the container).
fn kubelet_volumes(
    pod: &Value,
    sidecar: &Value,
    config_map: &Value,
    work: &Path,
) -> Vec<(PathBuf, String)> {
    let mut mounts: Vec<(PathBuf, String)> = Vec::new();
    for (i, m) in sidecar["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap();
        let host = work.join(format!("volume-{i}"));
        std::fs::create_dir_all(&host).unwrap();
        if let Some(cm) = volume["configMap"].as_object() {
            assert_eq!(cm["name"], config_map["metadata"]["name"]);
            for item in cm["items"].as_array().unwrap() {
                let data = config_map["data"][item["key"].as_str().unwrap()]
                    .as_str()
                    .unwrap();
                std::fs::write(host.join(item["path"].as_str().unwrap()), data).unwrap();
            }
        } else {
            assert!(volume["emptyDir"].is_object(), "{volume}");
        }
        mounts.push((host, m["mountPath"].as_str().unwrap().to_owned()));
    }
    mounts
}

/// Runs upstream_server.py on `plan` in a private mount and network namespace where each
/// (folder, mount path) of `mounts` is bind-mounted; returns its results.
fn run_pod(plan: &Value, mounts: &[(PathBuf, String)], work: &Path) -> Value {
    // Mount points that do not exist on this machine get a tmpfs parent in the namespace.
    let mut setup = String::from("set -e; mount --make-rprivate /; ip link set lo up");
    for (host, path) in mounts {
        setup.push_str(&format!(
            "; if [ ! -d '{path}' ]; then mount -t tmpfs tmpfs \"$(dirname '{path}')\"; mkdir -p '{path}'; fi; mount --bind '{}' '{path}'",
            host.display()
        ));
    }
    run_check(&["-m", "-n"], &setup, plan, work)
}

/// The rendered pod, run as the kubelet would: the Deployment's containers' programs with
/// exactly their env, ports and mounts. The OCI sidecar (`docker-registry`, the program of
/// upstream's `oci-registry` image) runs `serve /etc/docker/registry/config.yml` with the
/// ConfigMap's item bind-mounted there and its storage volume at its mount path, in a private
/// mount and network namespace; the index server runs on the tree of the built devfile-index
/// image with the container's env. Then every probe of the Deployment answers, and
/// registry-library pulls through the Service's port.
#[test]
fn the_rendered_pod_runs_as_the_kubelet_would() {
    let Some(bin) = programs_or_skip("the_rendered_pod_runs_as_the_kubelet_would") else {
        return;
    };
    let w = World::community();
    let deploy = "deploy {\n    headless #true\n}\n";
    std::fs::write(
        w.workspace.join("airgap.kdl"),
        format!(
            "{}{deploy}",
            manifest_text(&w, "target \"dir:out\"", &["go", "nodejs"])
        ),
    )
    .unwrap();
    airgap(&w.workspace, &["apply"]).ok();
    let dir = deploy_dir(&w);
    let deployment = yaml_of(&dir.join("deployment.yaml"));
    let config_map = yaml_of(&dir.join("configmap.yaml"));
    let service = yaml_of(&dir.join("service.yaml"));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"].as_array().unwrap().len(),
        2,
        "headless: no viewer"
    );
    let index = container(&deployment, "devfile-registry");
    let sidecar = container(&deployment, "oci-registry");

    let work = tempfile::tempdir().unwrap();
    let mounts = kubelet_volumes(pod, sidecar, &config_map, work.path());
    assert!(mounts.iter().any(|(_, p)| p == "/etc/docker/registry"));
    assert!(mounts.iter().any(|(_, p)| p == "/var/lib/registry"));

    // The index server's env, exactly the container's; its ports and the Service's.
    let env: serde_json::Map<String, Value> = index["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e["value"].clone()))
        .collect();
    assert_eq!(env["REGISTRY_HEADLESS"], "true");
    let http = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .unwrap();
    assert_eq!(http["targetPort"], 8080, "the server listens on 8080");
    assert!(
        index["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["containerPort"] == 8080)
    );
    assert!(
        sidecar["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["containerPort"] == 5000)
    );
    let mut all_probes = probes(index);
    all_probes.extend(probes(sidecar));
    assert!(
        all_probes.contains(&(8080, "/health".into())),
        "{all_probes:?}"
    );

    let tree = registry_tree_of(&w.workspace.join("out"), "devfile-index:latest");
    let plan = json!({
        "bin": bin,
        "registry": tree.path().join("registry"),
        "sidecar_config": "/etc/docker/registry/config.yml",
        "work": work.path(),
        "env": env,
        "probes": all_probes,
        "stacks": {"go": {"versions": {}, "starters": []}, "nodejs": {"versions": {}, "starters": []}},
    });
    let results = run_pod(&plan, &mounts, work.path());
    assert_eq!(
        results["started"],
        true,
        "the index server did not start ({}):\n{}",
        results["exit"],
        results["server_log"].as_str().unwrap_or_default()
    );
    for (port, path) in &all_probes {
        let status = &results["probes"][format!("{port}{path}")];
        assert_eq!(status, 200, "probe {port}{path}: {results:#}");
    }
    for stack in ["go", "nodejs"] {
        let text = results["pull"][stack][1].as_str().unwrap();
        assert!(
            results["pull"][stack][0] == 0 && !text.contains("Failed"),
            "pull {stack}: {text}"
        );
        assert!(
            work.path()
                .join("pull")
                .join(stack)
                .join("devfile.yaml")
                .is_file()
        );
    }
}

/// `apply --bundle` carries `deploy/` and the deployment's images: the manifests name the
/// registry target, and after `airgap push` every image they name is there by digest.
#[test]
fn a_bundle_carries_the_deployment_and_push_lands_its_images() {
    let w = World::community();
    let target = crate::support::registry::TestRegistry::start();
    let target_line = format!("target \"{}/devfiles\" tls=\"plain-http\"", target.host());
    std::fs::write(
        w.workspace.join("airgap.kdl"),
        format!(
            "{}deploy {{\n    headless #true\n}}\n",
            manifest_text(&w, &target_line, &["go"])
        ),
    )
    .unwrap();
    let carried = tempfile::tempdir().unwrap();
    let bundle = carried.path().join("bundle");
    let run = airgap(
        &w.workspace,
        &["apply", "--bundle", bundle.to_str().unwrap()],
    )
    .ok();
    assert!(run.stderr.contains("kubectl apply -k"), "{}", run.stderr);
    let mut named = Vec::new();
    images_in(&yaml_of(&bundle.join("deploy/deployment.yaml")), &mut named);
    assert_eq!(named.len(), 2, "{named:?}");
    for image in &named {
        let rest = image
            .strip_prefix(&format!("{}/devfiles/", target.host()))
            .unwrap_or_else(|| panic!("{image} names the registry target"));
        let digest: airgap::oci::digest::Digest = rest.rsplit_once('@').unwrap().1.parse().unwrap();
        assert!(
            crate::index_image::blob(&bundle, &digest).is_file(),
            "{image} is in the bundle"
        );
    }
    airgap(&w.workspace, &["push", bundle.to_str().unwrap()]).ok();
    for image in &named {
        // skopeo takes a tag or a digest, not both: the tag must name the digest.
        let (tagged, digest) = image.rsplit_once('@').unwrap();
        let raw = crate::support::registry::skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{tagged}"),
        ]);
        assert_eq!(
            airgap::oci::digest::Digest::of(&raw).to_string(),
            digest,
            "{image}"
        );
    }
}
