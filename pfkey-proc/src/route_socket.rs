//! The NETLINK_ROUTE socket pfkey holds: requests and their replies, one
//! at a time, bounded in time (the kernel answers at once; the receive
//! timeout only bounds a wedged socket), with the kernel's refusals turned
//! into [`KernelFailure`]s that name the operation. The socket is opened
//! by the parent (root) and handed over before the privilege drop: no
//! child ever calls socket(2). The system calls used on it afterwards are
//! sendto(2) (send without an address) and recvfrom(2) (recv), plus
//! setsockopt(2) once when it is taken.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use iked_common::kernel::{FailureKind, KernelFailure};
use nix::sys::socket::{recv, send, MsgFlags};

use crate::backend::local_failure;
use crate::bytes::Writer;
use crate::key_socket::{set_int_option, set_receive_timeout, REPLY_TIMEOUT_SECS};
use crate::rtnetlink_codec::{
    decode_address, decode_link, decode_route, encode_address, encode_dump_addresses,
    encode_dump_routes, encode_get_link, encode_get_route, encode_route, encode_rule,
    valid_interface_name, AddressInfo, AddressSpec, RouteInfo, RouteSpec, MAX_DUMP_ENTRIES,
};
use crate::xfrm_codec::{
    decode_ack, split_messages, NetlinkMessage, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP,
};

const SOL_NETLINK: i32 = 270;
const NETLINK_EXT_ACK: i32 = 11;
/// NETLINK_ROUTE, for the parent's socket(2).
pub const NETLINK_ROUTE: i32 = 0;
/// Largest datagram read: a dump datagram is at most a page or two; 64 KiB
/// leaves room for any the kernel sends.
const BUFFER_LEN: usize = 64 * 1024;

/// Opens a NETLINK_ROUTE socket: by the parent, for pfkey and for its own
/// flush at stop.
pub fn open_route_socket() -> Result<OwnedFd, String> {
    // SAFETY: a plain system call with integer arguments.
    let fd = unsafe {
        nix::libc::socket(
            nix::libc::AF_NETLINK,
            nix::libc::SOCK_RAW | nix::libc::SOCK_CLOEXEC,
            NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(format!(
            "NETLINK_ROUTE socket: {}",
            nix::Error::last().desc()
        ));
    }
    // SAFETY: socket(2) just returned this descriptor to us alone.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

fn failure(operation: &str, errno: i32, kernel_text: Option<&str>) -> KernelFailure {
    let kind = match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::ESRCH | nix::errno::Errno::ENOENT => FailureKind::NotFound,
        nix::errno::Errno::EEXIST => FailureKind::AlreadyExists,
        nix::errno::Errno::ENETUNREACH | nix::errno::Errno::EHOSTUNREACH => FailureKind::NotFound,
        _ => FailureKind::Kernel,
    };
    let mut message = format!("{operation}: {}", nix::errno::Errno::from_raw(errno).desc());
    if let Some(text) = kernel_text.filter(|t| !t.is_empty()) {
        message.push_str(&format!(" ({text})"));
    }
    KernelFailure {
        kind,
        errno,
        message,
    }
}

fn malformed(operation: &str, e: impl std::fmt::Display) -> KernelFailure {
    local_failure(
        FailureKind::Kernel,
        format!("{operation}: malformed kernel reply: {e}"),
    )
}

pub struct RouteSocket {
    fd: OwnedFd,
    seq: u32,
}

impl RouteSocket {
    /// Takes a NETLINK_ROUTE socket (bound to the network namespace it was
    /// opened in).
    pub fn new(fd: OwnedFd) -> Result<RouteSocket, String> {
        set_receive_timeout(fd.as_fd(), REPLY_TIMEOUT_SECS)
            .map_err(|e| format!("route socket receive timeout: {}", e.desc()))?;
        // The kernel's reason in refusals, where it gives one.
        let _ = set_int_option(fd.as_fd(), SOL_NETLINK, NETLINK_EXT_ACK, 1);
        Ok(RouteSocket { fd, seq: 0 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(&self, operation: &str, request: &Writer) -> Result<(), KernelFailure> {
        loop {
            match send(self.fd.as_raw_fd(), &request.bytes, MsgFlags::empty()) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(failure(operation, e as i32, None)),
                Ok(_) => return Ok(()),
            }
        }
    }

    fn receive(&self, operation: &str) -> Result<Vec<u8>, KernelFailure> {
        let mut buf = vec![0u8; BUFFER_LEN];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC) {
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EAGAIN) => {
                    return Err(local_failure(
                        FailureKind::Kernel,
                        format!("{operation}: kernel did not answer within {REPLY_TIMEOUT_SECS} s"),
                    ))
                }
                Err(e) => return Err(failure(operation, e as i32, None)),
                Ok(n) => break n,
            }
        };
        if n > buf.len() {
            return Err(malformed(operation, format!("datagram of {n} octets cut")));
        }
        buf.truncate(n);
        Ok(buf)
    }

    /// Sends `request` and hands each message of its reply to `each`
    /// until the reply ends: an acknowledgement or error (Ok(true) from
    /// `each` also ends it, for single answers), or NLMSG_DONE of a dump.
    /// Messages of other sequence numbers (a reply that came too late for
    /// an earlier request) are skipped.
    fn exchange(
        &mut self,
        operation: &str,
        build: impl FnOnce(u32) -> Writer,
        mut each: impl FnMut(&NetlinkMessage) -> Result<bool, KernelFailure>,
    ) -> Result<(), KernelFailure> {
        let seq = self.next_seq();
        let request = build(seq);
        self.send(operation, &request)?;
        // Bounded: every datagram waits at most the receive timeout, and a
        // dump is cut off at MAX_DUMP_ENTRIES by the callers' counts; this
        // bounds the datagrams too.
        for _ in 0..MAX_DUMP_ENTRIES {
            let datagram = self.receive(operation)?;
            let messages = split_messages(&datagram).map_err(|e| malformed(operation, e))?;
            // The socket is in no multicast group: everything on it comes
            // from the kernel, addressed to our port.
            for m in messages.iter().filter(|m| m.seq == seq) {
                match m.message_type {
                    NLMSG_NOOP => {}
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let ack = decode_ack(m).map_err(|e| malformed(operation, e))?;
                        if ack.errno == 0 {
                            return Ok(());
                        }
                        return Err(failure(operation, ack.errno, ack.message.as_deref()));
                    }
                    _ => {
                        if each(m)? {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Err(malformed(operation, "reply did not end"))
    }

    /// A request answered by an acknowledgement only.
    fn acknowledged(
        &mut self,
        operation: &str,
        build: impl FnOnce(u32) -> Writer,
    ) -> Result<(), KernelFailure> {
        self.exchange(operation, build, |m| {
            Err(malformed(
                operation,
                format!("unexpected message type {}", m.message_type),
            ))
        })
    }

    /// The route the kernel would use towards `dst` (with `fib_match`, the
    /// FIB entry that matched: its prefix and table).
    pub fn get_route(&mut self, dst: IpAddr, fib_match: bool) -> Result<RouteInfo, KernelFailure> {
        let operation = format!("route lookup for {dst}");
        let mut answer = None;
        self.exchange(
            &operation,
            |seq| encode_get_route(dst, fib_match, seq),
            |m| {
                answer = Some(decode_route(m).map_err(|e| malformed(&operation, e))?);
                Ok(true)
            },
        )?;
        answer.ok_or_else(|| malformed(&operation, "no route in the answer"))
    }

    /// Every route of one family in `table`.
    pub fn routes_in_table(
        &mut self,
        ipv6: bool,
        table: u32,
    ) -> Result<Vec<RouteInfo>, KernelFailure> {
        let operation = "route dump";
        let mut routes = Vec::new();
        let mut seen = 0usize;
        self.exchange(
            operation,
            |seq| encode_dump_routes(ipv6, seq),
            |m| {
                seen += 1;
                if seen > MAX_DUMP_ENTRIES {
                    return Err(malformed(
                        operation,
                        format!("more than {MAX_DUMP_ENTRIES} routes"),
                    ));
                }
                let route = decode_route(m).map_err(|e| malformed(operation, e))?;
                if route.table == table {
                    routes.push(route);
                }
                Ok(false)
            },
        )?;
        Ok(routes)
    }

    /// The host's addresses of one family.
    pub fn addresses(&mut self, ipv6: bool) -> Result<Vec<AddressInfo>, KernelFailure> {
        let operation = "address dump";
        let mut addresses = Vec::new();
        self.exchange(
            operation,
            |seq| encode_dump_addresses(ipv6, seq),
            |m| {
                if addresses.len() >= MAX_DUMP_ENTRIES {
                    return Err(malformed(
                        operation,
                        format!("more than {MAX_DUMP_ENTRIES} addresses"),
                    ));
                }
                addresses.push(decode_address(m).map_err(|e| malformed(operation, e))?);
                Ok(false)
            },
        )?;
        Ok(addresses)
    }

    /// The index of the interface called `name`.
    pub fn link_index(&mut self, name: &str) -> Result<u32, KernelFailure> {
        let operation = format!("interface {name}");
        if !valid_interface_name(name) {
            return Err(local_failure(
                FailureKind::Invalid,
                format!("{operation}: not a valid interface name"),
            ));
        }
        let mut index = None;
        let result = self.exchange(
            &operation,
            |seq| encode_get_link(name, seq),
            |m| {
                index = Some(decode_link(m).map_err(|e| malformed(&operation, e))?.index);
                Ok(true)
            },
        );
        match result {
            // ENODEV: the kernel's answer for a name it does not know.
            Err(f) if f.errno == nix::libc::ENODEV => Err(KernelFailure {
                kind: FailureKind::NotFound,
                message: format!("{operation}: no such interface"),
                ..f
            }),
            Err(f) => Err(f),
            Ok(()) => index.ok_or_else(|| malformed(&operation, "no link in the answer")),
        }
    }

    /// Puts `spec` on its interface; an address already there is refused
    /// (AlreadyExists): it is not ours.
    pub fn add_address(&mut self, spec: &AddressSpec) -> Result<(), KernelFailure> {
        let operation = format!(
            "add address {}/{} on interface {}",
            spec.address, spec.prefix, spec.index
        );
        self.acknowledged(&operation, |seq| encode_address(spec, true, seq))
    }

    /// Removes `spec` from its interface (NotFound when it is not there).
    pub fn delete_address(&mut self, spec: &AddressSpec) -> Result<(), KernelFailure> {
        let operation = format!(
            "delete address {}/{} on interface {}",
            spec.address, spec.prefix, spec.index
        );
        match self.acknowledged(&operation, |seq| encode_address(spec, false, seq)) {
            // EADDRNOTAVAIL: no such address on that interface; ENODEV: the
            // interface itself is gone, and the address with it.
            Err(f) if f.errno == nix::libc::EADDRNOTAVAIL || f.errno == nix::libc::ENODEV => {
                Err(KernelFailure {
                    kind: FailureKind::NotFound,
                    ..f
                })
            }
            other => other,
        }
    }

    pub fn add_route(&mut self, route: &RouteSpec) -> Result<(), KernelFailure> {
        let operation = format!("add route {}/{}", route.dst, route.prefix);
        self.acknowledged(&operation, |seq| encode_route(route, true, seq))
    }

    pub fn delete_route(&mut self, route: &RouteSpec) -> Result<(), KernelFailure> {
        let operation = format!("delete route {}/{}", route.dst, route.prefix);
        self.acknowledged(&operation, |seq| encode_route(route, false, seq))
    }

    pub fn add_rule(&mut self, ipv6: bool, table: u32, priority: u32) -> Result<(), KernelFailure> {
        let operation = format!("add rule to table {table}");
        self.acknowledged(&operation, |seq| {
            encode_rule(ipv6, table, priority, true, seq)
        })
    }

    pub fn delete_rule(
        &mut self,
        ipv6: bool,
        table: u32,
        priority: u32,
    ) -> Result<(), KernelFailure> {
        let operation = format!("delete rule to table {table}");
        self.acknowledged(&operation, |seq| {
            encode_rule(ipv6, table, priority, false, seq)
        })
    }

    /// Removes every route in `table` and every rule of ours to it, of both
    /// families; what is already gone is no error. Returns how many routes
    /// it removed.
    pub fn flush_table(&mut self, table: u32, priority: u32) -> Result<usize, KernelFailure> {
        let mut removed = 0;
        let mut first_error = None;
        for ipv6 in [false, true] {
            match self.routes_in_table(ipv6, table) {
                Ok(routes) => {
                    for route in routes {
                        let spec = RouteSpec {
                            dst: route.dst.unwrap_or(if ipv6 {
                                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                            } else {
                                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                            }),
                            prefix: route.prefix,
                            table,
                            oif: route.oif.unwrap_or(0),
                            gateway: None,
                            source: None,
                        };
                        match self.delete_route(&spec) {
                            Ok(()) => removed += 1,
                            Err(f) if f.kind == FailureKind::NotFound => {}
                            Err(f) => {
                                first_error.get_or_insert(f);
                            }
                        }
                    }
                }
                // No IPv6 in this kernel: nothing of ours there either.
                Err(f) if ipv6 && f.errno == nix::libc::EAFNOSUPPORT => continue,
                Err(f) => {
                    first_error.get_or_insert(f);
                }
            }
            // Duplicates (a rule added by hand as well) go too; bounded.
            for _ in 0..16 {
                match self.delete_rule(ipv6, table, priority) {
                    Ok(()) => continue,
                    Err(f)
                        if f.kind == FailureKind::NotFound
                            || f.errno == nix::libc::EAFNOSUPPORT =>
                    {
                        break
                    }
                    Err(f) => {
                        first_error.get_or_insert(f);
                        break;
                    }
                }
            }
        }
        match first_error {
            Some(f) => Err(f),
            None => Ok(removed),
        }
    }
}
