//! Reading a source's files the same way whether it is a git commit or a local folder.

use std::path::{Path, PathBuf};

use crate::git::{CommitReader, FileKind, GitError, TreeFile};

/// The files of one source at one state: a commit of a cached repository, or a folder.
pub enum Files<'r> {
    Git(CommitReader<'r>),
    Dir(PathBuf),
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum FilesError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Git(#[from] GitError),
    #[error("cannot read `{}`: {source}", path.display())]
    #[diagnostic(code(airgap::source::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Files<'_> {
    /// A file's bytes; `None` when there is no regular file at `rel`.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, FilesError> {
        match self {
            Files::Git(r) => Ok(r.read(rel)?),
            Files::Dir(root) => {
                let p = root.join(rel);
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_file() => std::fs::read(&p).map(Some).map_err(io(&p)),
                    Ok(_) => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io(&p)(e)),
                }
            }
        }
    }

    /// The contents of a symlink (its target), for packing symlinks as symlinks.
    pub fn read_link(&self, rel: &str) -> Result<Option<Vec<u8>>, FilesError> {
        match self {
            Files::Git(r) => Ok(r.read(rel)?),
            Files::Dir(root) => {
                let p = root.join(rel);
                match std::fs::read_link(&p) {
                    Ok(t) => Ok(Some(t.to_string_lossy().into_owned().into_bytes())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io(&p)(e)),
                }
            }
        }
    }

    /// A folder's entries `(name, is_dir)`, sorted; `None` when `rel` is not a folder.
    pub fn list(&self, rel: &str) -> Result<Option<Vec<(String, bool)>>, FilesError> {
        match self {
            Files::Git(r) => Ok(r.list(rel)?),
            Files::Dir(root) => {
                let p = root.join(rel);
                let rd = match std::fs::read_dir(&p) {
                    Ok(rd) => rd,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                        ) =>
                    {
                        return Ok(None);
                    }
                    Err(e) => return Err(io(&p)(e)),
                };
                let mut out = Vec::new();
                for entry in rd {
                    let entry = entry.map_err(io(&p))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name == ".git" {
                        continue;
                    }
                    let is_dir = entry.file_type().map_err(io(&p))?.is_dir();
                    out.push((name, is_dir));
                }
                out.sort();
                Ok(Some(out))
            }
        }
    }

    /// Every file below `rel`, recursively, sorted by path (relative to `rel`).
    pub fn walk(&self, rel: &str) -> Result<Vec<TreeFile>, FilesError> {
        match self {
            Files::Git(r) => Ok(r.walk(rel)?),
            Files::Dir(root) => {
                let base = root.join(rel);
                let mut out = Vec::new();
                walk_dir(&base, "", &mut out)?;
                out.sort_by(|a, b| a.path.cmp(&b.path));
                Ok(out)
            }
        }
    }
}

fn walk_dir(dir: &Path, prefix: &str, out: &mut Vec<TreeFile>) -> Result<(), FilesError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".git" {
            continue;
        }
        let ft = entry.file_type().map_err(io(dir))?;
        let path = format!("{prefix}{name}");
        if ft.is_dir() {
            walk_dir(&entry.path(), &format!("{path}/"), out)?;
        } else if ft.is_symlink() {
            out.push(TreeFile {
                path,
                kind: FileKind::Symlink,
            });
        } else if ft.is_file() {
            #[cfg(unix)]
            let executable = {
                use std::os::unix::fs::PermissionsExt;
                entry.metadata().map_err(io(dir))?.permissions().mode() & 0o111 != 0
            };
            #[cfg(not(unix))]
            let executable = false;
            out.push(TreeFile {
                path,
                kind: FileKind::File { executable },
            });
        }
    }
    Ok(())
}
