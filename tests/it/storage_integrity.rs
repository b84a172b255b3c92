//! Nothing lost, nothing wrong accepted.
//!
//! - A disk that fills up under `apply` (a real size-limited tmpfs, mounted by the test) fails
//!   the apply, naming the condition, and leaves no short file under a blob's name; once the
//!   disk has room, one `apply` makes the target whole, and `verify`, `audit` and skopeo (an
//!   independent reader that checks every blob against its digest) agree. The same for
//!   `apply --bundle`: a bundle on a full disk is never marked complete. A blob left short
//!   under its name (by an older build) is found and written again.
//! - A lock edited by hand (a platform digest of an index flipped, an image's size, a
//!   download's size) is not trusted: `apply --locked` on a fresh target, `verify` and `audit`
//!   each fail naming the entry.
//!
//! Mounting needs root (CI runs as root); elsewhere the disk-full tests print why they are
//! skipped and pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest as _;

use crate::bundle::World as BundleWorld;
use crate::quickstart::fresh_example;
use crate::support::registry::skopeo;
use crate::support::*;

/// Room for a part of the quickstart's output (about 50 files, 240 KiB in pages), not all.
const SMALL: &str = "64k";
/// Room for all of it.
const LARGE: &str = "16m";

/// A tmpfs mounted at a folder for the life of the guard; unmounted on drop.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `at` (created); `None`, with a message saying why, when
    /// this process is not root and cannot mount.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().expect("run id");
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!(
                "SKIPPED: mounting a size-limited tmpfs needs root (CI runs the tests as root)"
            );
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], at);
        Some(Tmpfs { at: at.to_owned() })
    }

    /// Gives the file system `size` bytes, keeping what it holds.
    fn resize(&self, size: &str) {
        mount(&["-o", &format!("remount,size={size}")], &self.at);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(&self.at).output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("cannot unmount `{}`: {out:?}", self.at.display());
        }
    }
}

fn mount(args: &[&str], at: &Path) {
    let out = Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "mount {args:?} {} failed: {}",
        at.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Panics unless every file under `layout/blobs/sha256` (temp files aside) has the content its
/// name says; returns how many there are.
#[track_caller]
fn assert_blobs_match_their_names(layout: &Path) -> usize {
    let dir = layout.join("blobs/sha256");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut bad = Vec::new();
    let mut count = 0;
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        count += 1;
        let bytes = std::fs::read(entry.path()).unwrap();
        let actual = hex::encode(sha2::Sha256::digest(&bytes));
        if actual != name {
            bad.push(format!("{name}: {} bytes hashing to {actual}", bytes.len()));
        }
    }
    assert!(
        bad.is_empty(),
        "blobs whose content does not match their name:\n{}",
        bad.join("\n")
    );
    count
}

/// Every image the layout's `index.json` names, copied out by skopeo (which checks every
/// manifest and blob against its digest).
fn skopeo_reads_every_image(layout: &Path) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert!(!names.is_empty(), "the layout names no image");
    let scratch = tempfile::tempdir().unwrap();
    for (i, name) in names.iter().enumerate() {
        skopeo(&[
            "copy",
            "--all",
            &format!("oci:{}:{name}", layout.display()),
            &format!("dir:{}", scratch.path().join(i.to_string()).display()),
        ]);
    }
}

#[track_caller]
fn assert_disk_full(run: &Run) {
    assert!(
        run.err_text().contains("No space left on device"),
        "the failure does not name the full disk:\n{}",
        run.stderr
    );
}

#[test]
fn a_full_disk_fails_the_apply_and_one_apply_with_room_makes_the_target_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    fresh_example(&ws);
    let out = ws.join("out");
    let Some(disk) = Tmpfs::mount(&out, SMALL) else {
        return;
    };

    let full = airgap(&ws, &["apply"]).fails(1);
    assert_disk_full(&full);
    // What did land is whole: no blob was renamed into place short.
    assert_blobs_match_their_names(&out);

    disk.resize(LARGE);
    airgap(&ws, &["apply"]).ok();
    assert!(assert_blobs_match_their_names(&out) > 0);
    airgap(&ws, &["verify"]).ok();
    airgap(&ws, &["audit"]).ok();
    skopeo_reads_every_image(&out);
    let plan = airgap(&ws, &["plan"]).ok();
    assert!(
        plan.stdout.contains(" 0 stale") && !plan.stdout.contains("stale  "),
        "stale after apply:\n{}",
        plan.stdout
    );
}

#[test]
fn a_bundle_on_a_full_disk_is_not_marked_complete_and_one_apply_with_room_completes_it() {
    let w = BundleWorld::new();
    let Some(disk) = Tmpfs::mount(&w.bundle, SMALL) else {
        return;
    };

    let full = w.airgap(&["apply", "--bundle", "../bundle"]).fails(1);
    assert_disk_full(&full);
    assert!(!full.stderr.contains("Bundled"), "{}", full.stderr);
    assert!(
        !w.bundle.join("airgap-bundle.json").exists(),
        "a bundle on a full disk was marked complete"
    );
    assert_blobs_match_their_names(&w.bundle);

    disk.resize(LARGE);
    let applied = w.airgap(&["apply", "--bundle", "../bundle"]).ok();
    assert!(applied.stderr.contains("Bundled"), "{}", applied.stderr);
    assert!(w.bundle.join("airgap-bundle.json").is_file());
    assert!(assert_blobs_match_their_names(&w.bundle) > 0);
    skopeo_reads_every_image(&w.bundle);

    // And it carries: every locked image lands at the registry with its digest.
    w.push(&["--to", &w.target.host()]).ok();
    for (repository, tag, digest) in w.locked_images() {
        assert_eq!(
            w.at_target(&repository, &tag).as_ref(),
            Some(&digest),
            "{repository}:{tag} at the registry"
        );
    }
}

#[test]
fn a_short_blob_under_its_name_is_found_and_written_again() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    fresh_example(&ws);
    airgap(&ws, &["apply"]).ok();
    let out = ws.join("out");
    // What an older build left after a full disk: a layer of nodejs:18 emptied in place.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "nodejs:18")
        .expect("nodejs:18 in the layout")["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("blobs/sha256").join(manifest)).unwrap())
            .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let layer_path = out
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    std::fs::write(&layer_path, b"").unwrap();

    let verify = airgap(&ws, &["verify"]).fails(1);
    assert!(
        verify.err_text().contains(&layer),
        "verify does not name the short blob:\n{}",
        verify.stderr
    );
    let plan = airgap(&ws, &["plan", "--stale"]).ok();
    assert!(
        plan.stdout.contains("nodejs:18"),
        "nodejs:18 is not stale:\n{}",
        plan.stdout
    );
    airgap(&ws, &["apply"]).ok();
    assert_blobs_match_their_names(&out);
    airgap(&ws, &["verify"]).ok();
}

/// The quickstart, locked and applied to its `dir:` target, with the lock as written.
struct Applied {
    _tmp: tempfile::TempDir,
    ws: PathBuf,
    lock: String,
}

impl Applied {
    fn new() -> Applied {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        fresh_example(&ws);
        airgap(&ws, &["apply"]).ok();
        airgap(&ws, &["verify"]).ok();
        let lock = std::fs::read_to_string(ws.join("airgap.lock")).unwrap();
        Applied {
            _tmp: tmp,
            ws,
            lock,
        }
    }

    /// The lock with the one line starting with `anchor` (after its indent) changed by
    /// `edit`; panics unless exactly one line starts so and the edit changed it.
    fn edited(&self, anchor: &str, edit: impl Fn(&str) -> String) -> String {
        let hits: Vec<&str> = self
            .lock
            .lines()
            .filter(|l| l.trim_start().starts_with(anchor))
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "one lock line starts with `{anchor}`: {hits:?}"
        );
        let changed = edit(hits[0]);
        assert_ne!(changed, hits[0], "the edit changed nothing");
        self.lock.replacen(hits[0], &changed, 1)
    }

    /// With `lock` in place of the good one: `apply --locked` on a fresh copy of the
    /// workspace (nothing applied yet), then `verify` and `audit` of the applied target; each
    /// must fail and name `entry`.
    fn assert_refused(&self, lock: &str, entry: &str, what: &str) {
        let fresh_dir = tempfile::tempdir().unwrap();
        let fresh = fresh_dir.path().join("ws");
        fresh_example(&fresh);
        std::fs::write(fresh.join("airgap.lock"), lock).unwrap();
        std::fs::write(self.ws.join("airgap.lock"), lock).unwrap();
        let runs = [
            ("apply --locked", airgap(&fresh, &["apply", "--locked"])),
            ("verify", airgap(&self.ws, &["verify"])),
            ("audit", airgap(&self.ws, &["audit"])),
        ];
        std::fs::write(self.ws.join("airgap.lock"), &self.lock).unwrap();
        // Without spaces: diagnostics wrap long lines, even inside `linux/arm64`.
        let squeezed = |s: &str| s.split_whitespace().collect::<String>();
        for (command, run) in runs {
            let run = run.fails(1);
            let text = squeezed(&run.err_text());
            assert!(
                text.contains(&squeezed(entry)) && text.contains(&squeezed(what)),
                "`airgap {command}` does not name `{entry}` and `{what}`:\n{}",
                run.stderr
            );
        }
        // The good lock still passes: the findings were the edit's.
        airgap(&self.ws, &["verify"]).ok();
    }
}

/// Replaces the first `key="…"` / `key=…` value in a lock line.
fn set_prop(line: &str, key: &str, value: &str) -> String {
    let start = line.find(&format!(" {key}=")).expect("the property") + key.len() + 2;
    let end = line[start..]
        .find([' ', '{'])
        .map_or(line.len(), |e| start + e);
    format!("{}{value}{}", &line[..start], &line[end..])
}

#[test]
fn a_flipped_platform_digest_in_the_lock_is_refused() {
    let a = Applied::new();
    // go-toolset:1.22 is the quickstart's one index, on linux/amd64 and linux/arm64.
    let lock = a.edited("platform \"linux/arm64\"", |l| {
        let at = l.find("sha256:").unwrap() + "sha256:".len();
        let flipped = if &l[at..at + 1] == "0" { "1" } else { "0" };
        format!("{}{flipped}{}", &l[..at], &l[at + 1..])
    });
    a.assert_refused(&lock, "go-toolset:1.22", "linux/arm64");
}

#[test]
fn a_wrong_image_size_in_the_lock_is_refused() {
    let a = Applied::new();
    let lock = a.edited("image \"quay.io/airgap-example/nodejs:18\"", |l| {
        set_prop(l, "size", "999")
    });
    a.assert_refused(&lock, "nodejs:18", "size=999");
}

#[test]
fn a_wrong_download_size_in_the_lock_is_refused() {
    let a = Applied::new();
    let anchor = "download \"https://example.com/icons/go.svg\"";
    let line = a
        .lock
        .lines()
        .find(|l| l.starts_with(anchor))
        .expect("the download is locked");
    let size: u64 = line
        .rsplit_once("size=")
        .and_then(|(_, s)| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("the download records its size");
    let wrong = (size + 5).to_string();
    let lock = a.edited(anchor, |l| set_prop(l, "size", &wrong));
    a.assert_refused(
        &lock,
        "https://example.com/icons/go.svg",
        &format!("size={wrong}"),
    );
}

/// Wherever the disk fills up (every 8 KiB up to the whole quickstart's output), the next
/// apply with room finishes the job: a step that renamed one file into place and failed on its
/// next (another step took the room) left a file only its claim names, and that claim must
/// outlive the failed run. Without the claims owned at the end of a run, some size in the sweep
/// fails this (seen 3 times out of 3; the single 64 KiB test above caught it once in CI).
#[test]
fn an_apply_that_filled_the_disk_anywhere_is_finished_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    for kib in (8..=256).step_by(8) {
        let ws = tmp.path().join(format!("ws{kib}"));
        fresh_example(&ws);
        let out = ws.join("out");
        let Some(disk) = Tmpfs::mount(&out, &format!("{kib}k")) else {
            return;
        };
        let full = airgap(&ws, &["apply"]);
        disk.resize(LARGE);
        let next = airgap(&ws, &["apply"]);
        assert!(
            next.success(),
            "after a first apply in {kib} KiB ({}), the next failed:\n{}",
            if full.success() {
                "it succeeded"
            } else {
                "it failed"
            },
            next.stderr
        );
    }
}
