//! The checks of an SA beyond gateways, mode, traffic and cipher family
//! (security review L1): what a compromised ikev2 could otherwise weaken
//! in an SA of a configured flow. Each refusal says which rule it broke.
//!
//! The rules, against the flow's [`SaLimits`] (derived by the parent from
//! the policy):
//! - reqid: never 0 (a policy template with reqid 0 takes any SA between
//!   the gateways; the service also keeps each reqid to one policy, see
//!   [`crate::reqids`]).
//! - keys: the encryption key has a length the cipher takes and the
//!   policy's proposals name (aes-128 is not aes-256); the integrity key
//!   has exactly the length of its algorithm (RFC 4868 §2.1.1: the HMAC
//!   key is the hash's output length), and an AEAD SA has none.
//! - replay window: at least [`MIN_REPLAY_WINDOW`] (RFC 4303 §3.4.3), never
//!   0, for every mode and ESN setting alike; the backends cap the top.
//! - ESN: one the policy's proposals allow.
//! - encapsulation (RFC 3948): only when the daemon listens for NAT-T, our
//!   end on its NAT-T port, the peer's end on a port that is not 0.
//!   Whether a NAT was in fact detected for this peer only ikev2 knows;
//!   pfkey cannot check that.
//! - lifetimes: never unlimited; soft and hard limits in order, the soft
//!   limit within the policy's `lifetime`, the hard one within it plus a
//!   tenth (ikev2's margin, RFC 7296 §2.8); with `bytes B`, a byte limit
//!   not above B.

use iked_common::kernel::{Flow, SaLimits, SaParams, MIN_REPLAY_WINDOW};

use crate::flows::SaDirection;

/// Why `sa` breaks the limits of `flow`, if it does.
pub fn check_limits(flow: &Flow, sa: &SaParams, direction: SaDirection) -> Result<(), String> {
    let limits = &flow.limits;
    let name = &flow.name;
    if sa.reqid == 0 {
        return Err("reqid 0 is refused (a template with reqid 0 takes any SA)".into());
    }
    check_keys(name, limits, sa)?;
    if sa.replay_window < MIN_REPLAY_WINDOW {
        return Err(format!(
            "replay window {} is below {MIN_REPLAY_WINDOW} (0 would disable anti-replay)",
            sa.replay_window
        ));
    }
    if !limits.esn.contains(&sa.esn) {
        return Err(format!(
            "flow {name} does not allow {}",
            if sa.esn { "ESN" } else { "SAs without ESN" }
        ));
    }
    check_encapsulation(name, limits, sa, direction)?;
    check_lifetime(name, limits, sa)
}

fn check_keys(name: &str, limits: &SaLimits, sa: &SaParams) -> Result<(), String> {
    let cipher = sa.encryption;
    let octets = sa.encryption_key.len();
    if !cipher.key_lengths().contains(&octets) {
        return Err(format!(
            "encryption key of {octets} octets is not a {} key length",
            cipher.name()
        ));
    }
    if !limits.encryption_keys.is_empty() && !limits.encryption_keys.contains(&(cipher, octets)) {
        return Err(format!(
            "flow {name} does not allow {} with a key of {octets} octets",
            cipher.name()
        ));
    }
    match sa.integrity {
        Some(integrity) if sa.integrity_key.len() != integrity.key_length() => Err(format!(
            "integrity key of {} octets, {} takes {}",
            sa.integrity_key.len(),
            integrity.name(),
            integrity.key_length()
        )),
        None if !sa.integrity_key.is_empty() => Err(format!(
            "integrity key of {} octets without an integrity algorithm",
            sa.integrity_key.len()
        )),
        None if !cipher.is_aead() => Err(format!("{} without integrity", cipher.name())),
        Some(integrity) if cipher.is_aead() => Err(format!(
            "{} with {}: a combined-mode cipher takes no integrity algorithm",
            cipher.name(),
            integrity.name()
        )),
        _ => Ok(()),
    }
}

fn check_encapsulation(
    name: &str,
    limits: &SaLimits,
    sa: &SaParams,
    direction: SaDirection,
) -> Result<(), String> {
    let Some(encap) = sa.encap else {
        return Ok(());
    };
    let Some(natt_port) = limits.natt_port else {
        return Err(format!(
            "UDP encapsulation refused: NAT-T is disabled (flow {name})"
        ));
    };
    let (ours, theirs) = match direction {
        SaDirection::Outbound => (encap.src_port, encap.dst_port),
        SaDirection::Inbound => (encap.dst_port, encap.src_port),
    };
    if ours != natt_port {
        return Err(format!(
            "UDP encapsulation on our port {ours}, not the NAT-T port {natt_port}"
        ));
    }
    if theirs == 0 {
        return Err("UDP encapsulation to the peer's port 0".into());
    }
    Ok(())
}

fn check_lifetime(name: &str, limits: &SaLimits, sa: &SaParams) -> Result<(), String> {
    let l = &sa.lifetime;
    let max = limits.max_seconds;
    let hard_max = max.saturating_add(max / 10);
    if l.soft_seconds == 0 || l.hard_seconds == 0 {
        return Err(format!(
            "lifetime of {} s soft, {} s hard: an SA must expire (0 is unlimited)",
            l.soft_seconds, l.hard_seconds
        ));
    }
    if l.soft_seconds > l.hard_seconds {
        return Err(format!(
            "soft lifetime {} s beyond the hard one {} s",
            l.soft_seconds, l.hard_seconds
        ));
    }
    if l.soft_seconds > max || l.hard_seconds > hard_max {
        return Err(format!(
            "lifetime of {} s soft, {} s hard exceeds flow {name}'s {max} s (hard at most {hard_max} s)",
            l.soft_seconds, l.hard_seconds
        ));
    }
    if l.hard_bytes != 0 && l.soft_bytes > l.hard_bytes {
        return Err(format!(
            "soft byte limit {} beyond the hard one {}",
            l.soft_bytes, l.hard_bytes
        ));
    }
    if limits.max_bytes != 0 && (l.hard_bytes == 0 || l.hard_bytes > limits.max_bytes) {
        return Err(format!(
            "byte limit {} (0 is unlimited) exceeds flow {name}'s {} bytes",
            l.hard_bytes, limits.max_bytes
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::check_sa;
    use crate::test_fixtures::{esp_gcm_sa, flow_selector, ip};
    use iked_common::kernel::{
        Encryption, FailureKind, Integrity, IpsecMode, Lifetime, SaLimits, SecretBytes, UdpEncap,
    };

    fn flow() -> Flow {
        Flow {
            name: "site".into(),
            selector: flow_selector(),
            local: ip("192.0.2.1"),
            peer: iked_common::kernel::FlowPeer::Address(ip("192.0.2.2")),
            mode: IpsecMode::Tunnel,
            encryption: vec![Encryption::AesGcm16, Encryption::AesCbc],
            integrity: vec![Integrity::HmacSha256_128],
            limits: SaLimits {
                encryption_keys: vec![(Encryption::AesGcm16, 20), (Encryption::AesCbc, 32)],
                esn: vec![false],
                max_seconds: 600,
                max_bytes: 0,
                natt_port: Some(4500),
            },
            pools: Vec::new(),
            virtual_ip_interface: None,
        }
    }

    /// An outbound SA the flow admits: GCM-128, window 32, 600/660 s.
    fn good() -> SaParams {
        let mut sa = esp_gcm_sa("192.0.2.1", "192.0.2.2", 0x1000, flow_selector());
        sa.lifetime = Lifetime {
            soft_seconds: 600,
            hard_seconds: 660,
            ..Lifetime::default()
        };
        sa
    }

    /// The refusal of `sa` against [`flow`], which must be NotPermitted.
    fn refusal(flow: &Flow, sa: &SaParams) -> String {
        let failure = check_sa(std::slice::from_ref(flow), sa).unwrap_err();
        assert_eq!(
            failure.kind,
            FailureKind::NotPermitted,
            "{}",
            failure.message
        );
        failure.message
    }

    fn assert_refused(sa: SaParams, expected: &str) {
        let message = refusal(&flow(), &sa);
        assert!(message.contains(expected), "{message}");
        assert!(message.starts_with("refused: "), "{message}");
    }

    #[test]
    fn an_sa_within_every_limit_passes() {
        assert_eq!(check_sa(&[flow()], &good()).unwrap().name, "site");
        let mut cbc = good();
        cbc.encryption = Encryption::AesCbc;
        cbc.encryption_key = SecretBytes::new(vec![1; 32]);
        cbc.integrity = Some(Integrity::HmacSha256_128);
        cbc.integrity_key = SecretBytes::new(vec![2; 32]);
        assert!(check_sa(&[flow()], &cbc).is_ok());
    }

    #[test]
    fn reqid_zero_is_refused() {
        let mut sa = good();
        sa.reqid = 0;
        assert_refused(sa, "reqid 0 is refused");
    }

    #[test]
    fn key_lengths_must_fit_the_cipher_the_policy_and_the_integrity_algorithm() {
        let mut short = good();
        short.encryption_key = SecretBytes::new(vec![1; 16]);
        assert_refused(
            short,
            "encryption key of 16 octets is not a aes-gcm-16 key length",
        );
        let mut gcm256 = good();
        gcm256.encryption_key = SecretBytes::new(vec![1; 36]);
        assert_refused(
            gcm256,
            "flow site does not allow aes-gcm-16 with a key of 36 octets",
        );
        let mut cbc = good();
        cbc.encryption = Encryption::AesCbc;
        cbc.encryption_key = SecretBytes::new(vec![1; 32]);
        cbc.integrity = Some(Integrity::HmacSha256_128);
        cbc.integrity_key = SecretBytes::new(vec![2; 20]);
        assert_refused(
            cbc.clone(),
            "integrity key of 20 octets, hmac-sha256-128 takes 32",
        );
        cbc.integrity = None;
        cbc.integrity_key = SecretBytes::new(vec![]);
        // The flow check names the missing integrity first or this rule:
        // either way it is refused.
        let message = refusal(&flow(), &cbc);
        assert!(message.contains("aes-cbc without integrity"), "{message}");
        let mut aead_with_key = good();
        aead_with_key.integrity_key = SecretBytes::new(vec![2; 32]);
        assert_refused(
            aead_with_key,
            "integrity key of 32 octets without an integrity algorithm",
        );
        let mut aead_with_integrity = good();
        aead_with_integrity.integrity = Some(Integrity::HmacSha256_128);
        aead_with_integrity.integrity_key = SecretBytes::new(vec![2; 32]);
        assert_refused(
            aead_with_integrity,
            "a combined-mode cipher takes no integrity algorithm",
        );
    }

    #[test]
    fn a_replay_window_below_32_is_refused_in_every_mode() {
        for (window, transport) in [(0, false), (0, true), (16, false)] {
            let mut sa = good();
            sa.replay_window = window;
            let mut flow = flow();
            if transport {
                sa.mode = IpsecMode::Transport;
                flow.mode = IpsecMode::Transport;
            }
            let message = refusal(&flow, &sa);
            assert!(
                message.contains(&format!("replay window {window} is below 32")),
                "{message}"
            );
        }
    }

    #[test]
    fn esn_must_be_what_the_policy_allows() {
        let mut sa = good();
        sa.esn = true;
        assert_refused(sa.clone(), "flow site does not allow ESN");
        let mut esn_only = flow();
        esn_only.limits.esn = vec![true];
        assert!(check_sa(&[esn_only.clone()], &sa).is_ok());
        let message = refusal(&esn_only, &good());
        assert!(
            message.contains("does not allow SAs without ESN"),
            "{message}"
        );
    }

    #[test]
    fn encapsulation_only_on_the_natt_port_and_only_with_natt_on() {
        let mut out = good();
        out.encap = Some(UdpEncap {
            src_port: 4500,
            dst_port: 31000,
        });
        assert!(check_sa(&[flow()], &out).is_ok());
        let mut inbound = esp_gcm_sa("192.0.2.2", "192.0.2.1", 0x1001, flow_selector().reversed());
        inbound.lifetime = good().lifetime;
        inbound.encap = Some(UdpEncap {
            src_port: 31000,
            dst_port: 4500,
        });
        assert!(check_sa(&[flow()], &inbound).is_ok());
        // Our end on another port (an inbound SA with the ports swapped).
        let mut swapped = inbound.clone();
        swapped.encap = Some(UdpEncap {
            src_port: 4500,
            dst_port: 31000,
        });
        let message = refusal(&flow(), &swapped);
        assert!(
            message.contains("UDP encapsulation on our port 31000, not the NAT-T port 4500"),
            "{message}"
        );
        let mut zero = out.clone();
        zero.encap = Some(UdpEncap {
            src_port: 4500,
            dst_port: 0,
        });
        assert_refused(zero, "UDP encapsulation to the peer's port 0");
        let mut no_natt = flow();
        no_natt.limits.natt_port = None;
        let message = refusal(&no_natt, &out);
        assert!(message.contains("NAT-T is disabled"), "{message}");
    }

    #[test]
    fn lifetimes_must_end_and_stay_within_the_policy() {
        let with = |soft_seconds, hard_seconds, soft_bytes, hard_bytes| {
            let mut sa = good();
            sa.lifetime = Lifetime {
                soft_bytes,
                hard_bytes,
                soft_seconds,
                hard_seconds,
            };
            sa
        };
        assert_refused(with(0, 0, 0, 0), "an SA must expire (0 is unlimited)");
        assert_refused(with(600, 0, 0, 0), "an SA must expire");
        assert_refused(
            with(620, 610, 0, 0),
            "soft lifetime 620 s beyond the hard one 610 s",
        );
        assert_refused(
            with(601, 660, 0, 0),
            "exceeds flow site's 600 s (hard at most 660 s)",
        );
        assert_refused(with(600, 661, 0, 0), "exceeds flow site's 600 s");
        assert_refused(
            with(600, 660, 10, 5),
            "soft byte limit 10 beyond the hard one 5",
        );
        let mut bytes = flow();
        bytes.limits.max_bytes = 1000;
        assert!(check_sa(&[bytes.clone()], &with(600, 660, 900, 1000)).is_ok());
        let message = refusal(&bytes, &with(600, 660, 0, 0));
        assert!(
            message.contains("byte limit 0 (0 is unlimited) exceeds flow site's 1000 bytes"),
            "{message}"
        );
        let message = refusal(&bytes, &with(600, 660, 900, 1001));
        assert!(message.contains("byte limit 1001"), "{message}");
    }
}
