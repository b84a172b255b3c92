//! KDL document → [`Manifest`], collecting every problem with its span.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;

use super::spec;
use super::*;
use crate::diag::{self, SpanDiagnostic, did_you_mean};
use crate::kdl_read;
use crate::kdl_text::Rejected;
use crate::oci::reference::valid_tag;

mod deploy;

/// Parses the manifest text. `name` is the file name shown in diagnostics; `root` the folder
/// that relative paths are resolved against.
pub fn parse(name: &str, text: &str, root: PathBuf) -> Result<Manifest, Diagnostics> {
    // Diagnostics quote the manifest: never the credentials a URL in it may carry.
    let src = diag::source(name, &crate::userinfo::mask_in_text(text));
    let mut p = Parser {
        src: src.clone(),
        errors: Vec::new(),
        credentials: Vec::new(),
    };
    let doc = match crate::kdl_text::parse(text) {
        Ok(doc) => doc,
        Err(rejected) => {
            return Err(Diagnostics {
                file: name.to_string(),
                items: vec![unparsed(&src, text, rejected)],
            });
        }
    };
    let manifest = p.document(&doc, root);
    if p.errors.is_empty() {
        Ok(manifest)
    } else {
        Err(Diagnostics {
            file: name.to_string(),
            items: p.errors,
        })
    }
}

/// The diagnostic for text that did not parse as KDL.
fn unparsed(src: &Source, text: &str, rejected: Rejected) -> SpanDiagnostic {
    let e = match rejected {
        Rejected::Kdl(e) => e,
        Rejected::TooDeep(deep) => {
            return SpanDiagnostic::new(
                src,
                "airgap::manifest::too-deep",
                SourceSpan::from(deep.offset..deep.offset + deep.len),
                deep.message(),
            )
            .label(deep.label())
            .help("a manifest nests two levels deep (`source \"…\" { stacks … }`): close the blocks, parentheses or comments left open");
        }
        Rejected::Thread(e) => {
            return SpanDiagnostic::new(
                src,
                "airgap::manifest::syntax",
                SourceSpan::from(0..0),
                format!("cannot start the KDL parser: {e}"),
            );
        }
    };
    // The parser may report one mistake several times (an unclosed block is also a missing
    // closing brace at the end): the first is the one to fix.
    let Some(d) = e.diagnostics.first() else {
        return SpanDiagnostic::new(
            src,
            "airgap::manifest::syntax",
            SourceSpan::from(0..0),
            "KDL syntax error",
        );
    };
    let message = d.message.clone().unwrap_or_else(|| "invalid KDL".into());
    let start = d.span.offset().min(text.len());
    let end = (start + d.span.len()).min(text.len());
    let token = text.get(start..end).unwrap_or("");
    let help = match token {
        "true" | "false" | "null" => Some(format!("KDL 2 writes keywords with a `#`: `#{token}`")),
        _ => d.help.clone(),
    };
    SpanDiagnostic::new(
        src,
        "airgap::manifest::syntax",
        d.span,
        format!("KDL syntax error: {message}"),
    )
    .label(d.label.clone().unwrap_or_else(|| "here".into()))
    .maybe_help(help)
}

struct Parser {
    src: Source,
    errors: Vec<SpanDiagnostic>,
    /// Credentials taken out of URLs, by the URL (or prefix) without them.
    credentials: Vec<(String, crate::userinfo::UrlCredential)>,
}

/// What a node's value must be, for messages.
#[derive(Clone, Copy)]
enum Kind {
    String,
    Bool,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Bool => "a boolean (#true or #false)",
        }
    }

    /// The label and the `help:` line of a value that is not of this kind.
    fn label_and_help(self) -> (&'static str, &'static str) {
        match self {
            Kind::String => ("expected a string", "quote it: \"…\""),
            Kind::Bool => ("expected #true or #false", "write #true or #false"),
        }
    }
}

impl Parser {
    fn push(&mut self, d: SpanDiagnostic) {
        self.errors.push(d);
    }

    fn diag(
        &self,
        code: &'static str,
        span: SourceSpan,
        message: impl Into<String>,
    ) -> SpanDiagnostic {
        SpanDiagnostic::new(&self.src, code, span, message)
    }

    /// Reports every type annotation (`(u8)"dir:out"`, `(t)source …`) in `doc`: nothing in the
    /// manifest has one, and ignoring one would accept a manifest that means something else.
    fn type_annotations(&mut self, doc: &KdlDocument) {
        for ty in kdl_read::type_annotations(doc) {
            self.push(
                self.diag(
                    "airgap::manifest::type-annotation",
                    ty.span(),
                    format!(
                        "type annotation `({})` in the manifest",
                        diag::literal(ty.value())
                    ),
                )
                .label("type annotation")
                .help("remove it: airgap.kdl uses no type annotations"),
            );
        }
    }

    fn document(&mut self, doc: &KdlDocument, root: PathBuf) -> Manifest {
        self.type_annotations(doc);
        let mut target: Option<(Target, SourceSpan)> = None;
        let mut sources: Vec<SourceDecl> = Vec::new();
        let mut registry_mirrors = Vec::new();
        let mut url_mirrors = Vec::new();
        let mut images: Option<(ImagesDecl, SourceSpan)> = None;
        let mut index_image: Option<(IndexImageDecl, SourceSpan)> = None;
        let mut deploy: Option<(DeployDecl, SourceSpan)> = None;
        let keep_one = |line| format!("keep one; the first is on line {line}");

        for node in doc.nodes() {
            let name = node.name().value();
            match name {
                "target" => {
                    if let Some(t) = self.target(node) {
                        let second = |line| {
                            format!("a manifest has one target; the first is on line {line}")
                        };
                        self.once(&mut target, node, t, second, Some("second target"));
                    }
                }
                "source" => {
                    if let Some(s) = self.source(node) {
                        self.add_source(&mut sources, s);
                    }
                }
                "registry-mirror" => registry_mirrors.extend(self.registry_mirror(node)),
                "url-mirror" => url_mirrors.extend(self.url_mirror(node, &root)),
                "images" => {
                    let decl = self.images(node);
                    let merge = |line| format!("merge it into the `images` node on line {line}");
                    self.once(&mut images, node, decl, merge, None);
                }
                "index-image" => {
                    if let Some(decl) = self.index_image(node) {
                        self.once(&mut index_image, node, decl, keep_one, None);
                    }
                }
                "deploy" => {
                    let decl = self.deploy(node);
                    self.once(&mut deploy, node, decl, keep_one, None);
                }
                other => self.unknown_node(
                    node,
                    other,
                    &spec::names(spec::MANIFEST),
                    "at the top level",
                ),
            }
        }

        if sources.is_empty() && self.errors.is_empty() {
            self.push(
                self.diag(
                    "airgap::manifest::no-source",
                    SourceSpan::from(0..0),
                    "the manifest has no `source`",
                )
                .help(r#"add one, e.g. `source "community" git="https://github.com/devfile/registry" ref="main"`"#),
            );
        }
        Manifest {
            root,
            src: self.src.clone(),
            target: target.map(|(t, _)| t).unwrap_or_else(default_target),
            sources,
            registry_mirrors,
            url_mirrors,
            images: images.map(|(i, _)| i).unwrap_or_else(default_images),
            index_image: index_image
                .map(|(i, _)| i)
                .unwrap_or_else(default_index_image),
            deploy: deploy.map(|(d, _)| d),
            url_credentials: crate::userinfo::UrlCredentials::new(std::mem::take(
                &mut self.credentials,
            )),
        }
    }

    /// Keeps `value` of a node the manifest has at most once in `slot`; a second one is an
    /// error whose help `second` words from the first one's line.
    fn once<T>(
        &mut self,
        slot: &mut Option<(T, SourceSpan)>,
        node: &KdlNode,
        value: T,
        second: impl FnOnce(usize) -> String,
        label: Option<&str>,
    ) {
        match slot {
            Some((_, first)) => {
                let d = self.second_node(node, *first, second);
                self.push(match label {
                    Some(l) => d.label(l),
                    None => d,
                });
            }
            None => *slot = Some((value, node.span())),
        }
    }

    /// Adds a source, unless one of `sources` has its name.
    fn add_source(&mut self, sources: &mut Vec<SourceDecl>, s: SourceDecl) {
        if let Some(first) = sources.iter().find(|o| o.name.value == s.name.value) {
            let first_line = line_of(&self.src, first.name.span);
            self.push(
                self.diag(
                    "airgap::manifest::duplicate-source",
                    s.name.span,
                    format!("two sources are named `{}`", diag::literal(&s.name.value)),
                )
                .label("second source with this name")
                .help(format!(
                    "source names must be unique; the first `{}` is on line {first_line}",
                    diag::literal(&s.name.value)
                )),
            );
        } else {
            sources.push(s);
        }
    }

    /// A URL of the manifest without its credentials, which are kept aside in memory for
    /// fetching (see [`crate::userinfo`]).
    fn without_credentials(&mut self, mut url: Spanned<String>) -> Spanned<String> {
        let (clean, credential) = crate::userinfo::split(&url.value);
        if let Some(c) = credential {
            self.credentials.push((clean.clone(), c));
        }
        url.value = clean;
        url
    }

    /// A second top-level `node` where one is allowed; `first` is the span of the first.
    fn second_node(
        &self,
        node: &KdlNode,
        first: SourceSpan,
        help: impl FnOnce(usize) -> String,
    ) -> SpanDiagnostic {
        self.diag(
            "airgap::manifest::duplicate-node",
            node.name().span(),
            format!("a second `{}` node", diag::literal(node.name().value())),
        )
        .help(help(line_of(&self.src, first)))
    }

    fn unknown_node(&mut self, node: &KdlNode, name: &str, allowed: &[&str], place: &str) {
        let shown = diag::literal(name);
        let help = match did_you_mean(name, allowed.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("known nodes {place}: {}", quoted_list(allowed)),
        };
        self.push(
            self.diag(
                "airgap::manifest::unknown-node",
                node.name().span(),
                format!("unknown node `{shown}` {place}"),
            )
            .label("not a known node")
            .help(help),
        );
    }

    /// Checks that every property is one of `allowed`, that none is given twice, and that
    /// arguments are within `max_args`. Reports and returns the positional arguments.
    fn shape<'a>(
        &mut self,
        node: &'a KdlNode,
        allowed: &[&str],
        max_args: usize,
        arg_desc: &str,
    ) -> Vec<&'a KdlEntry> {
        let node_name = diag::literal(node.name().value());
        let mut seen: BTreeMap<&str, SourceSpan> = BTreeMap::new();
        for (key, entry) in kdl_read::props(node) {
            let k = key.value();
            if !allowed.contains(&k) {
                let help = match did_you_mean(k, allowed.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if allowed.is_empty() => {
                        format!("`{node_name}` takes no properties")
                    }
                    None => format!(
                        "`{node_name}` takes the properties {}",
                        quoted_list(allowed)
                    ),
                };
                self.push(
                    self.diag(
                        "airgap::manifest::unknown-property",
                        key.span(),
                        format!("unknown property `{}` on `{node_name}`", diag::literal(k)),
                    )
                    .label("not a known property")
                    .help(help),
                );
            } else if let Some(first) = seen.insert(k, entry.span()) {
                let line = line_of(&self.src, first);
                self.push(
                    self.diag(
                        "airgap::manifest::duplicate-property",
                        entry.span(),
                        format!("property `{k}` given twice on `{node_name}`"),
                    )
                    .help(format!("keep one; the first is on line {line}")),
                );
            }
        }
        let mut args = kdl_read::args(node);
        if args.len() > max_args {
            let extra = args[max_args];
            let help = if max_args == 0 {
                format!("`{node_name}` takes no arguments")
            } else {
                format!("`{node_name}` takes {arg_desc}")
            };
            self.push(
                self.diag(
                    "airgap::manifest::extra-argument",
                    extra.span(),
                    format!("unexpected argument on `{node_name}`"),
                )
                .label("extra argument")
                .help(help),
            );
            args.truncate(max_args);
        }
        args
    }

    fn no_children(&mut self, node: &KdlNode) {
        if let Some(children) = node.children() {
            let name = diag::literal(node.name().value());
            self.push(
                self.diag(
                    "airgap::manifest::unexpected-children",
                    children.span(),
                    format!("`{name}` takes no children block"),
                )
                .help("remove the `{ … }` block"),
            );
        }
    }

    fn typed_string(&mut self, entry: &KdlEntry, what: &str) -> Option<Spanned<String>> {
        match entry.value() {
            KdlValue::String(s) => {
                if let Some(c) = s.chars().find(|c| c.is_control()) {
                    self.push(
                        self.diag(
                            "airgap::manifest::control-character",
                            entry.span(),
                            format!(
                                "{what} contains the control character U+{:04X}",
                                u32::from(c)
                            ),
                        )
                        .label("control character in here")
                        .help("remove it: names, paths, URLs and references are written without control characters (a newline, a tab, …)"),
                    );
                    return None;
                }
                Some(Spanned::new(s.clone(), entry.span()))
            }
            _ => {
                self.wrong_type(entry, what, Kind::String, "");
                None
            }
        }
    }

    fn typed_bool(&mut self, entry: &KdlEntry, what: &str) -> Option<bool> {
        match entry.value() {
            KdlValue::Bool(b) => Some(*b),
            other => {
                let hint = match other.as_string() {
                    Some("true") | Some("yes") => " (KDL 2 writes booleans as #true)",
                    Some("false") | Some("no") => " (KDL 2 writes booleans as #false)",
                    _ => "",
                };
                self.wrong_type(entry, what, Kind::Bool, hint);
                None
            }
        }
    }

    /// `entry`'s value is not of `kind`; `hint` is appended to the message.
    fn wrong_type(&mut self, entry: &KdlEntry, what: &str, kind: Kind, hint: &str) {
        let (label, help) = kind.label_and_help();
        self.push(
            self.diag(
                "airgap::manifest::wrong-type",
                entry.span(),
                format!(
                    "{what} must be {}, found {}{hint}",
                    kind.describe(),
                    kdl_read::describe_value(entry.value())
                ),
            )
            .label(label)
            .help(help),
        );
    }

    fn prop_string(&mut self, node: &KdlNode, key: &str) -> Option<Spanned<String>> {
        let entry = kdl_read::prop(node, key)?;
        self.typed_string(entry, &format!("`{key}`"))
    }

    /// The required single string argument of a node.
    fn required_arg(
        &mut self,
        node: &KdlNode,
        args: &[&KdlEntry],
        what: &str,
        example: &str,
    ) -> Option<Spanned<String>> {
        match args.first() {
            Some(e) => self.typed_string(e, what),
            None => {
                let name = diag::literal(node.name().value());
                self.push(
                    self.diag(
                        "airgap::manifest::missing-value",
                        node.name().span(),
                        format!("`{name}` needs {what}"),
                    )
                    .label(format!("{what} missing"))
                    .help(format!("for example: {example}")),
                );
                None
            }
        }
    }

    fn tls(&mut self, node: &KdlNode) -> TlsMode {
        match self.prop_string(node, "tls") {
            None => TlsMode::Verify,
            Some(s) => TlsMode::parse(&s.value).unwrap_or_else(|| {
                self.unknown_choice(
                    "airgap::manifest::unknown-tls",
                    &s,
                    "tls mode",
                    &TlsMode::NAMES,
                );
                TlsMode::Verify
            }),
        }
    }

    /// `word` is not one of `names`, the values a property takes (`what`: "tls mode").
    fn unknown_choice(
        &mut self,
        code: &'static str,
        word: &Spanned<String>,
        what: &str,
        names: &[&str],
    ) {
        let help = match did_you_mean(&word.value, names.iter().copied()) {
            Some(m) => format!("did you mean `{m}`?"),
            None => format!("use one of {}", quoted_list(names)),
        };
        self.push(
            self.diag(
                code,
                word.span,
                format!("unknown {what} `{}`", diag::literal(&word.value)),
            )
            .label(format!("not a {what}"))
            .help(help),
        );
    }

    /// Reports `tls` and `ca-file` on `node`, which names a `dir:` folder; they apply to
    /// `applies_to` instead.
    fn no_tls_for_dir(&mut self, node: &KdlNode, applies_to: &str) {
        for key in ["tls", "ca-file"] {
            if let Some(e) = kdl_read::prop(node, key) {
                self.push(
                    self.diag(
                        "airgap::manifest::property-not-for-dir",
                        e.span(),
                        format!("`{key}` applies to {applies_to}"),
                    )
                    .help("remove it"),
                );
            }
        }
    }

    /// A mirror rule (`node`) for `from` without its `to` property.
    fn missing_to(&mut self, node: &KdlNode, from: &Spanned<String>, help: &str) {
        self.push(
            self.diag(
                "airgap::manifest::mirror-rule",
                node.name().span(),
                format!(
                    "`{}` for `{}` has no `to`",
                    node.name().value(),
                    diag::literal(&from.value)
                ),
            )
            .label("missing to=")
            .help(help),
        );
    }

    fn ca_file(&mut self, node: &KdlNode, tls: TlsMode) -> Option<PathBuf> {
        let ca = self.prop_string(node, "ca-file")?;
        if tls != TlsMode::Verify {
            self.push(
                self.diag(
                    "airgap::manifest::ca-file-unused",
                    ca.span,
                    format!(
                        "`ca-file` is only used with tls=\"verify\", not \"{}\"",
                        tls.as_str()
                    ),
                )
                .help("remove `ca-file`, or set tls=\"verify\""),
            );
        }
        Some(PathBuf::from(ca.value))
    }

    fn target(&mut self, node: &KdlNode) -> Option<Target> {
        let args = self.shape(
            node,
            &spec::prop_names(spec::node("target")),
            1,
            "one argument: the registry prefix or `dir:PATH`",
        );
        self.no_children(node);
        let value = self.required_arg(
            node,
            &args,
            "a registry prefix or `dir:PATH`",
            r#"target "registry.internal:5000/devfiles" or target "dir:airgap-out""#,
        )?;
        if let Some(path) = value.value.strip_prefix("dir:") {
            self.no_tls_for_dir(node, "registry targets, not to a `dir:` target");
            if path.is_empty() {
                self.push(
                    self.diag(
                        "airgap::manifest::invalid-target",
                        value.span,
                        "`dir:` needs a folder",
                    )
                    .help(r#"for example: target "dir:airgap-out""#),
                );
                return None;
            }
            let address = match self.prop_string(node, "address") {
                Some(a) => {
                    if let Err(why) = check_registry_prefix(&a.value) {
                        self.push(
                            self.diag(
                                "airgap::manifest::invalid-target",
                                a.span,
                                format!(
                                    "`address` `{}` is not a registry address: {why}",
                                    diag::literal(&a.value)
                                ),
                            )
                            .help(r#"for example: address="localhost:8080""#),
                        );
                    }
                    a.value
                }
                None => DEFAULT_DIR_ADDRESS.to_string(),
            };
            return Some(Target {
                kind: TargetKind::Dir {
                    path: PathBuf::from(path),
                    address,
                },
                span: Some(node.span()),
            });
        }
        if let Some(e) = kdl_read::prop(node, "address") {
            self.push(
                self.diag(
                    "airgap::manifest::property-not-for-registry",
                    e.span(),
                    "`address` applies to `dir:` targets only",
                )
                .help("a registry target's address is its prefix: remove `address`"),
            );
        }
        let prefix = value.value.trim_end_matches('/').to_string();
        if let Err(why) = check_registry_prefix(&prefix) {
            self.push(
                self.diag(
                    "airgap::manifest::invalid-target",
                    value.span,
                    format!(
                        "`{}` is not a registry prefix: {why}",
                        diag::literal(&value.value)
                    ),
                )
                .label("expected host[:port][/path] or dir:PATH")
                .help(r#"for example: target "registry.internal:5000/devfiles""#),
            );
            return None;
        }
        let tls = self.tls(node);
        let ca_file = self.ca_file(node, tls);
        Some(Target {
            kind: TargetKind::Registry {
                prefix,
                tls,
                ca_file,
            },
            span: Some(node.span()),
        })
    }

    fn source(&mut self, node: &KdlNode) -> Option<SourceDecl> {
        let args = self.shape(
            node,
            &spec::prop_names(spec::node("source")),
            1,
            "one argument: the source's name",
        );
        let name = self.required_arg(
            node,
            &args,
            "a name",
            r#"source "community" git="https://github.com/devfile/registry" ref="main""#,
        )?;
        if !is_name(&name.value) {
            self.push(
                self.diag(
                    "airgap::manifest::invalid-name",
                    name.span,
                    format!(
                        "source name `{}` is not a simple name",
                        diag::literal(&name.value)
                    ),
                )
                .help("use letters, digits, `-`, `_` and `.`, starting with a letter or digit"),
            );
        }
        let origin = self.source_origin(node, &name)?;
        let (stacks, samples) = self.source_children(node);
        Some(SourceDecl {
            name,
            origin,
            stacks,
            samples,
            span: node.span(),
        })
    }

    /// Where a source is read from: `git` (and `ref`) or `path`, exactly one of them.
    fn source_origin(&mut self, node: &KdlNode, name: &Spanned<String>) -> Option<Origin> {
        let git = self
            .prop_string(node, "git")
            .map(|g| self.without_credentials(g));
        let rev = self.prop_string(node, "ref");
        let path = self.prop_string(node, "path");
        let origin = match (git, path) {
            (Some(git), None) => {
                if let Err(why) = check_git_url(&git.value) {
                    self.push(
                        self.diag(
                            "airgap::manifest::invalid-url",
                            git.span,
                            format!(
                                "`git` `{}` is not a git URL: {why}",
                                diag::literal(&git.value)
                            ),
                        )
                        .label("expected a URL")
                        .help(r#"for example: git="https://github.com/devfile/registry""#),
                    );
                }
                if let Some(r) = &rev
                    && r.value.trim().is_empty()
                {
                    self.push(
                        self.diag("airgap::manifest::invalid-ref", r.span, "`ref` is empty")
                            .help("name a branch, a tag or a full commit, or remove `ref` for the default branch"),
                    );
                }
                Origin::Git {
                    url: git.value,
                    rev: rev.map(|r| r.value),
                }
            }
            (None, Some(path)) => {
                if let Some(r) = &rev {
                    self.push(
                        self.diag(
                            "airgap::manifest::ref-without-git",
                            r.span,
                            "`ref` only applies to a `git` source",
                        )
                        .help("remove `ref`: a `path` source is read as it is on disk"),
                    );
                }
                Origin::Path(PathBuf::from(path.value))
            }
            (Some(git), Some(path)) => {
                self.push(
                    self.diag(
                        "airgap::manifest::source-origin",
                        node.span(),
                        format!("source `{}` has both `git` and `path`", diag::literal(&name.value)),
                    )
                    .label("git and path")
                    .help(format!(
                        "keep one: git=\"{}\" fetches a repository, path=\"{}\" reads a local folder",
                        diag::literal(&git.value), diag::literal(&path.value)
                    )),
                );
                return None;
            }
            (None, None) => {
                self.push(
                    self.diag(
                        "airgap::manifest::source-origin",
                        node.name().span(),
                        format!("source `{}` has neither `git` nor `path`", diag::literal(&name.value)),
                    )
                    .label("where is it?")
                    .help(r#"add git="https://…" ref="main" for a repository, or path="./registry" for a local folder"#),
                );
                return None;
            }
        };
        Some(origin)
    }

    /// A source's `stacks` filter (`None`: every stack) and whether it takes samples.
    fn source_children(&mut self, node: &KdlNode) -> (Option<Vec<Spanned<String>>>, bool) {
        let mut stacks: Option<Vec<Spanned<String>>> = None;
        let mut samples = true;
        for child in kdl_read::children(node) {
            match child.name().value() {
                "stacks" => self.stacks_filter(child, stacks.get_or_insert_with(Vec::new)),
                "samples" => {
                    let args = self.shape(child, &[], 1, "one argument: #true or #false");
                    self.no_children(child);
                    match args.first() {
                        Some(a) => {
                            if let Some(b) = self.typed_bool(a, "`samples`") {
                                samples = b;
                            }
                        }
                        None => samples = true,
                    }
                }
                other => self.unknown_node(
                    child,
                    other,
                    &spec::names(spec::node("source").children),
                    "in `source`",
                ),
            }
        }
        (stacks, samples)
    }

    /// A source's `stacks` child: its names, added to `list`.
    fn stacks_filter(&mut self, child: &KdlNode, list: &mut Vec<Spanned<String>>) {
        let args = self.shape(child, &[], usize::MAX, "stack names");
        self.no_children(child);
        if args.is_empty() {
            self.push(
                self.diag(
                    "airgap::manifest::missing-value",
                    child.name().span(),
                    "`stacks` names no stack",
                )
                .help("list stack names, e.g. stacks \"nodejs\" \"go\"; remove the node to take every stack"),
            );
        }
        for a in args {
            if let Some(s) = self.typed_string(a, "a stack name") {
                if list.iter().any(|o| o.value == s.value) {
                    self.push(
                        self.diag(
                            "airgap::manifest::duplicate-stack",
                            s.span,
                            format!("stack `{}` is listed twice", diag::literal(&s.value)),
                        )
                        .help("remove one"),
                    );
                } else {
                    list.push(s);
                }
            }
        }
    }

    fn registry_mirror(&mut self, node: &KdlNode) -> Option<RegistryMirror> {
        let args = self.shape(
            node,
            &spec::prop_names(spec::node("registry-mirror")),
            1,
            "one argument: the upstream host",
        );
        self.no_children(node);
        let from = self.required_arg(
            node,
            &args,
            "the upstream registry host",
            r#"registry-mirror "quay.io" to="mirror.internal:5000/quay""#,
        )?;
        let to = self.prop_string(node, "to");
        let layout = to.as_ref().is_some_and(|t| t.value.starts_with("dir:"));
        let (tls, ca_file) = if layout {
            (TlsMode::Verify, None)
        } else {
            let tls = self.tls(node);
            (tls, self.ca_file(node, tls))
        };
        let Some(to) = to else {
            self.missing_to(
                node,
                &from,
                r#"add to="HOST[:PORT][/PATH]", the registry to pull from instead, or to="dir:./images", an OCI image layout"#,
            );
            return None;
        };
        let from_value = from.value.trim_end_matches('/').to_string();
        if let Err(why) = check_registry_prefix(&from_value) {
            self.push(
                self.diag(
                    "airgap::manifest::mirror-rule",
                    from.span,
                    format!("`{}` is not a registry host: {why}", diag::literal(&from.value)),
                )
                .help("write the host (and optional path prefix) without a scheme, e.g. \"registry.access.redhat.com\""),
            );
            return None;
        }
        if let Some(path) = to.value.strip_prefix("dir:") {
            // An OCI image layout: no connection, so nothing to say about TLS.
            self.no_tls_for_dir(
                node,
                "a mirror registry, not to a `dir:` mirror (an OCI image layout)",
            );
            if path.is_empty() {
                self.push(
                    self.diag(
                        "airgap::manifest::mirror-rule",
                        to.span,
                        "`dir:` needs a folder",
                    )
                    .help(r#"for example: to="dir:./mirror/images", an OCI image layout next to airgap.kdl"#),
                );
                return None;
            }
            return Some(RegistryMirror {
                from: from_value,
                to: MirrorTo::Layout(PathBuf::from(path)),
                span: node.span(),
            });
        }
        let to_value = to.value.trim_end_matches('/').to_string();
        if let Err(why) = check_registry_prefix(&to_value) {
            self.push(
                self.diag(
                    "airgap::manifest::mirror-rule",
                    to.span,
                    format!("`to` `{}` is not a registry address: {why}", diag::literal(&to.value)),
                )
                .help("write HOST[:PORT][/PATH] without a scheme (choose http with tls=\"plain-http\"), or dir:PATH for an OCI image layout"),
            );
            return None;
        }
        Some(RegistryMirror {
            from: from_value,
            to: MirrorTo::Registry {
                to: to_value,
                tls,
                ca_file,
            },
            span: node.span(),
        })
    }

    fn url_mirror(&mut self, node: &KdlNode, root: &std::path::Path) -> Option<UrlMirror> {
        let args = self.shape(
            node,
            &spec::prop_names(spec::node("url-mirror")),
            1,
            "one argument: the URL prefix to replace",
        );
        self.no_children(node);
        let from = self.required_arg(
            node,
            &args,
            "the URL prefix to replace",
            r#"url-mirror "https://github.com/" to="file:///srv/git/github.com/""#,
        )?;
        let from = self.without_credentials(from);
        let Some(to) = self
            .prop_string(node, "to")
            .map(|t| self.without_credentials(t))
        else {
            self.missing_to(
                node,
                &from,
                r#"add to="URL", the prefix to fetch from instead"#,
            );
            return None;
        };
        let mut ok = true;
        // `to` may also be a local folder, relative to the manifest: "./mirror/github.com/".
        let local =
            to.value.starts_with("./") || to.value.starts_with("../") || to.value.starts_with('/');
        for (v, which) in [(&from, "the prefix"), (&to, "`to`")] {
            if local && std::ptr::eq(v, &to) {
                continue;
            }
            if let Err(why) = check_url_prefix(&v.value) {
                ok = false;
                self.push(
                    self.diag(
                        "airgap::manifest::mirror-rule",
                        v.span,
                        format!("{which} `{}` is not a URL prefix: {why}", diag::literal(&v.value)),
                    )
                    .help("write a full URL prefix with its scheme, e.g. \"https://github.com/\" or \"file:///srv/git/\", or a folder relative to airgap.kdl, \"./mirror/\""),
                );
            }
        }
        if ok && from.value.ends_with('/') != to.value.ends_with('/') {
            self.push(
                self.diag(
                    "airgap::manifest::mirror-rule",
                    to.span,
                    format!(
                        "`{}` and `{}` disagree on the trailing `/`",
                        diag::literal(&from.value),
                        diag::literal(&to.value)
                    ),
                )
                .help("end both with `/` (or neither), or the rewritten URLs gain or lose a slash"),
            );
            ok = false;
        }
        let to_url = if local {
            let path = std::path::Path::new(&to.value);
            let abs = if path.is_absolute() {
                path.to_path_buf()
            } else {
                root.join(path)
            };
            let mut url = format!("file://{}", abs.display());
            if to.value.ends_with('/') && !url.ends_with('/') {
                url.push('/');
            }
            url
        } else {
            to.value
        };
        ok.then(|| UrlMirror {
            from: from.value,
            to: to_url,
            span: node.span(),
        })
    }

    fn images(&mut self, node: &KdlNode) -> ImagesDecl {
        self.shape(node, &spec::prop_names(spec::node("images")), 0, "");
        let naming = match self.prop_string(node, "naming") {
            None => Naming::Flat,
            Some(s) => Naming::parse(&s.value).unwrap_or_else(|| {
                self.unknown_choice(
                    "airgap::manifest::unknown-naming",
                    &s,
                    "naming mode",
                    &Naming::NAMES,
                );
                Naming::Flat
            }),
        };
        let mut platforms: Vec<Spanned<String>> = Vec::new();
        let mut include: Vec<Spanned<String>> = Vec::new();
        if let Some(children) = node.children() {
            for child in children.nodes() {
                match child.name().value() {
                    "platforms" => {
                        let args = self.shape(child, &[], usize::MAX, "platforms");
                        self.no_children(child);
                        for a in args {
                            let Some(p) = self.typed_string(a, "a platform") else {
                                continue;
                            };
                            if let Err(why) = check_platform(&p.value) {
                                self.push(
                                    self.diag(
                                        "airgap::manifest::invalid-platform",
                                        p.span,
                                        format!("`{}` is not a platform: {why}", diag::literal(&p.value)),
                                    )
                                    .help("write os/arch or os/arch/variant, e.g. \"linux/amd64\" or \"linux/arm64/v8\""),
                                );
                            } else if !platforms.iter().any(|o| o.value == p.value) {
                                platforms.push(p);
                            }
                        }
                    }
                    "include" => {
                        let args = self.shape(child, &[], usize::MAX, "image references");
                        self.no_children(child);
                        for a in args {
                            let Some(r) = self.typed_string(a, "an image reference") else {
                                continue;
                            };
                            match crate::oci::reference::ImageRef::parse(&r.value) {
                                Ok(_) => include.push(r),
                                Err(e) => {
                                    // Point at the bad part inside the quoted literal.
                                    let inner = r.span.offset() + 1;
                                    let span = if e.span.is_empty() {
                                        r.span
                                    } else {
                                        SourceSpan::from(inner + e.span.start..inner + e.span.end)
                                    };
                                    self.push(
                                        self.diag(
                                            "airgap::manifest::invalid-image",
                                            span,
                                            format!("`{}` is not an image reference: {}", diag::literal(&r.value), e.reason),
                                        )
                                        .label("invalid here")
                                        .help(e.help.clone().unwrap_or_else(|| "write [registry/]repository[:tag][@sha256:digest], e.g. \"quay.io/devfile/universal-developer-image:ubi9-latest\"".into())),
                                    )
                                }
                            }
                        }
                    }
                    other => {
                        self.unknown_node(child, other, &["platforms", "include"], "in `images`")
                    }
                }
            }
        }
        ImagesDecl {
            naming,
            platforms,
            include,
        }
    }

    fn index_image(&mut self, node: &KdlNode) -> Option<IndexImageDecl> {
        let args = self.shape(
            node,
            &spec::prop_names(spec::node("index-image")),
            1,
            "one argument: the image name",
        );
        self.no_children(node);
        let name = match args.first() {
            Some(a) => self.typed_string(a, "the image name")?,
            None => Spanned::new("devfile-index".to_string(), node.name().span()),
        };
        if !is_repository_path(&name.value) {
            self.push(
                self.diag(
                    "airgap::manifest::invalid-name",
                    name.span,
                    format!("`{}` is not a repository name", diag::literal(&name.value)),
                )
                .help("use lowercase letters, digits, and `.`, `_`, `-`, `/` between them"),
            );
        }
        let tag = self.prop_string(node, "tag");
        if let Some(t) = &tag
            && !valid_tag(&t.value)
        {
            self.push(
                self.diag(
                    "airgap::manifest::invalid-tag",
                    t.span,
                    format!("`{}` is not an image tag", diag::literal(&t.value)),
                )
                .help("a tag is up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"),
            );
        }
        let base = match self.prop_string(node, "base") {
            Some(b) => {
                if let Err(e) = crate::oci::reference::ImageRef::parse(&b.value) {
                    self.push(
                        self.diag(
                            "airgap::manifest::invalid-image",
                            b.span,
                            format!(
                                "`{}` is not an image reference: {}",
                                diag::literal(&b.value),
                                e.reason
                            ),
                        )
                        .help(format!("the default is \"{DEFAULT_INDEX_BASE}\"")),
                    );
                }
                b
            }
            None => Spanned::new(DEFAULT_INDEX_BASE.to_string(), node.span()),
        };
        Some(IndexImageDecl {
            name: name.value,
            tag: tag.map(|t| t.value).unwrap_or_else(|| "latest".into()),
            base,
        })
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// 1-based line number of a span's start.
pub(crate) fn line_of(src: &Source, span: SourceSpan) -> usize {
    let text: &str = src.inner();
    let end = span.offset().min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_repository_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('/').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                })
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
                && part.ends_with(|c: char| c.is_ascii_alphanumeric())
        })
}

/// `host[:port][/path]`, no scheme.
pub(crate) fn check_registry_prefix(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.contains("://") {
        return Err("it has a scheme; registries are written without one".into());
    }
    let (host, path) = s.split_once('/').unwrap_or((s, ""));
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'))
    {
        return Err(format!("`{}` is not a host name", diag::literal(host)));
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!("`{}` is not a port", diag::literal(port)));
    }
    if !path.is_empty() && !is_repository_path(path) {
        return Err(format!(
            "`{}` is not a repository path (lowercase letters, digits, `.`, `_`, `-`, `/`)",
            diag::literal(path)
        ));
    }
    Ok(())
}

fn scheme_of(s: &str) -> Option<&str> {
    let (scheme, rest) = s.split_once("://")?;
    (!scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty())
    .then_some(scheme)
}

fn check_url_prefix(s: &str) -> Result<(), String> {
    if s.ends_with(':') && !s.contains('/') {
        return Err("it is cut short: unquoted, `//` starts a KDL comment; quote the URL".into());
    }
    if s.chars().any(char::is_whitespace) {
        return Err("it contains white space".into());
    }
    match scheme_of(s) {
        Some("http" | "https" | "file" | "git" | "ssh") => Ok(()),
        Some(other) => Err(format!(
            "the scheme `{}` is not supported",
            diag::literal(other)
        )),
        None => Err("it does not start with a scheme such as https:// or file://".into()),
    }
}

pub(crate) fn check_git_url(s: &str) -> Result<(), String> {
    if s.ends_with(':') && !s.contains('/') {
        return Err("it is cut short: unquoted, `//` starts a KDL comment; quote the URL".into());
    }
    if s.chars().any(char::is_whitespace) {
        return Err("it contains white space".into());
    }
    if scheme_of(s).is_some() {
        return check_url_prefix(s);
    }
    // scp-like syntax: user@host:path
    if let Some((host, path)) = s.split_once(':')
        && host.contains('@')
        && !path.is_empty()
    {
        return Ok(());
    }
    Err("it does not start with a scheme such as https:// or file://".into())
}

fn check_platform(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('/').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err("expected os/arch or os/arch/variant".into());
    }
    for p in &parts {
        if p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "`{}` is not a lowercase platform component",
                diag::literal(p)
            ));
        }
    }
    Ok(())
}

/// The target of a manifest without a `target` node.
fn default_target() -> Target {
    Target {
        kind: TargetKind::Dir {
            path: PathBuf::from("airgap-out"),
            address: DEFAULT_DIR_ADDRESS.to_string(),
        },
        span: None,
    }
}

/// The `images` settings of a manifest without an `images` node.
fn default_images() -> ImagesDecl {
    ImagesDecl {
        naming: Naming::Flat,
        platforms: Vec::new(),
        include: Vec::new(),
    }
}

/// The index image of a manifest without an `index-image` node.
fn default_index_image() -> IndexImageDecl {
    IndexImageDecl {
        name: "devfile-index".into(),
        tag: "latest".into(),
        base: Spanned::new(DEFAULT_INDEX_BASE.into(), SourceSpan::from(0..0)),
    }
}
