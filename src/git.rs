//! Git remotes: resolving revisions to commits, and a cache of bare repositories.
//!
//! Every remote the manifest or a devfile names gets one bare repository under
//! `.airgap/cache/git/`, keyed by the URL *as written* (so switching a `url-mirror` reuses the
//! cache), fetched from the URL after mirror rules. Nothing is checked out: sources and starter
//! projects are read straight from the commit's tree, which is what makes them reproducible
//! (no working-tree line endings, no file modes from this machine's umask).
//!
//! Resolution (`airgap lock`) lists the remote's refs (`ls-remote`), one round trip per remote;
//! content is fetched only when it is read. file:// and local remotes always get a full fetch
//! (libgit2 cannot fetch by depth or by commit over them); network transports do too, which
//! keeps one code path, at the cost of bytes on first use.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use git2::{AutotagOption, Direction, FetchOptions, Oid, RemoteCallbacks, Repository};

use crate::userinfo::UrlCredentials;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum GitError {
    #[error("cannot reach the git remote `{url}`: {message}")]
    #[diagnostic(
        code(airgap::git::unreachable),
        help(
            "check the URL and the network, or add a `url-mirror` rule that points at a reachable copy"
        )
    )]
    Unreachable { url: String, message: String },
    #[error("the git remote `{url}` has no branch or tag `{rev}`")]
    #[diagnostic(code(airgap::git::missing_revision))]
    MissingRevision {
        url: String,
        rev: String,
        #[help]
        help: Option<String>,
    },
    #[error("commit `{commit}` is not in the git remote `{url}`")]
    #[diagnostic(
        code(airgap::git::missing_commit),
        help(
            "the commit may have been rewritten away upstream; run `airgap lock --update` to pin a new one"
        )
    )]
    MissingCommit { url: String, commit: String },
    #[error("git cache error in `{}`: {message}", path.display())]
    #[diagnostic(code(airgap::git::cache))]
    Cache { path: PathBuf, message: String },
    #[error("cannot read `{path}` at commit {commit}: {message}")]
    #[diagnostic(code(airgap::git::read))]
    Read {
        commit: String,
        path: String,
        message: String,
    },
}

/// A remote's refs, as `git ls-remote` prints them (annotated tags peeled).
#[derive(Debug, Clone, Default)]
pub struct RemoteRefs {
    /// The commit HEAD points at.
    pub head: Option<Oid>,
    /// The branch HEAD points at, when the remote says.
    pub head_branch: Option<String>,
    pub branches: BTreeMap<String, Oid>,
    /// Tag name → the commit it peels to.
    pub tags: BTreeMap<String, Oid>,
}

impl RemoteRefs {
    /// Resolves a revision as a devfile or manifest writes it: `None` for the default branch,
    /// a branch, a tag, a full ref name, or a full commit id (taken as is: checked on fetch).
    pub fn resolve(&self, url: &str, rev: Option<&str>) -> Result<Oid, GitError> {
        let Some(rev) = rev else {
            return self.head.ok_or_else(|| GitError::MissingRevision {
                url: url.into(),
                rev: "HEAD".into(),
                help: Some("the remote has no default branch; name a revision".into()),
            });
        };
        if rev == "HEAD"
            && let Some(h) = self.head
        {
            return Ok(h);
        }
        if is_full_commit(rev)
            && let Ok(oid) = Oid::from_str(rev)
        {
            return Ok(oid);
        }
        let short = rev
            .strip_prefix("refs/heads/")
            .or_else(|| rev.strip_prefix("refs/tags/"))
            .unwrap_or(rev);
        if !rev.starts_with("refs/tags/")
            && let Some(oid) = self.branches.get(short)
        {
            return Ok(*oid);
        }
        if let Some(oid) = self.tags.get(short) {
            return Ok(*oid);
        }
        let names = self
            .branches
            .keys()
            .chain(self.tags.keys())
            .map(String::as_str);
        let help = crate::diag::did_you_mean(rev, names.clone())
            .map(|s| format!("did you mean `{s}`?"))
            .or_else(|| {
                let some: Vec<&str> = names.take(8).collect();
                (!some.is_empty()).then(|| format!("the remote has: {}", some.join(", ")))
            });
        Err(GitError::MissingRevision {
            url: url.into(),
            rev: rev.into(),
            help,
        })
    }
}

pub fn is_full_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Authentication: a credential the manifest wrote in the URL first (see
/// [`crate::userinfo`]), then git's credential helpers, then the SSH agent. libgit2 asks again
/// after each refusal, so each source is offered once and then the answer is "no more".
fn callbacks(credentials: &UrlCredentials) -> RemoteCallbacks<'_> {
    let mut cb = RemoteCallbacks::new();
    let mut offered_url = false;
    let mut offered_helper = false;
    cb.credentials(move |url, username, allowed| {
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
            if !offered_url {
                offered_url = true;
                if let Some(c) = credentials.lookup(url) {
                    return git2::Cred::userpass_plaintext(&c.username, &c.password);
                }
            }
            if !offered_helper {
                offered_helper = true;
                if let Ok(config) = git2::Config::open_default()
                    && let Ok(cred) = git2::Cred::credential_helper(&config, url, username)
                {
                    return Ok(cred);
                }
            }
            return Err(git2::Error::from_str(
                "authentication failed: the server refused the credentials, or none were found \
                 (in the manifest's URL or git's credential helpers)",
            ));
        }
        if allowed.contains(git2::CredentialType::SSH_KEY)
            && let Some(user) = username
        {
            return git2::Cred::ssh_key_from_agent(user);
        }
        git2::Cred::default()
    });
    cb
}

fn unreachable(url: &str, e: git2::Error) -> GitError {
    GitError::Unreachable {
        url: url.to_string(),
        message: e.message().to_string(),
    }
}

/// Lists a remote's refs without fetching anything (`git ls-remote`).
pub fn ls_remote(
    fetch_url: &str,
    shown_url: &str,
    credentials: &UrlCredentials,
) -> Result<RemoteRefs, GitError> {
    let mut remote =
        git2::Remote::create_detached(fetch_url).map_err(|e| unreachable(shown_url, e))?;
    let conn = remote
        .connect_auth(
            Direction::Fetch,
            Some(callbacks(credentials)),
            Some(proxy_options()),
        )
        .map_err(|e| unreachable(shown_url, e))?;
    let mut refs = RemoteRefs::default();
    let mut peeled: BTreeMap<String, Oid> = BTreeMap::new();
    let heads = conn.list().map_err(|e| unreachable(shown_url, e))?;
    for head in heads {
        let name = head.name();
        if name == "HEAD" {
            refs.head = Some(head.oid());
            if let Some(target) = head.symref_target() {
                refs.head_branch = target.strip_prefix("refs/heads/").map(str::to_string);
            }
        } else if let Some(b) = name.strip_prefix("refs/heads/") {
            refs.branches.insert(b.to_string(), head.oid());
        } else if let Some(t) = name.strip_prefix("refs/tags/") {
            match t.strip_suffix("^{}") {
                Some(t) => {
                    peeled.insert(t.to_string(), head.oid());
                }
                None => {
                    refs.tags.insert(t.to_string(), head.oid());
                }
            }
        }
    }
    // An annotated tag's own object is not a commit: the `^{}` line names the commit.
    refs.tags.extend(peeled);
    if refs.head_branch.is_none()
        && let Ok(buf) = conn.default_branch()
        && let Some(b) = buf
            .as_str()
            .ok()
            .and_then(|s| s.strip_prefix("refs/heads/"))
    {
        refs.head_branch = Some(b.to_string());
    }
    Ok(refs)
}

/// The cache of bare repositories, one per remote URL as written.
#[derive(Debug, Clone)]
pub struct GitCache {
    root: PathBuf,
    credentials: UrlCredentials,
}

impl GitCache {
    /// The cache in `root`, fetching with the manifest's URL credentials.
    pub fn new(root: impl Into<PathBuf>, credentials: UrlCredentials) -> Self {
        Self {
            root: root.into(),
            credentials,
        }
    }

    /// The credentials fetches offer before git's credential helpers.
    pub fn credentials(&self) -> &UrlCredentials {
        &self.credentials
    }

    /// The bare repository's folder for a remote (as written, before mirror rules).
    pub fn path_for(&self, url: &str) -> PathBuf {
        let hash = blake3::hash(url.as_bytes()).to_hex();
        let last = url
            .trim_end_matches('/')
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("repo")
            .trim_end_matches(".git");
        let last: String = last
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(40)
            .collect();
        self.root.join(format!("{last}-{}.git", &hash[..16]))
    }

    /// Opens (creating when missing) the cache repository of a remote.
    pub fn open(&self, url: &str) -> Result<Repository, GitError> {
        let path = self.path_for(url);
        let cache_err = |e: git2::Error| GitError::Cache {
            path: path.clone(),
            message: e.message().to_string(),
        };
        match Repository::open_bare(&path) {
            Ok(r) => Ok(r),
            Err(_) => {
                std::fs::create_dir_all(&self.root).map_err(|e| GitError::Cache {
                    path: self.root.clone(),
                    message: e.to_string(),
                })?;
                // Initialise in a temporary folder and rename, so a killed run never leaves a
                // half-made repository that later opens as empty.
                let tmp = tempfile::Builder::new()
                    .prefix(".init-")
                    .tempdir_in(&self.root)
                    .map_err(|e| GitError::Cache {
                        path: self.root.clone(),
                        message: e.to_string(),
                    })?;
                Repository::init_bare(tmp.path()).map_err(cache_err)?;
                let tmp_path = tmp.keep();
                if let Err(e) = std::fs::rename(&tmp_path, &path) {
                    let _ = std::fs::remove_dir_all(&tmp_path);
                    if !path.exists() {
                        return Err(GitError::Cache {
                            path: path.clone(),
                            message: e.to_string(),
                        });
                    }
                }
                Repository::open_bare(&path).map_err(cache_err)
            }
        }
    }

    /// Makes sure `commit` is in the cache repository of `url`, fetching from `fetch_url` when
    /// it is not. Returns the opened repository.
    pub fn ensure_commit(
        &self,
        url: &str,
        fetch_url: &str,
        commit: Oid,
    ) -> Result<Repository, GitError> {
        let repo = self.open(url)?;
        if repo.find_commit(commit).is_ok() {
            return Ok(repo);
        }
        fetch_all(&repo, fetch_url, url, &self.credentials)?;
        if repo.find_commit(commit).is_ok() {
            return Ok(repo);
        }
        // Not reachable from any branch or tag: ask for the object itself (servers that allow
        // it answer; file:// does not).
        let _ = fetch_refspecs(
            &repo,
            fetch_url,
            url,
            &[format!("+{commit}:refs/airgap/pinned/{commit}")],
            &self.credentials,
        );
        if repo.find_commit(commit).is_ok() {
            return Ok(repo);
        }
        Err(GitError::MissingCommit {
            url: url.to_string(),
            commit: commit.to_string(),
        })
    }
}

fn fetch_all(
    repo: &Repository,
    fetch_url: &str,
    shown: &str,
    credentials: &UrlCredentials,
) -> Result<(), GitError> {
    fetch_refspecs(
        repo,
        fetch_url,
        shown,
        &[
            "+refs/heads/*:refs/airgap/heads/*".to_string(),
            "+refs/tags/*:refs/airgap/tags/*".to_string(),
        ],
        credentials,
    )
}

/// libgit2's proxy detection: `http.proxy` from git's configuration, else `HTTPS_PROXY` /
/// `HTTP_PROXY` and `NO_PROXY` from the environment (without it, libgit2 uses no proxy at all).
fn proxy_options() -> git2::ProxyOptions<'static> {
    let mut proxy = git2::ProxyOptions::new();
    proxy.auto();
    proxy
}

fn fetch_refspecs(
    repo: &Repository,
    fetch_url: &str,
    shown: &str,
    refspecs: &[String],
    credentials: &UrlCredentials,
) -> Result<(), GitError> {
    let mut remote = repo
        .remote_anonymous(fetch_url)
        .map_err(|e| unreachable(shown, e))?;
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(credentials));
    opts.download_tags(AutotagOption::None);
    opts.proxy_options(proxy_options());
    remote
        .fetch(refspecs, Some(&mut opts), None)
        .map_err(|e| unreachable(shown, e))
}

/// One entry of a tree read at a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Path relative to the folder that was walked, `/`-separated.
    pub path: String,
    pub kind: FileKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File { executable: bool },
    Symlink,
}

/// Reads files of one commit of a cached repository.
///
/// Folders are looked up once: each tree read is kept by its path, so reading every stack's
/// devfile parses `stacks/` once rather than once per file (libgit2 caches no tree larger
/// than 4 KiB, and a registry's `stacks/` is far larger).
pub struct CommitReader<'r> {
    repo: &'r Repository,
    tree: git2::Tree<'r>,
    commit: Oid,
    /// Folder path (no leading or trailing `/`) → its tree, `None` when there is no folder.
    trees: RefCell<HashMap<String, Option<git2::Tree<'r>>>>,
}

impl<'r> CommitReader<'r> {
    pub fn new(repo: &'r Repository, commit: Oid) -> Result<Self, GitError> {
        let read_err = |e: git2::Error| GitError::Read {
            commit: commit.to_string(),
            path: String::new(),
            message: e.message().to_string(),
        };
        let tree = repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(read_err)?;
        Ok(Self {
            repo,
            tree,
            commit,
            trees: RefCell::new(HashMap::new()),
        })
    }

    /// The cached repository the commit is read from (for history: [`last_modified`]).
    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    /// The commit being read.
    pub fn commit(&self) -> Oid {
        self.commit
    }

    fn err(&self, path: &str, message: impl Into<String>) -> GitError {
        GitError::Read {
            commit: self.commit.to_string(),
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// The bytes of a file, `None` when there is no file at `path`.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let path = path.trim_matches('/');
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let Some(tree) = self.subtree(dir)? else {
            return Ok(None);
        };
        let Some(entry) = tree.get_name(name) else {
            return Ok(None);
        };
        if entry.kind() != Some(git2::ObjectType::Blob) {
            return Ok(None);
        }
        let blob = self
            .repo
            .find_blob(entry.id())
            .map_err(|e| self.err(path, e.message()))?;
        Ok(Some(blob.content().to_vec()))
    }

    /// The tree of the folder `dir` (`""` or `.` for the root), `None` when there is none;
    /// found from its parent's, each kept for the next lookup.
    fn subtree(&self, dir: &str) -> Result<Option<git2::Tree<'r>>, GitError> {
        let dir = dir.trim_matches('/');
        if dir.is_empty() || dir == "." {
            return Ok(Some(self.tree.clone()));
        }
        if let Some(known) = self.trees.borrow().get(dir) {
            return Ok(known.clone());
        }
        let (parent, name) = dir.rsplit_once('/').unwrap_or(("", dir));
        let found = match self.subtree(parent)? {
            Some(parent) => match parent.get_name(name) {
                Some(entry) if entry.kind() == Some(git2::ObjectType::Tree) => Some(
                    self.repo
                        .find_tree(entry.id())
                        .map_err(|e| self.err(dir, e.message()))?,
                ),
                _ => None,
            },
            None => None,
        };
        self.trees
            .borrow_mut()
            .insert(dir.to_owned(), found.clone());
        Ok(found)
    }

    /// The names of a folder's entries, `(name, is_dir)`, sorted; `None` when not a folder.
    pub fn list(&self, dir: &str) -> Result<Option<Vec<(String, bool)>>, GitError> {
        let Some(tree) = self.subtree(dir)? else {
            return Ok(None);
        };
        let mut out: Vec<(String, bool)> = tree
            .iter()
            .filter_map(|e| {
                let name = e.name().ok()?.to_string();
                Some((name, e.kind() == Some(git2::ObjectType::Tree)))
            })
            .collect();
        out.sort();
        Ok(Some(out))
    }

    /// Every file below `dir` (recursively), sorted by path. Submodules are skipped (a clone
    /// without `--recursive` leaves them empty too).
    pub fn walk(&self, dir: &str) -> Result<Vec<TreeFile>, GitError> {
        let Some(tree) = self.subtree(dir)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |parent, entry| {
            if entry.kind() == Some(git2::ObjectType::Blob)
                && let Ok(name) = entry.name()
            {
                let kind = match entry.filemode() {
                    0o120000 => FileKind::Symlink,
                    0o100755 => FileKind::File { executable: true },
                    _ => FileKind::File { executable: false },
                };
                out.push(TreeFile {
                    path: format!("{parent}{name}"),
                    kind,
                });
            }
            git2::TreeWalkResult::Ok
        })
        .map_err(|e| self.err(dir, e.message()))?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// For each path, the author time (unix seconds, offset minutes) of the newest commit reachable
/// from `tip` that changed it — what `git log -1 --format=%aI -- PATH` prints. A commit
/// changed a path when the path's object differs from every parent's (for a merge that kept
/// one side's version, the change is found further down that side, as git's history
/// simplification does). Paths never found are left out.
pub fn last_modified(
    repo: &Repository,
    tip: Oid,
    paths: &[String],
) -> Result<BTreeMap<String, (i64, i32)>, GitError> {
    let err = |e: git2::Error| GitError::Read {
        commit: tip.to_string(),
        path: String::new(),
        message: e.message().to_string(),
    };
    let entry_id = |tree: &git2::Tree<'_>, path: &str| -> Option<Oid> {
        tree.get_path(Path::new(path)).ok().map(|e| e.id())
    };
    let mut pending: Vec<&String> = paths.iter().collect();
    let mut out = BTreeMap::new();
    let mut walk = repo.revwalk().map_err(err)?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)
        .map_err(err)?;
    walk.push(tip).map_err(err)?;
    for oid in walk {
        if pending.is_empty() {
            break;
        }
        let oid = oid.map_err(err)?;
        let commit = repo.find_commit(oid).map_err(err)?;
        let tree = commit.tree().map_err(err)?;
        let parents: Vec<git2::Tree<'_>> = commit.parents().filter_map(|p| p.tree().ok()).collect();
        pending.retain(|path| {
            let here = entry_id(&tree, path);
            if here.is_none() {
                return true;
            }
            let changed = parents.is_empty() || parents.iter().all(|p| entry_id(p, path) != here);
            if changed {
                let author = commit.author();
                let when = author.when();
                out.insert((*path).clone(), (when.seconds(), when.offset_minutes()));
                false
            } else {
                true
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with one commit of `files` (path, content).
    fn repo_with(dir: &Path, files: &[(&str, &str)]) -> (Repository, Oid) {
        let repo = Repository::init_bare(dir).unwrap();
        let mut index = git2::Index::new().unwrap();
        for (path, content) in files {
            let blob = repo.blob(content.as_bytes()).unwrap();
            let mut entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: content.len() as u32,
                id: blob,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            entry.flags = (path.len() as u16) & 0xfff;
            index.add(&entry).unwrap();
        }
        let tree = index.write_tree_to(&repo).unwrap();
        let sig = git2::Signature::new("t", "t@example.com", &git2::Time::new(0, 0)).unwrap();
        let commit = {
            let tree = repo.find_tree(tree).unwrap();
            repo.commit(None, &sig, &sig, "one", &tree, &[]).unwrap()
        };
        (repo, commit)
    }

    #[test]
    fn files_and_folders_are_read_through_the_kept_trees() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repo_with(
            dir.path(),
            &[
                ("README.md", "top"),
                ("stacks/go/devfile.yaml", "go"),
                ("stacks/go/1.0.0/devfile.yaml", "go 1"),
                ("stacks/java/devfile.yaml", "java"),
                ("stacks/file", "not a folder"),
            ],
        );
        let reader = CommitReader::new(&repo, commit).unwrap();
        let read = |p: &str| {
            reader
                .read(p)
                .unwrap()
                .map(|b| String::from_utf8(b).unwrap())
        };
        // Twice each: the second goes through the kept trees.
        for _ in 0..2 {
            assert_eq!(read("README.md").as_deref(), Some("top"));
            assert_eq!(read("stacks/go/devfile.yaml").as_deref(), Some("go"));
            assert_eq!(
                read("stacks/go/1.0.0/devfile.yaml").as_deref(),
                Some("go 1")
            );
            assert_eq!(read("stacks/java/devfile.yaml").as_deref(), Some("java"));
            assert_eq!(read("stacks/go"), None, "a folder is not a file");
            assert_eq!(
                read("stacks/file/devfile.yaml"),
                None,
                "a file is not a folder"
            );
            assert_eq!(read("stacks/rust/devfile.yaml"), None);
            assert_eq!(read("nothing"), None);
        }
        assert_eq!(
            reader.list("stacks").unwrap().unwrap(),
            [
                ("file".to_string(), false),
                ("go".to_string(), true),
                ("java".to_string(), true)
            ]
        );
        assert_eq!(reader.list("stacks/file").unwrap(), None);
        assert_eq!(reader.list("stacks/rust").unwrap(), None);
        let walked: Vec<String> = reader
            .walk("stacks/go")
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(walked, ["1.0.0/devfile.yaml", "devfile.yaml"]);
    }
}
