//! `url-mirror` rules: URLs starting with one prefix are fetched from another instead (git's
//! `url.<to>.insteadOf <from>`).
//!
//! A model type below both of the layers that apply it (HTTP downloads in [`crate::fetch`], git
//! fetches in the steps) and the manifest that declares it, so neither fetcher imports the
//! manifest. The lockfile always records a URL as written; only fetching goes through mirrors.

use miette::SourceSpan;

/// A `url-mirror` rule: URLs starting with `from` are fetched from `to` + the rest instead
/// (git's `url.<to>.insteadOf <from>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlMirror {
    pub from: String,
    pub to: String,
    pub span: SourceSpan,
}

/// Applies the longest matching `url-mirror` rule to a URL. The lockfile always records the
/// URL as written; only fetching goes through mirrors.
pub fn mirror_url(rules: &[UrlMirror], url: &str) -> String {
    rules
        .iter()
        .filter(|r| url.starts_with(&r.from))
        .max_by_key(|r| r.from.len())
        .map(|r| format!("{}{}", r.to, &url[r.from.len()..]))
        .unwrap_or_else(|| url.to_string())
}
