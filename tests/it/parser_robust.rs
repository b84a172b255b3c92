//! Hostile manifests and lockfiles: deep nesting, endless or huge files. The real binary
//! exits with a diagnostic and code 1, never with a signal, and leaves the files it read as they
//! were.

use std::path::Path;

use crate::support::*;

/// Runs `airgap plan` in `dir` and checks that it failed with a diagnostic (exit code 1, not
/// a signal) whose text contains `expected`.
#[track_caller]
fn plan_refuses(dir: &Path, args: &[&str], expected: &str) -> Run {
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    let run = airgap(dir, &all).fails(1);
    assert!(
        run.err_text().contains(expected),
        "expected `{expected}` in:\n{}",
        run.stderr
    );
    run
}

#[test]
fn deeply_nested_manifest_is_a_diagnostic_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{".repeat(1500), "blocks are nested more than 64 deep"),
        (
            format!(
                "source \"a\" path=\".\" {}{}",
                "a {".repeat(2000),
                "}".repeat(2000)
            ),
            "blocks are nested more than 64 deep",
        ),
        (
            format!("{}{}", "/*".repeat(5000), "*/".repeat(5000)),
            "comments are nested more than 64 deep",
        ),
        (
            format!("/*{}*/", "*".repeat(50_000)),
            "comment holds more than 4096",
        ),
        ("a (".repeat(5000), "more than 64 `(` are open at once"),
        (
            format!("a {}1", "/- ".repeat(5000)),
            "more than 64 `/-` in a row",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.path().join("airgap.kdl"), &text).unwrap();
        let run = plan_refuses(dir.path(), &[], expected);
        assert!(run.err_text().contains("airgap::manifest::too-deep"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("airgap.kdl")).unwrap(),
            text
        );
    }
}

#[test]
fn deeply_nested_lockfile_is_a_diagnostic_not_a_crash() {
    let dir = empty_source_workspace();
    let lock = format!(
        "version 1\ntarget \"x\" naming=\"flat\"\nstack \"ours\" \"go/1.0.0\" devfile=\"abc\" {}{}\n",
        "file {".repeat(2000),
        "}".repeat(2000)
    );
    std::fs::write(dir.path().join("airgap.lock"), &lock).unwrap();
    let run = plan_refuses(dir.path(), &[], "blocks are nested more than 64 deep");
    assert!(run.err_text().contains("airgap::lock::syntax"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("airgap.lock")).unwrap(),
        lock
    );
}

#[test]
fn endless_manifest_is_refused_after_the_size_limit() {
    // /dev/zero reports a size of 0 and never ends: only a read with a limit stops.
    let dir = tempfile::tempdir().unwrap();
    plan_refuses(
        dir.path(),
        &["-m", "/dev/zero"],
        "`/dev/zero` is larger than 1 MiB",
    );
}

#[test]
fn huge_manifest_and_lockfile_are_refused() {
    let dir = empty_source_workspace();
    let manifest = dir.path().join("airgap.kdl");
    let small = std::fs::read_to_string(&manifest).unwrap();
    // Valid KDL: one comment line, just over the limit.
    let huge = format!("{small}// {}\n", "x".repeat(1 << 20));
    std::fs::write(&manifest, &huge).unwrap();
    plan_refuses(dir.path(), &[], "is larger than 1 MiB");
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), huge);

    std::fs::write(&manifest, &small).unwrap();
    let lock = format!(
        "version 1\ntarget \"x\" naming=\"flat\"\n// {}\n",
        "x".repeat(16 << 20)
    );
    std::fs::write(dir.path().join("airgap.lock"), &lock).unwrap();
    plan_refuses(dir.path(), &[], "is larger than 16 MiB");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("airgap.lock")).unwrap(),
        lock
    );
}

#[test]
fn lockfile_type_annotations_are_refused() {
    let dir = empty_source_workspace();
    let lock =
        "version 1\ntarget (u8)\"x\" naming=\"flat\"\n(t)source \"ours\" path=\"registry\"\n";
    std::fs::write(dir.path().join("airgap.lock"), lock).unwrap();
    let run = plan_refuses(dir.path(), &[], "type annotation `(u8)` in the lockfile");
    assert!(
        run.err_text()
            .contains("type annotation `(t)` in the lockfile")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("airgap.lock")).unwrap(),
        lock
    );
}

/// The quickstart's committed lockfile, edited by `edit`, in a copy of the quickstart.
fn quickstart_with_lock(edit: impl FnOnce(&str) -> String) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart"),
        dir.path(),
    );
    let lock_path = dir.path().join("airgap.lock");
    let lock = edit(&std::fs::read_to_string(&lock_path).unwrap());
    std::fs::write(&lock_path, &lock).unwrap();
    (dir, lock)
}

/// `text` with `line` (which it holds once) followed by `extra`.
fn after_line(text: &str, line: &str, extra: &str) -> String {
    assert_eq!(text.matches(line).count(), 1, "`{line}` once in the lock");
    text.replacen(line, &format!("{line}\n{extra}"), 1)
}

/// An edit of a lockfile's text.
type LockEdit = fn(&str) -> String;

#[test]
fn conflicting_duplicates_in_the_lockfile_are_refused() {
    let edits: Vec<(&str, LockEdit)> = vec![
        ("`source \"quickstart\"` is in the lockfile twice", |t| {
            after_line(
                t,
                "source \"quickstart\" path=\"registry\"",
                "source \"quickstart\" path=\"elsewhere\"",
            )
        }),
        ("`target` is in the lockfile twice", |t| {
            after_line(
                t,
                "target \"localhost:8080\" naming=\"flat\"",
                "target \"elsewhere:5000\" naming=\"flat\"",
            )
        }),
        ("property `naming` is given twice on `target`", |t| {
            t.replacen("naming=\"flat\"", "naming=\"flat\" naming=\"nested\"", 1)
        }),
        (
            "`download \"https://example.com/icons/go.svg\"` is in the lockfile twice",
            |t| {
                let line = t
                    .lines()
                    .find(|l| l.starts_with("download \"https://example.com/icons/go.svg\""))
                    .unwrap();
                after_line(t, line, &line.replace("size=", "size=1"))
            },
        ),
        ("`platform \"linux/amd64\"` is in the lockfile twice", |t| {
            let line = t
                .lines()
                .find(|l| l.trim_start().starts_with("platform \"linux/amd64\""))
                .unwrap();
            after_line(t, line, &line.replace("sha256:", "sha256:0"))
        }),
    ];
    for (expected, edit) in edits {
        let (dir, lock) = quickstart_with_lock(edit);
        let run = plan_refuses(dir.path(), &[], expected);
        let text = run.err_text();
        assert!(
            text.contains("first") && text.contains("second"),
            "both entries are labelled:\n{}",
            run.stderr
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("airgap.lock")).unwrap(),
            lock,
            "{expected}: the lockfile is left as it was"
        );
    }
}

#[test]
fn a_duplicate_points_at_both_entries() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/airgap.lock"),
    )
    .unwrap();
    let first = "image \"quay.io/airgap-example/runtime:1.0\"";
    let second = format!("{first} target=\"elsewhere/runtime:1.0\" {{\n}}");
    let text = format!("{text}{second}\n");
    let err = airgap::lock::read("airgap.lock", &text).unwrap_err();
    assert_eq!(err.items.len(), 1, "{err:?}");
    let d = &err.items[0];
    assert_eq!(d.code, "airgap::lock::duplicate");
    let at = |span: miette::SourceSpan| &text[span.offset()..span.offset() + span.len()];
    assert_eq!(at(d.span), first);
    assert_eq!(text.rfind(first), Some(d.span.offset()));
    assert_eq!(d.also.len(), 1);
    assert_eq!(at(d.also[0].0), first);
    // The first entry, not the `uses-image` line that holds the same text.
    let first_line = text.find(&format!("\n{first}")).unwrap() + 1;
    assert_eq!(d.also[0].0.offset(), first_line);
}

#[test]
fn long_literals_are_cut_in_diagnostics() {
    let long = "b".repeat(100_000);
    // The end of a literal cut after 60 characters.
    let cut = format!("{}…`", "b".repeat(59));
    let dir = empty_source_workspace();
    let manifests = [
        (format!("source \"{long}!\" path=\"registry\"\n"), true),
        (format!("{long} \"x\"\n"), true),
        (
            format!("source \"ours\" path=\"registry\" {long}=\"x\"\n"),
            true,
        ),
        (
            format!(
                "source \"ours\" path=\"registry\"\nimages {{\n    include \"q.io/x:-{long}\"\n}}\n"
            ),
            true,
        ),
        (
            format!("target \"dir:{long}\\n\"\nsource \"ours\" path=\"registry\"\n"),
            false,
        ),
        // A syntax error on a line of 100 kB: the snippet shows a window of it.
        (format!("target \"dir:{long}\n\"\n"), false),
    ];
    for (text, quoted) in manifests {
        std::fs::write(dir.path().join("airgap.kdl"), &text).unwrap();
        let run = airgap(dir.path(), &["plan"]).fails(1);
        assert!(
            run.stderr.len() < 2000,
            "a diagnostic of {} bytes:\n{}",
            run.stderr.len(),
            &run.stderr[..run.stderr.len().min(3000)]
        );
        assert!(!quoted || run.stderr.contains(&cut), "{}", run.stderr);
    }

    // Checked against the source by `lock`, after parsing: an unknown stack.
    std::fs::write(
        dir.path().join("airgap.kdl"),
        format!("source \"{long}\" path=\"registry\" {{\n    stacks \"{long}\"\n}}\n"),
    )
    .unwrap();
    let run = airgap(dir.path(), &["lock"]).fails(1);
    assert!(run.stderr.len() < 2000, "{} bytes", run.stderr.len());
    assert!(run.err_text().contains("has no stack"), "{}", run.stderr);

    std::fs::write(
        dir.path().join("airgap.kdl"),
        "source \"ours\" path=\"registry\"\n",
    )
    .unwrap();
    let lock = format!("version 1\ntarget \"x\" naming=\"flat\"\n{long} \"x\"\n");
    std::fs::write(dir.path().join("airgap.lock"), &lock).unwrap();
    let run = airgap(dir.path(), &["plan"]).fails(1);
    assert!(run.stderr.len() < 2000, "{} bytes", run.stderr.len());
    assert!(run.stderr.contains(&cut), "{}", run.stderr);
}

// Property tests of the two parsers as a library: mutated manifests and lockfiles (byte flips,
// inserted KDL punctuation and type annotations, deleted bytes, duplicated and deleted lines)
// and every prefix of valid ones never panic, and every diagnostic points inside its input.

mod properties {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

    use airgap::diag::Diagnostics;

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The valid manifests: the documented example and the examples' manifests.
    fn valid_manifests() -> Vec<String> {
        let mut out = vec![read(&repo().join("airgap.kdl.example"))];
        for example in std::fs::read_dir(repo().join("examples")).unwrap() {
            let path = example.unwrap().path().join("airgap.kdl");
            if path.exists() {
                out.push(read(&path));
            }
        }
        out
    }

    /// The valid lockfiles: the examples' committed locks.
    fn valid_locks() -> Vec<String> {
        let mut out = Vec::new();
        for example in std::fs::read_dir(repo().join("examples")).unwrap() {
            let path = example.unwrap().path().join("airgap.lock");
            if path.exists() {
                out.push(read(&path));
            }
        }
        assert!(!out.is_empty());
        out
    }

    fn invalid_manifests() -> Vec<String> {
        let root = repo().join("tests/fixtures/invalid");
        let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path().join("airgap.kdl"))
            .collect();
        out.sort();
        out.iter().map(|p| read(p)).collect()
    }

    fn parse_manifest(text: &str) -> Result<(), Diagnostics> {
        airgap::manifest::parse("airgap.kdl", text, PathBuf::from("/nonexistent")).map(drop)
    }

    fn read_lock(text: &str) -> Result<(), Diagnostics> {
        airgap::lock::read("airgap.lock", text).map(drop)
    }

    /// Every diagnostic of `result` points inside `text`, and renders.
    fn check(text: &str, result: Result<(), Diagnostics>) -> Result<(), TestCaseError> {
        let Err(d) = result else {
            return Ok(());
        };
        prop_assert!(!d.items.is_empty(), "an error without a diagnostic");
        for item in &d.items {
            let spans = std::iter::once(item.span).chain(item.also.iter().map(|a| a.0));
            for span in spans {
                prop_assert!(
                    span.offset() + span.len() <= text.len(),
                    "`{}`: span {:?} outside {} bytes",
                    item.message,
                    span,
                    text.len()
                );
            }
        }
        airgap::diag::render_plain(&d);
        Ok(())
    }

    const TOKENS: &[&str] = &[
        "{", "}", "\"", "\"\"\"", "(u8)", "(", ")", "/*", "*/", "/-", "//", "#", "#\"", "\"#",
        "\\", "\n", "=", ";", " ", "\0", "\u{7}", "é", "#true", "-", "0x", "1e9",
    ];

    #[derive(Debug, Clone)]
    enum Mutation {
        FlipBit(usize, u8),
        Insert(usize, &'static str),
        Delete(usize, usize),
        DuplicateLine(usize),
        DeleteLine(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
            (any::<usize>(), prop::sample::select(TOKENS))
                .prop_map(|(at, t)| Mutation::Insert(at, t)),
            (any::<usize>(), 1usize..16).prop_map(|(at, n)| Mutation::Delete(at, n)),
            any::<usize>().prop_map(Mutation::DuplicateLine),
            any::<usize>().prop_map(Mutation::DeleteLine),
        ]
    }

    fn mutate(seed: &str, mutations: &[Mutation]) -> String {
        let mut bytes = seed.as_bytes().to_vec();
        for m in mutations {
            let len = bytes.len();
            match *m {
                Mutation::FlipBit(at, bit) if len > 0 => bytes[at % len] ^= 1 << bit,
                Mutation::FlipBit(..) => {}
                Mutation::Insert(at, token) => {
                    let at = at % (len + 1);
                    bytes.splice(at..at, token.bytes());
                }
                Mutation::Delete(at, n) => {
                    let at = at % (len + 1);
                    bytes.drain(at..(at + n).min(len));
                }
                Mutation::DuplicateLine(line) | Mutation::DeleteLine(line) => {
                    let mut lines: Vec<Vec<u8>> = bytes
                        .split_inclusive(|b| *b == b'\n')
                        .map(<[u8]>::to_vec)
                        .collect();
                    if lines.is_empty() {
                        continue;
                    }
                    let i = line % lines.len();
                    if matches!(m, Mutation::DuplicateLine(_)) {
                        let copy = lines[i].clone();
                        lines.insert(i, copy);
                    } else {
                        lines.remove(i);
                    }
                    bytes = lines.concat();
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Runs `cases` mutations of `seeds` through `parse`, with a fixed seed: the same cases on
    /// every run, bounded in time.
    fn fuzz(seeds: &[String], cases: u32, parse: fn(&str) -> Result<(), Diagnostics>) {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(0x000a_19a9),
            ..Config::default()
        });
        let strategy = (0..seeds.len(), prop::collection::vec(mutation(), 1..8));
        runner
            .run(&strategy, |(seed, mutations)| {
                let text = mutate(&seeds[seed], &mutations);
                check(&text, parse(&text))
            })
            .unwrap();
    }

    #[test]
    fn mutated_manifests_give_ok_or_a_diagnostic_inside_the_input() {
        let mut seeds = invalid_manifests();
        seeds.extend(valid_manifests());
        fuzz(&seeds, 512, parse_manifest);
    }

    #[test]
    fn mutated_lockfiles_give_ok_or_a_diagnostic_inside_the_input() {
        fuzz(&valid_locks(), 256, read_lock);
    }

    /// Every prefix of `text` cut at a character boundary.
    fn prefixes(text: &str) -> impl Iterator<Item = &str> {
        (0..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .map(|i| &text[..i])
    }

    #[test]
    fn every_prefix_of_a_valid_manifest_parses_or_is_a_diagnostic() {
        for text in valid_manifests() {
            for prefix in prefixes(&text) {
                check(prefix, parse_manifest(prefix)).unwrap();
            }
        }
    }

    #[test]
    fn every_prefix_of_a_valid_lockfile_parses_or_is_a_diagnostic() {
        for text in valid_locks() {
            for prefix in prefixes(&text) {
                check(prefix, read_lock(prefix)).unwrap();
            }
        }
    }
}
