//! The PF_KEY v2 backend. Replies are matched by type, sequence number and
//! our pid (RFC 2367 §2.1: the kernel echoes them); PF_KEY also copies
//! every SA and policy change to all sockets, so anything else on the
//! request socket is skipped. The event socket is the one registered for
//! ESP, which is where the kernel sends ACQUIRE and EXPIRE.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use iked_common::kernel::{
    Encryption, FailureKind, Integrity, KernelEvent, KernelFailure, KernelSocketKind,
    PolicyDirection, PolicyParams, SaCounters, SaId, SaParams, Selector,
};
use nix::sys::socket::{send, MsgFlags};
use zeroize::Zeroizing;

use crate::backend::{
    allocated_spi, check_answered_for, kernel_failure, local_failure, malformed, BackendError,
    DumpedPolicy, DumpedSa, KernelBackend, SpiRequest, SupportedAlgorithms,
};
use crate::bytes::Writer;
use crate::key_socket::{set_receive_timeout, KeySockets, REPLY_TIMEOUT_SECS};
use crate::pfkey_codec as codec;

/// Largest datagram read; PF_KEY messages here are far smaller.
const RECEIVE_BUFFER: usize = 64 * 1024;
/// Messages skipped while waiting for one reply before giving up.
const MAX_SKIPPED: usize = 10_000;
const MAX_DUMP_ENTRIES: usize = 100_000;

/// What one request waits for.
#[derive(Clone, Copy)]
struct Request<'a> {
    operation: &'a str,
    seq: u32,
    reply_type: u8,
    on_events_socket: bool,
}

pub struct PfkeyBackend {
    sockets: KeySockets,
    pid: u32,
    /// Algorithm identifiers from SADB_REGISTER: (auth, encrypt).
    supported: Option<(Vec<u8>, Vec<u8>)>,
}

impl PfkeyBackend {
    pub fn new(requests: OwnedFd, events: OwnedFd) -> Result<PfkeyBackend, BackendError> {
        for fd in [&requests, &events] {
            set_receive_timeout(fd.as_fd(), REPLY_TIMEOUT_SECS).map_err(|errno| {
                BackendError::SocketOption {
                    backend: "pfkey",
                    option: "SO_RCVTIMEO",
                    errno,
                }
            })?;
        }
        Ok(PfkeyBackend {
            sockets: KeySockets::new(requests, events, RECEIVE_BUFFER),
            pid: std::process::id(),
            supported: None,
        })
    }

    /// The sockets, for capturing what the kernel answers
    /// ([`KeySockets::set_capture`]: how the codec tests' replies were
    /// recorded from real kernels).
    pub fn sockets(&mut self) -> &mut KeySockets {
        &mut self.sockets
    }

    /// Sends a request and waits for the reply of `reply_type` carrying our
    /// sequence number and pid; returns the reply datagram.
    fn transact(
        &mut self,
        operation: &str,
        message: Writer,
        seq: u32,
        reply_type: u8,
        on_events_socket: bool,
    ) -> Result<Zeroizing<Vec<u8>>, KernelFailure> {
        let request = Request {
            operation,
            seq,
            reply_type,
            on_events_socket,
        };
        Self::transact_on(&mut self.sockets, self.pid, request, message)
    }

    /// [`Self::transact`] on the sockets alone, for the event reader.
    fn transact_on(
        sockets: &mut KeySockets,
        pid: u32,
        request: Request<'_>,
        message: Writer,
    ) -> Result<Zeroizing<Vec<u8>>, KernelFailure> {
        let Request {
            operation,
            seq,
            reply_type,
            on_events_socket,
        } = request;
        sockets.send_request(operation, on_events_socket, message)?;
        for _ in 0..MAX_SKIPPED {
            let datagram =
                sockets.receive_reply(operation, on_events_socket, "kernel did not answer")?;
            let m = match codec::decode(&datagram) {
                Ok(m) => m,
                Err(e) => {
                    log::warn!("malformed message skipped: {e}");
                    continue;
                }
            };
            if m.pid != pid || m.seq != seq || m.message_type != reply_type {
                continue;
            }
            if m.errno != 0 {
                return Err(kernel_failure(operation, i32::from(m.errno), None));
            }
            return Ok(datagram);
        }
        Err(local_failure(
            FailureKind::Kernel,
            format!("{operation}: no reply among {MAX_SKIPPED} messages"),
        ))
    }

    /// Sends a dump request and collects the entries (the last has seq 0).
    fn dump(
        &mut self,
        operation: &str,
        message_type: u8,
        satype: u8,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, KernelFailure> {
        let seq = self.sockets.next_seq();
        let request = codec::encode_bare(message_type, satype, seq, self.pid);
        match send(
            self.sockets.requests.as_raw_fd(),
            &request.bytes,
            MsgFlags::empty(),
        ) {
            Ok(_) => {}
            // An empty database answers ENOENT.
            Err(nix::Error::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(kernel_failure(operation, e as i32, None)),
        }
        let mut entries = Vec::new();
        let mut skipped = 0;
        loop {
            let datagram = self
                .sockets
                .receive_reply(operation, false, "dump did not finish")?;
            let (is_ours, errno, last) = match codec::decode(&datagram) {
                Ok(m) => (
                    m.pid == self.pid && m.message_type == message_type,
                    m.errno,
                    m.seq == 0,
                ),
                Err(e) => {
                    log::warn!("malformed message skipped: {e}");
                    (false, 0, false)
                }
            };
            if !is_ours {
                skipped += 1;
                if skipped > MAX_SKIPPED {
                    return Err(local_failure(
                        FailureKind::Kernel,
                        format!("{operation}: dump drowned in other messages"),
                    ));
                }
                continue;
            }
            if errno == nix::libc::ENOENT as u8 {
                return Ok(entries);
            }
            if errno != 0 {
                return Err(kernel_failure(operation, i32::from(errno), None));
            }
            if entries.len() >= MAX_DUMP_ENTRIES {
                return Err(local_failure(
                    FailureKind::Kernel,
                    format!("{operation}: more than {MAX_DUMP_ENTRIES} entries"),
                ));
            }
            entries.push(datagram);
            if last {
                return Ok(entries);
            }
        }
    }

    /// Refuses transforms the kernel did not list at registration.
    fn check_supported(&self, sa: &SaParams) -> Result<(), KernelFailure> {
        // Linux's af_key looks encryption up among the plain ciphers only
        // (xfrm_ealg_get_byid): a combined-mode cipher can never be added,
        // whatever the registration listed; say so, not "ENOSYS".
        if sa.encryption.is_aead() {
            return Err(aead_refused(sa));
        }
        let Some((auth, encrypt)) = &self.supported else {
            return Ok(());
        };
        let missing = |what: &str, hint: &str| {
            local_failure(
                FailureKind::Unsupported,
                format!("add SA: the kernel's PF_KEY does not offer {what} ({hint})"),
            )
        };
        if let Some(id) = codec::encryption_id(sa.encryption) {
            if !encrypt.contains(&id) {
                // Combined-mode ciphers were refused above.
                return Err(missing(sa.encryption.name(), "crypto module not loaded?"));
            }
        }
        if let Some(integrity) = sa.integrity {
            if !auth.contains(&codec::integrity_id(integrity)) {
                return Err(missing(integrity.name(), "crypto module not loaded?"));
            }
        }
        Ok(())
    }

    fn resolve_acquire(
        sockets: &mut KeySockets,
        pid: u32,
        info: codec::AcquireInfo,
    ) -> Result<KernelEvent, KernelFailure> {
        const OP: &str = "look up the policy of an ACQUIRE";
        let seq = sockets.next_seq();
        let message = codec::encode_get_policy(info.policy_id, info.direction, seq, pid);
        let request = Request {
            operation: OP,
            seq,
            reply_type: codec::SADB_X_SPDGET,
            on_events_socket: false,
        };
        let reply = Self::transact_on(sockets, pid, request, message)?;
        let m = codec::decode(&reply).map_err(|e| malformed(OP, e))?;
        let policy = codec::decode_policy(&m).map_err(|e| malformed(OP, e))?;
        let reqid = policy.templates.first().map(|t| t.reqid).unwrap_or(0);
        // PF_KEY names the policy, not the packet: its selector stands in.
        Ok(KernelEvent::Acquire {
            selector: policy.selector,
            src: info.src,
            dst: info.dst,
            reqid,
            seq: info.seq,
        })
    }
}

fn unexpressible(operation: &str, e: codec::Unexpressible) -> KernelFailure {
    local_failure(FailureKind::Unsupported, format!("{operation}: {e}"))
}

impl KernelBackend for PfkeyBackend {
    fn kind(&self) -> KernelSocketKind {
        KernelSocketKind::Pfkey
    }

    fn register(&mut self) -> Result<SupportedAlgorithms, KernelFailure> {
        const OP: &str = "register for ESP";
        let seq = self.sockets.next_seq();
        let request =
            codec::encode_bare(codec::SADB_REGISTER, codec::SADB_SATYPE_ESP, seq, self.pid);
        let reply = self.transact(OP, request, seq, codec::SADB_REGISTER, true)?;
        let m = codec::decode(&reply).map_err(|e| malformed(OP, e))?;
        let (auth, encrypt) = codec::decode_supported(&m).map_err(|e| malformed(OP, e))?;
        let encryption = [
            Encryption::AesCbc,
            Encryption::AesGcm16,
            Encryption::CamelliaCbc,
        ]
        .into_iter()
        .filter(|e| codec::encryption_id(*e).is_some_and(|id| encrypt.contains(&id)))
        .collect();
        // HMAC-SHA-256 is left out: Linux PF_KEY truncates it to 96 bits.
        let integrity = [
            Integrity::HmacSha1_96,
            Integrity::HmacSha384_192,
            Integrity::HmacSha512_256,
        ]
        .into_iter()
        .filter(|i| auth.contains(&codec::integrity_id(*i)))
        .collect();
        self.supported = Some((auth, encrypt));
        Ok(SupportedAlgorithms {
            encryption,
            integrity,
            reported_by_kernel: true,
        })
    }

    fn allocate_spi(&mut self, spi_request: &SpiRequest) -> Result<u32, KernelFailure> {
        const OP: &str = "allocate SPI";
        // The protocol is ESP, the only SA type we ask for.
        let r = spi_request;
        let reqid = r.reqid;
        if reqid > codec::IPSEC_MANUAL_REQID_MAX {
            return Err(local_failure(
                FailureKind::Unsupported,
                format!("{OP}: reqid {reqid} above what PF_KEY keeps"),
            ));
        }
        let seq = self.sockets.next_seq();
        let request =
            codec::encode_getspi(r.src, r.dst, r.mode, reqid, r.min, r.max, seq, self.pid);
        let reply = self.transact(OP, request, seq, codec::SADB_GETSPI, false)?;
        let m = codec::decode(&reply).map_err(|e| malformed(OP, e))?;
        let info = codec::decode_sa(&m).map_err(|e| malformed(OP, e))?;
        allocated_spi(OP, &info.id, spi_request)
    }

    fn add_sa(&mut self, sa: &SaParams, update: bool) -> Result<(), KernelFailure> {
        let operation = if update { "update SA" } else { "add SA" };
        self.check_supported(sa)?;
        let seq = self.sockets.next_seq();
        let request = codec::encode_add_sa(sa, update, seq, self.pid)
            .map_err(|e| unexpressible(operation, e))?;
        if sa.replay_window > codec::PFKEY_MAX_REPLAY_WINDOW {
            log::info!(
                "{}: replay window {} reduced to {} (PF_KEY limit)",
                sa.id,
                sa.replay_window,
                codec::PFKEY_MAX_REPLAY_WINDOW
            );
        }
        let reply_type = if update {
            codec::SADB_UPDATE
        } else {
            codec::SADB_ADD
        };
        self.transact(operation, request, seq, reply_type, false)
            .map(drop)
    }

    fn delete_sa(&mut self, id: &SaId) -> Result<(), KernelFailure> {
        let seq = self.sockets.next_seq();
        let request = codec::encode_delete_sa(id, seq, self.pid);
        self.transact("delete SA", request, seq, codec::SADB_DELETE, false)
            .map(drop)
    }

    fn sa_counters(&mut self, id: &SaId) -> Result<SaCounters, KernelFailure> {
        const OP: &str = "read SA counters";
        let seq = self.sockets.next_seq();
        let request = codec::encode_get_sa(id, seq, self.pid);
        let reply = self.transact(OP, request, seq, codec::SADB_GET, false)?;
        let m = codec::decode(&reply).map_err(|e| malformed(OP, e))?;
        let info = codec::decode_sa(&m).map_err(|e| malformed(OP, e))?;
        check_answered_for(OP, id, &info.id)?;
        let current = info
            .current
            .ok_or_else(|| malformed(OP, "no current lifetime in the reply"))?;
        Ok(SaCounters {
            bytes: current.bytes,
            packets: u64::from(current.packets),
        })
    }

    /// PF_KEY's SADB_X_MIGRATE is not in our codec, and pfkey keeps no
    /// key material with which to add the SAs anew at the new addresses:
    /// refused, so that ikev2 rekeys the Child SA instead.
    fn migrate(&mut self, request: &crate::backend::MigrateRequest) -> Result<(), KernelFailure> {
        Err(crate::backend::local_failure(
            FailureKind::Unsupported,
            format!(
                "migrate policy {} dir {:?}: PF_KEY: iked moves SAs to new addresses only over \
                 XFRM (XFRM_MSG_MIGRATE); the Child SA must be rekeyed instead",
                request.selector, request.direction
            ),
        ))
    }

    fn add_policy(&mut self, policy: &PolicyParams) -> Result<(), KernelFailure> {
        const OP: &str = "add policy";
        let seq = self.sockets.next_seq();
        let request =
            codec::encode_add_policy(policy, seq, self.pid).map_err(|e| unexpressible(OP, e))?;
        self.transact(OP, request, seq, codec::SADB_X_SPDADD, false)
            .map(drop)
    }

    fn delete_policy(
        &mut self,
        selector: &Selector,
        direction: PolicyDirection,
    ) -> Result<(), KernelFailure> {
        let seq = self.sockets.next_seq();
        let request = codec::encode_delete_policy(selector, direction, seq, self.pid);
        self.transact(
            "delete policy",
            request,
            seq,
            codec::SADB_X_SPDDELETE,
            false,
        )
        .map(drop)
    }

    fn dump_sas(&mut self) -> Result<Vec<DumpedSa>, KernelFailure> {
        const OP: &str = "dump SAs";
        let entries = self.dump(OP, codec::SADB_DUMP, codec::SADB_SATYPE_ESP)?;
        entries
            .iter()
            .map(|d| {
                codec::decode(d)
                    .and_then(|m| codec::decode_sa(&m))
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
        let entries = self.dump(OP, codec::SADB_X_SPDDUMP, codec::SADB_SATYPE_UNSPEC)?;
        let decoded = entries.iter().map(|d| {
            codec::decode(d)
                .and_then(|m| codec::decode_policy(&m))
                .map(|p| DumpedPolicy::new(p.selector, p.direction, p.priority, &p.templates))
        });
        Ok(DumpedPolicy::readable("pfkey", decoded))
    }

    fn event_fd(&self) -> BorrowedFd<'_> {
        self.sockets.event_fd()
    }

    fn read_events(&mut self) -> Result<Vec<KernelEvent>, KernelFailure> {
        let pid = self.pid;
        self.sockets
            .read_events("pfkey", |sockets, datagram, events| {
                decode_events(sockets, pid, datagram, events)
            })
    }
}

/// The event in one datagram of the registered socket; `sockets` serve to
/// look up an ACQUIRE's policy.
fn decode_events(
    sockets: &mut KeySockets,
    pid: u32,
    datagram: &[u8],
    events: &mut Vec<KernelEvent>,
) {
    let m = match codec::decode(datagram) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("malformed event ignored: {e}");
            return;
        }
    };
    let event = match m.message_type {
        codec::SADB_ACQUIRE if m.satype == codec::SADB_SATYPE_ESP => {
            match codec::decode_acquire(&m) {
                Ok(info) => {
                    PfkeyBackend::resolve_acquire(sockets, pid, info).map_err(|f| f.message)
                }
                Err(e) => Err(format!("malformed ACQUIRE: {e}")),
            }
        }
        codec::SADB_EXPIRE => {
            codec::decode_expire(&m).map_err(|e| format!("malformed EXPIRE: {e}"))
        }
        // Copies of SA/policy changes broadcast to every socket.
        _ => return,
    };
    match event {
        Ok(event) => events.push(event),
        Err(message) => log::warn!("{message}"),
    }
}

/// Why PF_KEY cannot install `sa`'s combined-mode cipher, and what to do.
fn aead_refused(sa: &SaParams) -> KernelFailure {
    local_failure(
        FailureKind::Unsupported,
        format!(
            "add SA {}: Linux PF_KEY cannot install combined-mode ciphers such as {}; \
             use `set kernel xfrm`, or a non-AEAD transform (e.g. `childsa enc aes-256 \
             auth hmac-sha2-512`; not hmac-sha2-256, which PF_KEY truncates) for this policy",
            sa.id,
            sa.encryption.name()
        ),
    )
}

#[cfg(test)]
mod aead_tests {
    use super::*;
    use crate::test_fixtures::{esp_gcm_sa, flow_selector};

    #[test]
    fn a_combined_mode_cipher_is_refused_with_what_to_do_instead() {
        let sa = esp_gcm_sa("192.0.2.1", "192.0.2.2", 0x1234, flow_selector());
        let failure = aead_refused(&sa);
        assert_eq!(failure.kind, FailureKind::Unsupported);
        let text = &failure.message;
        assert!(
            text.contains("PF_KEY cannot install combined-mode"),
            "{text}"
        );
        assert!(text.contains(sa.encryption.name()), "{text}");
        assert!(text.contains("set kernel xfrm"), "{text}");
        assert!(!text.contains("no ESP support"), "{text}");
    }
}
