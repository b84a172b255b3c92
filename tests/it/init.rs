//! `airgap init`, `airgap completions`, `airgap man`.

use crate::support::world::World;
use crate::support::*;

#[test]
fn init_writes_a_manifest_that_locks_the_community_registry_and_never_overwrites() {
    let w = World::community();
    let ws = &w.workspace;
    std::fs::write(ws.join(".gitignore"), "target/\n.airgap/\n").unwrap();
    airgap(ws, &["init"]).ok();
    let text = std::fs::read_to_string(ws.join("airgap.kdl")).unwrap();
    assert!(text.contains("target \"dir:airgap-out\""), "{text}");
    // The ignore lines are added once, beside what was there.
    assert_eq!(
        std::fs::read_to_string(ws.join(".gitignore")).unwrap(),
        "target/\n.airgap/\n# airgap: its workspace (caches, state) and the output folder\nairgap-out/\n"
    );

    // A second init changes nothing and says why.
    let run = airgap(ws, &["init", "--target", "reg.example:5000/x"]).fails(1);
    assert!(run.err_text().contains("already exists"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(ws.join("airgap.kdl")).unwrap(),
        text
    );

    // The manifest it wrote is the community registry's: with the world's mirror rules, it
    // locks every stack.
    std::fs::write(
        ws.join("airgap.kdl"),
        format!("{text}{}{}", w.mirror_rules(), w.registry_rules()),
    )
    .unwrap();
    let run = airgap(ws, &["lock"]).ok();
    assert!(run.stderr.contains("31 stacks"), "{}", run.stderr);
}

#[test]
fn init_refuses_a_bad_target_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = airgap(dir.path(), &["init", "--target", "not a target"]).fails(2);
    assert!(run.err_text().contains("is not a target"), "{}", run.stderr);
    assert!(tree(dir.path()).is_empty(), "{:?}", tree(dir.path()).keys());
}

#[test]
fn completions_and_man_page() {
    let dir = tempfile::tempdir().unwrap();
    let run = airgap(dir.path(), &["completions", "bash"]).ok();
    assert!(run.stdout.contains("complete -F _airgap"), "{}", run.stdout);
    let run = airgap(dir.path(), &["completions", "zsh"]).ok();
    assert!(run.stdout.starts_with("#compdef airgap"), "{}", run.stdout);
    let run = airgap(dir.path(), &["man"]).ok();
    assert!(run.stdout.contains(".TH airgap 1"), "{}", run.stdout);
    assert!(run.stdout.contains("apply"), "{}", run.stdout);
}
