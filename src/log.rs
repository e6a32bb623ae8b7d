//! Log lines in Mosquitto's shape (`1700000000: New connection from ...`), written to
//! standard error. The level is set once at start-up; per-packet lines (`-v`) are checked
//! with one relaxed load, so they cost nothing when off.

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(Level::Notice as u8);

/// Log levels, most severe first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[repr(u8)]
pub enum Level {
    Error = 0,
    Warning = 1,
    /// Start-up, listeners, shutdown: written without `-v`.
    Notice = 2,
    /// Connections and disconnections: written with `-v`.
    Information = 3,
    /// Every packet: written with `-v`.
    Debug = 4,
}

/// Sets the most verbose level that is written.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether lines at `level` are written.
#[inline]
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line now.
pub fn write(args: std::fmt::Arguments<'_>) {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    eprintln!("{secs}: {args}");
}

/// Logs a line at a level: `log!(Notice, "Opening listen socket on {}", addr)`.
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::$level) {
            $crate::log::write(format_args!($($arg)*));
        }
    };
}
