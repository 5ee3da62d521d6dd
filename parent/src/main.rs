//! iked: the parent process, and the entry point of every child (each child
//! is this same binary, exec'ed with a hidden role argument).

mod certstore;
mod cli;
mod control;
mod daemon;
mod eap;
mod flows;
mod load_checks;
mod monitor;
mod notify;
mod spawn;
mod stats;
mod users;

use std::process::ExitCode;

use clap::Parser;
use iked_common::ipc::{Role, Verbosity};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    iked_common::logging::configure_syslog(iked_common::logging::SyslogSettings {
        facility: cli.syslog_facility,
        socket: cli.syslog_socket.clone(),
    });
    if let Some(name) = &cli.child_role {
        let status = match Role::from_name(name) {
            Some(Role::Ikev2) => {
                if cli.log_keys {
                    iked_ikev2::engine::enable_key_log();
                }
                iked_ikev2::process::run(cli.foreground)
            }
            Some(Role::Pfkey) => iked_pfkey::process::run(cli.foreground),
            Some(Role::Ca) => iked_ca::process::run(cli.foreground),
            _ => {
                iked_common::logging::print_fatal(&format!("unknown child role {name:?}"));
                2
            }
        };
        return ExitCode::from(status as u8);
    }
    if cli.version {
        println!("iked {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let verbosity = match cli.verbose {
        0 => Verbosity::Brief,
        1 => Verbosity::Verbose,
        _ => Verbosity::Debug,
    };
    match daemon::run(&cli, verbosity) {
        Ok(code) => code,
        Err(message) => {
            iked_common::logging::print_fatal(&message);
            log::error!("{message}");
            ExitCode::FAILURE
        }
    }
}
