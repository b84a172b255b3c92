//! What airgap reads from a devfile: the references that leave the air gap, with the byte
//! spans of their values in the original text, so apply can rewrite them in place.
//!
//! Only the fields that matter are modelled; everything else is ignored (and kept as written by
//! the rewrite). Spans come from serde-saphyr's `Spanned`, which are byte offsets into the text
//! when parsing from a `&str`. A quoted scalar's span includes its quotes.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{path}` is not a devfile airgap can read: {message}")]
#[diagnostic(code(airgap::devfile::parse))]
pub struct DevfileError {
    pub path: String,
    pub message: String,
}

/// A scalar that may be written as a string, a number or a boolean in YAML (a `revision:
/// 1.0`, a `version: 2`); kept as the text the user wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Devfile {
    #[serde(default)]
    pub schema_version: Option<Text>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub variables: Option<BTreeMap<String, Text>>,
    #[serde(default)]
    pub parent: Option<Parent>,
    #[serde(default)]
    pub components: Option<Vec<Component>>,
    #[serde(default)]
    pub starter_projects: Option<Vec<Spanned<Project>>>,
    #[serde(default)]
    pub projects: Option<Vec<Spanned<Project>>>,
    #[serde(default)]
    pub commands: Option<Vec<Command>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default)]
    pub name: Option<Text>,
    #[serde(default)]
    pub version: Option<Text>,
    #[serde(default)]
    pub icon: Option<Spanned<Text>>,
    /// A Dockerfile URL odo builds from (Liberty stacks).
    #[serde(default, rename = "alpha.build-dockerfile")]
    pub alpha_build_dockerfile: Option<Spanned<Text>>,
    /// A Kubernetes manifest URL odo deploys (Liberty stacks).
    #[serde(default, rename = "alpha.deployment-manifest")]
    pub alpha_deployment_manifest: Option<Spanned<Text>>,
}

/// The `metadata` keys whose values are URLs of files the stack needs.
pub const METADATA_FILE_KEYS: [&str; 2] = ["alpha.build-dockerfile", "alpha.deployment-manifest"];

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Parent {
    #[serde(default)]
    pub uri: Option<Spanned<Text>>,
    #[serde(default)]
    pub id: Option<Text>,
    #[serde(default)]
    pub registry_url: Option<Spanned<Text>>,
    #[serde(default)]
    pub version: Option<Text>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    #[serde(default)]
    pub name: Option<Text>,
    #[serde(default)]
    pub container: Option<Container>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub image: Option<Spanned<Text>>,
    #[serde(default)]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default)]
    pub command: Option<Vec<Spanned<Text>>>,
    #[serde(default)]
    pub args: Option<Vec<Spanned<Text>>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    #[serde(default)]
    pub name: Option<Text>,
    #[serde(default)]
    pub value: Option<Spanned<Text>>,
}

/// A devfile command; only `exec` commands run text that may name an image.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    #[serde(default)]
    pub id: Option<Text>,
    #[serde(default)]
    pub exec: Option<Exec>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Exec {
    #[serde(default)]
    pub command_line: Option<Spanned<Text>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub name: Text,
    #[serde(default)]
    pub git: Option<Spanned<GitSource>>,
    #[serde(default)]
    pub zip: Option<Spanned<ZipSource>>,
    #[serde(default)]
    pub sub_dir: Option<Spanned<Text>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    #[serde(default)]
    pub remotes: BTreeMap<String, Text>,
    #[serde(default)]
    pub checkout_from: Option<CheckoutFrom>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutFrom {
    #[serde(default)]
    pub remote: Option<Text>,
    #[serde(default)]
    pub revision: Option<Text>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ZipSource {
    #[serde(default)]
    pub location: Option<Spanned<Text>>,
}

/// Parses a devfile's text. `path` names it in errors.
pub fn parse(path: &str, text: &str) -> Result<Devfile, DevfileError> {
    let parsed: Option<Devfile> = serde_saphyr::from_str(text).map_err(|e| DevfileError {
        path: path.to_string(),
        message: first_line(&e.to_string()),
    })?;
    Ok(parsed.unwrap_or_default())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

/// The byte range of a spanned scalar in the text it was parsed from.
pub fn byte_range<T>(s: &Spanned<T>) -> Option<Range<usize>> {
    let span = s.referenced.span();
    let start = span.byte_offset()? as usize;
    let len = span.byte_len()? as usize;
    Some(start..start + len)
}

/// The byte range of the scalar a spanned value was *defined* at: for an alias (`*img`) the
/// anchored scalar, otherwise the same as [`byte_range`]. Editing this range changes every use.
pub fn defined_byte_range<T>(s: &Spanned<T>) -> Option<Range<usize>> {
    let span = s.defined.span();
    let start = span.byte_offset()? as usize;
    let len = span.byte_len()? as usize;
    Some(start..start + len)
}

/// A reference to a container image found in a devfile or a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// The reference as written (may hold `{{variables}}` or `$ARG`s).
    pub written: String,
    /// The reference with variables substituted.
    pub resolved: String,
    /// Where: `components[runtime].container.image`, `docker/Dockerfile:3`.
    pub place: String,
}

/// A text value of a devfile that may name images inside it (see [`Devfile::text_values`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextValue {
    /// `components[tools].container.env[KUBEDOCK_PARAMS].value`,
    /// `commands[run].exec.commandLine`.
    pub place: String,
    /// The value as YAML reads it (quotes and escapes resolved).
    pub value: String,
    /// Where its scalar is defined in the text (see [`defined_byte_range`]).
    pub range: Option<Range<usize>>,
}

/// The byte ranges of the image references in a text: whole tokens, delimited by whitespace,
/// quotes or the ends of the text, that [`is_image_token`] accepts.
pub fn image_tokens(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        if is_token_delimiter(c) {
            if let Some(s) = start.take()
                && is_image_token(&text[s..i])
            {
                out.push(s..i);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    out
}

/// What ends a token of text for [`image_tokens`]: whitespace or a quote.
pub fn is_token_delimiter(c: char) -> bool {
    c.is_whitespace() || c == '\'' || c == '"'
}

/// Whether a token is a *fully qualified* image reference: its first path component is a
/// registry host (holds a `.` or a `:port`, or is `localhost`), it has a tag or a digest, and
/// it parses as a reference. A bare host (`quay.io`), a URL (`https://quay.io/x`), a reference
/// without a tag (`quay.io/x/y`, which may as well be a path) and a Docker Hub short name
/// (`foo/bar:1`) are not: too ambiguous to rewrite inside text.
pub fn is_image_token(token: &str) -> bool {
    let Some((first, rest)) = token.split_once('/') else {
        return false;
    };
    let host = first.contains('.') || first.contains(':') || first == "localhost";
    let last = rest.rsplit('/').next().unwrap_or(rest);
    let pinned = token.contains('@') || last.contains(':');
    host && pinned
        && !token.contains("://")
        && crate::oci::reference::ImageRef::parse(token).is_ok()
}

/// A starter project or project, as the lock needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectSource {
    Git {
        /// The remote's name (`origin`) and URL.
        remote_name: String,
        remote: String,
        revision: Option<String>,
    },
    Zip {
        location: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub name: String,
    pub source: ProjectSource,
    pub sub_dir: Option<String>,
}

/// A `parent` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentRef {
    Uri(String),
    Registry {
        id: String,
        registry_url: String,
        version: Option<String>,
    },
}

impl ParentRef {
    /// The URL the parent devfile is downloaded from.
    pub fn url(&self) -> String {
        match self {
            Self::Uri(u) => u.clone(),
            Self::Registry {
                id,
                registry_url,
                version,
            } => format!(
                "{}/devfiles/{id}/{}",
                registry_url.trim_end_matches('/'),
                version.as_deref().unwrap_or("latest")
            ),
        }
    }
}

/// Substitutes `{{name}}` from the devfile's `variables`. Unknown variables stay as written.
pub fn substitute_variables(s: &str, vars: &BTreeMap<String, Text>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match vars.get(name) {
                    Some(v) => out.push_str(v.as_str()),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl Devfile {
    fn vars(&self) -> BTreeMap<String, Text> {
        self.variables.clone().unwrap_or_default()
    }

    /// Every image the devfile names: `components[].container.image` (variables substituted),
    /// then the image references inside its text values ([`Devfile::text_images`]).
    pub fn images(&self) -> Vec<ImageUse> {
        self.images_with_ranges()
            .into_iter()
            .map(|(image, _)| image)
            .chain(self.text_images())
            .collect()
    }

    /// The text values a workspace runs or passes on, where an image may be named inside the
    /// text: each container's `env[].value`, `command[]` and `args[]`, and each exec command's
    /// `commandLine`, in document order (components, then commands).
    pub fn text_values(&self) -> Vec<TextValue> {
        let mut out = Vec::new();
        let mut push = |place: String, s: &Spanned<Text>| {
            out.push(TextValue {
                place,
                value: s.value.as_str().to_string(),
                range: defined_byte_range(s),
            });
        };
        for (i, c) in self.components.iter().flatten().enumerate() {
            let Some(container) = &c.container else {
                continue;
            };
            let name = c
                .name
                .as_ref()
                .map_or_else(|| i.to_string(), |n| n.as_str().to_string());
            let at = format!("components[{name}].container");
            for (j, e) in container.env.iter().flatten().enumerate() {
                if let Some(v) = &e.value {
                    let var = e
                        .name
                        .as_ref()
                        .map_or_else(|| j.to_string(), |n| n.as_str().to_string());
                    push(format!("{at}.env[{var}].value"), v);
                }
            }
            for (key, list) in [("command", &container.command), ("args", &container.args)] {
                for (j, v) in list.iter().flatten().enumerate() {
                    push(format!("{at}.{key}[{j}]"), v);
                }
            }
        }
        for (i, c) in self.commands.iter().flatten().enumerate() {
            if let Some(line) = c.exec.as_ref().and_then(|e| e.command_line.as_ref()) {
                let id =
                    c.id.as_ref()
                        .map_or_else(|| i.to_string(), |n| n.as_str().to_string());
                push(format!("commands[{id}].exec.commandLine"), line);
            }
        }
        out
    }

    /// The fully qualified image references inside [`Devfile::text_values`] (see
    /// [`image_tokens`]), one per occurrence, as written (no variables: a token holding one is
    /// not a reference).
    pub fn text_images(&self) -> Vec<ImageUse> {
        self.text_values()
            .into_iter()
            .flat_map(|t| {
                image_tokens(&t.value)
                    .into_iter()
                    .map(|r| ImageUse {
                        written: t.value[r.clone()].to_string(),
                        resolved: t.value[r].to_string(),
                        place: t.place.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// [`Devfile::images`], each with the byte range where its scalar is defined (see
    /// [`defined_byte_range`]; includes the quotes of a quoted scalar), for rewriting in place.
    pub fn images_with_ranges(&self) -> Vec<(ImageUse, Option<Range<usize>>)> {
        let vars = self.vars();
        self.components
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, c)| {
                let image = c.container.as_ref()?.image.as_ref()?;
                let written = image.value.as_str().trim().to_string();
                if written.is_empty() {
                    return None;
                }
                let name = c
                    .name
                    .as_ref()
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_else(|| i.to_string());
                Some((
                    ImageUse {
                        resolved: substitute_variables(&written, &vars),
                        written,
                        place: format!("components[{name}].container.image"),
                    },
                    defined_byte_range(image),
                ))
            })
            .collect()
    }

    fn project_refs(list: &Option<Vec<Spanned<Project>>>) -> Vec<ProjectRef> {
        list.iter()
            .flatten()
            .map(|p| {
                let p = &p.value;
                let source = if let Some(git) = &p.git {
                    let git = &git.value;
                    let wanted = git
                        .checkout_from
                        .as_ref()
                        .and_then(|c| c.remote.as_ref())
                        .map(|r| r.as_str().to_string());
                    let (remote_name, remote) = match wanted {
                        Some(name) => {
                            let url = git.remotes.get(&name).map(|u| u.as_str().to_string());
                            (name, url.unwrap_or_default())
                        }
                        None => git
                            .remotes
                            .get("origin")
                            .map(|u| ("origin".to_string(), u.as_str().to_string()))
                            .or_else(|| {
                                git.remotes
                                    .iter()
                                    .next()
                                    .map(|(n, u)| (n.clone(), u.as_str().to_string()))
                            })
                            .unwrap_or_default(),
                    };
                    ProjectSource::Git {
                        remote_name,
                        remote,
                        revision: git
                            .checkout_from
                            .as_ref()
                            .and_then(|c| c.revision.as_ref())
                            .map(|r| r.as_str().to_string()),
                    }
                } else {
                    ProjectSource::Zip {
                        location: p
                            .zip
                            .as_ref()
                            .and_then(|z| z.value.location.as_ref())
                            .map(|l| l.value.as_str().to_string())
                            .unwrap_or_default(),
                    }
                };
                ProjectRef {
                    name: p.name.as_str().to_string(),
                    source,
                    sub_dir: p
                        .sub_dir
                        .as_ref()
                        .map(|s| s.value.as_str().trim_matches('/').to_string())
                        .filter(|s| !s.is_empty()),
                }
            })
            .collect()
    }

    pub fn starter_projects(&self) -> Vec<ProjectRef> {
        Self::project_refs(&self.starter_projects)
    }

    pub fn projects(&self) -> Vec<ProjectRef> {
        Self::project_refs(&self.projects)
    }

    pub fn parent(&self) -> Option<ParentRef> {
        let p = self.parent.as_ref()?;
        if let Some(uri) = &p.uri {
            return Some(ParentRef::Uri(uri.value.as_str().to_string()));
        }
        let id = p.id.as_ref()?.as_str().to_string();
        let registry_url = p.registry_url.as_ref()?.value.as_str().to_string();
        Some(ParentRef::Registry {
            id,
            registry_url,
            version: p.version.as_ref().map(|v| v.as_str().to_string()),
        })
    }

    /// Remote files named by `metadata` (`alpha.build-dockerfile`, `alpha.deployment-manifest`):
    /// (key, URL).
    pub fn metadata_files(&self) -> Vec<(&'static str, String)> {
        let Some(m) = self.metadata.as_ref() else {
            return Vec::new();
        };
        [
            (METADATA_FILE_KEYS[0], &m.alpha_build_dockerfile),
            (METADATA_FILE_KEYS[1], &m.alpha_deployment_manifest),
        ]
        .into_iter()
        .filter_map(|(k, v)| {
            let url = v.as_ref()?.value.as_str().trim().to_string();
            (url.starts_with("https://") || url.starts_with("http://")).then_some((k, url))
        })
        .collect()
    }

    pub fn icon(&self) -> Option<String> {
        self.metadata
            .as_ref()?
            .icon
            .as_ref()
            .map(|i| i.value.as_str().to_string())
    }
}

/// A `FROM` line of a Dockerfile or Containerfile that pulls an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromLine {
    /// 1-based line number.
    pub line: usize,
    /// The image token as written, and its byte range in the text.
    pub written: String,
    pub range: Range<usize>,
    /// With `ARG` defaults substituted.
    pub resolved: String,
}

/// The `FROM` lines of a Dockerfile that name images: build stages (`FROM builder`) and
/// `scratch` are skipped, `ARG` defaults declared before the first `FROM` are substituted.
/// Line continuations and comments are handled; heredocs are not.
pub fn dockerfile_froms(text: &str) -> Vec<FromLine> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut seen_from = false;
    let mut offset = 0usize;
    let mut logical = String::new();
    let mut logical_start: Option<(usize, usize)> = None; // (byte offset, line)
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim_start();
        if logical_start.is_none() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        if logical_start.is_none() {
            logical_start = Some((line_start + (line.len() - trimmed.len()), i + 1));
            logical.clear();
        }
        if let Some(body) = line.strip_suffix('\\') {
            logical.push_str(body);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let (start, line_no) = logical_start.take().unwrap_or((line_start, i + 1));
        let instr = logical.trim_start();
        let mut words = instr.split_whitespace();
        let keyword = words.next().unwrap_or("").to_ascii_uppercase();
        match keyword.as_str() {
            "ARG" if !seen_from => {
                for decl in words {
                    if let Some((k, v)) = decl.split_once('=') {
                        args.insert(k.to_string(), v.trim_matches('"').to_string());
                    }
                }
            }
            "FROM" => {
                seen_from = true;
                let rest: Vec<&str> = instr.split_whitespace().skip(1).collect();
                let image = rest.iter().copied().find(|w| !w.starts_with("--"));
                let alias = rest
                    .iter()
                    .position(|w| w.eq_ignore_ascii_case("as"))
                    .and_then(|p| rest.get(p + 1));
                if let Some(image) = image {
                    let resolved = substitute_args(image, &args);
                    let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&resolved));
                    if !is_stage && resolved != "scratch" {
                        // Find the token in the original text, after the FROM keyword.
                        let from_text = &text[start..offset];
                        let kw_end = from_text.find(|c: char| c.is_whitespace()).unwrap_or(0);
                        if let Some(pos) = find_token(&from_text[kw_end..], image) {
                            let s = start + kw_end + pos;
                            out.push(FromLine {
                                line: line_no,
                                written: image.to_string(),
                                range: s..s + image.len(),
                                resolved,
                            });
                        }
                    }
                }
                if let Some(a) = alias {
                    stages.push(a.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

fn find_token(hay: &str, token: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = hay[from..].find(token) {
        let s = from + p;
        let before_ok = s == 0 || hay[..s].ends_with(char::is_whitespace);
        let after = &hay[s + token.len()..];
        let after_ok = after.is_empty() || after.starts_with(char::is_whitespace);
        if before_ok && after_ok {
            return Some(s);
        }
        from = s + token.len();
    }
    None
}

fn substitute_args(s: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let rest = &s[i + 1..];
        let (name, default, consumed) = if let Some(inner) = rest.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => {
                    let body = &inner[..end];
                    let (n, d) = match body.split_once(":-") {
                        Some((n, d)) => (n, Some(d)),
                        None => (body, None),
                    };
                    (n.to_string(), d.map(str::to_string), end + 2)
                }
                None => (String::new(), None, 0),
            }
        } else {
            let n: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let len = n.len();
            (n, None, len)
        };
        if name.is_empty() {
            out.push(c);
            continue;
        }
        match args.get(&name).cloned().or(default) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&s[i..i + 1 + consumed]),
        }
        for _ in 0..consumed {
            chars.next();
        }
    }
    out
}

/// Whether a file name is a container build recipe whose `FROM` lines pull images.
pub fn is_dockerfile(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "dockerfile"
        || lower == "containerfile"
        || lower.starts_with("dockerfile.")
        || lower.starts_with("containerfile.")
        || lower.ends_with(".dockerfile")
        || lower.ends_with(".containerfile")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn froms_skip_stages_and_resolve_args() {
        let text = "ARG IMAGE_VERSION=latest-jdk17\n# comment\nFROM quay.io/wildfly/wildfly-s2i:$IMAGE_VERSION AS builder\nRUN x\nFROM --platform=linux/amd64 \\\n  quay.io/wildfly/wildfly-runtime:${IMAGE_VERSION}\nCOPY --from=builder /a /b\nFROM builder\nFROM scratch\n";
        let froms = dockerfile_froms(text);
        assert_eq!(froms.len(), 2);
        assert_eq!(
            froms[0].resolved,
            "quay.io/wildfly/wildfly-s2i:latest-jdk17"
        );
        assert_eq!(froms[0].line, 3);
        assert_eq!(
            &text[froms[0].range.clone()],
            "quay.io/wildfly/wildfly-s2i:$IMAGE_VERSION"
        );
        assert_eq!(
            froms[1].resolved,
            "quay.io/wildfly/wildfly-runtime:latest-jdk17"
        );
        assert_eq!(froms[1].line, 5);
        assert_eq!(
            &text[froms[1].range.clone()],
            "quay.io/wildfly/wildfly-runtime:${IMAGE_VERSION}"
        );
    }

    fn tokens(text: &str) -> Vec<&str> {
        image_tokens(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn image_tokens_are_fully_qualified_references() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let by_digest = format!("host:5000/a/b@{digest}");
        let cases = [
            ("quay.io/x/y:tag", vec!["quay.io/x/y:tag"]),
            (by_digest.as_str(), vec![by_digest.as_str()]),
            ("localhost:8080/a:1", vec!["localhost:8080/a:1"]),
            ("localhost/a/b:1.0", vec!["localhost/a/b:1.0"]),
            (
                "--reverse-proxy --initimage quay.io/agiertli/kubedock:0.13.0",
                vec!["quay.io/agiertli/kubedock:0.13.0"],
            ),
            (
                "podman run --name 'k' \"quay.io/k/app:main\"\n\tdocker.io/library/x:1",
                vec!["quay.io/k/app:main", "docker.io/library/x:1"],
            ),
            ("quay.io", vec![]),
            ("imageRegistry quay.io", vec![]),
            ("https://quay.io/x", vec![]),
            ("https://quay.io/x/y:1", vec![]),
            ("quay.io/x/y", vec![]),
            ("$(IMAGE)", vec![]),
            ("foo/bar:1", vec![]),
            ("/home/user/.m2", vec![]),
            ("tcp://127.0.0.1:2475", vec![]),
            ("--initimage=quay.io/x/y:1", vec![]),
            ("quay.io/x/y:{{tag}}", vec![]),
            ("quay.io/x/y:1;", vec![]),
            ("quay.io/X/y:1", vec![]),
        ];
        for (text, want) in cases {
            assert_eq!(tokens(text), want, "{text}");
        }
    }

    #[test]
    fn text_images_of_env_command_args_and_command_lines() {
        let text = "components:\n  - name: tools\n    container:\n      image: quay.io/a/tools:1\n      env:\n        - name: P\n          value: \"--initimage quay.io/a/kubedock:0.13.0\"\n        - name: HOST\n          value: 'quay.io'\n      command: ['sh', 'quay.io/a/cmd:1']\n      args:\n        - quay.io/a/arg@sha256:0000000000000000000000000000000000000000000000000000000000000000\n  - name: v\n    volume: {}\ncommands:\n  - id: run\n    exec:\n      component: tools\n      commandLine: |\n        podman run \\\n          quay.io/a/app:main\n";
        let d = parse("devfile.yaml", text).unwrap();
        let got: Vec<(String, String)> = d
            .images()
            .into_iter()
            .map(|i| (i.place, i.written))
            .collect();
        let want = [
            ("components[tools].container.image", "quay.io/a/tools:1"),
            (
                "components[tools].container.env[P].value",
                "quay.io/a/kubedock:0.13.0",
            ),
            ("components[tools].container.command[1]", "quay.io/a/cmd:1"),
            (
                "components[tools].container.args[0]",
                "quay.io/a/arg@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ),
            ("commands[run].exec.commandLine", "quay.io/a/app:main"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        // Every text value is listed, with or without an image, each with its scalar's range.
        let values = d.text_values();
        assert_eq!(values.len(), 6);
        assert_eq!(values[1].value, "quay.io");
        let r = values[0].range.clone().unwrap();
        assert_eq!(&text[r], "\"--initimage quay.io/a/kubedock:0.13.0\"");
    }

    #[test]
    fn variables_substituted_unknown_kept() {
        let mut vars = BTreeMap::new();
        vars.insert("v".to_string(), Text("1.2".into()));
        assert_eq!(
            substitute_variables("a:{{v}}-x{{ w }}", &vars),
            "a:1.2-x{{ w }}"
        );
    }
}
