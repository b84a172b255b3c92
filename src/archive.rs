//! Deterministic archives: tar, gzip with the digests an OCI layer needs, and zip.
//!
//! The same list of entries gives the same bytes on any machine, whatever the file system
//! says about times, owners, umask or directory order:
//!
//! - Entries are sorted by path bytes (`a-b/x` before `a/x`, as a byte sort puts `-` before
//!   `/`), and every parent directory is emitted, before its children, even when the list
//!   does not name it.
//! - Modes are fixed: `0644` for files, `0755` for directories and for files marked
//!   executable (any `x` bit on disk, as git records it), `0777` for symlinks. Symlinks stay
//!   symlinks: a stack's or a starter project's repository may hold them, and following them
//!   could pull files from outside the tree into the archive. The caller filters what it
//!   does not want (hard links, devices, FIFOs and sockets are refused by [`walk_dir`]).
//! - tar: GNU headers (`ustar  ` magic), mtime 0, uid/gid 0, empty user and group names,
//!   directory names ending in `/`; names or link targets longer than 100 bytes use GNU
//!   long-name records (`././@LongLink`, which the `tar` crate writes with mtime 0 and
//!   uid/gid 0 too); the archive ends with two zero blocks, unpadded to a record.
//! - gzip: no timestamp (MTIME 0), no file name, OS byte 255 ("unknown", as Go's
//!   `compress/gzip` writes it), level [`GZIP_LEVEL`].
//! - zip: timestamps 1980-01-01 00:00:00 (the DOS epoch, `DateTime::default()`), Unix
//!   permissions as above, deflate at level [`ZIP_DEFLATE_LEVEL`] (symlink targets and
//!   directories are stored), no extra fields, no comment.
//!
//! Compressed bytes also depend on the deflate implementation. Both gzip (through flate2)
//! and zip (through the zip crate's `deflate-flate2-zlib-rs` feature) use `zlib-rs`: flate2
//! picks it over its default miniz_oxide whenever its `zlib-rs` feature is on, which
//! Cargo.toml asks for explicitly. zlib-rs's match finder uses one fixed hash on every CPU
//! (its SIMD paths compute the same results), so output does not vary by machine; a golden
//! digest in the tests catches a change of backend or version.

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

/// gzip compression level (Go's and Docker's default).
pub const GZIP_LEVEL: u32 = 6;
/// zip deflate level.
pub const ZIP_DEFLATE_LEVEL: i64 = 6;

const FILE_MODE: u32 = 0o644;
const EXECUTABLE_MODE: u32 = 0o755;
const DIR_MODE: u32 = 0o755;
const SYMLINK_MODE: u32 = 0o777;

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    Bytes(Vec<u8>),
    /// Streamed when the archive is written; the file must not change size meanwhile.
    File(PathBuf),
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File {
        contents: Contents,
        executable: bool,
    },
    Dir,
    Symlink {
        target: String,
    },
}

/// One archive member, at a relative `/`-separated path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
}

impl Entry {
    /// A regular file (mode 0644) with these bytes.
    pub fn file(path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                contents: Contents::Bytes(bytes.into()),
                executable: false,
            },
        }
    }

    /// An executable file (mode 0755) with these bytes.
    pub fn executable(path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                contents: Contents::Bytes(bytes.into()),
                executable: true,
            },
        }
    }

    /// A file whose bytes are streamed from `source` on disk.
    pub fn from_file(
        path: impl Into<String>,
        source: impl Into<PathBuf>,
        executable: bool,
    ) -> Self {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                contents: Contents::File(source.into()),
                executable,
            },
        }
    }

    /// A directory (mode 0755).
    pub fn dir(path: impl Into<String>) -> Self {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
        }
    }

    /// A symbolic link (mode 0777) pointing at `target`, kept as written.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Entry {
            path: path.into(),
            kind: EntryKind::Symlink {
                target: target.into(),
            },
        }
    }

    /// The permission bits written for this entry.
    pub fn mode(&self) -> u32 {
        match &self.kind {
            EntryKind::File {
                executable: true, ..
            } => EXECUTABLE_MODE,
            EntryKind::File { .. } => FILE_MODE,
            EntryKind::Dir => DIR_MODE,
            EntryKind::Symlink { .. } => SYMLINK_MODE,
        }
    }
}

/// What can go wrong building an archive.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ArchiveError {
    #[error("`{path}` cannot be an archive path: {reason}")]
    #[diagnostic(
        code(airgap::archive::path),
        help("archive paths are relative, `/`-separated, without `.` or `..` parts")
    )]
    InvalidPath { path: String, reason: &'static str },

    #[error("`{path}` is listed twice")]
    #[diagnostic(code(airgap::archive::duplicate))]
    Duplicate { path: String },

    #[error("`{path}` is not a directory, but `{child}` is inside it")]
    #[diagnostic(code(airgap::archive::not_a_directory))]
    NotADirectory { path: String, child: String },

    #[error("cannot read `{}`", path.display())]
    #[diagnostic(code(airgap::archive::read))]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("`{}` changed size while it was archived", path.display())]
    #[diagnostic(
        code(airgap::archive::changed),
        help("nothing may write to the tree while it is archived")
    )]
    Changed { path: PathBuf },

    #[error("`{}` is neither a file, a directory nor a symlink", path.display())]
    #[diagnostic(
        code(airgap::archive::file_type),
        help("remove it, or filter it out of the entries")
    )]
    FileType { path: PathBuf },

    #[error("`{}` is not UTF-8", path.display())]
    #[diagnostic(code(airgap::archive::name), help("rename it to a UTF-8 name"))]
    NotUtf8 { path: PathBuf },

    #[error("cannot write the archive")]
    #[diagnostic(code(airgap::archive::write))]
    Write {
        #[source]
        source: io::Error,
    },

    #[error("cannot write the zip archive")]
    #[diagnostic(code(airgap::archive::zip))]
    Zip {
        #[source]
        source: zip::result::ZipError,
    },
}

/// The entries under `root` (not `root` itself), sorted by path: directories, files (from
/// disk, executable when any `x` bit is set) and symlinks. Skips nothing; the caller filters.
pub fn walk_dir(root: &Path) -> Result<Vec<Entry>, ArchiveError> {
    let mut entries = Vec::new();
    walk_into(root, "", &mut entries)?;
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(entries)
}

fn walk_into(dir: &Path, prefix: &str, entries: &mut Vec<Entry>) -> Result<(), ArchiveError> {
    let read = |source| ArchiveError::Read {
        path: dir.to_owned(),
        source,
    };
    for item in fs::read_dir(dir).map_err(read)? {
        let item = item.map_err(read)?;
        let path = item.path();
        let name = item
            .file_name()
            .into_string()
            .map_err(|_| ArchiveError::NotUtf8 { path: path.clone() })?;
        let rel = format!("{prefix}{name}");
        let meta = fs::symlink_metadata(&path).map_err(|source| ArchiveError::Read {
            path: path.clone(),
            source,
        })?;
        let file_type = meta.file_type();
        if file_type.is_dir() {
            entries.push(Entry::dir(rel.clone()));
            walk_into(&path, &format!("{rel}/"), entries)?;
        } else if file_type.is_file() {
            entries.push(Entry::from_file(rel, path, is_executable(&meta)));
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path).map_err(|source| ArchiveError::Read {
                path: path.clone(),
                source,
            })?;
            let target = target
                .into_os_string()
                .into_string()
                .map_err(|_| ArchiveError::NotUtf8 { path: path.clone() })?;
            entries.push(Entry::symlink(rel, target));
        } else {
            return Err(ArchiveError::FileType { path });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &fs::Metadata) -> bool {
    false
}

/// Checks paths, adds missing parent directories, merges repeated directories and sorts by
/// path bytes. Directory paths are returned without a trailing `/`.
fn normalize(entries: Vec<Entry>) -> Result<Vec<Entry>, ArchiveError> {
    use std::collections::BTreeMap;
    let mut by_path: BTreeMap<String, Entry> = BTreeMap::new();
    for mut entry in entries {
        let trimmed = match entry.kind {
            EntryKind::Dir => entry.path.strip_suffix('/').unwrap_or(&entry.path),
            _ => &entry.path,
        };
        check_path(trimmed)?;
        entry.path = trimmed.to_owned();
        // Parents first, so a file standing where a directory must be is caught below.
        let mut end = 0;
        while let Some(i) = entry.path[end..].find('/') {
            let parent = &entry.path[..end + i];
            match by_path.get(parent) {
                Some(Entry {
                    kind: EntryKind::Dir,
                    ..
                }) => {}
                Some(_) => {
                    return Err(ArchiveError::NotADirectory {
                        path: parent.to_owned(),
                        child: entry.path.clone(),
                    });
                }
                None => {
                    by_path.insert(parent.to_owned(), Entry::dir(parent));
                }
            }
            end += i + 1;
        }
        match by_path.get(&entry.path) {
            None => {
                by_path.insert(entry.path.clone(), entry);
            }
            Some(existing) => match (&existing.kind, &entry.kind) {
                (EntryKind::Dir, EntryKind::Dir) => {}
                (EntryKind::Dir, _) => {
                    // A directory was implied by (or listed before) something inside it.
                    let child = by_path
                        .keys()
                        .find(|k| {
                            k.len() > entry.path.len()
                                && k.starts_with(&entry.path)
                                && k.as_bytes()[entry.path.len()] == b'/'
                        })
                        .cloned();
                    return Err(match child {
                        Some(child) => ArchiveError::NotADirectory {
                            path: entry.path,
                            child,
                        },
                        None => ArchiveError::Duplicate { path: entry.path },
                    });
                }
                _ => return Err(ArchiveError::Duplicate { path: entry.path }),
            },
        }
    }
    // BTreeMap<String, _> iterates in byte order of the keys.
    Ok(by_path.into_values().collect())
}

fn check_path(path: &str) -> Result<(), ArchiveError> {
    let fail = |reason| {
        Err(ArchiveError::InvalidPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return fail("it is empty");
    }
    if path.starts_with('/') {
        return fail("it is absolute");
    }
    if path.contains('\0') {
        return fail("it contains a NUL byte");
    }
    for part in path.split('/') {
        match part {
            "" => return fail("it has an empty part (`//` or a trailing `/`)"),
            "." | ".." => return fail("it has a `.` or `..` part"),
            _ => {}
        }
    }
    Ok(())
}

/// A reader that yields exactly `remaining` bytes of a file and fails if the file turns out
/// shorter or longer than when its size was taken.
struct ExactReader {
    file: fs::File,
    remaining: u64,
    path: PathBuf,
}

/// Carried inside an `io::Error` out of the tar crate, to tell read failures from write ones.
#[derive(Debug)]
struct SourceFailure {
    path: PathBuf,
    source: Option<io::Error>,
}

impl std::fmt::Display for SourceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reading {}", self.path.display())
    }
}

impl std::error::Error for SourceFailure {}

impl ExactReader {
    fn open(path: &Path) -> Result<(Self, u64), ArchiveError> {
        let read = |source| ArchiveError::Read {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(read)?;
        let size = file.metadata().map_err(read)?.len();
        Ok((
            ExactReader {
                file,
                remaining: size,
                path: path.to_owned(),
            },
            size,
        ))
    }

    fn failure(&self, source: Option<io::Error>) -> io::Error {
        io::Error::other(SourceFailure {
            path: self.path.clone(),
            source,
        })
    }
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // The size was promised in a header: a file that grew is an error, not a cut.
            let mut probe = [0u8; 1];
            return match self.file.read(&mut probe) {
                Ok(0) => Ok(0),
                Ok(_) => Err(self.failure(None)),
                Err(e) => Err(self.failure(Some(e))),
            };
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        match self.file.read(&mut buf[..want]) {
            Ok(0) => Err(self.failure(None)),
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => Err(self.failure(Some(e))),
        }
    }
}

fn map_io(e: io::Error) -> ArchiveError {
    if e.get_ref().is_some_and(|inner| inner.is::<SourceFailure>()) {
        let inner = e
            .into_inner()
            .and_then(|b| b.downcast::<SourceFailure>().ok());
        if let Some(failure) = inner {
            return match failure.source {
                Some(source) => ArchiveError::Read {
                    path: failure.path,
                    source,
                },
                None => ArchiveError::Changed { path: failure.path },
            };
        }
        return ArchiveError::Write {
            source: io::Error::other("lost a read failure"),
        };
    }
    ArchiveError::Write { source: e }
}

/// Writes a tar archive of `entries` (see the module docs for the format) to `out`, and
/// returns `out`.
pub fn write_tar<W: Write>(entries: Vec<Entry>, out: W) -> Result<W, ArchiveError> {
    let entries = normalize(entries)?;
    let mut builder = tar::Builder::new(out);
    for entry in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mode(entry.mode());
        match &entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{}/", entry.path), io::empty())
                    .map_err(map_io)?;
            }
            EntryKind::File { contents, .. } => {
                header.set_entry_type(tar::EntryType::Regular);
                match contents {
                    Contents::Bytes(bytes) => {
                        header.set_size(bytes.len() as u64);
                        builder
                            .append_data(&mut header, &entry.path, bytes.as_slice())
                            .map_err(map_io)?;
                    }
                    Contents::File(source) => {
                        let (reader, size) = ExactReader::open(source)?;
                        header.set_size(size);
                        builder
                            .append_data(&mut header, &entry.path, reader)
                            .map_err(map_io)?;
                    }
                }
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder
                    .append_link(&mut header, &entry.path, target)
                    .map_err(map_io)?;
            }
        }
    }
    builder.into_inner().map_err(map_io)
}

/// The tar archive of `entries` in memory.
pub fn tar_bytes(entries: Vec<Entry>) -> Result<Vec<u8>, ArchiveError> {
    write_tar(entries, Vec::new())
}

/// A sha256 digest and the number of bytes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobDigest {
    pub sha256: [u8; 32],
    pub size: u64,
}

impl BlobDigest {
    /// Lowercase hex of the digest.
    pub fn hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// The OCI form, `sha256:<hex>`.
    pub fn oci(&self) -> String {
        format!("sha256:{}", self.hex())
    }
}

/// Digests of a gzip stream: `compressed` is an OCI layer's digest (and size),
/// `uncompressed` its `diff_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GzipDigests {
    pub compressed: BlobDigest,
    pub uncompressed: BlobDigest,
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (W, BlobDigest) {
        let digest = BlobDigest {
            sha256: self.hasher.finalize().into(),
            size: self.len,
        };
        (self.inner, digest)
    }
}

/// Gzips what is written to it into `inner` (no timestamp, no name, level [`GZIP_LEVEL`]),
/// hashing both the uncompressed input and the compressed output on the way. Memory stays
/// small whatever the size of the stream.
pub struct GzipWriter<W: Write> {
    encoder: GzEncoder<HashingWriter<W>>,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> GzipWriter<W> {
    pub fn new(inner: W) -> Self {
        let encoder = GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(HashingWriter::new(inner), Compression::new(GZIP_LEVEL));
        GzipWriter {
            encoder,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Ends the gzip stream and returns `inner` with the digests.
    pub fn finish(self) -> io::Result<(W, GzipDigests)> {
        let (inner, compressed) = self.encoder.finish()?.finish();
        let uncompressed = BlobDigest {
            sha256: self.hasher.finalize().into(),
            size: self.len,
        };
        Ok((
            inner,
            GzipDigests {
                compressed,
                uncompressed,
            },
        ))
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.encoder.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// Writes a gzipped tar archive of `entries` to `out`, and returns `out` with the digests of
/// the compressed stream (layer digest) and of the tar (diff_id).
pub fn write_tar_gz<W: Write>(
    entries: Vec<Entry>,
    out: W,
) -> Result<(W, GzipDigests), ArchiveError> {
    let gz = write_tar(entries, GzipWriter::new(out))?;
    gz.finish().map_err(|source| ArchiveError::Write { source })
}

/// Writes a zip archive of `entries` (see the module docs for the format) to `out`, and
/// returns `out`. Needs `Seek`: sizes and CRCs go into local headers, not data descriptors.
pub fn write_zip<W: Write + Seek>(entries: Vec<Entry>, out: W) -> Result<W, ArchiveError> {
    use zip::write::SimpleFileOptions;
    let entries = normalize(entries)?;
    let zip_err = |source| ArchiveError::Zip { source };
    let mut zip = zip::ZipWriter::new(out);
    let base = SimpleFileOptions::default()
        .last_modified_time(zip::DateTime::default())
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(ZIP_DEFLATE_LEVEL));
    for entry in &entries {
        let options = base.unix_permissions(entry.mode());
        match &entry.kind {
            EntryKind::Dir => zip
                .add_directory(format!("{}/", entry.path), options)
                .map_err(zip_err)?,
            EntryKind::Symlink { target } => {
                zip.add_symlink(&entry.path, target, options)
                    .map_err(zip_err)?;
            }
            EntryKind::File { contents, .. } => match contents {
                Contents::Bytes(bytes) => {
                    let options = options.large_file(bytes.len() as u64 >= u64::from(u32::MAX));
                    zip.start_file(&entry.path, options).map_err(zip_err)?;
                    zip.write_all(bytes)
                        .map_err(|source| ArchiveError::Write { source })?;
                }
                Contents::File(source) => {
                    let (mut reader, size) = ExactReader::open(source)?;
                    let options = options.large_file(size >= u64::from(u32::MAX));
                    zip.start_file(&entry.path, options).map_err(zip_err)?;
                    io::copy(&mut reader, &mut zip).map_err(map_io)?;
                }
            },
        }
    }
    zip.finish().map_err(zip_err)
}

/// The zip archive of `entries` in memory.
pub fn zip_bytes(entries: Vec<Entry>) -> Result<Vec<u8>, ArchiveError> {
    Ok(write_zip(entries, io::Cursor::new(Vec::new()))?.into_inner())
}
