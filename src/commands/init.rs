//! `airgap init`: a commented `airgap.kdl` for the community devfile registry, and the
//! `.gitignore` lines for what airgap writes that is not to be committed (the workspace, the
//! output folder). It never overwrites a manifest.

use std::path::Path;
use std::process::ExitCode;

/// The manifest `init` writes; `{TARGET}` is the target node's argument.
const TEMPLATE: &str = r#"// airgap.kdl — the manifest of an offline devfile registry (KDL 2.0), written by `airgap init`.
// `airgap lock` resolves it into airgap.lock; `airgap apply` builds the target from the lock.
// Commit this file and airgap.lock; airgap.kdl.example in airgap's repository shows every node.

// Where the offline registry lives. A registry inside the air gap:
//   target "registry.internal:5000/devfiles" tls="verify"      // tls: verify | insecure | plain-http
// or a local folder (an OCI image layout and the registry tree) that `airgap serve` serves:
target "{TARGET}"

// The community devfile registry. Uncomment `stacks` to take only some of its stacks.
source "community" git="https://github.com/devfile/registry" ref="main" {
    // stacks "go" "nodejs" "java-springboot"
    samples #true
}

// When this machine reaches upstream through a proxy or a pull-through cache:
// registry-mirror "quay.io" to="cache.internal:5000/quay" tls="verify"
// url-mirror "https://github.com/" to="https://git-cache.internal/github.com/"

// Images no devfile names but the cluster needs, and the platforms to keep:
// images naming="flat" {
//     platforms "linux/amd64"
//     include "quay.io/devfile/universal-developer-image:ubi9-latest"
// }
"#;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InitError {
    #[error("`{}` already exists", path.display())]
    #[diagnostic(
        code(airgap::init::exists),
        help("airgap init never overwrites a manifest: edit it, or remove it first")
    )]
    Exists { path: std::path::PathBuf },
    #[error("`{target}` is not a target airgap can use:\n{reason}")]
    #[diagnostic(
        code(airgap::usage),
        help("a registry `HOST[:PORT][/PATH]`, or a folder `dir:PATH`")
    )]
    BadTarget { target: String, reason: String },
    #[error("cannot write `{}`: {source}", path.display())]
    #[diagnostic(code(airgap::init::io))]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes the manifest at `path` for `target`, and adds the ignore lines to the `.gitignore`
/// beside it.
pub fn run(path: &Path, target: &str) -> Result<ExitCode, InitError> {
    if path.exists() {
        return Err(InitError::Exists {
            path: path.to_path_buf(),
        });
    }
    let text = TEMPLATE.replace("{TARGET}", &target.replace(['"', '\\'], ""));
    let root = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Io { path, source }
    };
    // Written whole in a scratch folder beside its final name, checked by the manifest parser
    // itself, then linked into place only if nothing is there.
    let scratch = tempfile::Builder::new()
        .prefix(".airgap-init-")
        .tempdir_in(root)
        .map_err(io(root))?;
    let draft = scratch.path().join(crate::manifest::FILE_NAME);
    let mut file = std::fs::File::create(&draft).map_err(io(&draft))?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io(&draft))?;
    file.sync_all().map_err(io(&draft))?;
    let manifest = crate::manifest::Manifest::load(&draft).map_err(|e| InitError::BadTarget {
        target: target.to_string(),
        reason: crate::diag::render_plain(&e),
    })?;
    std::fs::hard_link(&draft, path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            InitError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io(path)(e)
        }
    })?;

    let mut ignore = vec![".airgap/".to_string()];
    if let crate::manifest::TargetKind::Dir { path: out, .. } = &manifest.target.kind {
        ignore.push(format!(
            "{}/",
            out.display().to_string().trim_end_matches('/')
        ));
    }
    let gitignore = root.join(".gitignore");
    let existing = std::fs::read_to_string(&gitignore).unwrap_or_default();
    let missing: Vec<&String> = ignore
        .iter()
        .filter(|l| !existing.lines().any(|e| e.trim() == l.as_str()))
        .collect();
    if !missing.is_empty() {
        let mut add = String::new();
        if !existing.is_empty() && !existing.ends_with('\n') {
            add.push('\n');
        }
        add.push_str("# airgap: its workspace (caches, state) and the output folder\n");
        for l in &missing {
            add.push_str(l);
            add.push('\n');
        }
        crate::fetch::write_atomic(&gitignore, format!("{existing}{add}").as_bytes())
            .map_err(io(&gitignore))?;
    }
    crate::ui::status(
        "Created",
        format!(
            "`{}` for the community registry; then `airgap lock` and `airgap apply`",
            path.display()
        ),
    );
    Ok(ExitCode::SUCCESS)
}
