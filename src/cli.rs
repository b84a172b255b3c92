//! The command line: each subcommand calls one function of the engine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "airgap", version, about = "Build an offline devfile registry")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a built folder: the devfile registry REST API and a read-only OCI registry.
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
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => ExitCode::SUCCESS,
        Some(Command::Serve { dir, addr, verbose }) => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let options = crate::serve::ServeOptions { verbose };
            match runtime.block_on(crate::serve::serve(&dir, addr, options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{:?}", miette::Report::new(e));
                    ExitCode::FAILURE
                }
            }
        }
    }
}
