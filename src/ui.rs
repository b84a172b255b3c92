//! What the commands print for people on stderr, and how: status lines in cargo's form
//! (`{verb:>12} {message}`), silenced by `-q`; more lines with `-v`; colour by `--color`
//! (`auto`: on a terminal, unless `NO_COLOR` is set; `CLICOLOR_FORCE` forces it, as
//! <https://bixense.com/clicolors/> and <https://no-color.org> say). Diagnostics and the
//! final error are always printed.

use std::sync::OnceLock;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Color {
    #[default]
    Auto,
    Always,
    Never,
}

/// How much the commands say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    /// `-q`: errors only.
    Quiet,
    #[default]
    Normal,
    /// `-v`: also a line per step that needed nothing, and other detail.
    Verbose,
}

static SETTINGS: OnceLock<(Verbosity, bool)> = OnceLock::new();

/// Sets verbosity and colour for this process (once, from the command line).
pub fn init(verbosity: Verbosity, color: Color) {
    let colored = match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0");
            if set("CLICOLOR_FORCE") {
                true
            } else if std::env::var_os("NO_COLOR").is_some_and(|x| !x.is_empty()) {
                false
            } else {
                std::io::IsTerminal::is_terminal(&std::io::stderr())
            }
        }
    };
    let _ = SETTINGS.set((verbosity, colored));
}

pub fn verbosity() -> Verbosity {
    SETTINGS.get().map(|s| s.0).unwrap_or_default()
}

/// Whether stderr gets colour.
pub fn colored() -> bool {
    SETTINGS.get().is_some_and(|s| s.1)
}

/// A status line, `{verb:>12} {message}`, unless `-q`.
pub fn status(verb: &str, message: impl std::fmt::Display) {
    if verbosity() >= Verbosity::Normal {
        eprintln!("{verb:>12} {message}");
    }
}

/// A status line only with `-v`.
pub fn detail(verb: &str, message: impl std::fmt::Display) {
    if verbosity() >= Verbosity::Verbose {
        eprintln!("{verb:>12} {message}");
    }
}

/// `1 blob`, `2 blobs`, `0 blobs`: a count and its noun, plural unless the count is one.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
