//! The lock's `deploy` node, written after `index-image`:
//!
//! ```kdl
//! deploy "devfile-registry" namespace="devfile-registry" headless=#false operator=#false storage="1Gi" expose="ingress" host="registry.apps.internal" class="nginx" {
//!     image "oci-registry" "quay.io/devfile/oci-registry:next"
//!     image "registry-viewer" "quay.io/devfile/registry-viewer:next"
//! }
//! ```
//!
//! `expose="route"` stands for an OpenShift Route instead of an Ingress. Each `image` names an
//! entry of the `image` section by its key. Kept apart from the other entries' code so the
//! shared reader helpers can change without touching it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use kdl::{KdlNode, KdlValue};

use super::{Reader, prop, q};
use crate::diag;
use crate::lock::LockedDeploy;
use crate::manifest::{DeployConfig, Expose};

pub(super) fn write(out: &mut String, d: &LockedDeploy) {
    let c = &d.config;
    let _ = write!(out, "deploy {}", q(&c.name));
    prop(out, "namespace", &c.namespace);
    let _ = write!(
        out,
        " headless={} operator={}",
        flag(c.headless),
        flag(c.operator)
    );
    if let Some(size) = &c.storage {
        prop(out, "storage", size);
    }
    match &c.expose {
        Some(Expose::Ingress { host, class }) => {
            prop(out, "expose", "ingress");
            prop(out, "host", host);
            if let Some(class) = class {
                prop(out, "class", class);
            }
        }
        Some(Expose::Route { host }) => {
            prop(out, "expose", "route");
            prop(out, "host", host);
        }
        None => {}
    }
    out.push_str(" {\n");
    for (role, image) in &d.images {
        let _ = writeln!(out, "    image {} {}", q(role), q(image));
    }
    out.push_str("}\n");
}

fn flag(b: bool) -> &'static str {
    if b { "#true" } else { "#false" }
}

const PROPS: [&str; 7] = [
    "namespace",
    "headless",
    "operator",
    "storage",
    "expose",
    "host",
    "class",
];

impl Reader {
    pub(super) fn deploy(&mut self, node: &KdlNode) -> Option<LockedDeploy> {
        let props = self.props(node, &PROPS);
        let name = self.args(node, 1)?[0].to_string();
        let namespace = self.string(node, &props, "namespace", true)?;
        let headless = self.flag(node, &props, "headless")?;
        let operator = self.flag(node, &props, "operator")?;
        let storage = self.string(node, &props, "storage", false);
        let expose = match self.string(node, &props, "expose", false).as_deref() {
            None => None,
            Some(kind @ ("ingress" | "route")) => {
                let host = self.string(node, &props, "host", true)?;
                let class = self.string(node, &props, "class", false);
                Some(match kind {
                    "ingress" => Expose::Ingress { host, class },
                    _ => Expose::Route { host },
                })
            }
            Some(other) => {
                self.err(
                    node.span(),
                    format!(
                        "`expose` is `ingress` or `route`, not `{}`",
                        diag::literal(other)
                    ),
                );
                return None;
            }
        };
        let mut images = BTreeMap::new();
        for c in node.children().map(|c| c.nodes()).unwrap_or_default() {
            if c.name().value() != "image" {
                self.err(
                    c.name().span(),
                    format!(
                        "unknown node `{}` in `deploy`",
                        diag::literal(c.name().value())
                    ),
                );
                continue;
            }
            self.props(c, &[]);
            if let Some(a) = self.args(c, 2) {
                images.insert(a[0].to_string(), a[1].to_string());
            }
        }
        Some(LockedDeploy {
            config: DeployConfig {
                name,
                namespace,
                headless,
                operator,
                storage,
                expose,
            },
            images,
        })
    }

    fn flag(
        &mut self,
        node: &KdlNode,
        props: &BTreeMap<String, (KdlValue, miette::SourceSpan)>,
        key: &str,
    ) -> Option<bool> {
        match props.get(key) {
            Some((KdlValue::Bool(b), _)) => Some(*b),
            Some((_, span)) => {
                self.err(*span, format!("`{key}` must be #true or #false"));
                None
            }
            None => {
                self.err(node.span(), format!("`deploy` lacks `{key}`"));
                None
            }
        }
    }
}
