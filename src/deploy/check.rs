//! `airgap verify`'s check of `deploy/`: every image it names is one the lock pins, at the
//! digest apply landed at the target, and no URL or image in it names a host outside the air
//! gap. Pure: the caller reads the files, and asks the target whether it holds the images.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

/// One problem found in `deploy/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// An image that is not `name:tag@sha256:…`.
    NotPinned { file: String, image: String },
    /// A pinned image that is not one apply landed for the lock.
    NotLocked { file: String, image: String },
    /// A URL or image naming a host outside the air gap.
    OutsideHost { file: String, host: String },
    /// A file that is not YAML where YAML was expected.
    Unreadable { file: String, reason: String },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPinned { file, image } => {
                write!(f, "{file}: image `{image}` is not pinned by digest")
            }
            Self::NotLocked { file, image } => write!(
                f,
                "{file}: image `{image}` is not an image of airgap.lock as apply landed it at the target"
            ),
            Self::OutsideHost { file, host } => {
                write!(f, "{file}: names `{host}`, a host outside the air gap")
            }
            Self::Unreadable { file, reason } => write!(f, "{file}: {reason}"),
        }
    }
}

/// What `deploy/` was checked against.
pub struct Expected<'a> {
    /// Every pinned reference apply landed for the lock (`host/repo:tag@sha256:…`).
    pub landed: &'a BTreeSet<String>,
    /// Hosts inside the air gap: the target registry's, the registry's own Ingress/Route
    /// host, and in-cluster names.
    pub hosts: &'a BTreeSet<String>,
}

/// Checks `files` (path → bytes); returns the findings and every image named (for the
/// caller's at-the-target check).
pub fn check(
    files: &BTreeMap<String, Vec<u8>>,
    expected: &Expected,
) -> (Vec<Finding>, BTreeSet<String>) {
    let mut findings = Vec::new();
    let mut images = BTreeSet::new();
    for (file, bytes) in files {
        let text = String::from_utf8_lossy(bytes);
        // The strings of a YAML file as its readers see them (escapes undone); other files
        // as they are.
        let mut texts = vec![text.to_string()];
        let mut hosts = BTreeSet::new();
        if file.ends_with(".yaml") {
            match serde_saphyr::from_str::<Value>(&text) {
                Ok(doc) => {
                    texts = strings(&doc);
                    // An image's registry, however it is spelled (`quay.io/…:next` too).
                    collect_images(&doc, &mut |image| {
                        if let Ok(r) = crate::oci::reference::ImageRef::parse(image) {
                            hosts.insert(r.registry().to_ascii_lowercase());
                        }
                    });
                    collect_images(&doc, &mut |image| {
                        images.insert(image.to_string());
                        if !image.contains("@sha256:") {
                            findings.push(Finding::NotPinned {
                                file: file.clone(),
                                image: image.to_string(),
                            });
                        } else if !expected.landed.contains(image) {
                            findings.push(Finding::NotLocked {
                                file: file.clone(),
                                image: image.to_string(),
                            });
                        }
                    })
                }
                Err(e) => findings.push(Finding::Unreadable {
                    file: file.clone(),
                    reason: format!("not YAML: {e}"),
                }),
            }
        }
        hosts.extend(texts.iter().flat_map(|t| hosts_named(t)));
        for host in hosts {
            if !inside(&host, expected.hosts) {
                findings.push(Finding::OutsideHost {
                    file: file.clone(),
                    host,
                });
            }
        }
    }
    findings.dedup();
    (findings, images)
}

/// Calls `f` with every string under a key named `image` (containers, the CR's images).
fn collect_images(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k == "image" => f(s),
                    _ => collect_images(v, f),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_images(i, f)),
        _ => {}
    }
}

/// Every string of a YAML document, keys included.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(strings(v)))
            .collect(),
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// The hosts a text names: of every `scheme://host…` URL, and of every pinned image
/// reference (`host/…@sha256:…`).
fn hosts_named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let words = text.split(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '`' | '"' | '\'' | '(' | ')' | '[' | ']' | '{' | '}' | ',' | '<' | '>' | '\\'
            )
    });
    for word in words {
        let rest = match word.split_once("://") {
            Some((_, rest)) => rest,
            None if word.contains("@sha256:") && word.contains('/') => word,
            None => continue,
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if !host.is_empty() {
            out.insert(host.to_ascii_lowercase());
        }
    }
    out
}

fn inside(host: &str, hosts: &BTreeSet<String>) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
    hosts.contains(host)
        || hosts.contains(name)
        || matches!(name, "localhost" | "127.0.0.1" | "[::1]")
        || name.ends_with(".svc")
        || name.ends_with(".svc.cluster.local")
}
