//! An SA payload's proposals in one bounded line for logs, e.g.
//! `ESP:ENCR_AES_GCM_16_256/ESN_NO, ESP:ENCR_AES_CBC_128/AUTH_HMAC_SHA2_256_128/ESN_NO`,
//! so that a refusal says what the peer offered (as strongSwan's
//! "received proposals: ..." does).

use std::fmt;

use super::sa::{Proposal, SecurityAssociation, TransformId};

/// Proposals and transforms shown at most; a peer may send 64 of each.
const SHOWN_PROPOSALS: usize = 6;
const SHOWN_TRANSFORMS: usize = 12;

/// Displays the proposals of `sa` (bounded: the rest as "+N more").
pub struct Offered<'a>(pub &'a SecurityAssociation);

impl fmt::Display for Offered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proposals = &self.0.proposals;
        if proposals.is_empty() {
            return f.write_str("no proposals");
        }
        for (index, proposal) in proposals.iter().take(SHOWN_PROPOSALS).enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write_proposal(f, proposal)?;
        }
        if proposals.len() > SHOWN_PROPOSALS {
            write!(f, ", +{} more", proposals.len() - SHOWN_PROPOSALS)?;
        }
        Ok(())
    }
}

fn write_proposal(f: &mut fmt::Formatter<'_>, proposal: &Proposal) -> fmt::Result {
    write!(f, "{}:", proposal.protocol)?;
    for (index, transform) in proposal
        .transforms
        .iter()
        .take(SHOWN_TRANSFORMS)
        .enumerate()
    {
        if index > 0 {
            f.write_str("/")?;
        }
        match transform.id {
            TransformId::Encr(id) => write!(f, "{id}")?,
            TransformId::Prf(id) => write!(f, "{id}")?,
            TransformId::Integ(id) => write!(f, "{id}")?,
            TransformId::Ke(id) => write!(f, "{id}")?,
            TransformId::Esn(id) => write!(f, "{id}")?,
            TransformId::AdditionalKe(n, id) => write!(f, "ADDKE{n}_{id}")?,
            TransformId::Unknown { transform_type, id } => {
                write!(f, "TRANSFORM({transform_type},{id})")?
            }
        }
        if let Some(bits) = transform.key_length() {
            write!(f, "_{bits}")?;
        }
    }
    if proposal.transforms.len() > SHOWN_TRANSFORMS {
        write!(f, "/+{}", proposal.transforms.len() - SHOWN_TRANSFORMS)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::registries::{DhId, EncrId, EsnId, PrfId, ProtocolId};
    use super::super::sa::Transform;
    use super::*;

    fn ike(transforms: Vec<Transform>) -> Proposal {
        Proposal {
            number: 1,
            protocol: ProtocolId::Ike,
            spi: Vec::new(),
            transforms,
        }
    }

    #[test]
    fn proposals_read_as_protocol_and_transforms() {
        let sa = SecurityAssociation {
            proposals: vec![ike(vec![
                Transform::with_key_length(TransformId::Encr(EncrId::from_value(20)), 256),
                Transform::new(TransformId::Prf(PrfId::from_value(5))),
                Transform::new(TransformId::Ke(DhId::from_value(31))),
            ])],
        };
        let text = Offered(&sa).to_string();
        assert!(text.starts_with("IKE:"), "{text}");
        assert!(text.contains("_256/"), "{text}");
        assert_eq!(text.matches('/').count(), 2, "{text}");
    }

    #[test]
    fn many_proposals_and_transforms_are_bounded() {
        let transforms =
            vec![Transform::new(TransformId::Esn(EsnId::from_value(0))); SHOWN_TRANSFORMS + 5];
        let sa = SecurityAssociation {
            proposals: vec![ike(transforms); SHOWN_PROPOSALS + 3],
        };
        let text = Offered(&sa).to_string();
        assert!(text.ends_with(", +3 more"), "{text}");
        assert_eq!(text.matches("/+5").count(), SHOWN_PROPOSALS, "{text}");
        let empty = SecurityAssociation {
            proposals: Vec::new(),
        };
        assert_eq!(Offered(&empty).to_string(), "no proposals");
    }
}
