//! Reading a parsed KDL document: the questions the manifest parser ([`crate::manifest`]) and
//! the lockfile reader ([`crate::lock`]) both ask of a node — its positional arguments, its
//! properties, a property's value as a string or a size, its children, the type annotations
//! anywhere in the document, and the spans to point diagnostics at.
//!
//! These helpers answer and never report: the two readers word their diagnostics differently
//! (a manifest is written by a person and gets a `did you mean`; a lockfile is written by
//! airgap and gets "delete it and run `airgap lock`"), so each turns an answer into its own
//! message.

use kdl::{KdlDocument, KdlEntry, KdlIdentifier, KdlNode, KdlValue};
use miette::SourceSpan;

/// A node's positional arguments, in order.
pub fn args(node: &KdlNode) -> Vec<&KdlEntry> {
    node.entries()
        .iter()
        .filter(|e| e.name().is_none())
        .collect()
}

/// A node's properties, in order, each with its key.
pub fn props(node: &KdlNode) -> impl Iterator<Item = (&KdlIdentifier, &KdlEntry)> {
    node.entries()
        .iter()
        .filter_map(|e| e.name().map(|k| (k, e)))
}

/// The property `key` of a node; the last one when it is given twice (as KDL says).
pub fn prop<'a>(node: &'a KdlNode, key: &str) -> Option<&'a KdlEntry> {
    node.entries()
        .iter()
        .rev()
        .find(|e| e.name().map(|n| n.value()) == Some(key))
}

/// Every property given twice on a node: `(key, span of the first, the repeat)`.
pub fn repeated_props(node: &KdlNode) -> Vec<(&str, SourceSpan, &KdlEntry)> {
    let mut seen: std::collections::BTreeMap<&str, SourceSpan> = Default::default();
    let mut out = Vec::new();
    for (k, e) in props(node) {
        if let Some(first) = seen.insert(k.value(), e.span()) {
            out.push((k.value(), first, e));
        }
    }
    out
}

/// A node's children, none when it has no block.
pub fn children(node: &KdlNode) -> &[KdlNode] {
    node.children().map(|c| c.nodes()).unwrap_or_default()
}

/// The span of a node's name and arguments, without its properties' tail or its children
/// (which may be long).
pub fn head_span(node: &KdlNode) -> SourceSpan {
    let name = node.name().span();
    let last = args(node).last().map_or(name, |a| a.span());
    SourceSpan::from(name.offset()..last.offset() + last.len())
}

/// Every type annotation in a document (`(t)node`, `(t)"value"`), depth first, in the order
/// they are written.
pub fn type_annotations(doc: &KdlDocument) -> Vec<&KdlIdentifier> {
    let mut out = Vec::new();
    for node in doc.nodes() {
        out.extend(node.ty());
        out.extend(node.entries().iter().filter_map(|e| e.ty()));
        if let Some(children) = node.children() {
            out.extend(type_annotations(children));
        }
    }
    out
}

/// A value's text when it is a string.
pub fn string(value: &KdlValue) -> Option<&str> {
    match value {
        KdlValue::String(s) => Some(s),
        _ => None,
    }
}

/// Why a value is not a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSize {
    Negative,
    NotInteger,
}

/// A value as a size (a non-negative integer).
pub fn size(value: &KdlValue) -> Result<u64, NotSize> {
    match value {
        KdlValue::Integer(i) => u64::try_from(*i).map_err(|_| NotSize::Negative),
        _ => Err(NotSize::NotInteger),
    }
}

/// What a value is, for messages: "a string", "an integer", ….
pub fn describe_value(v: &KdlValue) -> &'static str {
    match v {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a number",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
    }
}
