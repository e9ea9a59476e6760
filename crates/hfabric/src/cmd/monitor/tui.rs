//! The live terminal: a sampler thread feeds rounds over a channel; this thread draws and
//! reads keys, so q and Ctrl-C answer at once even while a round waits on a slow node.

use super::state::{MonitorState, Observation};
use crate::common::{CliError, CliResult};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;
use std::io::Stdout;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Raw mode and the alternate screen, undone on drop: on quit, on error and on panic unwind.
struct TerminalGuard {
    term: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    fn enter() -> CliResult<TerminalGuard> {
        let fail = |e: std::io::Error| CliError::failed(format!("cannot set up the terminal: {e}"));
        terminal::enable_raw_mode().map_err(fail)?;
        // From here on, dropping the guard restores whatever was set.
        let mut guard = TerminalGuard {
            term: Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(fail)?,
        };
        execute!(guard.term.backend_mut(), EnterAlternateScreen, cursor::Hide).map_err(fail)?;
        guard.term.clear().map_err(fail)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = execute!(self.term.backend_mut(), LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
    }
}

/// Was this key a request to quit (q, Esc, Ctrl-C)?
fn quits(ev: &Event) -> bool {
    let Event::Key(k) = ev else { return false };
    k.kind == KeyEventKind::Press
        && match k.code {
            KeyCode::Char('q') | KeyCode::Esc => true,
            KeyCode::Char('c') => k.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

/// Runs the dashboard until the user quits. `sample` makes one round (blocking).
pub fn run(
    state: &mut MonitorState,
    interval: Duration,
    sample: impl Fn() -> Vec<Observation> + Sync,
) -> CliResult {
    let mut guard = TerminalGuard::enter()?;
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                let started = std::time::Instant::now();
                if tx.send(sample()).is_err() {
                    break;
                }
                // Sleep out the interval in small steps so quitting is prompt.
                while started.elapsed() < interval && !stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        let result = ui_loop(&mut guard, state, &rx);
        stop.store(true, Ordering::Release);
        result
    })
}

fn ui_loop(
    guard: &mut TerminalGuard,
    state: &mut MonitorState,
    rounds: &mpsc::Receiver<Vec<Observation>>,
) -> CliResult {
    let io = |e: std::io::Error| CliError::failed(format!("terminal: {e}"));
    let mut dirty = true;
    loop {
        while let Ok(round) = rounds.try_recv() {
            state.ingest(round);
            dirty = true;
        }
        if dirty {
            guard
                .term
                .draw(|f| super::render::draw(f, state))
                .map_err(io)?;
            dirty = false;
        }
        if event::poll(Duration::from_millis(100)).map_err(io)? {
            let ev = event::read().map_err(io)?;
            if quits(&ev) {
                return Ok(());
            }
            dirty |= matches!(ev, Event::Resize(..));
        }
    }
}
