//! Apply converges the output folder to what the lock builds: a file changed in place (same
//! size) is found by its content and rewritten; a file only touched is not rebuilt, and its new
//! stamp is kept so the next run need not read it; `--force` reruns steps on demand.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::quickstart::fresh_example;
use super::support::{airgap, tree};

/// The quickstart applied in a fresh workspace.
fn applied() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().to_path_buf();
    fresh_example(&ws);
    airgap(&ws, &["apply"]).ok();
    (dir, ws)
}

/// Flips one byte of the file in place, keeping its size.
fn edit_in_place(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
    std::fs::write(path, bytes).unwrap();
}

/// The `N ran` of apply's summary line.
fn ran(stderr: &str) -> usize {
    let line = stderr
        .lines()
        .rfind(|l| l.contains(" ran, "))
        .unwrap_or_else(|| panic!("no summary line:\n{stderr}"));
    let before = line.split(" ran, ").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_same_size_edit_is_found_by_content_and_only_its_step_reruns() {
    let (_dir, ws) = applied();
    let out = ws.join("out");
    let clean = tree(&out);
    let zip = clean
        .keys()
        .find(|k| k.ends_with("-offline.zip"))
        .expect("the quickstart has a starter project zip")
        .clone();
    for rel in [
        "registry/stacks/hello-go/devfile.yaml".to_string(),
        "registry/index.json".to_string(),
        zip,
    ] {
        edit_in_place(&out.join(&rel));
        assert_ne!(tree(&out), clean, "{rel} was edited");
        let plan = airgap(&ws, &["plan", "--stale"]).ok();
        assert!(
            plan.stdout
                .contains(&format!("`{rel}` was changed since it was written")),
            "{rel}:\n{}",
            plan.stdout
        );
        let run = airgap(&ws, &["apply"]).ok();
        // The step that wrote it runs again, to the same bytes: nothing after it reruns.
        assert_eq!(ran(&run.stderr), 1, "{rel}:\n{}", run.stderr);
        assert_eq!(tree(&out), clean, "{rel} is restored");
        airgap(&ws, &["verify"]).ok();
    }
}

#[test]
fn a_touched_file_is_read_once_and_restamped() {
    let (_dir, ws) = applied();
    let rel = "registry/stacks/hello-go/devfile.yaml";
    let path = ws.join("out").join(rel);
    let stamp_of = |ws: &Path| -> Value {
        let state: Value =
            serde_json::from_slice(&std::fs::read(ws.join(".airgap/state.json")).unwrap()).unwrap();
        state["steps"]
            .as_object()
            .unwrap()
            .values()
            .find_map(|r| r["stamps"].get(rel).cloned())
            .unwrap_or_else(|| panic!("no stamp for {rel}"))
    };
    let before = stamp_of(&ws);
    // Same bytes, new mtime and inode: the content decides.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let plan = airgap(&ws, &["plan", "--stale"]).ok();
    assert!(plan.stdout.contains(", 0 stale"), "{}", plan.stdout);
    let run = airgap(&ws, &["apply"]).ok();
    assert_eq!(ran(&run.stderr), 0, "{}", run.stderr);
    let after = stamp_of(&ws);
    assert_eq!(after["sha256"], before["sha256"]);
    assert_ne!(
        (&after["ino"], &after["mtime_ns"]),
        (&before["ino"], &before["mtime_ns"]),
        "the state keeps the file's new identity"
    );
}

#[test]
fn force_reruns_the_named_steps_and_nothing_downstream_of_identical_outputs() {
    let (_dir, ws) = applied();
    let plan = airgap(&ws, &["plan", "--format", "json"]).ok();
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let ids: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let devfiles = ids.iter().filter(|i| i.starts_with("devfile:")).count();
    assert!(devfiles >= 2, "{ids:?}");
    let clean = tree(&ws.join("out"));

    let run = airgap(&ws, &["apply", "--force", "devfile"]).ok();
    assert_eq!(ran(&run.stderr), devfiles, "{}", run.stderr);
    let one = ids.iter().find(|i| i.starts_with("devfile:")).unwrap();
    let run = airgap(&ws, &["apply", "--force", one]).ok();
    assert_eq!(ran(&run.stderr), 1, "{}", run.stderr);
    let run = airgap(&ws, &["apply", "--force"]).ok();
    assert_eq!(ran(&run.stderr), ids.len(), "{}", run.stderr);
    assert_eq!(tree(&ws.join("out")), clean);

    let run = airgap(&ws, &["apply", "--force", "nosuch"]).fails(2);
    assert!(run.stderr.contains("no step has that id"), "{}", run.stderr);
}

/// The entry of the `dir:` target's layout index named `name`.
fn layout_entry(out: &Path, name: &str) -> Value {
    super::support::layout_index(out)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("no {name} in the layout"))
        .clone()
}

#[test]
fn verify_and_audit_check_the_index_image_and_stack_artifacts_and_apply_repairs_them() {
    let (_dir, ws) = applied();
    let out = ws.join("out");
    airgap(&ws, &["verify"]).ok();
    airgap(&ws, &["audit"]).ok();
    let clean = tree(&out);

    // The devfile-index tag re-pointed at its base image.
    let base = layout_entry(&out, "devfile-index-base:next");
    let text = std::fs::read_to_string(out.join("index.json")).unwrap();
    let mut index: Value = serde_json::from_str(&text).unwrap();
    for m in index["manifests"].as_array_mut().unwrap() {
        if m["annotations"]["org.opencontainers.image.ref.name"] == "devfile-index:latest" {
            for k in ["digest", "size", "mediaType"] {
                m[k] = base[k].clone();
            }
        }
    }
    std::fs::write(out.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    for cmd in ["verify", "audit"] {
        let run = airgap(&ws, &[cmd]).fails(1);
        assert!(
            run.stderr
                .contains("devfile-index:latest is not at the target"),
            "{cmd}:\n{}",
            run.stderr
        );
    }
    let plan = airgap(&ws, &["plan", "--stale"]).ok();
    assert!(
        plan.stdout.contains("image is missing at the target"),
        "{}",
        plan.stdout
    );
    airgap(&ws, &["apply"]).ok();
    airgap(&ws, &["verify"]).ok();
    assert_eq!(tree(&out), clean);

    // A layer blob of a stack artifact deleted.
    let artifact = layout_entry(&out, "devfile-catalog/hello-go:1.0.0");
    let blob = |d: &str| {
        out.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(artifact["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(blob(&layer)).unwrap();
    for cmd in ["verify", "audit"] {
        let run = airgap(&ws, &[cmd]).fails(1);
        assert!(
            run.stderr.contains("devfile-catalog/hello-go") && run.stderr.contains(&layer),
            "{cmd}:\n{}",
            run.stderr
        );
    }
    airgap(&ws, &["apply"]).ok();
    airgap(&ws, &["verify"]).ok();
    assert_eq!(tree(&out), clean);
}

#[test]
fn quiet_verbose_and_color() {
    let (_dir, ws) = applied();
    // -q: a successful apply says nothing.
    let quiet = airgap(&ws, &["apply", "-q"]).ok();
    assert_eq!(quiet.stderr, "", "-q printed something");
    // -v: a line per step that needed nothing.
    let verbose = airgap(&ws, &["apply", "-v"]).ok();
    assert!(
        verbose.stderr.contains("Fresh devfile of"),
        "{}",
        verbose.stderr
    );
    let normal = airgap(&ws, &["apply"]).ok();
    assert!(!normal.stderr.contains("Fresh "), "{}", normal.stderr);
    // Colour: never by default off a terminal; forced by --color always or CLICOLOR_FORCE.
    let esc = |args: &[&str], force: bool| {
        let mut cmd = super::support::airgap_cmd(&ws);
        cmd.args(args);
        if force {
            cmd.env("CLICOLOR_FORCE", "1");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).contains('\u{1b}')
    };
    assert!(!esc(&["apply", "--force", "nosuch"], false));
    assert!(esc(
        &["apply", "--force", "nosuch", "--color", "always"],
        false
    ));
    assert!(esc(&["apply", "--force", "nosuch"], true));
    assert!(!esc(
        &["apply", "--force", "nosuch", "--color", "never"],
        true
    ));
}

/// The screen a command leaves on a terminal: run in a pseudo-terminal by `script(1)`, its
/// output fed to a terminal emulator.
fn screen_after(ws: &Path, args: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_airgap");
    let output = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty cols 120 rows 40; exec {bin} {args}"),
            "/dev/null",
        ])
        .current_dir(ws)
        .env("HOME", ws)
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .output()
        .expect("script(1) runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let mut parser = vt100::Parser::new(40, 120, 0);
    parser.process(&output.stdout);
    // Row by row: a line that fills the width is a row of its own, not joined to the next.
    parser
        .screen()
        .rows(0, 120)
        .map(|r| r.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn on_a_terminal_the_summary_is_the_last_line_and_no_bar_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().to_path_buf();
    fresh_example(&ws);
    // A cold apply copies images (the bars show while it does), then a no-op.
    for run in ["cold", "no-op"] {
        let screen = screen_after(&ws, "apply");
        let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
        let last = lines.last().copied().unwrap_or("");
        assert!(
            last.trim_start().starts_with("Applied"),
            "{run}: the last line is {last:?}:\n{screen}"
        );
        // The bars: `images [====>   ] 2/5 images`, `bytes [=====  ] 1 KiB/2 KiB`.
        let bar = |l: &&str| {
            let t = l.trim_start();
            t.starts_with("images [")
                || t.starts_with("bytes [")
                || t.ends_with(" images") && t.contains('/')
        };
        assert!(
            !lines.iter().any(bar),
            "{run}: a progress bar is left on screen:\n{screen}"
        );
    }
}

#[test]
fn serve_without_a_folder_serves_the_manifests_dir_target_and_warns_of_another_port() {
    use std::io::BufRead as _;
    let (_dir, ws) = applied();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_airgap"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .current_dir(&ws)
        .env("HOME", &ws)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let addr = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            break None;
        }
        if let Some(a) = line.trim().strip_prefix("listening on http://") {
            break Some(a.to_string());
        }
        seen.push_str(&line);
    };
    let result = (|| {
        let addr = addr.ok_or_else(|| format!("serve stopped:\n{seen}"))?;
        let index = crate::support::http()
            .get(format!("http://{addr}/index"))
            .send()
            .and_then(|r| r.text())
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(index)
    })();
    let _ = child.kill();
    let _ = child.wait();
    let index = result.unwrap();
    assert!(index.contains("hello-go"), "{index}");
    // The quickstart's devfiles point at localhost:8080; this server is on another port.
    assert!(
        seen.contains("Warning") && seen.contains("at `localhost:8080`"),
        "{seen}"
    );
    // Without a folder the manifest decides: one that does not parse is its diagnostic, not
    // a silent serve of the current folder.
    std::fs::write(ws.join("airgap.kdl"), "target \"dir:out\"\nsource {{{\n").unwrap();
    let run = airgap(&ws, &["serve", "--addr", "127.0.0.1:0"]).fails(1);
    assert!(run.stderr.contains("airgap.kdl"), "{}", run.stderr);
}
