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

/// Smart HTTP for a folder's repositories: git's own `git http-backend` (CGI) behind a
/// server on 127.0.0.1 that demands HTTP basic auth with one user and password, as a private
/// forge does; plain files of `<folder>/files/` at `/files/…`. Stopped on drop.
pub struct GitHttp {
    pub port: u16,
    requests: std::sync::Arc<GitHttpRequests>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct GitHttpConfig {
    base: PathBuf,
    /// The `Authorization` header value that is let through.
    authorization: String,
    requests: std::sync::Arc<GitHttpRequests>,
}

/// Every request's path, as it came (authenticated or not).
#[derive(Default)]
struct GitHttpRequests(std::sync::Mutex<Vec<String>>);

async fn git_http_handler(
    axum::extract::State(config): axum::extract::State<std::sync::Arc<GitHttpConfig>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    config
        .requests
        .0
        .lock()
        .unwrap()
        .push(request.uri().path().to_string());
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == config.authorization.as_bytes());
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")],
            "authentication required",
        )
            .into_response();
    }
    // Plain files below `<base>/files/`, behind the same authentication (zips and icons on
    // the same private host).
    if let Some(rest) = request.uri().path().strip_prefix("/files/") {
        return match std::fs::read(config.base.join("files").join(rest)) {
            Ok(bytes) if !rest.contains("..") => bytes.into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        };
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let header_env = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", &config.base)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "test")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header_env(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header_env(header::CONTENT_ENCODING),
        )
        .env(
            "GIT_PROTOCOL",
            header_env(header::HeaderName::from_static("git-protocol")),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&body)?;
        }
        child.wait_with_output()
    })
    .await;
    let Ok(Ok(output)) = output else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // CGI: header lines, an empty line, the body.
    let out = output.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        });
    let Some((head_end, body_start)) = split else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut response =
        axum::response::Response::new(axum::body::Body::from(out[body_start..].to_vec()));
    for line in String::from_utf8_lossy(&out[..head_end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            if let Some(code) = value
                .split(' ')
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
            {
                *response.status_mut() = code;
            }
        } else if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.trim().as_bytes()),
            header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

impl GitHttp {
    /// Serves the repositories below `base` at `http://127.0.0.1:PORT/<path below base>`, to
    /// clients that authenticate as `user` with `password`.
    pub fn start(base: &Path, user: &str, password: &str) -> GitHttp {
        use base64::Engine;
        let requests = std::sync::Arc::new(GitHttpRequests::default());
        let config = std::sync::Arc::new(GitHttpConfig {
            requests: requests.clone(),
            base: base.to_path_buf(),
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            super::block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new()
                    .fallback(git_http_handler)
                    .with_state(config);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        GitHttp {
            port,
            requests,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// How many requests so far had a path starting with `prefix` (`/a.git/`: one repository).
    pub fn requests(&self, prefix: &str) -> usize {
        let seen = self.requests.0.lock().unwrap();
        seen.iter().filter(|p| p.starts_with(prefix)).count()
    }

    /// `127.0.0.1:PORT`, to build URLs with or without credentials.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
