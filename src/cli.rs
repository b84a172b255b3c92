//! The command line: each subcommand calls one function of the engine.

use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
