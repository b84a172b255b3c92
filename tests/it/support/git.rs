//! Real git repositories built in tests (with git2, as git would write them), and a real
//! `git daemon` on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use git2::{Oid, Repository, Signature, Time};

/// A repository under construction. Commits have fixed authors and dates, so ids are stable.
pub struct Repo {
    pub path: PathBuf,
    pub repo: Repository,
    clock: i64,
}

impl Repo {
    /// A new bare repository at `path` (HEAD → `main`).
    pub fn init_bare(path: &Path) -> Repo {
        std::fs::create_dir_all(path).unwrap();
        let repo = Repository::init_bare(path).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        Repo {
            path: path.to_path_buf(),
            repo,
            clock: 1_700_000_000,
        }
    }

    /// Opens an existing repository.
    pub fn open(path: &Path) -> Repo {
        Repo {
            path: path.to_path_buf(),
            repo: Repository::open(path).unwrap(),
            clock: 1_800_000_000,
        }
    }

    /// A `file://` URL of the repository.
    pub fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    /// Commits `files` (path → bytes; the whole tree) on top of `parent` and returns the id.
    /// Does not move any ref.
    pub fn commit(&mut self, parent: Option<Oid>, files: &[(&str, &[u8])], message: &str) -> Oid {
        let mut index = git2::Index::new().unwrap();
        for (path, bytes) in files {
            let mode = if path.ends_with(".sh") {
                0o100755
            } else {
                0o100644
            };
            self.stage(&mut index, path, bytes, mode);
        }
        let parents: Vec<Oid> = parent.into_iter().collect();
        self.commit_index(&mut index, &parents, message)
    }

    /// A new commit on `parent` with one file (at any depth) replaced, the rest of the tree
    /// kept.
    pub fn amend_file(&mut self, parent: Oid, path: &str, bytes: &[u8], message: &str) -> Oid {
        let mut index = git2::Index::new().unwrap();
        let parent_tree = self.repo.find_commit(parent).unwrap().tree().unwrap();
        index.read_tree(&parent_tree).unwrap();
        drop(parent_tree); // it borrows the repository, which the commit needs mutably
        self.stage(&mut index, path, bytes, 0o100644);
        self.commit_index(&mut index, &[parent], message)
    }

    /// Adds `bytes` to the repository and to `index` as `path`, with zero times and ids.
    fn stage(&self, index: &mut git2::Index, path: &str, bytes: &[u8], mode: u32) {
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode,
            uid: 0,
            gid: 0,
            file_size: bytes.len() as u32,
            id: self.repo.blob(bytes).unwrap(),
            flags: 0,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        };
        index.add(&entry).unwrap();
    }

    /// Commits the tree of `index` on `parents`, an hour after the previous commit, by the
    /// fixed author. Does not move any ref.
    fn commit_index(&mut self, index: &mut git2::Index, parents: &[Oid], message: &str) -> Oid {
        self.clock += 3600;
        let commits: Vec<git2::Commit> = parents
            .iter()
            .map(|p| self.repo.find_commit(*p).unwrap())
            .collect();
        let tree = self
            .repo
            .find_tree(index.write_tree_to(&self.repo).unwrap())
            .unwrap();
        let sig = Signature::new("Test", "test@example.com", &Time::new(self.clock, 0)).unwrap();
        let parents: Vec<&git2::Commit> = commits.iter().collect();
        self.repo
            .commit(None, &sig, &sig, message, &tree, &parents)
            .unwrap()
    }

    pub fn set_branch(&self, name: &str, commit: Oid) {
        self.repo
            .reference(&format!("refs/heads/{name}"), commit, true, "test")
            .unwrap();
    }

    /// An annotated tag (the ref points at a tag object, which peels to `commit`).
    pub fn tag_annotated(&self, name: &str, commit: Oid) {
        let obj = self.repo.find_object(commit, None).unwrap();
        let sig = Signature::new("Test", "test@example.com", &Time::new(self.clock, 0)).unwrap();
        self.repo.tag(name, &obj, &sig, name, true).unwrap();
    }

    pub fn branch(&self, name: &str) -> Oid {
        self.repo
            .find_reference(&format!("refs/heads/{name}"))
            .unwrap()
            .target()
            .unwrap()
    }
}

/// A `git daemon` serving a folder's repositories on 127.0.0.1; killed on drop.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
    pub base: PathBuf,
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        let port = super::free_port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
                &base.display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts (is git installed?)");
        super::wait_for_port(port);
        GitDaemon {
            child,
            port,
            base: base.to_path_buf(),
        }
    }

    /// `git://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
