//! Credentials written into URLs (`https://alice:token@git.example.com/registry`).
//!
//! The manifest may carry a user and password (or token) in the user-info part of a `git=`
//! URL or a `url-mirror` prefix, as `git clone` accepts them. They are taken out when the
//! manifest is read: everything downstream — the lockfile, `.airgap/` (state, journal, git
//! cache keys, `FETCH_HEAD`), progress lines and error messages — only ever sees the URL
//! without them, so nothing can store or print them by accident. The credentials stay in
//! memory, in [`UrlCredentials`], keyed by the URL (or prefix) they were written on, and are
//! handed to git when the server asks for authentication (and to HTTP downloads through a
//! mirror prefix), before git's credential helpers are asked. Diagnostics quote the manifest
//! through [`mask_in_text`], which blanks every URL's user-info without moving any span.
//!
//! For `http`/`https` every user-info is a secret (GitHub takes a bare token as the user name:
//! `https://TOKEN@github.com/…`); for other schemes (`ssh://git@host/…`) the user name stays in
//! the URL and only a password is taken out. `user@host:path` (scp-like) has no password.

use std::sync::Arc;

/// A user name and password taken from a URL. `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct UrlCredential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for UrlCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UrlCredential {{ username: {:?}, password: <redacted> }}",
            self.username
        )
    }
}

/// Splits the credentials off a URL: the URL without them, and what they were.
pub fn split(url: &str) -> (String, Option<UrlCredential>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_string(), None);
    };
    let (userinfo, host_and_rest) = (&rest[..at], &rest[at + 1..]);
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    let http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    if http {
        let credential = UrlCredential {
            username: percent_decode(user),
            password: password.map(percent_decode).unwrap_or_default(),
        };
        (format!("{scheme}://{host_and_rest}"), Some(credential))
    } else {
        match password {
            Some(p) => (
                format!("{scheme}://{user}@{host_and_rest}"),
                Some(UrlCredential {
                    username: percent_decode(user),
                    password: percent_decode(p),
                }),
            ),
            None => (url.to_string(), None),
        }
    }
}

/// The URL as it may be shown: without a password or an HTTP user-info.
pub fn redact(url: &str) -> String {
    split(url).0
}

/// `text` with the user-info of every URL in it (`scheme://USERINFO@host…`) replaced by `*`s
/// of the same byte length, so that byte spans into `text` still point at the same places:
/// what diagnostics quote of a manifest, instead of its text.
pub fn mask_in_text(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let authority_len = text[start..]
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\\') || c.is_whitespace())
            .unwrap_or(text.len() - start);
        if let Some(at) = text[start..start + authority_len].rfind('@') {
            bytes[start..start + at].fill(b'*');
        }
        from = start;
    }
    // Only ASCII bytes were written over whole characters' bytes, so this is still UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Credentials from the manifest, by the URL or URL prefix (without credentials) they were
/// written on. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct UrlCredentials {
    by_prefix: Arc<Vec<(String, UrlCredential)>>,
}

impl UrlCredentials {
    pub fn new(mut entries: Vec<(String, UrlCredential)>) -> Self {
        entries.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Self {
            by_prefix: Arc::new(entries),
        }
    }

    /// The credential written on the longest URL that `url` is, or starts with (at a path
    /// boundary, so `…/repo` does not lend its credential to `…/repo-other`).
    pub fn lookup(&self, url: &str) -> Option<&UrlCredential> {
        let url = redact(url);
        self.by_prefix
            .iter()
            .find(|(prefix, _)| {
                url.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                    rest.is_empty() || prefix.ends_with('/') || rest.starts_with(['/', '?'])
                })
            })
            .map(|(_, c)| c)
    }
}

/// Decodes `%XX` escapes (of a `file://` path, or of a password written in a URL).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_http_user_info_and_ssh_passwords_only() {
        let (url, c) = split("https://alice:p%40ss@git.example.com:8443/src?x=1");
        assert_eq!(url, "https://git.example.com:8443/src?x=1");
        let c = c.expect("a credential");
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "p@ss")
        );
        assert!(!format!("{c:?}").contains("p@ss"));

        let (url, c) = split("https://TOKEN@github.com/org/repo");
        assert_eq!(url, "https://github.com/org/repo");
        assert_eq!(c.map(|c| c.username), Some("TOKEN".into()));

        assert_eq!(split("ssh://git@host/repo").0, "ssh://git@host/repo");
        assert_eq!(split("ssh://git:pw@host/repo").0, "ssh://git@host/repo");
        assert_eq!(
            split("git@github.com:org/repo").0,
            "git@github.com:org/repo"
        );
        assert_eq!(split("https://host/a@b").0, "https://host/a@b");
    }

    #[test]
    fn masks_user_info_in_text_keeping_offsets() {
        let text = "source \"a\" git=\"https://alice:sécret@h/r\" // https://h/x@y\n";
        let masked = mask_in_text(text);
        assert_eq!(masked.len(), text.len());
        assert!(!masked.contains("alice") && !masked.contains("cret"));
        assert!(masked.contains("@h/r\" // https://h/x@y"));
    }

    #[test]
    fn looks_up_the_longest_prefix_at_a_path_boundary() {
        let cred = |u: &str| UrlCredential {
            username: u.into(),
            password: "p".into(),
        };
        let creds = UrlCredentials::new(vec![
            ("https://h/".into(), cred("mirror")),
            ("https://h/repo".into(), cred("repo")),
        ]);
        let user = |url: &str| creds.lookup(url).map(|c| c.username.clone());
        assert_eq!(user("https://h/repo"), Some("repo".into()));
        assert_eq!(user("https://h/repo/info/refs"), Some("repo".into()));
        assert_eq!(user("https://h/repo-other"), Some("mirror".into()));
        assert_eq!(user("https://other/repo"), None);
    }
}
