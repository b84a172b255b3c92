//! `airgap serve`: the real binary on 127.0.0.1 with a free port, against copies of upstream's
//! index-server fixtures and an OCI layout written here byte by byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::registry::skopeo;
use crate::support::{copy_dir, fixtures};

// ---------------------------------------------------------------------------------------------
// Harness

/// `airgap serve DIR --addr 127.0.0.1:0`, stopped on drop.
pub(crate) struct Served {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// `http` or `https`, as the listening line says.
    scheme: &'static str,
    stderr: BufReader<ChildStderr>,
}

impl Served {
    fn start(dir: &Path) -> Served {
        Served::start_with(dir, &[])
    }

    pub(crate) fn start_with(dir: &Path, extra: &[&str]) -> Served {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airgap"));
        cmd.arg("serve")
            .arg(dir)
            .args(["--addr", "127.0.0.1:0"])
            .args(extra);
        Served::spawn(cmd)
    }

    /// Runs `cmd` (which must end up running `airgap serve … --addr 127.0.0.1:0`, possibly
    /// through a wrapper such as `sh -c`) and waits until it listens.
    pub(crate) fn spawn(mut cmd: Command) -> Served {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("airgap runs");
        let Some(pipe) = child.stderr.take() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("stderr is not piped");
        };
        let mut stderr = BufReader::new(pipe);
        let mut seen = String::new();
        let addr = loop {
            let mut line = String::new();
            match stderr.read_line(&mut line) {
                Ok(0) | Err(_) => break None,
                Ok(_) => {}
            }
            let listening = line.trim().strip_prefix("listening on ");
            if let Some(addr) = listening.and_then(|l| l.strip_prefix("http://")) {
                break addr.parse().ok().map(|a| (a, "http"));
            }
            if let Some(addr) = listening.and_then(|l| l.strip_prefix("https://")) {
                break addr.parse().ok().map(|a| (a, "https"));
            }
            seen.push_str(&line);
        };
        match addr {
            Some((addr, scheme)) => Served {
                child,
                addr,
                scheme,
                stderr,
            },
            None => {
                let _ = child.kill();
                let status = child.wait();
                panic!("airgap serve stopped ({status:?}) before listening:\n{seen}");
            }
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the server printed on stderr (blocks until there is one).
    pub(crate) fn next_line(&mut self) -> String {
        let mut line = String::new();
        self.stderr
            .read_line(&mut line)
            .expect("stderr is readable");
        line
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `airgap serve DIR` expected to fail at start: its exit status and stderr.
fn fail_to_start(dir: &Path) -> (std::process::ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_airgap"))
        .arg("serve")
        .arg(dir)
        .args(["--addr", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .output()
        .expect("airgap runs");
    let run = crate::support::Run::from(out.clone());
    (out.status, run.err_text())
}

fn client() -> Client {
    crate::support::blocking_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

fn get(url: &str) -> Response {
    client().get(url).send().expect("the request is answered")
}

fn get_json(url: &str) -> (StatusCode, Value) {
    let r = get(url);
    let status = r.status();
    let body = r.text().expect("a body");
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
    (status, value)
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn versions_of(v: &Value, name: &str) -> Vec<String> {
    let entry = v
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in {v}"));
    entry["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|x| x["version"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A raw HTTP/1.1 request, so that `..`, `%2e` and `\` reach the server unnormalised.
fn raw_get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn index_server() -> PathBuf {
    fixtures().join("registry-support-tests/index-server")
}

/// A served folder holding a copy of upstream's index-server registry, with `index` as
/// `registry/index.json`.
fn registry_with(index: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("a temp folder");
    let registry = tmp.path().join("registry");
    copy_dir(&index_server().join("registry"), &registry);
    std::fs::copy(index, registry.join("index.json")).expect("copies the index");
    tmp
}

pub(crate) fn server_registry() -> tempfile::TempDir {
    registry_with(&index_server().join("registry/index_main.json"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("reads")).expect("JSON")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

// ---------------------------------------------------------------------------------------------
// A small multi-arch image, written as an OCI layout

const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REPOSITORY: &str = "devfiles/go-toolset";

struct Image {
    index: Vec<u8>,
    index_digest: String,
    /// `(architecture, manifest bytes, digest)`.
    manifests: Vec<(String, Vec<u8>, String)>,
    /// Configs and layers: `(bytes, digest)`.
    blobs: Vec<(Vec<u8>, String)>,
    layers: Vec<(Vec<u8>, String)>,
}

fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).expect("creates blobs/sha256");
    std::fs::write(dir.join(&digest["sha256:".len()..]), bytes).expect("writes a blob");
    digest
}

/// A gzipped tar with one file, deterministic (mtime 0, uid/gid 0, no gzip timestamp).
fn layer(name: &str, content: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, content)
        .expect("appends to the tar");
    let tar = tar.into_inner().expect("finishes the tar");
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&tar).expect("compresses");
    (tar.clone(), gz.finish().expect("finishes the gzip"))
}

/// Writes `oci-layout`, the blobs and `index.json` (the index tagged `1.0`, the amd64 manifest
/// also tagged `amd64-only`; a second repository `other/thing` with the arm64 manifest).
fn write_layout(dir: &Path) -> Image {
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("writes oci-layout");
    let mut manifests = Vec::new();
    let mut blobs = Vec::new();
    let mut layers = Vec::new();
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (tar, gz) = layer(
            &format!("hello-{arch}.txt"),
            format!("hello from {arch}\n").repeat(20).as_bytes(),
        );
        let layer_digest = write_blob(dir, &gz);
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
        }))
        .expect("JSON");
        let config_digest = write_blob(dir, &config);
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": LAYER_TYPE, "digest": layer_digest, "size": gz.len()}],
        }))
        .expect("JSON");
        let manifest_digest = write_blob(dir, &manifest);
        children.push(json!({
            "mediaType": MANIFEST_TYPE,
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
        blobs.push((config, config_digest));
        blobs.push((gz.clone(), layer_digest.clone()));
        layers.push((gz, layer_digest));
        manifests.push((arch.to_string(), manifest, manifest_digest));
    }
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": children,
    }))
    .expect("JSON");
    let index_digest = write_blob(dir, &index);
    let layout_index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [
            {
                "mediaType": INDEX_TYPE, "digest": index_digest, "size": index.len(),
                "annotations": {
                    "io.github.airgap.repository": REPOSITORY,
                    "org.opencontainers.image.ref.name": format!("{REPOSITORY}:1.0"),
                },
            },
            {
                "mediaType": MANIFEST_TYPE, "digest": manifests[0].2, "size": manifests[0].1.len(),
                "annotations": {
                    "io.github.airgap.repository": REPOSITORY,
                    "org.opencontainers.image.ref.name": format!("{REPOSITORY}:amd64-only"),
                },
            },
            {
                "mediaType": MANIFEST_TYPE, "digest": manifests[1].2, "size": manifests[1].1.len(),
                "annotations": {
                    "io.github.airgap.repository": "other/thing",
                    "org.opencontainers.image.ref.name": "other/thing:arm",
                },
            },
            // Without the repository annotation, the reference name says it.
            {
                "mediaType": MANIFEST_TYPE, "digest": manifests[0].2, "size": manifests[0].1.len(),
                "annotations": {"org.opencontainers.image.ref.name": "plain/repo:v1"},
            },
            // Neither: not served (a warning at start).
            {"mediaType": MANIFEST_TYPE, "digest": manifests[1].2, "size": manifests[1].1.len()},
        ],
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&layout_index).expect("JSON"),
    )
    .expect("writes index.json");
    Image {
        index,
        index_digest,
        manifests,
        blobs,
        layers,
    }
}

// ---------------------------------------------------------------------------------------------
// The REST API

#[test]
fn v1_index_is_upstreams_conversion_of_v2() {
    let resources = index_server().join("resources");
    let dir = registry_with(&resources.join("newIndexStruct.json"));
    let server = Served::start(dir.path());
    let old = read_json(&resources.join("oldIndexStruct.json"));
    let new = read_json(&resources.join("newIndexStruct.json"));

    let (status, all) = get_json(&server.url("/index/all"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all, old);

    let of_type = |v: &Value, t: &str| -> Value {
        Value::Array(
            v.as_array()
                .expect("an array")
                .iter()
                .filter(|e| e["type"] == t)
                .cloned()
                .collect(),
        )
    };
    assert_eq!(get_json(&server.url("/index")).1, of_type(&old, "stack"));
    assert_eq!(
        get_json(&server.url("/index/stack")).1,
        of_type(&old, "stack")
    );
    assert_eq!(
        get_json(&server.url("/index/sample")).1,
        of_type(&old, "sample")
    );
    assert_eq!(get_json(&server.url("/v2index/all")).1, new);
    assert_eq!(get_json(&server.url("/v2index")).1, of_type(&new, "stack"));
}

#[test]
fn v1_drops_entries_without_a_default_version() {
    let tmp = tempfile::tempdir().expect("a temp folder");
    std::fs::create_dir_all(tmp.path().join("registry")).expect("mkdir");
    std::fs::write(
        tmp.path().join("registry/index.json"),
        serde_json::to_vec(&json!([
            {"name": "a", "type": "stack", "versions": [{"version": "1.0.0"}]},
            {"name": "b", "type": "stack", "versions": [{"version": "1.0.0", "default": true}]},
        ]))
        .expect("JSON"),
    )
    .expect("writes the index");
    let server = Served::start(tmp.path());
    let (_, v1) = get_json(&server.url("/index"));
    assert_eq!(
        v1,
        json!([{"name": "b", "version": "1.0.0", "type": "stack"}])
    );
    assert_eq!(names(&get_json(&server.url("/v2index")).1), ["a", "b"]);
}

#[test]
fn index_endpoints_serve_the_registry() {
    let dir = server_registry();
    let server = Served::start(dir.path());
    let main = read_json(&index_server().join("registry/index_main.json"));

    let r = get(&server.url("/v2index/all"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("application/json")
    );
    assert_eq!(r.json::<Value>().expect("JSON"), main);

    let stacks = [
        "go",
        "java-maven",
        "java-openliberty",
        "java-quarkus",
        "java-springboot",
        "java-vertx",
        "java-wildfly",
        "java-wildfly-bootable-jar",
        "nodejs",
        "python",
        "python-django",
    ];
    assert_eq!(names(&get_json(&server.url("/index")).1), stacks);
    assert_eq!(names(&get_json(&server.url("/v2index")).1), stacks);
    // v1 lifts the default version up: go's default is 1.1.0 with tags [Go].
    let (_, v1) = get_json(&server.url("/index"));
    assert_eq!(v1[0]["version"], "1.1.0");
    assert_eq!(v1[0]["tags"], json!(["Go"]));
    assert_eq!(v1[0]["links"], json!({"self": "devfile-catalog/go:1.1.0"}));
    assert!(v1[0].get("versions").is_none());
    // Samples: nodejs-basic's default (1.0.1) git lifted up.
    let (_, samples) = get_json(&server.url("/index/sample"));
    assert_eq!(names(&samples), ["nodejs-basic", "code-with-quarkus"]);
    assert_eq!(
        samples[0]["git"]["remotes"]["origin"],
        "https://github.com/nodeshift-starters/devfile-sample"
    );

    for path in ["/index/stacks", "/v2index/nope", "/index/x%2Fy"] {
        let r = get(&server.url(path));
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
    }
    let (status, body) = get_json(&server.url("/index/stacks"));
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"status": "the devfile with stacks type doesn't exist"})
    );

    let head = client()
        .head(server.url("/index"))
        .send()
        .expect("answered");
    assert_eq!(head.status(), StatusCode::OK);
    let full = get(&server.url("/index")).bytes().expect("a body");
    assert_eq!(
        head.headers()["content-length"].to_str().expect("ASCII"),
        full.len().to_string()
    );
}

#[test]
fn health_root_and_unknown_paths() {
    let dir = server_registry();
    let server = Served::start(dir.path());

    let r = get(&server.url("/health"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.text().expect("a body"),
        r#"{"message":"the server is up and running"}"#
    );

    for accept in ["text/html", "application/json"] {
        let r = client()
            .get(server.url("/"))
            .header("Accept", accept)
            .send()
            .expect("answered");
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()["location"], "/index");
    }

    let r = get(&server.url("/viewer"));
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.text().expect("a body"), "404 page not found");
}

#[test]
fn anything_but_get_is_405_with_upstreams_body() {
    let dir = server_registry();
    let server = Served::start(dir.path());
    let c = client();
    for path in [
        "/index",
        "/v2index/all",
        "/health",
        "/devfiles/go",
        "/devfiles/go/1.2.0/starter-projects/go-starter",
        "/nowhere",
    ] {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let r = c
                .request(method.parse().expect("a method"), server.url(path))
                .body("x")
                .send()
                .expect("answered");
            assert_eq!(
                r.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(
                r.text().expect("a body"),
                r#"{"message":"Only GET requests are supported."}"#
            );
        }
    }
}

#[test]
fn filters() {
    let dir = server_registry();
    let server = Served::start(dir.path());
    let q = |query: &str| get_json(&server.url(query));
    let n = |query: &str| {
        let (status, v) = q(query);
        assert_eq!(status, StatusCode::OK, "{query}: {v}");
        names(&v)
    };

    // Fuzzy substring on string fields, AND-ed.
    assert_eq!(
        n("/v2index?name=java"),
        [
            "java-maven",
            "java-openliberty",
            "java-quarkus",
            "java-springboot",
            "java-vertx",
            "java-wildfly",
            "java-wildfly-bootable-jar"
        ]
    );
    assert_eq!(
        n("/index?name=JAVA-W"),
        ["java-wildfly", "java-wildfly-bootable-jar"]
    );
    assert_eq!(n("/index?language=python"), ["python", "python-django"]);
    assert_eq!(n("/index?provider=red+hat&language=go"), ["go"]);
    assert_eq!(n("/index?displayName=spring+boot"), ["java-springboot"]);
    // A version's field selects the entry and narrows its versions.
    let (_, v) = q("/v2index?description=v2.1.0");
    assert_eq!(names(&v), ["go"]);
    assert_eq!(versions_of(&v, "go"), ["1.2.0"]);

    // Arrays: every value must be one of the entry's values or one word of them.
    assert_eq!(
        n("/v2index/all?tags=Quarkus"),
        ["java-quarkus", "code-with-quarkus"]
    );
    assert_eq!(
        n("/v2index?tags=Java&tags=Maven"),
        ["java-maven", "java-wildfly-bootable-jar"]
    );
    assert_eq!(n("/v2index?tags=bootable"), ["java-wildfly-bootable-jar"]);
    assert!(n("/v2index?tags=boot").is_empty());
    let (_, v) = q("/v2index?tags=testtag");
    assert_eq!(versions_of(&v, "go"), ["1.2.0"]);
    assert_eq!(
        n("/index?starterProjects=django-example"),
        ["python-django"]
    );
    assert!(n("/v2index?attributeNames=anything").is_empty());
    let (_, v) = q("/v2index/sample?gitRemotes=nodeshift");
    assert_eq!(names(&v), ["nodejs-basic"]);
    assert_eq!(versions_of(&v, "nodejs-basic"), ["1.0.1"]);
    // v2-only filters are ignored by v1.
    assert_eq!(n("/index?default=false").len(), 11);
    let (_, v) = q("/v2index/sample?default=true");
    assert_eq!(versions_of(&v, "nodejs-basic"), ["1.0.1"]);
    assert_eq!(versions_of(&v, "code-with-quarkus"), ["1.1.0"]);

    // Ranges (v2).
    let (_, v) = q("/v2index?minSchemaVersion=2.1&maxSchemaVersion=2.1");
    assert_eq!(names(&v), ["go"]);
    assert_eq!(versions_of(&v, "go"), ["1.2.0"]);
    assert_eq!(n("/v2index?minSchemaVersion=2.2.0").len(), 10);
    assert_eq!(
        n("/v2index?maxVersion=1.0.0"),
        [
            "java-openliberty",
            "java-wildfly",
            "java-wildfly-bootable-jar",
            "nodejs",
            "python",
            "python-django"
        ]
    );
    let (_, v) = q("/v2index?minVersion=1.2.0");
    assert_eq!(names(&v), ["go"]);
    assert_eq!(versions_of(&v, "go"), ["1.2.0"]);

    // deprecated: nothing in the fixture carries the tag.
    assert!(n("/v2index?deprecated=true").is_empty());
    assert_eq!(n("/v2index?deprecated=false").len(), 11);

    // Bad parameters are 400 with a status message.
    for (query, message) in [
        (
            "/v2index?minSchemaVersion=1.0",
            "minSchemaVersion 1.0 is not valid, version format should be '+2.x' or '+2.x.x'.",
        ),
        (
            "/v2index?maxSchemaVersion=abc",
            "maxSchemaVersion abc is not valid, version format should be '+2.x' or '+2.x.x'.",
        ),
        ("/v2index?icon=png", "the icon type png is not supported"),
        (
            "/v2index?deprecated=maybe",
            "deprecated value maybe is not valid, it should be true or false",
        ),
    ] {
        let (status, body) = q(query);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body, json!({"status": message}), "{query}");
    }
}

#[test]
fn architecture_filter() {
    let dir = registry_with(&index_server().join("resources/newIndexStruct.json"));
    let server = Served::start(dir.path());
    let n = |query: &str| names(&get_json(&server.url(query)).1);
    // No architectures means every architecture.
    assert_eq!(n("/index?arch=arm64"), ["go", "java-maven", "nodejs"]);
    assert_eq!(
        n("/index/all?arch=s390x"),
        [
            "go",
            "java-maven",
            "nodejs-basic",
            "code-with-quarkus",
            "java-springboot-basic",
            "python-basic"
        ]
    );
    assert_eq!(
        n("/v2index?arch=amd64&arch=arm64"),
        ["go", "java-maven", "nodejs"]
    );
}

#[test]
fn last_modified_filter() {
    let generator = fixtures().join("registry-support-tests/index-generator/index_main.json");
    let dir = registry_with(&generator);
    let server = Served::start(dir.path());
    let n = |query: &str| {
        let (status, v) = get_json(&server.url(query));
        assert_eq!(status, StatusCode::OK, "{query}: {v}");
        names(&v)
    };
    // java-maven, java-springboot and java-vertx were modified at 2024-05-13T12:32:02+02:00.
    assert_eq!(
        n("/v2index?minLastModified=2024-05-13T10:32:02Z"),
        [
            "java-maven",
            "java-springboot",
            "java-vertx",
            "java-wildfly-bootable-jar",
            "python",
            "python-django"
        ]
    );
    assert_eq!(
        n("/v2index?minLastModified=2024-05-13T10:32:03Z"),
        ["java-wildfly-bootable-jar", "python", "python-django"]
    );
    let (_, v) = get_json(&server.url("/v2index?maxLastModified=2023-12-31"));
    assert_eq!(names(&v), ["go"]);
    assert_eq!(versions_of(&v, "go"), ["1.2.0", "1.1.0"]);
    let (_, v) = get_json(&server.url("/v2index?maxLastModified=2023-06-01"));
    assert_eq!(versions_of(&v, "go"), ["1.2.0"]);
    // A sample without versions is judged by its own lastModified.
    assert_eq!(
        n("/v2index/sample?maxLastModified=2024-05-01"),
        ["code-with-quarkus", "code-with-quarkus-no-version"]
    );
    assert_eq!(
        n("/v2index/sample?minLastModified=2024-06-01"),
        ["nodejs-basic"]
    );
    let (status, _) = get_json(&server.url("/v2index?minLastModified=yesterday"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn icons_inline_as_base64_from_local_files_only() {
    let dir = server_registry();
    let index_path = dir.path().join("registry/index.json");
    let mut index = read_json(&index_path);
    index[0]["icon"] = json!("icon.svg"); // go
    index[1]["icon"] = json!("./logo.png"); // java-maven
    index[2]["icon"] = json!("../../../secret.png"); // java-openliberty: outside, refused
    std::fs::write(&index_path, serde_json::to_vec(&index).expect("JSON")).expect("writes");
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake png".to_vec();
    std::fs::write(dir.path().join("registry/stacks/go/icon.svg"), &svg).expect("writes");
    std::fs::write(dir.path().join("registry/stacks/java-maven/logo.png"), &png).expect("writes");
    std::fs::write(dir.path().join("secret.png"), &png).expect("writes");
    let server = Served::start(dir.path());

    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    for path in ["/index?icon=base64", "/v2index?icon=base64"] {
        let (status, v) = get_json(&server.url(path));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            v[0]["icon"],
            format!("data:image/svg+xml;base64,{}", b64(&svg))
        );
        assert_eq!(v[1]["icon"], format!("data:image/png;base64,{}", b64(&png)));
        assert_eq!(v[2]["icon"], "../../../secret.png");
        // Remote icons stay URLs: the server never goes to the network.
        assert_eq!(
            v[3]["icon"],
            "https://design.jboss.org/quarkus/logo/final/SVG/quarkus_icon_rgb_default.svg"
        );
    }
    // Without the parameter the icons are as written.
    assert_eq!(get_json(&server.url("/index")).1[0]["icon"], "icon.svg");
}

#[test]
fn devfiles() {
    let dir = server_registry();
    let server = Served::start(dir.path());
    let stacks = dir.path().join("registry/stacks");
    let samples = dir.path().join("registry/samples");
    let read = |p: PathBuf| std::fs::read_to_string(p).expect("reads");

    for (path, file) in [
        ("/devfiles/go", stacks.join("go/1.1.0/devfile.yaml")),
        ("/devfiles/go/default", stacks.join("go/1.1.0/devfile.yaml")),
        ("/devfiles/go/latest", stacks.join("go/1.2.0/devfile.yaml")),
        ("/devfiles/go/1.2.0", stacks.join("go/1.2.0/devfile.yaml")),
        (
            "/devfiles/go/latest?maxSchemaVersion=2.0",
            stacks.join("go/1.1.0/devfile.yaml"),
        ),
        (
            "/devfiles/java-maven",
            stacks.join("java-maven/devfile.yaml"),
        ),
        (
            "/devfiles/java-maven/1.1.0",
            stacks.join("java-maven/devfile.yaml"),
        ),
        (
            "/devfiles/nodejs-basic",
            samples.join("nodejs-basic/1.0.1/devfile.yaml"),
        ),
        (
            "/devfiles/nodejs-basic/1.0.0",
            samples.join("nodejs-basic/1.0.0/devfile.yaml"),
        ),
    ] {
        let r = get(&server.url(path));
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["content-type"], "application/yaml");
        assert_eq!(r.text().expect("a body"), read(file), "{path}");
    }

    for (path, body) in [
        (
            "/devfiles/not-exist",
            json!({"status": "the devfile of not-exist didn't exist"}),
        ),
        (
            "/devfiles/go/3.0.0",
            json!({"status": "version: 3.0.0 not found in stack go"}),
        ),
        (
            "/devfiles/nodejs-basic/2.0.0",
            json!({"status": "version: 2.0.0 not found in stack nodejs-basic"}),
        ),
    ] {
        let (status, v) = get_json(&server.url(path));
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(v, body, "{path}");
    }
}

fn starter_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    for (name, content) in entries {
        w.start_file(*name, options).expect("starts an entry");
        w.write_all(content).expect("writes an entry");
    }
    w.finish().expect("finishes the zip").into_inner()
}

#[test]
fn starter_projects() {
    let dir = server_registry();
    let stacks = dir.path().join("registry/stacks");
    let maven = stacks.join("java-maven/devfile.yaml");
    let text = std::fs::read_to_string(&maven).expect("reads");
    let git = "  - name: springbootproject\n    git:\n      remotes:\n        origin: \"https://github.com/odo-devfiles/springboot-ex.git\"\n";
    assert!(text.contains(git), "the fixture changed");
    let offline = "  - name: springbootproject
    zip:
      location: springbootproject-offline.zip
  - name: with-subdir
    zip:
      location: ./springbootproject-offline.zip
    subDir: app/
  - name: remote-zip
    zip:
      location: https://example.com/x.zip
  - name: escape
    zip:
      location: ../go/1.1.0/devfile.yaml
  - name: no-source
    attributes: {}
";
    std::fs::write(&maven, text.replace(git, offline)).expect("writes");
    let zip = starter_zip(&[
        ("README.md", b"read me\n"),
        ("app/main.go", b"package main\n"),
        ("app/pkg/x.go", b"package pkg\n"),
    ]);
    std::fs::write(
        stacks.join("java-maven/springbootproject-offline.zip"),
        &zip,
    )
    .expect("writes");
    // A multi-version stack: the archive sits next to that version's devfile.
    let go12 = stacks.join("go/1.2.0/devfile.yaml");
    let text = std::fs::read_to_string(&go12).expect("reads");
    let start = text.find("starterProjects:").expect("has starter projects");
    let end = text[start..]
        .find("components:")
        .map(|i| start + i)
        .expect("has components");
    let rewritten = format!(
        "{}starterProjects:\n  - name: go-starter\n    zip:\n      location: go-starter-offline.zip\n{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&go12, rewritten).expect("writes");
    let go_zip = starter_zip(&[("main.go", b"package main // go\n")]);
    std::fs::write(stacks.join("go/1.2.0/go-starter-offline.zip"), &go_zip).expect("writes");
    let server = Served::start(dir.path());

    for (path, name, bytes) in [
        (
            "/devfiles/java-maven/starter-projects/springbootproject",
            "springbootproject",
            &zip,
        ),
        (
            "/devfiles/java-maven/1.1.0/starter-projects/springbootproject",
            "springbootproject",
            &zip,
        ),
        (
            "/devfiles/go/1.2.0/starter-projects/go-starter",
            "go-starter",
            &go_zip,
        ),
        (
            "/devfiles/go/latest/starter-projects/go-starter",
            "go-starter",
            &go_zip,
        ),
    ] {
        let r = get(&server.url(path));
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{path}");
        assert_eq!(r.headers()["content-type"], "application/zip");
        assert_eq!(
            r.headers()["content-disposition"],
            format!("attachment; filename=\"{name}.zip\"").as_str()
        );
        assert_eq!(&r.bytes().expect("a body")[..], &bytes[..], "{path}");
    }

    // subDir: only that folder, moved to the root of the archive.
    let r = get(&server.url("/devfiles/java-maven/starter-projects/with-subdir"));
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body = r.bytes().expect("a body").to_vec();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(body)).expect("a zip");
    let mut entries: Vec<String> = archive
        .file_names()
        .map(|n| n.expect("a name").into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["main.go", "pkg/x.go"]);
    let mut main = String::new();
    archive
        .by_name("main.go")
        .expect("main.go")
        .read_to_string(&mut main)
        .expect("reads");
    assert_eq!(main, "package main\n");

    for (path, status, body) in [
        (
            "/devfiles/java-maven/starter-projects/nope",
            StatusCode::NOT_FOUND,
            json!({"status": "the starter project named nope does not exist in the java-maven devfile"}),
        ),
        (
            "/devfiles/java-maven/starter-projects/no-source",
            StatusCode::BAD_REQUEST,
            json!({"status": "Starter project no-source has no source to download from"}),
        ),
        (
            "/devfiles/nope/starter-projects/x",
            StatusCode::NOT_FOUND,
            json!({"status": "the devfile of nope didn't exist"}),
        ),
    ] {
        let (s, v) = get_json(&server.url(path));
        assert_eq!(s, status, "{path}");
        assert_eq!(v, body, "{path}");
    }
    // Offline: git and remote zips are not fetched; archives outside the stack are refused.
    for (path, status) in [
        (
            "/devfiles/go/starter-projects/go-starter",
            "Problem with downloading starter project go-starter from location: https://github.com/devfile-samples/devfile-stack-go.git",
        ),
        (
            "/devfiles/java-maven/starter-projects/remote-zip",
            "Problem with downloading starter project remote-zip",
        ),
        (
            "/devfiles/java-maven/starter-projects/escape",
            "Problem with reading starter project escape at ../go/1.1.0/devfile.yaml",
        ),
    ] {
        let (s, v) = get_json(&server.url(path));
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(v["status"], status, "{path}");
        assert!(v["error"].is_string(), "{path}");
    }
}

#[test]
fn stack_files_are_served_statically() {
    let dir = server_registry();
    let stacks = dir.path().join("registry/stacks");
    std::fs::write(stacks.join("go/icon.svg"), "<svg/>").expect("writes");
    let server = Served::start(dir.path());
    let r = get(&server.url("/stacks/go/icon.svg"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert_eq!(r.text().expect("a body"), "<svg/>");
    let r = get(&server.url("/stacks/go/1.2.0/devfile.yaml"));
    assert_eq!(r.status(), StatusCode::OK);
    // Folders are not listed.
    assert_eq!(
        get(&server.url("/stacks/go")).status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&server.url("/stacks/go/")).status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn verbose_logs_one_line_per_request_on_stderr() {
    let dir = server_registry();
    let mut server = Served::start_with(dir.path(), &["--verbose"]);
    assert_eq!(get(&server.url("/health")).status(), StatusCode::OK);
    let line = server.next_line();
    assert!(line.contains("GET /health 200"), "{line}");
    assert_eq!(get(&server.url("/nope")).status(), StatusCode::NOT_FOUND);
    let line = server.next_line();
    assert!(line.contains("GET /nope 404"), "{line}");
}

// ---------------------------------------------------------------------------------------------
// Start-up

#[test]
fn start_up_errors_are_clear() {
    let tmp = tempfile::tempdir().expect("a temp folder");

    let (status, err) = fail_to_start(&tmp.path().join("missing"));
    assert!(!status.success());
    assert!(err.contains("is not a folder"), "{err}");

    let (status, err) = fail_to_start(tmp.path());
    assert!(!status.success());
    assert!(err.contains("there is no registry index at"), "{err}");
    assert!(err.contains("registry/index.json"), "{err}");
    assert!(err.contains("help:"), "{err}");

    std::fs::create_dir_all(tmp.path().join("registry")).expect("mkdir");
    std::fs::write(tmp.path().join("registry/index.json"), "{not json").expect("writes");
    let (status, err) = fail_to_start(tmp.path());
    assert!(!status.success());
    assert!(err.contains("is not a valid registry index"), "{err}");

    std::fs::write(tmp.path().join("registry/index.json"), "[]").expect("writes");
    std::fs::write(
        tmp.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("writes");
    let (status, err) = fail_to_start(tmp.path());
    assert!(!status.success());
    assert!(err.contains("is not a valid OCI image layout"), "{err}");
    assert!(err.contains("index.json` is missing"), "{err}");

    std::fs::write(tmp.path().join("index.json"), "[").expect("writes");
    let (_, err) = fail_to_start(tmp.path());
    assert!(err.contains("is not valid JSON"), "{err}");

    // A manifest whose blob is missing, and one whose bytes do not match its digest.
    let missing = format!("sha256:{}", "a".repeat(64));
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": MANIFEST_TYPE, "digest": missing, "size": 2,
        "annotations": {"io.github.airgap.repository": "x"}}]});
    std::fs::write(tmp.path().join("index.json"), index.to_string()).expect("writes");
    std::fs::create_dir_all(tmp.path().join("blobs/sha256")).expect("mkdir");
    let (_, err) = fail_to_start(tmp.path());
    assert!(err.contains("cannot be read"), "{err}");
    std::fs::write(tmp.path().join("blobs/sha256").join("a".repeat(64)), "{}").expect("writes");
    let (_, err) = fail_to_start(tmp.path());
    assert!(err.contains("has the digest"), "{err}");

    // A tag given to two different manifests.
    let one = write_blob(tmp.path(), br#"{"schemaVersion":2,"layers":[]}"#);
    let two = write_blob(tmp.path(), br#"{"schemaVersion":2,"layers":[] }"#);
    let descriptor = |d: &str| {
        json!({"mediaType": MANIFEST_TYPE, "digest": d, "size": 31 + usize::from(d == two),
               "annotations": {"io.github.airgap.repository": "x",
                               "org.opencontainers.image.ref.name": "x:1"}})
    };
    let index = json!({"schemaVersion": 2, "manifests": [descriptor(&one), descriptor(&two)]});
    std::fs::write(tmp.path().join("index.json"), index.to_string()).expect("writes");
    let (_, err) = fail_to_start(tmp.path());
    assert!(err.contains("`x:1` is tagged twice"), "{err}");

    // Serving the same folder twice on one port fails on bind with a hint.
    std::fs::remove_file(tmp.path().join("index.json")).expect("removes");
    std::fs::remove_file(tmp.path().join("oci-layout")).expect("removes");
    let server = Served::start(tmp.path());
    let out = Command::new(env!("CARGO_BIN_EXE_airgap"))
        .arg("serve")
        .arg(tmp.path())
        .args(["--addr", &server.addr.to_string()])
        .output()
        .expect("airgap runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on"), "{err}");
}

#[test]
fn an_empty_registry_says_so() {
    let tmp = tempfile::tempdir().expect("a temp folder");
    std::fs::create_dir_all(tmp.path().join("registry")).expect("mkdir");
    std::fs::write(tmp.path().join("registry/index.json"), "[]").expect("writes");
    let server = Served::start(tmp.path());
    let (status, v) = get_json(&server.url("/index"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        json!({"status": "No stacks or samples found in the registry"})
    );
    // No layout: the distribution API answers, with no repository.
    let (status, v) = get_json(&server.url("/v2/_catalog"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v, json!({"repositories": []}));
}

// ---------------------------------------------------------------------------------------------
// The OCI distribution API

fn layout_dir() -> (tempfile::TempDir, Image) {
    let dir = server_registry();
    let image = write_layout(dir.path());
    (dir, image)
}

#[test]
fn distribution_api_basics() {
    let (dir, image) = layout_dir();
    let server = Served::start(dir.path());
    let c = client();

    for path in ["/v2/", "/v2"] {
        let r = get(&server.url(path));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["docker-distribution-api-version"],
            "registry/2.0"
        );
        assert_eq!(r.text().expect("a body"), "{}");
    }
    assert_eq!(
        get_json(&server.url("/v2/_catalog")).1,
        json!({"repositories": [REPOSITORY, "other/thing", "plain/repo"]})
    );
    let r = get(&server.url("/v2/plain/repo/manifests/v1"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["docker-content-digest"],
        image.manifests[0].2.as_str()
    );
    assert_eq!(
        get_json(&server.url(&format!("/v2/{REPOSITORY}/tags/list"))).1,
        json!({"name": REPOSITORY, "tags": ["1.0", "amd64-only"]})
    );
    let r = get(&server.url(&format!("/v2/{REPOSITORY}/tags/list?n=1")));
    assert_eq!(
        r.headers()["link"],
        format!("</v2/{REPOSITORY}/tags/list?n=1&last=1.0>; rel=\"next\"").as_str()
    );
    assert_eq!(
        r.json::<Value>().expect("JSON"),
        json!({"name": REPOSITORY, "tags": ["1.0"]})
    );

    // Manifests by tag and by digest, GET and HEAD.
    for reference in ["1.0", image.index_digest.as_str()] {
        let url = server.url(&format!("/v2/{REPOSITORY}/manifests/{reference}"));
        let r = get(&url);
        assert_eq!(r.status(), StatusCode::OK);
        let h = c.head(&url).send().expect("answered");
        assert_eq!(h.status(), StatusCode::OK);
        for headers in [r.headers(), h.headers()] {
            assert_eq!(headers["content-type"], INDEX_TYPE);
            assert_eq!(
                headers["docker-content-digest"],
                image.index_digest.as_str()
            );
            assert_eq!(
                headers["content-length"],
                image.index.len().to_string().as_str()
            );
        }
        assert_eq!(&r.bytes().expect("a body")[..], &image.index[..]);
    }
    // A child of the index is reachable by digest.
    let (_, bytes, digest) = &image.manifests[1];
    let r = get(&server.url(&format!("/v2/{REPOSITORY}/manifests/{digest}")));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], MANIFEST_TYPE);
    assert_eq!(&r.bytes().expect("a body")[..], &bytes[..]);

    // Blobs, whole and ranged.
    for (bytes, digest) in &image.blobs {
        let url = server.url(&format!("/v2/{REPOSITORY}/blobs/{digest}"));
        let r = get(&url);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
        let body = r.bytes().expect("a body");
        assert_eq!(sha256(&body), *digest);
        assert_eq!(&body[..], &bytes[..]);
        let h = c.head(&url).send().expect("answered");
        assert_eq!(h.status(), StatusCode::OK);
        assert_eq!(
            h.headers()["content-length"],
            bytes.len().to_string().as_str()
        );
    }
    let (layer, digest) = &image.layers[0];
    let url = server.url(&format!("/v2/{REPOSITORY}/blobs/{digest}"));
    let len = layer.len();
    for (range, start, end) in [
        ("bytes=10-19", 10, 19),
        ("bytes=0-0", 0, 0),
        (&format!("bytes={}-", len - 7) as &str, len - 7, len - 1),
        ("bytes=-5", len - 5, len - 1),
        ("bytes=5-100000", 5, len - 1),
    ] {
        let r = c.get(&url).header("Range", range).send().expect("answered");
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {start}-{end}/{len}").as_str()
        );
        assert_eq!(
            &r.bytes().expect("a body")[..],
            &layer[start..=end],
            "{range}"
        );
    }
    let r = c
        .get(&url)
        .header("Range", format!("bytes={len}-"))
        .send()
        .expect("answered");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{len}").as_str()
    );
}

#[test]
fn distribution_api_errors() {
    let (dir, image) = layout_dir();
    let server = Served::start(dir.path());
    let c = client();
    let code = |url: String| {
        let r = get(&url);
        let status = r.status();
        let v: Value = r.json().expect("JSON");
        (
            status,
            v["errors"][0]["code"].as_str().unwrap_or("").to_string(),
        )
    };
    let missing = format!("sha256:{}", "0".repeat(64));
    for (path, status, expected) in [
        ("/v2/nope/tags/list".to_string(), 404, "NAME_UNKNOWN"),
        ("/v2/nope/manifests/1.0".to_string(), 404, "NAME_UNKNOWN"),
        (
            format!("/v2/{REPOSITORY}/manifests/2.0"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/{REPOSITORY}/manifests/{missing}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/{REPOSITORY}/manifests/..%2f"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/{REPOSITORY}/blobs/{missing}"),
            404,
            "BLOB_UNKNOWN",
        ),
        (
            format!("/v2/{REPOSITORY}/blobs/sha256:xyz"),
            400,
            "DIGEST_INVALID",
        ),
        ("/v2/Upper/tags/list".to_string(), 400, "NAME_INVALID"),
        // `other/thing` holds only the arm64 manifest: the amd64 layer is not its blob.
        (
            format!("/v2/other/thing/blobs/{}", image.layers[0].1),
            404,
            "BLOB_UNKNOWN",
        ),
        (
            format!("/v2/other/thing/manifests/{}", image.index_digest),
            404,
            "MANIFEST_UNKNOWN",
        ),
    ] {
        let (s, c) = code(server.url(&path));
        assert_eq!(s.as_u16(), status, "{path}");
        assert_eq!(c, expected, "{path}");
    }
    // The other repository does serve its own blob.
    let arm_layer = &image.layers[1].1;
    assert_eq!(
        get(&server.url(&format!("/v2/other/thing/blobs/{arm_layer}"))).status(),
        StatusCode::OK
    );
    // Read-only.
    for (method, path) in [
        ("PUT", format!("/v2/{REPOSITORY}/manifests/1.0")),
        ("DELETE", format!("/v2/{REPOSITORY}/manifests/1.0")),
        ("POST", format!("/v2/{REPOSITORY}/blobs/uploads/")),
        ("PATCH", format!("/v2/{REPOSITORY}/blobs/uploads/x")),
        (
            "DELETE",
            format!("/v2/{REPOSITORY}/blobs/{}", image.layers[0].1),
        ),
    ] {
        let r = c
            .request(method.parse().expect("a method"), server.url(&path))
            .body("x")
            .send()
            .expect("answered");
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(r.headers()["allow"], "GET, HEAD");
        let v: Value = r.json().expect("JSON");
        assert_eq!(v["errors"][0]["code"], "UNSUPPORTED");
    }
}

#[test]
fn skopeo_inspects_and_copies_the_image() {
    let (dir, image) = layout_dir();
    let server = Served::start(dir.path());
    let reference = format!("docker://{}/{REPOSITORY}:1.0", server.addr);
    let work = tempfile::tempdir().expect("a temp folder");
    let policy = work.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .expect("writes the policy");
    let policy = policy.to_str().expect("UTF-8");

    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &reference]);
    assert_eq!(raw, image.index);

    let out = skopeo(&[
        "--override-arch",
        "arm64",
        "--override-os",
        "linux",
        "inspect",
        "--tls-verify=false",
        &reference,
    ]);
    let v: Value = serde_json::from_slice(&out).expect("JSON");
    assert_eq!(v["Digest"], image.index_digest.as_str());
    assert_eq!(v["Architecture"], "arm64");
    assert_eq!(v["Layers"], json!([image.layers[1].1]));
    assert_eq!(v["RepoTags"], json!(["1.0", "amd64-only"]), "{v}");

    // copy --all to an OCI layout: same index digest, every blob byte-identical.
    let oci = work.path().join("oci");
    skopeo(&[
        "copy",
        "--policy",
        policy,
        "--all",
        "--src-tls-verify=false",
        &reference,
        &format!("oci:{}:1.0", oci.display()),
    ]);
    let copied = read_json(&oci.join("index.json"));
    assert_eq!(
        copied["manifests"][0]["digest"],
        image.index_digest.as_str()
    );
    let blob = |d: &str| std::fs::read(oci.join("blobs/sha256").join(&d["sha256:".len()..]));
    assert_eq!(blob(&image.index_digest).expect("the index"), image.index);
    for (_, bytes, digest) in &image.manifests {
        assert_eq!(&blob(digest).expect("a manifest"), bytes);
    }
    for (bytes, digest) in &image.blobs {
        let got = blob(digest).expect("a blob");
        assert_eq!(sha256(&got), *digest);
        assert_eq!(&got, bytes);
    }

    // copy --all to dir:.
    let plain = work.path().join("dir");
    skopeo(&[
        "copy",
        "--policy",
        policy,
        "--all",
        "--src-tls-verify=false",
        &reference,
        &format!("dir:{}", plain.display()),
    ]);
    assert_eq!(
        std::fs::read(plain.join("manifest.json")).expect("manifest.json"),
        image.index
    );
    for (bytes, digest) in &image.blobs {
        let got = std::fs::read(plain.join(&digest["sha256:".len()..])).expect("a blob");
        assert_eq!(&got, bytes);
    }

    // A single-arch tag.
    let single = format!("docker://{}/{REPOSITORY}:amd64-only", server.addr);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &single]);
    assert_eq!(raw, image.manifests[0].1);
}

// ---------------------------------------------------------------------------------------------
// Safety

const SECRET: &str = "TOP-SECRET-7f3a";

/// `tmp/secret.txt` outside the served folder `tmp/dir`, and links pointing at it from inside.
fn trap() -> (tempfile::TempDir, PathBuf, Image) {
    let tmp = tempfile::tempdir().expect("a temp folder");
    let dir = tmp.path().join("dir");
    copy_dir(&index_server().join("registry"), &dir.join("registry"));
    std::fs::copy(
        index_server().join("registry/index_main.json"),
        dir.join("registry/index.json"),
    )
    .expect("copies the index");
    let image = write_layout(&dir);
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, SECRET).expect("writes the secret");
    let stacks = dir.join("registry/stacks");
    std::os::unix::fs::symlink(&secret, stacks.join("go/leak.txt")).expect("a symlink");
    std::os::unix::fs::symlink(tmp.path(), stacks.join("evil")).expect("a symlink");
    // A devfile and a starter archive that are links to the secret.
    std::fs::remove_file(stacks.join("python/devfile.yaml")).expect("removes");
    std::os::unix::fs::symlink(&secret, stacks.join("python/devfile.yaml")).expect("a symlink");
    // A layer blob replaced by a link to the secret.
    let layer = dir
        .join("blobs/sha256")
        .join(&image.layers[0].1["sha256:".len()..]);
    std::fs::remove_file(&layer).expect("removes");
    std::os::unix::fs::symlink(&secret, &layer).expect("a symlink");
    // A link that stays inside is fine.
    std::os::unix::fs::symlink(
        stacks.join("go/1.1.0/devfile.yaml"),
        stacks.join("go/alias.yaml"),
    )
    .expect("a symlink");
    (tmp, dir, image)
}

#[test]
fn nothing_outside_the_folder_is_served() {
    let (tmp, dir, image) = trap();
    let server = Served::start(&dir);
    let secret_abs = tmp.path().join("secret.txt");
    let secret_abs = secret_abs.to_str().expect("UTF-8");
    let encoded_abs = secret_abs.replace('/', "%2f");

    let targets = [
        "/stacks/../../secret.txt".to_string(),
        "/stacks/../../../secret.txt".to_string(),
        "/stacks/%2e%2e/%2e%2e/%2e%2e/secret.txt".to_string(),
        "/stacks/%2E%2E/%2E%2E/%2E%2E/secret.txt".to_string(),
        "/stacks/..%2f..%2f..%2fsecret.txt".to_string(),
        "/stacks/go/..%2f..%2f..%2f..%2fsecret.txt".to_string(),
        "/stacks/..\\..\\..\\secret.txt".to_string(),
        "/stacks/..%5c..%5c..%5csecret.txt".to_string(),
        format!("/stacks/{secret_abs}"),
        format!("/stacks//{secret_abs}"),
        format!("/stacks/{encoded_abs}"),
        "/stacks/go/leak.txt".to_string(),
        "/stacks/evil/secret.txt".to_string(),
        "/../secret.txt".to_string(),
        "/%2e%2e/secret.txt".to_string(),
        "/devfiles/..%2f..%2f..%2fsecret.txt".to_string(),
        "/devfiles/%2e%2e".to_string(),
        "/devfiles/go/..%2f..%2f..%2f..%2fsecret.txt".to_string(),
        "/devfiles/go/..".to_string(),
        "/devfiles/python".to_string(),
        "/devfiles/..%2f..%2f/starter-projects/secret.txt".to_string(),
        "/devfiles/go/1.1.0/starter-projects/..%2f..%2f..%2f..%2fsecret".to_string(),
        "/index/..%2f..%2f..%2fsecret.txt".to_string(),
        format!("/v2/{REPOSITORY}/blobs/{}", image.layers[0].1),
        format!("/v2/{REPOSITORY}/blobs/..%2f..%2f..%2fsecret.txt"),
        format!("/v2/{REPOSITORY}/blobs/sha256:..%2f..%2f..%2fsecret.txt"),
        "/v2/..%2f..%2f/blobs/sha256:00".to_string(),
        format!("/v2/{REPOSITORY}/manifests/..%2f..%2fsecret.txt"),
        format!("http://{}/../secret.txt", server.addr),
    ];
    for target in &targets {
        let (status, response) = raw_get(server.addr, target);
        assert!(
            !(200..300).contains(&status),
            "{target} was answered {status}"
        );
        assert!(
            !response.contains(SECRET),
            "{target} leaked the secret:\n{response}"
        );
    }
    // The link that stays inside is served.
    let (status, response) = raw_get(server.addr, "/stacks/go/alias.yaml");
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("schemaVersion: 2.0.0"));
    // The refused devfile is a server-side error, not a 404 for a stack that exists.
    let (status, v) = get_json(&server.url("/devfiles/python"));
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["status"], "failed to pull the devfile of python");
}

#[test]
fn sixty_four_concurrent_clients() {
    let (dir, image) = layout_dir();
    let server = Served::start(dir.path());
    let clients = 64;
    let barrier = std::sync::Barrier::new(clients);
    let expected_index = get(&server.url("/index")).bytes().expect("a body");
    let devfile =
        std::fs::read(dir.path().join("registry/stacks/go/1.1.0/devfile.yaml")).expect("reads");
    let (layer, layer_digest) = &image.layers[0];
    std::thread::scope(|scope| {
        for i in 0..clients {
            let barrier = &barrier;
            let server = &server;
            let expected_index = &expected_index;
            let devfile = &devfile;
            let image = &image;
            scope.spawn(move || {
                let c = client();
                barrier.wait();
                for round in 0..3 {
                    let r = c.get(server.url("/index")).send().expect("answered");
                    assert_eq!(r.status(), StatusCode::OK, "client {i} round {round}");
                    assert_eq!(r.bytes().expect("a body"), *expected_index);

                    let r = c
                        .get(server.url("/v2index/all?tags=Java"))
                        .send()
                        .expect("answered");
                    assert_eq!(r.status(), StatusCode::OK);

                    let r = c.get(server.url("/devfiles/go")).send().expect("answered");
                    assert_eq!(&r.bytes().expect("a body")[..], &devfile[..]);

                    let r = c
                        .get(server.url(&format!("/v2/{REPOSITORY}/manifests/1.0")))
                        .send()
                        .expect("answered");
                    assert_eq!(&r.bytes().expect("a body")[..], &image.index[..]);

                    let url = server.url(&format!("/v2/{REPOSITORY}/blobs/{layer_digest}"));
                    let r = c.get(&url).send().expect("answered");
                    assert_eq!(sha256(&r.bytes().expect("a body")), *layer_digest);

                    let r = c
                        .get(&url)
                        .header("Range", "bytes=3-12")
                        .send()
                        .expect("answered");
                    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
                    assert_eq!(&r.bytes().expect("a body")[..], &layer[3..=12]);
                }
            });
        }
    });
}
