//! The published schemas (`schema/`) stay in step with the code:
//! - the manifest schema describes exactly the parser's table of nodes, properties and
//!   allowed values (`airgap::manifest::spec`), and every example manifest validates against
//!   it and parses;
//! - the lockfile schema accepts what `airgap lock` writes, and everything it declares is
//!   written by the lockfile writer when a lock has every kind of entry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use kdl::{KdlDocument, KdlNode, KdlValue};

use airgap::manifest::spec::{self, NodeSpec};

/// One node of a schema file.
#[derive(Debug, Default)]
struct SchemaNode {
    min: usize,
    max: Option<usize>,
    args: Vec<(String, String, bool, bool)>, // name, type, required, repeat
    props: BTreeMap<String, (String, Vec<String>, bool)>, // type, enum, required
    children: BTreeMap<String, SchemaNode>,
}

fn s(n: &KdlNode, key: &str) -> Option<String> {
    n.get(key).and_then(|v| v.as_string()).map(str::to_string)
}

fn b(n: &KdlNode, key: &str) -> bool {
    n.get(key).and_then(|v| v.as_bool()).unwrap_or(false)
}

fn schema_nodes(doc: &KdlDocument) -> BTreeMap<String, SchemaNode> {
    let mut out = BTreeMap::new();
    for n in doc.nodes() {
        assert_eq!(n.name().value(), "node");
        let name = n.entries()[0].value().as_string().unwrap().to_string();
        assert!(
            s(n, "description").is_some(),
            "node {name} has a description"
        );
        let mut node = SchemaNode {
            min: n.get("min").and_then(|v| v.as_integer()).unwrap_or(0) as usize,
            max: n
                .get("max")
                .and_then(|v| v.as_integer())
                .map(|m| m as usize),
            ..Default::default()
        };
        let mut child_doc = KdlDocument::new();
        for c in n.children().map(|c| c.nodes()).unwrap_or_default() {
            let cname = c.entries()[0].value().as_string().unwrap().to_string();
            match c.name().value() {
                "arg" => node.args.push((
                    cname,
                    s(c, "type").unwrap(),
                    b(c, "required"),
                    b(c, "repeat"),
                )),
                "prop" => {
                    assert!(
                        s(c, "description").is_some(),
                        "prop {cname} of {name} has a description"
                    );
                    let values = s(c, "enum")
                        .map(|e| e.split(' ').map(str::to_string).collect())
                        .unwrap_or_default();
                    node.props
                        .insert(cname, (s(c, "type").unwrap(), values, b(c, "required")));
                }
                "node" => child_doc.nodes_mut().push(c.clone()),
                other => panic!("unknown schema node {other}"),
            }
        }
        node.children = schema_nodes(&child_doc);
        out.insert(name, node);
    }
    out
}

fn load_schema(file: &str) -> BTreeMap<String, SchemaNode> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(file);
    let doc: KdlDocument = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let document = &doc.nodes()[0];
    assert_eq!(document.name().value(), "document");
    schema_nodes(document.children().unwrap())
}

fn value_type(v: &KdlValue) -> &'static str {
    match v {
        KdlValue::String(_) => "string",
        KdlValue::Integer(_) => "integer",
        KdlValue::Bool(_) => "boolean",
        _ => "other",
    }
}

/// Validates a document against a schema level; returns every violation.
fn validate(
    nodes: &[KdlNode],
    schema: &BTreeMap<String, SchemaNode>,
    at: &str,
    errors: &mut Vec<String>,
) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for n in nodes {
        let name = n.name().value();
        *counts.entry(name).or_default() += 1;
        let Some(sn) = schema.get(name) else {
            errors.push(format!("{at}{name}: not in the schema"));
            continue;
        };
        let args: Vec<&KdlValue> = n
            .entries()
            .iter()
            .filter(|e| e.name().is_none())
            .map(|e| e.value())
            .collect();
        let repeat = sn.args.last().map(|a| a.3).unwrap_or(false);
        if args.len() > sn.args.len() && !repeat {
            errors.push(format!(
                "{at}{name}: {} arguments, schema allows {}",
                args.len(),
                sn.args.len()
            ));
        }
        for (i, (aname, ty, required, _)) in sn.args.iter().enumerate() {
            match args.get(i) {
                Some(v) if value_type(v) != ty => errors.push(format!(
                    "{at}{name}: arg {aname} is {}, not {ty}",
                    value_type(v)
                )),
                None if *required => errors.push(format!("{at}{name}: arg {aname} missing")),
                _ => {}
            }
        }
        for e in n.entries().iter().filter(|e| e.name().is_some()) {
            let key = e.name().unwrap().value();
            match sn.props.get(key) {
                None => errors.push(format!("{at}{name}: prop {key} not in the schema")),
                Some((ty, values, _)) => {
                    if value_type(e.value()) != ty {
                        errors.push(format!(
                            "{at}{name}: prop {key} is {}, not {ty}",
                            value_type(e.value())
                        ));
                    }
                    if !values.is_empty()
                        && !values
                            .iter()
                            .any(|v| Some(v.as_str()) == e.value().as_string())
                    {
                        errors.push(format!(
                            "{at}{name}: prop {key}={} not in {values:?}",
                            e.value()
                        ));
                    }
                }
            }
        }
        for (key, (_, _, required)) in &sn.props {
            if *required && n.get(key.as_str()).is_none() {
                errors.push(format!("{at}{name}: required prop {key} missing"));
            }
        }
        let children = n.children().map(|c| c.nodes().to_vec()).unwrap_or_default();
        validate(&children, &sn.children, &format!("{at}{name}/"), errors);
    }
    for (name, sn) in schema {
        let c = counts.get(name.as_str()).copied().unwrap_or(0);
        if c < sn.min || sn.max.is_some_and(|m| c > m) {
            errors.push(format!(
                "{at}{name}: appears {c} times, schema says min {} max {:?}",
                sn.min, sn.max
            ));
        }
    }
}

fn same_shape(code: &[NodeSpec], schema: &BTreeMap<String, SchemaNode>, at: &str) {
    let code_names: BTreeSet<&str> = code.iter().map(|n| n.name).collect();
    let schema_names: BTreeSet<&str> = schema.keys().map(String::as_str).collect();
    assert_eq!(
        code_names, schema_names,
        "nodes at `{at}` differ between the parser and the schema"
    );
    for n in code {
        let sn = &schema[n.name];
        let code_props: BTreeMap<&str, BTreeSet<&str>> = n
            .props
            .iter()
            .map(|p| (p.name, p.values.iter().copied().collect()))
            .collect();
        let schema_props: BTreeMap<&str, BTreeSet<&str>> = sn
            .props
            .iter()
            .map(|(k, (_, v, _))| (k.as_str(), v.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            code_props, schema_props,
            "properties of `{at}{}` differ",
            n.name
        );
        same_shape(n.children, &sn.children, &format!("{at}{}/", n.name));
    }
}

/// Adds the path of every node (`parent/child`) and property (`parent/child.key`) in `nodes`,
/// below `at`, to `used`.
fn used_paths(nodes: &[KdlNode], at: &str, used: &mut BTreeSet<String>) {
    for n in nodes {
        let path = format!("{at}{}", n.name().value());
        used.insert(path.clone());
        for e in n.entries() {
            if let Some(k) = e.name() {
                used.insert(format!("{path}.{}", k.value()));
            }
        }
        used_paths(
            n.children().map(|c| c.nodes()).unwrap_or_default(),
            &format!("{path}/"),
            used,
        );
    }
}

#[test]
fn manifest_schema_matches_the_parser() {
    let schema = load_schema("airgap.kdl.schema");
    same_shape(spec::MANIFEST, &schema, "");
}

#[test]
fn example_manifests_validate_and_parse() {
    let schema = load_schema("airgap.kdl.schema");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let examples = [
        root.join("airgap.kdl.example"),
        root.join("examples/quickstart/airgap.kdl"),
    ];
    for path in examples {
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: KdlDocument = text.parse().unwrap();
        let mut errors = Vec::new();
        validate(doc.nodes(), &schema, "", &mut errors);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        let m = airgap::manifest::parse("airgap.kdl", &text, root.clone()).unwrap_or_else(|e| {
            panic!(
                "{} does not parse: {}",
                path.display(),
                airgap::diag::render_plain(&e)
            )
        });
        assert!(!m.sources.is_empty());
    }
    // The documented example uses every node and property of the schema.
    let text = std::fs::read_to_string(root.join("airgap.kdl.example")).unwrap();
    let doc: KdlDocument = text.parse().unwrap();
    let mut used: BTreeSet<String> = BTreeSet::new();
    used_paths(doc.nodes(), "", &mut used);
    // Alternatives shown commented out (`// target "dir:…" address=…`) count as shown; they
    // must still be valid.
    for line in text.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("// ")
            && let Ok(alt) = rest.parse::<KdlDocument>()
            && alt
                .nodes()
                .first()
                .is_some_and(|n| spec::MANIFEST.iter().any(|s| s.name == n.name().value()))
        {
            let mut errors = Vec::new();
            validate(alt.nodes(), &schema, "", &mut errors);
            let errors: Vec<_> = errors
                .into_iter()
                .filter(|e| !e.contains("appears 0 times"))
                .collect();
            assert!(errors.is_empty(), "commented example `{rest}`: {errors:?}");
            used_paths(alt.nodes(), "", &mut used);
        }
    }
    fn expect(nodes: &[NodeSpec], at: &str, used: &BTreeSet<String>) {
        for n in nodes {
            let path = format!("{at}{}", n.name);
            assert!(
                used.contains(&path),
                "airgap.kdl.example does not show `{path}`"
            );
            for p in n.props {
                assert!(
                    used.contains(&format!("{path}.{}", p.name)),
                    "airgap.kdl.example does not show `{path} {}=`",
                    p.name
                );
            }
            expect(n.children, &format!("{path}/"), used);
        }
    }
    expect(spec::MANIFEST, "", &used);
}

#[test]
fn lockfile_schema_accepts_what_lock_writes_and_nothing_stale() {
    use airgap::lock::*;
    let schema = load_schema("airgap.lock.schema");
    // A lock with every kind of entry.
    let mut lock = Lockfile {
        target: LockedTarget {
            prefix: "registry.internal:5000/devfiles".into(),
            naming: "flat".into(),
        },
        index_image: Some(LockedIndexImage {
            name: "devfile-index".into(),
            tag: "latest".into(),
            base: "quay.io/devfile/devfile-index-base:next".into(),
        }),
        deploy: Some(LockedDeploy {
            config: airgap::manifest::DeployConfig {
                name: "devfile-registry".into(),
                namespace: "devfile-registry".into(),
                headless: false,
                operator: false,
                storage: Some("1Gi".into()),
                expose: Some(airgap::manifest::Expose::Ingress {
                    host: "registry.apps.internal".into(),
                    class: Some("nginx".into()),
                }),
            },
            images: [("oci-registry".to_string(), "quay.io/a/b:1".to_string())].into(),
        }),
        ..Default::default()
    };
    lock.sources.insert(
        "a".into(),
        LockedSource::Git {
            url: "https://x/y".into(),
            rev: Some("main".into()),
            commit: "c".repeat(40),
        },
    );
    lock.sources.insert(
        "b".into(),
        LockedSource::Path {
            path: "registry".into(),
        },
    );
    lock.stacks.insert(
        ("a".into(), "go/1.0.0".into()),
        LockedStack {
            devfile: "h".into(),
            files: [("docker/Dockerfile".to_string(), "h".to_string())].into(),
            uses: Uses {
                images: ["quay.io/a/b:1".to_string()].into(),
                icons: ["https://x/i.svg".to_string()].into(),
                parents: ["https://x/p.yaml".to_string()].into(),
                files: ["https://x/Dockerfile".to_string()].into(),
            },
            stack_yaml: Some("h".into()),
        },
    );
    lock.extra_entries.insert("a".into(), "h".into());
    lock.samples.insert(
        ("a".into(), "s/1.0.0".into()),
        LockedSample {
            remote: "https://x/s".into(),
            revision: Some("main".into()),
            commit: "c".into(),
            sub_dir: Some("d".into()),
            devfile: "h".into(),
            uses: Uses {
                images: ["quay.io/a/b:1".to_string()].into(),
                icons: ["https://x/i.svg".to_string()].into(),
                parents: ["https://x/p.yaml".to_string()].into(),
                files: ["https://x/Dockerfile".to_string()].into(),
            },
        },
    );
    lock.projects.insert(
        ProjectKey {
            source: "a".into(),
            owner: "go/1.0.0".into(),
            kind: ProjectKind::Starter,
            name: "g".into(),
        },
        LockedProject::Git {
            remote: "https://x/g".into(),
            revision: Some("v1".into()),
            commit: "c".into(),
            sub_dir: Some("sub".into()),
        },
    );
    lock.projects.insert(
        ProjectKey {
            source: "a".into(),
            owner: "go/1.0.0".into(),
            kind: ProjectKind::Project,
            name: "z".into(),
        },
        LockedProject::Zip {
            url: "https://x/z.zip".into(),
            sha256: "s".into(),
            sub_dir: Some("sub".into()),
        },
    );
    lock.projects.insert(
        ProjectKey {
            source: "a".into(),
            owner: "go/1.0.0".into(),
            kind: ProjectKind::Starter,
            name: "q".into(),
        },
        LockedProject::Zip {
            url: "https://x/q.zip".into(),
            sha256: "s".into(),
            sub_dir: None,
        },
    );
    lock.projects.insert(
        ProjectKey {
            source: "a".into(),
            owner: "go/1.0.0".into(),
            kind: ProjectKind::Project,
            name: "p".into(),
        },
        LockedProject::Git {
            remote: "https://x/p".into(),
            revision: Some("dev".into()),
            commit: "c".into(),
            sub_dir: None,
        },
    );
    lock.downloads.insert(
        "https://x/i.svg".into(),
        LockedDownload {
            kinds: [DownloadKind::Icon].into(),
            sha256: "s".into(),
            size: 3,
        },
    );
    lock.images.insert(
        "quay.io/a/b:1".into(),
        LockedImage {
            written: ["quay.io/a/b:1".to_string()].into(),
            target: "registry.internal:5000/devfiles/b:1".into(),
            resolved: Some(ResolvedDigest {
                digest: "sha256:x".into(),
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                size: 1,
                platforms: [(
                    "linux/amd64".to_string(),
                    PlatformDigest {
                        digest: "sha256:y".into(),
                        media_type: "m".into(),
                        size: 2,
                    },
                )]
                .into(),
                filtered: Some(FilteredDigest {
                    platforms: vec!["linux/amd64".into()],
                    digest: "sha256:z".into(),
                    media_type: "application/vnd.oci.image.index.v1+json".into(),
                    size: 3,
                }),
                config_platform: None,
            }),
        },
    );
    lock.images.insert(
        "quay.io/a/c:1".into(),
        LockedImage {
            written: ["quay.io/a/c:1".to_string()].into(),
            target: "registry.internal:5000/devfiles/c:1".into(),
            resolved: Some(ResolvedDigest {
                digest: "sha256:w".into(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 1,
                platforms: BTreeMap::new(),
                filtered: None,
                config_platform: Some("linux/amd64".into()),
            }),
        },
    );
    lock.platforms = vec!["linux/amd64".into()];
    let text = write(&lock);
    let doc: KdlDocument = text.parse().unwrap();
    let mut errors = Vec::new();
    validate(doc.nodes(), &schema, "", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}\n{text}");
    // Every node and property the schema declares is written by some entry.
    fn declared(schema: &BTreeMap<String, SchemaNode>, at: &str, out: &mut BTreeSet<String>) {
        for (name, n) in schema {
            out.insert(format!("{at}{name}"));
            for p in n.props.keys() {
                out.insert(format!("{at}{name}.{p}"));
            }
            declared(&n.children, &format!("{at}{name}/"), out);
        }
    }
    let mut want = BTreeSet::new();
    declared(&schema, "", &mut want);
    let mut used = BTreeSet::new();
    used_paths(doc.nodes(), "", &mut used);
    let stale: Vec<_> = want.difference(&used).collect();
    assert!(
        stale.is_empty(),
        "declared in the schema but never written: {stale:?}"
    );
    // And it reads back.
    assert_eq!(read("airgap.lock", &text).unwrap(), lock);
}
