//! The sandbox probe (tests only; never packaged): confines itself as one
//! child role through the daemon's own code path
//! (`iked_common::privileges::sandbox::confine`: OpenSSL initialisation,
//! `drop_privileges`, Landlock, the role's seccomp filter), then makes one
//! forbidden attempt and reports what happened. tests/tests/sandbox.rs runs
//! it once per role and attempt, so each attempt is a fresh process.
//!
//! Usage: sandbox-probe ROLE ATTEMPT CHROOT [SIBLING_PID] [--seccomp-log | --no-sandbox]
//!
//! Exit status: 0 the attempt succeeded, 3 it was refused (the errno is
//! printed as "refused: NAME"), 2 the probe itself failed; killed by SIGSYS
//! when the filter killed it. `idle` as ATTEMPT confines and waits 60 s:
//! the sibling other probes try to signal and trace.
//! `--seccomp-log` logs instead of killing, so what Landlock alone refuses
//! shows; `--no-sandbox` only drops privileges (the control case).

use std::ffi::CString;
use std::time::Duration;

use iked_common::ipc::Role;
use iked_common::privileges::drop_privileges;
use iked_common::privileges::sandbox::{confine, Confinement, ViolationAction};
use nix::libc;

fn usage() -> ! {
    eprintln!(
        "usage: sandbox-probe ROLE ATTEMPT CHROOT [SIBLING_PID] [--seccomp-log|--no-sandbox]"
    );
    std::process::exit(2)
}

fn errno_name(errno: i32) -> String {
    match errno {
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::ESRCH => "ESRCH".into(),
        libc::EAFNOSUPPORT => "EAFNOSUPPORT".into(),
        libc::ECONNREFUSED => "ECONNREFUSED".into(),
        other => format!("errno {other}"),
    }
}

/// The result of a raw system call: Ok, or the errno.
fn check(rc: libc::c_long) -> Result<libc::c_long, i32> {
    if rc < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(rc)
    }
}

fn os_error(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn open(path: &str, flags: i32) -> Result<libc::c_long, i32> {
    let path = CString::new(path).expect("path");
    // SAFETY: a NUL-terminated path; the descriptor leaks into our exit.
    check(unsafe { libc::open(path.as_ptr(), flags, 0o600) } as libc::c_long)
}

fn socket(family: i32, kind: i32, protocol: i32) -> Result<libc::c_long, i32> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::socket(family, kind, protocol) } as libc::c_long)
}

fn attempt(name: &str, sibling: Option<i32>) -> Result<(), i32> {
    let sibling = || sibling.unwrap_or_else(|| usage());
    match name {
        "open-shadow" => open("/etc/shadow", libc::O_RDONLY).map(drop),
        "open-key" => open("/key", libc::O_RDONLY).map(drop),
        "write-tmp" => {
            let fd = open("/tmp/probe", libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?;
            // SAFETY: writes two bytes from a live buffer.
            check(unsafe { libc::write(fd as i32, b"x\n".as_ptr().cast(), 2) } as libc::c_long)
                .map(drop)
        }
        "socket-inet-dgram" => socket(libc::AF_INET, libc::SOCK_DGRAM, 0).map(drop),
        "route-source" => {
            // What ikev2's old route_source did (now pfkey's lookup over IPC).
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(os_error)?;
            socket.connect("127.0.0.1:500").map_err(os_error)?;
            socket.local_addr().map(drop).map_err(os_error)
        }
        "socket-inet-stream" => socket(libc::AF_INET, libc::SOCK_STREAM, 0).map(drop),
        "socket-netlink" => socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE).map(drop),
        "socket-packet" => socket(libc::AF_PACKET, libc::SOCK_RAW, 0).map(drop),
        "socket-unix" => socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).map(drop),
        "tcp-connect" => {
            // Landlock's network rules refuse the connect (ABI >= 4).
            let fd = socket(libc::AF_INET, libc::SOCK_STREAM, 0)? as i32;
            let address = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 9u16.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: a live sockaddr_in and its exact size.
            check(unsafe {
                libc::connect(
                    fd,
                    (&address as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            } as libc::c_long)
            .map(drop)
        }
        "ptrace-sibling" => {
            // SAFETY: integer arguments only.
            check(unsafe {
                libc::ptrace(
                    libc::PTRACE_ATTACH,
                    sibling(),
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                )
            })
            .map(drop)
        }
        "kill-sibling" => {
            // SAFETY: integer arguments only.
            check(unsafe { libc::kill(sibling(), libc::SIGTERM) } as libc::c_long).map(drop)
        }
        "execve" => {
            let program = CString::new("/bin/sh").expect("path");
            let argv = [program.as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            // SAFETY: NUL-terminated strings and NULL-terminated arrays.
            check(
                unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) }
                    as libc::c_long,
            )
            .map(drop)
        }
        "idle" => {
            // Waits through the event loop's own calls (the filter allows them).
            let mut poller = iked_common::event::Poller::new().map_err(|_| 0)?;
            let _ = poller.wait(Some(Duration::from_secs(60)));
            Ok(())
        }
        _ => usage(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags: Vec<&str> = args
        .iter()
        .filter(|a| a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let (Some(role), Some(name), Some(chroot)) = (
        positional.first().and_then(|r| Role::from_name(r)),
        positional.get(1),
        positional.get(2),
    ) else {
        usage()
    };
    let sibling = positional
        .get(3)
        .map(|p| p.parse().unwrap_or_else(|_| usage()));
    let user = nix::unistd::User::from_name("_iked")
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            eprintln!("sandbox-probe: user _iked does not exist");
            std::process::exit(2)
        });
    let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
    if flags.contains(&"--no-sandbox") {
        if let Err(e) = drop_privileges(role, chroot, uid, gid) {
            eprintln!("sandbox-probe: {e}");
            std::process::exit(2)
        }
    } else {
        let on_violation = if flags.contains(&"--seccomp-log") {
            ViolationAction::Log
        } else {
            ViolationAction::Kill
        };
        match confine(&Confinement {
            role,
            chroot_dir: chroot.to_string(),
            uid,
            gid,
            on_violation,
            read_only_dirs: Vec::new(),
        }) {
            // One write: allowed in every role.
            Ok(report) => eprintln!("landlock: {}", report.landlock),
            Err(e) => {
                eprintln!("sandbox-probe: {e}");
                std::process::exit(2)
            }
        }
    }
    let status = match attempt(name, sibling) {
        Ok(()) => {
            eprintln!("outcome: allowed");
            0
        }
        Err(errno) => {
            eprintln!("outcome: refused: {}", errno_name(errno));
            3
        }
    };
    std::process::exit(status)
}
