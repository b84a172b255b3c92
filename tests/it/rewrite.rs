//! Rewriting devfiles and Dockerfiles to the mirrored references: goldens with comments in
//! awkward places, every devfile of the community registry (schema-valid afterwards, nothing
//! upstream left outside comments), and the corner cases one at a time.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use airgap::devfile::{self, ProjectSource};
use airgap::rewrite::{
    DevfilePlan, ImageMap, RewriteError, offline_zip_name, rewrite_devfile, rewrite_dockerfile,
    upstream_hosts_outside_comments, upstream_hosts_outside_dockerfile_comments,
};
use serde_json::Value;
use sha2::Digest as _;

use crate::support::{fixtures, own_fixtures};

/// Hosts the community registry's devfiles fetch from: image registries, git remotes, zip
/// starter projects, icons and the Liberty stacks' `alpha.*` attributes. (Documentation links
/// such as `metadata.website` are not fetched and are kept.)
const UPSTREAM_HOSTS: &[&str] = &[
    "github.com",
    "raw.githubusercontent.com",
    "registry.access.redhat.com",
    "quay.io",
    "docker.io",
    "icr.io",
    "code.quarkus.io",
    "code.quarkus.redhat.com",
    "design.jboss.org",
    "static.djangoproject.com",
    "ollama.com",
];

const TARGET: &str = "localhost:8080";

// ---------------------------------------------------------------------------------------------
// Helpers

/// Every `devfile.yaml` under the community registry fixture, sorted.
fn corpus() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().is_some_and(|n| n == "devfile.yaml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&fixtures().join("devfile-registry/stacks"), &mut out);
    out.sort();
    out
}

/// Rewriting `text` with an empty plan gives it back as it is.
#[track_caller]
fn assert_unchanged_without_plan(text: &str) {
    let out = rewrite_devfile("devfile.yaml", text, &DevfilePlan::default()).unwrap();
    assert_eq!(out, text);
}

/// The mirrored reference the synthetic plan gives an upstream image: the last path part, its
/// tag, and a digest made from the reference (an upstream digest is kept).
fn synthetic_target(resolved: &str) -> String {
    let (name, digest) = match resolved.split_once('@') {
        Some((n, d)) => (n, Some(d.to_string())),
        None => (resolved, None),
    };
    let last = name.rsplit('/').next().unwrap();
    let (repo, tag) = match last.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (last, None),
    };
    let digest = digest.unwrap_or_else(|| {
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(resolved.as_bytes()))
        )
    });
    match tag {
        Some(t) => format!("{TARGET}/{repo}:{t}@{digest}"),
        None if resolved.contains('@') => format!("{TARGET}/{repo}@{digest}"),
        None => format!("{TARGET}/{repo}:latest@{digest}"),
    }
}

/// The image a devfile should hold after the rewrite: the target, or, for an image written
/// with a variable, the target's repository with the tag as written.
fn expected_image(written: &str, resolved: &str) -> String {
    let target = synthetic_target(resolved);
    if !written.contains("{{") {
        return target;
    }
    let slash = written.rfind('/').unwrap();
    let colon = slash + written[slash..].find(':').unwrap();
    let target_name =
        &target[..TARGET.len() + 1 + target[TARGET.len() + 1..].find([':', '@']).unwrap()];
    format!("{target_name}{}", &written[colon..])
}

/// The last path segment of a URL (`…/download/x/Dockerfile` → `Dockerfile`).
fn url_file_name(url: &str) -> String {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

/// The plan the tests use for a devfile: every image mirrored under `localhost:8080`, every
/// starter project and project archived as `<name>-offline.zip`, the icon as `logo.svg`, URL
/// attributes of `metadata` as local files.
fn synthetic_plan(path: &str, text: &str) -> DevfilePlan {
    let d = devfile::parse(path, text).unwrap();
    let images: ImageMap = d
        .images()
        .into_iter()
        .map(|i| (i.resolved.clone(), synthetic_target(&i.resolved)))
        .collect();
    let json = yaml_to_json(text);
    let metadata = json
        .pointer("/metadata")
        .and_then(Value::as_object)
        .map(|attrs| {
            attrs
                .iter()
                .filter_map(|(k, v)| {
                    let url = v.as_str()?;
                    (k.starts_with("alpha.") && url.starts_with("https://"))
                        .then(|| (k.clone(), url_file_name(url)))
                })
                .collect()
        })
        .unwrap_or_default();
    DevfilePlan {
        images,
        starter_projects: d
            .starter_projects()
            .iter()
            .map(|p| (p.name.clone(), offline_zip_name(&p.name)))
            .collect(),
        projects: d
            .projects()
            .iter()
            .map(|p| (p.name.clone(), offline_zip_name(&p.name)))
            .collect(),
        parent: None,
        icon: Some("logo.svg".into()),
        metadata,
    }
}

fn yaml_to_json(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

fn schema_validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(
        &fs::read_to_string(fixtures().join("devfile-schema/devfile.json")).unwrap(),
    )
    .unwrap();
    jsonschema::draft7::new(&schema).unwrap()
}

/// Schema errors of a devfile, as `instance path: message` lines.
fn schema_errors(v: &jsonschema::Validator, text: &str) -> BTreeSet<String> {
    let json = yaml_to_json(text);
    v.iter_errors(&json)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Lines with their 1-based numbers.
type NumberedLines = Vec<(usize, String)>;

/// A line diff (longest common subsequence): the lines only in `a` and only in `b`.
fn line_diff(a: &str, b: &str) -> (NumberedLines, NumberedLines) {
    let a: Vec<&str> = a.split_inclusive('\n').collect();
    let b: Vec<&str> = b.split_inclusive('\n').collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            added.push((j + 1, b[j].to_string()));
            j += 1;
        } else {
            removed.push((i + 1, a[i].to_string()));
            i += 1;
        }
    }
    (removed, added)
}

/// Compares with a golden file; `AIRGAP_BLESS=1` writes it instead.
fn assert_golden(path: &Path, actual: &str) {
    if std::env::var_os("AIRGAP_BLESS").is_some() {
        fs::write(path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (AIRGAP_BLESS=1 writes it)", path.display()));
    if expected != actual {
        let (removed, added) = line_diff(&expected, actual);
        panic!(
            "{} differs (AIRGAP_BLESS=1 rewrites it)\n--- golden only\n{}\n--- actual only\n{}",
            path.display(),
            removed
                .iter()
                .map(|(n, l)| format!("{n}: {l}"))
                .collect::<String>(),
            added
                .iter()
                .map(|(n, l)| format!("{n}: {l}"))
                .collect::<String>(),
        );
    }
}

fn plan_with_images(images: &[(&str, &str)]) -> DevfilePlan {
    DevfilePlan {
        images: images
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        ..DevfilePlan::default()
    }
}

fn images_of(text: &str) -> Vec<String> {
    devfile::parse("devfile.yaml", text)
        .unwrap()
        .images()
        .into_iter()
        .map(|i| i.written)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The community registry

/// The devfile schema (2.3.0) accepts every devfile of the community registry as written
/// upstream, so the corpus test below can require the rewritten ones to be valid too; and it
/// does reject invalid devfiles (the validator is not vacuous).
#[test]
fn rewrite_corpus_originals_are_schema_valid() {
    let v = schema_validator();
    let mut failing = Vec::new();
    for path in corpus() {
        let errors = schema_errors(&v, &fs::read_to_string(&path).unwrap());
        if !errors.is_empty() {
            failing.push(format!("{}: {errors:?}", path.display()));
        }
    }
    assert!(failing.is_empty(), "{}", failing.join("\n"));

    let both = "schemaVersion: 2.2.0\nmetadata: {name: x}\nstarterProjects:\n  - name: a\n    git: {remotes: {origin: u}}\n    zip: {location: a.zip}\n";
    assert!(!schema_errors(&v, both).is_empty());
    let unknown = "schemaVersion: 2.2.0\nnotAKey: 1\n";
    assert!(!schema_errors(&v, unknown).is_empty());
    let parent_both = "schemaVersion: 2.2.0\nparent: {uri: a.yaml, id: b}\n";
    assert!(!schema_errors(&v, parent_both).is_empty());
}

/// Upstream references the rewrite leaves in the community registry on purpose, because
/// `airgap lock` does not fetch them: (devfile, text on the line, why).
const KNOWN_LEFTOVERS: &[(&str, &str, &str)] = &[(
    "stacks/java-wildfly/2.0.1/devfile.yaml",
    "imageRegistry: 'quay.io'",
    "the registry the outer loop pushes the application image to",
)];

#[test]
fn rewrite_corpus_every_devfile() {
    let v = schema_validator();
    let files = corpus();
    assert_eq!(files.len(), 90);
    let mut problems = Vec::new();
    let mut leftovers = 0;
    for path in &files {
        let rel = path
            .strip_prefix(fixtures().join("devfile-registry"))
            .unwrap()
            .display()
            .to_string();
        let text = fs::read_to_string(path).unwrap();
        let plan = synthetic_plan(&rel, &text);
        let out = match rewrite_devfile(&rel, &text, &plan) {
            Ok(out) => out,
            Err(e) => {
                problems.push(format!("{rel}: {e}"));
                continue;
            }
        };
        // No new schema errors.
        let before = schema_errors(&v, &text);
        let after = schema_errors(&v, &out);
        for e in after.difference(&before) {
            problems.push(format!("{rel}: the rewrite adds the schema error {e}"));
        }
        // What airgap reads back.
        let was = devfile::parse(&rel, &text).unwrap();
        let now = devfile::parse(&rel, &out).unwrap();
        let want: Vec<String> = was
            .images()
            .iter()
            .map(|i| expected_image(&i.written, &i.resolved))
            .collect();
        let got: Vec<String> = now.images().into_iter().map(|i| i.written).collect();
        if got != want {
            problems.push(format!("{rel}: images {got:?}, expected {want:?}"));
        }
        for (list, was_list) in [
            (now.starter_projects(), was.starter_projects()),
            (now.projects(), was.projects()),
        ] {
            let names: Vec<&String> = list.iter().map(|p| &p.name).collect();
            let was_names: Vec<&String> = was_list.iter().map(|p| &p.name).collect();
            if names != was_names {
                problems.push(format!("{rel}: projects {names:?}, expected {was_names:?}"));
            }
            for p in &list {
                let want = ProjectSource::Zip {
                    location: offline_zip_name(&p.name),
                };
                if p.source != want || p.sub_dir.is_some() {
                    problems.push(format!("{rel}: project {p:?}"));
                }
            }
        }
        if was.icon().is_some() && now.icon().as_deref() != Some("logo.svg") {
            problems.push(format!("{rel}: icon {:?}", now.icon()));
        }
        // Nothing upstream left outside comments.
        for hit in upstream_hosts_outside_comments(&out, UPSTREAM_HOSTS) {
            let line = out.lines().nth(hit.line - 1).unwrap_or_default();
            if KNOWN_LEFTOVERS
                .iter()
                .any(|(file, snippet, _)| *file == rel && line.contains(snippet))
            {
                leftovers += 1;
                continue;
            }
            problems.push(format!(
                "{rel}:{}: `{}` is left: {}",
                hit.line,
                hit.host,
                line.trim()
            ));
        }
        // Only the changed values differ: every removed line held a reference or a project
        // source key, every added line holds a local reference.
        let (removed, added) = line_diff(&text, &out);
        let source_keys = [
            "git:",
            "remotes:",
            "checkoutFrom:",
            "revision:",
            "remote:",
            "zip:",
            "location:",
            "subDir:",
        ];
        for (n, line) in &removed {
            let t = line.trim_start().trim_start_matches("- ");
            let ok = t.starts_with("image:")
                || t.starts_with("icon:")
                || t.starts_with('#')
                || source_keys.iter().any(|k| t.starts_with(k))
                || !upstream_hosts_outside_comments(line, UPSTREAM_HOSTS).is_empty();
            if !ok {
                problems.push(format!("{rel}:{n}: removed an unrelated line: {line:?}"));
            }
        }
        for (n, line) in &added {
            let ok = line.contains(TARGET)
                || line.contains("-offline.zip")
                || line.trim_start().trim_start_matches("- ") == "zip:\n"
                || line.contains("logo.svg")
                || plan
                    .metadata
                    .values()
                    .any(|v| line.trim_end().ends_with(&format!(": {v}")));
            if !ok {
                problems.push(format!("{rel}:{n}: added an unexpected line: {line:?}"));
            }
        }
        // Deterministic.
        assert_eq!(rewrite_devfile(&rel, &text, &plan).unwrap(), out);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(leftovers, KNOWN_LEFTOVERS.len());
}

// ---------------------------------------------------------------------------------------------
// Goldens

const GO_TOOLSET: &str = "registry.access.redhat.com/ubi9/go-toolset:1.25.5-1770654497";
const UDI_DIGEST: &str = "quay.io/devfile/universal-developer-image@sha256:08cf567a02fa70043cad4c1bc6a98e04a7e3f108d2f145929bed80d248fd94fa";
const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A real devfile with comments after values, between list items and inside starter projects:
/// the output equals the golden file, and the line diff against the original is exactly the
/// changed values.
#[test]
fn rewrite_golden_commented_devfile() {
    let dir = own_fixtures().join("rewrite/commented");
    let text = fs::read_to_string(dir.join("devfile.yaml")).unwrap();
    let plan = DevfilePlan {
        images: [
            (
                GO_TOOLSET.to_string(),
                format!("{TARGET}/go-toolset:1.25.5-1770654497@{DIGEST_A}"),
            ),
            (
                UDI_DIGEST.to_string(),
                format!(
                    "{TARGET}/universal-developer-image@{}",
                    UDI_DIGEST.split_once('@').unwrap().1
                ),
            ),
        ]
        .into(),
        starter_projects: [
            ("go-starter".to_string(), offline_zip_name("go-starter")),
            ("go-subdir".to_string(), offline_zip_name("go-subdir")),
        ]
        .into(),
        icon: Some("logo.svg".into()),
        ..DevfilePlan::default()
    };
    let out = rewrite_devfile("commented/devfile.yaml", &text, &plan).unwrap();
    assert_golden(&dir.join("expected.yaml"), &out);

    let (removed, added) = line_diff(&text, &out);
    let removed: Vec<&str> = removed.iter().map(|(_, l)| l.trim_end()).collect();
    let added: Vec<&str> = added.iter().map(|(_, l)| l.trim_end()).collect();
    assert_eq!(
        removed,
        [
            "  icon: https://raw.githubusercontent.com/devfile-samples/devfile-stack-icons/main/golang.svg # the gopher, served by github",
            "    git:",
            "      checkoutFrom:",
            "        revision: v2.6.0 # a tag",
            "      # a comment inside git goes away with it",
            "      remotes:",
            "        origin: https://github.com/devfile-samples/devfile-stack-go.git",
            "    git:",
            "      remotes:",
            "        origin: \"https://github.com/devfile-samples/devfile-stack-go.git\"",
            "      checkoutFrom: {revision: main}",
            "    subDir: app/ # only the app",
            "      image: registry.access.redhat.com/ubi9/go-toolset:1.25.5-1770654497 # go 1.25",
            "      image: \"quay.io/devfile/universal-developer-image@sha256:08cf567a02fa70043cad4c1bc6a98e04a7e3f108d2f145929bed80d248fd94fa\"",
        ]
    );
    let go = format!("      image: {TARGET}/go-toolset:1.25.5-1770654497@{DIGEST_A} # go 1.25");
    assert_eq!(
        added,
        [
            "  icon: logo.svg # the gopher, served by github",
            "    zip:",
            "      location: go-starter-offline.zip",
            "    zip:",
            "      location: go-subdir-offline.zip",
            go.as_str(),
            "      image: \"localhost:8080/universal-developer-image@sha256:08cf567a02fa70043cad4c1bc6a98e04a7e3f108d2f145929bed80d248fd94fa\"",
        ]
    );
    // Every comment survives byte for byte, except those inside the removed `git`/`subDir`
    // values (the trailing ones of the rewritten value lines are checked above).
    for line in text.lines().filter(|l| l.trim_start().starts_with('#')) {
        if line.contains("goes away") {
            assert!(!out.contains(line));
        } else {
            assert!(out.contains(&format!("{line}\n")), "lost {line:?}");
        }
    }
    // The result is a valid devfile that airgap reads back as planned, with nothing upstream
    // left outside comments.
    assert!(schema_errors(&schema_validator(), &out).is_empty());
    let d = devfile::parse("expected.yaml", &out).unwrap();
    let starters = d.starter_projects();
    assert_eq!(starters.len(), 2);
    assert!(starters.iter().all(|p| p.sub_dir.is_none()
        && p.source
            == ProjectSource::Zip {
                location: offline_zip_name(&p.name)
            }));
    assert_eq!(upstream_hosts_outside_comments(&out, UPSTREAM_HOSTS), []);
    // And the original does name them, comments aside.
    let hits = upstream_hosts_outside_comments(&text, UPSTREAM_HOSTS);
    assert_eq!(
        hits.iter().map(|h| h.line).collect::<Vec<_>>(),
        [8, 25, 34, 62, 72]
    );
}

/// A Containerfile like the java-wildfly stack's (an `ARG` image version) and a multi-stage
/// Dockerfile like java-springboot's (`COPY --from=0`), with comments.
#[test]
fn rewrite_golden_dockerfiles() {
    let images: ImageMap = [
        (
            "quay.io/wildfly/wildfly-s2i:latest-jdk17",
            "wildfly-s2i:latest-jdk17",
        ),
        (
            "quay.io/wildfly/wildfly-runtime:latest-jdk17",
            "wildfly-runtime:latest-jdk17",
        ),
        (
            "quay.io/devfile/maven:3.8.1-openjdk-17-slim",
            "maven:3.8.1-openjdk-17-slim",
        ),
        ("openjdk:11-jdk", "openjdk:11-jdk"),
        (
            "registry.access.redhat.com/ubi9/go-toolset:1.20.10-2.1699551725",
            "go-toolset:1.20.10-2.1699551725",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), format!("{TARGET}/{v}@{DIGEST_A}")))
    .collect();
    let dir = own_fixtures().join("rewrite/dockerfiles");
    for name in [
        "Containerfile",
        "Dockerfile.multistage",
        "Dockerfile.builder",
    ] {
        let text = fs::read_to_string(dir.join(name)).unwrap();
        let out = rewrite_dockerfile(name, &text, &images).unwrap();
        assert_golden(&dir.join(format!("{name}.expected")), &out);
        assert_eq!(
            upstream_hosts_outside_dockerfile_comments(&out, UPSTREAM_HOSTS),
            [],
            "{name}"
        );
        // Only `FROM` lines change.
        let (removed, added) = line_diff(&text, &out);
        assert_eq!(removed.len(), added.len(), "{name}");
        for (_, l) in removed.iter().chain(&added) {
            assert!(
                l.trim_start().to_ascii_uppercase().starts_with("FROM")
                    || l.trim_start().starts_with("quay.io")
                    || l.trim_start().starts_with(TARGET),
                "{name}: {l:?}"
            );
        }
        assert_eq!(rewrite_dockerfile(name, &text, &images).unwrap(), out);
    }
}

// ---------------------------------------------------------------------------------------------
// One case at a time

fn mirrored(name_tag: &str) -> String {
    format!("{TARGET}/{name_tag}@{DIGEST_A}")
}

/// Renders a diagnostic as the CLI shows it, without colour.
fn render(e: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, e)
        .unwrap();
    out
}

#[test]
fn rewrite_images_keep_their_quoting_style() {
    let text = "\
schemaVersion: 2.2.0
components:
  - name: plain
    container:
      image: quay.io/a/plain:1 # after the value
  - name: single
    container:
      image: 'quay.io/a/single:1'
  - name: double
    container:
      image: \"quay.io/a/double:1\" # after quotes
  - name: spaced
    container:
      image:   quay.io/a/spaced:1
  - name: flow
    container: {image: quay.io/a/flow:1, memoryLimit: 1Gi}
  - name: pinned
    container:
      image: quay.io/a/pinned@sha256:0123456789012345678901234567890123456789012345678901234567890123
  - name: anchored
    container:
      image: &shared quay.io/a/shared:1
  - name: alias
    container:
      image: *shared
  - name: block
    container:
      image: >-
        quay.io/a/block:1
";
    let mut plan = plan_with_images(&[]);
    for (name, tag) in [
        ("plain", ":1"),
        ("single", ":1"),
        ("double", ":1"),
        ("spaced", ":1"),
        ("flow", ":1"),
        ("shared", ":1"),
        ("block", ":1"),
    ] {
        plan.images.insert(
            format!("quay.io/a/{name}{tag}"),
            mirrored(&format!("{name}{tag}")),
        );
    }
    let pinned = "sha256:0123456789012345678901234567890123456789012345678901234567890123";
    plan.images.insert(
        format!("quay.io/a/pinned@{pinned}"),
        format!("{TARGET}/pinned@{pinned}"),
    );
    let out = rewrite_devfile("devfile.yaml", text, &plan).unwrap();
    let expected = format!(
        "\
schemaVersion: 2.2.0
components:
  - name: plain
    container:
      image: {plain} # after the value
  - name: single
    container:
      image: '{single}'
  - name: double
    container:
      image: \"{double}\" # after quotes
  - name: spaced
    container:
      image:   {spaced}
  - name: flow
    container: {{image: {flow}, memoryLimit: 1Gi}}
  - name: pinned
    container:
      image: {TARGET}/pinned@{pinned}
  - name: anchored
    container:
      image: &shared {shared}
  - name: alias
    container:
      image: *shared
  - name: block
    container:
      image: >-
        {block}
",
        block = mirrored("block:1"),
        plain = mirrored("plain:1"),
        single = mirrored("single:1"),
        double = mirrored("double:1"),
        spaced = mirrored("spaced:1"),
        flow = mirrored("flow:1"),
        shared = mirrored("shared:1"),
    );
    assert_eq!(out, expected);
    assert_eq!(images_of(&out)[6], mirrored("shared:1"));
    assert_eq!(images_of(&out)[7], mirrored("shared:1"));
}

#[test]
fn rewrite_variables_keep_the_tag_and_pin_no_digest() {
    let text = "\
schemaVersion: 2.2.0
variables:
  liberty-version: '22.0.0.1'
components:
  - name: dev
    container:
      image: icr.io/appcafe/open-liberty-devfile-stack:{{liberty-version}}
  - name: gradle
    container:
      image: 'icr.io/appcafe/open-liberty-devfile-stack:{{ liberty-version }}-gradle'
";
    let plan = plan_with_images(&[
        (
            "icr.io/appcafe/open-liberty-devfile-stack:22.0.0.1",
            &mirrored("open-liberty-devfile-stack:22.0.0.1"),
        ),
        (
            "icr.io/appcafe/open-liberty-devfile-stack:22.0.0.1-gradle",
            &mirrored("open-liberty-devfile-stack:22.0.0.1-gradle"),
        ),
    ]);
    let out = rewrite_devfile("devfile.yaml", text, &plan).unwrap();
    assert_eq!(out, text.replace("icr.io/appcafe/", &format!("{TARGET}/")));
    let d = devfile::parse("devfile.yaml", &out).unwrap();
    let resolved: Vec<String> = d.images().into_iter().map(|i| i.resolved).collect();
    assert_eq!(
        resolved,
        [
            format!("{TARGET}/open-liberty-devfile-stack:22.0.0.1"),
            format!("{TARGET}/open-liberty-devfile-stack:22.0.0.1-gradle"),
        ]
    );
}

#[test]
fn rewrite_variable_in_the_repository_is_an_error() {
    let text = "\
schemaVersion: 2.2.0
variables:
  org: devfile
components:
  - name: dev
    container:
      image: quay.io/{{org}}/base:1
";
    let plan = plan_with_images(&[("quay.io/devfile/base:1", &mirrored("base:1"))]);
    let err = rewrite_devfile("stacks/x/devfile.yaml", text, &plan).unwrap_err();
    assert!(matches!(err, RewriteError::VariableInRepository { .. }));
    insta::assert_snapshot!("rewrite-variable-in-repository", render(&err));

    let docker = "ARG REGISTRY=quay.io\nFROM $REGISTRY/devfile/base:1\n";
    let err = rewrite_dockerfile("docker/Dockerfile", docker, &plan.images).unwrap_err();
    assert!(matches!(err, RewriteError::VariableInRepository { .. }));
    assert!(
        err.to_string()
            .contains("`FROM` on line 2 of `docker/Dockerfile`")
    );
}

#[test]
fn rewrite_unplanned_references_are_errors() {
    let text = "\
schemaVersion: 2.2.0
metadata:
  name: x
  icon: https://example.com/x.svg
starterProjects:
  - name: s
    git:
      remotes:
        origin: https://github.com/a/s.git
components:
  - name: dev
    container:
      image: quay.io/a/b:1
";
    let err = rewrite_devfile("stacks/x/devfile.yaml", text, &DevfilePlan::default()).unwrap_err();
    assert!(matches!(err, RewriteError::Unplanned { .. }));
    insta::assert_snapshot!("rewrite-unplanned-image", render(&err));

    let mut plan = plan_with_images(&[("quay.io/a/b:1", &mirrored("b:1"))]);
    let err = rewrite_devfile("d.yaml", text, &plan).unwrap_err();
    assert_eq!(
        err.to_string(),
        "starterProjects[s] of `d.yaml` is a git project, which the rewrite plan has no local copy of"
    );
    plan.starter_projects
        .insert("s".into(), "s-offline.zip".into());
    let err = rewrite_devfile("d.yaml", text, &plan).unwrap_err();
    assert_eq!(
        err.to_string(),
        "metadata.icon of `d.yaml` is `https://example.com/x.svg`, which the rewrite plan has no local copy of"
    );
    plan.icon = Some("logo.svg".into());
    rewrite_devfile("d.yaml", text, &plan).unwrap();

    // Local references need no plan entry and are kept.
    let local = "schemaVersion: 2.2.0\nmetadata:\n  icon: logo.png\nstarterProjects:\n  - name: l\n    zip:\n      location: l.zip\n";
    assert_unchanged_without_plan(local);

    // Dockerfiles too.
    let err =
        rewrite_dockerfile("Dockerfile", "# base\nFROM quay.io/a/c:1\n", &plan.images).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`FROM` on line 2 of `Dockerfile` is `quay.io/a/c:1`, which the rewrite plan has no local copy of"
    );
}

#[test]
fn rewrite_starter_projects_in_every_layout() {
    let text = "\
schemaVersion: 2.2.0
starterProjects:
  - {name: flow, git: {remotes: {origin: 'https://github.com/a/b.git'}}, subDir: x, description: \"d, e\"}
  - git:
      remotes:
        origin: https://github.com/a/c.git
    name: git-first
    subDir: y
  - name: zipped
    subDir: z # the zip root
    # between
    zip:
      location: https://example.com/z.zip
    attributes: {k: v}
  - name: local
    zip:
      location: local.zip
projects:
- name: proj
  git:
    remotes: {origin: https://github.com/a/p.git}
";
    let plan = DevfilePlan {
        starter_projects: ["flow", "git-first", "zipped"]
            .into_iter()
            .map(|n| (n.to_string(), offline_zip_name(n)))
            .collect(),
        projects: [("proj".to_string(), offline_zip_name("proj"))].into(),
        ..DevfilePlan::default()
    };
    let out = rewrite_devfile("devfile.yaml", text, &plan).unwrap();
    assert_eq!(
        out,
        "\
schemaVersion: 2.2.0
starterProjects:
  - {name: flow, zip: {location: flow-offline.zip}, description: \"d, e\"}
  - zip:
      location: git-first-offline.zip
    name: git-first
  - name: zipped
    zip:
      location: zipped-offline.zip
    # between
    attributes: {k: v}
  - name: local
    zip:
      location: local.zip
projects:
- name: proj
  zip:
    location: proj-offline.zip
"
    );
    assert!(schema_errors(&schema_validator(), &out).is_empty());

    // Two projects on one archive name is an error naming both.
    let mut shared = plan.clone();
    shared
        .starter_projects
        .insert("git-first".into(), offline_zip_name("flow"));
    let err = rewrite_devfile("devfile.yaml", text, &shared).unwrap_err();
    assert_eq!(
        err.to_string(),
        "starterProjects[flow] and starterProjects[git-first] of `devfile.yaml` would both be written to `flow-offline.zip`"
    );

    // A merge key hides `git` from the layout scanner: refused, not guessed.
    let merged = "\
schemaVersion: 2.2.0
x-base: &base
  git:
    remotes: {origin: https://github.com/a/b.git}
starterProjects:
  - <<: *base
    name: m
";
    let plan = DevfilePlan {
        starter_projects: [("m".to_string(), offline_zip_name("m"))].into(),
        ..DevfilePlan::default()
    };
    match rewrite_devfile("devfile.yaml", merged, &plan) {
        Err(RewriteError::Unsupported { message, .. }) => {
            assert!(message.contains("`git`"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rewrite_parent_devfiles() {
    let plan = DevfilePlan {
        parent: Some("parent-devfile.yaml".into()),
        ..DevfilePlan::default()
    };
    // The registry form becomes the URI form; overrides and comments stay.
    let registry = "\
schemaVersion: 2.2.0
parent:
  # from the community registry
  id: nodejs
  registryUrl: \"https://registry.devfile.io\"
  version: 2.1.1 # pinned
  commands:
    - id: run
      exec: {commandLine: npm start, component: runtime}
";
    let out = rewrite_devfile("devfile.yaml", registry, &plan).unwrap();
    assert_eq!(
        out,
        "\
schemaVersion: 2.2.0
parent:
  # from the community registry
  uri: parent-devfile.yaml
  commands:
    - id: run
      exec: {commandLine: npm start, component: runtime}
"
    );
    assert!(schema_errors(&schema_validator(), &out).is_empty());
    let flow = "schemaVersion: 2.2.0\nparent: {id: nodejs, registryUrl: 'https://registry.devfile.io', version: 2.1.1}\n";
    assert_eq!(
        rewrite_devfile("devfile.yaml", flow, &plan).unwrap(),
        "schemaVersion: 2.2.0\nparent: {uri: parent-devfile.yaml}\n"
    );
    // The URI form keeps its quotes.
    let uri = "schemaVersion: 2.2.0\nparent:\n  uri: 'https://raw.githubusercontent.com/a/b/main/devfile.yaml'\n";
    assert_eq!(
        rewrite_devfile("devfile.yaml", uri, &plan).unwrap(),
        "schemaVersion: 2.2.0\nparent:\n  uri: 'parent-devfile.yaml'\n"
    );
    // Unplanned: an error; a Kubernetes parent needs nothing.
    let err = rewrite_devfile("devfile.yaml", registry, &DevfilePlan::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parent of `devfile.yaml` is `https://registry.devfile.io/devfiles/nodejs/2.1.1`, which the rewrite plan has no local copy of"
    );
    let k8s = "schemaVersion: 2.2.0\nparent:\n  kubernetes: {name: base}\n";
    assert_unchanged_without_plan(k8s);
}

#[test]
fn rewrite_metadata_values_and_crlf() {
    let text = "schemaVersion: 2.2.0\r\nmetadata:\r\n  name: x\r\n  alpha.build-dockerfile: https://github.com/a/b/releases/download/v1/Dockerfile\r\nstarterProjects:\r\n  - name: s\r\n    git:\r\n      remotes:\r\n        origin: https://github.com/a/s.git\r\n    subDir: app\r\n";
    let plan = DevfilePlan {
        starter_projects: [("s".to_string(), offline_zip_name("s"))].into(),
        metadata: [(
            "alpha.build-dockerfile".to_string(),
            "Dockerfile".to_string(),
        )]
        .into(),
        ..DevfilePlan::default()
    };
    let out = rewrite_devfile("devfile.yaml", text, &plan).unwrap();
    assert_eq!(
        out,
        "schemaVersion: 2.2.0\r\nmetadata:\r\n  name: x\r\n  alpha.build-dockerfile: Dockerfile\r\nstarterProjects:\r\n  - name: s\r\n    zip:\r\n      location: s-offline.zip\r\n"
    );
}

#[test]
fn rewrite_dockerfile_from_lines() {
    let images = plan_with_images(&[
        (
            "quay.io/wildfly/wildfly-runtime:latest-jdk17",
            &mirrored("wildfly-runtime:latest-jdk17"),
        ),
        ("openjdk:11-jdk", &mirrored("openjdk:11-jdk")),
    ])
    .images;
    // ARG: only the repository changes; multi-stage: each FROM, stage names left alone.
    let text = "\
# syntax comment: quay.io
ARG IMAGE_VERSION=latest-jdk17
FROM quay.io/wildfly/wildfly-runtime:${IMAGE_VERSION} AS runtime
FROM openjdk:11-jdk
COPY --from=0 /a /b
FROM runtime
";
    let out = rewrite_dockerfile("Containerfile", text, &images).unwrap();
    assert_eq!(
        out,
        format!(
            "\
# syntax comment: quay.io
ARG IMAGE_VERSION=latest-jdk17
FROM {TARGET}/wildfly-runtime:${{IMAGE_VERSION}} AS runtime
FROM {openjdk}
COPY --from=0 /a /b
FROM runtime
",
            openjdk = mirrored("openjdk:11-jdk")
        )
    );
    assert_eq!(
        upstream_hosts_outside_dockerfile_comments(&out, UPSTREAM_HOSTS),
        []
    );
    assert_eq!(
        upstream_hosts_outside_dockerfile_comments(text, UPSTREAM_HOSTS)
            .iter()
            .map(|h| h.line)
            .collect::<Vec<_>>(),
        [3]
    );
}

#[test]
fn rewrite_host_check_skips_only_comments() {
    let text = "\
# github.com in a comment line
a: https://github.com/x # and quay.io in a trailing comment
b: 'quay.io/#not-a-comment icr.io'
c: |
  # docker.io inside a block scalar is content
d: text#icr.io has no space before the hash
e: \"multi
  line docker.io # still quoted\"
f: notgithub.com and github.community are other hosts
";
    let hits: Vec<(usize, String)> = upstream_hosts_outside_comments(text, UPSTREAM_HOSTS)
        .into_iter()
        .map(|h| (h.line, h.host))
        .collect();
    let want: Vec<(usize, String)> = [
        (2, "github.com"),
        (3, "quay.io"),
        (3, "icr.io"),
        (5, "docker.io"),
        (6, "icr.io"),
        (8, "docker.io"),
    ]
    .into_iter()
    .map(|(l, h)| (l, h.to_string()))
    .collect();
    let mut want = want;
    want.sort();
    assert_eq!(hits, want);
}

#[test]
fn rewrite_is_deterministic_and_pure() {
    let text = fs::read_to_string(own_fixtures().join("rewrite/commented/devfile.yaml")).unwrap();
    let plan = synthetic_plan("devfile.yaml", &text);
    let a = rewrite_devfile("devfile.yaml", &text, &plan).unwrap();
    let b = rewrite_devfile("devfile.yaml", &text, &plan.clone()).unwrap();
    assert_eq!(a.as_bytes(), b.as_bytes());
    // An empty plan on a devfile without upstream references changes nothing.
    let plain = "schemaVersion: 2.2.0 # only this\n";
    assert_unchanged_without_plan(plain);
}

/// Every devfile of the community registry in a second layout, as serde-saphyr writes YAML
/// (keys sorted, so `git` comes before `name`; sequences not indented under their key): the
/// layout scanner finds the project keys there too.
#[test]
fn rewrite_corpus_in_another_layout() {
    let v = schema_validator();
    let mut problems = Vec::new();
    for path in corpus() {
        let rel = path
            .strip_prefix(fixtures().join("devfile-registry"))
            .unwrap()
            .display()
            .to_string();
        let text =
            serde_saphyr::to_string(&yaml_to_json(&fs::read_to_string(&path).unwrap())).unwrap();
        let plan = synthetic_plan(&rel, &text);
        match rewrite_devfile(&rel, &text, &plan) {
            Ok(out) => {
                let errors = schema_errors(&v, &out);
                if !errors.is_empty() {
                    problems.push(format!("{rel}: {errors:?}"));
                }
                let d = devfile::parse(&rel, &out).unwrap();
                for p in d.starter_projects().iter().chain(&d.projects()) {
                    let want = ProjectSource::Zip {
                        location: offline_zip_name(&p.name),
                    };
                    if p.source != want || p.sub_dir.is_some() {
                        problems.push(format!("{rel}: {p:?}"));
                    }
                }
            }
            Err(e) => problems.push(format!("{rel}: {e}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A comment line inserted before, or a comment appended to, any line of the starter projects
/// (the first 30 lines of them) of one devfile per stack: the rewrite succeeds, and the comment survives unless it sits
/// inside a `git`/`zip` value that the rewrite removes.
#[test]
fn rewrite_comments_anywhere_in_starter_projects() {
    let mut problems = Vec::new();
    let mut stacks = BTreeSet::new();
    let mut variants = 0;
    for path in corpus() {
        let rel = path
            .strip_prefix(fixtures().join("devfile-registry"))
            .unwrap()
            .display()
            .to_string();
        let stack = rel.split('/').nth(1).unwrap().to_string();
        if !stacks.insert(stack) {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let plan = synthetic_plan(&rel, &text);
        let json = yaml_to_json(&text);
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        // Lines the rewrite itself removes or replaces (0-based); a `zip:` key line is replaced
        // by an identical one, so the line diff does not list it.
        let rewritten = rewrite_devfile(&rel, &text, &plan).unwrap();
        let replaced: BTreeSet<usize> =
            line_diff(&text, &rewritten)
                .0
                .into_iter()
                .map(|(n, _)| n - 1)
                .chain((0..lines.len()).filter(|&i| {
                    lines[i].trim_start().trim_start_matches("- ").trim_end() == "zip:"
                }))
                .collect();
        let Some(first) = lines.iter().position(|l| l.starts_with("starterProjects:")) else {
            continue;
        };
        let end = (first + 1..lines.len())
            .find(|&i| !lines[i].starts_with([' ', '-', '#', '\n']))
            .unwrap_or(lines.len())
            .min(first + 30); // the first few entries say it all, and keep the test quick
        for i in first + 1..end {
            let line = lines[i];
            if line.trim().is_empty() {
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            let before = format!(
                "{}{}# NOTE before\n{}",
                lines[..i].concat(),
                " ".repeat(indent),
                lines[i..].concat()
            );
            let trailing = format!(
                "{}{} # NOTE trailing\n{}",
                lines[..i].concat(),
                line.trim_end(),
                lines[i + 1..].concat()
            );
            // A comment may go only with the value it sits inside.
            let may_go_before = replaced.contains(&i) && replaced.contains(&(i - 1));
            let may_go_trailing = replaced.contains(&i);
            for (variant, comment, may_go) in [
                (before, "# NOTE before", may_go_before),
                (trailing, "# NOTE trailing", may_go_trailing),
            ] {
                if yaml_to_json(&variant) != json {
                    continue;
                }
                variants += 1;
                match rewrite_devfile(&rel, &variant, &plan) {
                    Ok(out) if !out.contains(comment) && !may_go => {
                        problems.push(format!("{rel}:{}: lost {comment} at {line:?}", i + 1))
                    }
                    Ok(_) => {}
                    Err(e) => problems.push(format!("{rel}:{}: {e}", i + 1)),
                }
            }
        }
    }
    assert!(variants > 300, "{variants}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Image references inside text values are replaced token by token: the same image in a
/// comment, joined to an option by `=`, or as the prefix of a longer token stays, and every
/// byte outside the replaced tokens is the original's.
#[test]
fn rewrite_text_references_replace_only_the_token() {
    let text = "\
schemaVersion: 2.2.0
components:
  - name: tools
    container:
      image: quay.io/a/tools:1 # quay.io/a/k:1 in a comment
      env:
        - name: P
          value: \"--initimage quay.io/a/k:1 --other=quay.io/a/k:1\"   # quay.io/a/k:1
        - name: HOST
          value: 'quay.io'
        - name: Q
          value: quay.io/a/k:1
      args: [run, 'quay.io/a/k:1']
commands:
  - id: run
    exec:
      component: tools
      commandLine: 'podman run ''quay.io/a/k:1'' && echo quay.io/a/k:1/x'
  - id: block
    exec:
      component: tools
      commandLine: |
        podman run \\
          quay.io/a/k:1 # not a comment in a block scalar
";
    let k = mirrored("k:1");
    let plan = plan_with_images(&[
        ("quay.io/a/tools:1", &mirrored("tools:1")),
        ("quay.io/a/k:1", &k),
    ]);
    let out = rewrite_devfile("devfile.yaml", text, &plan).unwrap();
    let expected = text
        .replace(
            "image: quay.io/a/tools:1",
            &format!("image: {}", mirrored("tools:1")),
        )
        .replace("--initimage quay.io/a/k:1", &format!("--initimage {k}"))
        .replace("value: quay.io/a/k:1", &format!("value: {k}"))
        .replace("'quay.io/a/k:1']", &format!("'{k}']"))
        .replace("''quay.io/a/k:1''", &format!("''{k}''"))
        .replace("          quay.io/a/k:1 #", &format!("          {k} #"));
    assert_eq!(out, expected);
    // The lines around the replaced tokens, byte for byte.
    for (was, now) in text.lines().zip(out.lines()) {
        if !was.contains("quay.io/a/") {
            assert_eq!(was, now);
        }
    }
    assert!(out.contains("--other=quay.io/a/k:1\"   # quay.io/a/k:1\n"));
    assert!(out.contains("echo quay.io/a/k:1/x'"));
    assert!(out.contains("value: 'quay.io'\n"));
    assert_eq!(
        images_of(&out),
        [
            mirrored("tools:1"),
            k.clone(),
            k.clone(),
            k.clone(),
            k.clone(),
            k.clone()
        ]
    );
    // Deterministic, and already rewritten text is left as it is by a plan of its own.
    assert_eq!(rewrite_devfile("devfile.yaml", text, &plan).unwrap(), out);
    let again = plan_with_images(&[(&mirrored("tools:1"), &mirrored("tools:1")), (&k, &k)]);
    assert_eq!(rewrite_devfile("devfile.yaml", &out, &again).unwrap(), out);
}

/// A token that an escape hides in the original text (`\t` before it in a double-quoted
/// scalar) cannot be replaced in place: the whole scalar is written again, double-quoted.
#[test]
fn rewrite_text_reference_behind_an_escape_rewrites_the_scalar() {
    let text = "components:\n  - name: t\n    container:\n      image: quay.io/a/t:1\n      command: [\"run\\tquay.io/a/k:1\"]\n";
    let k = mirrored("k:1");
    let plan = plan_with_images(&[("quay.io/a/t:1", &mirrored("t:1")), ("quay.io/a/k:1", &k)]);
    let out = rewrite_devfile("devfile.yaml", text, &plan).unwrap();
    assert!(
        out.contains(&format!("command: [\"run\\t{k}\"]\n")),
        "{out}"
    );
}

/// A text reference without a plan entry is an error pointing at the token, like a
/// component image without one.
#[test]
fn rewrite_unplanned_text_reference_is_an_error() {
    let text = "commands:\n  - id: run\n    exec:\n      commandLine: podman run quay.io/a/k:1\n";
    let err = rewrite_devfile("d.yaml", text, &DevfilePlan::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "commands[run].exec.commandLine of `d.yaml` is `quay.io/a/k:1`, which the rewrite plan has no local copy of"
    );
    let RewriteError::Unplanned { span, .. } = err else {
        unreachable!()
    };
    assert_eq!(
        &text[span.offset()..span.offset() + span.len()],
        "quay.io/a/k:1"
    );
}
