//! The XFRM netlink backend: requests on one socket, each acknowledged by
//! the kernel; ACQUIRE and EXPIRE multicast on the other.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use iked_common::kernel::{
    FailureKind, KernelEvent, KernelFailure, KernelSocketKind, PolicyDirection, PolicyParams,
    SaCounters, SaId, SaParams, Selector,
};

use crate::backend::{
    allocated_spi, check_answered_for, kernel_failure, local_failure, malformed, BackendError,
    DumpedPolicy, DumpedSa, KernelBackend, SpiRequest, SupportedAlgorithms,
};
use crate::bytes::Writer;
use crate::key_socket::{set_int_option, set_receive_timeout, KeySockets, REPLY_TIMEOUT_SECS};
use crate::xfrm_codec::{self as codec, NetlinkMessage};

const SOL_NETLINK: i32 = 270;
const NETLINK_ADD_MEMBERSHIP: i32 = 1;
const NETLINK_CAP_ACK: i32 = 10;
const NETLINK_EXT_ACK: i32 = 11;
/// A dump larger than this is refused rather than held in memory.
const MAX_DUMP_ENTRIES: usize = 100_000;

/// A message of a reply kept after the datagram buffer is reused.
#[derive(Debug, Clone)]
pub struct OwnedMessage {
    pub message_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: Vec<u8>,
}

impl OwnedMessage {
    pub fn borrow(&self) -> NetlinkMessage<'_> {
        NetlinkMessage {
            message_type: self.message_type,
            flags: self.flags,
            seq: self.seq,
            port: 0,
            payload: &self.payload,
        }
    }
}

impl Drop for OwnedMessage {
    // SA dumps carry keys.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.payload);
    }
}

fn option_refused(option: &'static str, errno: nix::Error) -> BackendError {
    BackendError::SocketOption {
        backend: "xfrm",
        option,
        errno,
    }
}

pub struct XfrmBackend {
    sockets: KeySockets,
}

impl XfrmBackend {
    pub fn new(requests: OwnedFd, events: OwnedFd) -> Result<XfrmBackend, BackendError> {
        // Errors come back without our request (and its keys) echoed, and
        // with the kernel's own explanation attached.
        set_int_option(requests.as_fd(), SOL_NETLINK, NETLINK_CAP_ACK, 1)
            .map_err(|errno| option_refused("NETLINK_CAP_ACK", errno))?;
        // Older kernels lack extended acks; errors are then errno alone.
        let _ = set_int_option(requests.as_fd(), SOL_NETLINK, NETLINK_EXT_ACK, 1);
        set_receive_timeout(requests.as_fd(), REPLY_TIMEOUT_SECS)
            .map_err(|errno| option_refused("SO_RCVTIMEO", errno))?;
        Ok(XfrmBackend {
            sockets: KeySockets::new(requests, events, codec::MAX_DATAGRAM),
        })
    }

    /// The sockets, for capturing what the kernel answers
    /// ([`KeySockets::set_capture`]: how the codec tests' replies were
    /// recorded from real kernels).
    pub fn sockets(&mut self) -> &mut KeySockets {
        &mut self.sockets
    }

    /// Sends one request and collects the reply messages up to the
    /// acknowledgement (or NLMSG_DONE for a dump).
    fn transact(
        &mut self,
        operation: &str,
        message: Writer,
        seq: u32,
        dump: bool,
    ) -> Result<Vec<OwnedMessage>, KernelFailure> {
        self.sockets.send_request(operation, false, message)?;
        let mut replies = Vec::new();
        loop {
            let datagram = self
                .sockets
                .receive_reply(operation, false, "kernel did not answer")?;
            let messages = codec::split_messages(&datagram).map_err(|e| {
                local_failure(
                    FailureKind::Kernel,
                    format!("{operation}: malformed kernel reply: {e}"),
                )
            })?;
            for m in messages {
                if m.seq != seq {
                    // A late answer to an earlier request that timed out.
                    log::debug!("xfrm: ignoring reply with sequence {} (want {seq})", m.seq);
                    continue;
                }
                match m.message_type {
                    codec::NLMSG_ERROR => {
                        let ack = codec::decode_ack(&m).map_err(|e| {
                            local_failure(
                                FailureKind::Kernel,
                                format!("{operation}: malformed kernel ack: {e}"),
                            )
                        })?;
                        if ack.errno != 0 {
                            return Err(kernel_failure(
                                operation,
                                ack.errno,
                                ack.message.as_deref(),
                            ));
                        }
                        return Ok(replies);
                    }
                    codec::NLMSG_DONE if dump => return Ok(replies),
                    codec::NLMSG_NOOP => {}
                    codec::NLMSG_OVERRUN => {
                        return Err(local_failure(
                            FailureKind::Kernel,
                            format!("{operation}: netlink overrun"),
                        ))
                    }
                    _ => {
                        if replies.len() >= MAX_DUMP_ENTRIES {
                            return Err(local_failure(
                                FailureKind::Kernel,
                                format!("{operation}: more than {MAX_DUMP_ENTRIES} replies"),
                            ));
                        }
                        replies.push(OwnedMessage {
                            message_type: m.message_type,
                            flags: m.flags,
                            seq: m.seq,
                            payload: m.payload.to_vec(),
                        });
                    }
                }
            }
        }
    }
}

impl KernelBackend for XfrmBackend {
    fn kind(&self) -> KernelSocketKind {
        KernelSocketKind::Xfrm
    }

    fn register(&mut self) -> Result<SupportedAlgorithms, KernelFailure> {
        // Multicast skips sockets whose port id equals the sender's (0, the
        // kernel): an unbound socket would hear nothing. Binding to port 0
        // makes the kernel assign a unique one.
        nix::sys::socket::bind(
            self.sockets.events.as_raw_fd(),
            &nix::sys::socket::NetlinkAddr::new(0, 0),
        )
        .map_err(|e| kernel_failure("bind the XFRM event socket", e as i32, None))?;
        for group in [codec::XFRMNLGRP_ACQUIRE, codec::XFRMNLGRP_EXPIRE] {
            set_int_option(
                self.sockets.events.as_fd(),
                SOL_NETLINK,
                NETLINK_ADD_MEMBERSHIP,
                group as i32,
            )
            .map_err(|e| kernel_failure("subscribe to XFRM events", e as i32, None))?;
        }
        // XFRM has no query for algorithms: the kernel probes the crypto
        // API when an SA names one and answers ENOSYS if it is missing.
        use iked_common::kernel::{Encryption, Integrity};
        Ok(SupportedAlgorithms {
            encryption: vec![
                Encryption::AesCbc,
                Encryption::AesGcm16,
                Encryption::ChaCha20Poly1305,
                Encryption::CamelliaCbc,
            ],
            integrity: vec![
                Integrity::HmacSha1_96,
                Integrity::HmacSha256_128,
                Integrity::HmacSha384_192,
                Integrity::HmacSha512_256,
            ],
            reported_by_kernel: false,
        })
    }

    fn allocate_spi(&mut self, request: &SpiRequest) -> Result<u32, KernelFailure> {
        const OP: &str = "allocate SPI";
        let seq = self.sockets.next_seq();
        let r = request;
        let message =
            codec::encode_alloc_spi(r.src, r.dst, r.protocol, r.mode, r.reqid, r.min, r.max, seq);
        let replies = self.transact(OP, message, seq, false)?;
        let reply = replies
            .first()
            .ok_or_else(|| malformed(OP, "no SA in the reply"))?;
        let info = codec::decode_sa(&reply.borrow()).map_err(|e| malformed(OP, e))?;
        allocated_spi(OP, &info.id, request)
    }

    fn add_sa(&mut self, sa: &SaParams, update: bool) -> Result<(), KernelFailure> {
        let operation = if update { "update SA" } else { "add SA" };
        let seq = self.sockets.next_seq();
        let message = codec::encode_add_sa(sa, update, seq)
            .map_err(|e| local_failure(FailureKind::Invalid, format!("{operation}: {e}")))?;
        self.transact(operation, message, seq, false).map(drop)
    }

    fn delete_sa(&mut self, id: &SaId) -> Result<(), KernelFailure> {
        let seq = self.sockets.next_seq();
        let message = codec::encode_delete_sa(id, seq);
        self.transact("delete SA", message, seq, false).map(drop)
    }

    fn sa_counters(&mut self, id: &SaId) -> Result<SaCounters, KernelFailure> {
        const OP: &str = "read SA counters";
        let seq = self.sockets.next_seq();
        let replies = self.transact(OP, codec::encode_get_sa(id, seq), seq, false)?;
        let reply = replies
            .first()
            .ok_or_else(|| malformed(OP, "no SA in the reply"))?;
        let info = codec::decode_sa(&reply.borrow()).map_err(|e| malformed(OP, e))?;
        check_answered_for(OP, id, &info.id)?;
        Ok(SaCounters {
            bytes: info.current.bytes,
            packets: info.current.packets,
        })
    }

    fn migrate(&mut self, request: &crate::backend::MigrateRequest) -> Result<(), KernelFailure> {
        let seq = self.sockets.next_seq();
        let message = codec::encode_migrate(request, seq);
        self.transact("migrate", message, seq, false).map(drop)
    }

    fn add_policy(&mut self, policy: &PolicyParams) -> Result<(), KernelFailure> {
        let seq = self.sockets.next_seq();
        let message = codec::encode_add_policy(policy, seq);
        self.transact("add policy", message, seq, false).map(drop)
    }

    fn delete_policy(
        &mut self,
        selector: &Selector,
        direction: PolicyDirection,
    ) -> Result<(), KernelFailure> {
        let seq = self.sockets.next_seq();
        let message = codec::encode_delete_policy(selector, direction, seq);
        self.transact("delete policy", message, seq, false)
            .map(drop)
    }

    fn dump_sas(&mut self) -> Result<Vec<DumpedSa>, KernelFailure> {
        const OP: &str = "dump SAs";
        let seq = self.sockets.next_seq();
        let replies = self.transact(
            OP,
            codec::encode_dump(codec::XFRM_MSG_GETSA, seq),
            seq,
            true,
        )?;
        replies
            .iter()
            .map(|m| {
                codec::decode_sa(&m.borrow())
                    .map(|info| DumpedSa {
                        id: info.id,
                        reqid: info.reqid,
                    })
                    .map_err(|e| malformed(OP, e))
            })
            .collect()
    }

    fn dump_policies(&mut self) -> Result<Vec<DumpedPolicy>, KernelFailure> {
        const OP: &str = "dump policies";
        let seq = self.sockets.next_seq();
        let replies = self.transact(
            OP,
            codec::encode_dump(codec::XFRM_MSG_GETPOLICY, seq),
            seq,
            true,
        )?;
        let decoded = replies.iter().map(|m| {
            codec::decode_policy(&m.borrow())
                .map(|p| DumpedPolicy::new(p.selector, p.direction, p.priority, &p.templates))
        });
        Ok(DumpedPolicy::readable("xfrm", decoded))
    }

    fn event_fd(&self) -> BorrowedFd<'_> {
        self.sockets.event_fd()
    }

    fn read_events(&mut self) -> Result<Vec<KernelEvent>, KernelFailure> {
        self.sockets.read_events("xfrm", |_, datagram, events| {
            decode_events(datagram, events)
        })
    }
}

/// The events in one datagram from the XFRM multicast groups.
fn decode_events(datagram: &[u8], events: &mut Vec<KernelEvent>) {
    let messages = match codec::split_messages(datagram) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("xfrm: malformed event datagram ignored: {e}");
            return;
        }
    };
    for m in messages {
        match codec::decode_event(&m) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => log::debug!("xfrm: event type {} ignored", m.message_type),
            Err(e) => log::warn!("xfrm: malformed event ignored: {e}"),
        }
    }
}
