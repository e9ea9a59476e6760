//! Log lines a person can read: to stderr, coloured only on a terminal, and drawn above the
//! progress bars instead of through them.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

/// Every progress bar of this process lives here, so a log line can suspend them while it
/// is written (no torn bars, no stale half-drawn lines).
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Sets up `tracing` on stderr: `RUST_LOG` or `default_level`; ANSI colour only when stderr
/// is a terminal (a redirected log holds plain text).
pub fn init(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| LogWriter)
        .init();
}

/// stderr, with the progress bars lifted while a line is written.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bars().suspend(|| std::io::stderr().lock().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A progress bar that is wiped from the screen when dropped (finished or not).
pub struct Progress(ProgressBar);

impl std::ops::Deref for Progress {
    type Target = ProgressBar;
    fn deref(&self) -> &ProgressBar {
        &self.0
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
        bars().remove(&self.0);
    }
}

/// A bar of `len` steps labelled `what`; hidden when `hidden` or stderr is not a terminal.
pub fn progress(hidden: bool, len: u64, what: &str) -> Progress {
    if hidden || !std::io::stderr().is_terminal() {
        return Progress(ProgressBar::hidden());
    }
    let bar = bars().add(ProgressBar::new(len));
    let style = ProgressStyle::with_template("{msg:>28} [{bar:40}] {percent:>3}% {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    Progress(bar)
}
