//! The README's main-job lines, run exactly as written (with the `airgap` under test first on
//! `PATH`), in a fresh copy of the example: apply with no network and no registry, serve, curl a
//! devfile, skopeo-inspect an image. A line that stops working fails CI.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// The first fenced block of language `lang` in `text`.
fn fenced<'a>(text: &'a str, lang: &str) -> &'a str {
    let after = text
        .split(&format!("```{lang}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {lang} block"));
    after.split("```").next().unwrap()
}

/// The lines of the fenced block after the `main-job` marker.
fn main_job_lines() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = readme
        .split("<!-- main-job")
        .nth(1)
        .expect("the README marks its main job");
    fenced(after, "sh")
        .lines()
        .map(str::to_string)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn the_readme_main_job_runs_as_written() {
    let lines = main_job_lines();
    assert!(
        lines.iter().any(|l| l.starts_with("airgap apply")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("airgap serve")),
        "{lines:?}"
    );

    let root = tempfile::tempdir().unwrap();
    let example = root.path().join("examples/quickstart");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart"),
        &example,
    );
    for leftover in ["out", ".airgap"] {
        let _ = std::fs::remove_dir_all(example.join(leftover));
    }
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_airgap"), bin.join("airgap")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // The committed lock is current: the example is what the README says it is.
    airgap(&example, &["lock", "--locked"]).ok();
    let _ = std::fs::remove_dir_all(example.join(".airgap"));

    // The lines, then stop the server they started in the background.
    let script = format!(
        "set -e\n{}\nkill $! 2>/dev/null || true\n",
        lines.join("\n")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(root.path())
        .env("PATH", &path)
        .env("NO_COLOR", "1")
        // No network: every proxy points at a closed port.
        .env("http_proxy", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("no_proxy", "localhost,127.0.0.1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the README lines failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );

    // curl printed the rewritten devfile; skopeo saw the image at the locked digest.
    assert!(stdout.contains("name: hello-go"), "{stdout}");
    assert!(
        stdout.contains("image: localhost:8080/go-toolset:1.22@sha256:"),
        "{stdout}"
    );
    let lock = airgap::lock::read(
        "airgap.lock",
        &std::fs::read_to_string(example.join("airgap.lock")).unwrap(),
    )
    .unwrap();
    let go = lock
        .images
        .iter()
        .find(|(k, _)| k.contains("go-toolset:1.22"))
        .unwrap()
        .1;
    let digest = go.resolved.as_ref().unwrap().digest.clone();
    assert!(
        stdout.contains(&format!("\"Digest\": \"{digest}\"")),
        "skopeo shows {digest}:\n{stdout}"
    );
}

/// The README's "Deploy into the cluster" section: its `deploy` node parses in a manifest, and
/// its update loop is the one the deploy tests run (`lock --update`, `apply`, `kubectl apply -k`
/// of `deploy/`, which they build with `kubectl kustomize`: no cluster runs here).
#[test]
fn the_readme_deploy_section_is_a_valid_manifest_and_its_loop_is_the_tested_one() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Deploy into the cluster")
        .nth(1)
        .expect("the README has a deploy section")
        .split("\n## ")
        .next()
        .unwrap();
    let kdl = fenced(section, "kdl");
    let text = format!("source \"s\" path=\"registry\"\n{kdl}");
    let m = airgap::manifest::parse("airgap.kdl", &text, std::path::PathBuf::from("."))
        .unwrap_or_else(|e| panic!("{}", airgap::diag::render_plain(&e)));
    let deploy = m.deploy.expect("a deploy node");
    assert_eq!(deploy.config.namespace, "devfile-registry");
    let sh = fenced(section, "sh");
    assert!(
        sh.contains("airgap lock --update && airgap apply && kubectl apply -k airgap-out/deploy"),
        "{sh}"
    );
    for file in [
        "clients/cluster-devfile-registries-list.yaml",
        "clients/checluster-patch.yaml",
    ] {
        assert!(sh.contains(file), "{file}: {sh}");
    }
}
