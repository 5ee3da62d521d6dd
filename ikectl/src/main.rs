//! ikectl: control a running iked over its control socket.

#![forbid(unsafe_code)]

mod certstore;
mod connect;
mod flows;
mod json;

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

mod ca;
mod stats;

use clap::{Parser, Subcommand, ValueEnum};
use iked_common::ipc::{
    self, ControlCommand, ControlReply, ControlRequest, IkeSaInfo, Verbosity, IPC_VERSION,
};

use crate::connect::Failure;

#[derive(Parser, Debug)]
#[command(name = "ikectl", version, about = "Control the iked IKEv2 daemon")]
struct Cli {
    /// Control socket of the daemon.
    #[arg(
        short = 's',
        value_name = "socket",
        default_value = "/var/run/iked.sock"
    )]
    socket: PathBuf,

    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Set the log verbosity of all iked processes.
    Log {
        #[arg(value_enum)]
        level: LogLevel,
    },
    /// Reload the configuration file; on an error the current one stays.
    Reload,
    /// Reset a part of the daemon (OpenBSD ikectl(8)): `all`, `sa`,
    /// `policy`, `user`, `ca`, or `id ID` (the IKE SAs of peer identity ID).
    Reset {
        #[arg(value_enum)]
        what: ResetWhat,
        /// The peer identity, for `reset id`, as `show sa` prints it.
        #[arg(required_if_eq("what", "id"))]
        id: Option<String>,
    },
    /// Show state.
    Show {
        #[command(subcommand)]
        what: Show,
    },
    /// Start negotiating the IKE SA of a policy now.
    Initiate { policy: String },
    /// Delete the IKE SAs of a policy (and their Child SAs), telling the
    /// peer; `--sa SPI` deletes one IKE SA by its SPI as `show sa` prints it.
    Terminate {
        #[arg(required_unless_present = "sa", conflicts_with = "sa")]
        policy: Option<String>,
        #[arg(long = "sa", value_name = "SPI")]
        sa: Option<String>,
    },
    /// Maintain a certificate authority for iked and its peers (files only,
    /// no daemon needed).
    Ca {
        name: String,
        #[command(subcommand)]
        action: ca::CaAction,
    },
    /// Print SA events as they happen (up, down, rekeyed, failed, peer
    /// dead, configuration reloaded), one line each.
    Monitor {
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Load another configuration file, with the checks of a reload; it
    /// becomes the file later reloads read (root only).
    Load { file: PathBuf },
    /// Initiate the active policies from now on.
    Active,
    /// Only answer peers from now on (kept through reloads).
    Passive,
    /// Put iked's IPsec policies (back) into the kernel.
    Couple,
    /// Take iked's IPsec policies out of the kernel; the SAs stay.
    Decouple,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum Show {
    /// What the ca process has loaded from the certificate store.
    Certstore,

    /// IKE SAs with their Child SAs.
    Sa {
        /// Only the IKE SAs of this policy.
        #[arg(long)]
        policy: Option<String>,
        /// Only the IKE SAs with this peer (address or identity).
        #[arg(long)]
        peer: Option<String>,
    },
    /// The certificates a CA made (`show ca NAME certificates [HOST]`).
    Ca {
        name: String,
        #[arg(value_enum)]
        what: CaShow,
        host: Option<String>,
    },
    /// Counters: SAs by state, messages, retransmits, failures, queues.
    Stats,
    /// The kernel policies and SAs iked installed (from pfkey).
    Flows,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum CaShow {
    Certificates,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ResetWhat {
    /// Re-read the certificate store (certdir), as a reload does.
    Ca,
    /// Flush the policies (and their SAs) and the users until a reload.
    All,
    /// Delete every IKE SA with its Child SAs.
    Sa,
    /// Flush the policies (their SAs go with them) until a reload.
    Policy,
    /// Flush the local user database until a reload.
    User,
    /// Delete the IKE SAs with a peer identity.
    Id,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogLevel {
    Brief,
    Verbose,
}

fn exchange(fd: &OwnedFd, request: &ControlRequest) -> Result<ControlReply, Failure> {
    ipc::send(fd.as_fd(), request, &[])
        .map_err(|e| Failure::protocol(format!("sending request: {e}")))?;
    ipc::recv::<ControlReply>(fd.as_fd())
        .and_then(|r| r.expect_descriptors(0))
        .map(|(reply, _)| reply)
        .map_err(|e| Failure::protocol(format!("reading reply: {e}")))
}

/// How long to wait for the daemon's answer.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the daemon answered, ready to print.
enum Answer {
    Message(String),
    /// The IKE SAs listed, and how many there are: the daemon cuts the
    /// list to its reply size limit.
    Sas {
        sas: Vec<IkeSaInfo>,
        total: u64,
    },
    /// `show certstore`.
    CertStore(Box<ipc::CertStoreInfo>),
    /// `show flows`.
    Flows(Box<ipc::FlowsInfo>),
    /// `completions`: the script, printed as it is (also with --json).
    Script(String),
}

/// Said when the daemon listed fewer IKE SAs than it has.
fn cut_note(shown: usize, total: u64) -> Option<String> {
    (total > shown as u64).then(|| format!("showing {shown} of {total} IKE SAs (reply size limit)"))
}

fn run(cli: &Cli) -> Result<Answer, Failure> {
    // The CA commands work on files, without the daemon.
    match &cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(
                *shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "ikectl",
                &mut script,
            );
            return Ok(Answer::Script(
                String::from_utf8_lossy(&script).into_owned(),
            ));
        }
        Command::Ca { name, action } => {
            return ca::run(name, action)
                .map(Answer::Message)
                .map_err(Failure::from)
        }
        Command::Show {
            what:
                Show::Ca {
                    name,
                    what: CaShow::Certificates,
                    host,
                },
        } => {
            return ca::show_certificates(name, host.as_deref())
                .map(Answer::Message)
                .map_err(Failure::from)
        }
        _ => {}
    }
    // Checked before connecting: a bad argument is no daemon's fault.
    let request = request_of(&cli.command)?;
    let fd = connect::connect_to(&cli.socket)?;
    let timeout = nix::sys::time::TimeVal::new(REPLY_TIMEOUT.as_secs() as i64, 0);
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
        .map_err(|e| Failure::protocol(format!("socket timeout: {e}")))?;
    match exchange(
        &fd,
        &ControlRequest::Hello {
            version: IPC_VERSION,
        },
    )? {
        ControlReply::Hello { .. } => {}
        // The daemon refused us at accept (SO_PEERCRED): not a member of
        // control_group.
        ControlReply::Failed(message) if message.starts_with("permission denied") => {
            return Err(Failure {
                kind: connect::FailureKind::PermissionDenied,
                message: format!("{}: {message}", cli.socket.display()),
            })
        }
        ControlReply::Failed(message) => return Err(Failure::protocol(message)),
        other => return Err(Failure::protocol(format!("unexpected reply {other:?}"))),
    }
    match exchange(&fd, &request)? {
        ControlReply::Done(message) => Ok(Answer::Message(message)),
        ControlReply::SaList { sas, total } => Ok(Answer::Sas { sas, total }),
        ControlReply::CertStore(info) => Ok(Answer::CertStore(info)),
        ControlReply::Flows(info) => Ok(Answer::Flows(info)),
        ControlReply::Failed(message) => Err(Failure::from(message)),
        other => Err(Failure::protocol(format!("unexpected reply {other:?}"))),
    }
}

/// The request a daemon command sends.
fn request_of(command: &Command) -> Result<ControlRequest, Failure> {
    Ok(match *command {
        Command::Log {
            level: LogLevel::Brief,
        } => ControlRequest::SetVerbosity(Verbosity::Brief),
        Command::Log {
            level: LogLevel::Verbose,
        } => ControlRequest::SetVerbosity(Verbosity::Verbose),
        Command::Reload => ControlRequest::Reload,
        Command::Show {
            what: Show::Sa {
                policy: None,
                peer: None,
            },
        } => ControlRequest::Ikev2(ControlCommand::ShowSa),
        Command::Show {
            what: Show::Sa {
                ref policy,
                ref peer,
            },
        } => ControlRequest::Ikev2(ControlCommand::ShowSaFiltered {
            policy: policy.clone(),
            peer: peer.clone(),
        }),
        Command::Ca { .. }
        | Command::Completions { .. }
        | Command::Show {
            what: Show::Ca { .. },
        } => return Err(Failure::from("answered without the daemon".to_string())),
        Command::Monitor { .. } | Command::Show { what: Show::Stats } => {
            return Err(Failure::from("answered by stats.rs, from main".to_string()))
        }
        Command::Initiate { ref policy } => ControlRequest::Ikev2(ControlCommand::Initiate {
            policy: policy.clone(),
        }),
        Command::Terminate {
            sa: Some(ref spi), ..
        } => ControlRequest::Ikev2(ControlCommand::TerminateSa {
            spi: parse_spi(spi)?,
        }),
        Command::Terminate {
            policy: Some(ref policy),
            ..
        } => ControlRequest::Ikev2(ControlCommand::Terminate {
            policy: policy.clone(),
        }),
        Command::Terminate { .. } => {
            return Err(Failure::from(
                "terminate: name a policy or --sa SPI".to_string(),
            ))
        }
        Command::Show {
            what: Show::Certstore,
        } => ControlRequest::ShowCertStore,
        Command::Reset {
            what: ResetWhat::Ca,
            ..
        } => ControlRequest::ResetCa,
        Command::Reset {
            what: ResetWhat::All,
            ..
        } => ControlRequest::Reset(ipc::ResetTarget::All),
        Command::Reset {
            what: ResetWhat::Policy,
            ..
        } => ControlRequest::Reset(ipc::ResetTarget::Policy),
        Command::Reset {
            what: ResetWhat::User,
            ..
        } => ControlRequest::Reset(ipc::ResetTarget::User),
        Command::Reset {
            what: ResetWhat::Sa,
            ..
        } => ControlRequest::Ikev2(ControlCommand::ResetSas),
        Command::Reset {
            what: ResetWhat::Id,
            ref id,
        } => ControlRequest::Ikev2(ControlCommand::ResetId {
            id: id
                .clone()
                .ok_or_else(|| Failure::from("reset id: name the identity".to_string()))?,
        }),
        Command::Load { ref file } => ControlRequest::Load {
            path: absolute(file)?,
        },
        Command::Active => ControlRequest::SetMode(ipc::InitiationMode::Active),
        Command::Passive => ControlRequest::SetMode(ipc::InitiationMode::Passive),
        Command::Couple => ControlRequest::Pfkey(ipc::PfkeyCommand::Couple(true)),
        Command::Decouple => ControlRequest::Pfkey(ipc::PfkeyCommand::Couple(false)),
        Command::Show { what: Show::Flows } => ControlRequest::Pfkey(ipc::PfkeyCommand::ShowFlows),
    })
}

/// An IKE SPI as `show sa` prints it: 16 hex digits (a `0x` prefix and
/// leading zeros optional).
fn parse_spi(text: &str) -> Result<u64, Failure> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.is_empty() || digits.len() > 16 {
        return Err(Failure::from(format!(
            "terminate --sa: {text:?} is not an IKE SPI (16 hex digits, as show sa prints)"
        )));
    }
    u64::from_str_radix(digits, 16).map_err(|_| {
        Failure::from(format!(
            "terminate --sa: {text:?} is not an IKE SPI (16 hex digits, as show sa prints)"
        ))
    })
}

/// `load FILE`: the daemon runs elsewhere (another working directory, a
/// chroot for its children): it gets the absolute path.
fn absolute(file: &std::path::Path) -> Result<String, Failure> {
    let path = std::path::absolute(file)
        .map_err(|e| Failure::from(format!("load {}: {e}", file.display())))?;
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| Failure::from(format!("load {}: the path is not UTF-8", path.display())))
}

fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h{}m", s / 3600, s / 60 % 60),
    }
}

/// `ikectl show sa` as text: one block per IKE SA, one line per Child SA.
fn render_sas(sas: &[IkeSaInfo]) -> String {
    if sas.is_empty() {
        return "no IKE SAs".into();
    }
    let mut out = String::new();
    for sa in sas {
        let role = if sa.initiator {
            "initiator"
        } else {
            "responder"
        };
        let when = match sa.established_secs {
            Some(s) => format!("established {} ago", age(s)),
            None => sa.state.clone(),
        };
        let rekey = sa
            .rekey_in_secs
            .map(|s| format!(", rekey in {}", age(s)))
            .unwrap_or_default();
        out += &format!("{}: {} ({role}), {when}{rekey}\n", sa.policy, sa.state);
        out += &format!(
            "  {} {} <=> {} {}{}{}\n",
            sa.local,
            sa.local_id,
            sa.peer,
            sa.peer_id,
            if sa.nat_t { " NAT-T" } else { "" },
            if sa.mobike { " MOBIKE" } else { "" }
        );
        // Road warriors (RFC 7296 §3.15, §2.16): the address leased to the
        // peer (gateway) or given to us (client), and the EAP identity.
        if !sa.virtual_ips.is_empty() {
            let ips: Vec<String> = sa.virtual_ips.iter().map(|a| a.to_string()).collect();
            out += &format!("  virtual ip {}\n", ips.join(", "));
        }
        if let Some(name) = &sa.eap_identity {
            out += &format!("  eap identity {name}\n");
        }
        out += &format!("  spi i {} r {}\n", sa.spi_i, sa.spi_r);
        let integrity = sa
            .integrity
            .as_deref()
            .map(|i| format!(" auth {i}"))
            .unwrap_or_default();
        out += &format!(
            "  ike enc {}{integrity} prf {} group {}\n",
            sa.encryption, sa.prf, sa.dh_group
        );
        for child in &sa.children {
            let integrity = child
                .integrity
                .as_deref()
                .map(|i| format!(" auth {i}"))
                .unwrap_or_default();
            let pfs = child
                .pfs_group
                .as_deref()
                .map(|g| format!(" group {g}"))
                .unwrap_or_default();
            let bytes = match (child.bytes_in, child.bytes_out) {
                (Some(i), Some(o)) => format!(", bytes in {i} out {o}"),
                _ => String::new(),
            };
            out += &format!(
                "  child {}{}: spi in {} out {}, {} enc {}{integrity}{pfs}{bytes}\n",
                child.state,
                if child.installed {
                    ""
                } else {
                    " (not in kernel)"
                },
                child.spi_in,
                child.spi_out,
                child.mode,
                child.encryption,
            );
            out += &format!(
                "    {} === {}\n",
                child.local_ts.join(", "),
                child.remote_ts.join(", ")
            );
        }
    }
    out.trim_end().to_string()
}

/// The `--json` form of an answer (doc/ikectl-json.md). `sas` stays the
/// list it always was; `total`, `truncated` and (when cut) `note` tell a
/// cut list from a whole.
fn json_answer(command: &str, result: &Result<Answer, Failure>) -> serde_json::Value {
    let body = match result {
        Ok(Answer::Message(message)) => serde_json::json!({ "message": message }),
        Ok(Answer::Sas { sas, total }) => {
            let mut value = serde_json::json!({
                "sas": sas,
                "total": total,
                "truncated": *total > sas.len() as u64,
            });
            if let Some(note) = cut_note(sas.len(), *total) {
                value["note"] = note.into();
            }
            value
        }
        Ok(Answer::CertStore(info)) => serde_json::json!({ "certstore": info }),
        Ok(Answer::Flows(info)) => serde_json::json!({ "flows": info }),
        Ok(Answer::Script(script)) => serde_json::json!({ "script": script }),
        Err(failure) => return json::failure(command, failure),
    };
    json::envelope(command, true, body)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Show { what: Show::Stats } => return stats::show_stats(&cli),
        Command::Monitor { count } => return stats::monitor(&cli, count),
        _ => {}
    }
    let result = run(&cli);
    if let (Ok(Answer::Script(script)), false) = (&result, cli.json) {
        print!("{script}");
    } else if cli.json {
        let value = json_answer(&json::command_name(&cli.command), &result);
        println!("{value}");
    } else {
        match &result {
            Ok(Answer::Message(message)) => println!("{message}"),
            Ok(Answer::Sas { sas, total }) => {
                println!("{}", render_sas(sas));
                if let Some(note) = cut_note(sas.len(), *total) {
                    println!("{note}");
                }
            }
            Ok(Answer::CertStore(info)) => println!("{}", certstore::render(info)),
            Ok(Answer::Flows(info)) => println!("{}", flows::render(info)),
            Ok(Answer::Script(script)) => print!("{script}"),
            Err(failure) => eprintln!("ikectl: {}", failure.message),
        }
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(n: u64) -> IkeSaInfo {
        IkeSaInfo {
            policy: format!("p{n}"),
            state: "SA_INIT received".into(),
            initiator: false,
            local: "198.18.0.1:500".parse().unwrap(),
            peer: "198.18.0.2:500".parse().unwrap(),
            local_id: String::new(),
            peer_id: String::new(),
            spi_i: format!("{n:016x}"),
            spi_r: format!("{:016x}", n + 1),
            encryption: "aes-256-gcm".into(),
            integrity: None,
            prf: "hmac-sha2-256".into(),
            dh_group: "curve25519".into(),
            nat_t: false,
            established_secs: None,
            rekey_in_secs: None,
            virtual_ips: Vec::new(),
            eap_identity: None,
            mobike: false,
            children: Vec::new(),
        }
    }

    #[test]
    fn mobike_is_shown_beside_nat_t_when_negotiated() {
        let mut moving = sa(1);
        moving.nat_t = true;
        moving.mobike = true;
        let text = render_sas(&[moving, sa(2)]);
        assert!(text.contains(" NAT-T MOBIKE\n"), "{text}");
        assert_eq!(text.matches("MOBIKE").count(), 1, "{text}");
    }

    #[test]
    fn a_road_warrior_is_shown_with_its_virtual_ip_and_eap_identity() {
        let mut rw = sa(1);
        rw.virtual_ips = vec!["10.99.0.7".parse().unwrap()];
        rw.eap_identity = Some("alice".into());
        let text = render_sas(&[rw.clone(), sa(2)]);
        assert!(text.contains("  virtual ip 10.99.0.7\n"), "{text}");
        assert!(text.contains("  eap identity alice\n"), "{text}");
        assert_eq!(text.matches("virtual ip").count(), 1, "{text}");
        let value = json_answer(
            "show sa",
            &Ok(Answer::Sas {
                sas: vec![rw],
                total: 1,
            }),
        );
        assert_eq!(value["sas"][0]["virtual_ips"][0], "10.99.0.7");
    }

    #[test]
    fn a_cut_list_says_so_in_text_and_json_and_a_whole_one_does_not() {
        let whole = Ok(Answer::Sas {
            sas: vec![sa(1), sa(2)],
            total: 2,
        });
        let value = json_answer("show sa", &whole);
        assert_eq!(value["sas"].as_array().unwrap().len(), 2);
        assert_eq!(value["sas"][0]["policy"], "p1");
        assert_eq!(value["truncated"], false);
        assert!(value.get("note").is_none());
        assert_eq!(cut_note(2, 2), None);

        let cut = Ok(Answer::Sas {
            sas: vec![sa(1)],
            total: 20_000,
        });
        let value = json_answer("show sa", &cut);
        assert_eq!(value["ok"], true);
        assert_eq!(value["sas"].as_array().unwrap().len(), 1);
        assert_eq!(value["total"], 20_000);
        assert_eq!(value["truncated"], true);
        assert_eq!(
            value["note"],
            "showing 1 of 20000 IKE SAs (reply size limit)"
        );
    }
}
