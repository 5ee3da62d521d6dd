//! Several ikev2 workers on one gateway: which worker a datagram belongs
//! to, decided by the kernel, with no dispatcher of ours in user space.
//!
//! Each worker is a confined ikev2 process with its own UDP sockets. The
//! sockets of one (port, family) join one SO_REUSEPORT group, and a classic
//! BPF program attached to the group (SO_ATTACH_REUSEPORT_CBPF) picks the
//! socket, and so the worker, from the IKE header (RFC 7296 3.1):
//!
//! - our own SPI carries the worker: its first octet modulo the number of
//!   workers is the worker's index ([`WorkerSlot::stamp_spi`]). Our SPI is
//!   the responder's SPI when the sender set the Initiator flag, and the
//!   initiator's SPI when it did not;
//! - a new IKE_SA_INIT request (responder SPI zero) has no SPI of ours yet:
//!   the program hashes the initiator's SPI (its low 32 bits modulo the
//!   count), so a retransmission, and the retry with a cookie or another
//!   KE group, reach the same worker;
//! - anything else (too short, a NAT keepalive, ESP in UDP, which the kernel
//!   takes before the socket sees it) is left to the kernel's own hash: any
//!   worker drops what is not IKE.
//!
//! On port 4500 IKE follows the four zero octets of the non-ESP marker
//! (RFC 3948 2.2), so the program reads four octets further on.
//!
//! [`worker_of_datagram`] is the same rule in Rust, for in-process tests of
//! several engines; a test below proves the kernel follows it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The most ikev2 workers a gateway runs (`set workers`): the program
/// picks from one octet, and every worker is a process.
pub const MAX_WORKERS: u16 = 64;

/// One worker's place among the workers of a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct WorkerSlot {
    /// 0-based.
    pub index: u16,
    /// At least 1, at most [`MAX_WORKERS`].
    pub count: u16,
}

impl Default for WorkerSlot {
    fn default() -> Self {
        Self::SINGLE
    }
}

impl WorkerSlot {
    /// The only worker: every SPI and datagram is its own.
    pub const SINGLE: WorkerSlot = WorkerSlot { index: 0, count: 1 };

    /// `None` unless `0 < count <= MAX_WORKERS` and `index < count`.
    pub fn new(index: u16, count: u16) -> Option<WorkerSlot> {
        (count > 0 && count <= MAX_WORKERS && index < count).then_some(WorkerSlot { index, count })
    }

    /// `random` (an SPI of ours, as its eight octets on the wire) with its
    /// first octet changed as little as possible so that it names this
    /// worker. The other seven octets keep their randomness.
    pub fn stamp_spi(&self, mut random: [u8; 8]) -> [u8; 8] {
        let count = u32::from(self.count.max(1));
        let index = u32::from(self.index) % count;
        let first = u32::from(random[0]);
        let mut stamped = first - first % count + index;
        if stamped > 0xff {
            stamped -= count;
        }
        random[0] = stamped as u8;
        random
    }

    /// Whether an SPI of ours (as on the wire) was stamped by this worker.
    pub fn owns_spi(&self, spi: [u8; 8]) -> bool {
        worker_of_own_spi(spi, self.count) == self.index
    }

    /// Whether this worker owns `key` (a policy's name, say), for work that
    /// exactly one worker must do: a policy's initiations and its traps.
    pub fn owns_key(&self, key: &[u8]) -> bool {
        self.count <= 1 || (fnv1a(key) % u32::from(self.count)) as u16 == self.index
    }
}

/// The worker an SPI of ours belongs to.
pub fn worker_of_own_spi(spi: [u8; 8], count: u16) -> u16 {
    if count <= 1 {
        return 0;
    }
    u16::from(spi[0]) % count
}

/// The worker the kernel program sends `payload` (a UDP payload, non-ESP
/// marker included when `non_esp_marker`) to, or `None` where the kernel's
/// own hash decides (not an IKE header we read).
pub fn worker_of_datagram(payload: &[u8], non_esp_marker: bool, count: u16) -> Option<u16> {
    let offset = if non_esp_marker { 4 } else { 0 };
    if payload.len() < offset + IKE_HEADER_LEN {
        return None;
    }
    if non_esp_marker && payload[..4] != [0; 4] {
        return None;
    }
    let header = &payload[offset..];
    let count32 = u32::from(count.max(1));
    let initiator_flag = header[19] & FLAG_INITIATOR != 0;
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let chosen = if !initiator_flag {
        u32::from(header[0]) % count32
    } else if word(8) != 0 || word(12) != 0 {
        u32::from(header[8]) % count32
    } else {
        word(4) % count32
    };
    Some(chosen as u16)
}

const IKE_HEADER_LEN: usize = 28;
/// RFC 7296 3.1: set by the original initiator of the IKE SA.
const FLAG_INITIATOR: u8 = 0x08;

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

// Classic BPF, as <linux/filter.h> spells it.
const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_LEN: u16 = 0x80;
const BPF_JEQ: u16 = 0x10;
const BPF_JGE: u16 = 0x30;
const BPF_JSET: u16 = 0x40;
const BPF_MOD: u16 = 0x90;
const BPF_K: u16 = 0x00;
const BPF_A: u16 = 0x10;
/// Out of range for any group: the kernel falls back to its hash.
const KERNEL_CHOOSES: u32 = u32::MAX;
const SO_ATTACH_REUSEPORT_CBPF: nix::libc::c_int = 51;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> nix::libc::sock_filter {
    nix::libc::sock_filter { code, jt, jf, k }
}

/// The program of [`worker_of_datagram`]. The kernel runs it with the
/// packet's data starting at the UDP payload.
pub fn worker_selector_program(non_esp_marker: bool, count: u16) -> Vec<nix::libc::sock_filter> {
    let m: u32 = if non_esp_marker { 4 } else { 0 };
    let count = u32::from(count.max(1));
    let mut p = Vec::new();
    p.push(op(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0));
    // Too short for an IKE header: the kernel's hash.
    p.push(op(
        BPF_JMP | BPF_JGE | BPF_K,
        1,
        0,
        m + IKE_HEADER_LEN as u32,
    ));
    p.push(op(BPF_RET | BPF_K, 0, 0, KERNEL_CHOOSES));
    if non_esp_marker {
        // Not the zero marker: ESP (or garbage), not IKE.
        p.push(op(BPF_LD | BPF_W | BPF_ABS, 0, 0, 0));
        p.push(op(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 0));
        p.push(op(BPF_RET | BPF_K, 0, 0, KERNEL_CHOOSES));
    }
    // Flags octet: Initiator set means the sender is the original
    // initiator, so our SPI is the responder's.
    p.push(op(BPF_LD | BPF_B | BPF_ABS, 0, 0, m + 19));
    p.push(op(
        BPF_JMP | BPF_JSET | BPF_K,
        3,
        0,
        u32::from(FLAG_INITIATOR),
    ));
    // We initiated: our SPI is the initiator's.
    p.push(op(BPF_LD | BPF_B | BPF_ABS, 0, 0, m));
    p.push(op(BPF_ALU | BPF_MOD | BPF_K, 0, 0, count));
    p.push(op(BPF_RET | BPF_A, 0, 0, 0));
    // The peer initiated: the responder SPI, unless it is still zero.
    p.push(op(BPF_LD | BPF_W | BPF_ABS, 0, 0, m + 8));
    p.push(op(BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 0));
    p.push(op(BPF_LD | BPF_W | BPF_ABS, 0, 0, m + 12));
    p.push(op(BPF_JMP | BPF_JEQ | BPF_K, 3, 0, 0));
    p.push(op(BPF_LD | BPF_B | BPF_ABS, 0, 0, m + 8));
    p.push(op(BPF_ALU | BPF_MOD | BPF_K, 0, 0, count));
    p.push(op(BPF_RET | BPF_A, 0, 0, 0));
    // A new IKE_SA_INIT: the low half of the initiator's SPI.
    p.push(op(BPF_LD | BPF_W | BPF_ABS, 0, 0, m + 4));
    p.push(op(BPF_ALU | BPF_MOD | BPF_K, 0, 0, count));
    p.push(op(BPF_RET | BPF_A, 0, 0, 0));
    p
}

/// Sets SO_REUSEPORT, before bind: every worker's socket for one port
/// and family must have it.
pub fn enable_reuseport(socket: BorrowedFd<'_>) -> io::Result<()> {
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReusePort, &true)
        .map_err(io::Error::from)
}

/// Attaches the selector to the reuseport group `socket` belongs to. The
/// kernel numbers a group's sockets in the order they were bound, so the
/// socket bound i-th must be worker i's.
pub fn attach_worker_selector(
    socket: BorrowedFd<'_>,
    non_esp_marker: bool,
    count: u16,
) -> io::Result<()> {
    let mut program = worker_selector_program(non_esp_marker, count);
    let fprog = nix::libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: fprog points at `program`, alive for the call; the kernel
    // copies the program.
    let rc = unsafe {
        nix::libc::setsockopt(
            socket.as_raw_fd(),
            nix::libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            &fprog as *const nix::libc::sock_fprog as *const nix::libc::c_void,
            std::mem::size_of::<nix::libc::sock_fprog>() as nix::libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
