//! Progress on stderr: indicatif bars (images done, bytes moved, one line per image in flight)
//! on a terminal; plain lines otherwise. stdout is never written.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes. Cheap to clone; `Progress::hidden()` reports nothing.
#[derive(Clone, Default)]
pub struct Progress {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    multi: MultiProgress,
    images: ProgressBar,
    bytes: ProgressBar,
    plain: bool,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.inner.is_some() {
            "Progress(stderr)"
        } else {
            "Progress(hidden)"
        })
    }
}

impl Progress {
    pub fn hidden() -> Self {
        Progress { inner: None }
    }

    /// Bars on `multi` (the caller's, so its other bars stay in one display), or plain lines
    /// when stderr is not a terminal.
    pub fn new(multi: MultiProgress) -> Self {
        let plain = !std::io::stderr().is_terminal();
        if plain {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let images = multi.add(ProgressBar::new(0));
        images.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} images")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        images.set_prefix("images");
        let bytes = multi.add(ProgressBar::new(0));
        bytes.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bytes.set_prefix("bytes");
        Progress {
            inner: Some(Arc::new(Inner {
                multi,
                images,
                bytes,
                plain,
            })),
        }
    }

    /// Progress on this process's stderr.
    pub fn stderr() -> Self {
        Progress::new(MultiProgress::new())
    }

    pub(crate) fn add_images(&self, n: u64) {
        if let Some(i) = &self.inner {
            i.images.inc_length(n);
        }
    }

    /// One image starts: a spinner line until it is done.
    pub(crate) fn start(&self, what: String) -> ImageProgress {
        let Some(inner) = &self.inner else {
            return ImageProgress {
                bar: None,
                progress: self.clone(),
                what,
            };
        };
        if inner.plain {
            eprintln!("copying {what}");
            return ImageProgress {
                bar: None,
                progress: self.clone(),
                what,
            };
        }
        let bar = inner.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(what.clone());
        bar.enable_steady_tick(Duration::from_millis(120));
        ImageProgress {
            bar: Some(bar),
            progress: self.clone(),
            what,
        }
    }

    pub(crate) fn add_bytes_total(&self, n: u64) {
        if let Some(i) = &self.inner {
            i.bytes.inc_length(n);
        }
    }

    pub(crate) fn bytes(&self, n: u64) {
        if let Some(i) = &self.inner {
            i.bytes.inc(n);
        }
    }

    /// Takes back bytes counted for an attempt that failed and will be retried.
    pub(crate) fn unbytes(&self, n: u64) {
        if let Some(i) = &self.inner {
            i.bytes.set_position(i.bytes.position().saturating_sub(n));
        }
    }

    pub(crate) fn note(&self, line: String) {
        if let Some(i) = &self.inner {
            if i.plain {
                eprintln!("{line}");
            } else {
                i.multi.suspend(|| eprintln!("{line}"));
            }
        }
    }
}

/// One image in flight.
pub(crate) struct ImageProgress {
    bar: Option<ProgressBar>,
    progress: Progress,
    what: String,
}

impl ImageProgress {
    pub(crate) fn done(self, summary: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(inner) = &self.progress.inner {
            inner.images.inc(1);
            if inner.plain {
                eprintln!("copied {}: {summary}", self.what);
            }
        }
    }
}

impl Drop for ImageProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
