//! HTTPS for `airgap serve --tls-cert FILE --tls-key FILE`.
//!
//! The certificate (a PEM chain, leaf first) and the key (PEM PKCS#8, `BEGIN PRIVATE KEY`, what
//! `openssl req -newkey … -nodes` writes) are read and checked before the server listens, so a
//! wrong file is an error naming it rather than a handshake failure at the first client:
//! each file must hold what its flag says, the certificate must parse, and the key must belong
//! to the certificate. native-tls does not compare them (the acceptor accepts any key), so
//! [`load`] runs one TLS handshake with itself over an in-memory pipe: the client half checks
//! the server's signature against the certificate, which fails with a foreign key.
//!
//! native-tls (OpenSSL here) was already a dependency through reqwest; `tokio-native-tls`
//! adapts it to the accept loop of [`super::connections`] and was already in the build too.
//! A PKCS#1 (`BEGIN RSA PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`) key is refused with the
//! `openssl pkcs8` command that converts it: native-tls reads PKCS#8 only.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_native_tls::TlsAcceptor;

/// The two files of `--tls-cert` and `--tls-key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the certificate or the key cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TlsError {
    #[error("cannot read `{}`", path.display())]
    #[diagnostic(code(airgap::serve::tls_read))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)", path.display())]
    #[diagnostic(
        code(airgap::serve::tls_cert),
        help("`--tls-cert` takes the server's certificate in PEM, leaf first, then its chain")
    )]
    NotACertificate { path: PathBuf },

    #[error("`{}` is not a valid PEM certificate", path.display())]
    #[diagnostic(code(airgap::serve::tls_cert))]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: native_tls::Error,
    },

    #[error("`{}` holds no PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`)", path.display())]
    #[diagnostic(
        code(airgap::serve::tls_key),
        help(
            "an RSA or EC key in another PEM form converts with \
             `openssl pkcs8 -topk8 -nocrypt -in KEY -out key.pem`; an encrypted key must be \
             decrypted the same way"
        )
    )]
    NotPkcs8 { path: PathBuf },

    #[error("`{}` is not a usable private key for `{}`", key.display(), cert.display())]
    #[diagnostic(code(airgap::serve::tls_key))]
    BadKey {
        key: PathBuf,
        cert: PathBuf,
        #[source]
        source: native_tls::Error,
    },

    #[error("the key `{}` does not belong to the certificate `{}`", key.display(), cert.display())]
    #[diagnostic(
        code(airgap::serve::tls_mismatch),
        help("pass the key the certificate was issued for")
    )]
    Mismatch {
        key: PathBuf,
        cert: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

const CERT_HEADER: &[u8] = b"-----BEGIN CERTIFICATE-----";
const PKCS8_HEADER: &[u8] = b"-----BEGIN PRIVATE KEY-----";

/// Reads `files` into an acceptor, checking that the key belongs to the certificate.
pub async fn load(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let cert = read(&files.cert)?;
    let key = read(&files.key)?;
    let Some(cert_at) = find(&cert, CERT_HEADER) else {
        return Err(TlsError::NotACertificate {
            path: files.cert.clone(),
        });
    };
    native_tls::Certificate::from_pem(&cert[cert_at..]).map_err(|source| {
        TlsError::BadCertificate {
            path: files.cert.clone(),
            source,
        }
    })?;
    // native-tls wants the marker at the very start: skip what precedes it (comments, as
    // `openssl` and some CAs write above the PEM block).
    let Some(key_at) = find(&key, PKCS8_HEADER) else {
        return Err(TlsError::NotPkcs8 {
            path: files.key.clone(),
        });
    };
    let bad_key = |source| TlsError::BadKey {
        key: files.key.clone(),
        cert: files.cert.clone(),
        source,
    };
    let identity =
        native_tls::Identity::from_pkcs8(&cert[cert_at..], &key[key_at..]).map_err(bad_key)?;
    let acceptor = native_tls::TlsAcceptor::new(identity).map_err(bad_key)?;
    let acceptor = TlsAcceptor::from(acceptor);
    handshake_with_itself(&acceptor)
        .await
        .map_err(|source| TlsError::Mismatch {
            key: files.key.clone(),
            cert: files.cert.clone(),
            source,
        })?;
    Ok(acceptor)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One handshake and one byte each way between `acceptor` and a client that trusts any
/// certificate but still verifies the handshake's signature with the certificate's public key.
async fn handshake_with_itself(acceptor: &TlsAcceptor) -> std::io::Result<()> {
    let connector = native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .build()
        .map_err(std::io::Error::other)?;
    let connector = tokio_native_tls::TlsConnector::from(connector);
    let (client, server) = tokio::io::duplex(64 * 1024);
    let server = async {
        let mut s = acceptor
            .accept(server)
            .await
            .map_err(std::io::Error::other)?;
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await?;
        s.write_all(&byte).await?;
        s.flush().await
    };
    let client = async {
        let mut c = connector
            .connect("self-check", client)
            .await
            .map_err(std::io::Error::other)?;
        c.write_all(b"x").await?;
        c.flush().await?;
        let mut byte = [0u8; 1];
        c.read_exact(&mut byte).await.map(|_| ())
    };
    // Whichever side fails first says why; the other would only report the broken pipe.
    tokio::try_join!(server, client).map(|_| ())
}
