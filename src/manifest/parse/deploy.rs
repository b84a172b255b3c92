//! The `deploy` node: the in-cluster deployment `apply` renders (see [`crate::deploy`]).
//!
//! ```kdl
//! deploy namespace="devfile-registry" name="devfile-registry" {
//!     ingress host="devfile-registry.apps.internal" class="nginx"   // or: route host="…"
//!     storage size="1Gi"
//!     headless #true
//!     operator #false
//!     oci-registry-image "quay.io/devfile/oci-registry:next"
//! }
//! ```
//!
//! Kept in its own file so the parser's shared helpers can change without touching it.

use kdl::KdlNode;
use miette::SourceSpan;

use super::Parser;
use crate::diag;
use crate::manifest::{DEPLOY_ROLES, DeployConfig, DeployDecl, Expose, Spanned, spec};

const CODE: &str = "airgap::manifest::invalid-deploy";

impl Parser {
    pub(super) fn deploy(&mut self, node: &KdlNode) -> DeployDecl {
        self.shape(node, &spec::prop_names(spec::node("deploy")), 0, "");
        let namespace = self.dns_label(node, "namespace");
        let name = self.dns_label(node, "name");
        let mut config = DeployConfig {
            name: name.unwrap_or_else(|| "devfile-registry".into()),
            namespace: namespace.unwrap_or_else(|| "devfile-registry".into()),
            headless: false,
            operator: false,
            storage: None,
            expose: None,
        };
        let mut written: Vec<(&'static str, Spanned<String>)> = Vec::new();
        let mut expose_span: Option<SourceSpan> = None;
        let allowed = spec::names(spec::node("deploy").children);
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            let child_name = child.name().value();
            let props: Vec<&str> = spec::node("deploy")
                .children
                .iter()
                .find(|n| n.name == child_name)
                .map(spec::prop_names)
                .unwrap_or_default();
            match child_name {
                "ingress" | "route" => {
                    self.shape(child, &props, 0, "");
                    self.no_children(child);
                    let Some(expose) = self.expose(child) else {
                        continue;
                    };
                    if let Some(first) = expose_span {
                        let line = super::line_of(&self.src, first);
                        self.push(
                            self.diag(
                                CODE,
                                child.name().span(),
                                "a second way in: `deploy` takes one `ingress` or one `route`",
                            )
                            .help(format!("keep one; the first is on line {line}")),
                        );
                    } else {
                        expose_span = Some(child.span());
                        config.expose = Some(expose);
                    }
                }
                "storage" => {
                    self.shape(child, &props, 0, "");
                    self.no_children(child);
                    config.storage = Some(self.quantity(child).unwrap_or_else(|| "1Gi".into()));
                }
                "headless" | "operator" => {
                    let args = self.shape(child, &props, 1, "one boolean: #true or #false");
                    self.no_children(child);
                    let value = match args.first() {
                        Some(a) => self
                            .typed_bool(a, &format!("`{child_name}`"))
                            .unwrap_or(false),
                        None => true,
                    };
                    if child_name == "headless" {
                        config.headless = value;
                    } else {
                        config.operator = value;
                    }
                }
                _ if DEPLOY_ROLES.iter().any(|(_, n, _)| *n == child_name) => {
                    if let Some((role, image)) = self.deploy_image(child, &props) {
                        written.retain(|(r, _)| *r != role);
                        written.push((role, image));
                    }
                }
                other => self.unknown_node(child, other, &allowed, "in `deploy`"),
            }
        }
        let images = DEPLOY_ROLES
            .iter()
            .filter(|(role, _, _)| match *role {
                "registry-viewer" => !config.headless,
                "operator" => config.operator,
                _ => true,
            })
            .map(|(role, _, default)| {
                let image = written
                    .iter()
                    .find(|(r, _)| r == role)
                    .map(|(_, i)| i.clone())
                    .unwrap_or_else(|| Spanned::new(default.to_string(), node.name().span()));
                (*role, image)
            })
            .collect();
        DeployDecl {
            config,
            images,
            span: node.span(),
        }
    }

    /// An `ingress` or `route` child.
    fn expose(&mut self, child: &KdlNode) -> Option<Expose> {
        let host = self.host(child)?;
        Some(if child.name().value() == "ingress" {
            let class = self.prop_string(child, "class").map(|c| c.value);
            Expose::Ingress { host, class }
        } else {
            Expose::Route { host }
        })
    }

    /// An `…-image` child: its role and the image reference.
    fn deploy_image(
        &mut self,
        child: &KdlNode,
        props: &[&str],
    ) -> Option<(&'static str, Spanned<String>)> {
        let args = self.shape(child, props, 1, "one argument: the image reference");
        self.no_children(child);
        let image = self.required_arg(
            child,
            &args,
            "an image reference",
            "oci-registry-image \"quay.io/devfile/oci-registry:next\"",
        )?;
        if let Err(e) = crate::oci::reference::ImageRef::parse(&image.value) {
            self.push(
                self.diag(
                    "airgap::manifest::invalid-image",
                    image.span,
                    format!(
                        "`{}` is not an image reference: {}",
                        diag::literal(&image.value),
                        e.reason
                    ),
                )
                .label("invalid image reference")
                .help("write [registry/]repository[:tag][@sha256:digest]"),
            );
            return None;
        }
        let role = DEPLOY_ROLES
            .iter()
            .find(|(_, n, _)| *n == child.name().value())
            .map(|(r, _, _)| *r)?;
        Some((role, image))
    }

    /// A property that names a Kubernetes object (`namespace`, `name`): a DNS-1123 label.
    fn dns_label(&mut self, node: &KdlNode, key: &str) -> Option<String> {
        let value = self.prop_string(node, key)?;
        if is_dns_label(&value.value) {
            return Some(value.value);
        }
        self.push(
            self.diag(CODE, value.span, format!("`{}` is not a Kubernetes {key}", diag::literal(&value.value)))
                .label("not a DNS-1123 label")
                .help("use up to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"),
        );
        None
    }

    /// The `host` of an `ingress` or `route`: a DNS-1123 subdomain.
    fn host(&mut self, node: &KdlNode) -> Option<String> {
        let Some(host) = self.prop_string(node, "host") else {
            self.push(
                self.diag(
                    CODE,
                    node.name().span(),
                    format!("`{}` needs a `host`", node.name().value()),
                )
                .label("host= missing")
                .help("for example: host=\"devfile-registry.apps.internal\""),
            );
            return None;
        };
        let valid = host.value.len() <= 253 && host.value.split('.').all(is_dns_label);
        if valid {
            return Some(host.value);
        }
        self.push(
            self.diag(CODE, host.span, format!("`{}` is not a host name", diag::literal(&host.value)))
                .label("not a DNS name")
                .help("write a host name without scheme, port or path, e.g. \"devfile-registry.apps.internal\""),
        );
        None
    }

    /// The `size` of `storage`: a Kubernetes quantity such as "1Gi".
    fn quantity(&mut self, node: &KdlNode) -> Option<String> {
        let size = self.prop_string(node, "size")?;
        if is_quantity(&size.value) {
            return Some(size.value);
        }
        self.push(
            self.diag(
                CODE,
                size.span,
                format!("`{}` is not a storage size", diag::literal(&size.value)),
            )
            .label("not a Kubernetes quantity")
            .help("write a number and a unit, e.g. \"1Gi\" or \"500Mi\""),
        );
        None
    }
}

fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_quantity(s: &str) -> bool {
    const UNITS: [&str; 13] = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let frac = parts.next();
    !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
        && UNITS.contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_labels() {
        for ok in ["1Gi", "500Mi", "1.5Gi", "10"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "1GB", "1.Gi", "-1Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
        assert!(is_dns_label("devfile-registry"));
        assert!(!is_dns_label("Devfile"));
        assert!(!is_dns_label("-a"));
    }
}
