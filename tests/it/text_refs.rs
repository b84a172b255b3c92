//! Image references inside devfile text (issue 12): the community stack `kaoto` names an
//! image in a container's env value and another in an exec `commandLine`. Both are locked,
//! mirrored, and rewritten where they stand; `verify` is then silent about them, and names one
//! put back by hand.

use crate::support::world::World;
use crate::support::*;

const KUBEDOCK: &str = "quay.io/agiertli/kubedock:0.13.0";
const KAOTO_APP: &str = "quay.io/kaotoio/kaoto-app:main";
const KAOTO: &str = "stacks/kaoto/devfile.yaml";

#[test]
fn kaoto_text_references_are_locked_mirrored_and_rewritten() {
    let w = World::community();
    w.write_manifest("");
    airgap(&w.workspace, &["apply"]).ok();
    let out = w.workspace.join("out");

    // Locked: the stack lists both as used images, each an image entry at the world's digest.
    let lock = airgap::lock::read("airgap.lock", &w.lock_text()).unwrap();
    let kaoto = &lock.stacks[&("community".to_string(), "kaoto".to_string())];
    let mut mirrored = Vec::new();
    for image in [KUBEDOCK, KAOTO_APP] {
        assert!(kaoto.uses.images.contains(image), "{:?}", kaoto.uses);
        let entry = &lock.images[image];
        assert!(entry.written.contains(image), "{entry:?}");
        let digest = entry.resolved.as_ref().unwrap().digest.clone();
        assert_eq!(digest, w.images[image].to_string(), "{image}");

        // Mirrored: skopeo reads it from the layout under its target name, at that digest.
        let tagged = entry.target.strip_prefix("localhost:8080/").unwrap();
        let raw = registry::skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{tagged}", out.display()),
        ]);
        let got = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw))
        );
        assert_eq!(got, digest, "{image} in the layout");
        mirrored.push((image, format!("{}@{digest}", entry.target)));
    }

    // Rewritten: each line that named the image now names the mirrored reference at exactly
    // that token, the rest of the line as written.
    let original =
        std::fs::read_to_string(fixtures().join("devfile-registry").join(KAOTO)).unwrap();
    let rewritten = std::fs::read_to_string(out.join("registry").join(KAOTO)).unwrap();
    for (image, new) in &mirrored {
        let before: Vec<&str> = original.lines().filter(|l| l.contains(image)).collect();
        assert_eq!(before.len(), 1, "{image}");
        let after: Vec<&str> = rewritten
            .lines()
            .filter(|l| l.contains(new.as_str()))
            .collect();
        assert_eq!(after, [before[0].replace(image, new)], "{image}");
        assert!(!rewritten.contains(image), "{image} is left:\n{rewritten}");
    }

    // verify: no finding and no note about kaoto.
    let run = airgap(&w.workspace, &["verify"]).ok();
    assert!(run.stderr.contains("Verified"), "{}", run.stderr);
    assert!(!run.stderr.contains(KAOTO), "{}", run.stderr);

    // A text reference put back upstream by hand is a finding that names its place.
    let devfile = out.join("registry").join(KAOTO);
    std::fs::write(&devfile, rewritten.replace(&mirrored[1].1, KAOTO_APP)).unwrap();
    let run = airgap(&w.workspace, &["verify"]).fails(1);
    assert!(
        run.err_text().contains(&format!(
            "registry/{KAOTO}: commands[start-with-docker].exec.commandLine names `quay.io`"
        )),
        "{}",
        run.stderr
    );
}
