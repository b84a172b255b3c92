//! Deterministic tar, gzip and zip, checked with the system's GNU tar, gzip, sha256sum,
//! unzip and Python's zipfile.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use airgap::archive::{self, ArchiveError, Entry};

const LONG_DIR: &str = "a-directory-name-that-is-long-enough/to-push-the-whole-path-past/the-hundred-byte-limit-of-ustar-names";

/// Writes the same tree into `root`, with permissions, mtimes and creation order that depend
/// on `variant`, as two machines with different umasks and clocks would.
fn make_tree(root: &Path, variant: u32) {
    let files: &[(&str, &[u8], bool)] = &[
        ("README.md", b"hello\n", false),
        ("bin/run.sh", b"#!/bin/sh\necho run\n", true),
        ("src/main.go", b"package main\n", false),
        ("src/a-b/x.txt", b"dash\n", false),
        (
            &format!("{LONG_DIR}/file-with-a-long-name.txt"),
            b"long\n",
            false,
        ),
    ];
    let mut files: Vec<_> = files
        .iter()
        .map(|(p, c, x)| (p.to_string(), *c, *x))
        .collect();
    if variant == 1 {
        files.reverse();
    }
    for (path, contents, executable) in &files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        let mode = match (executable, variant) {
            (true, 0) => 0o755,
            (true, _) => 0o700,
            (false, 0) => 0o644,
            (false, _) => 0o600,
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::create_dir_all(root.join("empty")).unwrap();
    symlink("../README.md", root.join("src/readme-link")).unwrap();
    let long_target = format!("../{LONG_DIR}/file-with-a-long-name.txt");
    symlink(long_target, root.join("bin/long-link")).unwrap();
    let when =
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + u64::from(variant) * 86_400);
    for entry in archive::walk_dir(root).unwrap() {
        let path = root.join(&entry.path);
        if let archive::EntryKind::Symlink { .. } = entry.kind {
            continue;
        }
        let file = fs::File::open(&path).unwrap();
        file.set_modified(when).unwrap();
        if matches!(entry.kind, archive::EntryKind::Dir) {
            let mode = if variant == 0 { 0o755 } else { 0o700 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

fn trees() -> (tempfile::TempDir, tempfile::TempDir) {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    make_tree(a.path(), 0);
    make_tree(b.path(), 1);
    (a, b)
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.env("TZ", "UTC").env("LC_ALL", "C").output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn same_tree_in_two_folders_gives_identical_bytes() {
    let (a, b) = trees();
    let walk_a = archive::walk_dir(a.path()).unwrap();
    let walk_b = archive::walk_dir(b.path()).unwrap();
    let paths = |w: &[Entry]| w.iter().map(|e| e.path.clone()).collect::<Vec<_>>();
    assert_eq!(paths(&walk_a), paths(&walk_b));

    let tar_a = archive::tar_bytes(walk_a.clone()).unwrap();
    let tar_b = archive::tar_bytes(walk_b.clone()).unwrap();
    assert!(tar_a == tar_b, "tar bytes differ");

    let (gz_a, d_a) = archive::write_tar_gz(walk_a.clone(), Vec::new()).unwrap();
    let (gz_b, d_b) = archive::write_tar_gz(walk_b.clone(), Vec::new()).unwrap();
    assert!(gz_a == gz_b, "tar.gz bytes differ");
    assert_eq!(d_a, d_b);

    let zip_a = archive::zip_bytes(walk_a).unwrap();
    let zip_b = archive::zip_bytes(walk_b).unwrap();
    assert!(zip_a == zip_b, "zip bytes differ");

    // Listing order does not matter either.
    let mut reversed = archive::walk_dir(a.path()).unwrap();
    reversed.reverse();
    assert!(archive::tar_bytes(reversed).unwrap() == tar_a);
}

/// What the tree above must list as, in order: (mode string, size, name).
fn expected_listing() -> Vec<(String, u64, String)> {
    let long = format!("{LONG_DIR}/file-with-a-long-name.txt");
    let mut rows = vec![("-rw-r--r--", 6, "README.md".to_string())];
    // LONG_DIR's three levels, then its file.
    let parts: Vec<&str> = LONG_DIR.split('/').collect();
    for i in 1..=parts.len() {
        rows.push(("drwxr-xr-x", 0, format!("{}/", parts[..i].join("/"))));
    }
    rows.push(("-rw-r--r--", 5, long.clone()));
    rows.extend([
        ("drwxr-xr-x", 0, "bin/".to_string()),
        ("lrwxrwxrwx", 0, format!("bin/long-link -> ../{long}")),
        ("-rwxr-xr-x", 19, "bin/run.sh".to_string()),
        ("drwxr-xr-x", 0, "empty/".to_string()),
        ("drwxr-xr-x", 0, "src/".to_string()),
        ("drwxr-xr-x", 0, "src/a-b/".to_string()),
        ("-rw-r--r--", 5, "src/a-b/x.txt".to_string()),
        ("-rw-r--r--", 13, "src/main.go".to_string()),
        (
            "lrwxrwxrwx",
            0,
            "src/readme-link -> ../README.md".to_string(),
        ),
    ]);
    rows.into_iter()
        .map(|(m, s, n)| (m.to_string(), s, n))
        .collect()
}

#[test]
fn gnu_tar_lists_names_modes_owners_and_times() {
    let (a, _) = trees();
    let out = tempfile::tempdir().unwrap();
    let tar_path = out.path().join("x.tar");
    archive::write_tar(
        archive::walk_dir(a.path()).unwrap(),
        fs::File::create(&tar_path).unwrap(),
    )
    .unwrap();
    let listing = String::from_utf8(run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-tvf")
        .arg(&tar_path)))
    .unwrap();
    let mut rows = Vec::new();
    for line in listing.lines() {
        // -rw-r--r-- 0/0               6 1970-01-01 00:00 README.md
        let mut fields = line
            .splitn(6, char::is_whitespace)
            .filter(|f| !f.is_empty());
        let mode = fields.next().unwrap().to_string();
        let owner = fields.next().unwrap();
        let rest = line[line.find(owner).unwrap() + owner.len()..].trim_start();
        let (size, rest) = rest.split_once(' ').unwrap();
        let rest = rest.trim_start();
        let (date, rest) = rest.split_once(' ').unwrap();
        let (time, name) = rest.split_once(' ').unwrap();
        assert_eq!(owner, "0/0", "{line}");
        assert_eq!((date, time), ("1970-01-01", "00:00"), "{line}");
        rows.push((mode, size.parse::<u64>().unwrap(), name.to_string()));
    }
    assert_eq!(rows, expected_listing());

    // GNU tar extracts it, long names and links included.
    let x = tempfile::tempdir().unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar_path)
        .arg("-C")
        .arg(x.path()));
    assert_eq!(
        fs::read(x.path().join(LONG_DIR).join("file-with-a-long-name.txt")).unwrap(),
        b"long\n"
    );
    assert_eq!(
        fs::read_link(x.path().join("src/readme-link")).unwrap(),
        Path::new("../README.md")
    );
    assert_eq!(fs::read(x.path().join("bin/long-link")).unwrap(), b"long\n");
}

#[test]
fn tar_headers_carry_no_names_or_times() {
    let (a, _) = trees();
    let bytes = archive::tar_bytes(archive::walk_dir(a.path()).unwrap()).unwrap();
    let mut reader = tar::Archive::new(bytes.as_slice());
    for entry in reader.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!(h.uid().unwrap(), 0);
        assert_eq!(h.gid().unwrap(), 0);
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
    }
    // Two zero blocks end it, not padded to a 10 KiB record.
    assert_eq!(bytes.len() % 512, 0);
    assert!(bytes[bytes.len() - 1024..].iter().all(|b| *b == 0));
}

#[test]
fn parents_are_emitted_and_entries_sorted_by_bytes() {
    let entries = vec![
        Entry::file("a/x", "1"),
        Entry::file("a-b/y", "2"),
        Entry::executable("z", "3"),
        Entry::dir("a/"),
    ];
    let bytes = archive::tar_bytes(entries).unwrap();
    let mut reader = tar::Archive::new(bytes.as_slice());
    let rows: Vec<(String, u32)> = reader
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                e.header().mode().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("a/".to_string(), 0o755),
            ("a-b/".to_string(), 0o755),
            ("a-b/y".to_string(), 0o644),
            ("a/x".to_string(), 0o644),
            ("z".to_string(), 0o755),
        ]
    );
}

#[test]
fn bad_entry_lists_are_refused() {
    let cases: Vec<(Vec<Entry>, &str)> = vec![
        (vec![Entry::file("/etc/passwd", "")], "absolute"),
        (vec![Entry::file("a/../b", "")], "`..`"),
        (vec![Entry::file("a//b", "")], "empty part"),
        (vec![Entry::file("", "")], "empty"),
        (
            vec![Entry::file("a", "1"), Entry::file("a", "2")],
            "listed twice",
        ),
        (
            vec![Entry::file("a", "1"), Entry::file("a/b", "2")],
            "not a directory",
        ),
        (
            vec![Entry::file("a/b", "2"), Entry::file("a", "1")],
            "not a directory",
        ),
    ];
    for (entries, expected) in cases {
        let err = archive::tar_bytes(entries.clone()).unwrap_err().to_string();
        assert!(err.contains(expected), "{entries:?}: {err}");
        let err = archive::zip_bytes(entries.clone()).unwrap_err().to_string();
        assert!(err.contains(expected), "{entries:?}: {err}");
    }
    let missing = archive::tar_bytes(vec![Entry::from_file("x", "/nonexistent/airgap", false)]);
    assert!(matches!(missing, Err(ArchiveError::Read { .. })));
}

#[test]
fn walk_dir_refuses_special_files() {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("mkfifo").arg(dir.path().join("pipe")));
    let err = archive::walk_dir(dir.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::FileType { .. }), "{err}");
}

#[test]
fn gzip_has_no_timestamp_and_no_name() {
    let (a, _) = trees();
    let (gz, _) = archive::write_tar_gz(archive::walk_dir(a.path()).unwrap(), Vec::new()).unwrap();
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 8], "gzip magic, deflate");
    assert_eq!(gz[3], 0, "no FNAME, FEXTRA, FCOMMENT or FHCRC flag");
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "MTIME is zero");
    assert_eq!(gz[9], 255, "OS unknown, as Go writes it");
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), &gz).unwrap();
    let tar = run(Command::new("gzip").arg("-dc").arg(file.path()));
    assert_eq!(
        tar,
        archive::tar_bytes(archive::walk_dir(a.path()).unwrap()).unwrap()
    );
    // gzip -l -v shows no name stored and a 1970 date.
    run(Command::new("gzip").arg("-t").arg(file.path()));
}

#[test]
fn digests_match_sha256sum() {
    let (a, _) = trees();
    let dir = tempfile::tempdir().unwrap();
    let gz_path = dir.path().join("layer.tar.gz");
    let (file, digests) = archive::write_tar_gz(
        archive::walk_dir(a.path()).unwrap(),
        fs::File::create(&gz_path).unwrap(),
    )
    .unwrap();
    drop(file);
    let sum = |path: &Path| {
        let out = String::from_utf8(run(Command::new("sha256sum").arg(path))).unwrap();
        out.split_whitespace().next().unwrap().to_string()
    };
    assert_eq!(digests.compressed.hex(), sum(&gz_path));
    assert_eq!(
        digests.compressed.size,
        fs::metadata(&gz_path).unwrap().len()
    );
    assert_eq!(
        digests.compressed.oci(),
        format!("sha256:{}", sum(&gz_path))
    );

    let tar_path = dir.path().join("layer.tar");
    fs::write(
        &tar_path,
        run(Command::new("gzip").arg("-dc").arg(&gz_path)),
    )
    .unwrap();
    assert_eq!(digests.uncompressed.hex(), sum(&tar_path));
    assert_eq!(
        digests.uncompressed.size,
        fs::metadata(&tar_path).unwrap().len()
    );
}

/// Compressed bytes depend on the deflate backend and level. This golden pins them: if it
/// changes (a flate2/zlib-rs upgrade, another backend), every devfile-index image digest
/// changes with it, so update it knowingly.
#[test]
fn compressed_output_is_pinned() {
    let entries = || {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("line {i} of a stack's files\n").into_bytes())
            .collect();
        vec![
            Entry::file("registry/index.json", text.clone()),
            Entry::file("registry/stacks/go/devfile.yaml", &text[..5000]),
        ]
    };
    let (_, digests) = archive::write_tar_gz(entries(), Vec::new()).unwrap();
    assert_eq!(
        digests.uncompressed.oci(),
        "sha256:30fa821c5fb390c64312bc7aeb760d23de0f2837b604913a5782248a06917b53",
        "tar bytes changed"
    );
    assert_eq!(
        digests.compressed.oci(),
        "sha256:a7fc4b4afe7d41cd28009d9021f695faa8f6d0bfd171086cacf8e6496ba88854",
        "gzip bytes changed: deflate backend or level moved"
    );
    let zip = archive::zip_bytes(entries()).unwrap();
    assert_eq!(
        hex_sha256(&zip),
        "3cf7a5dfad1ee297f12df5918e7314f27cd2de3a9eb893313d7f91d1bc3931b2",
        "zip bytes changed: deflate backend or level moved"
    );
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn zip_is_readable_with_fixed_times_and_modes() {
    let (a, _) = trees();
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("starter-offline.zip");
    archive::write_zip(
        archive::walk_dir(a.path()).unwrap(),
        fs::File::create(&zip_path).unwrap(),
    )
    .unwrap();

    let unzip = String::from_utf8(run(Command::new("unzip").arg("-l").arg(&zip_path))).unwrap();
    assert!(
        unzip.contains("1980-01-01 00:00") || unzip.contains("01-01-1980 00:00"),
        "{unzip}"
    );
    for name in ["README.md", "bin/run.sh", "src/a-b/x.txt", "empty/"] {
        assert!(unzip.contains(name), "{name} missing:\n{unzip}");
    }
    run(Command::new("unzip").arg("-tq").arg(&zip_path));
    run(Command::new("python3")
        .args(["-m", "zipfile", "-l"])
        .arg(&zip_path));

    let script = r#"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for i in z.infolist():
    print(i.filename, oct(i.external_attr >> 16), i.date_time, i.create_system, len(i.extra), i.compress_type, len(i.comment))
print("comment", len(z.comment))
print("readme", z.read("README.md"))
"#;
    let out = String::from_utf8(run(Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&zip_path)))
    .unwrap();
    let long = format!("{LONG_DIR}/file-with-a-long-name.txt");
    let date = "(1980, 1, 1, 0, 0, 0)";
    let mut expected = vec![format!("README.md 0o100644 {date} 3 0 8 0")];
    let parts: Vec<&str> = LONG_DIR.split('/').collect();
    for i in 1..=parts.len() {
        expected.push(format!("{}/ 0o40755 {date} 3 0 0 0", parts[..i].join("/")));
    }
    expected.extend([
        format!("{long} 0o100644 {date} 3 0 8 0"),
        format!("bin/ 0o40755 {date} 3 0 0 0"),
        format!("bin/long-link 0o120777 {date} 3 0 0 0"),
        format!("bin/run.sh 0o100755 {date} 3 0 8 0"),
        format!("empty/ 0o40755 {date} 3 0 0 0"),
        format!("src/ 0o40755 {date} 3 0 0 0"),
        format!("src/a-b/ 0o40755 {date} 3 0 0 0"),
        format!("src/a-b/x.txt 0o100644 {date} 3 0 8 0"),
        format!("src/main.go 0o100644 {date} 3 0 8 0"),
        format!("src/readme-link 0o120777 {date} 3 0 0 0"),
        "comment 0".to_string(),
        "readme b'hello\\n'".to_string(),
    ]);
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
}
