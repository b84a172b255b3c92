//! Diagnostics that point into a file the user wrote (the manifest) or the tool wrote (the
//! lockfile): a message, the span, a label, an optional `help:` line, and a stable code.
//!
//! Parsers collect every problem they find instead of stopping at the first, so a user fixes a
//! manifest in one pass; [`Diagnostics`] carries them all and renders each with its own span.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

/// The text of one file, shared by all diagnostics pointing into it.
pub type Source = Arc<NamedSource<Arc<str>>>;

/// Makes a shareable named source from a file's display name and text.
pub fn source(name: impl AsRef<str>, text: &str) -> Source {
    Arc::new(NamedSource::new(name, Arc::from(text)))
}

/// One problem at one place of a file.
#[derive(Debug, Clone)]
pub struct SpanDiagnostic {
    pub code: &'static str,
    pub message: String,
    pub span: SourceSpan,
    pub label: String,
    pub help: Option<String>,
    pub src: Source,
    /// More places the problem involves (the first of two duplicates), each with its label.
    pub also: Vec<(SourceSpan, String)>,
}

impl SpanDiagnostic {
    pub fn new(
        src: &Source,
        code: &'static str,
        span: SourceSpan,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            message: message.into(),
            span,
            label: "here".into(),
            help: None,
            src: src.clone(),
            also: Vec::new(),
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Points at one more place, with its own label.
    pub fn also(mut self, span: SourceSpan, label: impl Into<String>) -> Self {
        self.also.push((span, label.into()));
        self
    }

    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}

/// The longest label underline: a longer span on one line is underlined from its start.
const MAX_LABEL: usize = 80;
/// The most text shown around a label before it is cut to a window of the label's line.
const MAX_SNIPPET: usize = 4096;
/// How much of a long line a window shows before and after the label.
const WINDOW: (usize, usize) = (40, 120);

impl SpanDiagnostic {
    /// `span` cut to its first [`MAX_LABEL`] bytes when it is longer and on one line, or longer
    /// than a snippet.
    fn clamp(&self, span: SourceSpan) -> SourceSpan {
        let text: &str = self.src.inner();
        let start = span.offset().min(text.len());
        let end = (start + span.len()).min(text.len());
        let one_line = !text.as_bytes()[start..end].contains(&b'\n');
        if end - start <= MAX_LABEL || (!one_line && end - start <= MAX_SNIPPET) {
            return span;
        }
        let end = text.ceil_char_boundary(start + MAX_LABEL);
        SourceSpan::from(start..end)
    }
}

/// The text around a label, as [`NamedSource`] gives it, unless that is longer than
/// [`MAX_SNIPPET`] (a line of megabytes): then a window of the label's own line, so a
/// diagnostic stays a few lines long whatever the input.
impl miette::SourceCode for SpanDiagnostic {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let full = self.src.read_span(span, before, after)?;
        if full.data().len() <= MAX_SNIPPET {
            return Ok(full);
        }
        let text: &str = self.src.inner();
        let start = text.floor_char_boundary(span.offset().min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let a = text
            .floor_char_boundary(start.saturating_sub(WINDOW.0))
            .max(line_start);
        let b = text
            .ceil_char_boundary(start + span.len().min(MAX_LABEL) + WINDOW.1)
            .min(line_end);
        let line = text.as_bytes()[..a].iter().filter(|c| **c == b'\n').count();
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.src.name().to_string(),
            &text.as_bytes()[a..b],
            SourceSpan::from(a..b),
            line,
            a - line_start,
            line + 1,
        )))
    }
}

impl fmt::Display for SpanDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpanDiagnostic {}

impl Diagnostic for SpanDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(self)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let main =
            LabeledSpan::new_primary_with_span(Some(self.label.clone()), self.clamp(self.span));
        let also = self.also.iter().map(|(span, label)| {
            LabeledSpan::new_with_span(Some(label.clone()), self.clamp(*span))
        });
        Some(Box::new(std::iter::once(main).chain(also)))
    }
}

/// Every problem found in one file. Never empty.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub file: String,
    pub items: Vec<SpanDiagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.items.as_slice() {
            [one] => write!(f, "{one}"),
            many => write!(f, "{} problems in `{}`", many.len(), self.file),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostic for Diagnostics {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self.items.as_slice() {
            [one] => one.code(),
            _ => None,
        }
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self.items.as_slice() {
            [one] => Diagnostic::help(one),
            _ => None,
        }
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        match self.items.as_slice() {
            [one] => one.source_code(),
            _ => None,
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        match self.items.as_slice() {
            [one] => one.labels(),
            _ => None,
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        match self.items.as_slice() {
            [_] => None,
            many => Some(Box::new(many.iter().map(|d| d as &dyn Diagnostic))),
        }
    }
}

/// The most characters of a user's literal a diagnostic's message quotes.
pub const MAX_QUOTED: usize = 60;

/// `s` as a diagnostic's message quotes it: control characters escaped (`\n`), and cut after
/// [`MAX_QUOTED`] characters with `…`, so a 10 MB name is not echoed whole.
pub fn literal(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == MAX_QUOTED {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The closest candidate to `wrong`, when one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wrong, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Renders a diagnostic as plain text (no colour, no links, fixed width): what users see when
/// stderr is not a terminal, and what snapshot tests compare.
pub fn render_plain(diagnostic: &dyn Diagnostic) -> String {
    let mut out = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100)
            .with_links(false);
    if handler.render_report(&mut out, diagnostic).is_err() {
        out = diagnostic.to_string();
    }
    out
}
