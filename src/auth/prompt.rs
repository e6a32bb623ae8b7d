//! The password prompt of `ringmq passwd`: one line from standard input, with echo off
//! while it is typed when standard input is a terminal (termios), as `mosquitto_passwd`'s
//! get_password.c does; the terminal is restored if SIGINT or SIGTERM ends the process
//! mid-prompt.

use std::io::{BufRead, Write};

/// Prints `text` and reads one line from standard input, without echo when it is a
/// terminal; `None` at the end of the input.
pub(crate) fn prompt(text: &str) -> Option<String> {
    print!("{text}");
    let _ = std::io::stdout().flush();
    let echo_off = EchoOff::on_stdin();
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    drop(echo_off);
    println!();
    match read {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            let end = line.trim_end_matches(['\n', '\r']).len();
            line.truncate(end);
            Some(line)
        }
    }
}

/// The terminal settings to restore, for the SIGINT handler as much as for the guard.
static SAVED_TERMIOS: std::sync::OnceLock<libc::termios> = std::sync::OnceLock::new();

/// Echo turned off on a terminal stdin until dropped (or until SIGINT/SIGTERM, whose
/// handler restores it before exiting, as `mosquitto_passwd` does).
struct EchoOff(bool);

impl EchoOff {
    fn on_stdin() -> EchoOff {
        // SAFETY: isatty, tcgetattr and tcsetattr read or write only the termios struct we
        // pass; `termios` is plain data, so zeroed is a valid value to be overwritten.
        unsafe {
            if libc::isatty(libc::STDIN_FILENO) != 1 {
                return EchoOff(false);
            }
            let mut termios: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut termios) != 0 {
                return EchoOff(false);
            }
            let saved = *SAVED_TERMIOS.get_or_init(|| termios);
            let handler = restore_and_exit as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            EchoOff(libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) == 0)
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let (true, Some(saved)) = (self.0, SAVED_TERMIOS.get()) {
            // SAFETY: restores settings read from this same descriptor.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved) };
        }
    }
}

extern "C" fn restore_and_exit(_signal: libc::c_int) {
    if let Some(saved) = SAVED_TERMIOS.get() {
        // SAFETY: tcsetattr and _exit are async-signal-safe; `saved` was set before the
        // handler was installed and is never written again.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved) };
    }
    // SAFETY: _exit ends the process without running anything that is not signal-safe.
    unsafe { libc::_exit(0) };
}
