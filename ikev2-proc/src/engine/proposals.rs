//! SA proposals: from the policy's `ikesa`/`childsa` lists to the wire, and
//! the choice among a peer's proposals (RFC 7296 §2.7, §3.3).

use iked_common::config::{
    ProposalSpec, TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG, TRANSFORM_KE, TRANSFORM_PRF,
};
use iked_common::crypto::sk::{EncrAlg, IntegAlg};
use iked_common::crypto::{KeMethod, PrfAlg, SkTransform};
use iked_common::kernel::{Encryption, Integrity};
use iked_common::wire::{
    Proposal, ProtocolId, SecurityAssociation, Transform, TransformAttribute, TransformId,
};

/// The transforms of an IKE SA, resolved to the algorithms we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    pub prf: PrfAlg,
    pub ke: KeMethod,
}

impl IkeSuite {
    pub fn sk_transform(&self) -> Option<SkTransform> {
        SkTransform::new(self.encr, self.integ).ok()
    }
}

/// The transforms of a Child SA (ESP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildSuite {
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    /// Key exchange for PFS; None without.
    pub ke: Option<KeMethod>,
    pub esn: bool,
}

impl ChildSuite {
    /// The kernel's names for the transforms, if the kernel side knows them.
    pub fn kernel_transforms(&self) -> Option<(Encryption, Option<Integrity>)> {
        let encryption = Encryption::from_encr(self.encr.encr_id())?;
        let integrity = match self.integ {
            None => None,
            Some(integ) => Some(Integrity::from_integ(integ.integ_id())?),
        };
        if encryption.is_aead() != integrity.is_none() {
            return None;
        }
        Some((encryption, integrity))
    }
}

fn wire_transform(transform_type: u8, id: u16, key_length: Option<u16>) -> Transform {
    let id = TransformId::from_values(transform_type, id);
    match key_length {
        Some(bits) => Transform::with_key_length(id, bits),
        None => Transform::new(id),
    }
}

/// The SA payload offering `specs`, numbered from 1 (RFC 7296 §3.3.1).
/// `ke_first` moves that group to the front of each proposal's KE list, so
/// the group of the KE payload we send is the one preferred.
pub fn offer(
    specs: &[ProposalSpec],
    protocol: ProtocolId,
    spi: &[u8],
    ke_first: Option<KeMethod>,
    with_ke: bool,
) -> SecurityAssociation {
    let mut proposals = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let mut transforms: Vec<Transform> = Vec::new();
        for t in &spec.transforms {
            if t.transform_type == TRANSFORM_KE && !with_ke {
                continue;
            }
            transforms.push(wire_transform(t.transform_type, t.id, t.key_length));
        }
        if let Some(first) = ke_first {
            // Stable: the wanted group first, the others keep their order.
            transforms.sort_by_key(|t| match t.id {
                TransformId::Ke(id) if id.value() == first.iana_id() => 0,
                TransformId::Ke(_) => 1,
                _ => 0,
            });
        }
        if protocol == ProtocolId::Esp
            && !spec
                .transforms
                .iter()
                .any(|t| t.transform_type == TRANSFORM_ESN)
        {
            // RFC 7296 §3.3.2: ESN is mandatory in ESP proposals.
            transforms.push(Transform::new(TransformId::from_values(TRANSFORM_ESN, 0)));
        }
        if transforms.is_empty() {
            continue;
        }
        proposals.push(Proposal {
            number: (index + 1).min(255) as u8,
            protocol,
            spi: spi.to_vec(),
            transforms,
        });
    }
    SecurityAssociation { proposals }
}

/// The first KE group of the first proposal that has one.
pub fn preferred_ke(specs: &[ProposalSpec]) -> Option<KeMethod> {
    specs
        .iter()
        .flat_map(|s| s.of_type(TRANSFORM_KE))
        .find_map(|t| KeMethod::from_iana(t.id))
}

/// Whether a KE group is in any of our proposals.
pub fn offers_ke(specs: &[ProposalSpec], ke: KeMethod) -> bool {
    specs
        .iter()
        .flat_map(|s| s.of_type(TRANSFORM_KE))
        .any(|t| t.id == ke.iana_id())
}

/// Whether any of our proposals asks for a KE (PFS for Child SAs).
pub fn wants_ke(specs: &[ProposalSpec]) -> bool {
    specs
        .iter()
        .any(|s| s.of_type(TRANSFORM_KE).next().is_some())
}

fn known_attributes(t: &Transform) -> bool {
    // RFC 7296 §3.3.6: a transform with an attribute we do not know is rejected.
    t.attributes
        .iter()
        .all(|a| matches!(a, TransformAttribute::KeyLength(_)))
}

/// Whether the peer's transform is one we configured in `spec`.
fn spec_allows(spec: &ProposalSpec, t: &Transform) -> bool {
    let ty = t.id.transform_type().value();
    known_attributes(t)
        && spec
            .of_type(ty)
            .any(|s| s.id == t.id.id() && s.key_length == t.key_length())
}

/// Types that must be agreed for the protocol, with the defaults used when
/// our spec leaves one out: ESN defaults to "no ESN", KE for a Child SA to
/// none, INTEG for an AEAD cipher to none.
fn types_for(protocol: ProtocolId) -> &'static [u8] {
    if protocol == ProtocolId::Ike {
        &[TRANSFORM_ENCR, TRANSFORM_PRF, TRANSFORM_INTEG, TRANSFORM_KE]
    } else {
        &[TRANSFORM_ENCR, TRANSFORM_INTEG, TRANSFORM_KE, TRANSFORM_ESN]
    }
}

/// Chooses one transform per type from `peer` acceptable under `spec`.
/// Returns the chosen transforms (in the peer's order of types) or None.
fn choose_in(spec: &ProposalSpec, peer: &Proposal, protocol: ProtocolId) -> Option<Vec<Transform>> {
    let mut chosen = Vec::new();
    for &ty in types_for(protocol) {
        let offered: Vec<&Transform> = peer
            .transforms
            .iter()
            .filter(|t| t.id.transform_type().value() == ty)
            .collect();
        let configured = spec.of_type(ty).next().is_some();
        if !configured {
            // Defaults: the peer must offer nothing, or offer the "none" value.
            let none_offered = offered.iter().any(|t| t.id.id() == 0);
            if offered.is_empty() {
                continue;
            }
            if none_offered {
                chosen.push(Transform::new(TransformId::from_values(ty, 0)));
                continue;
            }
            return None;
        }
        let pick = offered.into_iter().find(|t| spec_allows(spec, t))?;
        chosen.push(pick.clone());
    }
    // Transforms of types we do not know make the proposal unacceptable.
    if peer
        .transforms
        .iter()
        .any(|t| !types_for(protocol).contains(&t.id.transform_type().value()))
    {
        return None;
    }
    Some(chosen)
}

/// Responder's choice (RFC 7296 §2.7): the first of the peer's proposals
/// that one of ours accepts and that we implement. Returns the accepted
/// proposal (with the peer's number and SPI) and its parsed transforms.
pub fn select_ike(
    specs: &[ProposalSpec],
    sa: &SecurityAssociation,
) -> Option<(Proposal, IkeSuite)> {
    for peer in &sa.proposals {
        if peer.protocol != ProtocolId::Ike {
            continue;
        }
        for spec in specs {
            let Some(chosen) = choose_in(spec, peer, ProtocolId::Ike) else {
                continue;
            };
            let proposal = Proposal {
                number: peer.number,
                protocol: ProtocolId::Ike,
                spi: peer.spi.clone(),
                transforms: chosen,
            };
            if let Some(suite) = ike_suite(&proposal) {
                return Some((proposal, suite));
            }
        }
    }
    None
}

/// The same for ESP proposals of a Child SA.
pub fn select_child(
    specs: &[ProposalSpec],
    sa: &SecurityAssociation,
    allow_ke: bool,
) -> Option<(Proposal, ChildSuite)> {
    for peer in &sa.proposals {
        if peer.protocol != ProtocolId::Esp || peer.spi.len() != 4 {
            continue;
        }
        for spec in specs {
            let mut spec = spec.clone();
            if !allow_ke {
                // IKE_AUTH carries no KE: the first Child SA takes its keys
                // from the IKE SA (RFC 7296 §1.2), the KE transform is ignored.
                spec.transforms.retain(|t| t.transform_type != TRANSFORM_KE);
            }
            let mut peer = peer.clone();
            if !allow_ke {
                peer.transforms
                    .retain(|t| t.id.transform_type().value() != TRANSFORM_KE);
            }
            let Some(chosen) = choose_in(&spec, &peer, ProtocolId::Esp) else {
                continue;
            };
            let proposal = Proposal {
                number: peer.number,
                protocol: ProtocolId::Esp,
                spi: peer.spi.clone(),
                transforms: chosen,
            };
            if let Some(suite) = child_suite(&proposal) {
                return Some((proposal, suite));
            }
        }
    }
    None
}

/// Initiator's check of the responder's answer: exactly one proposal, and
/// each transform was in the proposal of that number we sent.
pub fn accepted_matches(
    offered: &SecurityAssociation,
    answer: &SecurityAssociation,
) -> Option<Proposal> {
    let [answer] = answer.proposals.as_slice() else {
        return None;
    };
    let ours = offered
        .proposals
        .iter()
        .find(|p| p.number == answer.number)?;
    if ours.protocol != answer.protocol {
        return None;
    }
    let mut seen_types = Vec::new();
    for t in &answer.transforms {
        let ty = t.id.transform_type().value();
        if seen_types.contains(&ty) {
            return None;
        }
        seen_types.push(ty);
        let in_ours = ours
            .transforms
            .iter()
            .any(|o| o.id == t.id && o.key_length() == t.key_length());
        let none_default = t.id.id() == 0
            && !ours
                .transforms
                .iter()
                .any(|o| o.id.transform_type().value() == ty);
        if !in_ours && !none_default {
            return None;
        }
    }
    Some(answer.clone())
}

fn find(proposal: &Proposal, ty: u8) -> Option<&Transform> {
    proposal
        .transforms
        .iter()
        .find(|t| t.id.transform_type().value() == ty)
}

/// The algorithms of an accepted IKE proposal, if we implement them.
pub fn ike_suite(proposal: &Proposal) -> Option<IkeSuite> {
    let encr_t = find(proposal, TRANSFORM_ENCR)?;
    let encr = EncrAlg::from_iana(encr_t.id.id(), encr_t.key_length()).ok()?;
    let integ = match find(proposal, TRANSFORM_INTEG) {
        Some(t) if t.id.id() != 0 => Some(IntegAlg::from_iana(t.id.id())?),
        _ => None,
    };
    let prf = PrfAlg::from_iana(find(proposal, TRANSFORM_PRF)?.id.id())?;
    let ke = KeMethod::from_iana(find(proposal, TRANSFORM_KE)?.id.id())?;
    let suite = IkeSuite {
        encr,
        integ,
        prf,
        ke,
    };
    suite.sk_transform()?;
    Some(suite)
}

/// The algorithms of an accepted ESP proposal, if we and the kernel side know them.
pub fn child_suite(proposal: &Proposal) -> Option<ChildSuite> {
    let encr_t = find(proposal, TRANSFORM_ENCR)?;
    let encr = EncrAlg::from_iana(encr_t.id.id(), encr_t.key_length()).ok()?;
    let integ = match find(proposal, TRANSFORM_INTEG) {
        Some(t) if t.id.id() != 0 => Some(IntegAlg::from_iana(t.id.id())?),
        _ => None,
    };
    let ke = match find(proposal, TRANSFORM_KE) {
        Some(t) if t.id.id() != 0 => Some(KeMethod::from_iana(t.id.id())?),
        _ => None,
    };
    let esn = matches!(find(proposal, TRANSFORM_ESN), Some(t) if t.id.id() == 1);
    let suite = ChildSuite {
        encr,
        integ,
        ke,
        esn,
    };
    suite.kernel_transforms()?;
    Some(suite)
}

/// A readable name for `ikectl show sa`.
pub fn encr_name(encr: EncrAlg) -> String {
    match encr {
        EncrAlg::AesCbc { key_bits } => format!("aes-{key_bits}"),
        EncrAlg::AesGcm { key_bits, icv_len } => format!("aes-{key_bits}-gcm-{icv_len}"),
        EncrAlg::ChaCha20Poly1305 => "chacha20-poly1305".into(),
        EncrAlg::CamelliaCbc { key_bits } => format!("camellia-{key_bits}"),
        other => format!("{other:?}"),
    }
}

pub fn integ_name(integ: IntegAlg) -> String {
    match integ {
        IntegAlg::HmacSha1_96 => "hmac-sha1",
        IntegAlg::HmacSha256_128 => "hmac-sha2-256",
        IntegAlg::HmacSha384_192 => "hmac-sha2-384",
        IntegAlg::HmacSha512_256 => "hmac-sha2-512",
    }
    .into()
}

pub fn prf_name(prf: PrfAlg) -> String {
    match prf {
        PrfAlg::HmacSha1 => "hmac-sha1",
        PrfAlg::HmacSha256 => "hmac-sha2-256",
        PrfAlg::HmacSha384 => "hmac-sha2-384",
        PrfAlg::HmacSha512 => "hmac-sha2-512",
    }
    .into()
}

pub fn ke_name(ke: KeMethod) -> String {
    match ke {
        KeMethod::Modp2048 => "modp2048",
        KeMethod::Modp3072 => "modp3072",
        KeMethod::Modp4096 => "modp4096",
        KeMethod::Modp6144 => "modp6144",
        KeMethod::Modp8192 => "modp8192",
        KeMethod::Ecp256 => "ecp256",
        KeMethod::Ecp384 => "ecp384",
        KeMethod::Ecp521 => "ecp521",
        KeMethod::Curve25519 => "curve25519",
        KeMethod::Curve448 => "curve448",
    }
    .into()
}
