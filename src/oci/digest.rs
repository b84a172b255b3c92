//! Content digests (`sha256:<64 hex>`), and a hasher that checks one while bytes stream by.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A validated `sha256:<64 lowercase hex>` content digest.
///
/// Only sha256 is accepted: it is what every registry in use computes, and one algorithm keeps
/// lock entries comparable byte for byte.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a string is not a [`Digest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("`{literal}` is not a sha256 digest: {reason}")]
#[diagnostic(
    code(airgap::oci::digest),
    help("a digest looks like `sha256:` followed by 64 lowercase hex digits")
)]
pub struct DigestError {
    pub literal: String,
    pub reason: &'static str,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits, as used for a blob path in an OCI layout.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DigestError {
            literal: s.to_owned(),
            reason,
        };
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(err("it has no `algorithm:` part"));
        };
        if algorithm != "sha256" {
            return Err(err("only the sha256 algorithm is supported"));
        }
        if hex.len() != 64 {
            return Err(err("a sha256 digest has 64 hex digits"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(err("only lowercase hex digits may follow `sha256:`"));
        }
        Ok(Digest(s.to_owned()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Hashes bytes as they pass and says, at the end, whether they match an expected digest and
/// size.
pub(crate) struct Verifier {
    expected: Digest,
    expected_size: Option<u64>,
    /// `None` when the stream checks the digest itself (see [`Verifier::size_only`]).
    hasher: Option<Sha256>,
    seen: u64,
}

impl Verifier {
    pub(crate) fn new(expected: Digest, expected_size: Option<u64>) -> Self {
        Verifier {
            expected,
            expected_size,
            hasher: Some(Sha256::new()),
            seen: 0,
        }
    }

    /// A verifier that counts bytes but does not hash them: for a stream that checks the
    /// digest itself and fails before its end on a mismatch (oci-client's
    /// `pull_blob_stream`), where hashing again would only cost a second pass over every
    /// byte.
    pub(crate) fn size_only(expected: Digest, expected_size: Option<u64>) -> Self {
        Verifier {
            hasher: None,
            ..Verifier::new(expected, expected_size)
        }
    }

    /// The digest the bytes must have.
    pub(crate) fn expected(&self) -> &Digest {
        &self.expected
    }

    /// Feeds bytes; fails early when more bytes arrive than the descriptor announced.
    pub(crate) fn update(&mut self, bytes: &[u8]) -> Result<(), Mismatch> {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(bytes);
        }
        self.seen += bytes.len() as u64;
        match self.expected_size {
            Some(size) if self.seen > size => Err(Mismatch::Size {
                expected: size,
                actual: self.seen,
            }),
            _ => Ok(()),
        }
    }

    /// Checks the whole content against the expected digest and size.
    pub(crate) fn finish(self) -> Result<u64, Mismatch> {
        if let Some(size) = self.expected_size
            && size != self.seen
        {
            return Err(Mismatch::Size {
                expected: size,
                actual: self.seen,
            });
        }
        let Some(hasher) = self.hasher else {
            return Ok(self.seen);
        };
        let actual = Digest(format!("sha256:{}", hex::encode(hasher.finalize())));
        if actual != self.expected {
            return Err(Mismatch::Digest { actual });
        }
        Ok(self.seen)
    }
}

/// How streamed content differed from its descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Size { expected: u64, actual: u64 },
    Digest { actual: Digest },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Size { expected, actual } => {
                write!(f, "expected {expected} bytes, got {actual}")
            }
            Mismatch::Digest { actual } => write!(f, "the content hashes to `{actual}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let d = Digest::of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.as_str().parse::<Digest>(), Ok(d.clone()));
        assert!("sha512:abc".parse::<Digest>().is_err());
        assert!("sha256:ABC".parse::<Digest>().is_err());
        assert!(d.as_str().to_uppercase().parse::<Digest>().is_err());
    }

    #[test]
    fn verifier_catches_size_and_content() {
        let d = Digest::of(b"hello");
        let mut v = Verifier::new(d.clone(), Some(5));
        v.update(b"hel").unwrap();
        v.update(b"lo").unwrap();
        assert_eq!(v.finish(), Ok(5));
        let mut v = Verifier::new(d.clone(), Some(5));
        v.update(b"hellp").unwrap();
        assert!(matches!(v.finish(), Err(Mismatch::Digest { .. })));
        let mut v = Verifier::new(d.clone(), Some(5));
        assert!(v.update(b"hello!").is_err());
        // Size only: other bytes of the right size pass, a wrong size does not.
        let mut v = Verifier::size_only(d.clone(), Some(5));
        v.update(b"hellp").unwrap();
        assert_eq!(v.finish(), Ok(5));
        let mut v = Verifier::size_only(d, Some(5));
        v.update(b"hell").unwrap();
        assert!(matches!(v.finish(), Err(Mismatch::Size { .. })));
    }
}
