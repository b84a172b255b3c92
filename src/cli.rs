//! The command line. Each subcommand is thin: it parses arguments and calls one function of
//! the engine. stdout carries data (plans, JSON); stderr carries progress and diagnostics.
//!
//! Exit codes: 0 success; 1 the command failed (a diagnostic says why); 2 the command line
//! was wrong (clap's usage error).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::kdl_text::{ReadError, TooLarge};
use crate::lock::{self, Lockfile, resolve};
use crate::manifest::{self, Manifest};

#[derive(Debug, Parser)]
#[command(
    name = "airgap",
    version,
    about = "Build an offline (air-gapped) devfile registry from a manifest",
    long_about = "Build an offline (air-gapped) devfile registry from a manifest kept in version control.\n\n\
`airgap lock` resolves airgap.kdl into airgap.lock (git commits, image digests, archive hashes);\n\
`airgap apply` then does only the steps whose inputs changed since the last apply."
)]
pub struct Cli {
    /// The manifest to use.
    #[arg(long, short = 'm', global = true, default_value = manifest::FILE_NAME, value_name = "PATH")]
    pub manifest: PathBuf,
    /// How many network requests or git operations run at once.
    #[arg(long, short = 'j', global = true, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve airgap.kdl into airgap.lock: every git commit, image digest and archive hash.
    ///
    /// Pins already in airgap.lock are kept while their request is unchanged; `--update` moves
    /// them. The lockfile is not rewritten when nothing changed.
    Lock {
        /// Re-resolve pins: all of them, or only those of the named sources, stacks or samples.
        #[arg(long, value_name = "NAME", num_args = 0..)]
        update: Option<Vec<String>>,
        /// Fail instead of changing airgap.lock when it no longer satisfies the manifest.
        #[arg(long)]
        locked: bool,
        /// Resolve upstream anew without writing anything: list what moved (as `--update`
        /// would change it) on stdout and exit 1 when the lock is out of date, 0 when not.
        /// With `--update NAME…`, only those names are checked.
        #[arg(long)]
        check: bool,
    },
    /// Show every step of apply, fresh or stale, with the reason each stale step must run.
    Plan {
        /// `text` (a line per step) or `json` (for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Only list stale steps.
        #[arg(long)]
        stale: bool,
        /// The plan of `apply --bundle DIR`.
        #[arg(long, value_name = "DIR")]
        bundle: Option<PathBuf>,
    },
    /// Build the target from the lock: run the stale steps, independent ones in parallel.
    ///
    /// A missing or outdated airgap.lock is resolved first (as `cargo build` does), unless
    /// --locked. Only one apply runs in a workspace at a time.
    Apply {
        /// Fail instead of updating airgap.lock when it does not satisfy the manifest.
        #[arg(long)]
        locked: bool,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Sneakernet: build for the registry target, but write everything into a bundle at
        /// DIR (an OCI image layout, `registry/` and `airgap-bundle.json`) instead of pushing;
        /// `airgap push DIR` uploads it inside the air gap.
        #[arg(long, value_name = "DIR")]
        bundle: Option<PathBuf>,
    },
    /// Upload a bundle made by `apply --bundle` to the registry it names.
    ///
    /// Blobs the registry has are skipped, so a re-run after an interruption sends only what
    /// is missing. The bundle is checked first (manifests against their digests, blobs present
    /// with their sizes) and every blob is hashed as it streams: an image whose content does
    /// not match its digests is never tagged.
    Push {
        /// The bundle's folder.
        dir: PathBuf,
        /// Send the bytes to HOST[:PORT] instead (a port-forward, another name of the same
        /// registry); the repositories and tags stay as the bundle names them.
        #[arg(long, value_name = "HOST:PORT")]
        to: Option<String>,
        /// How the registry is reached (default: what the manifest said for the target).
        #[arg(long, value_enum)]
        tls: Option<TlsFlag>,
        /// PEM file of a private CA (with --tls verify).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
    /// Check the target holds every locked image and points nowhere outside the air gap.
    ///
    /// Every image the lock names must be whole at the target (every manifest, config and layer
    /// blob) at the digest apply recorded, and no reference airgap rewrites (container images,
    /// starter projects, parents, icons, FROM lines, index entries) may name an upstream host.
    /// Upstream hosts in text airgap does not rewrite are printed as notes. Exit 1 lists every
    /// problem.
    Verify,
    /// Rebuild every output from the lock and compare it with the target.
    ///
    /// The rebuild happens in a scratch folder, from the workspace's caches (no network when
    /// they are warm); each output is compared with what apply recorded and with the file on
    /// the target. Exit 1 lists every difference.
    Audit,
    /// Write a commented airgap.kdl for the community registry, and the .gitignore lines.
    ///
    /// The manifest is written at --manifest (default ./airgap.kdl) and never overwritten;
    /// `.airgap/` and a `dir:` target's folder are added to the .gitignore beside it.
    Init {
        /// The target: a registry `HOST[:PORT][/PATH]`, or a folder `dir:PATH`.
        #[arg(long, default_value = "dir:airgap-out")]
        target: String,
    },
    /// Print a shell completion script (e.g. `airgap completions bash > /etc/bash_completion.d/airgap`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `airgap man > airgap.1 && man ./airgap.1`.
    Man,
    /// Serve a built folder: the devfile registry REST API and a read-only OCI registry.
    ///
    /// DIR is the folder of a `dir:` target (an OCI image layout plus `registry/`).
    Serve {
        /// The output folder of a `dir:` target.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to listen; port 0 picks a free port (printed on stderr).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Print one line per request on stderr.
        #[arg(long, short)]
        verbose: bool,
        /// Seconds a client has to send a request's headers; also closes connections idle
        /// that long between requests.
        #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        header_timeout: u64,
        /// Seconds a connection may go without moving a byte either way (a client that stops
        /// reading a response) before it is dropped.
        #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        idle_timeout: u64,
        /// Connections served at once (capped at half the open-file limit); at the limit the
        /// oldest connection is closed to make room.
        #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
        max_connections: u64,
    },
}

/// `--tls`: the modes of [`crate::oci::mirror::Tls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsFlag {
    Verify,
    Insecure,
    PlainHttp,
}

impl From<TlsFlag> for crate::oci::mirror::Tls {
    fn from(t: TlsFlag) -> Self {
        match t {
            TlsFlag::Verify => Self::Verify,
            TlsFlag::Insecure => Self::Insecure,
            TlsFlag::PlainHttp => Self::PlainHttp,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let jobs = cli.jobs.unwrap_or_else(default_jobs);
    let result = match &cli.command {
        Command::Lock {
            update,
            locked,
            check,
        } => cmd_lock(&cli.manifest, update.as_deref(), *locked, *check, jobs),
        Command::Plan {
            format,
            stale,
            bundle,
        } => crate::apply::cmd_plan(&cli.manifest, *format, *stale, jobs, bundle.as_deref()),
        Command::Apply {
            locked,
            dry_run,
            bundle,
        } => crate::apply::cmd_apply(&cli.manifest, *locked, *dry_run, jobs, bundle.as_deref()),
        Command::Push {
            dir,
            to,
            tls,
            ca_file,
        } => crate::bundle::cmd_push(
            dir,
            &crate::bundle::PushOptions {
                to: to.clone(),
                tls: tls.map(Into::into),
                ca_file: ca_file.clone(),
                jobs,
            },
        ),
        Command::Serve {
            dir,
            addr,
            verbose,
            header_timeout,
            idle_timeout,
            max_connections,
        } => {
            let limits = crate::serve::connections::Limits {
                header_timeout: std::time::Duration::from_secs(*header_timeout),
                idle_timeout: std::time::Duration::from_secs(*idle_timeout),
                max_connections: usize::try_from(*max_connections).unwrap_or(usize::MAX),
            };
            cmd_serve(dir, *addr, *verbose, limits)
        }
        Command::Init { target } => {
            crate::init::cmd_init(&cli.manifest, target).map_err(|e| Box::new(e) as Report)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "airgap", &mut out);
            print_data(&out, "the completion script")
        }
        Command::Man => cmd_man(),
        Command::Verify => crate::audit::cmd_verify(&cli.manifest, jobs),
        Command::Audit => crate::audit::cmd_audit(&cli.manifest, jobs),
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{}", render(report.as_ref()));
            // Usage errors exit 2, as clap's own do; every other failure exits 1.
            let usage = report
                .code()
                .is_some_and(|c| c.to_string() == "airgap::usage");
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 4)
        .unwrap_or(8)
        .clamp(4, 32)
}

pub type Report = Box<dyn miette::Diagnostic + Send + Sync>;

/// Renders a diagnostic for stderr: graphical with colour on a terminal, plain otherwise.
pub fn render(d: &dyn miette::Diagnostic) -> String {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        let mut out = String::new();
        let handler = miette::GraphicalReportHandler::new();
        if handler.render_report(&mut out, d).is_ok() {
            return out;
        }
    }
    crate::diag::render_plain(d)
}

pub fn load_manifest(path: &Path) -> Result<Manifest, Report> {
    Manifest::load(path).map_err(|e| Box::new(e) as Report)
}

pub fn lock_path(m: &Manifest) -> PathBuf {
    m.root.join(lock::FILE_NAME)
}

/// Reads the lockfile next to the manifest, `None` when there is none.
pub fn read_lock(m: &Manifest) -> Result<Option<Lockfile>, Report> {
    let path = lock_path(m);
    match crate::kdl_text::read_limited(&path, lock::MAX_SIZE) {
        Ok(text) => lock::read(lock::FILE_NAME, &text)
            .map(Some)
            .map_err(|e| Box::new(e) as Report),
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(ReadError::Io(e)) => Err(IoError::report(
            format!("cannot read `{}`", path.display()),
            e,
        )),
        Err(ReadError::TooLarge) => Err(Box::new(TooLarge {
            path,
            limit: lock::MAX_SIZE,
            what: "lockfile",
        })),
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{what}")]
#[diagnostic(code(airgap::io))]
pub struct IoError {
    pub what: String,
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    /// `what` could not be done because of `source`, as a [`Report`].
    pub fn report(what: impl Into<String>, source: std::io::Error) -> Report {
        Box::new(IoError {
            what: what.into(),
            source,
        })
    }
}

/// The async runtime of the commands that copy and build: `jobs` workers, 2 to 8.
pub fn runtime(jobs: usize) -> Result<tokio::runtime::Runtime, Report> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs.clamp(2, 8))
        .enable_all()
        .build()
        .map_err(|e| IoError::report("cannot start the async runtime", e))
}

fn cmd_lock(
    manifest_path: &Path,
    update: Option<&[String]>,
    locked: bool,
    check: bool,
    jobs: usize,
) -> Result<ExitCode, Report> {
    if locked && (update.is_some() || check) {
        return Err(Box::new(UsageError(format!(
            "`--locked` and `{}` contradict each other: --locked forbids changing the lock",
            if check { "--check" } else { "--update" }
        ))));
    }
    let m = load_manifest(manifest_path)?;
    let previous = read_lock(&m)?;
    let update = match update {
        None if check => resolve::Update::All,
        None => resolve::Update::Nothing,
        Some([]) => resolve::Update::All,
        Some(names) => resolve::Update::Names(names.iter().cloned().collect()),
    };
    let mode = if locked {
        resolve::Mode::Locked
    } else {
        resolve::Mode::Resolve
    };
    let (new, stats) = resolve::lock(&m, previous.as_ref(), &update, mode, jobs)
        .map_err(|e| Box::new(e) as Report)?;
    // A first lock lists nothing: every entry would be new.
    let changes = previous
        .as_ref()
        .map(|p| lock::diff::diff(p, &new))
        .unwrap_or_default();
    if check {
        return check_lock(previous.is_some(), &changes);
    }
    for c in &changes {
        eprintln!("{:>12} {c}", c.kind.verb());
    }
    let text = lock::write(&new);
    let path = lock_path(&m);
    let old_text = std::fs::read_to_string(&path).ok();
    let changed = old_text.as_deref() != Some(text.as_str());
    let summary = format!(
        "{} stacks ({} devfiles), {} samples, {} starter projects, {} projects, {} images, {} icons and parents",
        stats.stacks,
        stats.devfiles,
        stats.samples,
        stats.starter_projects,
        stats.projects,
        stats.images,
        stats.downloads
    );
    if changed {
        if locked {
            // Resolution under --locked succeeded but the text differs (an older writer):
            // still refuse to write.
            return Err(Box::new(resolve::LockError::Unsatisfied {
                reasons: vec![resolve::Problem {
                    what: "airgap.lock".into(),
                    message: "its text differs from what this airgap writes".into(),
                }],
            }));
        }
        crate::fetch::write_atomic(&path, text.as_bytes())
            .map_err(|e| IoError::report(format!("cannot write `{}`", path.display()), e))?;
        eprintln!(
            "{:>12} {summary}; {} resolved, airgap.lock written",
            "Locked", stats.resolved
        );
    } else {
        eprintln!("{:>12} {summary}; airgap.lock unchanged", "Locked");
    }
    Ok(ExitCode::SUCCESS)
}

/// `airgap man`: the manual page of the whole command line, in roff.
fn cmd_man() -> Result<ExitCode, Report> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .map_err(|e| IoError::report("cannot render the manual page", e))?;
    print_data(&out, "the manual page")
}

/// Writes `bytes` to stdout; a reader that stopped early (`| head`) is not an error.
fn print_data(bytes: &[u8], what: &str) -> Result<ExitCode, Report> {
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(IoError::report(format!("cannot write {what}"), e))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `airgap lock --check`: the changes on stdout, exit 1 when there are any.
fn check_lock(had_lock: bool, changes: &[lock::diff::Change]) -> Result<ExitCode, Report> {
    let mut out = std::io::stdout().lock();
    for c in changes {
        let _ = writeln!(out, "{} {c}", c.kind.verb());
    }
    if !had_lock {
        eprintln!(
            "{:>12} there is no airgap.lock: run `airgap lock`",
            "Outdated"
        );
        return Ok(ExitCode::from(1));
    }
    if changes.is_empty() {
        eprintln!("{:>12} airgap.lock is up to date with upstream", "Checked");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{:>12} airgap.lock is behind upstream: {} {}; `airgap lock --update` takes {}",
            "Outdated",
            changes.len(),
            if changes.len() == 1 {
                "change"
            } else {
                "changes"
            },
            if changes.len() == 1 { "it" } else { "them" },
        );
        Ok(ExitCode::from(1))
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{0}")]
#[diagnostic(code(airgap::usage))]
pub struct UsageError(pub String);

fn cmd_serve(
    dir: &Path,
    addr: SocketAddr,
    verbose: bool,
    limits: crate::serve::connections::Limits,
) -> Result<ExitCode, Report> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| IoError::report("cannot start the async runtime", e))?;
    let options = crate::serve::ServeOptions { verbose, limits };
    runtime
        .block_on(crate::serve::serve(dir, addr, options))
        .map_err(|e| Box::new(e) as Report)?;
    Ok(ExitCode::SUCCESS)
}
