//! Why a step must run: [`StaleReason`], typed where the staleness is found (a changed key
//! input, a missing output, a dependency that will be rebuilt) and rendered in one sentence
//! only at the edge (`airgap plan`, `apply --dry-run`), as cargo's `DirtyReason` is.

use std::fmt;

/// Why a step is stale. Each variant carries what its sentence names (a step's description,
/// an image, a URL…); [`fmt::Display`] gives the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleReason {
    /// The state has no record of the step.
    NeverBuilt,
    /// The step's status was not computed (a step of no level).
    NotEvaluated,
    /// A dependency (named by its description) is stale, so this step's inputs will change.
    InputWillBeRebuilt {
        input: String,
    },
    /// The schema number of the key changed: airgap writes outputs differently now.
    FormatChanged,
    /// The lock entry a step reads (a devfile, a stack yaml, the extra entries, a stack
    /// artifact) changed.
    Changed {
        step: String,
    },
    /// What a devfile uses (its icon, its parent) was locked differently.
    UsesChanged {
        step: String,
    },
    /// The files packed into a stack version's archive changed (the stack id in words).
    ArchiveFilesChanged {
        stack: String,
    },
    ImageRelocked {
        image: String,
    },
    ProjectRelocked {
        step: String,
    },
    SourceRelocked {
        source: String,
    },
    DownloadRelocked {
        url: String,
    },
    SampleRelocked {
        step: String,
    },
    /// The stacks and samples `last_modified.json` or `index.json` list changed.
    MembersChanged {
        step: String,
    },
    /// The lock's base image of the index image changed.
    IndexBaseRelocked {
        step: String,
    },
    /// The target or the options in the step's configuration changed.
    ConfigChanged {
        step: String,
    },
    /// Dependencies' outputs changed: the first (by description) and how many more.
    InputChanged {
        input: String,
        more: usize,
    },
    /// The index image's base image was rebuilt to other content.
    IndexBaseChanged {
        base: String,
    },
    /// The index image's registry tree changed: its first changed part and how many more.
    TreeChanged {
        first: String,
        more: usize,
    },
    /// The key changed in no part that can be named.
    InputsChanged,
    /// A recorded image is not at the target anymore.
    ImageMissing {
        image: String,
    },
    /// A downloaded file is not in the cache anymore.
    DownloadMissing {
        url: String,
    },
    /// A source's content is not in the cache anymore.
    SourceMissing {
        source: String,
    },
    /// An image-like output of the step (a stack artifact, the index image) is not at the
    /// target anymore.
    MissingAtTarget {
        step: String,
    },
    /// A file the step wrote is gone or has another size.
    OutputMissing {
        step: String,
    },
    /// A file the step wrote has other content than it wrote (same size).
    OutputChanged {
        file: String,
    },
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaleReason::NeverBuilt => write!(f, "never built"),
            StaleReason::NotEvaluated => write!(f, "not evaluated"),
            StaleReason::InputWillBeRebuilt { input } => {
                write!(f, "its input {input} will be rebuilt")
            }
            StaleReason::FormatChanged => {
                write!(f, "airgap's output format changed since it was built")
            }
            StaleReason::Changed { step } => write!(f, "{step} changed"),
            StaleReason::UsesChanged { step } => write!(f, "what {step} uses changed"),
            StaleReason::ArchiveFilesChanged { stack } => {
                write!(f, "files packed with {stack} changed")
            }
            StaleReason::ImageRelocked { image } => {
                write!(f, "image {image} was locked to a new digest")
            }
            StaleReason::ProjectRelocked { step } => {
                write!(f, "{step} was locked to a new revision")
            }
            StaleReason::SourceRelocked { source } => {
                write!(f, "source {source} was locked to a new commit")
            }
            StaleReason::DownloadRelocked { url } => write!(f, "{url} was locked to new content"),
            StaleReason::SampleRelocked { step } => write!(f, "{step} was locked to a new commit"),
            StaleReason::MembersChanged { step } => {
                write!(f, "the set of stacks and samples of {step} changed")
            }
            StaleReason::IndexBaseRelocked { step } => write!(f, "the base of the {step} changed"),
            StaleReason::ConfigChanged { step } => {
                write!(f, "the target or options of {step} changed")
            }
            StaleReason::InputChanged { input, more: 0 } => write!(f, "its input {input} changed"),
            StaleReason::InputChanged { input, more } => {
                write!(f, "its input {input} and {more} more changed")
            }
            StaleReason::IndexBaseChanged { base } => write!(f, "its base {base} changed"),
            StaleReason::TreeChanged { first, more: 0 } => {
                write!(f, "the registry tree changed ({first})")
            }
            StaleReason::TreeChanged { first, more } => {
                write!(f, "the registry tree changed ({first} and {more} more)")
            }
            StaleReason::InputsChanged => write!(f, "its inputs changed"),
            StaleReason::ImageMissing { image } => {
                write!(f, "image {image} is missing at the target")
            }
            StaleReason::DownloadMissing { url } => write!(f, "{url} is missing from the cache"),
            StaleReason::SourceMissing { source } => {
                write!(f, "source {source} is missing from the cache")
            }
            StaleReason::MissingAtTarget { step } => {
                write!(f, "the {step} is missing at the target")
            }
            StaleReason::OutputMissing { step } => {
                write!(f, "an output of {step} is missing or was changed")
            }
            StaleReason::OutputChanged { file } => {
                write!(f, "`{file}` was changed since it was written")
            }
        }
    }
}
