//! The errors every command shares: [`Report`] (any diagnostic, boxed), [`IoError`] (what could
//! not be done, with the I/O error that stopped it) and [`UsageError`] (the command line asked
//! for something that cannot be; it exits 2, as clap's own usage errors do).
//!
//! This module depends on nothing else of airgap, so any layer may return these.

/// Any diagnostic, as the commands return it; `cli` renders it and picks the exit code.
pub type Report = Box<dyn miette::Diagnostic + Send + Sync>;

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

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{0}")]
#[diagnostic(code(airgap::usage))]
pub struct UsageError(pub String);
