//! The one status line of a long operation (`husk image import`, `husk
//! update apply`): on a terminal, one line on stderr rewritten in place with
//! `\r` (and spaces over what is left of the longer line before: no cursor
//! escapes), at most every [`REDRAW`] so a 115200-baud console is not
//! flooded, and cleared at the end, before the command's summary line.
//! Anywhere else (a pipe, a log, `TERM=dumb`) it writes nothing: the
//! summary line is all.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

/// The shortest time between two redraws.
pub const REDRAW: Duration = Duration::from_millis(250);
/// The widest line drawn (a column is left for the cursor).
pub const WIDTH: usize = 79;

/// A status line, drawn on a terminal only.
pub struct Progress {
    out: Option<Box<dyn Write>>,
    /// Characters on the line now.
    drawn: usize,
    last: Option<Instant>,
}

impl Progress {
    /// On stderr, if it is a terminal whose `TERM` is set and not `dumb`.
    pub fn stderr() -> Self {
        let live = io::stderr().is_terminal()
            && std::env::var_os("TERM").is_some_and(|term| !term.is_empty() && term != "dumb");
        Self::new(live.then(|| Box::new(io::stderr()) as Box<dyn Write>))
    }

    /// On `out`, or nowhere.
    pub fn new(out: Option<Box<dyn Write>>) -> Self {
        Self {
            out,
            drawn: 0,
            last: None,
        }
    }

    /// Shows `line` instead of the last one, unless one was drawn less than
    /// [`REDRAW`] ago (then it is dropped: a newer one comes).
    pub fn show(&mut self, line: &str) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < REDRAW)
        {
            return;
        }
        self.last = Some(now);
        self.draw(line);
    }

    /// Clears the line (the summary follows on a clean one).
    pub fn finish(&mut self) {
        if self.drawn > 0 {
            self.draw("");
            self.drawn = 0;
        }
    }

    fn draw(&mut self, line: &str) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let line: String = line
            .chars()
            .filter(|c| !c.is_control())
            .take(WIDTH)
            .collect();
        let width = line.chars().count();
        let pad = self.drawn.saturating_sub(width);
        let text = match pad {
            0 => format!("\r{line}"),
            pad => format!("\r{line}{:pad$}\r{line}", ""),
        };
        // A terminal that went away is no reason to fail the operation.
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        self.drawn = width;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn one_line_rewritten_in_place_at_most_every_redraw() {
        let shared = Shared::default();
        let mut progress = Progress::new(Some(Box::new(shared.clone())));
        progress.show("layer 1/2: 10K");
        // Too soon: dropped.
        progress.show("layer 1/2: 20K");
        assert_eq!(shared.text(), "\rlayer 1/2: 10K");
        std::thread::sleep(REDRAW);
        progress.show("done\n\x1b");
        // The shorter line covers the longer one's end with spaces; no
        // control characters get through.
        let drawn = format!("\rlayer 1/2: 10K\rdone{}\rdone", " ".repeat(10));
        assert_eq!(shared.text(), drawn);
        drop(progress);
        assert_eq!(shared.text(), format!("{drawn}\r    \r"));
        let long = "x".repeat(200);
        let shared = Shared::default();
        let mut progress = Progress::new(Some(Box::new(shared.clone())));
        progress.show(&long);
        progress.finish();
        progress.finish();
        let cleared = format!("\r{}\r", " ".repeat(WIDTH));
        assert_eq!(shared.text(), format!("\r{}{cleared}", "x".repeat(WIDTH)));
    }

    #[test]
    fn nowhere_but_on_a_terminal() {
        let mut progress = Progress::new(None);
        progress.show("anything");
        progress.finish();
        // Under cargo test stderr is captured or a pipe: never a terminal
        // here, unless run by hand on one.
        if !io::stderr().is_terminal() {
            assert!(Progress::stderr().out.is_none());
        }
    }
}
