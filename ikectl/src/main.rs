//! ikectl: control a running iked over its control socket.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use iked_common::ipc::{self, ControlReply, ControlRequest, Verbosity, IPC_VERSION};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};

#[derive(Parser, Debug)]
#[command(name = "ikectl", version, about = "Control the iked IKEv2 daemon")]
struct Cli {
    /// Control socket of the daemon.
    #[arg(short = 's', value_name = "socket", default_value = "/var/run/iked.sock")]
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
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogLevel {
    Brief,
    Verbose,
}

fn connect_to(path: &PathBuf) -> Result<OwnedFd, String> {
    let fd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| format!("socket: {}", e.desc()))?;
    let address = UnixAddr::new(path).map_err(|e| format!("{}: {}", path.display(), e.desc()))?;
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &address).map_err(|e| {
        format!(
            "cannot connect to {}: {} (is iked running?)",
            path.display(),
            e.desc()
        )
    })?;
    Ok(fd)
}

fn exchange(fd: &OwnedFd, request: &ControlRequest) -> Result<ControlReply, String> {
    ipc::send(fd.as_fd(), request, &[]).map_err(|e| format!("sending request: {e}"))?;
    ipc::recv::<ControlReply>(fd.as_fd())
        .and_then(|r| r.expect_descriptors(0))
        .map(|(reply, _)| reply)
        .map_err(|e| format!("reading reply: {e}"))
}

fn run(cli: &Cli) -> Result<String, String> {
    let fd = connect_to(&cli.socket)?;
    match exchange(&fd, &ControlRequest::Hello { version: IPC_VERSION })? {
        ControlReply::Hello { .. } => {}
        ControlReply::Failed(message) => return Err(message),
        other => return Err(format!("unexpected reply {other:?}")),
    }
    let request = match cli.command {
        Command::Log { level: LogLevel::Brief } => ControlRequest::SetVerbosity(Verbosity::Brief),
        Command::Log { level: LogLevel::Verbose } => ControlRequest::SetVerbosity(Verbosity::Verbose),
        Command::Reload => ControlRequest::Reload,
    };
    match exchange(&fd, &request)? {
        ControlReply::Done(message) => Ok(message),
        ControlReply::Failed(message) => Err(message),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(&cli);
    if cli.json {
        let value = match &result {
            Ok(message) => serde_json::json!({ "ok": true, "message": message }),
            Err(message) => serde_json::json!({ "ok": false, "error": message }),
        };
        println!("{value}");
    } else {
        match &result {
            Ok(message) => println!("{message}"),
            Err(message) => eprintln!("ikectl: {message}"),
        }
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
