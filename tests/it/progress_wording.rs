//! Snapshots of `apply`'s plain (non-terminal) stderr for the quickstart, once with its `dir:`
//! target and once pointed at a real `docker-registry`: the words must match where the bytes
//! go. A layout is named by its folder and the image's name in it, with blobs "written"; never
//! the `address=` its devfiles name (`localhost:8080`), never "sent", "uploaded" or "mounted".
//!
//! `-j 1` runs the steps one at a time, so which stack artifact finds a shared blob already
//! there is always the same one; the lines are sorted all the same, and the port and the
//! duration are redacted. The images are the quickstart's committed stand-ins, so the digests
//! of a `dir:` target are stable and stay in its snapshot; a registry target's devfiles name
//! its port, so the digests and compressed sizes of the images built from them (the `Pushed`
//! lines) vary and are redacted there.

use std::path::Path;

use crate::network_faults::quickstart_for_registry;
use crate::quickstart::fresh_example;
use crate::support::registry::TestRegistry;
use crate::support::*;

/// stderr's lines sorted, with each `(from, to)` replaced and the summary's duration redacted.
fn sorted_lines(stderr: &str, redact: &[(&str, &str)]) -> String {
    let mut lines: Vec<String> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut l = redact
                .iter()
                .fold(l.to_string(), |l, (f, t)| l.replace(f, t));
            if let Some((head, tail)) = l.split_once(" steps in ")
                && let Some((_, rest)) = tail.split_once("s: ")
            {
                l = format!("{head} steps in [duration]: {rest}");
            }
            l
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Every `sha256:<hex>` as `sha256:[digest]`.
fn without_digests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("sha256:") {
        let (head, tail) = rest.split_at(at + "sha256:".len());
        out.push_str(head);
        let hex = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        out.push_str(if hex == 64 { "[digest]" } else { &tail[..hex] });
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

/// The byte count of each `Pushed` line (`…; 1.2 KiB)`) as `[size]`.
fn without_pushed_sizes(text: &str) -> String {
    let lines = text.lines().map(|l| match l.rsplit_once("; ") {
        Some((head, _)) if l.trim_start().starts_with("Pushed ") => format!("{head}; [size])"),
        _ => l.to_string(),
    });
    lines.collect::<Vec<_>>().join("\n")
}

fn apply_plain(ws: &Path) -> Run {
    airgap(ws, &["lock"]).ok();
    airgap(ws, &["apply", "-j", "1"]).ok()
}

#[test]
fn a_dir_target_is_named_as_a_layout_that_blobs_are_written_into() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    fresh_example(&ws);
    let run = apply_plain(&ws);
    let ws_text = ws.display().to_string();
    let lines = sorted_lines(&run.stderr, &[(ws_text.as_str(), "[ws]")]);
    for wrong in ["localhost:8080", " sent", "uploaded", "mounted"] {
        assert!(
            !lines.contains(wrong),
            "`{wrong}` for a dir: target:\n{lines}"
        );
    }
    insta::assert_snapshot!("apply-plain-dir-target", lines);
}

#[test]
fn a_registry_target_is_named_by_its_references_that_blobs_are_sent_to() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let target = TestRegistry::start();
    let host = format!("127.0.0.1:{}", target.port);
    quickstart_for_registry(&ws, &host);
    let run = apply_plain(&ws);
    let ws_text = ws.display().to_string();
    let lines = without_pushed_sizes(&without_digests(&sorted_lines(
        &run.stderr,
        &[
            (host.as_str(), "127.0.0.1:[port]"),
            (ws_text.as_str(), "[ws]"),
        ],
    )));
    assert!(!lines.contains("written"), "{lines}");
    insta::assert_snapshot!("apply-plain-registry-target", lines);
}

#[test]
fn an_image_already_at_the_target_is_unchanged_not_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let target = TestRegistry::start();
    let host = format!("127.0.0.1:{}", target.port);
    let first = tmp.path().join("first");
    quickstart_for_registry(&first, &host);
    apply_plain(&first);
    // A second workspace, no state of its own: every image it copies is there already.
    let second = tmp.path().join("second");
    quickstart_for_registry(&second, &host);
    let run = apply_plain(&second);
    let unchanged: Vec<&str> = run
        .stderr
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("Unchanged quay.io/"))
        .collect();
    assert_eq!(unchanged.len(), 5, "{}", run.stderr);
    assert!(
        unchanged
            .iter()
            .all(|l| l.contains(&format!(" → {host}/devfiles/")) && l.ends_with(": already there")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("Copied"), "{}", run.stderr);
}
