//! The shape of what ca is asked to sign (security review L2). RFC 7296
//! §2.15: the octets an AUTH payload covers are one side's IKE_SA_INIT
//! message, then the other side's nonce, then prf(SK_p, ID'):
//!
//! - initiator: its IKE_SA_INIT request | Nr | prf(SK_pi, IDi')
//! - responder: its IKE_SA_INIT response | Ni | prf(SK_pr, IDr')
//!
//! ca refuses to compute a MAC with a pre-shared key over anything else, so
//! that a compromised ikev2 cannot use ca as an oracle for MACs of chosen
//! octets (an AUTH for an exchange it did not run, or a MAC usable
//! elsewhere): the octets must start with an IKE header of version 2 for
//! an IKE_SA_INIT with message ID 0, whose flags and SPIs are those of a
//! request from the original initiator or of the response to it, whose
//! payload chain fills exactly the length the header gives, followed by
//! a nonce of 16 to 256 octets (§2.10) and exactly one PRF output.

/// IKE header length (§3.1).
const HEADER: usize = 28;
/// IKE_SA_INIT exchange type (§3.1).
const IKE_SA_INIT: u8 = 34;
/// Header flags (§3.1).
const FLAG_INITIATOR: u8 = 0x08;
const FLAG_RESPONSE: u8 = 0x20;
/// Nonce lengths (§2.10, §3.9).
const MIN_NONCE: usize = 16;
const MAX_NONCE: usize = 256;

/// Why `octets` are not AUTH input for a PRF of `prf_len` output octets.
pub fn check_auth_input(octets: &[u8], prf_len: usize) -> Result<(), String> {
    let refuse = |why: String| Err(format!("refusing to sign: {why}"));
    let Some(header) = octets.get(..HEADER) else {
        return refuse(format!(
            "{} octets are shorter than an IKE header",
            octets.len()
        ));
    };
    let spi_i = &header[0..8];
    let spi_r = &header[8..16];
    let (first_payload, version, exchange, flags) =
        (header[16], header[17], header[18], header[19]);
    let message_id = u32::from_be_bytes([header[20], header[21], header[22], header[23]]);
    let length = u32::from_be_bytes([header[24], header[25], header[26], header[27]]) as usize;
    if version >> 4 != 2 {
        return refuse(format!("IKE version {:#04x}, not 2.x", version));
    }
    if exchange != IKE_SA_INIT {
        return refuse(format!("exchange type {exchange}, not IKE_SA_INIT (34)"));
    }
    if message_id != 0 {
        return refuse(format!("message ID {message_id} of an IKE_SA_INIT, not 0"));
    }
    let request = flags & (FLAG_INITIATOR | FLAG_RESPONSE) == FLAG_INITIATOR;
    let response = flags & (FLAG_INITIATOR | FLAG_RESPONSE) == FLAG_RESPONSE;
    if !request && !response {
        return refuse(format!(
            "flags {flags:#04x} are neither the initiator's request nor the response to it"
        ));
    }
    if spi_i.iter().all(|&b| b == 0) {
        return refuse("the initiator's SPI is 0".into());
    }
    if response && spi_r.iter().all(|&b| b == 0) {
        return refuse("an IKE_SA_INIT response with a responder SPI of 0".into());
    }
    if request && spi_r.iter().any(|&b| b != 0) {
        return refuse("an IKE_SA_INIT request with a responder SPI".into());
    }
    if first_payload == 0 {
        return refuse("an IKE_SA_INIT without payloads".into());
    }
    if length < HEADER || length > octets.len() {
        return refuse(format!(
            "the header gives {length} octets, {} are there",
            octets.len()
        ));
    }
    // The payload chain (§3.2) must end exactly at the message's end.
    let mut offset = HEADER;
    let mut next = first_payload;
    while next != 0 {
        let Some(generic) = octets
            .get(offset..offset + 4)
            .filter(|_| offset + 4 <= length)
        else {
            return refuse(format!("payload at octet {offset} runs past the message"));
        };
        let payload_len = usize::from(u16::from_be_bytes([generic[2], generic[3]]));
        if payload_len < 4 || offset + payload_len > length {
            return refuse(format!(
                "payload at octet {offset} of length {payload_len} does not fit the message"
            ));
        }
        next = generic[0];
        offset += payload_len;
    }
    if offset != length {
        return refuse(format!(
            "the payloads end at octet {offset}, the header says {length}"
        ));
    }
    let rest = octets.len() - length;
    let nonce = rest.saturating_sub(prf_len);
    if rest < prf_len || !(MIN_NONCE..=MAX_NONCE).contains(&nonce) {
        return refuse(format!(
            "{rest} octets after the message are not a nonce of {MIN_NONCE}-{MAX_NONCE} \
             octets and a {prf_len}-octet PRF output"
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An IKE_SA_INIT `flags` message with an SA and a Nonce payload, then
    /// a `nonce`-octet nonce and a `prf`-octet PRF output.
    pub(crate) fn auth_input(flags: u8, nonce: usize, prf: usize) -> Vec<u8> {
        let sa = [0x28, 0, 0, 8, 1, 2, 3, 4]; // next: Nonce (40)
        let nonce_payload = [0, 0, 0, 20, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9];
        let length = (HEADER + sa.len() + nonce_payload.len()) as u32;
        let mut m = vec![0x11; 8]; // SPIi
        let spi_r = if flags == FLAG_RESPONSE { 0x22 } else { 0 };
        m.extend([spi_r; 8]);
        m.extend([33, 0x20, IKE_SA_INIT, flags]);
        m.extend(0u32.to_be_bytes());
        m.extend(length.to_be_bytes());
        m.extend(sa);
        m.extend(nonce_payload);
        m.extend(vec![0x5a; nonce]);
        m.extend(vec![0xa5; prf]);
        m
    }

    fn refusal(octets: &[u8]) -> String {
        check_auth_input(octets, 32).unwrap_err()
    }

    #[test]
    fn the_initiators_request_and_the_responders_response_pass() {
        assert_eq!(
            check_auth_input(&auth_input(FLAG_INITIATOR, 32, 32), 32),
            Ok(())
        );
        assert_eq!(
            check_auth_input(&auth_input(FLAG_RESPONSE, 16, 32), 32),
            Ok(())
        );
        assert_eq!(
            check_auth_input(&auth_input(FLAG_RESPONSE, 256, 64), 64),
            Ok(())
        );
    }

    #[test]
    fn other_octets_are_refused_with_the_reason() {
        assert!(refusal(b"real message | nonce | prf(SK_p, ID')").starts_with("refusing to sign: "));
        assert!(refusal(&[0; 10]).contains("shorter than an IKE header"));
        let good = auth_input(FLAG_INITIATOR, 32, 32);
        let with = |at: usize, value: u8| {
            let mut m = good.clone();
            m[at] = value;
            m
        };
        assert!(refusal(&with(18, 35)).contains("exchange type 35, not IKE_SA_INIT"));
        assert!(refusal(&with(17, 0x10)).contains("IKE version 0x10"));
        assert!(refusal(&with(23, 1)).contains("message ID 1"));
        assert!(refusal(&with(19, 0x28)).contains("flags 0x28"));
        assert!(refusal(&with(19, 0)).contains("flags 0x00"));
        assert!(refusal(&with(8, 1)).contains("request with a responder SPI"));
        let mut no_spi = good.clone();
        no_spi[..8].fill(0);
        assert!(refusal(&no_spi).contains("the initiator's SPI is 0"));
        assert!(refusal(&with(16, 0)).contains("without payloads"));
        // Lengths: the header's, the payload chain's, the tail's.
        assert!(refusal(&with(27, 200)).contains("the header gives"));
        assert!(refusal(&with(31, 9)).contains("does not fit the message"));
        assert!(refusal(&with(39, 16)).contains("the payloads end at octet 52, the header says 56"));
        assert!(refusal(&auth_input(FLAG_INITIATOR, 15, 32)).contains("not a nonce of 16-256"));
        assert!(refusal(&auth_input(FLAG_INITIATOR, 257, 32)).contains("not a nonce"));
        assert!(refusal(&auth_input(FLAG_INITIATOR, 0, 20)).contains("not a nonce"));
        // A PRF output of the wrong size for the IKE SA's PRF.
        assert!(check_auth_input(&auth_input(FLAG_INITIATOR, 32, 32), 64).is_err());
    }
}
