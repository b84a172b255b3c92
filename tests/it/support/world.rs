//! A local world for the community registry: every host its stacks name, made real on
//! 127.0.0.1 or on disk.
//!
//! - The registry source itself: a git repository holding the fixture's stacks (plus the
//!   Dockerfiles the fixture leaves out), at the path `https://github.com/devfile/registry`
//!   maps to.
//! - One git repository per starter-project / sample remote, with the branches and tags the
//!   devfiles name (tags annotated, so peeling is exercised) and the `subDir` folders they use.
//! - One HTTP server for every zip starter project and icon, under `/<host>/<path>?<query>`.
//! - `url-mirror` rules in the manifest sending each upstream host to its stand-in.
//!
//! The world reads the fixtures with serde-saphyr into plain JSON values, not with airgap's
//! own devfile model, so a reference airgap fails to see is still in the world (and missing
//! from the lock, where the tests notice).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use git2::Oid;
use serde_json::Value;

use super::git::Repo;
use super::http::HttpServer;
use super::registry::{self as reg, TestRegistry};
use airgap::oci::digest::Digest;

/// What the world knows about one git remote it created.
#[derive(Debug, Clone)]
pub struct Remote {
    pub path: PathBuf,
    /// Revision name → the commit it resolves to (`HEAD` for the default branch).
    pub revisions: BTreeMap<String, Oid>,
}

pub struct World {
    /// The upstream registry: every image the stacks name, generated, under
    /// `<upstream host>/<repository>` (reached through `registry-mirror` rules).
    pub upstream: TestRegistry,
    /// Upstream reference (normalized: `docker.io/library/x:t`) → the digest pushed for it.
    pub images: BTreeMap<String, Digest>,
    pub dir: tempfile::TempDir,
    pub git_root: PathBuf,
    pub source: Repo,
    pub remotes: BTreeMap<String, Remote>,
    pub http: HttpServer,
    /// Upstream URL → the bytes the world serves for it (zips and icons).
    pub served: BTreeMap<String, Vec<u8>>,
    /// Where the manifest goes.
    pub workspace: PathBuf,
}

/// A stack's starter projects / projects as the world reads them.
#[derive(Debug, Clone)]
pub struct ProjectSpec {
    pub name: String,
    pub remotes: BTreeMap<String, String>,
    pub remote: Option<String>,
    pub revision: Option<String>,
    pub sub_dir: Option<String>,
    pub zip: Option<String>,
}

/// The placeholder Dockerfiles the fixture leaves out, with the FROM lines upstream has.
pub fn dockerfiles() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for v in ["2.0.0", "2.1.0", "2.2.0"] {
        out.push((
            leak(format!("stacks/go/{v}/docker/Dockerfile")),
            "FROM registry.access.redhat.com/ubi9/go-toolset:1.20.10-2.1699551725\n\nCOPY . .\nRUN go build -o ./main\nCMD [\"./main\"]\n",
        ));
    }
    for v in ["2.3.0", "2.4.0", "2.5.0", "2.6.0"] {
        out.push((
            leak(format!("stacks/go/{v}/docker/Dockerfile")),
            "# Build the Go binary\nFROM registry.access.redhat.com/ubi9/go-toolset:1.24.4-1752083840\n\nCOPY . .\nRUN go build -o ./main\nCMD [\"./main\"]\n",
        ));
    }
    out.push((
        "stacks/java-springboot/2.0.0/docker/Dockerfile",
        "FROM quay.io/devfile/maven:3.8.1-openjdk-17-slim\nWORKDIR /build\nCOPY . .\nRUN mvn package\n\nFROM openjdk:11-jdk\nCOPY --from=0 /build/target/*.jar /app.jar\nCMD [\"java\", \"-jar\", \"/app.jar\"]\n",
    ));
    out.push((
        "stacks/java-springboot/2.1.0/docker/Dockerfile",
        "FROM quay.io/devfile/maven:3.8.1-openjdk-17-slim AS build\nCOPY . .\nRUN mvn package\n\nFROM registry.access.redhat.com/ubi9/openjdk-17-runtime:latest\nCOPY --from=build /target/*.jar /deployments/app.jar\n",
    ));
    out.push((
        "stacks/java-springboot/2.2.0/docker/Dockerfile",
        "FROM quay.io/devfile/maven:3.8.1-openjdk-17-slim AS build\nCOPY . .\nRUN mvn package\n\nFROM registry.access.redhat.com/ubi9/openjdk-17-runtime:latest\nCOPY --from=build /target/*.jar /deployments/app.jar\n",
    ));
    for v in ["3.0.0", "3.1.0"] {
        out.push((
            leak(format!("stacks/python/{v}/docker/Dockerfile")),
            "FROM registry.access.redhat.com/ubi9/python-39:latest\nCOPY . .\nRUN pip install -r requirements.txt\nCMD [\"python\", \"app.py\"]\n",
        ));
    }
    out.push((
        "stacks/java-wildfly/2.0.1/Containerfile",
        "ARG IMAGE_VERSION=latest-jdk17\nFROM quay.io/wildfly/wildfly-runtime:$IMAGE_VERSION\nCOPY target/server $JBOSS_HOME\n",
    ));
    out
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Reads a YAML file as a JSON value.
pub fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str::<Value>(&text).unwrap()
}

/// Every devfile of a registry folder, as (path relative to it, value).
pub fn devfiles(root: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Value)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.file_name().unwrap() == "devfile.yaml" {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, yaml(&p)));
            }
        }
    }
    walk(root, &root.join("stacks"), &mut out);
    out
}

/// The starter projects and projects of a devfile value.
pub fn projects_of(devfile: &Value) -> Vec<(&'static str, ProjectSpec)> {
    let mut out = Vec::new();
    for (kind, key) in [("starter", "starterProjects"), ("project", "projects")] {
        for p in devfile[key].as_array().into_iter().flatten() {
            let s = |v: &Value| v.as_str().map(str::to_string);
            let remotes: BTreeMap<String, String> = p["git"]["remotes"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                kind,
                ProjectSpec {
                    name: s(&p["name"]).unwrap(),
                    remote: s(&p["git"]["checkoutFrom"]["remote"]),
                    revision: p["git"]["checkoutFrom"]["revision"]
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| {
                            p["git"]["checkoutFrom"]["revision"]
                                .as_f64()
                                .map(|f| f.to_string())
                        }),
                    remotes,
                    sub_dir: s(&p["subDir"]),
                    zip: s(&p["zip"]["location"]),
                },
            ));
        }
    }
    out
}

impl ProjectSpec {
    /// The remote URL used (checkoutFrom.remote, else origin, else the only one).
    pub fn remote_url(&self) -> Option<String> {
        if let Some(r) = &self.remote {
            return self.remotes.get(r).cloned();
        }
        self.remotes
            .get("origin")
            .or_else(|| self.remotes.values().next())
            .cloned()
    }
}

/// Bytes of a small zip holding one file, standing in for a generated project.
pub fn small_zip(name: &str) -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts =
            zip::write::SimpleFileOptions::default().last_modified_time(zip::DateTime::default());
        z.start_file(format!("{name}/pom.xml"), opts).unwrap();
        z.write_all(format!("<project>{name}</project>\n").as_bytes())
            .unwrap();
        z.start_file(format!("{name}/src/main/java/App.java"), opts)
            .unwrap();
        z.write_all(b"class App {}\n").unwrap();
        z.finish().unwrap();
    }
    buf.into_inner()
}

/// A sample's devfile as its repository holds it.
pub fn sample_devfile(name: &str, version: &str) -> String {
    format!(
        "schemaVersion: 2.2.0\nmetadata:\n  name: {name}\n  version: {version}\n  # the sample's own devfile\ncomponents:\n  - name: runtime\n    container:\n      image: registry.access.redhat.com/ubi8/nodejs-18:1-140\n      memoryLimit: 512Mi\ncommands:\n  - id: run\n    exec:\n      component: runtime\n      commandLine: npm start\n      group:\n        kind: run\n        isDefault: true\n"
    )
}

fn host_and_rest(url: &str) -> (String, String) {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    (host.to_string(), format!("/{path}"))
}

impl World {
    /// Builds the world for a registry folder in the community layout (`root` holds
    /// `stacks/` and maybe `extraDevfileEntries.yaml`).
    pub fn new(root: &Path) -> World {
        let dir = tempfile::tempdir().unwrap();
        let git_root = dir.path().join("git");
        let http = HttpServer::start();
        let workspace = dir.path().join("ws");
        std::fs::create_dir_all(&workspace).unwrap();

        // Which remotes exist, and what each must offer.
        #[derive(Default)]
        struct Wanted {
            revisions: BTreeSet<String>,
            sub_dirs: BTreeSet<String>,
            sample_versions: BTreeMap<Option<String>, String>, // revision → sample devfile
        }
        let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
        let mut downloads: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (_, d) in devfiles(root) {
            for (_, p) in projects_of(&d) {
                if let Some(z) = &p.zip {
                    downloads.insert(z.clone(), small_zip(&p.name));
                }
                for url in p.remotes.values() {
                    let w = wanted.entry(url.clone()).or_default();
                    if Some(url.clone()) == p.remote_url() {
                        if let Some(r) = &p.revision {
                            w.revisions.insert(r.clone());
                        }
                        if let Some(s) = &p.sub_dir {
                            w.sub_dirs.insert(s.trim_matches('/').to_string());
                        }
                    }
                }
            }
            if let Some(icon) = d["metadata"]["icon"].as_str() {
                downloads.insert(
                    icon.to_string(),
                    format!("<svg>{icon}</svg>\n").into_bytes(),
                );
            }
            for key in ["alpha.build-dockerfile", "alpha.deployment-manifest"] {
                if let Some(url) = d["metadata"][key].as_str() {
                    downloads.insert(
                        url.to_string(),
                        format!("# {key} from {url}\n").into_bytes(),
                    );
                }
            }
        }
        for entry in std::fs::read_dir(root.join("stacks")).unwrap() {
            let sy = entry.unwrap().path().join("stack.yaml");
            if sy.exists()
                && let Some(icon) = yaml(&sy)["icon"].as_str()
            {
                downloads.insert(
                    icon.to_string(),
                    format!("<svg>{icon}</svg>\n").into_bytes(),
                );
            }
        }
        let extra = root.join("extraDevfileEntries.yaml");
        if extra.exists() {
            let e = yaml(&extra);
            for s in e["samples"].as_array().into_iter().flatten() {
                let name = s["name"].as_str().unwrap();
                if let Some(icon) = s["icon"].as_str() {
                    downloads.insert(
                        icon.to_string(),
                        format!("<svg>{icon}</svg>\n").into_bytes(),
                    );
                }
                let mut versions: Vec<(Option<String>, &Value)> = s["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| (v["version"].as_str().map(str::to_string), &v["git"]))
                    .collect();
                if versions.is_empty() {
                    versions.push((None, &s["git"]));
                }
                for (version, git) in versions {
                    let url = git["remotes"]["origin"].as_str().unwrap().to_string();
                    let rev = git["revision"].as_str().map(str::to_string);
                    let w = wanted.entry(url).or_default();
                    if let Some(r) = &rev {
                        w.revisions.insert(r.clone());
                    }
                    w.sample_versions.insert(
                        rev,
                        sample_devfile(name, version.as_deref().unwrap_or("1.0.0")),
                    );
                }
            }
        }

        // The registry source repository: its files.
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    collect(root, &p, out);
                } else {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    out.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
        collect(root, root, &mut files);

        // Every image: devfile components (variables substituted), Dockerfile FROMs (ARG
        // defaults), the index base. Pinned references get a generated image whose digest
        // replaces the fixture's (no real image has a known digest here).
        let upstream = TestRegistry::start();
        let mut wanted_images: BTreeSet<String> = BTreeSet::new();
        for (_, d) in devfiles(root) {
            for img in container_images(&d) {
                wanted_images.insert(img);
            }
            wanted_images.extend(text_images(&d));
        }
        for (path, text) in dockerfiles() {
            if root.join(path).parent().unwrap().parent().unwrap().exists() {
                wanted_images.extend(from_images(text));
            }
        }
        // The folder's own Dockerfiles (a generated registry has some; the fixture none).
        for (path, bytes) in &files {
            let name = path.rsplit('/').next().unwrap_or(path);
            if name == "Dockerfile" || name == "Containerfile" {
                wanted_images.extend(from_images(&String::from_utf8_lossy(bytes)));
            }
        }
        wanted_images.insert("quay.io/devfile/devfile-index-base:next".into());
        for e in samples_images() {
            wanted_images.insert(e);
        }
        let (mut images, substitutions) = push_images(&upstream, &wanted_images, 1000);
        // The images the registry's pod runs (`deploy`), under their quay.io paths; seeded
        // apart so the devfiles' images keep their digests.
        let (deploy_images, _) =
            push_images(&upstream, &DEPLOY_IMAGES.map(String::from).into(), 9000);
        images.extend(deploy_images);

        // The registry source repository.
        for (_, bytes) in files.iter_mut() {
            let mut text = String::from_utf8_lossy(bytes).into_owned();
            for (old, new) in &substitutions {
                text = text.replace(old, new);
            }
            *bytes = text.into_bytes();
        }
        for (path, text) in dockerfiles() {
            if root.join(path).parent().unwrap().parent().unwrap().exists() {
                files.push((path.to_string(), text.as_bytes().to_vec()));
            }
        }
        files.sort();
        let mut source = Repo::init_bare(&git_root.join("github.com/devfile/registry"));
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        let c = source.commit(None, &refs, "registry");
        source.set_branch("main", c);

        // One repository per remote.
        let mut remotes = BTreeMap::new();
        for (url, w) in &wanted {
            let (host, path) = host_and_rest(url);
            let repo_path = git_root.join(&host).join(path.trim_start_matches('/'));
            let mut repo = Repo::init_bare(&repo_path);
            let mut base: Vec<(String, Vec<u8>)> =
                vec![("README.md".to_string(), format!("# {url}\n").into_bytes())];
            for s in &w.sub_dirs {
                base.push((format!("{s}/README.md"), format!("# {s}\n").into_bytes()));
                base.push((
                    format!("{s}/src/app.txt"),
                    format!("app in {s}\n").into_bytes(),
                ));
            }
            base.push((
                "scripts/run.sh".to_string(),
                b"#!/bin/sh\necho run\n".to_vec(),
            ));
            let with_devfile = |rev: Option<&String>, files: &[(String, Vec<u8>)]| {
                let mut files = files.to_vec();
                if let Some(d) = w
                    .sample_versions
                    .get(&rev.cloned())
                    .or_else(|| w.sample_versions.get(&None))
                {
                    files.push(("devfile.yaml".to_string(), d.clone().into_bytes()));
                }
                files
            };
            let main_files = with_devfile(Some(&"main".to_string()), &base);
            let refs: Vec<(&str, &[u8])> = main_files
                .iter()
                .map(|(p, b)| (p.as_str(), b.as_slice()))
                .collect();
            let main = repo.commit(None, &refs, "main");
            repo.set_branch("main", main);
            let mut revisions = BTreeMap::new();
            revisions.insert("HEAD".to_string(), main);
            revisions.insert("main".to_string(), main);
            for rev in &w.revisions {
                if rev == "main" {
                    continue;
                }
                let mut files = with_devfile(Some(rev), &base);
                files.push(("VERSION".to_string(), format!("{rev}\n").into_bytes()));
                let refs: Vec<(&str, &[u8])> = files
                    .iter()
                    .map(|(p, b)| (p.as_str(), b.as_slice()))
                    .collect();
                let c = repo.commit(Some(main), &refs, rev);
                if rev.starts_with('v') || rev.starts_with(|c: char| c.is_ascii_digit()) {
                    repo.tag_annotated(rev, c);
                } else {
                    repo.set_branch(rev, c);
                }
                revisions.insert(rev.clone(), c);
            }
            remotes.insert(
                url.clone(),
                Remote {
                    path: repo_path,
                    revisions,
                },
            );
        }

        for (url, body) in &downloads {
            let (host, rest) = host_and_rest(url);
            http.put(&format!("/{host}{rest}"), body.clone());
        }

        World {
            upstream,
            images,
            dir,
            git_root,
            source,
            remotes,
            http,
            served: downloads,
            workspace,
        }
    }

    /// The world of the whole community registry fixture.
    pub fn community() -> World {
        World::new(&super::fixtures().join("devfile-registry"))
    }

    /// The world of a generated registry of `n` stacks (see [`super::synthetic`]).
    pub fn synthetic(n: usize) -> (World, super::synthetic::Counts) {
        let root = tempfile::tempdir().unwrap();
        let counts = super::synthetic::write_registry(root.path(), n);
        (World::new(root.path()), counts)
    }

    /// The `url-mirror` rules that send every upstream host to its stand-in.
    pub fn mirror_rules(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "url-mirror \"https://github.com/\" to=\"file://{}/github.com/\"\n",
            self.git_root.display()
        ));
        let mut hosts: BTreeSet<String> = BTreeSet::new();
        let mut github_prefixes: BTreeSet<String> = BTreeSet::new();
        for url in self.served.keys() {
            let (host, rest) = host_and_rest(url);
            if host == "github.com" {
                // Files under a github.com path (not git): a longer rule wins over the git one.
                let prefix = rest.rsplit_once('/').map(|x| x.0).unwrap_or("");
                github_prefixes.insert(format!("{prefix}/"));
            } else {
                hosts.insert(host);
            }
        }
        for host in hosts {
            out.push_str(&format!(
                "url-mirror \"https://{host}/\" to=\"{}/{host}/\"\n",
                self.http.base()
            ));
        }
        for p in github_prefixes {
            out.push_str(&format!(
                "url-mirror \"https://github.com{p}\" to=\"{}/github.com{p}\"\n",
                self.http.base()
            ));
        }
        out
    }

    /// The `registry-mirror` rules that send every upstream registry to the local one.
    pub fn registry_rules(&self) -> String {
        let hosts: BTreeSet<&str> = self
            .images
            .keys()
            .map(|k| k.split('/').next().unwrap())
            .collect();
        hosts
            .into_iter()
            .map(|h| {
                format!(
                    "registry-mirror \"{h}\" to=\"{}/{h}\" tls=\"plain-http\"\n",
                    self.upstream.host()
                )
            })
            .collect()
    }

    /// Writes `airgap.kdl` in the workspace: the community source plus `extra` nodes.
    pub fn write_manifest(&self, extra: &str) {
        let text = format!(
            "target \"dir:out\"\nsource \"community\" git=\"https://github.com/devfile/registry\" ref=\"main\"\n{}{}{extra}",
            self.mirror_rules(),
            self.registry_rules()
        );
        std::fs::write(self.workspace.join("airgap.kdl"), text).unwrap();
    }

    pub fn lock_text(&self) -> String {
        std::fs::read_to_string(self.workspace.join("airgap.lock")).unwrap()
    }

    pub fn remote(&self, url: &str) -> &Remote {
        self.remotes
            .get(url)
            .unwrap_or_else(|| panic!("the world has no remote {url}"))
    }

    /// Moves `branch` of a remote to a new commit; returns it.
    pub fn advance(&mut self, url: &str, branch: &str) -> Oid {
        let remote = self.remote(url).clone();
        let mut repo = Repo::open(&remote.path);
        let parent = repo.branch(branch);
        let c = repo.amend_file(parent, "README.md", b"moved upstream\n", "moved");
        repo.set_branch(branch, c);
        let r = self.remotes.get_mut(url).unwrap();
        r.revisions.insert(branch.to_string(), c);
        if branch == "main" {
            r.revisions.insert("HEAD".to_string(), c);
        }
        c
    }
}

/// The images a sample's devfile (as the world writes it) names.
fn samples_images() -> Vec<String> {
    let d: Value = serde_saphyr::from_str(&sample_devfile("x", "1.0.0")).unwrap();
    container_images(&d)
}

/// The images the `FROM` lines of a Dockerfile pull, `ARG` defaults substituted, build stages
/// and `scratch` skipped (read here, not with airgap's parser).
pub fn from_images(text: &str) -> Vec<String> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(arg) = line.strip_prefix("ARG ") {
            if let Some((k, v)) = arg.trim().split_once('=') {
                args.insert(k.to_string(), v.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("FROM ") {
            let mut words = rest.split_whitespace().filter(|w| !w.starts_with("--"));
            let Some(written) = words.next() else {
                continue;
            };
            let mut image = written.to_string();
            for (k, v) in &args {
                image = image
                    .replace(&format!("${{{k}}}"), v)
                    .replace(&format!("${k}"), v);
            }
            if image != "scratch" && !stages.contains(&image) {
                out.push(image);
            }
            if let (Some(keyword), Some(alias)) = (words.next(), words.next())
                && keyword.eq_ignore_ascii_case("as")
            {
                stages.insert(alias.to_string());
            }
        }
    }
    out
}

/// `components[].container.image` of a devfile value, `{{variables}}` substituted.
pub fn container_images(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for c in d["components"].as_array().into_iter().flatten() {
        if let Some(img) = c["container"]["image"].as_str() {
            let mut img = img.trim().to_string();
            if let Some(vars) = d["variables"].as_object() {
                for (k, v) in vars {
                    let v = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    img = img.replace(&format!("{{{{{k}}}}}"), &v);
                }
            }
            out.push(img);
        }
    }
    out
}

/// The fully qualified image references inside a devfile value's text: whole tokens (split at
/// whitespace and quotes) of containers' `env[].value`, `command[]`, `args[]` and exec
/// commands' `commandLine` whose first part is a registry host (a `.`, a `:port` or
/// `localhost`) and that carry a tag or a digest. Read here, not with airgap's finder.
pub fn text_images(d: &Value) -> Vec<String> {
    let mut texts: Vec<&str> = Vec::new();
    for c in d["components"].as_array().into_iter().flatten() {
        let container = &c["container"];
        for e in container["env"].as_array().into_iter().flatten() {
            texts.extend(e["value"].as_str());
        }
        for key in ["command", "args"] {
            for v in container[key].as_array().into_iter().flatten() {
                texts.extend(v.as_str());
            }
        }
    }
    for c in d["commands"].as_array().into_iter().flatten() {
        texts.extend(c["exec"]["commandLine"].as_str());
    }
    let mut out = Vec::new();
    for text in texts {
        for token in text.split(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            let Some((host, rest)) = token.split_once('/') else {
                continue;
            };
            let registry = host.contains('.') || host.contains(':') || host == "localhost";
            let last = rest.rsplit('/').next().unwrap_or(rest);
            if registry && !token.contains("://") && (last.contains(':') || token.contains('@')) {
                out.push(token.to_string());
            }
        }
    }
    out
}

/// `(host, repository, tag, digest)` of a reference, Docker Hub short names normalized.
pub fn split_reference(r: &str) -> (String, String, Option<String>, Option<String>) {
    let (name, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d.to_string())),
        None => (r, None),
    };
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (path, tag) = match name[slash..].split_once(':') {
        Some((_, t)) => (&name[..name.len() - t.len() - 1], Some(t.to_string())),
        None => (name, None),
    };
    let first = path.split('/').next().unwrap();
    let (host, repo) = if path.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        (first.to_string(), path[first.len() + 1..].to_string())
    } else {
        (
            "docker.io".to_string(),
            if path.contains('/') {
                path.to_string()
            } else {
                format!("library/{path}")
            },
        )
    };
    let tag = if tag.is_none() && digest.is_none() {
        Some("latest".to_string())
    } else {
        tag
    };
    (host, repo, tag, digest)
}

/// Pushes a generated image for each reference to `upstream` under `<host>/<repository>`.
/// Returns normalized reference → digest, and the (old digest, new digest) substitutions for
/// pinned references. A few images are multi-platform indexes.
/// The deployment's default images (`deploy` in a manifest): the OCI sidecar, the viewer, the
/// operator.
pub const DEPLOY_IMAGES: [&str; 3] = [
    "quay.io/devfile/oci-registry:next",
    "quay.io/devfile/registry-operator:next",
    "quay.io/devfile/registry-viewer:next",
];

fn push_images(
    upstream: &TestRegistry,
    refs: &BTreeSet<String>,
    seed_base: u64,
) -> (BTreeMap<String, Digest>, Vec<(String, String)>) {
    let client = reg::anonymous_client();
    let dest = airgap::oci::Destination::Registry(upstream.access());
    let mut out = BTreeMap::new();
    let mut subs = Vec::new();
    super::block_on(async {
        for (i, r) in refs.iter().enumerate() {
            let (host, repo, tag, digest) = split_reference(r);
            let seed = seed_base + i as u64;
            let target = |tag: Option<String>| airgap::oci::naming::TargetRef {
                host: upstream.host(),
                repository: format!("{host}/{repo}"),
                tag,
            };
            let multi = repo.contains("universal-developer-image") || repo.contains("nodejs-18");
            let landed = if multi {
                let children = vec![
                    reg::image(seed, &[1500, 700], "linux/amd64"),
                    reg::image(seed + 500, &[1600], "linux/arm64/v8"),
                ];
                for c in &children {
                    client
                        .push_image(&c.local, &target(None), &dest)
                        .await
                        .unwrap();
                }
                client
                    .push_image(&reg::index(&children), &target(tag.clone()), &dest)
                    .await
                    .unwrap()
                    .digest
            } else {
                let img = reg::image(seed, &[1200, 800], "linux/amd64");
                client
                    .push_image(&img.local, &target(tag.clone()), &dest)
                    .await
                    .unwrap()
                    .digest
            };
            let normalized = match (&tag, &digest) {
                (_, Some(old)) => {
                    subs.push((old.clone(), landed.to_string()));
                    format!(
                        "{host}/{repo}{}@{landed}",
                        tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()
                    )
                }
                (Some(t), None) => format!("{host}/{repo}:{t}"),
                (None, None) => unreachable!(),
            };
            out.insert(normalized, landed);
        }
    });
    (out, subs)
}
