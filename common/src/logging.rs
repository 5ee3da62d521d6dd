//! Logging for all four processes: to syslog (LOG_DAEMON unless
//! `iked --syslog-facility` says otherwise, with pid) by default, to stderr
//! with `iked -d`. Every line names the process that wrote it. Verbosity can
//! change at run time (`ikectl log verbose|brief`).
//!
//! Four processes share one stderr and one syslog: each record is formatted
//! whole into one buffer and leaves in ONE write(2) or send(2), never in
//! pieces that another process's line could land between. A record is at
//! most [`MAX_LINE`] bytes (longer ones are cut with [`TRUNCATED`]), below
//! PIPE_BUF, so a write to a pipe is atomic. Control characters in a
//! message (a peer's identity, a kernel's text) are escaped, so nobody can
//! end our line and forge one of their own. The syslog socket is
//! non-blocking: a syslog that cannot keep up loses lines (counted, and
//! said on the next line that gets through) rather than stall IKE.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::ipc::{Role, Verbosity};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Stderr,
    Syslog,
}

/// Longest record, prefix and newline included: well below PIPE_BUF (4096
/// on Linux), so that a write of one line to a pipe is never split, and
/// within what every syslog daemon takes in one datagram.
pub const MAX_LINE: usize = 2048;

/// Ends a line that was cut at [`MAX_LINE`].
pub const TRUNCATED: &str = "...[truncated]";

/// The socket of the local syslog daemon.
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";

/// A syslog facility (RFC 5424 §6.2.1; the names of syslog(3)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

impl Facility {
    pub const DAEMON: Facility = Facility(3);

    const NAMES: [(&'static str, u8); 20] = [
        ("kern", 0),
        ("user", 1),
        ("mail", 2),
        ("daemon", 3),
        ("auth", 4),
        ("syslog", 5),
        ("lpr", 6),
        ("news", 7),
        ("uucp", 8),
        ("cron", 9),
        ("authpriv", 10),
        ("ftp", 11),
        ("local0", 16),
        ("local1", 17),
        ("local2", 18),
        ("local3", 19),
        ("local4", 20),
        ("local5", 21),
        ("local6", 22),
        ("local7", 23),
    ];

    /// `daemon`, `local3`, ... (case-insensitive, an optional `log_`
    /// prefix as in LOG_LOCAL3).
    pub fn from_name(name: &str) -> Result<Facility, String> {
        let lower = name.to_ascii_lowercase();
        let bare = lower.strip_prefix("log_").unwrap_or(&lower);
        Facility::NAMES
            .iter()
            .find(|(n, _)| *n == bare)
            .map(|(_, code)| Facility(*code))
            .ok_or_else(|| {
                let known: Vec<&str> = Facility::NAMES.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown syslog facility {name:?} (known: {})",
                    known.join(", ")
                )
            })
    }

    pub fn name(self) -> &'static str {
        Facility::NAMES
            .iter()
            .find(|(_, code)| *code == self.0)
            .map(|(n, _)| *n)
            .unwrap_or("daemon")
    }

    pub fn code(self) -> u8 {
        self.0
    }
}

/// Where syslog lines go and under which facility: from the command line
/// (`--syslog-facility`, `--syslog-socket`), the same in all four processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSettings {
    pub facility: Facility,
    pub socket: PathBuf,
}

impl Default for SyslogSettings {
    fn default() -> SyslogSettings {
        SyslogSettings {
            facility: Facility::DAEMON,
            socket: PathBuf::from(DEFAULT_SYSLOG_SOCKET),
        }
    }
}

static SYSLOG_SETTINGS: OnceLock<SyslogSettings> = OnceLock::new();

/// Sets the syslog facility and socket for [`init`]; call once, before it.
/// Later calls are ignored (the settings do not change while we run).
pub fn configure_syslog(settings: SyslogSettings) {
    let _ = SYSLOG_SETTINGS.set(settings);
}

/// The settings [`configure_syslog`] set, or the defaults.
pub fn syslog_settings() -> SyslogSettings {
    SYSLOG_SETTINGS.get_or_init(SyslogSettings::default).clone()
}

/// Lines the syslog socket did not take (full, or gone) since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Of those, how many have already been said on a later line.
static DROPPED_REPORTED: AtomicU64 = AtomicU64::new(0);

/// Log lines this process lost because syslog did not take them.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

enum Sink {
    Stderr,
    Syslog {
        socket: UnixDatagram,
        facility: Facility,
    },
}

struct Logger {
    role: Role,
    pid: u32,
    sink: Sink,
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
            let settings = SYSLOG_SETTINGS.get_or_init(SyslogSettings::default);
            match connect_syslog(&settings.socket) {
                Ok(socket) => {
                    // Loads the time zone now: inside the chroot
                    // /etc/localtime is out of reach.
                    let _ = local_timestamp();
                    Sink::Syslog {
                        socket,
                        facility: settings.facility,
                    }
                }
                // No syslog daemon: better lines on stderr than none at all.
                Err(_) => Sink::Stderr,
            }
        }
    };
    let logger = Logger {
        role,
        pid: std::process::id(),
        sink,
    };
    log::set_boxed_logger(Box::new(logger)).map_err(|e| e.to_string())?;
    set_verbosity(verbosity);
    Ok(())
}

fn connect_syslog(path: &Path) -> std::io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)?;
    // A syslog daemon that does not read must never stop IKE: a full
    // socket loses the line (counted) instead.
    socket.set_nonblocking(true)?;
    Ok(socket)
}

pub fn set_verbosity(verbosity: Verbosity) {
    log::set_max_level(level_for(verbosity));
}

/// syslog(3)'s severity for a record: iked's info is a notice (shown by
/// default), its debug is info, its trace is debug.
fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 5,
        Level::Debug => 6,
        Level::Trace => 7,
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        match &self.sink {
            Sink::Stderr => {
                let prefix = format!("iked[{}] {}: ", self.pid, self.role);
                let line = format_line(&prefix, record.args(), "\n");
                write_stderr(line.as_bytes());
            }
            Sink::Syslog { socket, facility } => {
                let dropped = DROPPED.load(Ordering::Relaxed);
                let reported = DROPPED_REPORTED.load(Ordering::Relaxed);
                if dropped > reported {
                    let note = format_args!(
                        "{} log lines lost: the syslog socket did not take them",
                        dropped - reported
                    );
                    if self.send_syslog(socket, *facility, Level::Warn, note) {
                        DROPPED_REPORTED.store(dropped, Ordering::Relaxed);
                    }
                }
                self.send_syslog(socket, *facility, record.level(), *record.args());
            }
        }
    }

    fn flush(&self) {}
}

impl Logger {
    /// One datagram for one line; false (and counted) when syslog did not
    /// take it.
    fn send_syslog(
        &self,
        socket: &UnixDatagram,
        facility: Facility,
        level: Level,
        message: std::fmt::Arguments<'_>,
    ) -> bool {
        // RFC 3164 §4.1 as syslog(3) writes it to /dev/log:
        // "<PRI>Mmm dd hh:mm:ss iked[pid]: role: message".
        let prefix = format!(
            "<{}>{} iked[{}]: {}: ",
            u32::from(facility.code()) * 8 + u32::from(severity(level)),
            local_timestamp(),
            self.pid,
            self.role
        );
        let line = format_line(&prefix, &message, "");
        match socket.send(line.as_bytes()) {
            Ok(_) => true,
            Err(_) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// `iked: MESSAGE` on stderr in one write(2), for the errors that stop
/// iked before or outside its logger (eprintln! writes in pieces, which
/// the children's lines could split).
pub fn print_fatal(message: &str) {
    let line = format_line("iked: ", &message, "\n");
    write_stderr(line.as_bytes());
}

/// One write(2) for the whole line; only a partial write (a signal, a
/// full pipe of a line longer than PIPE_BUF, which [`MAX_LINE`] rules
/// out) makes a second one for the rest.
fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: fd 2 and a valid buffer of that length.
        let written = unsafe { nix::libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if written < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let written = usize::try_from(written).unwrap_or(bytes.len());
        bytes = bytes.get(written..).unwrap_or_default();
    }
}

/// "Mmm dd hh:mm:ss" in local time, as syslog(3) stamps its lines.
fn local_timestamp() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // SAFETY: time(NULL) and localtime_r into a zeroed struct we own.
    let tm = unsafe {
        let now = nix::libc::time(std::ptr::null_mut());
        let mut tm: nix::libc::tm = std::mem::zeroed();
        if nix::libc::localtime_r(&now, &mut tm).is_null() {
            return "Jan  1 00:00:00".to_string();
        }
        tm
    };
    let month = usize::try_from(tm.tm_mon)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .unwrap_or(&"Jan");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02}",
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

/// `prefix`, the message with its control characters escaped, `end`: at
/// most [`MAX_LINE`] bytes, cut with [`TRUNCATED`] when longer. The prefix
/// is ours and trusted; the message may carry a peer's bytes.
pub fn format_line(prefix: &str, message: &dyn std::fmt::Display, end: &str) -> String {
    let mut line = String::with_capacity(128);
    line.push_str(prefix);
    let budget = MAX_LINE.saturating_sub(end.len());
    let mut escaper = Escaper {
        fits_with_marker: line.len(),
        line: &mut line,
        budget,
        truncated: false,
    };
    // A Display that fails (or our budget that ends) stops the writing;
    // what was written stays, marked.
    let _ = write!(escaper, "{message}");
    if escaper.truncated {
        let cut = escaper.fits_with_marker;
        line.truncate(cut);
        line.push_str(TRUNCATED);
    }
    line.push_str(end);
    line
}

/// Copies a message into a line, escaping what could end or disguise it,
/// and stops at the budget.
struct Escaper<'a> {
    line: &'a mut String,
    budget: usize,
    truncated: bool,
    /// Length of the line after the last whole character (or escape) that
    /// leaves room for [`TRUNCATED`]: where a cut line is cut.
    fits_with_marker: usize,
}

impl std::fmt::Write for Escaper<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        for c in text.chars() {
            let before = self.line.len();
            push_escaped(self.line, c);
            if self.line.len() > self.budget {
                self.line.truncate(before);
                self.truncated = true;
                return Err(std::fmt::Error);
            }
            if self.line.len() + TRUNCATED.len() <= self.budget {
                self.fits_with_marker = self.line.len();
            }
        }
        Ok(())
    }
}

/// A character as it may appear in a log line: control characters (C0, DEL,
/// C1 such as NEL), the Unicode line and paragraph separators and the
/// bidirectional overrides (which make a line read as another) become
/// escapes; everything else is itself.
fn push_escaped(line: &mut String, c: char) {
    match c {
        '\n' => line.push_str("\\n"),
        '\r' => line.push_str("\\r"),
        '\t' => line.push_str("\\t"),
        c if c.is_control() => {
            let _ = write!(line, "\\x{:02x}", u32::from(c));
        }
        '\u{2028}'
        | '\u{2029}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => {
            let _ = write!(line, "\\u{{{:04x}}}", u32::from(c));
        }
        c => line.push(c),
    }
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

#[cfg(test)]
#[path = "logging_tests.rs"]
mod tests;
