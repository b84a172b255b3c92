//! Reading files for responses without ever leaving the served folder.
//!
//! Every path the server opens is built from segments that were checked one by one (no empty,
//! `.` or `..` segment, no `/`, `\`, NUL or control character), joined under a [`Jail`] root
//! and canonicalised; the canonical path must still lie under the jail's canonical root. A
//! symbolic link inside the folder that points outside it is therefore refused, one that points
//! elsewhere inside it is followed. The check and the open are two steps: someone who can
//! rewrite the served folder between them can already change what is served, so that window is
//! not defended further. The checks are plain blocking filesystem calls; request handlers run
//! them on tokio's blocking pool.
//!
//! File bodies are streamed in chunks (memory does not grow with the file), with single-range
//! `Range` requests answered by 206.

use std::io;
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How much of a file is read per body chunk.
const CHUNK: u64 = 512 * 1024;

/// A folder that resolved paths may not leave.
#[derive(Clone, Debug)]
pub struct Jail {
    root: PathBuf,
}

/// Why a path was not served.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// A segment is not a plain file or folder name.
    BadSegment,
    /// Nothing (or not a regular file) there.
    NotFound,
    /// The path resolves outside the jail (through a symbolic link).
    Outside,
}

impl Refused {
    pub fn describe(&self) -> &'static str {
        match self {
            Refused::BadSegment => "not a plain path",
            Refused::NotFound => "no such file",
            Refused::Outside => "refusing to serve a file outside the served folder",
        }
    }
}

/// A plain path segment: not empty, not `.` or `..`, no separator, NUL or control character.
pub fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 255
        && !s.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

/// A stack, sample, version or starter-project name as it may appear in a URL: ASCII letters,
/// digits, `.`, `_`, `-`, `+`, and not `.` or `..`.
pub fn valid_name(s: &str) -> bool {
    valid_segment(s)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

impl Jail {
    /// `root` must exist; it is canonicalised once here.
    pub fn new(root: &Path) -> io::Result<Jail> {
        Ok(Jail {
            root: std::fs::canonicalize(root)?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The canonical path of the regular file at `segments` under the root.
    pub fn file<S: AsRef<str>>(&self, segments: &[S]) -> Result<PathBuf, Refused> {
        let mut path = self.root.clone();
        for s in segments {
            let s = s.as_ref();
            if !valid_segment(s) {
                return Err(Refused::BadSegment);
            }
            path.push(s);
        }
        self.check(&path)
    }

    /// The canonical path of the regular file `path` (already under the root by construction,
    /// or not: that is what is checked).
    pub fn check(&self, path: &Path) -> Result<PathBuf, Refused> {
        let canonical = match std::fs::canonicalize(path) {
            Ok(c) => c,
            Err(_) => return Err(Refused::NotFound),
        };
        if !canonical.starts_with(&self.root) {
            return Err(Refused::Outside);
        }
        match std::fs::metadata(&canonical) {
            Ok(m) if m.is_file() => Ok(canonical),
            _ => Err(Refused::NotFound),
        }
    }

    /// Like [`Jail::file`] with segments relative to `base` (a folder under the root) given as
    /// a `/`-separated relative path (a leading `./` is allowed).
    pub fn relative_file(&self, base: &Path, relative: &str) -> Result<PathBuf, Refused> {
        let relative = relative.strip_prefix("./").unwrap_or(relative);
        let mut path = base.to_path_buf();
        for s in relative.split('/') {
            if !valid_segment(s) {
                return Err(Refused::BadSegment);
            }
            path.push(s);
        }
        self.check(&path)
    }
}

/// Which part of a file a request wants.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteRange {
    Full,
    /// Inclusive bounds.
    Part(u64, u64),
    Unsatisfiable,
}

/// A `Range` header against a file of `size` bytes. Only a single `bytes=` range is honoured;
/// anything else (several ranges, another unit, a malformed header) is answered with the whole
/// file, as RFC 9110 allows.
pub fn parse_range(value: Option<&HeaderValue>, size: u64) -> ByteRange {
    let Some(spec) = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let number = |s: &str| -> Option<u64> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    if first.is_empty() {
        let Some(suffix) = number(last) else {
            return ByteRange::Full;
        };
        if suffix == 0 || size == 0 {
            return ByteRange::Unsatisfiable;
        }
        return ByteRange::Part(size.saturating_sub(suffix), size - 1);
    }
    let Some(start) = number(first) else {
        return ByteRange::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(end) if end >= start => end,
            _ => return ByteRange::Full,
        }
    };
    if start >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part(start, end.min(size - 1))
}

/// A streamed body of `len` bytes of `file` from its current position.
fn file_body(file: tokio::fs::File, len: u64) -> Body {
    let stream = futures::stream::try_unfold((file, len), |(mut file, remaining)| async move {
        if remaining == 0 {
            return Ok::<_, io::Error>(None);
        }
        let want = remaining.min(CHUNK);
        let mut buf = Vec::with_capacity(want as usize);
        let read = (&mut file).take(want).read_to_end(&mut buf).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being served",
            ));
        }
        Ok(Some((Bytes::from(buf), (file, remaining - read as u64))))
    });
    Body::from_stream(stream)
}

/// What to send for a file.
pub struct FileReply<'a> {
    pub path: &'a Path,
    pub content_type: &'a str,
    /// 200 for ordinary files (then `Range` is honoured); anything else is sent as is.
    pub status: StatusCode,
    pub range: Option<&'a HeaderValue>,
    pub head: bool,
    pub headers: HeaderMap,
}

/// Streams a file (or the requested part of it). `Err` when it cannot be opened.
pub async fn file_response(reply: FileReply<'_>) -> io::Result<Response> {
    let mut file = tokio::fs::File::open(reply.path).await?;
    let size = file.metadata().await?.len();
    let mut headers = reply.headers;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(reply.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    let ranged = reply.status == StatusCode::OK;
    if ranged {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    let (status, start, len) = match if ranged {
        parse_range(reply.range, size)
    } else {
        ByteRange::Full
    } {
        ByteRange::Full => (reply.status, 0, size),
        ByteRange::Part(start, end) => {
            let content_range = format!("bytes {start}-{end}/{size}");
            if let Ok(v) = HeaderValue::from_str(&content_range) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        ByteRange::Unsatisfiable => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            headers.remove(header::CONTENT_TYPE);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            *response.headers_mut() = headers;
            return Ok(response);
        }
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let body = if reply.head {
        Body::empty()
    } else {
        if start > 0 {
            file.seek(io::SeekFrom::Start(start)).await?;
        }
        file_body(file, len)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// A media type for a file served from the registry tree, from its extension.
pub fn content_type_for(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "yaml" | "yml" => "application/yaml",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "zip" => "application/zip",
        "tar" => "application/x-tar",
        "gz" | "tgz" => "application/gzip",
        "md" | "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str, size: u64) -> ByteRange {
        parse_range(Some(&HeaderValue::from_str(s).unwrap()), size)
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), ByteRange::Part(0, 9));
        assert_eq!(range("bytes=90-", 100), ByteRange::Part(90, 99));
        assert_eq!(range("bytes=90-500", 100), ByteRange::Part(90, 99));
        assert_eq!(range("bytes=-10", 100), ByteRange::Part(90, 99));
        assert_eq!(range("bytes=-500", 100), ByteRange::Part(0, 99));
        assert_eq!(range("bytes=100-", 100), ByteRange::Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), ByteRange::Unsatisfiable);
        assert_eq!(range("bytes=0-1,5-6", 100), ByteRange::Full);
        assert_eq!(range("bytes=9-1", 100), ByteRange::Full);
        assert_eq!(range("items=0-1", 100), ByteRange::Full);
        assert_eq!(range("bytes=x-1", 100), ByteRange::Full);
        assert_eq!(parse_range(None, 100), ByteRange::Full);
    }

    #[test]
    fn segments() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\0b", "a\nb"] {
            assert!(!valid_segment(bad), "{bad:?}");
        }
        assert!(valid_segment("go-starter-offline.zip"));
        assert!(valid_name("1.2.0"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("%2e%2e"));
    }
}
