//! The platform filter in the lock: what lands when the manifest keeps only some platforms
//! (`images { platforms "linux/arm64" }`), and the images that have none of them.
//!
//! A filtered index is not an upstream object: the copy writes it (canonical JSON of the
//! upstream index with the other entries dropped, [`crate::oci::media`]), and devfiles pin its
//! digest. So the lock records it as an entry of its own beside the upstream digest
//! ([`FilteredDigest`]), computed here from the upstream index's bytes by the same function the
//! copy calls: whatever lands is a digest the lock names, and apply checks that it is.
//!
//! What lands is a function of the upstream digest and the filter only, so a landing is kept
//! from the previous lock while both are unchanged, and fetched again (one manifest request,
//! by digest) when either moves. A single manifest has no filter to apply; its config is read
//! once (it says the platform) so `airgap lock` can warn about an image that lacks every
//! requested platform. Such an image still lands as it is: one missing architecture should not
//! keep the rest of the registry from the air gap, and `airgap lock --strict` refuses it.
//!
//! Without `platforms` nothing here is written, and the lock is byte-identical to one written
//! before the filter was recorded.

use std::collections::BTreeMap;

use futures::StreamExt;

use super::resolve::{Mode, Problem};
use super::{FilteredDigest, Lockfile, ResolvedDigest};
use crate::oci::Platforms;
use crate::oci::media::is_index;
use crate::oci::reference::ImageRef;

/// The manifest's `platforms` as the lock records them: sorted, each once.
pub fn normalized(platforms: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = platforms.into_iter().collect();
    out.sort();
    out.dedup();
    out
}

/// A platform list as people read it; empty is every platform.
pub fn shown(platforms: &[String]) -> String {
    if platforms.is_empty() {
        "every platform".into()
    } else {
        platforms.join(", ")
    }
}

/// The filter the lock's `platforms` stand for.
pub fn filter(lock: &Lockfile) -> Platforms {
    if lock.platforms.is_empty() {
        Platforms::All
    } else {
        Platforms::Only(lock.platforms.clone())
    }
}

/// What [`land`] could not do: problems (a fetch failed) and, under `--locked`, the reasons
/// the lock does not satisfy the manifest.
#[derive(Debug, Default)]
pub(super) struct Landed {
    pub resolved: usize,
    pub problems: Vec<Problem>,
    pub unsatisfied: Vec<Problem>,
}

/// Fills each resolved image's landing for `lock.platforms`: kept from `previous` where the
/// upstream digest and the filter are unchanged, else read from upstream through `client`.
/// Without `platforms`, clears them.
pub(super) async fn land(
    lock: &mut Lockfile,
    previous: Option<&Lockfile>,
    client: impl FnOnce() -> crate::oci::Client,
    mode: Mode,
    jobs: usize,
) -> Landed {
    let mut out = Landed::default();
    let same_filter = previous.is_some_and(|p| p.platforms == lock.platforms);
    let mut wanted: Vec<String> = Vec::new();
    for (key, entry) in &mut lock.images {
        let Some(r) = entry.resolved.as_mut() else {
            continue;
        };
        if lock.platforms.is_empty() {
            r.filtered = None;
            r.config_platform = None;
            continue;
        }
        let prev = previous
            .and_then(|p| p.images.get(key))
            .and_then(|e| e.resolved.as_ref())
            .filter(|p| p.digest == r.digest);
        match prev {
            Some(p) if same_filter => {
                r.filtered = p.filtered.clone();
                r.config_platform = p.config_platform.clone();
            }
            Some(p) if !is_index(&r.media_type) && p.config_platform.is_some() => {
                r.filtered = None;
                r.config_platform = p.config_platform.clone();
            }
            _ => wanted.push(key.clone()),
        }
    }
    if wanted.is_empty() {
        return out;
    }
    if mode == Mode::Locked {
        for key in wanted {
            out.unsatisfied.push(Problem {
                what: format!("image `{key}`"),
                message: format!(
                    "has no landing for platforms {} in the lock",
                    lock.platforms.join(", ")
                ),
            });
        }
        return out;
    }
    crate::ui::status(
        "Locking",
        format!("what lands of {} images for their platforms", wanted.len()),
    );
    let client = client();
    let platforms = filter(lock);
    let pinned: Vec<(String, Option<ImageRef>)> = wanted
        .into_iter()
        .map(|key| {
            let image = lock.images[&key].resolved.as_ref().and_then(|r| {
                let digest = r.digest.parse().ok()?;
                Some(ImageRef::parse(&key).ok()?.with_digest(digest))
            });
            (key, image)
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(pinned.iter().map(|(_, image)| async {
        match image {
            Some(i) => client
                .landing(i, &platforms)
                .await
                .map_err(|e| e.to_string()),
            None => Err("its locked digest is not a valid reference".to_string()),
        }
    }))
    .buffered(jobs.max(1))
    .collect()
    .await;
    for ((key, _), result) in pinned.iter().zip(results) {
        let Some(r) = lock.images.get_mut(key).and_then(|e| e.resolved.as_mut()) else {
            continue;
        };
        match result {
            Ok(landing) => {
                out.resolved += 1;
                set_landing(r, landing);
            }
            Err(message) => out.problems.push(Problem {
                what: format!("image `{key}` (what lands for its platforms)"),
                message,
            }),
        }
    }
    out
}

fn set_landing(r: &mut ResolvedDigest, landing: crate::oci::Landing) {
    r.filtered = landing.filtered.map(|f| FilteredDigest {
        platforms: normalized(f.platforms),
        digest: f.digest.to_string(),
        media_type: f.media_type,
        size: f.size,
    });
    r.config_platform = landing.config_platform;
}

/// An image that has none of the lock's platforms.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lacking {
    pub image: String,
    /// The platforms it has (`linux/amd64`), or empty when its config names none.
    pub has: Vec<String>,
    /// The stacks and samples that use it (`stack community go/2.6.0`).
    pub users: Vec<String>,
}

impl std::fmt::Display for Lacking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "image `{}` has none of the platforms asked for",
            self.image
        )?;
        if !self.has.is_empty() {
            write!(f, " (it is {})", self.has.join(", "))?;
        }
        if !self.users.is_empty() {
            let shown: Vec<&str> = self.users.iter().map(String::as_str).take(5).collect();
            write!(f, "; used by {}", shown.join(", "))?;
            if self.users.len() > shown.len() {
                write!(f, " and {} more", self.users.len() - shown.len())?;
            }
        }
        Ok(())
    }
}

/// The images of `lock` that lack every platform of `lock.platforms`: an index none of whose
/// manifests matches, or a single manifest whose config names another platform. Offline: the
/// lock holds what is needed. Empty without `platforms`.
pub fn lacking(lock: &Lockfile) -> Vec<Lacking> {
    if lock.platforms.is_empty() {
        return Vec::new();
    }
    let filter = filter(lock);
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |image: &str, user: String| {
        users.entry(image.to_string()).or_default().push(user);
    };
    for ((source, id), s) in &lock.stacks {
        for i in &s.uses.images {
            add(i, format!("stack {source} {id}"));
        }
    }
    for ((source, id), s) in &lock.samples {
        for i in &s.uses.images {
            add(i, format!("sample {source} {id}"));
        }
    }
    if let Some(ii) = &lock.index_image
        && let Ok(base) = super::resolve::canonical_image(&ii.base)
    {
        add(&base, "index-image base".into());
    }
    for (role, key) in lock.deploy.iter().flat_map(|d| &d.images) {
        add(key, format!("deploy {role}"));
    }
    let mut out = Vec::new();
    for (key, entry) in &lock.images {
        let Some(r) = &entry.resolved else { continue };
        let has: Vec<String> = if is_index(&r.media_type) {
            r.platforms.keys().cloned().collect()
        } else {
            match &r.config_platform {
                Some(p) => vec![p.clone()],
                None => continue,
            }
        };
        if !has.iter().any(|p| filter.matches_written(p)) {
            out.push(Lacking {
                image: key.clone(),
                has,
                users: users.remove(key).unwrap_or_default(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{LockedImage, LockedStack, PlatformDigest, Uses};

    fn image(media_type: &str, platforms: &[&str], config: Option<&str>) -> LockedImage {
        LockedImage {
            written: ["w".to_string()].into(),
            target: "t/x:1".into(),
            resolved: Some(ResolvedDigest {
                digest: format!("sha256:{}", "a".repeat(64)),
                media_type: media_type.into(),
                size: 10,
                platforms: platforms
                    .iter()
                    .map(|p| {
                        (
                            p.to_string(),
                            PlatformDigest {
                                digest: format!("sha256:{}", "b".repeat(64)),
                                media_type: "m".into(),
                                size: 3,
                            },
                        )
                    })
                    .collect(),
                filtered: None,
                config_platform: config.map(str::to_string),
            }),
        }
    }

    fn lock() -> Lockfile {
        let mut lock = Lockfile {
            platforms: vec!["linux/arm64".into()],
            ..Default::default()
        };
        let index = crate::oci::media::OCI_INDEX;
        let single = crate::oci::media::OCI_MANIFEST;
        lock.images.insert(
            "q/both:1".into(),
            image(index, &["linux/amd64", "linux/arm64/v8"], None),
        );
        lock.images
            .insert("q/amd-index:1".into(), image(index, &["linux/amd64"], None));
        lock.images
            .insert("q/amd:1".into(), image(single, &[], Some("linux/amd64")));
        lock.images
            .insert("q/arm:1".into(), image(single, &[], Some("linux/arm64")));
        lock.images
            .insert("q/unknown:1".into(), image(single, &[], None));
        lock.stacks.insert(
            ("c".into(), "go/1.0.0".into()),
            LockedStack {
                devfile: "h".into(),
                files: BTreeMap::new(),
                uses: Uses {
                    images: ["q/amd:1".to_string()].into(),
                    ..Default::default()
                },
                stack_yaml: None,
            },
        );
        lock
    }

    #[test]
    fn lacking_names_indexes_and_single_manifests_without_the_platform() {
        let lock = lock();
        let names: Vec<String> = lacking(&lock).iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "image `q/amd-index:1` has none of the platforms asked for (it is linux/amd64)",
                "image `q/amd:1` has none of the platforms asked for (it is linux/amd64); used by stack c go/1.0.0",
            ]
        );
        let mut all = lock.clone();
        all.platforms.clear();
        assert!(lacking(&all).is_empty(), "no filter, nothing lacks");
    }

    #[test]
    fn the_filter_and_landings_round_trip_through_the_lockfile() {
        let mut lock = lock();
        lock.images
            .get_mut("q/both:1")
            .and_then(|i| i.resolved.as_mut())
            .unwrap()
            .filtered = Some(FilteredDigest {
            platforms: vec!["linux/arm64/v8".into()],
            digest: format!("sha256:{}", "f".repeat(64)),
            media_type: crate::oci::media::OCI_INDEX.into(),
            size: 5,
        });
        let text = crate::lock::write(&lock);
        assert!(text.contains("\nplatforms \"linux/arm64\"\n"), "{text}");
        assert!(
            text.contains("    filtered \"linux/arm64/v8\" digest="),
            "{text}"
        );
        assert!(text.contains(" config-platform=\"linux/amd64\""), "{text}");
        let back = crate::lock::read("airgap.lock", &text).unwrap();
        assert_eq!(back, lock);
        assert_eq!(crate::lock::write(&back), text);
    }
}
