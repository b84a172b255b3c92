//! Progress on stderr: indicatif bars (images done, bytes moved, one line per image in flight)
//! on a terminal; plain lines otherwise. stdout is never written.
//!
//! As cargo does it: the bars appear only once there is work (a no-op shows none) and are
//! cleared by [`Progress::finish`], so the command's summary is the last line on screen; lines
//! have one status column (`     Copying …`, `      Copied …`); in plain mode a long copy prints
//! a `Transferred` line with bytes and throughput every few seconds.
//!
//! The caller chooses the words ([`Verbs`]): an image copied from upstream is `Copying` /
//! `Copied`, one built here is `Writing` / `Wrote` into an OCI layout and `Pushing` / `Pushed`
//! to a registry; one found already there ends `Unchanged … : already there`.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often plain mode says how far a copy is.
const TICK: Duration = Duration::from_secs(5);

/// The status words of one image's lines: while it is in flight, and once it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verbs {
    pub(crate) doing: &'static str,
    pub(crate) done: &'static str,
}

impl Verbs {
    pub(crate) const COPY: Verbs = Verbs {
        doing: "Copying",
        done: "Copied",
    };
    pub(crate) const WRITE: Verbs = Verbs {
        doing: "Writing",
        done: "Wrote",
    };
    pub(crate) const PUSH: Verbs = Verbs {
        doing: "Pushing",
        done: "Pushed",
    };
}

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
    /// Whether the bars were added to the display (on the first image).
    shown: std::sync::Once,
    /// Set by [`Progress::finish`]: the plain-mode throughput ticker stops.
    done: Arc<std::sync::atomic::AtomicBool>,
    ticker: std::sync::Once,
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
        let images = ProgressBar::hidden();
        images.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} images")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        images.set_prefix("images");
        let bytes = ProgressBar::hidden();
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
                shown: std::sync::Once::new(),
                done: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                ticker: std::sync::Once::new(),
            })),
        }
    }

    /// Progress on this process's stderr.
    pub fn stderr() -> Self {
        Progress::new(MultiProgress::new())
    }

    pub(crate) fn add_images(&self, n: u64) {
        if let Some(i) = &self.inner {
            i.shown.call_once(|| {
                if !i.plain {
                    i.images.set_draw_target(ProgressDrawTarget::hidden());
                    i.multi.add(i.images.clone());
                    i.multi.add(i.bytes.clone());
                }
            });
            i.images.inc_length(n);
        }
    }

    /// Clears the bars (the command's summary is printed after): nothing stays on screen.
    pub fn finish(&self) {
        if let Some(i) = &self.inner {
            i.done.store(true, std::sync::atomic::Ordering::Relaxed);
            i.images.finish_and_clear();
            i.bytes.finish_and_clear();
            let _ = i.multi.clear();
        }
    }

    /// In plain mode, a `Transferred` line every few seconds while bytes are moving.
    fn start_ticker(&self) {
        let Some(i) = &self.inner else { return };
        if !i.plain {
            return;
        }
        i.ticker.call_once(|| {
            let bytes = i.bytes.clone();
            let done = i.done.clone();
            std::thread::spawn(move || {
                let mut last = (bytes.position(), std::time::Instant::now());
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    let now = (bytes.position(), std::time::Instant::now());
                    if now.0 > last.0 && !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let rate = (now.0 - last.0) as f64 / (now.1 - last.1).as_secs_f64();
                        eprintln!(
                            "{:>12} {} of {} ({}/s)",
                            "Transferred",
                            indicatif::HumanBytes(now.0),
                            indicatif::HumanBytes(bytes.length().unwrap_or(0)),
                            indicatif::HumanBytes(rate as u64)
                        );
                    }
                    last = now;
                }
            });
        });
    }

    /// One image starts: a spinner line until it is done.
    pub(crate) fn start(&self, verbs: Verbs, what: String) -> ImageProgress {
        let Some(inner) = &self.inner else {
            return ImageProgress {
                bar: None,
                progress: self.clone(),
                verbs,
                what,
            };
        };
        if inner.plain {
            eprintln!("{:>12} {what}", verbs.doing);
            return ImageProgress {
                bar: None,
                progress: self.clone(),
                verbs,
                what,
            };
        }
        let bar = inner.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("{} {what}", verbs.doing));
        bar.enable_steady_tick(Duration::from_millis(120));
        ImageProgress {
            bar: Some(bar),
            progress: self.clone(),
            verbs,
            what,
        }
    }

    pub(crate) fn add_bytes_total(&self, n: u64) {
        if let Some(i) = &self.inner {
            i.bytes.inc_length(n);
        }
        self.start_ticker();
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
    verbs: Verbs,
    what: String,
}

impl ImageProgress {
    /// The image landed; `summary` says what it took.
    pub(crate) fn done(self, summary: &str) {
        let verb = self.verbs.done;
        self.finish(verb, summary);
    }

    /// The image was at the destination already: nothing was copied.
    pub(crate) fn already_there(self) {
        self.finish("Unchanged", "already there");
    }

    fn finish(&self, verb: &str, summary: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(inner) = &self.progress.inner {
            inner.images.inc(1);
            if inner.plain {
                eprintln!("{verb:>12} {}: {summary}", self.what);
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
