//! Logs an operator can read (issue 16): all four processes of iked log
//! at once, under load (many negotiations at `-vv`), and every line comes
//! out whole, with one prefix, never interleaved with another process's
//! (before, `iked[iked[32245] ...` and `pfkey: pfkey: ...`). Refusals of a
//! peer (a wrong pre-shared key, a proposal nobody accepts) reach the
//! default log level with the reason and the peer's address, and
//! `--syslog-facility` is honoured by every process on a syslog socket
//! this test binds.
//!
//! ```text
//!  initiator iked (A) 198.18.50.1 --veth-- 198.18.50.2 responder iked (B)
//!    GOOD policies + one with a wrong PSK + one with a proposal B refuses
//! ```

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use iked_tests::{binary, fresh_netns, ip_in, is_gone, require_root, Daemon, Scratch};

const A: &str = "198.18.50.1";
const B: &str = "198.18.50.2";
/// Negotiations at once: enough for the four processes to write over
/// each other if they could.
const GOOD: usize = 24;
const ROLES: [&str; 4] = ["parent", "ikev2", "pfkey", "ca"];
/// Bound on every wait of this test (a loaded 2-core host, debug build).
const WAIT: Duration = Duration::from_secs(60);

/// Two namespaces joined by a veth pair, removed at drop.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let pair = Pair {
            a: format!("iked-{tag}-a"),
            b: format!("iked-{tag}-b"),
        };
        fresh_netns(&pair.a);
        fresh_netns(&pair.b);
        ip_in(
            &pair.a,
            &format!("link add la type veth peer name lb netns {}", pair.b),
        );
        for (ns, dev, address) in [(&pair.a, "la", A), (&pair.b, "lb", B)] {
            ip_in(ns, &format!("addr add {address}/24 dev {dev}"));
            ip_in(ns, &format!("link set {dev} up"));
            ip_in(ns, "link set lo up");
        }
        pair
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The responder: one policy for A's networks, one IKE proposal.
fn responder_config() -> String {
    format!(
        "ikev2 \"resp\" passive esp from 10.2.0.0/16 to 10.1.0.0/16 local {B} peer {A} \
         ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 psk \"good-secret\"\n"
    )
}

/// The initiator: GOOD policies that start at once, one with the wrong
/// key, one offering only what B does not accept.
fn initiator_config() -> String {
    let mut text = String::new();
    for i in 0..GOOD {
        text += &format!(
            "ikev2 \"g{i}\" active esp from 10.1.{i}.0/24 to 10.2.{i}.0/24 local {A} peer {B} \
             ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 psk \"good-secret\"\n"
        );
    }
    text += &format!(
        "ikev2 \"badpsk\" active esp from 10.1.200.0/24 to 10.2.200.0/24 local {A} peer {B} \
         ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 psk \"wrong-secret\"\n"
    );
    text += &format!(
        "ikev2 \"badproposal\" active esp from 10.1.201.0/24 to 10.2.201.0/24 local {A} \
         peer {B} ikesa enc aes-128 auth hmac-sha2-512 prf hmac-sha2-512 group ecp384 \
         psk \"good-secret\"\n"
    );
    text
}

/// The role and message of a stderr line `iked[PID] ROLE: MESSAGE`, or
/// why it is not one.
fn parse_stderr_line(line: &str) -> Result<(&str, &str), String> {
    let rest = line
        .strip_prefix("iked[")
        .ok_or("does not start with iked[")?;
    let (pid, rest) = rest.split_once("] ").ok_or("no ] after the pid")?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("pid {pid:?} is not a number"));
    }
    parse_role_and_message(rest)
}

/// `ROLE: MESSAGE` with one of the four roles, and no second prefix.
fn parse_role_and_message(text: &str) -> Result<(&str, &str), String> {
    let (role, message) = text.split_once(": ").ok_or("no role prefix")?;
    if !ROLES.contains(&role) {
        return Err(format!("unknown role {role:?}"));
    }
    for other in ROLES {
        if message.starts_with(&format!("{other}: ")) {
            return Err(format!("doubled prefix {role}: {other}:"));
        }
    }
    if message.contains("iked[") {
        return Err("another line's prefix inside".into());
    }
    if message.contains('\r') || message.len() > iked_common::logging::MAX_LINE {
        return Err("carriage return or over the length bound".into());
    }
    Ok((role, message))
}

/// Asserts that every line of `log` is whole and well formed, that all
/// four processes wrote, and returns the number of lines.
fn assert_whole_lines(who: &str, log: &str) -> usize {
    assert!(log.ends_with('\n'), "{who}: the log ends mid-line");
    let mut seen = [0usize; 4];
    let mut lines = 0;
    for line in log.lines() {
        lines += 1;
        match parse_stderr_line(line) {
            Ok((role, _)) => {
                if let Some(i) = ROLES.iter().position(|r| *r == role) {
                    seen[i] += 1;
                }
            }
            Err(why) => panic!("{who}: malformed line ({why}): {line:?}"),
        }
    }
    for (role, count) in ROLES.iter().zip(seen) {
        assert!(count > 0, "{who}: no line from {role}\n{log}");
    }
    lines
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Waits until the responder has established the GOOD IKE SAs and
/// refused both bad policies, whose refusals it names with A's address.
fn wait_for_negotiations(what: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = log();
        let established = count(&text, &format!("established with {A}"));
        let auth_refused = text
            .lines()
            .any(|l| l.contains("refused with AUTHENTICATION_FAILED") && l.contains(A));
        let proposal_refused = text
            .lines()
            .any(|l| l.contains("NO_PROPOSAL_CHOSEN") && l.contains(A));
        if established >= GOOD && auth_refused && proposal_refused {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: within {WAIT:?} {established} of {GOOD} IKE SAs, \
             AUTHENTICATION_FAILED refusal {auth_refused}, NO_PROPOSAL_CHOSEN refusal \
             {proposal_refused}\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn every_line_is_whole_under_load_with_one_prefix() {
    require_root("every_line_is_whole_under_load_with_one_prefix");
    let pair = Pair::new("loglines");
    // Both at -vv (the Daemon helper's level): every process writes at
    // once, on the stderr they share.
    let mut responder = Daemon::start_in(Some(&pair.b), "loglines-b", &responder_config());
    let mut initiator = Daemon::start_in(Some(&pair.a), "loglines-a", &initiator_config());
    wait_for_negotiations("responder", || responder.log_text());
    // A reload at -vv: each child logs its configuration too.
    assert!(initiator.ikectl(&["reload"]).status.success());
    assert!(responder.ikectl(&["reload"]).status.success());
    std::thread::sleep(Duration::from_millis(500));
    initiator.stop_within(Duration::from_secs(10));
    responder.stop_within(Duration::from_secs(10));

    let responder_log = responder.log_text();
    let initiator_log = initiator.log_text();
    let lines = assert_whole_lines("responder", &responder_log)
        + assert_whole_lines("initiator", &initiator_log);
    // Enough lines that interleaving would have shown.
    assert!(lines > 20 * GOOD, "only {lines} lines");

    // The refusals, with the reason and the peer.
    let auth = responder_log
        .lines()
        .find(|l| l.contains("refused with AUTHENTICATION_FAILED"))
        .expect("AUTH refusal");
    assert!(auth.contains(A) && auth.contains("policy resp"), "{auth}");
    let proposal = responder_log
        .lines()
        .find(|l| l.contains("NO_PROPOSAL_CHOSEN"))
        .expect("proposal refusal");
    // What the peer offered, not only that nothing matched.
    assert!(
        proposal.contains(A) && proposal.contains("IKE:") && proposal.contains("resp"),
        "{proposal}"
    );
    // The initiator hears both refusals too.
    assert!(
        initiator_log.contains("AUTHENTICATION_FAILED"),
        "{initiator_log}"
    );
}

/// A syslog datagram `<PRI>Mmm dd hh:mm:ss iked[PID]: ROLE: MESSAGE`.
struct SyslogLine {
    facility: u32,
    severity: u32,
    pid: i32,
    role: String,
    message: String,
}

fn parse_syslog(datagram: &[u8]) -> Result<SyslogLine, String> {
    let text = std::str::from_utf8(datagram).map_err(|e| format!("not UTF-8: {e}"))?;
    if text.contains('\n') {
        return Err("a newline inside the datagram".into());
    }
    if datagram.len() > iked_common::logging::MAX_LINE {
        return Err(format!("{} bytes, over the bound", datagram.len()));
    }
    let rest = text.strip_prefix('<').ok_or("no <PRI>")?;
    let (pri, rest) = rest.split_once('>').ok_or("no > after PRI")?;
    let pri: u32 = pri.parse().map_err(|_| format!("PRI {pri:?}"))?;
    // "Mmm dd hh:mm:ss " (RFC 3164 §4.1.2).
    let stamp = rest.get(..16).ok_or("no timestamp")?;
    let b = stamp.as_bytes();
    if b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' || b[15] != b' ' {
        return Err(format!("timestamp {stamp:?}"));
    }
    let rest = rest[16..].strip_prefix("iked[").ok_or("no iked[ tag")?;
    let (pid, rest) = rest.split_once("]: ").ok_or("no ]: after the pid")?;
    let pid: i32 = pid.parse().map_err(|_| format!("pid {pid:?}"))?;
    let (role, message) = parse_role_and_message(rest)?;
    Ok(SyslogLine {
        facility: pri >> 3,
        severity: pri & 7,
        pid,
        role: role.to_string(),
        message: message.to_string(),
    })
}

/// The daemonized responder, stopped by its pid at drop if still running.
struct Daemonized(Option<i32>);

impl Drop for Daemonized {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn refusals_reach_syslog_at_the_default_level_under_the_chosen_facility() {
    require_root("refusals_reach_syslog_at_the_default_level_under_the_chosen_facility");
    use std::os::unix::process::CommandExt;
    let pair = Pair::new("logsys");
    let scratch = Scratch::new("logsys");
    let log_socket_path = scratch.file("log.sock");
    let syslog = UnixDatagram::bind(&log_socket_path).expect("bind the syslog socket");
    syslog
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let config = scratch.config("iked.conf", &responder_config());
    let control = scratch.file("iked.sock");

    // As the service runs it: no -d (to the background, logging to
    // syslog), no -v (the default level).
    let netns = std::fs::File::open(format!("/run/netns/{}", pair.b)).expect("netns");
    let mut command = Command::new(binary("iked"));
    command
        .arg("-f")
        .arg(&config)
        .arg("-s")
        .arg(&control)
        .args(["--syslog-facility", "local3", "--syslog-socket"])
        .arg(&log_socket_path);
    // SAFETY: setns(2) is async-signal-safe; the file stays open until
    // after the fork.
    unsafe {
        command.pre_exec(move || {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
        });
    }
    let status = command.status().expect("run iked");
    assert!(
        status.success(),
        "iked did not go to the background: {status}"
    );
    let mut daemon = Daemonized(None);

    let mut lines: Vec<SyslogLine> = Vec::new();
    let receive_until = |lines: &mut Vec<SyslogLine>, done: &dyn Fn(&[SyslogLine]) -> bool| {
        let deadline = Instant::now() + WAIT;
        let mut buffer = vec![0u8; 65536];
        while !done(lines) {
            assert!(
                Instant::now() < deadline,
                "not within {WAIT:?}; syslog so far:\n{}",
                lines
                    .iter()
                    .map(|l| format!("<{}.{}> {}: {}", l.facility, l.severity, l.role, l.message))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            if let Ok(n) = syslog.recv(&mut buffer) {
                match parse_syslog(&buffer[..n]) {
                    Ok(line) => lines.push(line),
                    Err(why) => panic!(
                        "malformed syslog line ({why}): {:?}",
                        String::from_utf8_lossy(&buffer[..n])
                    ),
                }
            }
        }
    };
    receive_until(&mut lines, &|lines| {
        lines
            .iter()
            .any(|l| l.role == "parent" && l.message.starts_with("started:"))
    });
    let parent_pid = lines
        .iter()
        .find(|l| l.role == "parent")
        .map(|l| l.pid)
        .expect("a parent line");
    daemon.0 = Some(parent_pid);

    let initiator = Daemon::start_in(Some(&pair.a), "logsys-a", &initiator_config());
    // Not reading, as a syslog daemon that cannot keep up: once the
    // initiator has half its IKE SAs, the responder has logged more lines
    // than the socket queues (net.unix.max_dgram_qlen, 10 by default).
    // It must go on negotiating, drop those lines and say so later.
    let deadline = Instant::now() + WAIT;
    while count(&initiator.log_text(), "established with") < GOOD / 2 {
        assert!(
            Instant::now() < deadline,
            "initiator: not {} IKE SAs within {WAIT:?}\n{}",
            GOOD / 2,
            initiator.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = |lines: &[SyslogLine]| {
        let auth = lines.iter().any(|l| {
            l.message.contains("refused with AUTHENTICATION_FAILED") && l.message.contains(A)
        });
        let proposal = lines
            .iter()
            .any(|l| l.message.contains("NO_PROPOSAL_CHOSEN") && l.message.contains(A));
        auth && proposal
    };
    receive_until(&mut lines, &refused);
    // Each refusal at the default level: notice or more severe.
    for needle in ["refused with AUTHENTICATION_FAILED", "NO_PROPOSAL_CHOSEN"] {
        let line = lines
            .iter()
            .find(|l| l.message.contains(needle))
            .expect("refusal");
        assert!(line.severity <= 5, "{needle} at severity {}", line.severity);
        assert_eq!(line.role, "ikev2");
    }
    // Nothing below the default level was logged.
    assert!(
        lines.iter().all(|l| l.severity <= 5),
        "a debug line at the default level"
    );
    drop(initiator);

    // Every process uses the facility: at verbose level a reload makes
    // each child say it took the configuration.
    let ikectl = |args: &[&str]| {
        let out = Command::new(binary("ikectl"))
            .arg("-s")
            .arg(&control)
            .args(args)
            .output()
            .expect("ikectl");
        assert!(
            out.status.success(),
            "ikectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ikectl(&["log", "verbose"]);
    // A reload again until ca's line came through (a burst of lines can
    // still overflow the socket's short queue).
    let ca_line = |lines: &[SyslogLine]| {
        lines
            .iter()
            .any(|l| l.message.contains("pre-shared keys") && l.role == "ca")
    };
    let deadline = Instant::now() + WAIT;
    while !ca_line(&lines) {
        assert!(Instant::now() < deadline, "no ca line at verbose level");
        ikectl(&["reload"]);
        let until = Instant::now() + Duration::from_secs(2);
        receive_until(&mut lines, &|lines| {
            ca_line(lines) || Instant::now() > until
        });
    }
    assert!(
        ROLES
            .iter()
            .all(|role| lines.iter().any(|l| l.role == *role)),
        "a process never logged"
    );
    // The lines lost while nobody read were counted and said.
    assert!(
        lines
            .iter()
            .any(|l| l.role == "ikev2" && l.message.contains("log lines lost")),
        "no line says that lines were lost"
    );
    for line in &lines {
        assert_eq!(
            line.facility, 19,
            "{}: {} not under local3",
            line.role, line.message
        );
    }
    // Four processes, one pid each.
    let mut pids: Vec<(String, i32)> = lines.iter().map(|l| (l.role.clone(), l.pid)).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 4, "{pids:?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(parent_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM to iked");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|(_, pid)| is_gone(*pid)) {
        assert!(
            Instant::now() < deadline,
            "iked still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.0 = None;
}

#[test]
fn the_line_checks_tell_good_lines_from_bad_ones() {
    assert!(parse_stderr_line("iked[12] ikev2: IKE SA up").is_ok());
    assert!(parse_stderr_line("iked[iked[12] ikev2: x").is_err());
    assert!(parse_stderr_line("iked[12] pfkey: pfkey: x").is_err());
    assert!(parse_stderr_line("iked[12] ikev2: half iked[13] ca: other").is_err());
    assert!(parse_stderr_line("iked[12] nobody: x").is_err());
    let line = parse_syslog(b"<157>Dec  2 17:45:05 iked[77]: ca: 3 keys").expect("parses");
    assert_eq!((line.facility, line.severity, line.pid), (19, 5, 77));
    assert!(parse_syslog(b"<157>Dec  2 17:45:05 iked[77]: ca: a\nb").is_err());
    assert!(parse_syslog(b"<157>iked[77]: ca: x").is_err());
}
