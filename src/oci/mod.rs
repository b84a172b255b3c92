//! Image references, registries and OCI image layouts.

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

pub use copy::{
    BlobData, Client, ClientConfig, CopyOutcome, CopyRequest, CopyStats, Destination, LocalBlob,
    LocalImage, PlatformManifest, ResolvedImage,
};
