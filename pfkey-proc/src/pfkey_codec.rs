//! PF_KEY v2 messages (RFC 2367) with the KAME/Linux extensions
//! (SADB_X_SPD*, sadb_x_policy + sadb_x_ipsecrequest, sadb_x_sa2, NAT-T),
//! encoded and decoded by hand.
//!
//! RFC 2367 §2.2: every message and extension is a multiple of 64 bits and
//! its length field counts 64-bit words; fields are in host byte order
//! except SPIs and ports (network order). Decoding checks every length
//! against what is left and refuses duplicate extensions (RFC 2367 §2.3).

use std::net::IpAddr;

use iked_common::kernel::{
    Encryption, Integrity, IpsecMode, IpsecProtocol, KernelEvent, Lifetime, PolicyDirection,
    PolicyParams, SaId, SaParams, SaTemplate, Selector, UdpEncap,
};

use crate::bytes::{decode_error, DecodeError, Reader, Writer, AF_INET, AF_INET6};

pub const PF_KEY_V2: u8 = 2;
pub const SADB_MSG_LEN: usize = 16;

// Message types (RFC 2367 §2.3.1 and Linux pfkeyv2.h).
pub const SADB_GETSPI: u8 = 1;
pub const SADB_UPDATE: u8 = 2;
pub const SADB_ADD: u8 = 3;
pub const SADB_DELETE: u8 = 4;
pub const SADB_GET: u8 = 5;
pub const SADB_ACQUIRE: u8 = 6;
pub const SADB_REGISTER: u8 = 7;
pub const SADB_EXPIRE: u8 = 8;
pub const SADB_FLUSH: u8 = 9;
pub const SADB_DUMP: u8 = 10;
pub const SADB_X_SPDADD: u8 = 14;
pub const SADB_X_SPDDELETE: u8 = 15;
pub const SADB_X_SPDGET: u8 = 16;
pub const SADB_X_SPDDUMP: u8 = 18;
pub const SADB_X_SPDFLUSH: u8 = 19;

pub const SADB_SATYPE_UNSPEC: u8 = 0;
pub const SADB_SATYPE_ESP: u8 = 3;

// Extension types.
pub const SADB_EXT_SA: u16 = 1;
pub const SADB_EXT_LIFETIME_CURRENT: u16 = 2;
pub const SADB_EXT_LIFETIME_HARD: u16 = 3;
pub const SADB_EXT_LIFETIME_SOFT: u16 = 4;
pub const SADB_EXT_ADDRESS_SRC: u16 = 5;
pub const SADB_EXT_ADDRESS_DST: u16 = 6;
pub const SADB_EXT_KEY_AUTH: u16 = 8;
pub const SADB_EXT_KEY_ENCRYPT: u16 = 9;
pub const SADB_EXT_SUPPORTED_AUTH: u16 = 14;
pub const SADB_EXT_SUPPORTED_ENCRYPT: u16 = 15;
pub const SADB_EXT_SPIRANGE: u16 = 16;
pub const SADB_X_EXT_POLICY: u16 = 18;
pub const SADB_X_EXT_SA2: u16 = 19;
pub const SADB_X_EXT_NAT_T_TYPE: u16 = 20;
pub const SADB_X_EXT_NAT_T_SPORT: u16 = 21;
pub const SADB_X_EXT_NAT_T_DPORT: u16 = 22;
pub const SADB_EXT_MAX: u16 = 26;

pub const SADB_SASTATE_MATURE: u8 = 1;

// Algorithm identifiers (RFC 2367 §3.5 and Linux pfkeyv2.h).
pub const SADB_AALG_SHA1HMAC: u8 = 3;
pub const SADB_X_AALG_SHA2_256HMAC: u8 = 5;
pub const SADB_X_AALG_SHA2_384HMAC: u8 = 6;
pub const SADB_X_AALG_SHA2_512HMAC: u8 = 7;
pub const SADB_X_EALG_AESCBC: u8 = 12;
pub const SADB_X_EALG_AES_GCM_ICV16: u8 = 20;
pub const SADB_X_EALG_CAMELLIACBC: u8 = 22;

// <linux/ipsec.h>
pub const IPSEC_MODE_TRANSPORT: u8 = 1;
pub const IPSEC_MODE_TUNNEL: u8 = 2;
pub const IPSEC_DIR_INBOUND: u8 = 1;
pub const IPSEC_DIR_OUTBOUND: u8 = 2;
pub const IPSEC_DIR_FWD: u8 = 3;
pub const IPSEC_POLICY_IPSEC: u8 = 2;
pub const IPSEC_LEVEL_UNIQUE: u8 = 3;
/// "Any upper-layer protocol" in sadb_address_proto.
pub const IPSEC_ULPROTO_ANY: u8 = 255;
/// Linux keeps reqids above this for itself when they come over PF_KEY.
pub const IPSEC_MANUAL_REQID_MAX: u32 = 0x3fff;
/// Linux caps a PF_KEY SA's replay window to its legacy 32-bit bitmap.
pub const PFKEY_MAX_REPLAY_WINDOW: u32 = 32;
/// `UDP_ENCAP_ESPINUDP` (RFC 3948).
pub const UDP_ENCAP_ESPINUDP: u8 = 2;
/// Longest message we accept: sadb_msg_len is 16 bits of 64-bit words.
pub const MAX_MESSAGE: usize = 0xffff * 8;

fn words(bytes: usize) -> u16 {
    (bytes / 8) as u16
}

pub fn integrity_id(i: Integrity) -> u8 {
    match i {
        Integrity::HmacSha1_96 => SADB_AALG_SHA1HMAC,
        Integrity::HmacSha256_128 => SADB_X_AALG_SHA2_256HMAC,
        Integrity::HmacSha384_192 => SADB_X_AALG_SHA2_384HMAC,
        Integrity::HmacSha512_256 => SADB_X_AALG_SHA2_512HMAC,
    }
}

/// The PF_KEY identifier of an encryption transform; ChaCha20-Poly1305 has
/// none (no SADB value is assigned to it).
pub fn encryption_id(e: Encryption) -> Option<u8> {
    match e {
        Encryption::AesCbc => Some(SADB_X_EALG_AESCBC),
        Encryption::AesGcm16 => Some(SADB_X_EALG_AES_GCM_ICV16),
        Encryption::CamelliaCbc => Some(SADB_X_EALG_CAMELLIACBC),
        Encryption::ChaCha20Poly1305 => None,
    }
}

fn mode_number(m: IpsecMode) -> u8 {
    match m {
        IpsecMode::Transport => IPSEC_MODE_TRANSPORT,
        IpsecMode::Tunnel => IPSEC_MODE_TUNNEL,
    }
}

fn mode_from_number(n: u8) -> Result<IpsecMode, DecodeError> {
    match n {
        IPSEC_MODE_TRANSPORT => Ok(IpsecMode::Transport),
        IPSEC_MODE_TUNNEL => Ok(IpsecMode::Tunnel),
        other => Err(decode_error(format!("unsupported IPsec mode {other}"))),
    }
}

pub fn direction_number(d: PolicyDirection) -> u8 {
    match d {
        PolicyDirection::In => IPSEC_DIR_INBOUND,
        PolicyDirection::Out => IPSEC_DIR_OUTBOUND,
        PolicyDirection::Fwd => IPSEC_DIR_FWD,
    }
}

fn direction_from_number(n: u8) -> Result<PolicyDirection, DecodeError> {
    match n {
        IPSEC_DIR_INBOUND => Ok(PolicyDirection::In),
        IPSEC_DIR_OUTBOUND => Ok(PolicyDirection::Out),
        IPSEC_DIR_FWD => Ok(PolicyDirection::Fwd),
        other => Err(decode_error(format!("unknown policy direction {other}"))),
    }
}

/// A message being built; `finish` writes the length in 64-bit words.
pub struct MessageBuilder {
    writer: Writer,
}

impl MessageBuilder {
    /// `struct sadb_msg`: version, type, errno, satype, len, reserved, seq, pid.
    pub fn new(message_type: u8, satype: u8, seq: u32, pid: u32) -> MessageBuilder {
        let mut writer = Writer::new();
        writer
            .u8(PF_KEY_V2)
            .u8(message_type)
            .u8(0)
            .u8(satype)
            .u16_ne(0) // length, patched in finish()
            .u16_ne(0)
            .u32_ne(seq)
            .u32_ne(pid);
        MessageBuilder { writer }
    }

    /// One extension: header, body, zero padding to 64 bits.
    pub fn extension(&mut self, ext_type: u16, build: impl FnOnce(&mut Writer)) {
        let start = self.writer.len();
        self.writer.u16_ne(0).u16_ne(ext_type);
        build(&mut self.writer);
        self.writer.pad_to(8);
        let len = words(self.writer.len() - start);
        self.writer.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    pub fn finish(mut self) -> Writer {
        let len = words(self.writer.len());
        self.writer.bytes[4..6].copy_from_slice(&len.to_ne_bytes());
        self.writer
    }
}

/// A sockaddr_in / sockaddr_in6 with a port (network order).
fn put_sockaddr(w: &mut Writer, addr: IpAddr, port: u16) {
    match addr {
        IpAddr::V4(v4) => {
            w.u16_ne(AF_INET).u16_be(port).raw(&v4.octets()).zeros(8);
        }
        IpAddr::V6(v6) => {
            w.u16_ne(AF_INET6)
                .u16_be(port)
                .u32_ne(0) // flowinfo
                .raw(&v6.octets())
                .u32_ne(0); // scope id
        }
    }
}

/// `struct sadb_address` + sockaddr (RFC 2367 §2.3.3).
fn put_address(m: &mut MessageBuilder, ext: u16, addr: IpAddr, prefix: u8, proto: u8, port: u16) {
    m.extension(ext, |w| {
        w.u8(proto).u8(prefix).u16_ne(0);
        put_sockaddr(w, addr, port);
    });
}

fn sa_address_prefix(addr: IpAddr) -> u8 {
    iked_common::kernel::max_prefix(addr)
}

/// `struct sadb_x_sa2`: mode (IPSEC_MODE_*), sequence, reqid.
fn put_sa2(m: &mut MessageBuilder, mode: IpsecMode, reqid: u32) {
    m.extension(SADB_X_EXT_SA2, |w| {
        w.u8(mode_number(mode))
            .u8(0)
            .u16_ne(0)
            .u32_ne(0)
            .u32_ne(reqid);
    });
}

/// `struct sadb_lifetime`: allocations, bytes, addtime, usetime (0 = none).
fn put_lifetime(m: &mut MessageBuilder, ext: u16, bytes: u64, seconds: u64) {
    m.extension(ext, |w| {
        w.u32_ne(0).u64_ne(bytes).u64_ne(seconds).u64_ne(0);
    });
}

/// Why a request cannot be expressed in PF_KEY.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unexpressible(pub String);

/// What PF_KEY on Linux cannot say, refused rather than silently changed.
pub fn check_sa_expressible(sa: &SaParams) -> Result<(), Unexpressible> {
    crate::xfrm_codec::check_sa_keys(sa).map_err(|e| Unexpressible(e.0))?;
    if encryption_id(sa.encryption).is_none() {
        return Err(Unexpressible(format!(
            "PF_KEY has no identifier for {} (use `set kernel xfrm`)",
            sa.encryption.name()
        )));
    }
    if sa.integrity == Some(Integrity::HmacSha256_128) {
        // Linux's PF_KEY truncates HMAC-SHA-256 to 96 bits (a pre-RFC 4868
        // draft), which no RFC 4868 peer accepts.
        return Err(Unexpressible(
            "Linux PF_KEY truncates hmac-sha256 to 96 bits, not RFC 4868's 128 (use `set kernel xfrm`)"
                .into(),
        ));
    }
    if sa.esn {
        return Err(Unexpressible(
            "PF_KEY cannot install extended sequence numbers (use `set kernel xfrm`)".into(),
        ));
    }
    if sa.reqid > IPSEC_MANUAL_REQID_MAX {
        return Err(Unexpressible(format!(
            "reqid {} above {IPSEC_MANUAL_REQID_MAX}, the largest PF_KEY keeps",
            sa.reqid
        )));
    }
    Ok(())
}

/// SADB_ADD (or SADB_UPDATE when `update`) for one ESP SA (RFC 2367 §2.3.3).
pub fn encode_add_sa(
    sa: &SaParams,
    update: bool,
    seq: u32,
    pid: u32,
) -> Result<Writer, Unexpressible> {
    check_sa_expressible(sa)?;
    let encryption = encryption_id(sa.encryption).unwrap_or(0);
    let message_type = if update { SADB_UPDATE } else { SADB_ADD };
    let mut m = MessageBuilder::new(message_type, SADB_SATYPE_ESP, seq, pid);
    let replay = sa.replay_window.min(PFKEY_MAX_REPLAY_WINDOW) as u8;
    // struct sadb_sa: spi (network order), replay, state, auth, encrypt, flags.
    m.extension(SADB_EXT_SA, |w| {
        w.u32_be(sa.id.spi)
            .u8(replay)
            .u8(SADB_SASTATE_MATURE)
            .u8(sa.integrity.map(integrity_id).unwrap_or(0))
            .u8(encryption)
            .u32_ne(0);
    });
    // Linux wants both lifetimes or neither.
    put_lifetime(
        &mut m,
        SADB_EXT_LIFETIME_HARD,
        sa.lifetime.hard_bytes,
        sa.lifetime.hard_seconds,
    );
    put_lifetime(
        &mut m,
        SADB_EXT_LIFETIME_SOFT,
        sa.lifetime.soft_bytes,
        sa.lifetime.soft_seconds,
    );
    put_address(
        &mut m,
        SADB_EXT_ADDRESS_SRC,
        sa.id.src,
        sa_address_prefix(sa.id.src),
        0,
        0,
    );
    put_address(
        &mut m,
        SADB_EXT_ADDRESS_DST,
        sa.id.dst,
        sa_address_prefix(sa.id.dst),
        0,
        0,
    );
    if sa.integrity.is_some() {
        let key = sa.integrity_key.expose();
        // struct sadb_key: bits, reserved, key, padding.
        m.extension(SADB_EXT_KEY_AUTH, |w| {
            w.u16_ne((key.len() * 8) as u16).u16_ne(0).raw(key);
        });
    }
    let key = sa.encryption_key.expose();
    m.extension(SADB_EXT_KEY_ENCRYPT, |w| {
        w.u16_ne((key.len() * 8) as u16).u16_ne(0).raw(key);
    });
    put_sa2(&mut m, sa.mode, sa.reqid);
    if let Some(encap) = sa.encap {
        m.extension(SADB_X_EXT_NAT_T_TYPE, |w| {
            w.u8(UDP_ENCAP_ESPINUDP).zeros(3);
        });
        m.extension(SADB_X_EXT_NAT_T_SPORT, |w| {
            w.u16_be(encap.src_port).u16_ne(0);
        });
        m.extension(SADB_X_EXT_NAT_T_DPORT, |w| {
            w.u16_be(encap.dst_port).u16_ne(0);
        });
    }
    Ok(m.finish())
}

/// SADB_GETSPI: a larval SA from `src` to `dst` with an SPI in min..=max.
#[allow(clippy::too_many_arguments)]
pub fn encode_getspi(
    src: IpAddr,
    dst: IpAddr,
    mode: IpsecMode,
    reqid: u32,
    min: u32,
    max: u32,
    seq: u32,
    pid: u32,
) -> Writer {
    let mut m = MessageBuilder::new(SADB_GETSPI, SADB_SATYPE_ESP, seq, pid);
    put_address(
        &mut m,
        SADB_EXT_ADDRESS_SRC,
        src,
        sa_address_prefix(src),
        0,
        0,
    );
    put_address(
        &mut m,
        SADB_EXT_ADDRESS_DST,
        dst,
        sa_address_prefix(dst),
        0,
        0,
    );
    // struct sadb_spirange: min, max (host order, as Linux reads them), reserved.
    m.extension(SADB_EXT_SPIRANGE, |w| {
        w.u32_ne(min).u32_ne(max).u32_ne(0);
    });
    put_sa2(&mut m, mode, reqid);
    m.finish()
}

/// SADB_DELETE by SPI and both addresses.
pub fn encode_delete_sa(id: &SaId, seq: u32, pid: u32) -> Writer {
    encode_sa_by_id(SADB_DELETE, id, seq, pid)
}

/// SADB_GET by SPI and both addresses (RFC 2367 §3.1.5); the reply carries
/// the SA with its SADB_EXT_LIFETIME_CURRENT.
pub fn encode_get_sa(id: &SaId, seq: u32, pid: u32) -> Writer {
    encode_sa_by_id(SADB_GET, id, seq, pid)
}

/// The SA and address extensions DELETE and GET share.
fn encode_sa_by_id(message_type: u8, id: &SaId, seq: u32, pid: u32) -> Writer {
    let mut m = MessageBuilder::new(message_type, SADB_SATYPE_ESP, seq, pid);
    m.extension(SADB_EXT_SA, |w| {
        w.u32_be(id.spi).u8(0).u8(0).u8(0).u8(0).u32_ne(0);
    });
    put_address(
        &mut m,
        SADB_EXT_ADDRESS_SRC,
        id.src,
        sa_address_prefix(id.src),
        0,
        0,
    );
    put_address(
        &mut m,
        SADB_EXT_ADDRESS_DST,
        id.dst,
        sa_address_prefix(id.dst),
        0,
        0,
    );
    m.finish()
}

fn selector_proto(protocol: u8) -> u8 {
    if protocol == 0 {
        IPSEC_ULPROTO_ANY
    } else {
        protocol
    }
}

fn put_selector(m: &mut MessageBuilder, s: &Selector) {
    let proto = selector_proto(s.protocol);
    put_address(
        m,
        SADB_EXT_ADDRESS_SRC,
        s.src,
        s.src_prefix,
        proto,
        s.src_port,
    );
    put_address(
        m,
        SADB_EXT_ADDRESS_DST,
        s.dst,
        s.dst_prefix,
        proto,
        s.dst_port,
    );
}

/// SADB_X_SPDADD: selector as two address extensions, then sadb_x_policy
/// with one ESP sadb_x_ipsecrequest (level unique, carrying our reqid).
pub fn encode_add_policy(p: &PolicyParams, seq: u32, pid: u32) -> Result<Writer, Unexpressible> {
    if p.template.reqid > IPSEC_MANUAL_REQID_MAX {
        return Err(Unexpressible(format!(
            "reqid {} above {IPSEC_MANUAL_REQID_MAX}, the largest PF_KEY keeps",
            p.template.reqid
        )));
    }
    if p.template.src.is_ipv4() != p.selector.src.is_ipv4() {
        // Linux reads the request's addresses in the selector's family.
        return Err(Unexpressible(
            "PF_KEY cannot tunnel one address family in the other".into(),
        ));
    }
    let mut m = MessageBuilder::new(SADB_X_SPDADD, SADB_SATYPE_UNSPEC, seq, pid);
    put_selector(&mut m, &p.selector);
    m.extension(SADB_X_EXT_POLICY, |w| {
        // struct sadb_x_policy: type, dir, reserved, id, priority.
        w.u16_ne(u16::from(IPSEC_POLICY_IPSEC))
            .u8(direction_number(p.direction))
            .u8(0)
            .u32_ne(0)
            .u32_ne(p.priority);
        // struct sadb_x_ipsecrequest: len (octets), proto, mode, level,
        // reserved, reqid, reserved; tunnel endpoints follow in tunnel mode.
        let start = w.len();
        w.u16_ne(0)
            .u16_ne(u16::from(p.template.protocol.number()))
            .u8(mode_number(p.template.mode))
            .u8(IPSEC_LEVEL_UNIQUE)
            .u16_ne(0)
            .u32_ne(p.template.reqid)
            .u32_ne(0);
        if p.template.mode == IpsecMode::Tunnel {
            put_sockaddr(w, p.template.src, 0);
            put_sockaddr(w, p.template.dst, 0);
        }
        w.pad_to(8);
        let len = (w.len() - start) as u16;
        w.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    });
    Ok(m.finish())
}

/// SADB_X_SPDDELETE by selector and direction.
pub fn encode_delete_policy(
    selector: &Selector,
    direction: PolicyDirection,
    seq: u32,
    pid: u32,
) -> Writer {
    let mut m = MessageBuilder::new(SADB_X_SPDDELETE, SADB_SATYPE_UNSPEC, seq, pid);
    put_selector(&mut m, selector);
    m.extension(SADB_X_EXT_POLICY, |w| {
        w.u16_ne(u16::from(IPSEC_POLICY_IPSEC))
            .u8(direction_number(direction))
            .u8(0)
            .u32_ne(0)
            .u32_ne(0);
    });
    m.finish()
}

/// SADB_X_SPDGET by the kernel's policy id (to resolve an ACQUIRE).
pub fn encode_get_policy(id: u32, direction: PolicyDirection, seq: u32, pid: u32) -> Writer {
    let mut m = MessageBuilder::new(SADB_X_SPDGET, SADB_SATYPE_UNSPEC, seq, pid);
    m.extension(SADB_X_EXT_POLICY, |w| {
        w.u16_ne(u16::from(IPSEC_POLICY_IPSEC))
            .u8(direction_number(direction))
            .u8(0)
            .u32_ne(id)
            .u32_ne(0);
    });
    m.finish()
}

/// A header-only request: SADB_REGISTER, SADB_DUMP, SADB_X_SPDDUMP, and the
/// flushes (never sent for ourselves: other software's entries must survive).
pub fn encode_bare(message_type: u8, satype: u8, seq: u32, pid: u32) -> Writer {
    MessageBuilder::new(message_type, satype, seq, pid).finish()
}

/// A decoded message: header fields and its extensions by type.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub message_type: u8,
    pub errno: u8,
    pub satype: u8,
    pub seq: u32,
    pub pid: u32,
    /// Extension bodies (header included), indexed by type; at most one each.
    extensions: [Option<&'a [u8]>; SADB_EXT_MAX as usize + 1],
}

impl<'a> Message<'a> {
    pub fn extension(&self, ext_type: u16) -> Option<&'a [u8]> {
        self.extensions.get(ext_type as usize).copied().flatten()
    }

    fn require(&self, ext_type: u16, what: &str) -> Result<&'a [u8], DecodeError> {
        self.extension(ext_type)
            .ok_or_else(|| decode_error(format!("{what} extension missing")))
    }
}

/// Decodes one message (a PF_KEY datagram is exactly one message).
pub fn decode(datagram: &[u8]) -> Result<Message<'_>, DecodeError> {
    let mut r = Reader::new(datagram);
    let version = r.u8("sadb_msg_version")?;
    let message_type = r.u8("sadb_msg_type")?;
    let errno = r.u8("sadb_msg_errno")?;
    let satype = r.u8("sadb_msg_satype")?;
    let len = r.u16_ne("sadb_msg_len")? as usize * 8;
    let _reserved = r.u16_ne("sadb_msg_reserved")?;
    let seq = r.u32_ne("sadb_msg_seq")?;
    let pid = r.u32_ne("sadb_msg_pid")?;
    if version != PF_KEY_V2 {
        return Err(decode_error(format!("PF_KEY version {version}, not 2")));
    }
    if len != datagram.len() {
        return Err(decode_error(format!(
            "sadb_msg_len says {len} octets, datagram has {}",
            datagram.len()
        )));
    }
    let mut extensions = [None; SADB_EXT_MAX as usize + 1];
    while r.remaining() > 0 {
        let mut peek = r;
        let ext_len = peek.u16_ne("sadb_ext_len")? as usize * 8;
        let ext_type = peek.u16_ne("sadb_ext_type")?;
        if ext_len == 0 {
            return Err(decode_error(format!("extension {ext_type} of length 0")));
        }
        let body = r.take(ext_len, "extension")?;
        match extensions.get_mut(ext_type as usize) {
            Some(slot @ None) if ext_type != 0 => *slot = Some(body),
            Some(Some(_)) => {
                return Err(decode_error(format!("extension {ext_type} appears twice")))
            }
            // Types unknown to us (newer kernels) are skipped.
            _ => {}
        }
    }
    Ok(Message {
        message_type,
        errno,
        satype,
        seq,
        pid,
        extensions,
    })
}

/// sadb_address: (address, prefix, proto, port).
fn read_address(ext: &[u8]) -> Result<(IpAddr, u8, u8, u16), DecodeError> {
    let mut r = Reader::new(ext);
    r.skip(4, "sadb_address header")?;
    let proto = r.u8("sadb_address_proto")?;
    let prefix = r.u8("sadb_address_prefixlen")?;
    r.skip(2, "sadb_address_reserved")?;
    let (addr, port) = read_sockaddr(&mut r)?;
    if prefix > iked_common::kernel::max_prefix(addr) {
        return Err(decode_error(format!(
            "prefix /{prefix} too long for {addr}"
        )));
    }
    Ok((addr, prefix, proto, port))
}

fn read_sockaddr(r: &mut Reader) -> Result<(IpAddr, u16), DecodeError> {
    let family = r.u16_ne("sa_family")?;
    let port = r.u16_be("port")?;
    match family {
        AF_INET => {
            let octets = r.array::<4>("sin_addr")?;
            r.skip(8, "sin_zero")?;
            Ok((IpAddr::from(octets), port))
        }
        AF_INET6 => {
            r.skip(4, "sin6_flowinfo")?;
            let octets = r.array::<16>("sin6_addr")?;
            r.skip(4, "sin6_scope_id")?;
            Ok((IpAddr::from(octets), port))
        }
        other => Err(decode_error(format!("sockaddr family {other}"))),
    }
}

fn read_selector(m: &Message) -> Result<Selector, DecodeError> {
    let (src, src_prefix, proto, src_port) =
        read_address(m.require(SADB_EXT_ADDRESS_SRC, "source address")?)?;
    let (dst, dst_prefix, _, dst_port) =
        read_address(m.require(SADB_EXT_ADDRESS_DST, "destination address")?)?;
    let selector = Selector {
        src,
        src_prefix,
        dst,
        dst_prefix,
        protocol: if proto == IPSEC_ULPROTO_ANY { 0 } else { proto },
        src_port,
        dst_port,
    };
    if !selector.is_well_formed() {
        return Err(decode_error(format!(
            "selector of mixed families: {selector}"
        )));
    }
    Ok(selector)
}

/// The (SPI, reqid, mode) and addresses of an SA message.
fn read_sa_id(m: &Message) -> Result<(SaId, u32, Option<IpsecMode>), DecodeError> {
    let mut r = Reader::new(m.require(SADB_EXT_SA, "SA")?);
    r.skip(4, "sadb_sa header")?;
    let spi = r.u32_be("sadb_sa_spi")?;
    let (src, ..) = read_address(m.require(SADB_EXT_ADDRESS_SRC, "source address")?)?;
    let (dst, ..) = read_address(m.require(SADB_EXT_ADDRESS_DST, "destination address")?)?;
    let (reqid, mode) = match m.extension(SADB_X_EXT_SA2) {
        Some(ext) => {
            let mut r = Reader::new(ext);
            r.skip(4, "sadb_x_sa2 header")?;
            let mode = r.u8("sadb_x_sa2_mode")?;
            r.skip(3 + 4, "sadb_x_sa2 reserved/sequence")?;
            let reqid = r.u32_ne("sadb_x_sa2_reqid")?;
            // Mode 0 is "any" (larval SAs).
            (reqid, mode_from_number(mode).ok())
        }
        None => (0, None),
    };
    if m.satype != SADB_SATYPE_ESP {
        return Err(decode_error(format!("SA of satype {}, not ESP", m.satype)));
    }
    Ok((
        SaId {
            src,
            dst,
            protocol: IpsecProtocol::Esp,
            spi,
        },
        reqid,
        mode,
    ))
}

/// An SA as a reply or dump describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaInfo {
    pub id: SaId,
    pub reqid: u32,
    pub mode: Option<IpsecMode>,
    pub integrity_id: u8,
    pub encryption_id: u8,
    pub replay_window: u8,
    pub lifetime: Lifetime,
    pub encap: Option<UdpEncap>,
    /// SADB_EXT_LIFETIME_CURRENT, when the message has one (GET, DUMP).
    pub current: Option<CurrentLifetime>,
}

/// SADB_EXT_LIFETIME_CURRENT (RFC 2367 §2.3.3). Linux puts the SA's packet
/// count in `sadb_lifetime_allocations`, which RFC 2367 leaves to
/// allocations for the current lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CurrentLifetime {
    pub packets: u32,
    pub bytes: u64,
    pub add_time: u64,
    pub use_time: u64,
}

fn read_current_lifetime(ext: &[u8]) -> Result<CurrentLifetime, DecodeError> {
    let mut r = Reader::new(ext);
    r.skip(4, "sadb_lifetime header")?;
    Ok(CurrentLifetime {
        packets: r.u32_ne("sadb_lifetime_allocations")?,
        bytes: r.u64_ne("sadb_lifetime_bytes")?,
        add_time: r.u64_ne("sadb_lifetime_addtime")?,
        use_time: r.u64_ne("sadb_lifetime_usetime")?,
    })
}

fn read_lifetime(ext: Option<&[u8]>) -> Result<(u64, u64), DecodeError> {
    match ext {
        None => Ok((0, 0)),
        Some(ext) => {
            let mut r = Reader::new(ext);
            r.skip(4 + 4, "sadb_lifetime header/allocations")?;
            let bytes = r.u64_ne("sadb_lifetime_bytes")?;
            let seconds = r.u64_ne("sadb_lifetime_addtime")?;
            Ok((bytes, seconds))
        }
    }
}

fn read_port(ext: Option<&[u8]>) -> Result<Option<u16>, DecodeError> {
    ext.map(|e| {
        let mut r = Reader::new(e);
        r.skip(4, "sadb_x_nat_t_port header")?;
        r.u16_be("sadb_x_nat_t_port_port")
    })
    .transpose()
}

pub fn decode_sa(m: &Message) -> Result<SaInfo, DecodeError> {
    let (id, reqid, mode) = read_sa_id(m)?;
    let mut r = Reader::new(m.require(SADB_EXT_SA, "SA")?);
    r.skip(8, "sadb_sa header/spi")?;
    let replay_window = r.u8("sadb_sa_replay")?;
    let _state = r.u8("sadb_sa_state")?;
    let integrity_id = r.u8("sadb_sa_auth")?;
    let encryption_id = r.u8("sadb_sa_encrypt")?;
    let (hard_bytes, hard_seconds) = read_lifetime(m.extension(SADB_EXT_LIFETIME_HARD))?;
    let (soft_bytes, soft_seconds) = read_lifetime(m.extension(SADB_EXT_LIFETIME_SOFT))?;
    let encap = match (
        m.extension(SADB_X_EXT_NAT_T_TYPE),
        read_port(m.extension(SADB_X_EXT_NAT_T_SPORT))?,
        read_port(m.extension(SADB_X_EXT_NAT_T_DPORT))?,
    ) {
        (Some(_), Some(src_port), Some(dst_port)) => Some(UdpEncap { src_port, dst_port }),
        _ => None,
    };
    let current = m
        .extension(SADB_EXT_LIFETIME_CURRENT)
        .map(read_current_lifetime)
        .transpose()?;
    Ok(SaInfo {
        id,
        reqid,
        mode,
        integrity_id,
        encryption_id,
        replay_window,
        lifetime: Lifetime {
            soft_bytes,
            hard_bytes,
            soft_seconds,
            hard_seconds,
        },
        encap,
        current,
    })
}

/// A policy from SPDDUMP / SPDGET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub selector: Selector,
    pub direction: PolicyDirection,
    pub id: u32,
    pub priority: u32,
    pub policy_type: u8,
    pub templates: Vec<SaTemplate>,
}

/// At most this many requests in one policy (XFRM_MAX_DEPTH).
const MAX_REQUESTS: usize = 6;

pub fn decode_policy(m: &Message) -> Result<PolicyInfo, DecodeError> {
    let selector = read_selector(m)?;
    let ext = m.require(SADB_X_EXT_POLICY, "policy")?;
    let mut r = Reader::new(ext);
    r.skip(4, "sadb_x_policy header")?;
    let policy_type = r.u16_ne("sadb_x_policy_type")? as u8;
    let direction = direction_from_number(r.u8("sadb_x_policy_dir")?)?;
    r.skip(1, "sadb_x_policy_reserved")?;
    let id = r.u32_ne("sadb_x_policy_id")?;
    let priority = r.u32_ne("sadb_x_policy_priority")?;
    let mut templates = Vec::new();
    while r.remaining() >= 16 {
        if templates.len() == MAX_REQUESTS {
            return Err(decode_error("more than 6 ipsecrequests"));
        }
        let mut peek = r;
        let len = peek.u16_ne("ipsecrequest len")? as usize;
        if len < 16 || !len.is_multiple_of(8) {
            return Err(decode_error(format!("ipsecrequest length {len}")));
        }
        let mut q = Reader::new(r.take(len, "ipsecrequest")?);
        q.skip(2, "ipsecrequest len")?;
        let proto = q.u16_ne("ipsecrequest proto")?;
        let mode = mode_from_number(q.u8("ipsecrequest mode")?)?;
        let _level = q.u8("ipsecrequest level")?;
        q.skip(2, "ipsecrequest reserved")?;
        let reqid = q.u32_ne("ipsecrequest reqid")?;
        q.skip(4, "ipsecrequest reserved")?;
        let protocol = u8::try_from(proto)
            .ok()
            .and_then(IpsecProtocol::from_number)
            .ok_or_else(|| decode_error(format!("ipsecrequest protocol {proto}, not ESP")))?;
        let (src, dst) = if q.remaining() > 0 {
            (read_sockaddr(&mut q)?.0, read_sockaddr(&mut q)?.0)
        } else {
            // Transport mode: the kernel uses the packet's addresses.
            (selector.src, selector.dst)
        };
        templates.push(SaTemplate {
            src,
            dst,
            protocol,
            mode,
            reqid,
        });
    }
    Ok(PolicyInfo {
        selector,
        direction,
        id,
        priority,
        policy_type,
        templates,
    })
}

/// The algorithm identifiers in a SADB_REGISTER reply (RFC 2367 §2.3.8).
pub fn decode_supported(m: &Message) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
    let list = |ext: Option<&[u8]>| -> Result<Vec<u8>, DecodeError> {
        let mut out = Vec::new();
        if let Some(ext) = ext {
            let mut r = Reader::new(ext);
            r.skip(8, "sadb_supported header")?;
            while r.remaining() > 0 {
                let id = r.u8("sadb_alg_id")?;
                r.skip(7, "sadb_alg")?;
                out.push(id);
            }
        }
        Ok(out)
    };
    Ok((
        list(m.extension(SADB_EXT_SUPPORTED_AUTH))?,
        list(m.extension(SADB_EXT_SUPPORTED_ENCRYPT))?,
    ))
}

/// An ACQUIRE names the SA endpoints and the policy id (Linux puts no
/// packet selector in it): the caller resolves the policy with SPDGET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquireInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub policy_id: u32,
    pub direction: PolicyDirection,
    pub seq: u32,
}

pub fn decode_acquire(m: &Message) -> Result<AcquireInfo, DecodeError> {
    let (src, ..) = read_address(m.require(SADB_EXT_ADDRESS_SRC, "source address")?)?;
    let (dst, ..) = read_address(m.require(SADB_EXT_ADDRESS_DST, "destination address")?)?;
    let mut r = Reader::new(m.require(SADB_X_EXT_POLICY, "policy")?);
    r.skip(4 + 2, "sadb_x_policy header/type")?;
    let direction = direction_from_number(r.u8("sadb_x_policy_dir")?)?;
    r.skip(1, "reserved")?;
    let policy_id = r.u32_ne("sadb_x_policy_id")?;
    Ok(AcquireInfo {
        src,
        dst,
        policy_id,
        direction,
        seq: m.seq,
    })
}

/// SADB_EXPIRE: hard when the hard lifetime extension is present, else soft
/// (RFC 2367 §2.3.6).
pub fn decode_expire(m: &Message) -> Result<KernelEvent, DecodeError> {
    let (sa, reqid, _) = read_sa_id(m)?;
    let hard = m.extension(SADB_EXT_LIFETIME_HARD).is_some();
    if !hard && m.extension(SADB_EXT_LIFETIME_SOFT).is_none() {
        return Err(decode_error("EXPIRE without hard or soft lifetime"));
    }
    Ok(KernelEvent::Expire { sa, reqid, hard })
}

#[cfg(test)]
#[path = "pfkey_codec_tests.rs"]
mod tests;
