//! The command line: clap's definition of the arguments, and dispatch to one function of
//! [`crate::commands`] per subcommand; the error a command returns is rendered here. stdout
//! carries data (plans, JSON); stderr carries progress and diagnostics.
//!
//! Exit codes: 0 success; 1 the command failed (a diagnostic says why); 2 the command line
//! was wrong (clap's usage error).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::error::Report;
use crate::machine::Format;
use crate::manifest;

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
    /// `text` (lines for people) or `json`: one document on stdout when the command ends,
    /// for `lock`, `plan`, `apply`, `verify`, `audit`, `push` and `prune` (schemas in
    /// `schema/output/`). Exit codes are the same either way.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print only errors (no progress or status lines).
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also print a line for each step that needed nothing, and other detail.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// Colour on stderr: `auto` (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces
    /// it), `always` or `never`.
    #[arg(long, global = true, value_enum, default_value_t = crate::ui::Color::Auto, value_name = "WHEN")]
    pub color: crate::ui::Color,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve airgap.kdl into airgap.lock: every git commit, image digest and archive hash.
    ///
    /// Pins already in airgap.lock are kept while their request is unchanged; `--update` moves
    /// them. The lockfile is not rewritten when nothing changed.
    ///
    /// With `images { platforms }`, an index that keeps only some of its platforms lands as a
    /// filtered index of its own, recorded in the image's entry (`filtered`); an image that
    /// has none of the platforms is a warning naming it and the stacks that use it.
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
        /// Fail (exit 1, airgap.lock untouched) when an image has none of the platforms of
        /// `images { platforms }`. Without it such an image is a warning, and apply copies it
        /// as it is (every platform it has).
        #[arg(long)]
        strict: bool,
    },
    /// Show every step of apply, fresh or stale, with the reason each stale step must run.
    Plan {
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
        /// Run steps whether they are stale or not: all of them, or those named (a step's id
        /// as `plan --format json` gives it, its description as `plan` prints it, or a kind:
        /// `image`, `devfile`, `archive`, `stack-artifact`, `index-image`…). A step rebuilt
        /// to the same bytes leaves the steps after it fresh.
        #[arg(long, value_name = "STEP", num_args = 0..)]
        force: Option<Vec<String>>,
    },
    /// Remove from the target the images airgap placed that no step places any more.
    ///
    /// A stack dropped from the manifest leaves its images and stack artifacts at the target,
    /// and a rebuilt index image leaves its old manifest: prune removes them — only images
    /// airgap recorded placing, never others in a shared target. A `dir:` target also loses
    /// the blobs no image uses; a registry needs deletes enabled (its garbage collection frees
    /// the blobs). `plan` lists what prune would remove.
    Prune {
        /// List what would be removed and change nothing.
        #[arg(long)]
        dry_run: bool,
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
    /// DIR is the folder of a `dir:` target (an OCI image layout plus `registry/`). The folder
    /// is read again on SIGHUP and, when it is the manifest's `dir:` target, each time an
    /// `airgap apply` (or `prune`) of it finishes; requests under way finish on the previous
    /// contents, and a folder that does not load keeps them served.
    Serve {
        /// The output folder of a `dir:` target [default: the manifest's `dir:` target when
        /// there is one, else the current folder].
        dir: Option<PathBuf>,
        /// Where to listen; port 0 picks a free port (printed on stderr).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Print one line per request on stderr.
        #[arg(long, short)]
        verbose: bool,
        /// Seconds a client has to send a request's headers (and, with TLS, to finish the
        /// handshake); also closes connections idle that long between requests.
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
        /// Serve HTTPS with this certificate (PEM, leaf first, then its chain).
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM PKCS#8, `BEGIN PRIVATE KEY`).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
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

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::machine::init(cli.format);
    crate::ui::init(
        if cli.quiet {
            crate::ui::Verbosity::Quiet
        } else if cli.verbose {
            crate::ui::Verbosity::Verbose
        } else {
            crate::ui::Verbosity::Normal
        },
        cli.color,
    );
    let jobs = cli.jobs.unwrap_or_else(default_jobs);
    let result = match &cli.command {
        Command::Lock {
            update,
            locked,
            check,
            strict,
        } => commands::lock::run(
            &cli.manifest,
            update.as_deref(),
            *locked,
            *check,
            *strict,
            jobs,
        ),
        Command::Plan { stale, bundle } => {
            commands::plan::run(&cli.manifest, *stale, jobs, bundle.as_deref())
        }
        Command::Apply {
            locked,
            dry_run,
            bundle,
            force,
        } => commands::apply::run(
            &cli.manifest,
            &commands::apply::ApplyOptions {
                locked: *locked,
                dry_run: *dry_run,
                jobs,
                bundle: bundle.as_deref(),
                force: force.as_deref(),
            },
        ),
        Command::Push {
            dir,
            to,
            tls,
            ca_file,
        } => commands::push::run(
            dir,
            &commands::push::PushOptions {
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
            tls_cert,
            tls_key,
        } => {
            let limits = crate::serve::connections::Limits {
                header_timeout: std::time::Duration::from_secs(*header_timeout),
                idle_timeout: std::time::Duration::from_secs(*idle_timeout),
                max_connections: usize::try_from(*max_connections).unwrap_or(usize::MAX),
            };
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(crate::serve::tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            };
            let options = crate::serve::ServeOptions {
                verbose: *verbose,
                limits,
                tls,
                watch: None,
            };
            commands::serve::run(&cli.manifest, dir.as_deref(), *addr, options)
        }
        Command::Init { target } => {
            commands::init::run(&cli.manifest, target).map_err(|e| Box::new(e) as Report)
        }
        Command::Completions { shell } => {
            commands::docs::completions(*shell, &mut <Cli as clap::CommandFactory>::command())
        }
        Command::Man => commands::docs::man(<Cli as clap::CommandFactory>::command()),
        Command::Verify => commands::verify::run(&cli.manifest, jobs),
        Command::Prune { dry_run } => commands::prune::run(&cli.manifest, *dry_run, jobs),
        Command::Audit => commands::audit::run(&cli.manifest, jobs),
    };
    let name = cli.command.name();
    match result {
        Ok(code) => {
            if let Some(name) = name {
                crate::machine::finish(name, u8::from(code != ExitCode::SUCCESS), None);
            }
            code
        }
        Err(report) => {
            eprintln!("{}", render(report.as_ref()));
            // Usage errors exit 2, as clap's own do; every other failure exits 1.
            let code = report.code().map(|c| c.to_string());
            let exit = if code.as_deref() == Some("airgap::usage") {
                2
            } else {
                1
            };
            if let Some(name) = name {
                let error = (
                    code.unwrap_or_default(),
                    crate::diag::render_plain(report.as_ref()),
                );
                crate::machine::finish(name, exit, Some(error));
            }
            ExitCode::from(exit)
        }
    }
}

impl Command {
    /// The name of a command that has a `--format json` document.
    fn name(&self) -> Option<&'static str> {
        Some(match self {
            Command::Lock { .. } => "lock",
            Command::Plan { .. } => "plan",
            Command::Apply { .. } => "apply",
            Command::Push { .. } => "push",
            Command::Verify => "verify",
            Command::Audit => "audit",
            Command::Prune { .. } => "prune",
            _ => return None,
        })
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 4)
        .unwrap_or(8)
        .clamp(4, 32)
}

/// Renders a diagnostic for stderr: graphical with colour on a terminal, plain otherwise.
pub fn render(d: &dyn miette::Diagnostic) -> String {
    if crate::ui::colored() {
        let mut out = String::new();
        let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode());
        if handler.render_report(&mut out, d).is_ok() {
            return out;
        }
    }
    crate::diag::render_plain(d)
}
