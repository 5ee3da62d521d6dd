//! Which ESP algorithms the kernel's XFRM installs, asked from the kernel
//! itself: the parent (root, before any child exists) adds one throwaway
//! SA per algorithm in a network namespace of its own, made for the
//! question and gone with the thread that asked it, so nothing of ours
//! ever shows in the host's SA database.
//!
//! /proc/crypto is not the answer: it lists what is loaded, while XFRM
//! loads crypto modules on demand. The kernel answers an algorithm it has
//! no implementation of with ENOSYS (xfrm_user's attach_one_algo), before
//! it looks for ESP itself; a kernel without ESP answers the algorithms it
//! does have with EPROTONOSUPPORT, and then whether the SA would install
//! cannot be known.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use iked_common::config::checks::KernelAlgorithms;
use iked_common::config::{TransformSpec, TRANSFORM_ENCR, TRANSFORM_INTEG};
use iked_common::kernel::{
    Encryption, Integrity, IpsecMode, IpsecProtocol, KernelSocketKind, Lifetime, SaId, SaParams,
    SecretBytes, Selector,
};

use crate::backend::KernelBackend;

/// How long the parent waits for the whole probe (each kernel reply has
/// the backend's own timeout; this bounds a thread that never returns).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The pairs asked about: each cipher we install, each integrity
/// algorithm with AES-CBC.
const PROBES: &[(Encryption, usize, Option<Integrity>)] = &[
    (Encryption::AesCbc, 16, Some(Integrity::HmacSha1_96)),
    (Encryption::AesCbc, 16, Some(Integrity::HmacSha256_128)),
    (Encryption::AesCbc, 16, Some(Integrity::HmacSha384_192)),
    (Encryption::AesCbc, 16, Some(Integrity::HmacSha512_256)),
    (Encryption::CamelliaCbc, 16, Some(Integrity::HmacSha512_256)),
    // Key octets and the 4-octet salt (RFC 4106 §8.1, RFC 7634 §2).
    (Encryption::AesGcm16, 20, None),
    (Encryption::ChaCha20Poly1305, 36, None),
];

/// The IKEv2 transforms (RFC 7296 §3.3.2) a kernel algorithm stands for;
/// any key length.
fn encryption_transform(e: Encryption) -> TransformSpec {
    let id = match e {
        Encryption::AesCbc => 12,
        Encryption::AesGcm16 => 20,
        Encryption::ChaCha20Poly1305 => 28,
        Encryption::CamelliaCbc => 23,
    };
    TransformSpec {
        transform_type: TRANSFORM_ENCR,
        id,
        key_length: None,
    }
}

fn integrity_transform(i: Integrity) -> TransformSpec {
    let id = match i {
        Integrity::HmacSha1_96 => 2,
        Integrity::HmacSha256_128 => 12,
        Integrity::HmacSha384_192 => 13,
        Integrity::HmacSha512_256 => 14,
    };
    TransformSpec {
        transform_type: TRANSFORM_INTEG,
        id,
        key_length: None,
    }
}

/// The iked.conf name of a transform the probe asks about.
fn transform_name(t: &TransformSpec) -> String {
    let name = match (t.transform_type, t.id) {
        (TRANSFORM_ENCR, 12) => "aes-cbc",
        (TRANSFORM_ENCR, 20) => "aes-gcm",
        (TRANSFORM_ENCR, 28) => "chacha20-poly1305",
        (TRANSFORM_ENCR, 23) => "camellia",
        (TRANSFORM_INTEG, 2) => "hmac-sha1",
        (TRANSFORM_INTEG, 12) => "hmac-sha2-256",
        (TRANSFORM_INTEG, 13) => "hmac-sha2-384",
        (TRANSFORM_INTEG, 14) => "hmac-sha2-512",
        _ => return format!("transform {}/{}", t.transform_type, t.id),
    };
    name.to_string()
}

/// One answer of the kernel to a throwaway SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    Installed,
    /// ENOSYS: the kernel has no such algorithm.
    NoAlgorithm,
    /// EPROTONOSUPPORT: the kernel has no ESP at all.
    NoEsp,
    /// Anything else, as the kernel said it.
    Other(String),
}

/// What the answers, in the order of [`PROBES`], say the kernel can do.
pub fn summarize(answers: &[ProbeAnswer]) -> KernelAlgorithms {
    let mut unavailable = Vec::new();
    let mut unknown = None;
    let mut installed_any = false;
    for ((encryption, _, integrity), answer) in PROBES.iter().zip(answers) {
        match answer {
            ProbeAnswer::Installed => installed_any = true,
            ProbeAnswer::NoAlgorithm => {
                // AES-CBC is asked with each integrity algorithm: the
                // integrity one is what is missing if AES-CBC works elsewhere.
                let t = match integrity {
                    Some(i) if *encryption == Encryption::AesCbc => integrity_transform(*i),
                    _ => encryption_transform(*encryption),
                };
                if !unavailable.contains(&t) {
                    unavailable.push(t);
                }
            }
            ProbeAnswer::NoEsp => {
                unknown.get_or_insert_with(|| {
                    "the kernel has no ESP (esp4/esp6 not built or loadable): no SA can be \
                     installed until it has"
                        .to_string()
                });
            }
            ProbeAnswer::Other(message) => {
                unknown.get_or_insert_with(|| format!("the kernel answered {message}"));
            }
        }
    }
    if answers.len() < PROBES.len() {
        unknown.get_or_insert_with(|| "the kernel did not answer every question".into());
    }
    // If every AES-CBC pair failed, AES-CBC itself is what is missing, and
    // the integrity algorithms are not known to be.
    let cbc_all_missing = PROBES
        .iter()
        .zip(answers)
        .filter(|((e, _, _), _)| *e == Encryption::AesCbc)
        .all(|(_, a)| *a == ProbeAnswer::NoAlgorithm);
    if cbc_all_missing && !answers.is_empty() {
        unavailable.retain(|t| t.transform_type != TRANSFORM_INTEG);
        unavailable.push(encryption_transform(Encryption::AesCbc));
    }
    if installed_any {
        // What installed proves ESP is there: "unknown" only for errors.
        unknown = unknown.filter(|u| !u.starts_with("the kernel has no ESP"));
    } else if answers.contains(&ProbeAnswer::NoEsp) && !unavailable.is_empty() {
        // Without ESP nothing installs, whatever the algorithm: refusing
        // only the missing ones would single out configurations that fail
        // no more than the rest. Said in the warning instead.
        let names: Vec<String> = unavailable.iter().map(transform_name).collect();
        unknown = unknown.map(|u| {
            format!(
                "{u}; it also lacks {}, which are refused once it has ESP",
                names.join(", ")
            )
        });
        unavailable.clear();
    }
    KernelAlgorithms::Xfrm {
        unavailable,
        unknown,
    }
}

fn throwaway_sa(
    spi: u32,
    encryption: Encryption,
    key: usize,
    integrity: Option<Integrity>,
) -> SaParams {
    // TEST-NET-1 (RFC 5737), in a namespace that has no interfaces anyway.
    let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let dst = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    SaParams {
        id: SaId {
            src,
            dst,
            protocol: IpsecProtocol::Esp,
            spi,
        },
        mode: IpsecMode::Tunnel,
        reqid: spi,
        selector: Selector::hosts(src, dst),
        encryption,
        encryption_key: SecretBytes::new(vec![0x5a; key]),
        integrity,
        integrity_key: SecretBytes::new(vec![0xa5; integrity.map_or(0, |i| i.key_length())]),
        lifetime: Lifetime::default(),
        replay_window: 32,
        esn: false,
        encap: None,
    }
}

/// Runs in its own thread: a network namespace is per thread, and this
/// one ends with it.
fn ask_in_new_namespace() -> Result<Vec<ProbeAnswer>, String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("cannot make a network namespace to ask in: {}", e.desc()))?;
    let open = || crate::socket::open_kernel_sockets(Some(KernelSocketKind::Xfrm));
    let sockets = open().map_err(|e| e.to_string())?;
    let mut backend = crate::xfrm::XfrmBackend::new(sockets.requests, sockets.events)
        .map_err(|e| e.to_string())?;
    let mut answers = Vec::new();
    for (index, (encryption, key, integrity)) in PROBES.iter().enumerate() {
        let sa = throwaway_sa(0x1000 + index as u32, *encryption, *key, *integrity);
        let answer = match backend.add_sa(&sa, false) {
            Ok(()) => ProbeAnswer::Installed,
            Err(f) if f.errno == nix::libc::ENOSYS => ProbeAnswer::NoAlgorithm,
            Err(f) if f.errno == nix::libc::EPROTONOSUPPORT => ProbeAnswer::NoEsp,
            Err(f) => ProbeAnswer::Other(f.message),
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// Asks the kernel which algorithms its XFRM installs. Needs
/// CAP_SYS_ADMIN (for the namespace) and CAP_NET_ADMIN: the parent at
/// start, before it drops anything. Never fails: what cannot be known is
/// said in the answer, for a warning.
pub fn probe_xfrm_algorithms() -> KernelAlgorithms {
    let (sender, receiver) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("xfrm-probe".into())
        .spawn(move || {
            let _ = sender.send(ask_in_new_namespace());
        });
    let answer = match spawned {
        Ok(_) => receiver
            .recv_timeout(PROBE_TIMEOUT)
            .unwrap_or_else(|_| Err("the kernel did not answer in time".into())),
        Err(e) => Err(format!("cannot start the probe: {e}")),
    };
    match answer {
        Ok(answers) => summarize(&answers),
        Err(why) => KernelAlgorithms::Xfrm {
            unavailable: Vec::new(),
            unknown: Some(why),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_without_esp_is_unknown_not_refused() {
        let all = vec![ProbeAnswer::NoEsp; PROBES.len()];
        let KernelAlgorithms::Xfrm {
            unavailable,
            unknown,
        } = summarize(&all)
        else {
            panic!("not xfrm");
        };
        assert!(unavailable.is_empty());
        assert!(unknown.unwrap().contains("no ESP"));
    }

    #[test]
    fn without_esp_missing_algorithms_are_only_warned_about() {
        // This is what a kernel with XFRM, no ESP and only AES and SHA
        // built in answers (seen on a Firecracker guest).
        let mut answers = vec![ProbeAnswer::NoEsp; PROBES.len()];
        for a in &mut answers[4..] {
            *a = ProbeAnswer::NoAlgorithm;
        }
        let KernelAlgorithms::Xfrm {
            unavailable,
            unknown,
        } = summarize(&answers)
        else {
            panic!("not xfrm");
        };
        assert!(unavailable.is_empty(), "{unavailable:?}");
        let unknown = unknown.unwrap();
        assert!(unknown.contains("no ESP"), "{unknown}");
        assert!(
            unknown.contains("lacks camellia, aes-gcm, chacha20-poly1305"),
            "{unknown}"
        );
    }

    #[test]
    fn missing_algorithms_are_named_and_esp_that_installs_is_known() {
        let mut answers = vec![ProbeAnswer::Installed; PROBES.len()];
        answers[5] = ProbeAnswer::NoAlgorithm; // AES-GCM
        answers[1] = ProbeAnswer::NoAlgorithm; // HMAC-SHA-256 with AES-CBC
        let KernelAlgorithms::Xfrm {
            unavailable,
            unknown,
        } = summarize(&answers)
        else {
            panic!("not xfrm");
        };
        assert_eq!(unknown, None);
        assert_eq!(
            unavailable,
            vec![
                integrity_transform(Integrity::HmacSha256_128),
                encryption_transform(Encryption::AesGcm16)
            ]
        );
    }

    #[test]
    fn aes_cbc_missing_everywhere_is_aes_cbc_not_every_hmac() {
        let mut answers = vec![ProbeAnswer::Installed; PROBES.len()];
        for a in &mut answers[..4] {
            *a = ProbeAnswer::NoAlgorithm;
        }
        let KernelAlgorithms::Xfrm { unavailable, .. } = summarize(&answers) else {
            panic!("not xfrm");
        };
        assert_eq!(unavailable, vec![encryption_transform(Encryption::AesCbc)]);
    }

    #[test]
    fn fewer_answers_than_questions_is_unknown() {
        let KernelAlgorithms::Xfrm { unknown, .. } = summarize(&[ProbeAnswer::Installed]) else {
            panic!("not xfrm");
        };
        assert!(unknown.is_some());
    }
}
