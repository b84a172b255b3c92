//! Registry credentials, read from the files and helpers container tools use. A secret never
//! appears in output, logs or `Debug`.
//!
//! Lookup order for a registry host (the host actually contacted, i.e. the mirror's host when a
//! mirror applies): `$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`,
//! `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`). In each file, `credHelpers`,
//! then `auths`, then `credsStore` (helpers are `docker-credential-<name>` programs). The first
//! file that has an answer wins. A file that is not JSON is skipped with one warning per run
//! (naming the file and the parse error), so a broken `$REGISTRY_AUTH_FILE` does not pass for
//! an empty one.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use docker_credential::{CredentialRetrievalError, DockerCredential};

/// A credential for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Username and password (or a personal access token as password).
    Basic { username: String, password: String },
    /// A docker "identity token": an OAuth2 refresh token exchanged at the token endpoint.
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// A credential could not be read. Never carries the secret, nor a helper's output (which
/// could hold one).
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum AuthError {
    #[error("the credential helper `docker-credential-{helper}` failed for `{host}`")]
    #[diagnostic(
        code(airgap::oci::auth::helper),
        help("run `docker-credential-{helper} get` with `{host}` on its input to see why")
    )]
    Helper { helper: String, host: String },
    #[error("the credentials for `{host}` in `{file}` cannot be decoded")]
    #[diagnostic(
        code(airgap::oci::auth::decode),
        help("log in again (`podman login {host}` or `docker login {host}`)")
    )]
    Decode { host: String, file: String },
}

/// Files already warned about in this process: each broken file is reported once.
static WARNED: std::sync::LazyLock<Mutex<std::collections::BTreeSet<PathBuf>>> =
    std::sync::LazyLock::new(Mutex::default);

fn warn_once(file: &std::path::Path, error: &serde_json::Error) {
    let first = WARNED
        .lock()
        .map(|mut w| w.insert(file.to_path_buf()))
        .unwrap_or(true);
    if first {
        eprintln!(
            "warning: `{}` is not a credentials file airgap can read ({error}); it is skipped",
            file.display()
        );
    }
}

/// Where credentials come from: the usual files, plus credentials set in code (tests, flags).
/// Lookups are cached for the life of the value.
#[derive(Clone, Default)]
pub struct Credentials {
    files: Vec<PathBuf>,
    fixed: HashMap<String, Credential>,
    cache: Arc<Mutex<HashMap<String, Option<Credential>>>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("files", &self.files)
            .field("fixed_hosts", &self.fixed.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// No credentials at all: every registry is contacted anonymously.
    pub fn anonymous() -> Self {
        Credentials::default()
    }

    /// The usual files, in the order described in the module doc, read from the environment
    /// now (the files themselves are read on first use).
    pub fn from_environment() -> Self {
        Credentials::from_environment_with(|k| std::env::var_os(k))
    }

    /// As [`Credentials::from_environment`], with the variables read through `var` (tests
    /// use it rather than changing the process environment).
    pub fn from_environment_with(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Self {
        let env = |k: &str| var(k).filter(|v| !v.is_empty());
        let mut files = Vec::new();
        if let Some(path) = env("REGISTRY_AUTH_FILE") {
            files.push(PathBuf::from(path));
        }
        if let Some(dir) = env("XDG_RUNTIME_DIR") {
            files.push(PathBuf::from(dir).join("containers/auth.json"));
        }
        match (env("DOCKER_CONFIG"), env("HOME")) {
            (Some(dir), _) => files.push(PathBuf::from(dir).join("config.json")),
            (None, Some(home)) => files.push(PathBuf::from(home).join(".docker/config.json")),
            (None, None) => {}
        }
        Credentials {
            files,
            ..Credentials::default()
        }
    }

    /// Reads only `files`, in order (for tests and explicit `--authfile`-like options).
    pub fn from_files(files: Vec<PathBuf>) -> Self {
        Credentials {
            files,
            ..Credentials::default()
        }
    }

    /// Uses `credential` for `host`, before any file.
    pub fn with(mut self, host: impl Into<String>, credential: Credential) -> Self {
        self.fixed.insert(host.into(), credential);
        self
    }

    /// The credential for `host` (`host[:port]` as contacted), if any. May run a credential
    /// helper: call from a blocking context.
    pub fn lookup(&self, host: &str) -> Result<Option<Credential>, AuthError> {
        if let Some(c) = self.fixed.get(host) {
            return Ok(Some(c.clone()));
        }
        if let Ok(cache) = self.cache.lock()
            && let Some(hit) = cache.get(host)
        {
            return Ok(hit.clone());
        }
        let found = self.lookup_files(host)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(host.to_owned(), found.clone());
        }
        Ok(found)
    }

    /// Where [`Credentials::lookup`] looks, in order, for a message: each file with whether it
    /// exists (no content, never a secret).
    pub fn searched(&self) -> String {
        if self.files.is_empty() {
            return "no file (none of `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR`, `$DOCKER_CONFIG`, `$HOME` is set)".into();
        }
        self.files
            .iter()
            .map(|f| match std::fs::read(f) {
                Ok(text) if serde_json::from_slice::<serde_json::Value>(&text).is_ok() => {
                    format!("`{}`", f.display())
                }
                Ok(_) => format!("`{}` (not JSON)", f.display()),
                Err(_) => format!("`{}` (no such file)", f.display()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn lookup_files(&self, host: &str) -> Result<Option<Credential>, AuthError> {
        let keys: Vec<&str> = if host == "registry-1.docker.io" || host == "docker.io" {
            vec![
                "docker.io",
                "https://index.docker.io/v1/",
                "index.docker.io",
            ]
        } else {
            vec![host]
        };
        for file in &self.files {
            let Ok(text) = std::fs::read(file) else {
                continue;
            };
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&text) {
                warn_once(file, &e);
                continue;
            }
            for key in &keys {
                match docker_credential::get_credential_from_reader(text.as_slice(), key) {
                    Ok(DockerCredential::UsernamePassword(username, password)) => {
                        return Ok(Some(Credential::Basic { username, password }));
                    }
                    Ok(DockerCredential::IdentityToken(token)) => {
                        return Ok(Some(Credential::IdentityToken(token)));
                    }
                    Err(CredentialRetrievalError::NoCredentialConfigured)
                    | Err(CredentialRetrievalError::ConfigReadError)
                    | Err(CredentialRetrievalError::ConfigNotFound) => continue,
                    Err(CredentialRetrievalError::HelperFailure { helper, .. }) => {
                        return Err(AuthError::Helper {
                            helper,
                            host: host.to_owned(),
                        });
                    }
                    Err(CredentialRetrievalError::HelperCommunicationError)
                    | Err(CredentialRetrievalError::MalformedHelperResponse) => {
                        return Err(AuthError::Helper {
                            helper: "(configured helper)".into(),
                            host: host.to_owned(),
                        });
                    }
                    Err(CredentialRetrievalError::CredentialDecodingError)
                    | Err(CredentialRetrievalError::CredentialMismatchError) => {
                        return Err(AuthError::Decode {
                            host: host.to_owned(),
                            file: file.display().to_string(),
                        });
                    }
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_in_order_and_redacts() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("auth.json");
        let second = dir.path().join("config.json");
        // "alice:s3cret" and "bob:hunter2"
        std::fs::write(
            &first,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6czNjcmV0"}}}"#,
        )
        .unwrap();
        std::fs::write(
            &second,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"Ym9iOmh1bnRlcjI="},"quay.io":{"auth":"Ym9iOmh1bnRlcjI="}}}"#,
        )
        .unwrap();
        let creds = Credentials::from_files(vec![first, second, dir.path().join("missing")]);
        let c = creds.lookup("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(
            c,
            Credential::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            }
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!format!("{creds:?}").contains("s3cret"));
        let c = creds.lookup("quay.io").unwrap().unwrap();
        assert!(matches!(c, Credential::Basic { username, .. } if username == "bob"));
        assert_eq!(creds.lookup("ghcr.io").unwrap(), None);
    }
}
