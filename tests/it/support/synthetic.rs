//! A generator of synthetic devfile registries in the community layout, for measuring how
//! airgap grows with the number of stacks.
//!
//! `write_registry(root, n)` writes `n` stacks with the community registry's proportions: a
//! third single-version (`stacks/<name>/devfile.yaml`), the rest multi-version (`stack.yaml` and
//! two to five `<semver>/devfile.yaml`), about two starter projects per devfile, some with
//! `subDir`, some devfiles with `{{variables}}` in an image or a second container, some versions
//! with a `docker/Dockerfile` (single- or multi-stage, sometimes an `ARG` default) and a
//! `kubernetes/deploy.yaml`, and an `extraDevfileEntries.yaml` with a sample per six stacks.
//!
//! Everything a devfile points at is drawn from small shared pools, so that growing `n` grows
//! airgap's per-stack work (devfiles to rewrite, starter projects to package, index entries)
//! and not the bytes it copies: [`IMAGES`] container images, [`STARTER_REMOTES`] starter
//! repositories (each with a few revisions), [`SAMPLE_REMOTES`] sample repositories and
//! [`ICONS`] icons. [`super::world::World::new`] then makes every one of them real on
//! 127.0.0.1; [`super::world::World::synthetic`] does both.
//!
//! The choices are a pure function of the stack's number (splitmix64), so a given `n` always
//! gives the same registry, and the first stacks of a larger registry are those of a smaller one.

use std::fmt::Write as _;
use std::path::Path;

/// Distinct container images all stacks draw from.
pub const IMAGES: usize = 40;
/// Distinct starter-project repositories.
pub const STARTER_REMOTES: usize = 40;
/// Distinct sample repositories.
pub const SAMPLE_REMOTES: usize = 20;
/// Distinct icons.
pub const ICONS: usize = 10;

/// Revisions the starter projects check out: a branch, two annotated tags, another branch.
const REVISIONS: [&str; 4] = ["main", "v1.0.0", "v2.0.0", "release-1"];
const SUB_DIRS: [&str; 2] = ["app", "services/api"];
const VERSIONS: [&str; 5] = ["1.0.0", "1.1.0", "2.0.0", "2.1.0", "3.0.0"];
const LANGUAGES: [&str; 6] = ["Go", "Java", "Python", "Node.js", "Rust", ".NET"];

/// What a generated registry holds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub stacks: usize,
    pub devfiles: usize,
    pub starter_projects: usize,
    pub dockerfiles: usize,
    pub samples: usize,
}

/// splitmix64 of a stack number and a salt: the generator's only source of choice.
fn pick(i: usize, salt: u64) -> u64 {
    let mut z = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Image `k` of the pool, across three registries. Last path parts are distinct, so `flat`
/// naming maps no two of them to one target reference.
pub fn image(k: usize) -> String {
    let k = k % IMAGES;
    match k % 3 {
        0 => format!("quay.io/synthetic/runtime-{k:02}:1.{k}"),
        1 => format!("registry.access.redhat.com/synthetic/toolset-{k:02}:{k}.0-1"),
        _ => format!("docker.io/synthetic/builder-{k:02}:latest"),
    }
}

fn icon(k: usize) -> String {
    format!(
        "https://raw.githubusercontent.com/synthetic/icons/main/icon-{:02}.svg",
        k % ICONS
    )
}

fn starter_remote(k: usize) -> String {
    format!(
        "https://github.com/synthetic-starters/starter-{:02}.git",
        k % STARTER_REMOTES
    )
}

/// The name of stack `i` (sorts as it numbers).
pub fn stack_name(i: usize) -> String {
    format!("synth-{i:05}")
}

/// Writes a registry of `n` stacks in the community layout under `root`.
pub fn write_registry(root: &Path, n: usize) -> Counts {
    let mut counts = Counts {
        stacks: n,
        ..Counts::default()
    };
    let mut write = |rel: &str, text: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("creates a folder");
        std::fs::write(&path, text).expect("writes a file");
    };
    for i in 0..n {
        let name = stack_name(i);
        if i.is_multiple_of(3) {
            let stack = Stack::new(i, &name, "1.0.0");
            stack.write(&format!("stacks/{name}"), &mut write, &mut counts);
        } else {
            let versions = &VERSIONS[..2 + (pick(i, 1) % 4) as usize];
            let mut yaml = format!(
                "name: {name}\ndisplayName: Synthetic {name}\ndescription: A synthetic stack for the scale benchmark.\nicon: {}\nversions:\n",
                icon(i)
            );
            for (j, v) in versions.iter().enumerate() {
                let _ = writeln!(yaml, "  - version: {v}");
                if j + 1 == versions.len() {
                    yaml.push_str("    default: true\n");
                }
                Stack::new(i * 8 + j, &name, v).write(
                    &format!("stacks/{name}/{v}"),
                    &mut write,
                    &mut counts,
                );
            }
            write(&format!("stacks/{name}/stack.yaml"), &yaml);
        }
    }

    // Samples: one per six stacks, a third of them with two versions.
    let samples = n.div_ceil(6);
    let mut extra = String::from("schemaVersion: 1.0.0\nsamples:\n");
    for j in 0..samples {
        let remote = format!(
            "https://github.com/synthetic-samples/sample-{:02}.git",
            j % SAMPLE_REMOTES
        );
        let _ = write!(
            extra,
            "  - name: sample-{j:05}\n    displayName: Sample {j}\n    description: A synthetic sample.\n    icon: {}\n    tags:\n      - Synthetic\n    projectType: {lang}\n    language: {lang}\n    provider: Airgap Bench\n",
            icon(j),
            lang = LANGUAGES[j % LANGUAGES.len()],
        );
        if j.is_multiple_of(3) {
            extra.push_str("    versions:\n");
            for (k, v) in ["1.0.0", "2.0.0"].iter().enumerate() {
                let _ = write!(
                    extra,
                    "      - version: {v}\n{}        schemaVersion: 2.2.0\n        git:\n          revision: sample-{j}-{v}\n          remotes:\n            origin: {remote}\n",
                    if k == 1 {
                        "        default: true\n"
                    } else {
                        ""
                    },
                );
            }
        } else {
            let _ = write!(
                extra,
                "    git:\n      revision: sample-{j}\n      remotes:\n        origin: {remote}\n"
            );
        }
    }
    write("extraDevfileEntries.yaml", &extra);
    counts.samples = samples;
    counts
}

/// One stack version's devfile and the files beside it.
struct Stack<'a> {
    seed: usize,
    name: &'a str,
    version: &'a str,
}

impl<'a> Stack<'a> {
    fn new(seed: usize, name: &'a str, version: &'a str) -> Self {
        Stack {
            seed,
            name,
            version,
        }
    }

    fn write(&self, dir: &str, write: &mut impl FnMut(&str, &str), counts: &mut Counts) {
        let (i, name, version) = (self.seed, self.name, self.version);
        let lang = LANGUAGES[i % LANGUAGES.len()];
        let dockerfile = pick(i, 2).is_multiple_of(4);
        let kubernetes = pick(i, 3).is_multiple_of(3);
        let variable = pick(i, 4).is_multiple_of(7);
        let runtime = pick(i, 5) as usize % IMAGES;

        let mut d = format!(
            "schemaVersion: 2.2.2\nmetadata:\n  name: {name}\n  displayName: Synthetic {name}\n  description: Synthetic stack {name}, version {version}.\n  icon: {}\n  tags:\n    - {lang}\n    - Synthetic\n  projectType: {lang}\n  language: {lang}\n  provider: Airgap Bench\n  version: {version}\n",
            icon(i)
        );
        let runtime_image = if variable {
            // `{{variables}}` inside the image: the tag comes from the variable.
            let full = image(runtime);
            let (repo, tag) = full.rsplit_once(':').expect("a tag");
            let _ = write!(d, "variables:\n  RUNTIME_TAG: '{tag}'\n");
            format!("{repo}:{{{{RUNTIME_TAG}}}}")
        } else {
            image(runtime)
        };
        d.push_str("starterProjects:\n");
        let starters = 1 + (pick(i, 6) % 3) as usize;
        for s in 0..starters {
            let r = pick(i, 10 + s as u64) as usize;
            let _ = write!(
                d,
                "  - name: {}-starter-{s}\n    description: Starter {s} of {name}\n    git:\n      checkoutFrom:\n        revision: {}\n      remotes:\n        origin: {}\n",
                lang.to_ascii_lowercase().replace('.', ""),
                REVISIONS[r % REVISIONS.len()],
                starter_remote(r / REVISIONS.len()),
            );
            if r.is_multiple_of(3) {
                let _ = writeln!(d, "    subDir: {}", SUB_DIRS[r % SUB_DIRS.len()]);
            }
        }
        counts.starter_projects += starters;
        let _ = write!(
            d,
            "components:\n  - name: runtime\n    container:\n      image: {runtime_image}\n      memoryLimit: 1024Mi\n      mountSources: true\n      endpoints:\n        - name: http\n          targetPort: 8080\n"
        );
        if pick(i, 7).is_multiple_of(4) {
            let _ = write!(
                d,
                "  - name: tools\n    container:\n      image: {}\n      memoryLimit: 256Mi\n",
                image(pick(i, 8) as usize)
            );
        }
        if dockerfile {
            let _ = write!(
                d,
                "  - name: build\n    image:\n      imageName: {name}-image:latest\n      dockerfile:\n        uri: docker/Dockerfile\n        buildContext: .\n"
            );
        }
        if kubernetes {
            d.push_str("  - name: deploy\n    kubernetes:\n      uri: kubernetes/deploy.yaml\n");
        }
        d.push_str(
            "commands:\n  - id: build\n    exec:\n      component: runtime\n      commandLine: make build\n      group:\n        kind: build\n        isDefault: true\n  - id: run\n    exec:\n      component: runtime\n      commandLine: make run\n      group:\n        kind: run\n        isDefault: true\n",
        );
        write(&format!("{dir}/devfile.yaml"), &d);
        counts.devfiles += 1;

        if dockerfile {
            let base = image(pick(i, 9) as usize);
            let text = match pick(i, 11) % 3 {
                0 => format!("FROM {base}\nCOPY . .\nRUN make build\nCMD [\"./app\"]\n"),
                1 => format!(
                    "FROM {base} AS build\nCOPY . .\nRUN make build\n\nFROM {}\nCOPY --from=build /app /app\nCMD [\"/app\"]\n",
                    image(pick(i, 12) as usize)
                ),
                _ => {
                    let (repo, tag) = base.rsplit_once(':').expect("a tag");
                    format!(
                        "ARG BASE_TAG={tag}\nFROM {repo}:${{BASE_TAG}}\nCOPY . .\nRUN make build\n"
                    )
                }
            };
            write(&format!("{dir}/docker/Dockerfile"), &text);
            counts.dockerfiles += 1;
        }
        if kubernetes {
            write(
                &format!("{dir}/kubernetes/deploy.yaml"),
                &format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {name}-image:latest\n"
                ),
            );
        }
    }
}
