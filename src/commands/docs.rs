//! `airgap completions SHELL` and `airgap man`: the command line's own documentation, rendered
//! from its clap definition (which `cli` passes in) to stdout.

use std::io::Write as _;
use std::process::ExitCode;

use crate::error::{IoError, Report};

/// `airgap completions SHELL`: the completion script of `cmd` for `shell`.
pub fn completions(
    shell: clap_complete::Shell,
    cmd: &mut clap::Command,
) -> Result<ExitCode, Report> {
    let mut out = Vec::new();
    clap_complete::generate(shell, cmd, "airgap", &mut out);
    print_data(&out, "the completion script")
}

/// `airgap man`: the manual page of the whole command line `cmd`, in roff.
pub fn man(cmd: clap::Command) -> Result<ExitCode, Report> {
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
