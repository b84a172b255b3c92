//! The one error type of the image layer.

use std::path::PathBuf;

use super::auth::AuthError;
use super::digest::{Digest, DigestError, Mismatch};
use super::reference::RefError;

/// Everything that can go wrong resolving or copying images. Messages name the image, the
/// registry or the file, never a credential.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum OciError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Reference(#[from] RefError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Digest(#[from] DigestError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Auth(#[from] AuthError),

    #[error("cannot reach `{host}` ({action}): {message}")]
    #[diagnostic(
        code(airgap::oci::connection),
        help("check the registry address, `tls=` and `ca-file=`, or add a `registry-mirror`")
    )]
    Connection {
        host: String,
        action: String,
        message: String,
    },

    /// Nothing answered at all: the connection was refused, the name does not resolve, or
    /// the TLS handshake failed. Not retried, and remembered for the rest of the run (see
    /// [`super::registry`]): a stopped registry or a mistyped name does not start answering
    /// in the seconds retries wait, so every further request to the host fails at once with
    /// this same error.
    #[error("cannot connect to `{host}`: {message}")]
    #[diagnostic(
        code(airgap::oci::unreachable),
        help(
            "is a registry running at `{host}`? check the address and `tls=`; nothing was sent to it after this error"
        )
    )]
    Unreachable { host: String, message: String },

    /// A 429 or 503 with a `Retry-After`: retried after the delay the registry asked for.
    #[error("`{host}` answered {status} to {action} and asked to retry after {}s", retry_after.as_secs())]
    #[diagnostic(code(airgap::oci::throttled))]
    Throttled {
        host: String,
        action: String,
        status: u16,
        retry_after: std::time::Duration,
    },

    #[error("`{host}` answered {status} to {action}{}", body.as_deref().map(|b| format!(": {b}")).unwrap_or_default())]
    #[diagnostic(code(airgap::oci::status))]
    Status {
        host: String,
        action: String,
        status: u16,
        body: Option<String>,
    },

    /// The registry answered in a way the distribution protocol does not allow (or the
    /// registry client could not make sense of): not retried.
    #[error("`{host}` gave an answer airgap cannot use to {action}: {message}")]
    #[diagnostic(code(airgap::oci::protocol))]
    Protocol {
        host: String,
        action: String,
        message: String,
    },

    /// The registry wants credentials and none were found for it (so none were sent).
    #[error(
        "`{host}` asked for credentials for {action}, and airgap found none for it (it looked in {searched})"
    )]
    #[diagnostic(
        code(airgap::oci::no_credentials),
        help(
            "log in with `podman login {host}` (or set `$REGISTRY_AUTH_FILE` to a file that has them)"
        )
    )]
    NoCredentials {
        host: String,
        action: String,
        searched: String,
    },

    #[error("`{host}` refused the credentials for {action}")]
    #[diagnostic(
        code(airgap::oci::unauthorized),
        help("log in with `podman login {host}` (or set `$REGISTRY_AUTH_FILE`)")
    )]
    Unauthorized { host: String, action: String },

    #[error("`{what}` was not found")]
    #[diagnostic(code(airgap::oci::not_found))]
    NotFound { what: String },

    #[error("the content of `{what}` does not match `{expected}`: {mismatch}")]
    #[diagnostic(
        code(airgap::oci::digest_mismatch),
        help("the source is corrupted or was changed; nothing of it was kept")
    )]
    DigestMismatch {
        what: String,
        expected: Digest,
        mismatch: Mismatch,
    },

    #[error("`{what}` is not a manifest airgap can copy: {reason}")]
    #[diagnostic(code(airgap::oci::manifest))]
    Manifest { what: String, reason: String },

    #[error("`{image}` must be pinned to a digest before it is copied")]
    #[diagnostic(
        code(airgap::oci::unpinned),
        help("copies go by digest: resolve the reference first (`airgap lock`)")
    )]
    Unpinned { image: String },

    #[error("{action} `{}`: {source}", path.display())]
    #[diagnostic(code(airgap::oci::io))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{}` is not an OCI image layout airgap can use: {reason}", path.display())]
    #[diagnostic(code(airgap::oci::layout))]
    Layout { path: PathBuf, reason: String },
}

impl OciError {
    /// Whether trying again may help: server errors, throttling and dropped connections
    /// (not a connection that could not be made: [`OciError::Unreachable`]).
    pub fn is_retryable(&self) -> bool {
        match self {
            OciError::Connection { .. } | OciError::Throttled { .. } => true,
            OciError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }

    /// How long the registry asked to wait before trying again.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            OciError::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> OciError {
        let path = path.into();
        move |source| OciError::Io {
            action,
            path,
            source,
        }
    }

    /// A `map_err` for a [`super::digest::Verifier`]'s mismatch: `what` did not hash or
    /// measure to `expected`.
    pub(crate) fn digest_mismatch(
        what: impl Into<String>,
        expected: &Digest,
    ) -> impl FnOnce(Mismatch) -> OciError {
        let (what, expected) = (what.into(), expected.clone());
        move |mismatch| OciError::DigestMismatch {
            what,
            expected,
            mismatch,
        }
    }
}
