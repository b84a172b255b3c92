//! One OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) shared by every image
//! of a `dir:` target or a sneakernet bundle.
//!
//! Naming convention (other modules rely on it): each top-level image has one `index.json`
//! entry (mediaType, digest, size) with the annotation `io.github.airgap.repository` = its
//! repository, the full path on the target host (`devfiles/go-toolset`), and, when it has a
//! tag, `org.opencontainers.image.ref.name` = `<repository>:<tag>` (what `skopeo copy
//! oci:DIR:devfiles/go-toolset:1.25` names). A tag names one entry: writing it again replaces
//! the entry. Untagged entries are kept once per (repository, digest). Entries are sorted, and
//! entries without our annotation (written by other tools) are kept as they are.
//!
//! Every blob is written to a temp file inside the layout, checked against its digest as it
//! streams, flushed and fsync'd, checked again for its size on disk, and only then renamed
//! into place; `index.json` is rewritten the same way. A write error (a full disk) fails the
//! write, never leaves a short file under a blob's name. So a reader sees a blob whole or not
//! at all, and an interrupted copy leaves only `.tmp-*` files that the next write of the same
//! blob ignores. A blob counts as present ([`Layout::has_blob`]) only with the size its
//! descriptor gives, and an image only when its manifests read back with their digests and
//! every blob they name is there with its size ([`Layout::is_whole`]): a file left short by
//! an older build, or by a disk that filled up under another writer, is written again.
//! Writers in one process are serialized on `index.json`; two processes writing one layout
//! at once are not supported.
//!
//! Adding an image does not rewrite `index.json`: that is O(N) bytes per image, O(N²) over a
//! cold apply of N images (at 8,000 images, most of the run). It appends one JSON line naming
//! the image to the journal `index.json.journal` and fsyncs it, once the image's blobs and
//! manifests are durable; the journal is folded into `index.json` (temp file, rename, then the
//! journal removed) when the layout is dropped or flushed, on [`Layout::open`], and before a
//! removal. A killed run leaves `index.json` plus a journal of whole images (a torn last line,
//! an add that never returned, is ignored); every reader sees both: [`Layout::open_existing`]
//! replays the journal in memory, and `serve` reads through [`read_index_folded`]. Replaying an
//! add is idempotent (a tag names one entry), so a fold killed between the rename and the
//! removal of the journal loses nothing.
//!
//! [`read_marker`] and [`read_index`] read the two top-level files for every reader of a
//! layout: [`Layout::open`] here, and `serve`, which indexes the served folder's layout its own
//! way (by repository, with sha512 digests allowed). Each words a [`TopFileError`] in its own
//! diagnostics.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use super::digest::{Digest, Verifier};
use super::error::OciError;
use super::media;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const REPOSITORY: &str = "io.github.airgap.repository";

/// The file that marks a folder as an OCI image layout; it names the layout's version.
pub const MARKER_FILE: &str = "oci-layout";
/// The layout's top-level image index.
pub const INDEX_FILE: &str = "index.json";
/// Images added since `index.json` was last written, one JSON line each (see the module doc).
pub const JOURNAL_FILE: &str = "index.json.journal";
/// The only layout version there is.
pub const LAYOUT_VERSION: &str = "1.0.0";

/// Why [`read_marker`] or [`read_index`] could not read a layout's top-level file. Each reader
/// of a layout (the writer here, `serve`) words these in its own diagnostics.
#[derive(Debug)]
pub enum TopFileError {
    /// The file cannot be read (`NotFound` when it is not there).
    Io(std::io::Error),
    /// The file is not JSON.
    NotJson(serde_json::Error),
    /// The file is JSON, but not of the expected shape.
    Shape(serde_json::Error),
}

impl TopFileError {
    fn json(e: serde_json::Error) -> Self {
        if e.is_data() {
            TopFileError::Shape(e)
        } else {
            TopFileError::NotJson(e)
        }
    }
}

/// Reads the `oci-layout` file at `path`: the layout version it declares (the caller holds it
/// to [`LAYOUT_VERSION`]).
pub fn read_marker(path: &Path) -> Result<String, TopFileError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Marker {
        image_layout_version: String,
    }
    let text = std::fs::read(path).map_err(TopFileError::Io)?;
    let marker: Marker = serde_json::from_slice(&text).map_err(TopFileError::json)?;
    Ok(marker.image_layout_version)
}

/// Reads the `index.json` at `path` as `T`, the caller's view of its descriptors.
pub fn read_index<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TopFileError> {
    let text = std::fs::read(path).map_err(TopFileError::Io)?;
    serde_json::from_slice(&text).map_err(TopFileError::json)
}

/// Reads the layout in `dir`'s `index.json` as `T` with the images of its journal added: what
/// [`Layout::open_existing`] would list, for readers with their own view of the descriptors.
pub fn read_index_folded<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<T, TopFileError> {
    let path = dir.join(INDEX_FILE);
    let journal = read_journal(dir)?;
    if journal.is_empty() {
        return read_index(&path);
    }
    let mut index = Index::new(read_index(&path)?);
    for image in &journal {
        index.add(image);
    }
    let bytes = index.doc_bytes().map_err(TopFileError::Shape)?;
    serde_json::from_slice(&bytes).map_err(TopFileError::json)
}

/// The images the journal in `dir` names, in the order they were added; none when there is
/// no journal. A torn last line (no newline: its add never returned) is ignored.
fn read_journal(dir: &Path) -> Result<Vec<LayoutImage>, TopFileError> {
    let text = match std::fs::read(dir.join(JOURNAL_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TopFileError::Io(e)),
    };
    let whole = text
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&text[..0], |end| &text[..end]);
    whole
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).map_err(TopFileError::json))
        .collect()
}

/// An image listed in a layout's `index.json` (and, as one JSON line, in its journal).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutImage {
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A top-level entry of `index.json` as it is written, whoever wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
}

/// Something [`Layout::check_complete`] found wrong with one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutProblem {
    /// `repository:tag` (or `repository@digest`).
    pub image: String,
    /// The blob file at fault.
    pub path: PathBuf,
    pub problem: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexDoc {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<Entry>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

/// Where an entry sorts in `index.json`: by repository, ref name and digest (absent
/// annotations first), then in the order the entries arrived (entries of other tools may
/// repeat).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct EntryKey {
    repository: Option<String>,
    ref_name: Option<String>,
    digest: Digest,
    arrival: u64,
}

/// `index.json` in memory: its entries in the order they are written, a lookup by ref name,
/// and how far the file on disk is behind.
#[derive(Debug)]
struct Index {
    /// The document's other fields (`manifests` is empty: the entries are below).
    head: IndexDoc,
    entries: BTreeMap<EntryKey, Entry>,
    /// Ref name → the entries that carry it.
    by_ref: BTreeMap<String, BTreeSet<EntryKey>>,
    arrivals: u64,
    /// Changes made in memory, and how many of them the files on disk (`index.json` and the
    /// journal) have.
    changes: u64,
    written: u64,
    /// Images added since the last write, for the journal.
    pending: Vec<LayoutImage>,
    /// The next write rewrites `index.json` whole (an entry was removed, a journal append
    /// failed, or the journal on disk was not written by this process).
    fold: bool,
    /// Lines this process appended to the journal since it was last folded.
    journalled: u64,
    /// How many times `index.json` was written (what the tests bound).
    #[cfg(test)]
    writes: u64,
}

impl Index {
    fn new(mut doc: IndexDoc) -> Index {
        let manifests = std::mem::take(&mut doc.manifests);
        let mut index = Index {
            head: doc,
            entries: BTreeMap::new(),
            by_ref: BTreeMap::new(),
            arrivals: 0,
            changes: 0,
            written: 0,
            pending: Vec::new(),
            fold: false,
            journalled: 0,
            #[cfg(test)]
            writes: 0,
        };
        for entry in manifests {
            index.insert(entry);
        }
        index
    }

    fn insert(&mut self, entry: Entry) {
        let key = EntryKey {
            repository: entry.annotations.get(REPOSITORY).cloned(),
            ref_name: entry.annotations.get(REF_NAME).cloned(),
            digest: entry.digest.clone(),
            arrival: self.arrivals,
        };
        self.arrivals += 1;
        if let Some(name) = &key.ref_name {
            self.by_ref
                .entry(name.clone())
                .or_default()
                .insert(key.clone());
        }
        self.entries.insert(key, entry);
    }

    fn remove(&mut self, key: &EntryKey) {
        self.entries.remove(key);
        if let Some(name) = &key.ref_name
            && let Some(keys) = self.by_ref.get_mut(name)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_ref.remove(name);
            }
        }
    }

    /// Adds a top-level image (see the module doc for the convention): a tag names one entry,
    /// an untagged image is kept once per (repository, digest).
    fn add(&mut self, image: &LayoutImage) {
        let ref_name = image
            .tag
            .as_ref()
            .map(|t| format!("{}:{t}", image.repository));
        let replaced: Vec<EntryKey> = match &ref_name {
            Some(name) => self.named(name).map(|(k, _)| k.clone()).collect(),
            None => self
                .untagged(&image.repository, &image.digest)
                .map(|(k, _)| k.clone())
                .collect(),
        };
        for key in &replaced {
            self.remove(key);
        }
        let mut annotations = BTreeMap::new();
        annotations.insert(REPOSITORY.to_owned(), image.repository.clone());
        if let Some(name) = ref_name {
            annotations.insert(REF_NAME.to_owned(), name);
        }
        self.insert(Entry {
            media_type: image.media_type.clone(),
            digest: image.digest.clone(),
            size: image.size,
            annotations,
            other: BTreeMap::new(),
        });
    }

    /// The entries named `ref_name`, in `index.json` order.
    fn named(&self, ref_name: &str) -> impl Iterator<Item = (&EntryKey, &Entry)> {
        self.by_ref
            .get(ref_name)
            .into_iter()
            .flatten()
            .filter_map(|k| self.entries.get_key_value(k))
    }

    /// Our untagged entries of `repository` at `digest`.
    fn untagged(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> impl Iterator<Item = (&EntryKey, &Entry)> {
        let key = |arrival| EntryKey {
            repository: Some(repository.to_owned()),
            ref_name: None,
            digest: digest.clone(),
            arrival,
        };
        self.entries.range(key(0)..=key(u64::MAX))
    }

    fn bytes(&self) -> Result<Vec<u8>, OciError> {
        self.doc_bytes().map_err(|e| OciError::Layout {
            path: PathBuf::from(INDEX_FILE),
            reason: e.to_string(),
        })
    }

    fn doc_bytes(&self) -> serde_json::Result<Vec<u8>> {
        /// `manifests` serialized from the map, without copying the entries.
        struct Manifests<'a>(&'a BTreeMap<EntryKey, Entry>);
        impl serde::Serialize for Manifests<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.values())
            }
        }
        /// [`IndexDoc`] as written, borrowing.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Doc<'a> {
            schema_version: u32,
            #[serde(skip_serializing_if = "Option::is_none")]
            media_type: &'a Option<String>,
            manifests: Manifests<'a>,
            #[serde(flatten)]
            other: &'a BTreeMap<String, Value>,
        }
        let doc = Doc {
            schema_version: self.head.schema_version,
            media_type: &self.head.media_type,
            manifests: Manifests(&self.entries),
            other: &self.head.other,
        };
        let mut bytes = serde_json::to_vec_pretty(&doc)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// An OCI image layout on disk.
///
/// `index.json` is kept in memory (a sorted map: adding or finding an image is O(log N)) and
/// written through: [`Layout::add_image`] returns once the journal names the image (fsync'd),
/// so a step recorded done after it stays done if the process is killed. Additions made while
/// a write is under way wait for it and go out together in the next one (a group commit):
/// with J images added at once, N images cost about N / J appends, not N.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
    index: std::sync::Mutex<Index>,
    /// Held while `index.json` is written: writes happen one at a time, each newer than the
    /// last.
    writer: tokio::sync::Mutex<()>,
}

impl Layout {
    /// Opens the layout at `dir`, creating it (and `dir`) if there is none.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, OciError> {
        Self::open_with(dir.into(), true)
    }

    /// Opens an existing layout and changes nothing on disk (a mirror, a bundle to push): a
    /// folder without `oci-layout` or `index.json` is an error.
    pub fn open_existing(dir: impl Into<PathBuf>) -> Result<Self, OciError> {
        Self::open_with(dir.into(), false)
    }

    fn open_with(dir: PathBuf, create: bool) -> Result<Self, OciError> {
        let bad = |reason: String| OciError::Layout {
            path: dir.clone(),
            reason,
        };
        if create {
            std::fs::create_dir_all(dir.join("blobs/sha256"))
                .map_err(OciError::io("cannot create the layout", &dir))?;
        } else if !dir.is_dir() {
            return Err(bad("there is no such folder".into()));
        }
        let marker = dir.join(MARKER_FILE);
        match read_marker(&marker) {
            Ok(version) if version == LAYOUT_VERSION => {}
            Err(TopFileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && create => {
                write_atomic(&dir, &marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            }
            Err(TopFileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad("it has no `oci-layout` file".into()));
            }
            Err(TopFileError::Io(e)) => return Err(OciError::io("cannot read", &marker)(e)),
            Err(TopFileError::NotJson(e)) => {
                return Err(bad(format!("`oci-layout` is not JSON: {e}")));
            }
            Ok(_) | Err(TopFileError::Shape(_)) => {
                return Err(bad(
                    "`oci-layout` does not say imageLayoutVersion 1.0.0".into()
                ));
            }
        }
        let index_path = dir.join(INDEX_FILE);
        let index = match read_index(&index_path) {
            Ok(doc) => Index::new(doc),
            Err(TopFileError::NotJson(e) | TopFileError::Shape(e)) => {
                return Err(bad(format!("`index.json` is not an OCI index: {e}")));
            }
            Err(TopFileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let doc = IndexDoc {
                    schema_version: 2,
                    media_type: Some(media::OCI_INDEX.into()),
                    manifests: Vec::new(),
                    other: BTreeMap::new(),
                };
                let doc = Index::new(doc);
                write_atomic(&dir, &index_path, &doc.bytes()?)?;
                doc
            }
            Err(TopFileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad("it has no `index.json`".into()));
            }
            Err(TopFileError::Io(e)) => return Err(OciError::io("cannot read", &index_path)(e)),
        };
        let layout = Layout {
            index: std::sync::Mutex::new(index),
            writer: tokio::sync::Mutex::new(()),
            dir,
        };
        layout.replay_journal(create)?;
        Ok(layout)
    }

    /// Makes a layout opened with [`Layout::open_existing`] what [`Layout::open`] would have
    /// opened: its blob folder created and a replayed journal folded. So a caller that checked
    /// a layout read-only first (apply's output check) need not read `index.json` again to
    /// write to it.
    pub fn make_writable(&self) -> Result<(), OciError> {
        std::fs::create_dir_all(self.dir.join("blobs/sha256"))
            .map_err(OciError::io("cannot create the layout", &self.dir))?;
        let mut index = self.index();
        if index.fold {
            self.fold_now(&mut index)?;
        }
        Ok(())
    }

    /// Adds the images of a journal left by a run that was not dropped (killed), and folds it
    /// into `index.json` when the layout may be changed (`fold`); otherwise the first write
    /// will.
    fn replay_journal(&self, fold: bool) -> Result<(), OciError> {
        let journal_path = self.dir.join(JOURNAL_FILE);
        let journal = match read_journal(&self.dir) {
            Ok(j) => j,
            Err(TopFileError::Io(e)) => return Err(OciError::io("cannot read", journal_path)(e)),
            Err(TopFileError::NotJson(e) | TopFileError::Shape(e)) => {
                return Err(OciError::Layout {
                    path: journal_path,
                    reason: format!("a line of `{JOURNAL_FILE}` does not name an image: {e}"),
                });
            }
        };
        if journal.is_empty() && !journal_path.exists() {
            return Ok(());
        }
        let mut index = self.index();
        for image in &journal {
            index.add(image);
        }
        index.fold = true;
        if fold {
            self.fold_now(&mut index)?;
        }
        Ok(())
    }

    /// Writes `index.json` whole from memory and removes the journal it now includes.
    fn fold_now(&self, index: &mut Index) -> Result<(), OciError> {
        let bytes = index.bytes()?;
        fold_files(&self.dir, &bytes)?;
        index.written = index.changes;
        index.pending.clear();
        index.fold = false;
        index.journalled = 0;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is there with `size` bytes, the size its descriptor gives.
    pub fn has_blob(&self, digest: &Digest, size: u64) -> bool {
        std::fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Whether the manifest (or index) `digest` is whole here: it reads back with its digest
    /// and `size`, and so does every manifest under it, and every blob they name is there with
    /// its size.
    pub async fn is_whole(&self, digest: &Digest, size: u64, media_type: &str) -> bool {
        self.problems_of(digest, size, media_type, &digest.to_string())
            .await
            .is_empty()
    }

    /// Reads a whole (small) blob, checking its digest.
    pub async fn read_blob(&self, digest: &Digest) -> Result<Bytes, OciError> {
        let path = self.blob_path(digest);
        self.checked_blob(digest, &path, tokio::fs::read(&path).await)
    }

    /// [`Layout::read_blob`] without leaving the calling thread: for the manifests
    /// [`Layout::is_whole`] reads, a few hundred bytes each, where handing each read to
    /// tokio's blocking pool cost more than the read (thousands of them in a no-op apply).
    fn read_manifest_blob(&self, digest: &Digest) -> Result<Bytes, OciError> {
        let path = self.blob_path(digest);
        self.checked_blob(digest, &path, std::fs::read(&path))
    }

    /// The bytes read from `path`, the blob `digest`, once they hash to it.
    fn checked_blob(
        &self,
        digest: &Digest,
        path: &Path,
        read: std::io::Result<Vec<u8>>,
    ) -> Result<Bytes, OciError> {
        let bytes = match read {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OciError::NotFound {
                    what: format!("{}@{digest}", self.dir.display()),
                });
            }
            Err(e) => return Err(OciError::io("cannot read", &path)(e)),
        };
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(OciError::DigestMismatch {
                what: path.display().to_string(),
                expected: digest.clone(),
                mismatch: super::digest::Mismatch::Digest { actual },
            });
        }
        Ok(Bytes::from(bytes))
    }

    /// Streams a blob from disk (the caller checks it as it goes).
    pub(crate) async fn blob_stream(
        &self,
        digest: &Digest,
    ) -> Result<impl Stream<Item = Result<Bytes, OciError>> + Send + 'static + use<>, OciError>
    {
        let path = self.blob_path(digest);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OciError::NotFound {
                    what: format!("{}@{digest}", self.dir.display()),
                });
            }
            Err(e) => return Err(OciError::io("cannot read", &path)(e)),
        };
        let read_path = path.clone();
        let raw = read_file_chunks(file)
            .map(move |r| r.map_err(|e| OciError::io("cannot read", read_path.clone())(e)));
        Ok(raw)
    }

    /// Writes a blob from a stream: temp file, digest and size checked as the bytes pass,
    /// flushed and fsync'd, its size on disk checked, then renamed. Returns the bytes written.
    /// On any error (a full disk) the temp file is removed and the blob is not there.
    pub(crate) async fn write_blob<S>(
        &self,
        digest: &Digest,
        size: Option<u64>,
        stream: S,
        what: &str,
    ) -> Result<u64, OciError>
    where
        S: Stream<Item = Result<Bytes, OciError>>,
    {
        // Errors name the blob's file: the temp file's name means nothing to anyone.
        let dest = self.blob_path(digest);
        // Creating and renaming files are blocking calls: off the thread that runs the steps.
        let dir = self.dir.clone();
        let tmp = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix(".tmp-blob-")
                .tempfile_in(&dir)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(OciError::io("cannot create a temp file in", &self.dir))?;
        let std_file = tmp
            .as_file()
            .try_clone()
            .map_err(OciError::io("cannot open", tmp.path()))?;
        let mut file = tokio::fs::File::from_std(std_file);
        let mut verifier = Verifier::new(digest.clone(), size);
        let mut stream = std::pin::pin!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            // Built only on a mismatch: this runs once per chunk.
            verifier
                .update(&chunk)
                .map_err(|m| OciError::digest_mismatch(what, digest)(m))?;
            file.write_all(&chunk)
                .await
                .map_err(OciError::io("cannot write", &dest))?;
        }
        let written = verifier
            .finish()
            .map_err(OciError::digest_mismatch(what, digest))?;
        // tokio's `File` writes in the background: a failed write (a full disk) is only
        // reported by the next operation, so flush before trusting anything; then sync, and
        // check that the file holds every byte.
        file.flush()
            .await
            .map_err(OciError::io("cannot write", &dest))?;
        file.sync_all()
            .await
            .map_err(OciError::io("cannot write", &dest))?;
        let on_disk = file
            .metadata()
            .await
            .map_err(OciError::io("cannot write", &dest))?
            .len();
        drop(file);
        if on_disk != written {
            return Err(OciError::io("cannot write", &dest)(std::io::Error::other(
                format!("it holds {on_disk} bytes after {written} were written"),
            )));
        }
        let into = dest.clone();
        tokio::task::spawn_blocking(move || tmp.persist(&into).map(|_| ()).map_err(|e| e.error))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(OciError::io("cannot move a blob into", &dest))?;
        Ok(written)
    }

    /// Writes a small blob (a manifest, a config) from memory.
    pub async fn write_blob_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<(), OciError> {
        let size = bytes.len() as u64;
        if self.has_blob(digest, size) {
            return Ok(());
        }
        self.write_blob(
            digest,
            Some(size),
            futures::stream::iter([Ok(bytes)]),
            digest.as_str(),
        )
        .await
        .map(|_| ())
    }

    /// The in-memory `index.json` (a panic elsewhere leaves it consistent: every change to it
    /// is made whole under the lock).
    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a top-level image in `index.json` (see the module doc for the convention) and
    /// returns once the files on disk name it (the journal, fsync'd). Call it only once every
    /// blob under the image is written.
    pub async fn add_image(&self, image: &LayoutImage) -> Result<(), OciError> {
        let change = {
            let mut index = self.index();
            index.add(image);
            index.pending.push(image.clone());
            index.changes += 1;
            index.changes
        };
        self.write_through(change).await
    }

    /// Writes `index.json` with every image added so far and removes the journal (nothing when
    /// there is nothing to fold).
    pub async fn flush(&self) -> Result<(), OciError> {
        let _writing = self.writer.lock().await;
        let mut index = self.index();
        if index.changes == index.written && !index.fold && index.journalled == 0 {
            return Ok(());
        }
        self.fold_now(&mut index)
    }

    /// Returns once the files on disk hold change number `change`: at once when a write since
    /// made it there, else after writing every change waiting behind this one — appended to
    /// the journal, or folded into `index.json` when a removal (or a failed append) asks.
    async fn write_through(&self, change: u64) -> Result<(), OciError> {
        let _writing = self.writer.lock().await;
        let (job, changes) = {
            let mut index = self.index();
            if index.written >= change {
                return Ok(());
            }
            let job = if index.fold {
                index.pending.clear();
                Write::Fold(index.bytes()?)
            } else {
                Write::Append(journal_lines(&std::mem::take(&mut index.pending))?)
            };
            (job, index.changes)
        };
        let dir = self.dir.clone();
        let folded = matches!(job, Write::Fold(_));
        let done = tokio::task::spawn_blocking(move || match job {
            Write::Fold(bytes) => fold_files(&dir, &bytes),
            Write::Append(lines) => append_journal(&dir, &lines),
        })
        .await
        .map_err(|e| OciError::Layout {
            path: self.dir.clone(),
            reason: e.to_string(),
        })
        .and_then(|r| r);
        let mut index = self.index();
        if let Err(e) = done {
            // What the failed write held is in memory only: the next write folds it.
            index.fold = true;
            return Err(e);
        }
        index.written = index.written.max(changes);
        if folded {
            index.fold = false;
            index.journalled = 0;
        } else {
            index.journalled += 1;
        }
        #[cfg(test)]
        {
            index.writes += 1;
        }
        Ok(())
    }

    /// Every top-level entry of `index.json`, with or without our annotations.
    pub async fn entries(&self) -> Vec<IndexEntry> {
        self.index()
            .entries
            .values()
            .map(|e| IndexEntry {
                media_type: e.media_type.clone(),
                digest: e.digest.clone(),
                size: e.size,
                annotations: e.annotations.clone(),
            })
            .collect()
    }

    /// The images `index.json` lists with our repository annotation.
    pub async fn images(&self) -> Vec<LayoutImage> {
        self.index()
            .entries
            .values()
            .filter_map(layout_image)
            .collect()
    }

    /// The image of `repository` that `index.json` lists under `tag`, or, for `None`, untagged
    /// at `digest`: the first [`Layout::images`] would give, found in O(log N). (An entry with
    /// our repository annotation and another repository's ref name, which no airgap writes, is
    /// not found untagged.)
    pub fn image(
        &self,
        repository: &str,
        tag: Option<&str>,
        digest: &Digest,
    ) -> Option<LayoutImage> {
        let index = self.index();
        let found = match tag {
            Some(tag) => index
                .named(&format!("{repository}:{tag}"))
                .find(|(k, _)| k.repository.as_deref() == Some(repository))
                .map(|(_, e)| e),
            None => index.untagged(repository, digest).next().map(|(_, e)| e),
        };
        found.and_then(layout_image)
    }

    /// Removes the entry of `repository` that `tag` names (or, untagged, the one) at `digest`,
    /// and writes `index.json`; `false` when there was none (or the tag now names another
    /// digest: then it is left). Blobs stay until [`Layout::collect_garbage`].
    pub async fn remove_image(
        &self,
        repository: &str,
        tag: Option<&str>,
        digest: &Digest,
    ) -> Result<bool, OciError> {
        let change = {
            let mut index = self.index();
            let keys: Vec<EntryKey> = match tag {
                Some(tag) => index
                    .named(&format!("{repository}:{tag}"))
                    .filter(|(k, _)| k.repository.as_deref() == Some(repository))
                    .filter(|(_, e)| &e.digest == digest)
                    .map(|(k, _)| k.clone())
                    .collect(),
                None => index
                    .untagged(repository, digest)
                    .map(|(k, _)| k.clone())
                    .collect(),
            };
            if keys.is_empty() {
                return Ok(false);
            }
            for k in &keys {
                index.remove(k);
            }
            // The journal only adds: a removal is written by a fold.
            index.fold = true;
            index.changes += 1;
            index.changes
        };
        self.write_through(change).await?;
        Ok(true)
    }

    /// The blobs no entry of `index.json` reaches (through indexes, manifests, configs and
    /// layers): what a removal left behind. With `delete`, they are removed from disk.
    /// Returns their digests and total size.
    pub async fn collect_garbage(&self, delete: bool) -> Result<(Vec<Digest>, u64), OciError> {
        let mut reachable: BTreeSet<Digest> = BTreeSet::new();
        let mut pending: Vec<(Digest, Option<String>)> = self
            .index()
            .entries
            .values()
            .map(|e| (e.digest.clone(), Some(e.media_type.clone())))
            .collect();
        while let Some((digest, media_type)) = pending.pop() {
            if !reachable.insert(digest.clone()) {
                continue;
            }
            let Ok(bytes) = self.read_blob(&digest).await else {
                continue;
            };
            let Ok((_, parsed)) =
                super::media::detect(&bytes, media_type.as_deref(), digest.as_str())
            else {
                continue;
            };
            match parsed {
                super::media::Parsed::Index { manifests } => pending.extend(
                    manifests
                        .into_iter()
                        .map(|d| (d.digest, Some(d.media_type))),
                ),
                super::media::Parsed::Image { config, layers } => {
                    reachable.insert(config.digest);
                    reachable.extend(layers.into_iter().map(|l| l.digest));
                }
            }
        }
        let dir = self.dir.join("blobs").join("sha256");
        let mut garbage = Vec::new();
        let mut bytes = 0u64;
        let entries = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((garbage, 0)),
            Err(e) => {
                return Err(OciError::Layout {
                    path: dir,
                    reason: e.to_string(),
                });
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            if reachable.contains(&digest) {
                continue;
            }
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            if delete {
                std::fs::remove_file(entry.path()).map_err(|e| OciError::Layout {
                    path: entry.path(),
                    reason: e.to_string(),
                })?;
            }
            garbage.push(digest);
        }
        garbage.sort();
        Ok((garbage, bytes))
    }

    /// The top-level entry named `ref_name` (`org.opencontainers.image.ref.name`, e.g.
    /// `airgap-example/go-toolset:1.22`), whoever wrote it; entries of other tools count.
    /// Two entries of one name with different digests are an error: which one is meant?
    pub async fn find_ref(&self, ref_name: &str) -> Result<Option<LayoutImage>, OciError> {
        let index = self.index();
        let mut found: Option<&Entry> = None;
        for (_, e) in index.named(ref_name) {
            match found {
                Some(f) if f.digest != e.digest => {
                    return Err(OciError::Layout {
                        path: self.dir.clone(),
                        reason: format!(
                            "`index.json` names two images `{ref_name}`: {} and {}",
                            f.digest, e.digest
                        ),
                    });
                }
                _ => found = Some(e),
            }
        }
        let (repository, tag) = ref_name
            .rsplit_once(':')
            .map(|(r, t)| (r.to_owned(), Some(t.to_owned())))
            .unwrap_or_else(|| (ref_name.to_owned(), None));
        Ok(found.map(|e| LayoutImage {
            repository,
            tag,
            digest: e.digest.clone(),
            media_type: e.media_type.clone(),
            size: e.size,
        }))
    }

    /// Checks that every image `index.json` lists with our repository annotation is whole,
    /// without reading large blobs: each manifest (of an index too, recursively) is read and
    /// checked against its digest, and every blob it names must be there with the size its
    /// descriptor gives. Returns the problems found, in `index.json` order (images) and
    /// manifest order (blobs), each naming the image and the file.
    pub async fn check_complete(&self) -> Vec<LayoutProblem> {
        let mut problems = Vec::new();
        for image in self.images().await {
            let name = match &image.tag {
                Some(tag) => format!("{}:{tag}", image.repository),
                None => format!("{}@{}", image.repository, image.digest),
            };
            problems.extend(
                self.problems_of(&image.digest, image.size, &image.media_type, &name)
                    .await,
            );
        }
        problems
    }

    /// What is wrong below one manifest (see [`Layout::check_complete`]), each problem naming
    /// the image as `name`.
    async fn problems_of(
        &self,
        digest: &Digest,
        size: u64,
        media_type: &str,
        name: &str,
    ) -> Vec<LayoutProblem> {
        let mut problems = Vec::new();
        let mut pending = vec![(digest.clone(), size, media_type.to_owned())];
        while let Some((digest, size, media_type)) = pending.pop() {
            let path = self.blob_path(&digest);
            let problem = |problem: String| LayoutProblem {
                image: name.to_owned(),
                path: path.clone(),
                problem,
            };
            let bytes = match self.read_manifest_blob(&digest) {
                Ok(b) => b,
                Err(OciError::NotFound { .. }) => {
                    problems.push(problem(format!("manifest {digest} is missing")));
                    continue;
                }
                Err(e) => {
                    problems.push(problem(e.to_string()));
                    continue;
                }
            };
            if bytes.len() as u64 != size {
                problems.push(problem(format!(
                    "manifest {digest} has {} bytes where its descriptor says {size}",
                    bytes.len()
                )));
                continue;
            }
            let parsed = match media::detect(&bytes, Some(&media_type), name) {
                Ok((_, parsed)) => parsed,
                Err(e) => {
                    problems.push(problem(e.to_string()));
                    continue;
                }
            };
            match &parsed {
                media::Parsed::Index { manifests } => {
                    // Reversed onto the stack, so children are checked in order.
                    for m in manifests.iter().rev() {
                        pending.push((m.digest.clone(), m.size, m.media_type.clone()));
                    }
                }
                media::Parsed::Image { .. } => {
                    for blob in parsed.blobs() {
                        let path = self.blob_path(&blob.digest);
                        let found = match std::fs::metadata(&path) {
                            Ok(m) if m.len() == blob.size => continue,
                            Ok(m) => format!(
                                "blob {} has {} bytes where manifest {digest} says {}",
                                blob.digest,
                                m.len(),
                                blob.size
                            ),
                            Err(_) => format!(
                                "blob {} (named by manifest {digest}) is missing",
                                blob.digest
                            ),
                        };
                        problems.push(LayoutProblem {
                            image: name.to_owned(),
                            path,
                            problem: found,
                        });
                    }
                }
            }
        }
        problems
    }

    /// Checks every blob against its digest, in name order; the first bad one is the error.
    /// (Copies check each blob as they stream it; this is for a full audit of a bundle.)
    pub fn verify(&self) -> Result<usize, OciError> {
        let blobs = self.dir.join("blobs/sha256");
        let mut names: Vec<String> = std::fs::read_dir(&blobs)
            .map_err(OciError::io("cannot list", &blobs))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in &names {
            let path = blobs.join(name);
            let expected: Digest =
                format!("sha256:{name}")
                    .parse()
                    .map_err(|_| OciError::Layout {
                        path: path.clone(),
                        reason: "a blob's file name is not a sha256 digest".into(),
                    })?;
            let mut file =
                std::fs::File::open(&path).map_err(OciError::io("cannot read", &path))?;
            let mut hasher = Verifier::new(expected.clone(), None);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut file, &mut buf)
                    .map_err(OciError::io("cannot read", &path))?;
                if n == 0 {
                    break;
                }
                let _ = hasher.update(&buf[..n]);
            }
            hasher.finish().map_err(OciError::digest_mismatch(
                path.display().to_string(),
                &expected,
            ))?;
        }
        Ok(names.len())
    }
}

/// An entry as an image, when it has our repository annotation; its tag is what its ref name
/// has after `<repository>:`.
fn layout_image(e: &Entry) -> Option<LayoutImage> {
    let repository = e.annotations.get(REPOSITORY)?.clone();
    let tag = e
        .annotations
        .get(REF_NAME)
        .and_then(|n| n.strip_prefix(repository.as_str())?.strip_prefix(':'))
        .map(str::to_owned);
    Some(LayoutImage {
        repository,
        tag,
        digest: e.digest.clone(),
        media_type: e.media_type.clone(),
        size: e.size,
    })
}

impl Drop for Layout {
    /// Folds the journal into `index.json`, with anything a failed write (or an `add_image`
    /// cancelled while it waited) left in memory only; an error here can only be printed (the
    /// journal stays, and the next open folds it).
    fn drop(&mut self) {
        let dir = self.dir.clone();
        let index = self.index.get_mut().unwrap_or_else(|e| e.into_inner());
        // A layout opened to read (a journal replayed in memory only) changes nothing.
        if index.changes == index.written && index.journalled == 0 {
            return;
        }
        match index.bytes().and_then(|bytes| fold_files(&dir, &bytes)) {
            Ok(()) => index.written = index.changes,
            Err(e) => eprintln!("warning: {e}"),
        }
    }
}

/// What one write of [`Layout::write_through`] does.
enum Write {
    /// `index.json` whole, then the journal removed.
    Fold(Vec<u8>),
    /// Whole lines appended to the journal.
    Append(Vec<u8>),
}

/// The journal lines naming `images`.
fn journal_lines(images: &[LayoutImage]) -> Result<Vec<u8>, OciError> {
    let mut out = Vec::with_capacity(images.len() * 200);
    for image in images {
        serde_json::to_writer(&mut out, image).map_err(|e| OciError::Layout {
            path: PathBuf::from(JOURNAL_FILE),
            reason: e.to_string(),
        })?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Appends whole lines to the journal in `dir` and syncs it.
fn append_journal(dir: &Path, lines: &[u8]) -> Result<(), OciError> {
    use std::io::Write as _;
    let path = dir.join(JOURNAL_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(OciError::io("cannot write", &path))?;
    file.write_all(lines)
        .and_then(|()| file.sync_data())
        .map_err(OciError::io("cannot write", &path))
}

/// Writes `index.json` (atomically) with `bytes`, which include every image of the journal,
/// then removes the journal.
fn fold_files(dir: &Path, bytes: &[u8]) -> Result<(), OciError> {
    write_atomic(dir, &dir.join(INDEX_FILE), bytes)?;
    let journal = dir.join(JOURNAL_FILE);
    match std::fs::remove_file(&journal) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OciError::io("cannot remove", journal)(e)),
    }
}

/// Temp file in `dir`, written, fsync'd, size checked, renamed over `dest`.
fn write_atomic(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), OciError> {
    crate::fetch::write_atomic_in(dir, dest, bytes).map_err(OciError::io("cannot write", dest))
}

/// Reading a file as a stream of chunks without another dependency.
pub(crate) use chunks::read_file_chunks;
mod chunks {
    use bytes::{Bytes, BytesMut};
    use futures::Stream;
    use tokio::io::AsyncReadExt as _;

    const CHUNK: usize = 256 * 1024;

    pub(crate) fn read_file_chunks(
        file: tokio::fs::File,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        futures::stream::try_unfold(file, |mut file| async move {
            let mut buf = BytesMut::zeroed(CHUNK);
            let mut filled = 0;
            while filled < CHUNK {
                let n = file.read(&mut buf[filled..]).await?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Ok(None);
            }
            buf.truncate(filled);
            Ok(Some((buf.freeze(), file)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(repository: &str, tag: Option<&str>, n: usize) -> LayoutImage {
        LayoutImage {
            repository: repository.into(),
            tag: tag.map(str::to_owned),
            digest: Digest::of(format!("{repository} {n}").as_bytes()),
            media_type: media::OCI_MANIFEST.into(),
            size: n as u64,
        }
    }

    fn on_disk(dir: &Path) -> Vec<LayoutImage> {
        let reopened = Layout::open_existing(dir).expect("index.json is valid");
        futures::executor::block_on(reopened.images())
    }

    #[tokio::test]
    async fn each_image_is_on_disk_when_add_image_returns() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        for i in 0..30 {
            let added = image(&format!("repo{}", i % 3), Some(&format!("v{i}")), i);
            layout.add_image(&added).await.unwrap();
            assert!(on_disk(dir.path()).contains(&added), "image {i}");
        }
        assert_eq!(layout.index().writes, 30);
        layout.flush().await.unwrap();
        assert_eq!(layout.index().writes, 30, "nothing was pending");
    }

    /// What `index.json` alone names, without the journal.
    fn index_file_only(dir: &Path) -> Vec<String> {
        let doc: IndexDoc = read_index(&dir.join(INDEX_FILE)).unwrap();
        doc.manifests
            .iter()
            .filter_map(|e| e.annotations.get(REF_NAME).cloned())
            .collect()
    }

    #[tokio::test]
    async fn a_killed_writer_leaves_a_journal_every_reader_sees_and_the_next_open_folds() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        let kept = image("r", Some("1"), 1);
        layout.add_image(&kept).await.unwrap();
        layout.flush().await.unwrap();
        let added: Vec<LayoutImage> = (2..6)
            .map(|i| image("r", Some(&format!("{i}")), i))
            .collect();
        for i in &added {
            layout.add_image(i).await.unwrap();
        }
        // Killed: no drop, no fold. An add in flight left half a line.
        std::mem::forget(layout);
        let journal = dir.path().join(JOURNAL_FILE);
        let mut torn = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap();
        std::io::Write::write_all(&mut torn, br#"{"repository":"r","tag":"9","dig"#).unwrap();
        assert_eq!(index_file_only(dir.path()), vec!["r:1"]);

        let mut all = vec![kept];
        all.extend(added);
        assert_eq!(
            on_disk(dir.path()),
            all,
            "open_existing replays the journal"
        );
        let folded: IndexDoc = read_index_folded(dir.path()).unwrap();
        assert_eq!(
            folded.manifests.len(),
            all.len(),
            "so does read_index_folded"
        );
        assert!(journal.exists(), "reading changes nothing");

        let reopened = Layout::open(dir.path()).unwrap();
        assert!(!journal.exists(), "open folds the journal");
        assert_eq!(index_file_only(dir.path()).len(), all.len());
        assert_eq!(reopened.images().await, all);
    }

    #[tokio::test]
    async fn adds_append_to_the_journal_and_a_drop_or_a_removal_folds_it() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join(JOURNAL_FILE);
        let layout = Layout::open(dir.path()).unwrap();
        let (a, b) = (image("r", Some("a"), 1), image("r", Some("b"), 2));
        layout.add_image(&a).await.unwrap();
        layout.add_image(&b).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&journal).unwrap().lines().count(),
            2
        );
        assert!(index_file_only(dir.path()).is_empty());
        assert!(
            layout
                .remove_image("r", Some("a"), &a.digest)
                .await
                .unwrap()
        );
        assert!(!journal.exists(), "a removal is written by a fold");
        assert_eq!(index_file_only(dir.path()), vec!["r:b"]);
        layout.add_image(&a).await.unwrap();
        drop(layout);
        assert!(!journal.exists(), "a drop folds");
        assert_eq!(index_file_only(dir.path()), vec!["r:a", "r:b"]);
    }

    /// A measurement run by hand (README "Performance"): N images added one at a time, through
    /// the journal and, as before it, with `index.json` rewritten per add.
    #[tokio::test]
    #[ignore]
    async fn measure_sequential_adds() {
        for n in [500usize, 1500] {
            let images: Vec<LayoutImage> = (0..n)
                .map(|i| {
                    image(
                        &format!("devfiles/stack{}", i % 97),
                        Some(&format!("v{i}")),
                        i,
                    )
                })
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let layout = Layout::open(dir.path()).unwrap();
            let t = std::time::Instant::now();
            for i in &images {
                layout.add_image(i).await.unwrap();
            }
            drop(layout);
            let journal = t.elapsed();
            let dir = tempfile::tempdir().unwrap();
            let layout = Layout::open(dir.path()).unwrap();
            let t = std::time::Instant::now();
            for i in &images {
                let mut index = layout.index();
                index.add(i);
                index.changes += 1;
                layout.fold_now(&mut index).unwrap();
            }
            let rewrite = t.elapsed();
            eprintln!(
                "N={n}: journal {:.3} s, rewrite-per-add {:.3} s",
                journal.as_secs_f64(),
                rewrite.as_secs_f64()
            );
        }
    }

    #[tokio::test]
    async fn images_added_at_once_share_writes() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        let n = 2000;
        let images: Vec<LayoutImage> = (0..n)
            .map(|i| image(&format!("repo{}", i % 7), Some(&format!("v{i}")), i))
            .collect();
        let added = futures::future::join_all(images.iter().map(|i| layout.add_image(i))).await;
        assert!(added.iter().all(Result::is_ok));
        let writes = layout.index().writes;
        assert!(writes < 10, "{writes} writes for {n} images added at once");
        let on_disk = on_disk(dir.path());
        assert_eq!(on_disk.len(), n);
        assert_eq!(on_disk, layout.images().await);
        let mut sorted = on_disk.clone();
        sorted.sort_by(|a, b| {
            let key = |i: &LayoutImage| (i.repository.clone(), i.tag.clone().unwrap_or_default());
            key(a).cmp(&key(b))
        });
        assert_eq!(on_disk, sorted, "entries are written sorted");
    }

    #[tokio::test]
    async fn a_tag_names_one_entry_and_untagged_entries_are_kept_once_per_digest() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        let first = image("r", Some("1.0"), 1);
        let second = image("r", Some("1.0"), 2);
        let untagged = image("r", None, 3);
        for i in [&first, &second, &untagged, &untagged] {
            layout.add_image(i).await.unwrap();
        }
        assert_eq!(
            layout.images().await,
            vec![untagged.clone(), second.clone()]
        );
        assert_eq!(
            layout.image("r", Some("1.0"), &first.digest),
            Some(second.clone())
        );
        assert_eq!(
            layout.image("r", None, &untagged.digest),
            Some(untagged.clone())
        );
        assert_eq!(layout.image("r", None, &second.digest), None);
        assert_eq!(layout.image("other", Some("1.0"), &second.digest), None);
        let found = layout.find_ref("r:1.0").await.unwrap().unwrap();
        assert_eq!(found, second);
    }

    #[tokio::test]
    async fn entries_of_other_tools_are_kept_and_found_by_ref_name() {
        let dir = tempfile::tempdir().unwrap();
        Layout::open(dir.path()).unwrap();
        let digest = Digest::of(b"skopeo");
        let foreign = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": media::OCI_MANIFEST,
                "digest": digest.as_str(),
                "size": 6,
                "annotations": {REF_NAME: "x:1"},
                "platform": {"os": "linux"},
            }],
        });
        std::fs::write(dir.path().join(INDEX_FILE), foreign.to_string()).unwrap();
        let layout = Layout::open_existing(dir.path()).unwrap();
        layout.add_image(&image("r", Some("1"), 1)).await.unwrap();
        layout.flush().await.unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(INDEX_FILE)).unwrap()).unwrap();
        assert_eq!(written["manifests"][0]["platform"]["os"], "linux");
        assert_eq!(written["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(
            layout.find_ref("x:1").await.unwrap().unwrap().digest,
            digest
        );
        // Written by this tag, the foreign entry of the same name is replaced.
        layout.add_image(&image("x", Some("1"), 2)).await.unwrap();
        assert_eq!(layout.entries().await.len(), 2);
    }
}
