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

    #[error("`{host}` answered {status} to {action}{}", body.as_deref().map(|b| format!(": {b}")).unwrap_or_default())]
    #[diagnostic(code(airgap::oci::status))]
    Status {
        host: String,
        action: String,
        status: u16,
        body: Option<String>,
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

    #[error("no manifest of `{image}` matches the platforms {wanted}; it has {available}")]
    #[diagnostic(
        code(airgap::oci::platforms),
        help("change `platforms` in the manifest, or leave it out to copy every platform")
    )]
    NoPlatform {
        image: String,
        wanted: String,
        available: String,
    },

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
    /// Whether trying again may help: server errors, throttling and dropped connections.
    pub fn is_retryable(&self) -> bool {
        match self {
            OciError::Connection { .. } => true,
            OciError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
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
}
