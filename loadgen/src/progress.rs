//! The live progress line: rewritten in place once a second on a terminal, printed as
//! plain lines otherwise (logs, CI). Always on stderr, so stdout keeps only the summary.

use std::io::{IsTerminal, Write};

pub struct Progress {
    enabled: bool,
    tty: bool,
    drawn: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress { enabled: !quiet, tty: std::io::stderr().is_terminal(), drawn: false }
    }

    pub fn show(&mut self, line: &str) {
        if !self.enabled {
            return;
        }
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[2K{line}");
            self.drawn = true;
        } else {
            let _ = writeln!(e, "{line}");
        }
        let _ = e.flush();
    }

    /// Ends the in-place line before anything else is printed.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}
