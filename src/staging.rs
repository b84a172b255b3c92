//! The staging folder of an output root, `.airgap-staging`: where a step writes a file before
//! it renames it into the tree, and the *claims*, the list of tree files steps are about to
//! rename into place, so a file renamed in by a step killed before its record was written is
//! still known as airgap's (see [`crate::target`]).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// Where half-written outputs live until they are renamed into place: outside the registry
/// tree, so a killed apply never leaves a temp file where the index generator would list it.
/// Cleared at the start of every apply, except the claims.
pub const STAGING: &str = ".airgap-staging";

/// The list of tree files a step is about to rename into place, one relative path a line.
pub const CLAIMS: &str = "claims";

/// Records that the step about to rename `rel` into `out_root` owns it: appended to the
/// staging folder's claims before the rename, so the file is known as airgap's even when the
/// step is killed before its record is written.
pub fn claim(out_root: &Path, rel: &str) -> std::io::Result<()> {
    let staging = out_root.join(STAGING);
    std::fs::create_dir_all(&staging)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(staging.join(CLAIMS))?;
    f.write_all(format!("{rel}\n").as_bytes())
}

/// The claims left in `out_root`'s staging folder.
pub fn claims(out_root: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(out_root.join(STAGING).join(CLAIMS))
        .map(|t| {
            t.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the claims once the state that owns them is saved.
pub fn forget_claims(out_root: &Path) {
    let _ = std::fs::remove_file(out_root.join(STAGING).join(CLAIMS));
}
