//! The manifest's shape in one table: which nodes exist where and which properties each
//! takes (with their allowed values). The parser checks unknown nodes and properties against
//! it, and a test checks that `schema/airgap.kdl.schema` describes exactly this table, so the
//! published schema cannot drift from what the parser accepts.

use super::{Naming, TlsMode};

#[derive(Debug)]
pub struct NodeSpec {
    pub name: &'static str,
    pub props: &'static [PropSpec],
    pub children: &'static [NodeSpec],
}

#[derive(Debug)]
pub struct PropSpec {
    pub name: &'static str,
    /// The allowed values; empty for any string.
    pub values: &'static [&'static str],
}

const fn prop(name: &'static str) -> PropSpec {
    PropSpec { name, values: &[] }
}

const fn choice(name: &'static str, values: &'static [&'static str]) -> PropSpec {
    PropSpec { name, values }
}

const fn leaf(name: &'static str, props: &'static [PropSpec]) -> NodeSpec {
    NodeSpec {
        name,
        props,
        children: &[],
    }
}

/// The top-level nodes of `airgap.kdl`.
pub const MANIFEST: &[NodeSpec] = &[
    leaf(
        "target",
        &[
            choice("tls", &TlsMode::NAMES),
            prop("ca-file"),
            prop("address"),
        ],
    ),
    NodeSpec {
        name: "source",
        props: &[prop("git"), prop("ref"), prop("path")],
        children: &[leaf("stacks", &[]), leaf("samples", &[])],
    },
    leaf(
        "registry-mirror",
        &[prop("to"), choice("tls", &TlsMode::NAMES), prop("ca-file")],
    ),
    leaf("url-mirror", &[prop("to")]),
    NodeSpec {
        name: "images",
        props: &[choice("naming", &Naming::NAMES)],
        children: &[leaf("platforms", &[]), leaf("include", &[])],
    },
    leaf("index-image", &[prop("tag"), prop("base")]),
    NodeSpec {
        name: "deploy",
        props: &[prop("namespace"), prop("name")],
        children: &[
            leaf("ingress", &[prop("host"), prop("class")]),
            leaf("route", &[prop("host")]),
            leaf("storage", &[prop("size")]),
            leaf("headless", &[]),
            leaf("operator", &[]),
            leaf("oci-registry-image", &[]),
            leaf("viewer-image", &[]),
            leaf("operator-image", &[]),
        ],
    },
];

/// The spec of a top-level node, or of a child (`"source/stacks"`).
pub fn node(path: &str) -> &'static NodeSpec {
    let mut list = MANIFEST;
    let mut found: Option<&'static NodeSpec> = None;
    for part in path.split('/') {
        let n = list
            .iter()
            .find(|n| n.name == part)
            .unwrap_or_else(|| panic!("no node `{path}` in the manifest spec"));
        list = n.children;
        found = Some(n);
    }
    found.unwrap_or_else(|| panic!("empty spec path"))
}

pub fn names(nodes: &[NodeSpec]) -> Vec<&'static str> {
    nodes.iter().map(|n| n.name).collect()
}

pub fn prop_names(node: &NodeSpec) -> Vec<&'static str> {
    node.props.iter().map(|p| p.name).collect()
}
