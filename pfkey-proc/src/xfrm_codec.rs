//! Linux XFRM netlink messages, encoded and decoded by hand to the byte.
//!
//! Layouts follow the kernel's UAPI `<linux/xfrm.h>` and `<linux/netlink.h>`
//! on a 64-bit host: host byte order except SPIs, ports and addresses, which
//! are big-endian; structures padded to their 8-octet alignment; netlink
//! messages and attributes padded to 4 octets. Everything read from the
//! kernel is length-checked and returns an error rather than panicking.

use std::net::IpAddr;

use iked_common::kernel::{
    Encryption, Integrity, IpsecMode, IpsecProtocol, KernelEvent, Lifetime, PolicyDirection,
    PolicyParams, SaId, SaParams, SaTemplate, Selector, UdpEncap,
};

use crate::bytes::{decode_error, family_of, DecodeError, Reader, Writer, AF_INET, AF_INET6};

// <linux/netlink.h>
pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
/// In an error reply: the original message was not echoed (NETLINK_CAP_ACK).
pub const NLM_F_CAPPED: u16 = 0x100;
/// In an error reply: extended-ack attributes follow (NETLINK_EXT_ACK).
pub const NLM_F_ACK_TLVS: u16 = 0x200;
pub const NLMSGERR_ATTR_MSG: u16 = 1;

// <linux/xfrm.h> message types.
pub const XFRM_MSG_NEWSA: u16 = 0x10;
pub const XFRM_MSG_DELSA: u16 = 0x11;
pub const XFRM_MSG_GETSA: u16 = 0x12;
pub const XFRM_MSG_NEWPOLICY: u16 = 0x13;
pub const XFRM_MSG_DELPOLICY: u16 = 0x14;
pub const XFRM_MSG_GETPOLICY: u16 = 0x15;
pub const XFRM_MSG_ALLOCSPI: u16 = 0x16;
pub const XFRM_MSG_ACQUIRE: u16 = 0x17;
pub const XFRM_MSG_EXPIRE: u16 = 0x18;
pub const XFRM_MSG_UPDSA: u16 = 0x1a;
pub const XFRM_MSG_POLEXPIRE: u16 = 0x1b;
pub const XFRM_MSG_FLUSHSA: u16 = 0x1c;
pub const XFRM_MSG_FLUSHPOLICY: u16 = 0x1d;
pub const XFRM_MSG_MIGRATE: u16 = 0x21;

// Attributes.
pub const XFRMA_ALG_AUTH: u16 = 1;
pub const XFRMA_ALG_CRYPT: u16 = 2;
pub const XFRMA_ENCAP: u16 = 4;
pub const XFRMA_TMPL: u16 = 5;
pub const XFRMA_SRCADDR: u16 = 13;
pub const XFRMA_MIGRATE: u16 = 17;
pub const XFRMA_ALG_AEAD: u16 = 18;
pub const XFRMA_ALG_AUTH_TRUNC: u16 = 20;
pub const XFRMA_REPLAY_ESN_VAL: u16 = 23;

// Multicast groups (XFRMNLGRP_*): SA expiry and acquire are all we listen to.
pub const XFRMNLGRP_ACQUIRE: u32 = 1;
pub const XFRMNLGRP_EXPIRE: u32 = 2;

pub const XFRM_MODE_TRANSPORT: u8 = 0;
pub const XFRM_MODE_TUNNEL: u8 = 1;
pub const XFRM_POLICY_IN: u8 = 0;
pub const XFRM_POLICY_OUT: u8 = 1;
pub const XFRM_POLICY_FWD: u8 = 2;
pub const XFRM_POLICY_ALLOW: u8 = 0;
pub const XFRM_STATE_ESN: u8 = 128;
/// "No limit" for byte and packet lifetimes.
pub const XFRM_INF: u64 = u64::MAX;
/// `UDP_ENCAP_ESPINUDP` from <linux/udp.h> (RFC 3948).
pub const UDP_ENCAP_ESPINUDP: u16 = 2;
/// The kernel accepts replay bitmaps of at most this many bits
/// (XFRMA_REPLAY_ESN_MAX is 4096 octets... of which it allows 4096/4/8 words).
pub const MAX_REPLAY_WINDOW: u32 = 4096;

pub const SELECTOR_LEN: usize = 56;
pub const LIFETIME_CFG_LEN: usize = 64;
pub const LIFETIME_CUR_LEN: usize = 32;
pub const USERSA_INFO_LEN: usize = 224;
pub const USERSA_ID_LEN: usize = 24;
pub const USERSPI_INFO_LEN: usize = 232;
pub const USERPOLICY_INFO_LEN: usize = 168;
pub const USERPOLICY_ID_LEN: usize = 64;
pub const USER_TMPL_LEN: usize = 64;
pub const USER_ACQUIRE_LEN: usize = 280;
pub const USER_EXPIRE_LEN: usize = 232;
pub const USER_POLEXPIRE_LEN: usize = 176;
const ALG_NAME_LEN: usize = 64;
/// Longest single datagram we accept from the kernel.
pub const MAX_DATAGRAM: usize = 64 * 1024;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Kernel names of the transforms (crypto API templates used by XFRM).
pub fn encryption_kernel_name(e: Encryption) -> &'static str {
    match e {
        Encryption::AesCbc => "cbc(aes)",
        Encryption::AesGcm16 => "rfc4106(gcm(aes))",
        Encryption::ChaCha20Poly1305 => "rfc7539esp(chacha20,poly1305)",
        Encryption::CamelliaCbc => "cbc(camellia)",
    }
}

pub fn integrity_kernel_name(i: Integrity) -> &'static str {
    match i {
        Integrity::HmacSha1_96 => "hmac(sha1)",
        Integrity::HmacSha256_128 => "hmac(sha256)",
        Integrity::HmacSha384_192 => "hmac(sha384)",
        Integrity::HmacSha512_256 => "hmac(sha512)",
    }
}

/// One netlink message being built: header placeholder, body, attributes.
pub struct MessageBuilder {
    writer: Writer,
}

impl MessageBuilder {
    pub fn new(message_type: u16, flags: u16, seq: u32) -> MessageBuilder {
        let mut writer = Writer::new();
        writer
            .u32_ne(0) // length, patched in finish()
            .u16_ne(message_type)
            .u16_ne(flags)
            .u32_ne(seq)
            .u32_ne(0); // port id: 0 addresses the kernel
        MessageBuilder { writer }
    }

    pub fn body(&mut self) -> &mut Writer {
        &mut self.writer
    }

    pub fn attribute(&mut self, attr_type: u16, build: impl FnOnce(&mut Writer)) {
        self.writer.pad_to(4);
        let start = self.writer.len();
        self.writer.u16_ne(0).u16_ne(attr_type);
        build(&mut self.writer);
        let len = (self.writer.len() - start) as u16;
        self.writer.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.writer.pad_to(4);
    }

    /// The finished message; the Writer zeroes it when dropped.
    pub fn finish(mut self) -> Writer {
        self.writer.pad_to(4);
        let len = self.writer.len() as u32;
        self.writer.bytes[0..4].copy_from_slice(&len.to_ne_bytes());
        self.writer
    }
}

fn protocol_number(p: IpsecProtocol) -> u8 {
    p.number()
}

fn mode_number(m: IpsecMode) -> u8 {
    match m {
        IpsecMode::Transport => XFRM_MODE_TRANSPORT,
        IpsecMode::Tunnel => XFRM_MODE_TUNNEL,
    }
}

fn mode_from_number(n: u8) -> Result<IpsecMode, DecodeError> {
    match n {
        XFRM_MODE_TRANSPORT => Ok(IpsecMode::Transport),
        XFRM_MODE_TUNNEL => Ok(IpsecMode::Tunnel),
        other => Err(decode_error(format!("unsupported XFRM mode {other}"))),
    }
}

pub fn direction_number(d: PolicyDirection) -> u8 {
    match d {
        PolicyDirection::In => XFRM_POLICY_IN,
        PolicyDirection::Out => XFRM_POLICY_OUT,
        PolicyDirection::Fwd => XFRM_POLICY_FWD,
    }
}

fn direction_from_number(n: u8) -> Result<PolicyDirection, DecodeError> {
    match n {
        XFRM_POLICY_IN => Ok(PolicyDirection::In),
        XFRM_POLICY_OUT => Ok(PolicyDirection::Out),
        XFRM_POLICY_FWD => Ok(PolicyDirection::Fwd),
        other => Err(decode_error(format!("unknown policy direction {other}"))),
    }
}

/// `struct xfrm_selector` (56 octets).
fn put_selector(w: &mut Writer, s: &Selector) {
    let mask = |port: u16| if port == 0 { 0 } else { 0xffff };
    w.address16(s.dst)
        .address16(s.src)
        .u16_be(s.dst_port)
        .u16_be(mask(s.dst_port))
        .u16_be(s.src_port)
        .u16_be(mask(s.src_port))
        .u16_ne(family_of(s.src))
        .u8(s.dst_prefix)
        .u8(s.src_prefix)
        .u8(s.protocol)
        .zeros(3)
        .u32_ne(0) // ifindex: any
        .u32_ne(0); // user: unused
}

/// A selector as read, before its address family is settled.
struct RawSelector {
    dst: [u8; 16],
    src: [u8; 16],
    dst_port: u16,
    src_port: u16,
    family: u16,
    dst_prefix: u8,
    src_prefix: u8,
    protocol: u8,
}

fn read_raw_selector(r: &mut Reader) -> Result<RawSelector, DecodeError> {
    let dst = r.array::<16>("selector daddr")?;
    let src = r.array::<16>("selector saddr")?;
    let dst_port = r.u16_be("selector dport")?;
    let _dport_mask = r.u16_be("selector dport_mask")?;
    let src_port = r.u16_be("selector sport")?;
    let _sport_mask = r.u16_be("selector sport_mask")?;
    let family = r.u16_ne("selector family")?;
    let dst_prefix = r.u8("selector prefixlen_d")?;
    let src_prefix = r.u8("selector prefixlen_s")?;
    let protocol = r.u8("selector proto")?;
    r.skip(3 + 4 + 4, "selector ifindex/user")?;
    Ok(RawSelector {
        dst,
        src,
        dst_port,
        src_port,
        family,
        dst_prefix,
        src_prefix,
        protocol,
    })
}

impl RawSelector {
    /// The selector, reading addresses in the selector's own family or, when
    /// the kernel left that 0 (AF_UNSPEC: an SA from ALLOCSPI, a wildcard),
    /// in `fallback`'s.
    fn resolve(self, fallback: u16) -> Result<Selector, DecodeError> {
        let family = if self.family == 0 {
            fallback
        } else {
            self.family
        };
        let selector = Selector {
            src: crate::bytes::address_from_16(self.src, family, "selector saddr")?,
            src_prefix: self.src_prefix,
            dst: crate::bytes::address_from_16(self.dst, family, "selector daddr")?,
            dst_prefix: self.dst_prefix,
            protocol: self.protocol,
            src_port: self.src_port,
            dst_port: self.dst_port,
        };
        if !selector.is_well_formed() {
            return Err(decode_error(format!(
                "selector prefix too long: {selector}"
            )));
        }
        Ok(selector)
    }
}

fn read_selector(r: &mut Reader) -> Result<Selector, DecodeError> {
    // With no family of its own, a wildcard selector's zero addresses read
    // as IPv4 as well as anything.
    read_raw_selector(r)?.resolve(AF_INET)
}

/// `struct xfrm_lifetime_cfg` (64 octets).
fn put_lifetime(w: &mut Writer, l: &Lifetime) {
    let bytes = |n: u64| if n == 0 { XFRM_INF } else { n };
    w.u64_ne(bytes(l.soft_bytes))
        .u64_ne(bytes(l.hard_bytes))
        .u64_ne(XFRM_INF) // soft packet limit
        .u64_ne(XFRM_INF) // hard packet limit
        .u64_ne(l.soft_seconds)
        .u64_ne(l.hard_seconds)
        .u64_ne(0) // soft use-expiry: none
        .u64_ne(0); // hard use-expiry: none
}

fn read_lifetime(r: &mut Reader) -> Result<Lifetime, DecodeError> {
    let unlimited = |n: u64| if n == XFRM_INF { 0 } else { n };
    let soft_bytes = unlimited(r.u64_ne("lft soft_byte_limit")?);
    let hard_bytes = unlimited(r.u64_ne("lft hard_byte_limit")?);
    r.skip(16, "lft packet limits")?;
    let soft_seconds = r.u64_ne("lft soft_add_expires_seconds")?;
    let hard_seconds = r.u64_ne("lft hard_add_expires_seconds")?;
    r.skip(16, "lft use expiry")?;
    Ok(Lifetime {
        soft_bytes,
        hard_bytes,
        soft_seconds,
        hard_seconds,
    })
}

/// `struct xfrm_usersa_info` (224 octets).
#[allow(clippy::too_many_arguments)]
fn put_usersa_info(
    w: &mut Writer,
    selector: &Selector,
    dst: IpAddr,
    spi: u32,
    protocol: u8,
    src: IpAddr,
    lifetime: &Lifetime,
    reqid: u32,
    mode: u8,
    replay_window: u8,
    flags: u8,
) {
    put_selector(w, selector);
    w.address16(dst).u32_be(spi).u8(protocol).zeros(3); // xfrm_id
    w.address16(src);
    put_lifetime(w, lifetime);
    w.zeros(LIFETIME_CUR_LEN); // curlft: kernel-owned
    w.zeros(12); // stats: kernel-owned
    w.u32_ne(0) // seq
        .u32_ne(reqid)
        .u16_ne(family_of(dst))
        .u8(mode)
        .u8(replay_window)
        .u8(flags)
        .zeros(7);
}

/// An SA as the kernel describes it (dump, ALLOCSPI reply, EXPIRE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaInfo {
    pub id: SaId,
    pub selector: Selector,
    pub mode: IpsecMode,
    pub reqid: u32,
    pub lifetime: Lifetime,
    pub replay_window: u8,
    pub flags: u8,
    /// Kernel algorithm names found in the attributes (crypt, auth, aead).
    pub algorithms: Vec<String>,
    pub encap: Option<UdpEncap>,
    /// Replay window from XFRMA_REPLAY_ESN_VAL, if present.
    pub esn_replay_window: Option<u32>,
    /// What the kernel has counted so far (`curlft`).
    pub current: CurrentLifetime,
}

/// `struct xfrm_lifetime_cur` (32 octets): the kernel's counters of an SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CurrentLifetime {
    pub bytes: u64,
    pub packets: u64,
    /// Seconds since the epoch when the SA was added, and first used (0: not yet).
    pub add_time: u64,
    pub use_time: u64,
}

fn read_current_lifetime(r: &mut Reader) -> Result<CurrentLifetime, DecodeError> {
    Ok(CurrentLifetime {
        bytes: r.u64_ne("curlft bytes")?,
        packets: r.u64_ne("curlft packets")?,
        add_time: r.u64_ne("curlft add_time")?,
        use_time: r.u64_ne("curlft use_time")?,
    })
}

fn read_usersa_info(r: &mut Reader) -> Result<SaInfo, DecodeError> {
    let raw_selector = read_raw_selector(r)?;
    let daddr = r.array::<16>("id daddr")?;
    let spi = r.u32_be("id spi")?;
    let proto = r.u8("id proto")?;
    r.skip(3, "id pad")?;
    let saddr = r.array::<16>("saddr")?;
    let lifetime = read_lifetime(r)?;
    let current = read_current_lifetime(r)?;
    r.skip(12, "stats")?;
    let _seq = r.u32_ne("seq")?;
    let reqid = r.u32_ne("reqid")?;
    let family = r.u16_ne("family")?;
    let mode = mode_from_number(r.u8("mode")?)?;
    let replay_window = r.u8("replay_window")?;
    let flags = r.u8("flags")?;
    r.skip(7, "usersa_info pad")?;
    let protocol = IpsecProtocol::from_number(proto)
        .ok_or_else(|| decode_error(format!("SA of protocol {proto}, not ESP")))?;
    let selector = raw_selector.resolve(family)?;
    Ok(SaInfo {
        id: SaId {
            src: crate::bytes::address_from_16(saddr, family, "SA saddr")?,
            dst: crate::bytes::address_from_16(daddr, family, "SA daddr")?,
            protocol,
            spi,
        },
        selector,
        mode,
        reqid,
        lifetime,
        replay_window,
        flags,
        algorithms: Vec::new(),
        encap: None,
        esn_replay_window: None,
        current,
    })
}

/// Why a request could not be encoded (caught by validation first; the codec
/// refuses too, so a bug cannot send a wrong key length to the kernel).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(pub String);

/// Checks the SA's transforms and keys fit each other.
pub fn check_sa_keys(sa: &SaParams) -> Result<(), EncodeError> {
    if !sa
        .encryption
        .key_lengths()
        .contains(&sa.encryption_key.len())
    {
        return Err(EncodeError(format!(
            "{} key of {} octets (expected one of {:?})",
            sa.encryption.name(),
            sa.encryption_key.len(),
            sa.encryption.key_lengths()
        )));
    }
    match (sa.encryption.is_aead(), sa.integrity) {
        (true, Some(i)) => Err(EncodeError(format!(
            "{} is combined-mode; {} must not be added",
            sa.encryption.name(),
            i.name()
        ))),
        (false, None) => Err(EncodeError(format!(
            "{} needs an integrity transform",
            sa.encryption.name()
        ))),
        (true, None) if !sa.integrity_key.is_empty() => Err(EncodeError(
            "integrity key given without integrity transform".into(),
        )),
        (false, Some(i)) if sa.integrity_key.len() != i.key_length() => Err(EncodeError(format!(
            "{} key of {} octets (expected {})",
            i.name(),
            sa.integrity_key.len(),
            i.key_length()
        ))),
        _ => Ok(()),
    }?;
    if sa.replay_window > MAX_REPLAY_WINDOW {
        return Err(EncodeError(format!(
            "replay window {} exceeds {MAX_REPLAY_WINDOW}",
            sa.replay_window
        )));
    }
    if sa.id.src.is_ipv4() != sa.id.dst.is_ipv4() {
        return Err(EncodeError("SA endpoints of different families".into()));
    }
    if !sa.selector.is_well_formed() {
        return Err(EncodeError(format!("malformed selector {}", sa.selector)));
    }
    Ok(())
}

fn put_alg_name(w: &mut Writer, name: &str) {
    let mut field = [0u8; ALG_NAME_LEN];
    field[..name.len()].copy_from_slice(name.as_bytes());
    w.raw(&field);
}

/// XFRM_MSG_NEWSA (or UPDSA when `update`), acknowledged.
pub fn encode_add_sa(sa: &SaParams, update: bool, seq: u32) -> Result<Writer, EncodeError> {
    check_sa_keys(sa)?;
    let message_type = if update {
        XFRM_MSG_UPDSA
    } else {
        XFRM_MSG_NEWSA
    };
    let mut m = MessageBuilder::new(message_type, NLM_F_REQUEST | NLM_F_ACK, seq);
    // A window over 32 packets, or ESN, needs the variable-size replay state
    // (the legacy u8 field is capped to a 32-bit bitmap by the kernel).
    let use_esn_state = sa.esn || sa.replay_window > 32;
    let legacy_window = if use_esn_state {
        0
    } else {
        sa.replay_window as u8
    };
    let flags = if sa.esn { XFRM_STATE_ESN } else { 0 };
    put_usersa_info(
        m.body(),
        &sa.selector,
        sa.id.dst,
        sa.id.spi,
        protocol_number(sa.id.protocol),
        sa.id.src,
        &sa.lifetime,
        sa.reqid,
        mode_number(sa.mode),
        legacy_window,
        flags,
    );
    let key = sa.encryption_key.expose();
    let key_bits = (key.len() * 8) as u32;
    if sa.encryption.is_aead() {
        // struct xfrm_algo_aead: name, key length in bits (salt included), ICV bits.
        m.attribute(XFRMA_ALG_AEAD, |w| {
            put_alg_name(w, encryption_kernel_name(sa.encryption));
            w.u32_ne(key_bits).u32_ne(128).raw(key);
        });
    } else {
        // struct xfrm_algo: name, key length in bits, key.
        m.attribute(XFRMA_ALG_CRYPT, |w| {
            put_alg_name(w, encryption_kernel_name(sa.encryption));
            w.u32_ne(key_bits).raw(key);
        });
    }
    if let Some(integrity) = sa.integrity {
        let auth_key = sa.integrity_key.expose();
        // struct xfrm_algo_auth: name, key bits, truncation bits, key.
        m.attribute(XFRMA_ALG_AUTH_TRUNC, |w| {
            put_alg_name(w, integrity_kernel_name(integrity));
            w.u32_ne((auth_key.len() * 8) as u32)
                .u32_ne(integrity.truncated_bits())
                .raw(auth_key);
        });
    }
    if let Some(encap) = sa.encap {
        // struct xfrm_encap_tmpl: type, sport, dport (big-endian), pad, original address.
        m.attribute(XFRMA_ENCAP, |w| {
            w.u16_ne(UDP_ENCAP_ESPINUDP)
                .u16_be(encap.src_port)
                .u16_be(encap.dst_port)
                .zeros(2)
                .zeros(16);
        });
    }
    if use_esn_state {
        let words = sa.replay_window.div_ceil(32).max(1);
        // struct xfrm_replay_state_esn: bmp_len, oseq, seq, oseq_hi, seq_hi, window, bitmap.
        m.attribute(XFRMA_REPLAY_ESN_VAL, |w| {
            w.u32_ne(words)
                .u32_ne(0)
                .u32_ne(0)
                .u32_ne(0)
                .u32_ne(0)
                .u32_ne(sa.replay_window)
                .zeros(words as usize * 4);
        });
    }
    Ok(m.finish())
}

/// XFRM_MSG_ALLOCSPI: answered with a NEWSA carrying the chosen SPI.
#[allow(clippy::too_many_arguments)]
pub fn encode_alloc_spi(
    src: IpAddr,
    dst: IpAddr,
    protocol: IpsecProtocol,
    mode: IpsecMode,
    reqid: u32,
    min: u32,
    max: u32,
    seq: u32,
) -> Writer {
    let mut m = MessageBuilder::new(XFRM_MSG_ALLOCSPI, NLM_F_REQUEST | NLM_F_ACK, seq);
    // The larval SA's selector is left wildcard; the full SA sets it.
    let any = if dst.is_ipv4() {
        Selector::hosts(
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        )
    } else {
        Selector::hosts(
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        )
    };
    let any = Selector {
        src_prefix: 0,
        dst_prefix: 0,
        ..any
    };
    put_usersa_info(
        m.body(),
        &any,
        dst,
        0,
        protocol_number(protocol),
        src,
        &Lifetime::default(),
        reqid,
        mode_number(mode),
        0,
        0,
    );
    m.body().u32_ne(min).u32_ne(max);
    m.finish()
}

/// XFRM_MSG_DELSA for (dst, SPI, protocol), with the source as XFRMA_SRCADDR.
pub fn encode_delete_sa(id: &SaId, seq: u32) -> Writer {
    encode_sa_by_id(XFRM_MSG_DELSA, id, seq)
}

/// XFRM_MSG_GETSA for one SA, addressed as for DELSA. The kernel answers
/// with XFRM_MSG_NEWSA (whose `curlft` carries the counters), then the ack.
pub fn encode_get_sa(id: &SaId, seq: u32) -> Writer {
    encode_sa_by_id(XFRM_MSG_GETSA, id, seq)
}

/// `struct xfrm_usersa_id` and XFRMA_SRCADDR, the body DELSA and GETSA share.
fn encode_sa_by_id(message_type: u16, id: &SaId, seq: u32) -> Writer {
    let mut m = MessageBuilder::new(message_type, NLM_F_REQUEST | NLM_F_ACK, seq);
    m.body()
        .address16(id.dst)
        .u32_be(id.spi)
        .u16_ne(family_of(id.dst))
        .u8(protocol_number(id.protocol))
        .zeros(1);
    m.attribute(XFRMA_SRCADDR, |w| {
        w.address16(id.src);
    });
    m.finish()
}

/// `struct xfrm_user_tmpl` (64 octets).
fn put_template(w: &mut Writer, t: &SaTemplate) {
    w.address16(t.dst)
        .u32_be(0) // any SPI
        .u8(protocol_number(t.protocol))
        .zeros(3)
        .u16_ne(family_of(t.dst))
        .zeros(2)
        .address16(t.src)
        .u32_ne(t.reqid)
        .u8(mode_number(t.mode))
        .u8(0) // share: any
        .u8(0) // optional: no, the SA is required
        .zeros(1)
        .u32_ne(u32::MAX) // aalgos: all
        .u32_ne(u32::MAX) // ealgos
        .u32_ne(u32::MAX); // calgos
}

fn read_template(r: &mut Reader) -> Result<(SaTemplate, u16), DecodeError> {
    let daddr = r.array::<16>("tmpl daddr")?;
    let _spi = r.u32_be("tmpl spi")?;
    let proto = r.u8("tmpl proto")?;
    r.skip(3, "tmpl pad")?;
    let family = r.u16_ne("tmpl family")?;
    r.skip(2, "tmpl pad")?;
    let saddr = r.array::<16>("tmpl saddr")?;
    let reqid = r.u32_ne("tmpl reqid")?;
    let mode = mode_from_number(r.u8("tmpl mode")?)?;
    r.skip(3 + 12, "tmpl share/optional/algos")?;
    let protocol = IpsecProtocol::from_number(proto)
        .ok_or_else(|| decode_error(format!("template of protocol {proto}, not ESP")))?;
    Ok((
        SaTemplate {
            src: crate::bytes::address_from_16(saddr, family, "tmpl saddr")?,
            dst: crate::bytes::address_from_16(daddr, family, "tmpl daddr")?,
            protocol,
            mode,
            reqid,
        },
        family,
    ))
}

/// XFRM_MSG_NEWPOLICY with one ESP template.
pub fn encode_add_policy(p: &PolicyParams, seq: u32) -> Writer {
    let mut m = MessageBuilder::new(XFRM_MSG_NEWPOLICY, NLM_F_REQUEST | NLM_F_ACK, seq);
    let w = m.body();
    put_selector(w, &p.selector);
    put_lifetime(w, &Lifetime::default());
    w.zeros(LIFETIME_CUR_LEN)
        .u32_ne(p.priority)
        .u32_ne(0) // index: kernel assigns
        .u8(direction_number(p.direction))
        .u8(XFRM_POLICY_ALLOW)
        .u8(0) // flags
        .u8(0) // share
        .zeros(4);
    m.attribute(XFRMA_TMPL, |w| put_template(w, &p.template));
    m.finish()
}

/// `struct xfrm_user_migrate` (76 octets).
pub const USER_MIGRATE_LEN: usize = 76;

/// XFRM_MSG_MIGRATE for one policy (`struct xfrm_userpolicy_id`: its
/// selector and direction) with one `xfrm_user_migrate` (old and new
/// endpoints of its template and of the SAs the kernel finds by them, the
/// protocol, mode and reqid) and, when the moved SAs are to be
/// UDP-encapsulated, XFRMA_ENCAP (`struct xfrm_encap_tmpl`).
pub fn encode_migrate(request: &crate::backend::MigrateRequest, seq: u32) -> Writer {
    let mut m = MessageBuilder::new(XFRM_MSG_MIGRATE, NLM_F_REQUEST | NLM_F_ACK, seq);
    put_selector(m.body(), &request.selector);
    m.body()
        .u32_ne(0) // index: look up by selector
        .u8(direction_number(request.direction))
        .zeros(3);
    m.attribute(XFRMA_MIGRATE, |w| {
        w.address16(request.old_dst)
            .address16(request.old_src)
            .address16(request.new_dst)
            .address16(request.new_src)
            .u8(protocol_number(request.protocol))
            .u8(mode_number(request.mode))
            .u16_ne(0) // reserved
            .u32_ne(request.reqid)
            .u16_ne(family_of(request.old_dst))
            .u16_ne(family_of(request.new_dst));
    });
    if let Some(encap) = request.encap {
        m.attribute(XFRMA_ENCAP, |w| {
            w.u16_ne(UDP_ENCAP_ESPINUDP)
                .u16_be(encap.src_port)
                .u16_be(encap.dst_port)
                .zeros(2)
                .zeros(16);
        });
    }
    m.finish()
}

/// XFRM_MSG_DELPOLICY by selector and direction.
pub fn encode_delete_policy(selector: &Selector, direction: PolicyDirection, seq: u32) -> Writer {
    let mut m = MessageBuilder::new(XFRM_MSG_DELPOLICY, NLM_F_REQUEST | NLM_F_ACK, seq);
    put_selector(m.body(), selector);
    m.body()
        .u32_ne(0) // index: look up by selector
        .u8(direction_number(direction))
        .zeros(3);
    m.finish()
}

/// A dump of all SAs (XFRM_MSG_GETSA) or policies (XFRM_MSG_GETPOLICY).
pub fn encode_dump(message_type: u16, seq: u32) -> Writer {
    MessageBuilder::new(message_type, NLM_F_REQUEST | NLM_F_DUMP, seq).finish()
}

/// XFRM_MSG_FLUSHSA for one protocol. pfkey never sends it on its own
/// behalf (other software's SAs must survive); kept for lab tooling.
pub fn encode_flush_sa(protocol: IpsecProtocol, seq: u32) -> Writer {
    let mut m = MessageBuilder::new(XFRM_MSG_FLUSHSA, NLM_F_REQUEST | NLM_F_ACK, seq);
    m.body().u8(protocol_number(protocol));
    m.finish()
}

/// XFRM_MSG_FLUSHPOLICY (all policies of the main type). Same caveat.
pub fn encode_flush_policy(seq: u32) -> Writer {
    MessageBuilder::new(XFRM_MSG_FLUSHPOLICY, NLM_F_REQUEST | NLM_F_ACK, seq).finish()
}

/// One netlink message inside a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetlinkMessage<'a> {
    pub message_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub port: u32,
    pub payload: &'a [u8],
}

/// Splits a datagram into its netlink messages; a length that lies is an error.
pub fn split_messages(datagram: &[u8]) -> Result<Vec<NetlinkMessage<'_>>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let mut r = Reader::new(rest);
        let len = r.u32_ne("nlmsg_len")? as usize;
        let message_type = r.u16_ne("nlmsg_type")?;
        let flags = r.u16_ne("nlmsg_flags")?;
        let seq = r.u32_ne("nlmsg_seq")?;
        let port = r.u32_ne("nlmsg_pid")?;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(decode_error(format!(
                "netlink message length {len} outside {NLMSG_HDRLEN}..={}",
                rest.len()
            )));
        }
        let payload = rest
            .get(NLMSG_HDRLEN..len)
            .ok_or_else(|| decode_error("netlink payload"))?;
        out.push(NetlinkMessage {
            message_type,
            flags,
            seq,
            port,
            payload,
        });
        rest = rest.get(align4(len).min(rest.len())..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Netlink attributes after a fixed header: (type, value) pairs.
pub fn split_attributes(bytes: &[u8]) -> Result<Vec<(u16, &[u8])>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let mut r = Reader::new(rest);
        let len = r.u16_ne("nla_len")? as usize;
        let attr_type = r.u16_ne("nla_type")? & 0x3fff; // strip NESTED / NET_BYTEORDER
        if len < 4 || len > rest.len() {
            return Err(decode_error(format!(
                "attribute {attr_type} length {len} outside 4..={}",
                rest.len()
            )));
        }
        let value = rest
            .get(4..len)
            .ok_or_else(|| decode_error("attribute value"))?;
        out.push((attr_type, value));
        rest = rest.get(align4(len).min(rest.len())..).unwrap_or(&[]);
    }
    Ok(out)
}

/// An NLMSG_ERROR payload: 0 is an acknowledgement, otherwise -errno, with
/// the kernel's extended-ack text when it gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetlinkAck {
    pub errno: i32,
    pub message: Option<String>,
}

pub fn decode_ack(m: &NetlinkMessage) -> Result<NetlinkAck, DecodeError> {
    let mut r = Reader::new(m.payload);
    let error = r.i32_ne("nlmsgerr error")?;
    let echoed_len = {
        let mut h = r;
        h.u32_ne("nlmsgerr msg len")? as usize
    };
    let mut message = None;
    if m.flags & NLM_F_ACK_TLVS != 0 {
        // The echoed request is cut to its header when capped.
        let skip = if m.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            align4(echoed_len)
        };
        r.skip(skip, "nlmsgerr echoed message")?;
        let tlvs = r.take(r.remaining(), "ext ack")?;
        for (attr_type, value) in split_attributes(tlvs)? {
            if attr_type == NLMSGERR_ATTR_MSG {
                let text = value.split(|&b| b == 0).next().unwrap_or(&[]);
                message = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    let errno = error
        .checked_neg()
        .filter(|e| *e >= 0)
        .ok_or_else(|| decode_error(format!("nlmsgerr error {error} is not -errno")))?;
    Ok(NetlinkAck { errno, message })
}

fn read_alg_name(value: &[u8]) -> Result<String, DecodeError> {
    let name = value
        .get(..ALG_NAME_LEN)
        .ok_or_else(|| decode_error("algorithm attribute shorter than its name"))?;
    let text = name.split(|&b| b == 0).next().unwrap_or(&[]);
    Ok(String::from_utf8_lossy(text).into_owned())
}

fn apply_sa_attributes(info: &mut SaInfo, attrs: &[u8]) -> Result<(), DecodeError> {
    for (attr_type, value) in split_attributes(attrs)? {
        match attr_type {
            XFRMA_ALG_CRYPT | XFRMA_ALG_AUTH | XFRMA_ALG_AUTH_TRUNC | XFRMA_ALG_AEAD => {
                info.algorithms.push(read_alg_name(value)?)
            }
            XFRMA_ENCAP => {
                let mut r = Reader::new(value);
                let encap_type = r.u16_ne("encap type")?;
                let src_port = r.u16_be("encap sport")?;
                let dst_port = r.u16_be("encap dport")?;
                if encap_type != UDP_ENCAP_ESPINUDP {
                    return Err(decode_error(format!("encapsulation type {encap_type}")));
                }
                info.encap = Some(UdpEncap { src_port, dst_port });
            }
            XFRMA_REPLAY_ESN_VAL => {
                let mut r = Reader::new(value);
                r.skip(20, "replay state counters")?;
                info.esn_replay_window = Some(r.u32_ne("replay_window")?);
            }
            _ => {}
        }
    }
    Ok(())
}

/// A NEWSA message (dump entry or ALLOCSPI reply).
pub fn decode_sa(m: &NetlinkMessage) -> Result<SaInfo, DecodeError> {
    if m.message_type != XFRM_MSG_NEWSA {
        return Err(decode_error(format!(
            "expected XFRM_MSG_NEWSA, got type {}",
            m.message_type
        )));
    }
    let (fixed, attrs) = m
        .payload
        .split_at_checked(USERSA_INFO_LEN)
        .ok_or_else(|| decode_error("xfrm_usersa_info truncated"))?;
    let mut info = read_usersa_info(&mut Reader::new(fixed))?;
    apply_sa_attributes(&mut info, attrs)?;
    Ok(info)
}

/// A policy as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub selector: Selector,
    pub direction: PolicyDirection,
    pub priority: u32,
    pub index: u32,
    pub action: u8,
    pub templates: Vec<SaTemplate>,
}

fn read_userpolicy_info(r: &mut Reader) -> Result<PolicyInfo, DecodeError> {
    let selector = read_selector(r)?;
    r.skip(LIFETIME_CFG_LEN + LIFETIME_CUR_LEN, "policy lifetimes")?;
    let priority = r.u32_ne("policy priority")?;
    let index = r.u32_ne("policy index")?;
    let dir = r.u8("policy dir")?;
    let action = r.u8("policy action")?;
    r.skip(2 + 4, "policy flags/share/pad")?;
    // The kernel encodes the direction in the index's low bits as well;
    // directions above FWD are socket policies, which are not ours.
    let direction = direction_from_number(dir)?;
    Ok(PolicyInfo {
        selector,
        direction,
        priority,
        index,
        action,
        templates: Vec::new(),
    })
}

/// At most this many templates in one policy (XFRM_MAX_DEPTH).
const MAX_TEMPLATES: usize = 6;

fn read_templates(value: &[u8]) -> Result<Vec<SaTemplate>, DecodeError> {
    if !value.len().is_multiple_of(USER_TMPL_LEN) || value.len() / USER_TMPL_LEN > MAX_TEMPLATES {
        return Err(decode_error(format!(
            "XFRMA_TMPL of {} octets is not 1..={MAX_TEMPLATES} templates",
            value.len()
        )));
    }
    let mut r = Reader::new(value);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(read_template(&mut r)?.0);
    }
    Ok(out)
}

/// A NEWPOLICY message (dump entry).
pub fn decode_policy(m: &NetlinkMessage) -> Result<PolicyInfo, DecodeError> {
    if m.message_type != XFRM_MSG_NEWPOLICY {
        return Err(decode_error(format!(
            "expected XFRM_MSG_NEWPOLICY, got type {}",
            m.message_type
        )));
    }
    let (fixed, attrs) = m
        .payload
        .split_at_checked(USERPOLICY_INFO_LEN)
        .ok_or_else(|| decode_error("xfrm_userpolicy_info truncated"))?;
    let mut info = read_userpolicy_info(&mut Reader::new(fixed))?;
    for (attr_type, value) in split_attributes(attrs)? {
        if attr_type == XFRMA_TMPL {
            info.templates = read_templates(value)?;
        }
    }
    Ok(info)
}

/// A multicast event: ACQUIRE, EXPIRE or POLEXPIRE. Other types are None.
pub fn decode_event(m: &NetlinkMessage) -> Result<Option<KernelEvent>, DecodeError> {
    match m.message_type {
        XFRM_MSG_ACQUIRE => {
            let (fixed, attrs) = m
                .payload
                .split_at_checked(USER_ACQUIRE_LEN)
                .ok_or_else(|| decode_error("xfrm_user_acquire truncated"))?;
            let mut r = Reader::new(fixed);
            r.skip(24 + 16, "acquire id/saddr")?; // taken from the template below
            let selector = read_selector(&mut r)?;
            r.skip(USERPOLICY_INFO_LEN + 12, "acquire policy/algos")?;
            let seq = r.u32_ne("acquire seq")?;
            let mut template = None;
            for (attr_type, value) in split_attributes(attrs)? {
                if attr_type == XFRMA_TMPL {
                    template = read_templates(value)?.into_iter().next();
                }
            }
            let template = template.ok_or_else(|| decode_error("ACQUIRE without XFRMA_TMPL"))?;
            Ok(Some(KernelEvent::Acquire {
                selector,
                src: template.src,
                dst: template.dst,
                reqid: template.reqid,
                seq,
            }))
        }
        XFRM_MSG_EXPIRE => {
            let fixed = m
                .payload
                .get(..USER_EXPIRE_LEN)
                .ok_or_else(|| decode_error("xfrm_user_expire truncated"))?;
            let mut r = Reader::new(fixed);
            let info = read_usersa_info(&mut r)?;
            let hard = r.u8("expire hard")? != 0;
            Ok(Some(KernelEvent::Expire {
                sa: info.id,
                reqid: info.reqid,
                hard,
            }))
        }
        XFRM_MSG_POLEXPIRE => {
            let fixed = m
                .payload
                .get(..USER_POLEXPIRE_LEN)
                .ok_or_else(|| decode_error("xfrm_user_polexpire truncated"))?;
            let mut r = Reader::new(fixed);
            let info = read_userpolicy_info(&mut r)?;
            let hard = r.u8("polexpire hard")? != 0;
            Ok(Some(KernelEvent::PolicyExpire {
                selector: info.selector,
                direction: info.direction,
                hard,
            }))
        }
        _ => Ok(None),
    }
}

// AF_INET/AF_INET6 values are Linux's; XFRM exists only there.
const _: () = assert!(AF_INET == 2 && AF_INET6 == 10);

#[cfg(test)]
#[path = "xfrm_codec_tests.rs"]
mod tests;
