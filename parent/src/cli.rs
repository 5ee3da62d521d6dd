//! Command line of iked, as in OpenBSD iked(8).

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "iked",
    version,
    about = "IKEv2 daemon (privilege-separated)",
    disable_version_flag = true
)]
pub struct Cli {
    /// Do not daemonize; log to stderr.
    #[arg(short = 'd')]
    pub foreground: bool,

    /// Only check the configuration file for validity, then exit.
    #[arg(short = 'n')]
    pub check_only: bool,

    /// Start in passive mode, whatever the configuration says.
    #[arg(short = 'S')]
    pub passive: bool,

    /// Disable NAT traversal: do not listen on the NAT-T port.
    #[arg(short = 'T')]
    pub no_natt: bool,

    /// Enforce NAT traversal: listen on the NAT-T port only.
    #[arg(short = 't')]
    pub natt_only: bool,

    /// Print the version and exit.
    #[arg(short = 'V')]
    pub version: bool,

    /// More verbose logging; repeat for more.
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Define a macro for the configuration file (name=value).
    #[arg(short = 'D', value_name = "macro=value")]
    pub macros: Vec<String>,

    /// Configuration file.
    #[arg(short = 'f', value_name = "file", default_value = "/etc/iked.conf")]
    pub config: PathBuf,

    /// UDP encapsulation (NAT-T) port.
    #[arg(short = 'p', value_name = "port", default_value_t = 4500)]
    pub natt_port: u16,

    /// Control socket.
    #[arg(
        short = 's',
        value_name = "socket",
        default_value = "/var/run/iked.sock"
    )]
    pub socket: PathBuf,

    /// Log the IKE and Child SA session keys, for interop debugging only:
    /// anyone who reads the log can decrypt the traffic.
    #[arg(long = "log-keys")]
    pub log_keys: bool,

    /// Debugging only, with -d: the children's seccomp filters log a
    /// forbidden system call (kernel audit log) instead of killing.
    #[arg(long = "seccomp-log")]
    pub seccomp_log: bool,

    /// Internal: run as this privilege-separated child process.
    #[arg(long = "privsep-child", hide = true, value_name = "role")]
    pub child_role: Option<String>,

    /// Syslog facility of every line (daemon, local0 ... local7, auth, ...).
    #[arg(
        long = "syslog-facility",
        value_name = "facility",
        default_value = "daemon",
        value_parser = iked_common::logging::Facility::from_name
    )]
    pub syslog_facility: iked_common::logging::Facility,

    /// The local syslog daemon's socket.
    #[arg(
        long = "syslog-socket",
        value_name = "path",
        default_value = iked_common::logging::DEFAULT_SYSLOG_SOCKET
    )]
    pub syslog_socket: PathBuf,
}
