//! `images { platforms }` on the community world: what lands is in the lock (a filtered index
//! is an entry of its own), and an image without any requested platform is named by `lock`
//! (a warning, or an error with `--strict`).
//!
//! The world's images (see `support::world`): `universal-developer-image` and `nodejs-18`
//! are indexes of `linux/amd64` and `linux/arm64/v8`; every other image is a single
//! `linux/amd64` manifest.

use std::collections::BTreeSet;

use sha2::Digest as _;

use crate::support::registry::skopeo;
use crate::support::world::World;
use crate::support::*;

/// Every `sha256:<64 hex>` in `text`.
fn digests(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        let hex: String = rest[i + 7..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        if hex.len() == 64 {
            out.insert(format!("sha256:{hex}"));
        }
        rest = &rest[i + 7..];
    }
    out
}

fn manifest_with(w: &World, platforms: &str) {
    w.write_manifest(&format!("images {{\n    platforms {platforms}\n}}\n"));
}

#[test]
fn every_digest_a_devfile_pins_is_in_the_lock_and_lacking_images_are_named() {
    let w = World::community();
    manifest_with(&w, "\"linux/arm64\"");
    let lock_path = w.workspace.join("airgap.lock");

    // --strict: the single amd64 images have no arm64; exit 1 and no lock.
    let strict = airgap(&w.workspace, &["lock", "--strict"]).fails(1);
    let err = strict.err_text();
    assert!(err.contains("none of the platforms asked for"), "{err}");
    assert!(err.contains("go-toolset"), "{err}");
    assert!(err.contains("used by stack community go/"), "{err}");
    assert!(!err.contains("universal-developer-image:"), "{err}");
    assert!(!lock_path.exists(), "--strict wrote airgap.lock");

    // Without it: the same images are warnings, and the lock is written.
    let run = airgap(&w.workspace, &["lock"]).ok();
    assert!(run.stderr.contains("Warning"), "{}", run.stderr);
    assert!(run.stderr.contains("go-toolset"), "{}", run.stderr);
    let text = w.lock_text();
    assert!(text.contains("\nplatforms \"linux/arm64\"\n"), "{text}");
    let lock = airgap::lock::read("airgap.lock", &text).unwrap();
    let filtered: Vec<(&String, &airgap::lock::FilteredDigest)> = lock
        .images
        .iter()
        .filter_map(|(k, i)| Some((k, i.resolved.as_ref()?.filtered.as_ref()?)))
        .collect();
    assert!(
        filtered
            .iter()
            .any(|(k, _)| k.contains("universal-developer-image")),
        "{filtered:?}"
    );
    for (k, f) in &filtered {
        assert_eq!(f.platforms, ["linux/arm64/v8"], "{k}");
    }
    // The no-op's parse cache holds the landings too (a field it dropped would be lost).
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().join("lock.parsed");
    for _ in 0..2 {
        let cached = airgap::lock::cache::read("airgap.lock", &text, &cache).unwrap();
        assert_eq!(cached, lock, "lock.parsed round trip");
    }
    assert!(cache.is_file());
    // A second lock keeps every landing without asking upstream and rewrites nothing.
    let again = airgap(&w.workspace, &["lock"]).ok();
    assert!(
        again.stderr.contains("airgap.lock unchanged"),
        "{}",
        again.stderr
    );
    assert_eq!(w.lock_text(), text);

    airgap(&w.workspace, &["apply"]).ok();

    // Every digest pinned in a rewritten file of the tree is one the lock names.
    let locked = digests(&text);
    let mut pinned = BTreeSet::new();
    for (path, bytes) in tree(&w.workspace.join("out/registry")) {
        if path.ends_with(".zip") || path.ends_with(".tar") {
            continue;
        }
        for d in digests(&String::from_utf8_lossy(&bytes)) {
            assert!(
                locked.contains(&d),
                "{path} pins {d}, which is not in airgap.lock"
            );
            pinned.insert(d);
        }
    }
    for (k, f) in &filtered {
        assert!(
            pinned.contains(&f.digest),
            "no devfile pins the filtered {k}"
        );
    }

    // What landed under each filtered image's tag is the filtered index the lock records.
    // (Images a devfile pins by digest land untagged: the pin check above covers them.)
    let layout = w.workspace.join("out");
    let mut inspected = 0;
    for (key, f) in &filtered {
        let target = &lock.images[*key].target;
        let tagged = target.strip_prefix("localhost:8080/").unwrap();
        if tagged.contains('@') {
            continue;
        }
        inspected += 1;
        let raw = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{tagged}", layout.display()),
        ]);
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&raw)));
        assert_eq!(digest, f.digest, "{key}");
        assert_eq!(raw.len() as u64, f.size, "{key}");
    }
    assert!(
        inspected > 0,
        "no tagged image landed filtered: {filtered:?}"
    );
    // verify and audit (a rebuild in a scratch folder) check the landed digests the same way.
    airgap(&w.workspace, &["verify"]).ok();
    airgap(&w.workspace, &["audit"]).ok();

    // An index without the platform (and every single image): named; --strict keeps the lock.
    manifest_with(&w, "\"linux/s390x\"");
    let strict = airgap(&w.workspace, &["lock", "--strict"]).fails(1);
    let err = strict.err_text();
    assert!(err.contains("universal-developer-image"), "{err}");
    assert!(err.contains("linux/arm64/v8"), "{err}");
    assert_eq!(w.lock_text(), text, "--strict changed airgap.lock");
}

#[test]
fn changing_platforms_moves_the_landed_digest_and_check_shows_it() {
    let w = World::community();
    manifest_with(&w, "\"linux/arm64\"");
    airgap(&w.workspace, &["lock"]).ok();
    let arm = w.lock_text();

    // The same platforms spelled another way: the same lock.
    manifest_with(&w, "\"linux/arm64\" \"linux/arm64\"");
    let run = airgap(&w.workspace, &["lock"]).ok();
    assert!(
        run.stderr.contains("airgap.lock unchanged"),
        "{}",
        run.stderr
    );

    // amd64: every image has it; the indexes land filtered to amd64, nothing is lacking.
    manifest_with(&w, "\"linux/amd64\"");
    let locked = airgap(&w.workspace, &["lock", "--locked"]).fails(1);
    assert!(
        locked.err_text().contains("images { platforms }"),
        "{}",
        locked.err_text()
    );
    let check = airgap(&w.workspace, &["lock", "--check"]).fails(1);
    assert!(
        check
            .stdout
            .contains("Updating platforms: linux/arm64 → linux/amd64"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains(": lands as sha256:"),
        "{}",
        check.stdout
    );
    assert_eq!(w.lock_text(), arm, "--check wrote airgap.lock");
    let run = airgap(&w.workspace, &["lock", "--strict"]).ok();
    assert!(!run.stderr.contains("Warning"), "{}", run.stderr);
    assert!(
        run.stderr.contains("platforms: linux/arm64 → linux/amd64"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("lands as sha256:"), "{}", run.stderr);
    let amd = w.lock_text();
    assert!(amd.contains("filtered \"linux/amd64\""), "{amd}");

    // A lock whose filtered digest is not what lands fails the image step, naming it.
    let zeros = format!("sha256:{}", "0".repeat(64));
    let edited: String = amd
        .lines()
        .map(
            |l| match l.strip_prefix("    filtered \"linux/amd64\" digest=\"") {
                Some(rest) => format!(
                    "    filtered \"linux/amd64\" digest=\"{zeros}{}",
                    &rest[71..]
                ),
                None => l.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert_ne!(edited, amd);
    std::fs::write(w.workspace.join("airgap.lock"), &edited).unwrap();
    let apply = airgap(&w.workspace, &["apply"]).fails(1);
    assert!(
        apply
            .err_text()
            .contains(&format!("filtered digest=\"{zeros}\"")),
        "{}",
        apply.err_text()
    );
    std::fs::write(w.workspace.join("airgap.lock"), &amd).unwrap();

    // Without platforms the filter's nodes are gone: the lock is the one of every platform.
    w.write_manifest("");
    airgap(&w.workspace, &["lock"]).ok();
    let all = w.lock_text();
    assert!(
        !all.contains("filtered") && !all.contains("config-platform"),
        "{all}"
    );
    assert!(!all.contains("\nplatforms "), "{all}");
    assert_ne!(all, arm);
}
