//! `ikectl show stats` and `ikectl monitor`: their requests, and their
//! answers as text and as JSON (schema: doc/ikectl-json.md).

use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use iked_common::ipc::{ControlCommand, ControlReply, ControlRequest, IPC_VERSION};
use iked_common::stats::{AuthFailure, SaEvent, StatsReport, STATS_JSON_VERSION};
use serde_json::{json, Map, Value};

use crate::connect::{connect_to, Failure};
use crate::{exchange, json as envelope, Cli, REPLY_TIMEOUT};

/// Connects and says hello; `timeout` bounds each wait for a reply.
fn session(cli: &Cli, timeout: Option<std::time::Duration>) -> Result<OwnedFd, Failure> {
    let fd = connect_to(&cli.socket)?;
    let limit = timeout.unwrap_or(REPLY_TIMEOUT);
    let tv = nix::sys::time::TimeVal::new(limit.as_secs() as i64, 0);
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
        .map_err(|e| Failure::protocol(format!("socket timeout: {e}")))?;
    match exchange(
        &fd,
        &ControlRequest::Hello {
            version: IPC_VERSION,
        },
    )? {
        ControlReply::Hello { .. } => Ok(fd),
        ControlReply::Failed(message) => Err(Failure::from(message)),
        other => Err(Failure::protocol(format!("unexpected reply {other:?}"))),
    }
}

/// Prints `failure` as every ikectl answer does (ikectl-json.md).
fn fail(cli: &Cli, command: &str, failure: &Failure) -> ExitCode {
    if cli.json {
        println!("{}", envelope::failure(command, failure));
    } else {
        eprintln!("ikectl: {}", failure.message);
    }
    ExitCode::FAILURE
}

/// `ikectl show stats`.
pub fn show_stats(cli: &Cli) -> ExitCode {
    let report = session(cli, None).and_then(|fd| {
        match exchange(&fd, &ControlRequest::Ikev2(ControlCommand::ShowStats))? {
            ControlReply::Stats(report) => Ok(report),
            ControlReply::Failed(message) => Err(Failure::from(message)),
            other => Err(Failure::protocol(format!("unexpected reply {other:?}"))),
        }
    });
    match report {
        Ok(report) if cli.json => {
            println!(
                "{}",
                envelope::envelope("show stats", true, json!({ "stats": stats_json(&report) }))
            );
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", render_stats(&report));
            ExitCode::SUCCESS
        }
        Err(failure) => fail(cli, "show stats", &failure),
    }
}

fn counts_json<'a>(named: impl Iterator<Item = (&'a str, u64)>) -> Value {
    let mut map = Map::new();
    let mut total = 0;
    for (name, n) in named {
        map.insert(name.to_string(), json!(n));
        total += n;
    }
    map.insert("total".into(), json!(total));
    Value::Object(map)
}

/// The `stats` object of `show stats --json`.
pub fn stats_json(report: &StatsReport) -> Value {
    let e = &report.engine;
    json!({
        "uptime_secs": report.uptime_secs,
        "ike_sas": counts_json(e.ike_sas.iter().map(|(k, v)| (k.as_str(), *v))),
        "child_sas": counts_json(e.child_sas.iter().map(|(k, v)| (k.as_str(), *v))),
        "half_open": e.half_open,
        "cookies_sent": e.cookies_sent,
        "messages_in": counts_json(e.messages_in.named()),
        "messages_out": counts_json(e.messages_out.named()),
        "retransmits": e.retransmits,
        "timeouts": e.timeouts,
        "ike_sas_up": e.ike_sas_up,
        "child_sas_up": e.child_sas_up,
        "auth_failures": counts_json(AuthFailure::ALL.iter().map(|r| (r.name(), e.auth_failure(*r)))),
        "kernel_errors": e.kernel_errors,
        "ipc_queues": report.ipc_queues.iter().map(|q| json!({
            "from": q.from, "to": q.to, "bytes": q.bytes,
        })).collect::<Vec<_>>(),
        "monitor": {
            "clients": report.monitor_clients,
            "events_sent": e.events,
            "events_dropped": report.monitor_events_dropped,
            "events_held_back": e.events_held_back,
        },
        "config_loads": report.config_loads,
        "pfkey": {"failures": counts_json(report.pfkey.named())},
    })
}

fn counts_text<'a>(named: impl Iterator<Item = (&'a str, u64)>) -> String {
    let parts: Vec<String> = named
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// `show stats` as text: one counter (or group) a line.
pub fn render_stats(report: &StatsReport) -> String {
    let e = &report.engine;
    let ike_total: u64 = e.ike_sas.values().sum();
    let child_total: u64 = e.child_sas.values().sum();
    let mut out = String::new();
    let mut line = |label: &str, value: String| out.push_str(&format!("{label:<22}{value}\n"));
    line("uptime:", format!("{} s", report.uptime_secs));
    line(
        "IKE SAs:",
        format!(
            "{ike_total} ({})",
            counts_text(e.ike_sas.iter().map(|(k, v)| (k.as_str(), *v)))
        ),
    );
    line(
        "Child SAs:",
        format!(
            "{child_total} ({})",
            counts_text(e.child_sas.iter().map(|(k, v)| (k.as_str(), *v)))
        ),
    );
    line("half-open:", e.half_open.to_string());
    line("cookies sent:", e.cookies_sent.to_string());
    line(
        "messages in:",
        format!(
            "{} ({})",
            e.messages_in.total(),
            counts_text(e.messages_in.named())
        ),
    );
    line(
        "messages out:",
        format!(
            "{} ({})",
            e.messages_out.total(),
            counts_text(e.messages_out.named())
        ),
    );
    line("retransmits:", e.retransmits.to_string());
    line("timeouts:", e.timeouts.to_string());
    line("IKE SAs up:", e.ike_sas_up.to_string());
    line("Child SAs up:", e.child_sas_up.to_string());
    line(
        "auth failures:",
        format!(
            "{} ({})",
            e.auth_failures_total(),
            counts_text(
                AuthFailure::ALL
                    .iter()
                    .map(|r| (r.name(), e.auth_failure(*r)))
            )
        ),
    );
    line("kernel errors:", e.kernel_errors.to_string());
    let queues: Vec<String> = report
        .ipc_queues
        .iter()
        .map(|q| format!("{}->{} {}", q.from, q.to, q.bytes))
        .collect();
    line("IPC queued bytes:", queues.join(", "));
    line(
        "monitors:",
        format!(
            "{} (events sent {}, dropped {}, held back {})",
            report.monitor_clients, e.events, report.monitor_events_dropped, e.events_held_back
        ),
    );
    line("config loads:", report.config_loads.to_string());
    let failures = report.pfkey.named();
    line(
        "pfkey failures:",
        format!(
            "{} ({})",
            report.pfkey.failures.iter().sum::<u64>(),
            counts_text(failures)
        ),
    );
    out
}

/// `ikectl monitor`: events until the daemon goes or `count` were shown.
pub fn monitor(cli: &Cli, count: Option<u64>) -> ExitCode {
    // Events come when they happen: after the hello and the subscription
    // (bounded as every answer), the wait for the next one is not.
    let fd =
        match session(cli, None).and_then(|fd| match exchange(&fd, &ControlRequest::Monitor)? {
            ControlReply::Done(_) => Ok(fd),
            ControlReply::Failed(message) => Err(Failure::from(message)),
            other => Err(Failure::protocol(format!("unexpected reply {other:?}"))),
        }) {
            Ok(fd) => fd,
            Err(failure) => return fail(cli, "monitor", &failure),
        };
    let _ = nix::sys::socket::setsockopt(
        &fd,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, 0),
    );
    let mut shown = 0u64;
    let stdout = std::io::stdout();
    loop {
        if count.is_some_and(|c| shown >= c) {
            return ExitCode::SUCCESS;
        }
        let reply = iked_common::ipc::recv::<ControlReply>(std::os::fd::AsFd::as_fd(&fd))
            .and_then(|r| r.expect_descriptors(0));
        let event = match reply {
            Ok((ControlReply::Event(event), _)) => event,
            Ok((ControlReply::Failed(message), _)) => {
                return fail(cli, "monitor", &Failure::from(message))
            }
            Ok((other, _)) => {
                let message = format!("unexpected message {other:?}");
                return fail(cli, "monitor", &Failure::protocol(message));
            }
            Err(iked_common::ipc::IpcError::Closed) => {
                let message = "iked closed the connection".to_string();
                return fail(cli, "monitor", &Failure::protocol(message));
            }
            Err(e) => {
                let message = format!("reading events: {e}");
                return fail(cli, "monitor", &Failure::protocol(message));
            }
        };
        let line = if cli.json {
            event_json(&event).to_string()
        } else {
            event_text(&event)
        };
        let mut out = stdout.lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // The reader went away (a closed pipe): nothing more to do.
            return ExitCode::SUCCESS;
        }
        shown += 1;
    }
}

/// One `monitor --json` line.
pub fn event_json(event: &SaEvent) -> Value {
    json!({
        "version": STATS_JSON_VERSION,
        "time": event.unix_time,
        "event": event.kind.name(),
        "sa": event.level.name(),
        "policy": event.policy,
        "peer": event.peer.map(|p| p.to_string()),
        "ike_sa": event.ike_sa,
        "child_sa": event.child_sa,
        "replaces": event.replaces,
        "reason": event.reason,
    })
}

/// One `monitor` line: the UTC time, what happened, then the details.
pub fn event_text(event: &SaEvent) -> String {
    let mut line = format!(
        "{} {} {}",
        utc_time(event.unix_time),
        event.kind.name(),
        event.level.name()
    );
    if !event.policy.is_empty() {
        line.push_str(&format!(" policy {}", event.policy));
    }
    if let Some(peer) = event.peer {
        line.push_str(&format!(" peer {peer}"));
    }
    if let Some(sa) = &event.ike_sa {
        line.push_str(&format!(" ike {sa}"));
    }
    if let Some(sa) = &event.child_sa {
        line.push_str(&format!(" child {sa}"));
    }
    if let Some(sa) = &event.replaces {
        line.push_str(&format!(" replaces {sa}"));
    }
    if let Some(reason) = &event.reason {
        line.push_str(&format!(": {reason}"));
    }
    line
}

/// Seconds since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (the civil-from-days
/// algorithm of Howard Hinnant's date library, in integers).
fn utc_time(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use iked_common::stats::{EventKind, SaLevel};

    #[test]
    fn utc_time_is_civil_time() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_time(1_796_256_000 + 3661), "2026-12-03T01:01:01Z");
    }

    #[test]
    fn an_event_line_names_what_happened_and_why() {
        let mut event = SaEvent::new(EventKind::Failed, SaLevel::Ike, "gw");
        event.peer = Some("192.0.2.1:500".parse().unwrap());
        event.reason = Some("AUTHENTICATION_FAILED".into());
        let text = event_text(&event);
        assert!(
            text.ends_with("failed ike policy gw peer 192.0.2.1:500: AUTHENTICATION_FAILED"),
            "{text}"
        );
        let value = event_json(&event);
        assert_eq!(value["version"], 1);
        assert_eq!(value["event"], "failed");
        assert_eq!(value["sa"], "ike");
        assert_eq!(value["peer"], "192.0.2.1:500");
        assert_eq!(value["child_sa"], Value::Null);
    }

    #[test]
    fn stats_json_totals_the_groups() {
        let mut report = StatsReport::default();
        report.engine.messages_in.count(34);
        report.engine.messages_in.count(35);
        report.engine.auth_failures[0] = 2;
        report.engine.ike_sas.insert("established".into(), 3);
        let value = stats_json(&report);
        assert_eq!(value["messages_in"]["IKE_SA_INIT"], 1);
        assert_eq!(value["messages_in"]["total"], 2);
        assert_eq!(value["auth_failures"]["peer_auth_invalid"], 2);
        assert_eq!(value["auth_failures"]["total"], 2);
        assert_eq!(value["ike_sas"]["established"], 3);
        assert_eq!(value["ike_sas"]["total"], 3);
        let text = render_stats(&report);
        assert!(
            text.contains("auth failures:        2 (peer_auth_invalid 2)"),
            "{text}"
        );
    }
}
