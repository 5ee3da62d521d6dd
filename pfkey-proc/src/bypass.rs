//! The IKE sockets' exemption from IPsec. Linux checks a UDP datagram
//! against the inbound policies before it hands ESP-in-UDP to the decap path
//! (udp_queue_rcv_one_skb), so a policy covering the gateways themselves
//! (transport mode, or a tunnel whose selectors include the gateways) would
//! otherwise swallow IKE and NAT-T traffic. A per-socket policy that allows
//! without templates exempts the socket, in each direction; UDP_ENCAP on
//! port 4500 makes the kernel decapsulate ESP there (RFC 3948 §2).
//!
//! Setting a socket policy needs CAP_NET_ADMIN: the parent does it when it
//! binds the IKE sockets, before handing them to ikev2-proc.

use std::os::fd::{AsRawFd, BorrowedFd};

use iked_common::kernel::{KernelSocketKind, PolicyDirection};

use crate::bytes::{Writer, AF_INET, AF_INET6};

// The option name tells the kernel which format follows: XFRM's
// xfrm_userpolicy_info, or PF_KEY's sadb_x_policy.
const IP_IPSEC_POLICY: i32 = 16;
const IP_XFRM_POLICY: i32 = 17;
const IPV6_IPSEC_POLICY: i32 = 34;
const IPV6_XFRM_POLICY: i32 = 35;
const UDP_ENCAP: i32 = 100;
const UDP_ENCAP_ESPINUDP: i32 = 2;
const IPSEC_POLICY_BYPASS: u16 = 4;

/// The socket policy in XFRM's format: `struct xfrm_userpolicy_info` with a
/// wildcard selector, action allow and no template.
pub fn xfrm_bypass_policy(direction: PolicyDirection, ipv6: bool) -> Vec<u8> {
    let mut w = Writer::new();
    w.zeros(40) // selector addresses and ports: any
        .u16_ne(if ipv6 { AF_INET6 } else { AF_INET })
        .zeros(2 + 1 + 3 + 4 + 4); // prefixes 0, proto any, pad, ifindex, user
    for _ in 0..4 {
        w.u64_ne(crate::xfrm_codec::XFRM_INF); // byte and packet limits: none
    }
    w.zeros(32) // time limits: none
        .zeros(crate::xfrm_codec::LIFETIME_CUR_LEN)
        .u32_ne(0) // priority
        .u32_ne(0) // index
        .u8(crate::xfrm_codec::direction_number(direction))
        .u8(crate::xfrm_codec::XFRM_POLICY_ALLOW)
        .u8(0)
        .u8(0)
        .zeros(4);
    w.bytes.clone()
}

/// The socket policy in PF_KEY's format: a bare `sadb_x_policy` of type
/// bypass (RFC 2367 extension as Linux's af_key compiles it).
pub fn pfkey_bypass_policy(direction: PolicyDirection) -> Vec<u8> {
    let mut w = Writer::new();
    w.u16_ne(2) // length in 64-bit words
        .u16_ne(crate::pfkey_codec::SADB_X_EXT_POLICY)
        .u16_ne(IPSEC_POLICY_BYPASS)
        .u8(crate::pfkey_codec::direction_number(direction))
        .u8(0)
        .u32_ne(0)
        .u32_ne(0);
    w.bytes.clone()
}

fn set_option(fd: BorrowedFd<'_>, level: i32, name: i32, value: &[u8]) -> std::io::Result<()> {
    // SAFETY: passes a pointer to a live buffer and its exact length.
    let rc = unsafe {
        nix::libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as nix::libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Exempts a UDP socket from IPsec policies in both directions, in the
/// format of the key interface in use. Needs CAP_NET_ADMIN.
pub fn bypass_ipsec(fd: BorrowedFd<'_>, ipv6: bool, kind: KernelSocketKind) -> Result<(), String> {
    let (level, name) = match (ipv6, kind) {
        (false, KernelSocketKind::Xfrm) => (nix::libc::IPPROTO_IP, IP_XFRM_POLICY),
        (false, KernelSocketKind::Pfkey) => (nix::libc::IPPROTO_IP, IP_IPSEC_POLICY),
        (true, KernelSocketKind::Xfrm) => (nix::libc::IPPROTO_IPV6, IPV6_XFRM_POLICY),
        (true, KernelSocketKind::Pfkey) => (nix::libc::IPPROTO_IPV6, IPV6_IPSEC_POLICY),
    };
    for direction in [PolicyDirection::In, PolicyDirection::Out] {
        let policy = match kind {
            KernelSocketKind::Xfrm => xfrm_bypass_policy(direction, ipv6),
            KernelSocketKind::Pfkey => pfkey_bypass_policy(direction),
        };
        set_option(fd, level, name, &policy)
            .map_err(|e| format!("IPsec bypass policy ({direction:?}) on an IKE socket: {e}"))?;
    }
    Ok(())
}

/// Makes the kernel take ESP-in-UDP from this (port 4500) socket and pass
/// only IKE (non-ESP marker) up to it (RFC 3948 §2.2).
pub fn enable_esp_in_udp(fd: BorrowedFd<'_>) -> Result<(), String> {
    set_option(
        fd,
        nix::libc::IPPROTO_UDP,
        UDP_ENCAP,
        &UDP_ENCAP_ESPINUDP.to_ne_bytes(),
    )
    .map_err(|e| format!("UDP_ENCAP_ESPINUDP on the NAT-T socket: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfrm_bypass_is_an_allow_policy_without_template() {
        let p = xfrm_bypass_policy(PolicyDirection::Out, false);
        assert_eq!(p.len(), crate::xfrm_codec::USERPOLICY_INFO_LEN);
        let mut expected = vec![0u8; 40];
        expected.extend_from_slice(&[2, 0]); // AF_INET
        expected.extend_from_slice(&[0; 14]);
        expected.extend_from_slice(&[0xff; 32]);
        expected.extend_from_slice(&[0; 32 + 32 + 8]);
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // dir out, allow
        assert_eq!(hex::encode(&p), hex::encode(expected));
        let v6_in = xfrm_bypass_policy(PolicyDirection::In, true);
        assert_eq!(&v6_in[40..42], &[10, 0]);
        assert_eq!(v6_in[160], 0);
    }

    #[test]
    fn pfkey_bypass_is_a_bare_sadb_x_policy() {
        assert_eq!(
            hex::encode(pfkey_bypass_policy(PolicyDirection::In)),
            "0200120004000100 0000000000000000".replace(' ', "")
        );
    }

    /// Root (CAP_NET_ADMIN) may exempt a socket; anyone else gets a clear
    /// error naming the step. Per-socket: nothing outside it changes.
    #[test]
    fn the_kernel_takes_the_xfrm_bypass_policy_only_with_the_capability() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsFd::as_fd(&socket);
        let result = bypass_ipsec(fd, false, KernelSocketKind::Xfrm);
        if caps::has_cap(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_NET_ADMIN,
        )
        .unwrap_or(false)
        {
            assert_eq!(result, Ok(()));
            assert_eq!(enable_esp_in_udp(fd), Ok(()));
        } else {
            let err = result.unwrap_err();
            assert!(
                err.starts_with("IPsec bypass policy (In) on an IKE socket: "),
                "{err}"
            );
        }
    }
}
