//! Logging for all four processes: to syslog (LOG_DAEMON, with pid) by
//! default, to stderr with `iked -d`. Every line names the process that wrote
//! it. Verbosity can change at run time (`ikectl log verbose|brief`).

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::ipc::{Role, Verbosity};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Stderr,
    Syslog,
}

enum Sink {
    Stderr,
    Syslog(Box<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>>),
}

struct Logger {
    role: Role,
    sink: Mutex<Sink>,
}

pub fn level_for(verbosity: Verbosity) -> LevelFilter {
    match verbosity {
        Verbosity::Brief => LevelFilter::Info,
        Verbosity::Verbose => LevelFilter::Debug,
        Verbosity::Debug => LevelFilter::Trace,
    }
}

/// Installs the logger for this process. Syslog is connected here, before any
/// chroot, because /dev/log is not reachable from inside one.
pub fn init(role: Role, destination: Destination, verbosity: Verbosity) -> Result<(), String> {
    let sink = match destination {
        Destination::Stderr => Sink::Stderr,
        Destination::Syslog => {
            let formatter = syslog::Formatter3164 {
                facility: syslog::Facility::LOG_DAEMON,
                hostname: None,
                process: "iked".into(),
                pid: std::process::id(),
            };
            match syslog::unix(formatter) {
                Ok(logger) => Sink::Syslog(Box::new(logger)),
                // No syslog daemon: better lines on stderr than none at all.
                Err(_) => Sink::Stderr,
            }
        }
    };
    let logger = Logger {
        role,
        sink: Mutex::new(sink),
    };
    log::set_boxed_logger(Box::new(logger)).map_err(|e| e.to_string())?;
    set_verbosity(verbosity);
    Ok(())
}

pub fn set_verbosity(verbosity: Verbosity) {
    log::set_max_level(level_for(verbosity));
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("{}: {}", self.role, record.args());
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        match &mut *sink {
            Sink::Stderr => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "iked[{}] {}", std::process::id(), line);
            }
            Sink::Syslog(logger) => {
                let _ = match record.level() {
                    Level::Error => logger.err(line),
                    Level::Warn => logger.warning(line),
                    Level::Info => logger.notice(line),
                    Level::Debug => logger.info(line),
                    Level::Trace => logger.debug(line),
                };
            }
        }
    }

    fn flush(&self) {}
}

/// At most `burst` log lines per `interval` for a recurring event, such as
/// one that unauthenticated input can repeat at line rate: the log must not
/// become the attacker's amplifier. The first line of the next interval
/// counts the ones held back. Time is passed in, so the sans-I/O engine can
/// use it with its injected clock.
#[derive(Debug, Clone)]
pub struct RateLimit {
    burst: u32,
    interval: Duration,
    window: Option<Instant>,
    lines: u32,
    held_back: u64,
}

impl RateLimit {
    pub const fn new(burst: u32, interval: Duration) -> RateLimit {
        RateLimit {
            burst,
            interval,
            window: None,
            lines: 0,
            held_back: 0,
        }
    }

    /// Some(lines held back before this one) when a line may go out now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.window {
            Some(start) if now.saturating_duration_since(start) < self.interval => {
                if self.lines >= self.burst {
                    self.held_back += 1;
                    return None;
                }
                self.lines += 1;
            }
            _ => {
                self.window = Some(now);
                self.lines = 1;
            }
        }
        Some(std::mem::take(&mut self.held_back))
    }
}

/// " (N more like it not logged)", or nothing when none were held back.
pub fn held_back_text(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more like it not logged)")
    }
}
