//! The system calls each child may make once confined: a seccomp-bpf
//! allow-list per role, with argument checks where the call alone would
//! allow too much. Anything else kills the process (SECCOMP_RET_KILL_PROCESS),
//! or is only logged with `iked -d --seccomp-log`.
//!
//! How the lists were found: the privsep and strongSwan interop tests were
//! run under `strace -f` with the filters in log mode, and every system
//! call a child made after its seccomp(2) call was listed, with the
//! arguments of fcntl, setsockopt and socket; the kernel's audit records
//! of SECCOMP_RET_LOG (type 1326, in dmesg) over the same runs named no
//! call outside the lists. Then everything ran again in kill mode, and
//! the kernel lab's tunnels (XFRM and PF_KEY, real ESP). Debug builds add
//! fcntl(F_GETFD): std checks a descriptor is open before closing it.
//! `tests/tests/sandbox.rs` probes what the lists refuse.
//!
//! No child may create a socket: every socket a child uses is opened by the parent and handed over
//! before the filter is installed. No child may open a file, exec, fork,
//! signal or trace another process, or change its credentials.
//!
//! OpenSSL: `sandbox::confine` initialises it before the chroot and the
//! filter (OPENSSL_init_ssl reads the configuration file then, never
//! again), lets glibc load its time zone (the first gmtime_r opens
//! /etc/localtime; certificate validity checks call it), and seeds its
//! DRBG when the kernel's pool is ready. Afterwards
//! the primitives we use (HMAC, PRFs, AEAD, DH/ECDH/X25519 key generation
//! and derivation) make no system call of their own except getrandom(2),
//! to seed the DRBG (when the pool was not ready before the filter) and to
//! reseed it; OpenSSL 3 opens no /dev/urandom when getrandom works. Memory
//! comes through malloc (brk, mmap, munmap, mremap, madvise), locks are
//! futexes. Seen in the kernel lab: an ikev2 whose DRBG was seeded only
//! after the filter ran on under the kill filter.

use nix::libc;

/// One argument check: `(argument[index] & mask) == value`, on the low
/// 32 bits (every argument checked here is an int).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgIs {
    pub index: u8,
    pub mask: u32,
    pub value: u32,
}

/// `argument[index] == value`.
const fn arg(index: u8, value: i32) -> ArgIs {
    ArgIs {
        index,
        mask: u32::MAX,
        value: value as u32,
    }
}

/// `argument[index] & mask == value`.
const fn arg_masked(index: u8, mask: i32, value: i32) -> ArgIs {
    ArgIs {
        index,
        mask: mask as u32,
        value: value as u32,
    }
}

/// One system call a role may make.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    /// The name as in syscalls(2); the man page shows it.
    pub name: &'static str,
    pub number: i64,
    /// Empty: any arguments. Otherwise the call is allowed when all the
    /// checks of at least one entry hold.
    pub only: &'static [&'static [ArgIs]],
    /// Why the role needs it.
    pub why: &'static str,
}

const fn any(name: &'static str, number: i64, why: &'static str) -> Allowed {
    Allowed {
        name,
        number,
        only: &[],
        why,
    }
}

const fn only(
    name: &'static str,
    number: i64,
    only: &'static [&'static [ArgIs]],
    why: &'static str,
) -> Allowed {
    Allowed {
        name,
        number,
        only,
        why,
    }
}

/// What every child's shell needs: the event loop, the channels, logging,
/// memory, time, exit.
pub const EVERY_CHILD: &[Allowed] = &[
    any("write", libc::SYS_write, "log lines to stderr (iked -d)"),
    only(
        "sendto",
        libc::SYS_sendto,
        // No destination address: only on connected sockets (syslog's
        // /dev/log, the kernel key sockets), never to a new peer.
        &[&[arg(4, 0)]],
        "syslog lines; pfkey's requests to the kernel",
    ),
    any(
        "sendmsg",
        libc::SYS_sendmsg,
        "IPC frames (and descriptors) to the parent and siblings",
    ),
    any(
        "recvmsg",
        libc::SYS_recvmsg,
        "IPC frames from the parent and siblings",
    ),
    any("epoll_create1", libc::SYS_epoll_create1, "the event loop"),
    any("epoll_ctl", libc::SYS_epoll_ctl, "the event loop"),
    any(
        "epoll_pwait",
        libc::SYS_epoll_pwait,
        "the event loop (rustix's wait)",
    ),
    any(
        "epoll_pwait2",
        libc::SYS_epoll_pwait2,
        "the event loop with a nanosecond timeout",
    ),
    any(
        "ppoll",
        libc::SYS_ppoll,
        "bounded waits on a channel before exit",
    ),
    any("close", libc::SYS_close, "descriptors we are done with"),
    only(
        "fcntl",
        libc::SYS_fcntl,
        &[&[arg(1, libc::F_GETFD)]],
        "std's check that a descriptor is open before closing it (debug builds)",
    ),
    any("brk", libc::SYS_brk, "malloc"),
    only(
        "mmap",
        libc::SYS_mmap,
        // Never executable memory.
        &[&[arg_masked(2, libc::PROT_EXEC, 0)]],
        "malloc of large blocks",
    ),
    only(
        "mprotect",
        libc::SYS_mprotect,
        &[&[arg_masked(2, libc::PROT_EXEC, 0)]],
        "malloc growing a heap; never to make memory executable",
    ),
    any("munmap", libc::SYS_munmap, "free of large blocks"),
    any("mremap", libc::SYS_mremap, "realloc of large blocks"),
    any(
        "madvise",
        libc::SYS_madvise,
        "free returning memory to the kernel",
    ),
    any(
        "futex",
        libc::SYS_futex,
        "the logger's lock, OpenSSL's locks",
    ),
    any(
        "clock_gettime",
        libc::SYS_clock_gettime,
        "timers (when the vDSO is not used)",
    ),
    any(
        "getrandom",
        libc::SYS_getrandom,
        "OpenSSL's DRBG reseeding; std's hash seeds",
    ),
    any("getpid", libc::SYS_getpid, "the pid in log lines"),
    any(
        "sigaltstack",
        libc::SYS_sigaltstack,
        "std's stack-overflow handler at exit",
    ),
    any(
        "restart_syscall",
        libc::SYS_restart_syscall,
        "an interrupted wait resumed",
    ),
    any("exit_group", libc::SYS_exit_group, "exit"),
];

/// ikev2: the IKE UDP sockets (given by the parent) and the engine.
pub const IKEV2: &[Allowed] = &[only(
    "setsockopt",
    libc::SYS_setsockopt,
    &[
        &[arg(1, libc::IPPROTO_IP), arg(2, libc::IP_PKTINFO)],
        &[arg(1, libc::IPPROTO_IPV6), arg(2, libc::IPV6_RECVPKTINFO)],
    ],
    "learn each datagram's local address on the wildcard-bound UDP sockets",
)];

/// pfkey: the kernel key sockets (given by the parent).
pub const PFKEY: &[Allowed] = &[
    // The signalfd is made before the filter; only it is read() (every
    // other descriptor is a socket, read with recvmsg/recvfrom).
    any(
        "read",
        libc::SYS_read,
        "SIGTERM from the signalfd: flush our kernel entries, then exit",
    ),
    any(
        "getppid",
        libc::SYS_getppid,
        "tell the parent's death (re-parenting) from its SIGTERM",
    ),
    any(
        "recvfrom",
        libc::SYS_recvfrom,
        "replies and events from the kernel key sockets",
    ),
    // SAFETY of the rule: no socket is ever created in pfkey, so only the
    // XFRM event socket it was given can be bound (to join multicast
    // groups, which CAP_NET_ADMIN allows anyway).
    any(
        "bind",
        libc::SYS_bind,
        "the XFRM event socket gets a netlink port id",
    ),
    only(
        "setsockopt",
        libc::SYS_setsockopt,
        &[
            &[arg(1, libc::SOL_SOCKET), arg(2, libc::SO_RCVTIMEO)],
            &[
                arg(1, libc::SOL_NETLINK),
                arg(2, libc::NETLINK_ADD_MEMBERSHIP),
            ],
            &[arg(1, libc::SOL_NETLINK), arg(2, libc::NETLINK_CAP_ACK)],
            &[arg(1, libc::SOL_NETLINK), arg(2, libc::NETLINK_EXT_ACK)],
        ],
        "reply timeout; XFRM event groups and acknowledgement format",
    ),
];

/// ca: nothing beyond every child's list; its keys arrive over IPC.
pub const CA: &[Allowed] = &[];

use crate::ipc::Role;

/// Every system call `role` may make once confined. The parent has no
/// filter (it is root and opens what the children get).
pub fn allowed(role: Role) -> Vec<&'static Allowed> {
    let own: &[&[Allowed]] = match role {
        Role::Parent => return Vec::new(),
        Role::Ikev2 => &[EVERY_CHILD, IKEV2],
        Role::Pfkey => &[EVERY_CHILD, PFKEY],
        Role::Ca => &[EVERY_CHILD, CA],
    };
    own.iter().flat_map(|list| list.iter()).collect()
}

fn names(list: &[&Allowed]) -> String {
    let names: Vec<String> = list
        .iter()
        .map(|a| {
            if a.only.is_empty() {
                a.name.to_string()
            } else {
                format!("{}*", a.name)
            }
        })
        .collect();
    if names.is_empty() {
        "nothing more".into()
    } else {
        names.join(", ")
    }
}

/// The mdoc(7) table of iked(8)'s "what each process may do", generated
/// from the lists above; tests/tests/man_pages.rs checks the page has it
/// verbatim. A star marks a call allowed only with certain arguments.
pub fn man_page_table() -> String {
    let every: Vec<&Allowed> = EVERY_CHILD.iter().collect();
    let own = |list: &'static [Allowed]| -> Vec<&'static Allowed> { list.iter().collect() };
    let ikev2 = own(IKEV2);
    let rows = [
        ("every child", "by role", names(&every)),
        ("ikev2", "no files, no TCP", names(&ikev2)),
        ("pfkey", "no files, no TCP", names(&own(PFKEY))),
        ("ca", "reads key dirs only, no TCP", names(&own(CA))),
    ];
    let mut out = String::new();
    out.push_str(".\\\" Generated from common/src/privileges/syscalls.rs by\n");
    out.push_str(".\\\" iked_common::privileges::syscalls::man_page_table().\n");
    out.push_str(".Bl -column \"every child\" \"reads key dirs only, no TCP\" \"system calls\"\n");
    out.push_str(".It Em process Ta Em Landlock Ta Em system calls (seccomp)\n");
    for (process, landlock, calls) in rows {
        out.push_str(&format!(".It {process} Ta {landlock} Ta {calls}\n"));
    }
    out.push_str(".El\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_role_lists_a_call_twice() {
        for role in [Role::Ikev2, Role::Pfkey, Role::Ca] {
            let mut names: Vec<&str> = allowed(role).iter().map(|a| a.name).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len(), "{role} lists a system call twice");
        }
    }

    #[test]
    fn no_role_may_create_a_socket() {
        for role in [Role::Ikev2, Role::Pfkey, Role::Ca] {
            assert!(
                !allowed(role).iter().any(|a| a.number == libc::SYS_socket),
                "{role} may create sockets"
            );
        }
    }

    #[test]
    fn no_child_may_open_exec_fork_signal_or_trace() {
        let forbidden = [
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_kill,
            libc::SYS_tgkill,
            libc::SYS_ptrace,
            libc::SYS_setuid,
            libc::SYS_prctl,
            libc::SYS_ioctl,
            libc::SYS_seccomp,
        ];
        for role in [Role::Ikev2, Role::Pfkey, Role::Ca] {
            for a in allowed(role) {
                assert!(!forbidden.contains(&a.number), "{role} may call {}", a.name);
            }
        }
    }

    #[test]
    fn the_man_page_table_names_every_role_and_marks_argument_checks() {
        let table = man_page_table();
        for role in ["every child", "ikev2", "pfkey", "ca"] {
            assert!(table.contains(&format!(".It {role} Ta ")), "{table}");
        }
        assert!(table.contains("setsockopt*"));
        assert!(table.contains(" Ta write, sendto*,"), "{table}");
    }
}
