//! Image references, registries and OCI image layouts: the image half of `airgap lock`
//! (resolution) and `airgap apply` (copies).
//!
//! # What each type is for
//!
//! - [`reference::ImageRef`]: a reference as written in a devfile or Dockerfile, normalized
//!   (`openjdk:11-jdk` → `docker.io/library/openjdk:11-jdk`). Its `Display` is the lock key.
//!   [`reference::RefError`] carries the byte range of the bad part for a diagnostic.
//! - [`digest::Digest`]: `sha256:<hex>`, validated.
//! - [`naming::TargetPrefix`] + [`naming::Naming`] → [`naming::TargetRef`]: where an image lands
//!   (`flat`: `<prefix>/<last part>:<tag>`; `nested`: `<prefix>/<upstream host>/<path>:<tag>`,
//!   the host kept because one path on two registries is two images).
//!   [`naming::check_collisions`] rejects two different upstream images on one target tag.
//! - [`mirror::RegistryMirror`], [`mirror::Tls`], [`mirror::RegistryAccess`]: how this machine
//!   reaches a registry (longest matching `from` prefix wins, on whole path components), or an
//!   OCI image layout that stands in for one (`to="dir:PATH"`, [`mirror::Upstream::Layout`]).
//! - [`auth::Credentials`]: `$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`,
//!   `~/.docker/config.json` and credential helpers; secrets never in `Debug` or errors.
//! - [`Client`]: one per run. [`Client::resolve_all`] (tag → digest, media type, per-platform
//!   digests), [`Client::copy_all`] (upstream → registry or layout, by digest),
//!   [`Client::push_layout`] (a sneakernet bundle → its registry), [`Client::push_image`] (an
//!   image built here, e.g. the devfile-index image).
//! - [`layout::Layout`]: the OCI image layout of a `dir:` target or a bundle; its module doc
//!   states the `index.json` naming convention other modules rely on.
//! - [`progress::Progress`]: bars on a caller's `MultiProgress`, plain lines when stderr is
//!   not a terminal. Nothing is written to stdout.
//!
//! # How a copy goes, and why
//!
//! 1. One HEAD of the target tag (or digest): if it already names the digest that would land,
//!    the image is done. A no-op re-run costs one request per image and reads nothing upstream.
//!    A tag is only pushed after everything under it (step 4), and registries refuse a
//!    manifest whose blobs or children are missing, so a present tag means a complete image.
//! 2. The upstream manifest is fetched **by digest** (never by tag) and checked. For an index,
//!    the platforms filter picks manifests (an attestation follows the manifest it describes).
//!    All kept → the index is copied byte for byte; a subset → a new index derived from the
//!    upstream JSON with `manifests` filtered, written as canonical JSON (sorted keys, compact),
//!    so the same upstream index and filter always give the same digest.
//! 3. Blobs, `jobs` at a time across all images: HEAD at the target (skip if there); else a
//!    cross-repository mount when this run already put the blob in another repository of the
//!    same registry (one transfer per blob and registry at a time, so the second image mounts
//!    what the first uploads); else streamed: the upstream GET body is hashed as it passes into
//!    one monolithic PUT (memory stays flat whatever the layer size). The last chunk is held
//!    back until the digest and size are verified, so a corrupted blob never completes an
//!    upload (the registry also checks `?digest=`); into a layout, a temp file is renamed only
//!    once verified. Retries with exponential backoff on 5xx, 429 and dropped connections
//!    restart the blob (no ranged resume: blobs are small next to the cost of the bookkeeping).
//! 4. Child manifests by digest, then the top manifest by tag (or digest), as raw bytes: the
//!    digests at the target are the upstream ones.
//!
//! Trade-offs: the knowledge of which repository holds which blob lives only for one
//! [`Client`] (a new run finds blobs by HEAD, and mounts only what it uploaded itself);
//! registry clients are plain HTTP/1.1 (reqwest without http2), one client (and pool) per TLS
//! set-up, shared by the registries that have it (see `registry.rs`);
//! writing one layout from two processes at once is not supported.

pub mod auth;
mod copy;
pub mod digest;
pub mod error;
pub mod layout;
pub mod media;
pub mod mirror;
pub mod naming;
pub mod progress;
pub mod reference;
mod registry;
pub mod retry;

pub(crate) use copy::describe_manifest;
pub use copy::{
    BlobData, Client, ClientConfig, CopyOutcome, CopyRequest, CopyStats, Destination,
    FilteredIndex, Landing, LocalBlob, LocalImage, PlatformManifest, ResolvedImage,
};
pub use media::Platforms;
