//! Rewriting a devfile (and a stack's Dockerfiles) so that it references the copies inside the
//! air gap instead of upstream: container images, starter projects and projects, the parent
//! devfile, the icon, and other `metadata` values the plan names.
//!
//! # Editing spans, never re-serializing
//!
//! The rewrite is a pure function of the original text and a [`DevfilePlan`]. The YAML is parsed
//! (serde-saphyr, through [`crate::devfile`]) only to learn *where* each reference is: the byte
//! range of each scalar. Each change is an edit of a byte range of the original, applied back to
//! front. Comments, key order, quoting style, indentation and line endings (CRLF too) outside the
//! edited ranges are kept byte for byte; the same input gives the same bytes.
//!
//! Scalars (images, icon, parent URI, `metadata` values) are replaced in their original style: a
//! quoted scalar's range includes its quotes, and the new value gets the same quotes; a plain
//! scalar stays plain unless the new value would not read back as the same string, and is then
//! single-quoted. A scalar defined through an anchor is edited at the anchor, which also rewrites
//! every alias of it. A comment after the value stays.
//!
//! Starter projects and projects are mappings, and serde-saphyr gives a mapping only the position
//! of its first key. So the keys of a project entry are found by a small layout scanner that reads
//! block mappings line by line (a key is a line at the entry's column; its value is every deeper
//! line) and flow mappings (`{name: x, git: {…}}`) token by token. The first of the entry's `git`,
//! `zip` and `subDir` keys is replaced by `zip: {location: …}` (block or flow, like the entry,
//! indented like the value it replaces); the others are deleted with their whole lines. Comment
//! lines at the entry's column or shallower are kept; comments inside a replaced or deleted value,
//! including one trailing its last line, go with it. Merge keys (`<<`), aliases and complex keys
//! that hide a project's keys from the scanner are refused with a clear error, not guessed at.
//!
//! # Images and variables
//!
//! The plan maps each image *as resolved* (devfile `{{variables}}` or Dockerfile `ARG` defaults
//! substituted, as [`crate::devfile::Devfile::images`] and [`crate::devfile::dockerfile_froms`]
//! give them, which is also how the lock keys images) to its mirrored reference
//! (`target/name:tag@sha256:…`). An image written without variables is replaced by that
//! reference. An image written *with* a variable in its tag (`icr.io/x/y:{{liberty-version}}`,
//! `quay.io/w/r:$IMAGE_VERSION`) keeps its tag (and digest) part as written and only changes the
//! registry and repository, with no digest pinned: the digest depends on the value the variable
//! takes when the devfile is used, and only the value the lock resolved is mirrored. A variable in
//! the registry or repository part is an error.
//!
//! # What must be planned
//!
//! Every reference that leaves the air gap and that the lock fetches must have a plan entry, or
//! the rewrite fails ([`RewriteError::Unplanned`]): each container image and `FROM` image, each
//! image reference inside text (below), each git project and each project whose zip location is an `http(s)` URL (starter projects and
//! `projects[]`), a `parent.uri` that is an `http(s)` URL, a `parent.id` with a `registryUrl`, and
//! an `http(s)` icon. Local references without a plan entry are kept. Plan entries the devfile
//! does not use are ignored (one image map serves a whole registry). Other `metadata` values are
//! rewritten only where the plan says: the lock does not fetch what they point at yet.
//!
//! # Images inside text
//!
//! A container's `env[].value`, `command[]` and `args[]` and an exec command's `commandLine` are
//! text a workspace runs; an image named there (`--initimage quay.io/x/kubedock:0.13.0`,
//! `podman run quay.io/x/app:main`) is pulled from upstream unless it is rewritten. Only a
//! *fully qualified* reference that stands as a whole token (delimited by whitespace or quotes)
//! counts: a registry host (a `.`, a `:port` or `localhost`) and a tag or a digest, as
//! [`devfile::image_tokens`] finds them; the lock keys them like component images (they are
//! part of [`devfile::Devfile::images`]). Each token is replaced where it stands in the original
//! scalar, by the same mirrored reference a component image gets; the rest of the scalar, its
//! quotes, escapes and line breaks, is kept. When an escape hides a token in the original (a
//! `\t` before it in a double-quoted scalar), the scalar is written again whole, in its quoting
//! style.
//!
//! Not rewritten, because nothing can tell them from ordinary text: a bare registry host
//! (`imageRegistry: 'quay.io'`), a reference without a tag or joined to an option
//! (`--image=quay.io/…`), images in variables or in `parent` overrides, `COPY --from=<image>`
//! and `# syntax=` directives of Dockerfiles. `airgap verify` finds what is left with
//! [`upstream_hosts_outside_comments`].
//!
//! # Parent devfiles
//!
//! `parent.uri` is replaced by the plan's path. The registry form (`id`, `registryUrl`,
//! `version`) becomes the URI form: the first of those keys is replaced by `uri: <path>` and the
//! others are deleted, since the lock fetches the parent by URL and the registry that served it
//! is outside the air gap. Overrides under `parent` (`components`, `commands`, …) are kept. A
//! Kubernetes parent is left alone.
//!
//! # Checking the result
//!
//! The rewritten text is parsed again and must hold exactly the expected images (component
//! images, then the references inside text: the mirrored ones), archives, icon and parent, and
//! every text value must read as the original with only its image tokens replaced; anything else is reported as a bug ([`RewriteError::Bug`]) rather than written.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use miette::SourceSpan;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use crate::devfile::{self, DevfileError, ParentRef, Project, ProjectSource};
use crate::diag::{self, Source};
use crate::escape;

/// Upstream image as resolved (variables substituted) → mirrored reference
/// (`registry.internal/devfiles/nodejs-18:1-140@sha256:…`, or `…/name@sha256:…` for an upstream
/// pinned by digest only).
pub type ImageMap = BTreeMap<String, String>;

/// Bumped whenever the same text and plan would be rewritten to different bytes, so a step key
/// that includes it reruns the rewrite.
pub const VERSION: u32 = 2;

/// What to write into one devfile. Plan entries the devfile does not use are ignored; references
/// that leave the air gap and have no entry are an error (see the module docs). Serializable,
/// with sorted maps, so a step key can hash it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DevfilePlan {
    /// Images of `components[].container.image`.
    pub images: ImageMap,
    /// `starterProjects[]` name → zip location (see [`offline_zip_name`]).
    pub starter_projects: BTreeMap<String, String>,
    /// `projects[]` name → zip location. Written as given: the registry server serves only
    /// starter projects, so a client resolves a relative `projects[].zip.location` itself.
    pub projects: BTreeMap<String, String>,
    /// The parent devfile's local path (`parent-devfile.yaml`), for `parent.uri` or the
    /// `parent.id` + `registryUrl` form (which becomes `parent.uri`).
    pub parent: Option<String>,
    /// `metadata.icon`'s local path (`logo.svg`).
    pub icon: Option<String>,
    /// Other `metadata` keys → new string value: the Liberty stacks' `alpha.build-dockerfile`
    /// and `alpha.deployment-manifest` URLs (`metadata` allows any key) → local files.
    pub metadata: BTreeMap<String, String>,
}

/// The archive name upstream's offline build gives a starter project: `<name>-offline.zip`.
pub fn offline_zip_name(project: &str) -> String {
    format!("{project}-offline.zip")
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RewriteError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Parse(#[from] DevfileError),

    #[error(
        "{place} of `{path}` is `{written}`: a variable in the registry or repository part cannot be mirrored"
    )]
    #[diagnostic(
        code(airgap::rewrite::variable_in_repository),
        help(
            "only the tag may use a variable, as in `quay.io/org/image:{{{{version}}}}`: the mirrored repository must be known when the devfile is rewritten"
        )
    )]
    VariableInRepository {
        path: String,
        place: String,
        written: String,
        #[source_code]
        src: Source,
        #[label("variable in the repository part")]
        span: SourceSpan,
    },

    #[error("{place} of `{path}` is {what}, which the rewrite plan has no local copy of")]
    #[diagnostic(
        code(airgap::rewrite::unplanned),
        help(
            "run `airgap lock` so the lock covers this devfile; if the lock is up to date, this is a bug in airgap"
        )
    )]
    Unplanned {
        path: String,
        place: String,
        what: String,
        #[source_code]
        src: Source,
        #[label("not mirrored")]
        span: SourceSpan,
    },

    #[error("cannot rewrite {place} of `{path}`: {message}")]
    #[diagnostic(code(airgap::rewrite::unsupported), help("{help}"))]
    Unsupported {
        path: String,
        place: String,
        message: String,
        help: String,
        #[source_code]
        src: Source,
        #[label("here")]
        span: SourceSpan,
    },

    #[error("{first} and {second} of `{path}` would both be written to `{location}`")]
    #[diagnostic(
        code(airgap::rewrite::shared_location),
        help("each project needs its own archive name")
    )]
    SharedLocation {
        path: String,
        first: String,
        second: String,
        location: String,
    },

    #[error("rewriting `{path}` went wrong: {message}")]
    #[diagnostic(
        code(airgap::rewrite::bug),
        help("this is a bug in airgap; please report it with the file")
    )]
    Bug { path: String, message: String },
}

/// One replacement of a byte range of the original text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edit {
    start: usize,
    end: usize,
    replacement: String,
}

/// The file being rewritten, for edits and errors.
struct Doc<'a> {
    path: &'a str,
    text: &'a str,
}

impl Doc<'_> {
    fn src(&self) -> Source {
        diag::source(self.path, self.text)
    }

    fn span(range: &Range<usize>) -> SourceSpan {
        (range.start, range.end.saturating_sub(range.start)).into()
    }

    fn unsupported(
        &self,
        place: &str,
        range: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> RewriteError {
        RewriteError::Unsupported {
            path: self.path.to_string(),
            place: place.to_string(),
            message: message.into(),
            help: help.into(),
            src: self.src(),
            span: Self::span(&range),
        }
    }

    fn unplanned(&self, place: &str, range: Range<usize>, what: String) -> RewriteError {
        RewriteError::Unplanned {
            path: self.path.to_string(),
            place: place.to_string(),
            what,
            src: self.src(),
            span: Self::span(&range),
        }
    }

    fn bug(&self, message: impl Into<String>) -> RewriteError {
        RewriteError::Bug {
            path: self.path.to_string(),
            message: message.into(),
        }
    }

    /// The range of a spanned value, or a bug (spans of a `&str` source always have bytes).
    /// Checked to lie on character boundaries of the text, so slicing from it cannot panic.
    fn range<T>(&self, s: &Spanned<T>, place: &str) -> Result<Range<usize>, RewriteError> {
        devfile::defined_byte_range(s)
            .filter(|r| {
                r.start <= r.end
                    && self.text.is_char_boundary(r.start)
                    && self.text.is_char_boundary(r.end)
            })
            .ok_or_else(|| self.bug(format!("no usable byte span for {place}")))
    }
}

/// Rewrites a devfile's text by the plan. `path` names the file in errors.
pub fn rewrite_devfile(path: &str, text: &str, plan: &DevfilePlan) -> Result<String, RewriteError> {
    let d = devfile::parse(path, text)?;
    let mut r = Rewrite {
        doc: Doc { path, text },
        edits: Vec::new(),
        expect: Expected::default(),
    };
    r.images(&d, &plan.images)?;
    r.text_images(&d, &plan.images)?;
    r.projects(&d, plan)?;
    if let Some(parent) = &d.parent {
        r.parent(&d, parent, plan.parent.as_ref())?;
    }
    r.metadata(&d, plan)?;
    let out = apply_edits(&r.doc, r.edits)?;
    r.expect.check(&r.doc, &out)?;
    Ok(out)
}

/// A devfile rewrite under way: the edits so far, and what the result must then hold.
struct Rewrite<'a> {
    doc: Doc<'a>,
    edits: Vec<Edit>,
    expect: Expected,
}

impl Rewrite<'_> {
    /// Container images.
    fn images(&mut self, d: &devfile::Devfile, planned: &ImageMap) -> Result<(), RewriteError> {
        let doc = &self.doc;
        for (image, range) in d.images_with_ranges() {
            let place = &image.place;
            let Some(range) = range.filter(|r| doc.text.get(r.clone()).is_some()) else {
                return Err(doc.bug(format!("no usable byte span for {place}")));
            };
            let Some(target) = planned.get(&image.resolved) else {
                return Err(doc.unplanned(place, range, format!("`{}`", image.resolved)));
            };
            let new = mirrored_reference(&image.written, target).map_err(|name_len| {
                // The written value inside the scalar (after a quote or leading blanks).
                let at = doc
                    .text
                    .get(range.clone())
                    .and_then(|raw| raw.find(image.written.as_str()))
                    .map_or(range.start, |i| range.start + i);
                RewriteError::VariableInRepository {
                    path: doc.path.to_string(),
                    place: place.clone(),
                    written: image.written.clone(),
                    src: doc.src(),
                    span: Doc::span(&(at..at + name_len)),
                }
            })?;
            self.edits.push(scalar_edit(doc, range, &new, place)?);
            self.expect.images.push(new);
        }
        Ok(())
    }

    /// Image references inside text values (env values, `command`, `args`, `commandLine`):
    /// each token is replaced by its mirrored reference where it stands in the original text,
    /// the rest of the scalar kept byte for byte. Only when a token cannot be found there as
    /// often as in the value (an escape inside a double-quoted scalar) is the whole scalar
    /// written again, in its quoting style.
    fn text_images(
        &mut self,
        d: &devfile::Devfile,
        planned: &ImageMap,
    ) -> Result<(), RewriteError> {
        let doc = &self.doc;
        for tv in d.text_values() {
            let tokens = devfile::image_tokens(&tv.value);
            if tokens.is_empty() {
                self.expect.texts.push(tv.value);
                continue;
            }
            let place = &tv.place;
            let Some(range) = tv
                .range
                .clone()
                .filter(|r| doc.text.get(r.clone()).is_some())
            else {
                return Err(doc.bug(format!("no usable byte span for {place}")));
            };
            let mut swaps = Vec::new();
            for t in &tokens {
                let token = &tv.value[t.clone()];
                let Some(new) = planned.get(token) else {
                    let at = whole_tokens(doc.text, &range, token)
                        .first()
                        .map_or(range.clone(), |&s| s..s + token.len());
                    return Err(doc.unplanned(place, at, format!("`{token}`")));
                };
                swaps.push((t.clone(), token, new.as_str()));
            }
            let mut value = tv.value.clone();
            for (t, _, new) in swaps.iter().rev() {
                value.replace_range(t.clone(), new);
            }
            let mut counts: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
            for (_, token, new) in &swaps {
                counts.entry(token).or_insert((new, 0)).1 += 1;
            }
            let mut edits = Vec::new();
            for (token, (new, count)) in counts {
                let found = whole_tokens(doc.text, &range, token);
                if found.len() != count {
                    edits.clear();
                    edits.push(scalar_edit(doc, range.clone(), &value, place)?);
                    break;
                }
                edits.extend(found.into_iter().map(|s| Edit {
                    start: s,
                    end: s + token.len(),
                    replacement: new.to_string(),
                }));
            }
            self.edits.extend(edits);
            self.expect
                .images
                .extend(swaps.iter().map(|(_, _, new)| new.to_string()));
            self.expect.texts.push(value);
        }
        Ok(())
    }

    /// Starter projects and projects.
    fn projects(&mut self, d: &devfile::Devfile, plan: &DevfilePlan) -> Result<(), RewriteError> {
        let mut locations: BTreeMap<String, String> = BTreeMap::new();
        for (list, kind, planned) in [
            (
                &d.starter_projects,
                "starterProjects",
                &plan.starter_projects,
            ),
            (&d.projects, "projects", &plan.projects),
        ] {
            for item in list.iter().flatten() {
                self.project(item, kind, planned, &mut locations)?;
            }
        }
        Ok(())
    }

    /// One entry of `starterProjects` or `projects` (`kind`); `locations` are the zip
    /// locations written so far, each with the place that has it.
    fn project(
        &mut self,
        item: &Spanned<Project>,
        kind: &'static str,
        planned: &BTreeMap<String, String>,
        locations: &mut BTreeMap<String, String>,
    ) -> Result<(), RewriteError> {
        let doc = &self.doc;
        let name = item.value.name.as_str();
        let place = format!("{kind}[{name}]");
        let start = doc.range(item, &place)?.start;
        let Some(location) = planned.get(name) else {
            if let Some(what) = remote_project(&item.value) {
                let end = doc.text[start..]
                    .find('\n')
                    .map_or(doc.text.len(), |i| start + i);
                return Err(doc.unplanned(&place, start..end, what));
            }
            return Ok(());
        };
        if let Some(first) = locations.insert(location.clone(), place.clone()) {
            return Err(RewriteError::SharedLocation {
                path: doc.path.to_string(),
                first,
                second: place,
                location: location.clone(),
            });
        }
        let p = &item.value;
        let mut present = Vec::new();
        if p.git.is_some() {
            present.push("git");
        }
        if p.zip.is_some() {
            present.push("zip");
        }
        if p.sub_dir.is_some() {
            present.push("subDir");
        }
        if !present.contains(&"git") && !present.contains(&"zip") {
            return Err(doc.unsupported(
                &place,
                start..start,
                "it has neither `git` nor `zip`",
                "a project needs a `git` or a `zip` source",
            ));
        }
        self.edits.extend(replace_keys(
            doc,
            &place,
            start,
            &["git", "zip", "subDir"],
            &present,
            NewValue::Map("zip", "location", location),
        )?);
        self.expect
            .projects
            .push((kind, name.to_string(), location.clone()));
        Ok(())
    }

    /// The parent devfile: `parent.uri`, or the registry form, which becomes `parent.uri`.
    fn parent(
        &mut self,
        d: &devfile::Devfile,
        parent: &devfile::Parent,
        planned: Option<&String>,
    ) -> Result<(), RewriteError> {
        let doc = &self.doc;
        let place = "parent";
        if let Some(uri) = &parent.uri {
            if let Some(edit) = url_edit(doc, uri, planned.map(String::as_str), "parent.uri")? {
                self.edits.push(edit);
                self.expect.parent = planned.cloned();
            }
            return Ok(());
        }
        if parent.id.is_none() {
            return Ok(());
        }
        let Some(new) = planned else {
            if let (Some(url), Some(p)) = (&parent.registry_url, d.parent()) {
                let range = doc.range(url, "parent.registryUrl")?;
                return Err(doc.unplanned(place, range, format!("`{}`", p.url())));
            }
            return Ok(());
        };
        let view = View::parse(doc.path, doc.text)?;
        let Some(mapping) = &view.parent else {
            return Err(doc.bug("the parent has no span"));
        };
        let start = doc.range(mapping, place)?.start;
        let mut present = vec!["id"];
        if parent.registry_url.is_some() {
            present.push("registryUrl");
        }
        if parent.version.is_some() {
            present.push("version");
        }
        self.edits.extend(replace_keys(
            doc,
            place,
            start,
            &["id", "registryUrl", "version"],
            &present,
            NewValue::Scalar("uri", new),
        )?);
        self.expect.parent = Some(new.clone());
        Ok(())
    }

    /// The icon and the other `metadata` values the plan names.
    fn metadata(&mut self, d: &devfile::Devfile, plan: &DevfilePlan) -> Result<(), RewriteError> {
        let doc = &self.doc;
        if let Some(icon) = d.metadata.as_ref().and_then(|m| m.icon.as_ref())
            && let Some(edit) = url_edit(doc, icon, plan.icon.as_deref(), "metadata.icon")?
        {
            self.edits.push(edit);
            self.expect.icon = plan.icon.clone();
        }
        if plan.metadata.is_empty() {
            return Ok(());
        }
        let metadata = View::parse(doc.path, doc.text)?
            .metadata
            .unwrap_or_default();
        for (key, new) in &plan.metadata {
            let Some(value) = metadata.get(key) else {
                continue;
            };
            let place = format!("metadata.{key}");
            let range = doc.range(value, &place)?;
            if value.value.0.is_none() {
                return Err(doc.unsupported(
                    &place,
                    range,
                    "it is not a string",
                    "only string values can be replaced",
                ));
            }
            self.edits.push(scalar_edit(doc, range, new, &place)?);
        }
        Ok(())
    }
}

/// Replaces scalars of any YAML file at the given byte ranges (from serde-saphyr spans),
/// keeping each one's quoting style: for the files beside devfiles (`stack.yaml`,
/// `extraDevfileEntries.yaml`) whose icons become local.
pub fn replace_scalars(
    path: &str,
    text: &str,
    replacements: &[(Range<usize>, String)],
) -> Result<String, RewriteError> {
    let doc = Doc { path, text };
    let edits = replacements
        .iter()
        .map(|(range, new)| scalar_edit(&doc, range.clone(), new, "a value"))
        .collect::<Result<Vec<_>, _>>()?;
    apply_edits(&doc, edits)
}

/// Rewrites the `FROM` images of a Dockerfile or Containerfile by the image map (keyed by the
/// image with global `ARG` defaults substituted, as [`devfile::dockerfile_froms`] resolves it).
/// Build stages and `scratch` are left alone. `path` names the file in errors.
pub fn rewrite_dockerfile(
    path: &str,
    text: &str,
    images: &ImageMap,
) -> Result<String, RewriteError> {
    let doc = Doc { path, text };
    let mut edits = Vec::new();
    let mut expected = Vec::new();
    for from in devfile::dockerfile_froms(text) {
        let place = format!("`FROM` on line {}", from.line);
        let Some(target) = images.get(&from.resolved) else {
            return Err(doc.unplanned(&place, from.range, format!("`{}`", from.resolved)));
        };
        let new = mirrored_reference(&from.written, target).map_err(|name_len| {
            RewriteError::VariableInRepository {
                path: path.to_string(),
                place: place.clone(),
                written: from.written.clone(),
                src: doc.src(),
                span: Doc::span(&(from.range.start..from.range.start + name_len)),
            }
        })?;
        edits.push(Edit {
            start: from.range.start,
            end: from.range.end,
            replacement: new.clone(),
        });
        expected.push(new);
    }
    let out = apply_edits(&doc, edits)?;
    let got: Vec<String> = devfile::dockerfile_froms(&out)
        .into_iter()
        .map(|f| f.written)
        .collect();
    if got != expected {
        return Err(doc.bug(format!(
            "the rewritten file has the `FROM` images {got:?}, expected {expected:?}"
        )));
    }
    Ok(out)
}

/// A line of a file that names an upstream host outside comments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostHit {
    /// 1-based line number.
    pub line: usize,
    /// The host, as given to the check.
    pub host: String,
}

/// The lines of a YAML text that name one of `hosts` outside comments (quoted scalars and block
/// scalars are content, even where they hold a `#`). A host matches case-insensitively as a
/// whole name or as the parent of a subdomain (`github.com` matches `api.github.com`, not
/// `notgithub.com` or `github.community`). Sorted by line, one hit per line and host.
pub fn upstream_hosts_outside_comments(text: &str, hosts: &[&str]) -> Vec<HostHit> {
    find_hosts(&yaml_content_lines(text), hosts)
}

/// Like [`upstream_hosts_outside_comments`] for a Dockerfile, where only whole lines starting
/// with `#` are comments (parser directives such as `# syntax=` included).
pub fn upstream_hosts_outside_dockerfile_comments(text: &str, hosts: &[&str]) -> Vec<HostHit> {
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            if l.trim_start().starts_with('#') {
                String::new()
            } else {
                l.to_string()
            }
        })
        .collect();
    find_hosts(&lines, hosts)
}

// ---------------------------------------------------------------------------------------------
// Images

/// Whether a written image reference uses a devfile variable or a Dockerfile `ARG`.
fn has_variable(s: &str) -> bool {
    s.contains("{{") || s.contains('$')
}

/// The length of the registry-and-repository part of an image reference, before its `:tag` or
/// `@digest`; `{{…}}` and `${…}` groups are opaque (they may hold `:` or `/`).
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut marks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let group_end = if b[i..].starts_with(b"{{") {
            s[i + 2..].find("}}").map(|e| i + 2 + e + 2)
        } else if b[i..].starts_with(b"${") {
            s[i + 2..].find('}').map(|e| i + 2 + e + 1)
        } else {
            None
        };
        if let Some(end) = group_end {
            i = end;
            continue;
        }
        if matches!(b[i], b'/' | b':' | b'@') {
            marks.push((i, b[i]));
        }
        i += 1;
    }
    let at = marks.iter().find(|m| m.1 == b'@').map(|m| m.0);
    let limit = at.unwrap_or(s.len());
    let last_slash = marks
        .iter()
        .filter(|m| m.1 == b'/' && m.0 < limit)
        .map(|m| m.0)
        .next_back();
    let colon = marks
        .iter()
        .find(|m| m.1 == b':' && m.0 < limit && last_slash.is_none_or(|s| m.0 > s))
        .map(|m| m.0);
    colon.unwrap_or(limit)
}

/// The reference to write for an image written as `written` whose resolved form mirrors to
/// `target`: `target` itself, or, when `written` holds a variable, the target's registry and
/// repository followed by `written`'s tag and digest part (variables kept, no digest added).
/// Err(length of the name part) when a variable sits in the registry or repository.
fn mirrored_reference(written: &str, target: &str) -> Result<String, usize> {
    if !has_variable(written) {
        return Ok(target.to_string());
    }
    let n = name_len(written);
    if has_variable(&written[..n]) {
        return Err(n);
    }
    Ok(format!("{}{}", &target[..name_len(target)], &written[n..]))
}

// ---------------------------------------------------------------------------------------------
// Scalars

fn is_remote(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

/// What a project fetches from outside the air gap, if anything.
fn remote_project(p: &Project) -> Option<String> {
    if p.git.is_some() {
        return Some("a git project".into());
    }
    let location = p.zip.as_ref()?.value.location.as_ref()?.value.as_str();
    is_remote(location).then(|| format!("the zip archive `{location}`"))
}

/// The edit of a scalar that may name a file outside the air gap (`parent.uri`,
/// `metadata.icon`): to `planned` when the plan has a local copy; none when it has not and the
/// value is local already; an error when an upstream URL has no plan.
fn url_edit(
    doc: &Doc<'_>,
    value: &Spanned<devfile::Text>,
    planned: Option<&str>,
    place: &str,
) -> Result<Option<Edit>, RewriteError> {
    let range = doc.range(value, place)?;
    match planned {
        Some(new) => scalar_edit(doc, range, new, place).map(Some),
        None if is_remote(value.value.as_str()) => {
            Err(doc.unplanned(place, range, format!("`{}`", value.value.as_str())))
        }
        None => Ok(None),
    }
}

/// Replaces a scalar, keeping its quoting style.
fn scalar_edit(
    doc: &Doc<'_>,
    range: Range<usize>,
    new: &str,
    place: &str,
) -> Result<Edit, RewriteError> {
    let raw = doc
        .text
        .get(range.clone())
        .ok_or_else(|| doc.bug(format!("the span of {place} is not in the text")))?;
    // Block scalars' spans run on to the next line; spans never start with blanks, but be sure.
    let start = range.start + (raw.len() - raw.trim_start().len());
    let raw = raw.trim();
    let end = start + raw.len();
    let replacement = if raw.starts_with('\'') {
        if new.chars().any(char::is_control) {
            double_quoted(new)
        } else {
            single_quoted(new)
        }
    } else if raw.starts_with('"') {
        double_quoted(new)
    } else {
        // A plain scalar can hold flow indicators only outside flow collections; if it held one,
        // it is not inside one.
        let in_flow = !raw.contains([',', '[', ']', '{', '}']);
        if plain_ok(new, in_flow) {
            new.to_string()
        } else {
            let line_start = doc.text[..start].rfind('\n').map_or(0, |i| i + 1);
            if doc.text[line_start..start].trim().is_empty() {
                return Err(doc.unsupported(
                    place,
                    start..end,
                    format!("the new value `{new}` needs quotes, and this value is on a line of its own (perhaps a block scalar)"),
                    "write the value after its key on one line",
                ));
            }
            single_quoted(new)
        }
    };
    Ok(Edit {
        start,
        end,
        replacement,
    })
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    escape::double_quoted(s, escape::yaml_unicode)
}

/// Whether `s` written as a plain scalar reads back as the string `s`.
fn plain_ok(s: &str, in_flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.trim() != s || s.chars().any(char::is_control) {
        return false;
    }
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    if in_flow && s.contains([',', '[', ']', '{', '}']) {
        return false;
    }
    // Would not read back as a string.
    let lower = s.to_ascii_lowercase();
    let special = [
        "null", "~", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "-.inf", ".nan",
    ];
    if special.contains(&lower.as_str()) {
        return false;
    }
    let numeric = s.parse::<f64>().is_ok()
        || lower.starts_with("0x")
        || lower.starts_with("0o")
        || (s
            .chars()
            .all(|c| c.is_ascii_digit() || "._:+-eE".contains(c))
            && s.chars().any(|c| c.is_ascii_digit()));
    !numeric
}

/// A generated value: `key: scalar` or `key: {inner: scalar}`.
#[derive(Clone, Copy)]
enum NewValue<'a> {
    Scalar(&'a str, &'a str),
    Map(&'a str, &'a str, &'a str),
}

impl NewValue<'_> {
    /// Block style; a nested mapping's key indented by `nested_indent`, lines ended by `eol`.
    fn block(self, nested_indent: usize, eol: &str) -> String {
        match self {
            Self::Scalar(key, value) => format!("{key}: {}", plain_or_quoted(value, false)),
            Self::Map(key, inner, value) => format!(
                "{key}:{eol}{:nested_indent$}{inner}: {}",
                "",
                plain_or_quoted(value, false)
            ),
        }
    }

    fn flow(self) -> String {
        match self {
            Self::Scalar(key, value) => format!("{key}: {}", plain_or_quoted(value, true)),
            Self::Map(key, inner, value) => {
                format!("{key}: {{{inner}: {}}}", plain_or_quoted(value, true))
            }
        }
    }
}

fn plain_or_quoted(s: &str, in_flow: bool) -> String {
    if plain_ok(s, in_flow) {
        s.to_string()
    } else if s.chars().any(char::is_control) {
        double_quoted(s)
    } else {
        single_quoted(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Mappings: replacing some keys of a block or flow mapping by one new key

/// In the mapping whose first key (block) or `{` (flow) is at `start`, replaces the first of the
/// `keys` present by `new` and deletes the other `keys`. `expected` are the keys the parsed
/// model says are there: each must be found in the text, or the layout is not one this scanner
/// understands (a merge key, an anchor) and the rewrite is refused.
fn replace_keys(
    doc: &Doc<'_>,
    place: &str,
    start: usize,
    keys: &[&str],
    expected: &[&str],
    new: NewValue<'_>,
) -> Result<Vec<Edit>, RewriteError> {
    let text = doc.text;
    let layout_err = |message: String| {
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        doc.unsupported(
            place,
            start..end,
            message,
            "write the entry as a plain block or flow mapping, without anchors or merge keys",
        )
    };
    // Each expected key must be among `keys` and written in the entry.
    let check_found = |written: Vec<&str>| -> Result<(), RewriteError> {
        match expected
            .iter()
            .find(|k| !(keys.contains(k) && written.contains(k)))
        {
            Some(missing) => Err(layout_err(format!(
                "its `{missing}` key is not written in the entry itself (a merge key or an alias?)"
            ))),
            None => Ok(()),
        }
    };
    let mut edits = Vec::new();
    if text[start..].starts_with('{') {
        let entries = flow_mapping(text, start).map_err(layout_err)?;
        check_found(entries.iter().map(|e| e.key.as_str()).collect())?;
        let mut replaced = false;
        for (i, e) in entries.iter().enumerate() {
            if !keys.contains(&e.key.as_str()) {
                continue;
            }
            if !replaced {
                replaced = true;
                edits.push(Edit {
                    start: e.start,
                    end: e.end,
                    replacement: new.flow(),
                });
            } else {
                // Never the first entry: the first matching one is replaced, not deleted.
                let prev_end = entries.get(i.wrapping_sub(1)).map_or(e.start, |p| p.end);
                edits.push(Edit {
                    start: prev_end,
                    end: e.end,
                    replacement: String::new(),
                });
            }
        }
    } else {
        let lines = block_mapping(text, start).map_err(layout_err)?;
        check_found(lines.iter().map(|e| e.key.as_str()).collect())?;
        let mut replaced = false;
        for e in lines.iter().filter(|e| keys.contains(&e.key.as_str())) {
            if !replaced {
                replaced = true;
                let column = e.key_start - e.line_start;
                let nested = e
                    .nested_indent
                    .filter(|&n| n > column)
                    .unwrap_or(column + 2);
                let eol = if text[e.value_end..].starts_with("\r\n") {
                    "\r\n"
                } else {
                    "\n"
                };
                edits.push(Edit {
                    start: e.key_start,
                    end: e.value_end,
                    replacement: new.block(nested, eol),
                });
            } else {
                edits.push(Edit {
                    start: e.line_start,
                    end: next_line_start(text, e.value_end),
                    replacement: String::new(),
                });
            }
        }
    }
    Ok(edits)
}

/// A key of a block mapping and the extent of its value.
#[derive(Debug)]
struct BlockKey {
    key: String,
    /// Start of the key's line, and of the key itself (after indentation or `- `).
    line_start: usize,
    key_start: usize,
    /// End of the value's last line (before its line break), trailing comment included.
    value_end: usize,
    /// Indentation of the value's first nested line, if it has nested lines.
    nested_indent: Option<usize>,
}

fn line_end(text: &str, pos: usize) -> usize {
    let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
    if end > pos && text.as_bytes()[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

fn next_line_start(text: &str, pos: usize) -> usize {
    text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1)
}

/// The keys of the block mapping whose first key starts at `first`. A key is a line at the first
/// key's column; a value is the rest of its key's line and every following line that is deeper
/// (or, at the key's column, a `- ` item of an indentless sequence). Blank and comment lines
/// belong to the value only when a deeper line follows them. The mapping ends at a shallower line.
fn block_mapping(text: &str, first: usize) -> Result<Vec<BlockKey>, String> {
    let first_line = text[..first].rfind('\n').map_or(0, |i| i + 1);
    let prefix = &text[first_line..first];
    if !prefix.chars().all(|c| c == ' ' || c == '-') {
        return Err(format!(
            "the entry starts after `{}` on its line",
            prefix.trim()
        ));
    }
    let column = first - first_line;
    let mut keys = vec![BlockKey {
        key: block_key(text, first)?,
        line_start: first_line,
        key_start: first,
        value_end: line_end(text, first_line),
        nested_indent: None,
    }];
    let mut pos = next_line_start(text, first_line);
    while pos < text.len() {
        let end = line_end(text, pos);
        let line = &text[pos..end];
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if content.trim().is_empty() || content.starts_with('#') {
            pos = next_line_start(text, pos);
            continue;
        }
        if content.starts_with('\t') && indent <= column {
            return Err("a tab in the indentation".into());
        }
        let Some(current) = keys.last_mut() else {
            break;
        };
        let item = content == "-" || content.starts_with("- ");
        if indent > column || (indent == column && item) {
            current.value_end = end;
            current.nested_indent.get_or_insert(indent);
        } else if indent == column {
            if column == 0 && (content.starts_with("---") || content.starts_with("...")) {
                break;
            }
            keys.push(BlockKey {
                key: block_key(text, pos + column)?,
                line_start: pos,
                key_start: pos + column,
                value_end: end,
                nested_indent: None,
            });
        } else {
            break;
        }
        pos = next_line_start(text, pos);
    }
    Ok(keys)
}

/// The key written at `at` (`name:`, `'name':`, `"name":`).
fn block_key(text: &str, at: usize) -> Result<String, String> {
    let line = &text[at..line_end(text, at)];
    let bad = || format!("`{}` is not a `key: value` line", line.trim());
    let (key, rest) = if let Some(q) = line.strip_prefix('\'') {
        let close = q.find('\'').ok_or_else(bad)?;
        (&q[..close], &q[close + 1..])
    } else if let Some(q) = line.strip_prefix('"') {
        let close = q.find('"').ok_or_else(bad)?;
        (&q[..close], &q[close + 1..])
    } else {
        if line.starts_with("? ") || line == "?" {
            return Err("a complex key (`? `)".into());
        }
        let colon = line
            .match_indices(':')
            .map(|(i, _)| i)
            .find(|&i| matches!(line.as_bytes().get(i + 1), None | Some(b' ' | b'\t')))
            .ok_or_else(bad)?;
        (line[..colon].trim_end(), &line[colon..])
    };
    if !rest.trim_start().starts_with(':') {
        return Err(bad());
    }
    Ok(key.to_string())
}

/// An entry of a flow mapping: its key and the range from its first to past its last character.
#[derive(Debug)]
struct FlowEntry {
    key: String,
    start: usize,
    end: usize,
}

/// The entries of the flow mapping whose `{` is at `open`.
fn flow_mapping(text: &str, open: usize) -> Result<Vec<FlowEntry>, String> {
    let b = text.as_bytes();
    let mut entries = Vec::new();
    let mut depth = 0usize;
    let mut entry_start: Option<usize> = None;
    let mut entry_end = open;
    let mut key_end: Option<usize> = None;
    let mut prev_sig = b'{';
    let mut prev_ws = true;
    let mut i = open;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                prev_ws = true;
                i += 1;
                continue;
            }
            b'#' if prev_ws => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            b'\'' | b'"' if matches!(prev_sig, b'{' | b'[' | b',' | b':' | b'?') => {
                if depth == 1 {
                    entry_start.get_or_insert(i);
                }
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => return Err("an unterminated quoted scalar".into()),
                        Some(b'\\') if c == b'"' => j += 2,
                        Some(b'\'') if c == b'\'' && b.get(j + 1) == Some(&b'\'') => j += 2,
                        Some(&q) if q == c => break,
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
                entry_end = i;
                prev_sig = c;
                prev_ws = false;
                continue;
            }
            b'{' | b'[' => {
                if depth == 1 {
                    entry_start.get_or_insert(i);
                }
                depth += 1;
                entry_end = i + 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    finish_flow_entry(
                        text,
                        &mut entries,
                        &mut entry_start,
                        &mut key_end,
                        entry_end,
                    );
                    return Ok(entries);
                }
                entry_end = i + 1;
            }
            b',' if depth == 1 => finish_flow_entry(
                text,
                &mut entries,
                &mut entry_start,
                &mut key_end,
                entry_end,
            ),
            b':' if depth == 1
                && key_end.is_none()
                && entry_start.is_some()
                && (matches!(prev_sig, b'\'' | b'"')
                    || matches!(
                        b.get(i + 1),
                        None | Some(
                            b' ' | b'\t' | b'\r' | b'\n' | b',' | b'{' | b'}' | b'[' | b']'
                        )
                    )) =>
            {
                key_end = Some(i);
                entry_end = i + 1;
            }
            _ => {
                if depth == 1 {
                    entry_start.get_or_insert(i);
                }
                entry_end = i + 1;
            }
        }
        prev_sig = c;
        prev_ws = false;
        i += 1;
    }
    Err("an unterminated flow mapping".into())
}

fn finish_flow_entry(
    text: &str,
    entries: &mut Vec<FlowEntry>,
    entry_start: &mut Option<usize>,
    key_end: &mut Option<usize>,
    end: usize,
) {
    if let Some(s) = entry_start.take() {
        let raw = text[s..key_end.take().unwrap_or(end)].trim();
        let key = raw
            .strip_prefix('\'')
            .and_then(|k| k.strip_suffix('\''))
            .or_else(|| raw.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
            .unwrap_or(raw);
        entries.push(FlowEntry {
            key: key.to_string(),
            start: s,
            end,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Applying and checking

/// Where `token` stands in `range` of `text` as a whole token: delimited by whitespace, a quote
/// or the ends of the range (as [`devfile::image_tokens`] delimits them in the value).
fn whole_tokens(text: &str, range: &Range<usize>, token: &str) -> Vec<usize> {
    let raw = &text[range.clone()];
    let delimiter = |c: Option<char>| c.is_none_or(devfile::is_token_delimiter);
    raw.match_indices(token)
        .filter(|(i, _)| {
            delimiter(raw[..*i].chars().next_back())
                && delimiter(raw[i + token.len()..].chars().next())
        })
        .map(|(i, _)| range.start + i)
        .collect()
}

fn apply_edits(doc: &Doc<'_>, mut edits: Vec<Edit>) -> Result<String, RewriteError> {
    edits.sort();
    edits.dedup();
    let text = doc.text;
    for w in edits.windows(2) {
        if w[1].start < w[0].end {
            return Err(doc.bug(format!(
                "two edits overlap at bytes {}..{} and {}..{}",
                w[0].start, w[0].end, w[1].start, w[1].end
            )));
        }
    }
    if let Some(e) = edits.iter().find(|e| {
        e.start > e.end || !text.is_char_boundary(e.start) || !text.is_char_boundary(e.end)
    }) {
        return Err(doc.bug(format!(
            "an edit at bytes {}..{} is not in the text",
            e.start, e.end
        )));
    }
    // Back to front, so that each range still means what it meant in the original.
    let mut out = text.to_string();
    for e in edits.iter().rev() {
        out.replace_range(e.start..e.end, &e.replacement);
    }
    Ok(out)
}

/// What the rewritten devfile must say, checked by parsing it again.
#[derive(Default)]
struct Expected {
    /// Component images, then the image references inside text values.
    images: Vec<String>,
    /// Every text value ([`devfile::Devfile::text_values`]), as it must read afterwards.
    texts: Vec<String>,
    projects: Vec<(&'static str, String, String)>,
    parent: Option<String>,
    icon: Option<String>,
}

impl Expected {
    fn check(&self, doc: &Doc<'_>, out: &str) -> Result<(), RewriteError> {
        let d = devfile::parse(doc.path, out)
            .map_err(|e| doc.bug(format!("the rewritten devfile does not parse: {e}")))?;
        let images: Vec<String> = d.images().into_iter().map(|i| i.written).collect();
        if images != self.images {
            return Err(doc.bug(format!(
                "the rewritten devfile has the images {images:?}, expected {:?}",
                self.images
            )));
        }
        let texts = d.text_values();
        if texts.len() != self.texts.len() {
            return Err(doc.bug(format!(
                "the rewritten devfile has {} text values, expected {}",
                texts.len(),
                self.texts.len()
            )));
        }
        if let Some((got, want)) = texts.iter().zip(&self.texts).find(|(t, w)| &t.value != *w) {
            return Err(doc.bug(format!(
                "{} of the rewritten devfile is `{}`, expected `{want}`",
                got.place, got.value
            )));
        }
        for (kind, name, location) in &self.projects {
            let list = if *kind == "projects" {
                d.projects()
            } else {
                d.starter_projects()
            };
            let ok = list.iter().any(|p| {
                &p.name == name
                    && p.sub_dir.is_none()
                    && p.source
                        == ProjectSource::Zip {
                            location: location.clone(),
                        }
            });
            if !ok {
                return Err(doc.bug(format!(
                    "{kind}[{name}] of the rewritten devfile is not `zip: {{location: {location}}}`"
                )));
            }
        }
        if let Some(parent) = &self.parent
            && d.parent() != Some(ParentRef::Uri(parent.clone()))
        {
            return Err(doc.bug(format!(
                "the rewritten devfile's parent is {:?}, expected the URI `{parent}`",
                d.parent()
            )));
        }
        if let Some(icon) = &self.icon
            && d.icon().as_ref() != Some(icon)
        {
            return Err(doc.bug(format!(
                "the rewritten devfile's icon is {:?}, expected `{icon}`",
                d.icon()
            )));
        }
        Ok(())
    }
}

/// The few spans [`devfile::Devfile`] does not keep: where the parent mapping starts, and the
/// values of `metadata`'s keys. Parsed only when the plan needs them.
#[derive(Deserialize, Default)]
struct View {
    #[serde(default)]
    metadata: Option<BTreeMap<String, Spanned<StringScalar>>>,
    #[serde(default)]
    parent: Option<Spanned<IgnoredAny>>,
}

impl View {
    fn parse(path: &str, text: &str) -> Result<View, DevfileError> {
        let view: Option<View> = serde_saphyr::from_str(text).map_err(|e| DevfileError {
            path: path.to_string(),
            message: e.to_string().lines().next().unwrap_or_default().to_string(),
        })?;
        Ok(view.unwrap_or_default())
    }
}

/// Any YAML value; `Some` when it is a string.
struct StringScalar(Option<String>);

impl<'de> Deserialize<'de> for StringScalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StringScalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StringScalar, E> {
                Ok(StringScalar(Some(v.to_string())))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<StringScalar, E> {
                Ok(StringScalar(None))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<StringScalar, E> {
                Ok(StringScalar(None))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<StringScalar, E> {
                Ok(StringScalar(None))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<StringScalar, E> {
                Ok(StringScalar(None))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<StringScalar, E> {
                Ok(StringScalar(None))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<StringScalar, E> {
                Ok(StringScalar(None))
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<StringScalar, D::Error> {
                StringScalar::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<StringScalar, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(StringScalar(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<StringScalar, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StringScalar(None))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream hosts outside comments

/// Each line of a YAML text with its comments blanked out.
fn yaml_content_lines(text: &str) -> Vec<String> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut quote = Quote::None;
    let mut block_indent: Option<usize> = None;
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(b) = block_indent {
            if line.trim().is_empty() || indent > b {
                out.push(line.to_string());
                continue;
            }
            block_indent = None;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut content = String::with_capacity(line.len());
        let mut prev_sig: Option<char> = None;
        let mut prev_ws = true;
        let mut block_header = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match quote {
                Quote::Single => {
                    content.push(c);
                    if c == '\'' {
                        if chars.get(i + 1) == Some(&'\'') {
                            content.push('\'');
                            i += 1;
                        } else {
                            quote = Quote::None;
                            prev_sig = Some(c);
                            prev_ws = false;
                        }
                    }
                    i += 1;
                    continue;
                }
                Quote::Double => {
                    content.push(c);
                    if c == '\\' {
                        if let Some(&n) = chars.get(i + 1) {
                            content.push(n);
                            i += 1;
                        }
                    } else if c == '"' {
                        quote = Quote::None;
                        prev_sig = Some(c);
                        prev_ws = false;
                    }
                    i += 1;
                    continue;
                }
                Quote::None => {}
            }
            if c.is_whitespace() {
                content.push(c);
                prev_ws = true;
                i += 1;
                continue;
            }
            if c == '#' && prev_ws {
                break;
            }
            let scalar_start = match prev_sig {
                None => true,
                Some(p) => {
                    matches!(p, '[' | '{' | ',') || (matches!(p, ':' | '-' | '?') && prev_ws)
                }
            };
            if scalar_start && c == '\'' {
                quote = Quote::Single;
            } else if scalar_start && c == '"' {
                quote = Quote::Double;
            } else if scalar_start && (c == '|' || c == '>') {
                let rest: String = chars[i + 1..].iter().collect();
                let after =
                    rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '+' || c == '-');
                let after = after.trim_start();
                if after.is_empty() || after.starts_with('#') {
                    block_header = true;
                }
            }
            content.push(c);
            prev_sig = Some(c);
            prev_ws = false;
            i += 1;
        }
        if block_header {
            block_indent = Some(indent);
        }
        out.push(content);
    }
    out
}

fn find_hosts(lines: &[String], hosts: &[&str]) -> Vec<HostHit> {
    let mut hits = BTreeSet::new();
    for (n, line) in lines.iter().enumerate() {
        let lower = line.to_ascii_lowercase();
        for host in hosts {
            if contains_host(&lower, &host.to_ascii_lowercase()) {
                hits.insert(HostHit {
                    line: n + 1,
                    host: host.to_string(),
                });
            }
        }
    }
    hits.into_iter().collect()
}

/// Whether `hay` names `host` (both lower-case) as a whole host name or the parent of one.
/// An empty host is never named.
pub(crate) fn contains_host(hay: &str, host: &str) -> bool {
    if host.is_empty() {
        return false;
    }
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let b = hay.as_bytes();
    hay.match_indices(host).any(|(p, _)| {
        let before_ok = p == 0 || !word(b[p - 1]);
        let after = p + host.len();
        let after_ok = match b.get(after) {
            None => true,
            Some(b'.') => !b.get(after + 1).is_some_and(|&c| word(c)),
            Some(&c) => !word(c),
        };
        before_ok && after_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_part_of_references() {
        fn n(s: &str) -> &str {
            &s[..name_len(s)]
        }
        assert_eq!(n("quay.io/a/b:1.0"), "quay.io/a/b");
        assert_eq!(n("localhost:5000/b:1.0@sha256:ab"), "localhost:5000/b");
        assert_eq!(n("quay.io/a/b@sha256:ab"), "quay.io/a/b");
        assert_eq!(n("openjdk:11-jdk"), "openjdk");
        assert_eq!(n("ubuntu"), "ubuntu");
        assert_eq!(n("icr.io/x/y:{{v}}-gradle"), "icr.io/x/y");
        assert_eq!(n("quay.io/x/y:${V:-a/b:c}"), "quay.io/x/y");
        assert_eq!(n("{{registry}}/x/y:1"), "{{registry}}/x/y");
    }

    #[test]
    fn mirrored_reference_keeps_variable_tags() {
        let t = "localhost:8080/y:22.0@sha256:00";
        assert_eq!(mirrored_reference("icr.io/x/y:22.0", t).unwrap(), t);
        assert_eq!(
            mirrored_reference("icr.io/x/y:{{v}}-gradle", t).unwrap(),
            "localhost:8080/y:{{v}}-gradle"
        );
        assert_eq!(
            mirrored_reference("quay.io/w/y:$V", t).unwrap(),
            "localhost:8080/y:$V"
        );
        assert!(mirrored_reference("{{reg}}/y:1", t).is_err());
        assert!(mirrored_reference("$REG/y:1", t).is_err());
    }

    #[test]
    fn plain_scalars_that_read_back() {
        assert!(plain_ok("localhost:8080/a:1@sha256:ab", true));
        assert!(plain_ok("logo.svg", true));
        assert!(!plain_ok("a: b", false));
        assert!(!plain_ok("true", false));
        assert!(!plain_ok("1.0", false));
        assert!(!plain_ok("", false));
        assert!(!plain_ok("{{x}}", false));
        assert!(plain_ok("a:{{x}}", false));
        assert!(!plain_ok("a:{{x}}", true));
    }

    #[test]
    fn hosts_match_whole_names() {
        assert!(contains_host("see https://github.com/x", "github.com"));
        assert!(contains_host("api.github.com", "github.com"));
        assert!(contains_host("at github.com.", "github.com"));
        assert!(!contains_host("notgithub.com", "github.com"));
        assert!(!contains_host("github.community", "github.com"));
        assert!(!contains_host("quay.io.example", "quay.io"));
    }

    #[test]
    fn flow_mapping_entries() {
        let t = "x: {name: a, 'git': {remotes: {o: 'u,}'}}, subDir: s # c\n}";
        let open = t.find('{').unwrap();
        let e = flow_mapping(t, open).unwrap();
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["name", "git", "subDir"]);
        assert_eq!(&t[e[1].start..e[1].end], "'git': {remotes: {o: 'u,}'}}");
        assert_eq!(&t[e[2].start..e[2].end], "subDir: s");
    }
}
