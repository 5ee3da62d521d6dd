//! The MS-CHAPv2 computations (RFC 2759 §8) and the MPPE master keys of
//! RFC 3079 §3.4 that make the MSK of EAP-MSCHAPv2.
//!
//! MD4 and single DES come from RustCrypto's `md4` and `des` crates: OpenSSL
//! 3 keeps both in its legacy provider only, which ca would have to load at
//! run time inside its chroot. SHA-1 is OpenSSL's (default provider).
//!
//! Every intermediate value that depends on the password is zeroed when
//! dropped ([`Zeroizing`]).

use des::cipher::{BlockCipherEncrypt, KeyInit};
use des::Des;
use md4::{Digest, Md4};
use openssl::sha::Sha1;
use zeroize::{Zeroize, Zeroizing};

/// Length of the authenticator and peer challenges (RFC 2759 §4).
pub const CHALLENGE_LEN: usize = 16;
/// Length of the NT-Response (RFC 2759 §8.1).
pub const NT_RESPONSE_LEN: usize = 24;
/// Length of the MSK EAP-MSCHAPv2 exports to IKEv2 (RFC 7296 §2.16 uses
/// it as the shared key of the AUTH payloads).
pub const MSK_LEN: usize = 64;

/// The NT password hash, MD4 over the password in UTF-16LE (RFC 2759 §8.3).
pub type NtHash = Zeroizing<[u8; 16]>;

/// The 64-octet MSK.
pub type Msk = Zeroizing<[u8; MSK_LEN]>;

/// NtPasswordHash (RFC 2759 §8.3): MD4 of the password's UTF-16LE form.
/// A password that is not UTF-8 is taken as Latin-1, one byte to one
/// UTF-16 unit, as strongSwan and Windows do for 8-bit passwords.
pub fn nt_password_hash(password: &[u8]) -> NtHash {
    let mut unicode = Zeroizing::new(Vec::with_capacity(password.len() * 2));
    match std::str::from_utf8(password) {
        Ok(text) => {
            for unit in text.encode_utf16() {
                unicode.extend_from_slice(&unit.to_le_bytes());
            }
        }
        Err(_) => {
            for &byte in password {
                unicode.extend_from_slice(&[byte, 0]);
            }
        }
    }
    md4(&unicode)
}

/// HashNtPasswordHash (RFC 2759 §8.4).
pub fn hash_nt_password_hash(hash: &[u8; 16]) -> NtHash {
    md4(hash)
}

fn md4(data: &[u8]) -> NtHash {
    let mut hasher = Md4::new();
    hasher.update(data);
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&hasher.finalize());
    out
}

/// The user name as MS-CHAPv2 hashes it: without a Windows domain
/// ("DOMAIN\user" -> "user", RFC 2759 §8.2).
pub fn hashed_user_name(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'\\') {
        Some(at) => &name[at + 1..],
        None => name,
    }
}

/// ChallengeHash (RFC 2759 §8.2): the first 8 octets of
/// SHA-1(PeerChallenge | AuthenticatorChallenge | UserName).
pub fn challenge_hash(
    peer_challenge: &[u8; CHALLENGE_LEN],
    authenticator_challenge: &[u8; CHALLENGE_LEN],
    user_name: &[u8],
) -> [u8; 8] {
    let mut sha = Sha1::new();
    sha.update(peer_challenge);
    sha.update(authenticator_challenge);
    sha.update(hashed_user_name(user_name));
    let digest = sha.finish();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// A 7-octet key spread over the 8 octets DES takes, 7 key bits per octet
/// (the low bit is parity, which DES ignores; RFC 2759 §8.6 DesEncrypt).
fn des_key(seven: &[u8]) -> Zeroizing<[u8; 8]> {
    let mut bits = Zeroizing::new([0u8; 8]);
    let mut acc: u64 = 0;
    for &b in seven.iter().take(7) {
        acc = (acc << 8) | u64::from(b);
    }
    for (i, slot) in bits.iter_mut().enumerate() {
        // Bits 55..49, 48..42, ... of the 56-bit key, each group in the
        // top 7 bits of one octet.
        *slot = (((acc >> (49 - 7 * i)) & 0x7f) as u8) << 1;
    }
    acc.zeroize();
    bits
}

/// ChallengeResponse (RFC 2759 §8.5): the 8-octet challenge DES-encrypted
/// under each third of the zero-padded 21-octet password hash.
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; NT_RESPONSE_LEN] {
    let mut padded = Zeroizing::new([0u8; 21]);
    padded[..16].copy_from_slice(password_hash);
    let mut out = [0u8; NT_RESPONSE_LEN];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let key = des_key(&padded[7 * i..7 * i + 7]);
        // An 8-octet key always fits single DES.
        let cipher = Des::new_from_slice(&key[..]).expect("DES takes 8-octet keys");
        let mut block = (*challenge).into();
        cipher.encrypt_block(&mut block);
        chunk.copy_from_slice(&block);
    }
    out
}

/// GenerateNTResponse (RFC 2759 §8.1).
pub fn generate_nt_response(
    authenticator_challenge: &[u8; CHALLENGE_LEN],
    peer_challenge: &[u8; CHALLENGE_LEN],
    user_name: &[u8],
    nt_hash: &[u8; 16],
) -> [u8; NT_RESPONSE_LEN] {
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, user_name);
    challenge_response(&challenge, nt_hash)
}

/// "Magic server to client signing constant" (RFC 2759 §8.7).
const AUTH_MAGIC1: &[u8] = b"Magic server to client signing constant";
/// "Pad to make it do more than one iteration" (RFC 2759 §8.7).
const AUTH_MAGIC2: &[u8] = b"Pad to make it do more than one iteration";

/// GenerateAuthenticatorResponse (RFC 2759 §8.7), the 20 octets that the
/// "S=" text of a Success packet gives in upper-case hex.
pub fn generate_authenticator_response(
    nt_hash: &[u8; 16],
    nt_response: &[u8; NT_RESPONSE_LEN],
    peer_challenge: &[u8; CHALLENGE_LEN],
    authenticator_challenge: &[u8; CHALLENGE_LEN],
    user_name: &[u8],
) -> [u8; 20] {
    let hash_hash = hash_nt_password_hash(nt_hash);
    let mut sha = Sha1::new();
    sha.update(&hash_hash[..]);
    sha.update(nt_response);
    sha.update(AUTH_MAGIC1);
    let digest = Zeroizing::new(sha.finish());
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, user_name);
    let mut sha = Sha1::new();
    sha.update(&digest[..]);
    sha.update(&challenge);
    sha.update(AUTH_MAGIC2);
    sha.finish()
}

/// "S=" followed by the authenticator response in 40 upper-case hex
/// digits (RFC 2759 §5).
pub fn authenticator_response_text(response: &[u8; 20]) -> String {
    let mut text = String::with_capacity(42);
    text.push_str("S=");
    for b in response {
        text.push_str(&format!("{b:02X}"));
    }
    text
}

/// The 20 octets of an "S=" + 40 hex digits text (either case), None if
/// it is not that (RFC 2759 §8.8 CheckAuthenticatorResponse compares them).
pub fn parse_authenticator_response(text: &[u8]) -> Option<[u8; 20]> {
    let hex = text.strip_prefix(b"S=")?;
    if hex.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
    }
    Some(out)
}

/// RFC 3079 §3.4 Magic1: "This is the MPPE Master Key".
const MPPE_MAGIC1: &[u8] = b"This is the MPPE Master Key";
/// RFC 3079 §3.4 Magic2: the client's send key, the server's receive key.
const MPPE_MAGIC2: &[u8] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
/// RFC 3079 §3.4 Magic3: the client's receive key, the server's send key.
const MPPE_MAGIC3: &[u8] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";
const SHS_PAD1: [u8; 40] = [0; 40];
const SHS_PAD2: [u8; 40] = [0xf2; 40];

/// GetMasterKey (RFC 3079 §3.4): 16 octets of
/// SHA-1(PasswordHashHash | NT-Response | Magic1).
pub fn master_key(nt_hash: &[u8; 16], nt_response: &[u8; NT_RESPONSE_LEN]) -> Zeroizing<[u8; 16]> {
    let hash_hash = hash_nt_password_hash(nt_hash);
    let mut sha = Sha1::new();
    sha.update(&hash_hash[..]);
    sha.update(nt_response);
    sha.update(MPPE_MAGIC1);
    let digest = Zeroizing::new(sha.finish());
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&digest[..16]);
    out
}

/// GetAsymmetricStartKey (RFC 3079 §3.4) for 128-bit keys: the server's
/// send key is the client's receive key (Magic3), and the other way round
/// (Magic2).
pub fn asymmetric_start_key(
    master_key: &[u8; 16],
    is_send: bool,
    is_server: bool,
) -> Zeroizing<[u8; 16]> {
    let magic = if is_send == is_server {
        MPPE_MAGIC3
    } else {
        MPPE_MAGIC2
    };
    let mut sha = Sha1::new();
    sha.update(master_key);
    sha.update(&SHS_PAD1);
    sha.update(magic);
    sha.update(&SHS_PAD2);
    let digest = Zeroizing::new(sha.finish());
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&digest[..16]);
    out
}

/// The MSK of EAP-MSCHAPv2 as strongSwan and Windows make it, the same on
/// both sides: the server's MasterReceiveKey (Magic2) | the server's
/// MasterSendKey (Magic3) | 32 zero octets (64 octets in all, which
/// RFC 7296 §2.16 then uses whole as the AUTH key).
pub fn msk(nt_hash: &[u8; 16], nt_response: &[u8; NT_RESPONSE_LEN]) -> Msk {
    let master = master_key(nt_hash, nt_response);
    let receive = asymmetric_start_key(&master, false, true);
    let send = asymmetric_start_key(&master, true, true);
    let mut out = Zeroizing::new([0u8; MSK_LEN]);
    out[..16].copy_from_slice(&receive[..]);
    out[16..32].copy_from_slice(&send[..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const N: usize>(text: &str) -> [u8; N] {
        let bytes = hex::decode(text.replace(' ', "")).unwrap();
        bytes.try_into().unwrap()
    }

    // RFC 2759 §9.2.
    const USER: &[u8] = b"User";
    const PASSWORD: &[u8] = b"clientPass";
    const AUTH_CHALLENGE: &str = "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28";
    const PEER_CHALLENGE: &str = "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E";
    const NT_RESPONSE: &str =
        "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF";

    #[test]
    fn rfc_2759_section_9_2_vectors() {
        let auth: [u8; 16] = h(AUTH_CHALLENGE);
        let peer: [u8; 16] = h(PEER_CHALLENGE);
        assert_eq!(
            challenge_hash(&peer, &auth, USER),
            h::<8>("D0 2E 43 86 BC E9 12 26")
        );
        let hash = nt_password_hash(PASSWORD);
        assert_eq!(
            *hash,
            h::<16>("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE")
        );
        let nt = generate_nt_response(&auth, &peer, USER, &hash);
        assert_eq!(nt, h::<24>(NT_RESPONSE));
        assert_eq!(
            *hash_nt_password_hash(&hash),
            h::<16>("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F")
        );
        let response = generate_authenticator_response(&hash, &nt, &peer, &auth, USER);
        assert_eq!(
            authenticator_response_text(&response),
            "S=407A5589115FD0D6209F510FE9C04566932CDA56"
        );
        assert_eq!(
            parse_authenticator_response(b"S=407a5589115fd0d6209f510fe9c04566932cda56"),
            Some(response)
        );
    }

    #[test]
    fn rfc_3079_section_3_5_3_vectors() {
        let hash = nt_password_hash(PASSWORD);
        let nt: [u8; 24] = h(NT_RESPONSE);
        let master = master_key(&hash, &nt);
        assert_eq!(
            *master,
            h::<16>("FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31")
        );
        // SendStartKey128: the server's send key, the client's receive key.
        let server_send = asymmetric_start_key(&master, true, true);
        assert_eq!(
            *server_send,
            h::<16>("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB")
        );
        assert_eq!(*asymmetric_start_key(&master, false, false), *server_send);
        // The other direction: the server's receive key, the client's send key.
        let server_receive = asymmetric_start_key(&master, false, true);
        assert_eq!(*asymmetric_start_key(&master, true, false), *server_receive);
        assert_ne!(*server_receive, *server_send);
        let msk = msk(&hash, &nt);
        assert_eq!(&msk[..16], &server_receive[..]);
        assert_eq!(&msk[16..32], &server_send[..]);
        assert_eq!(&msk[32..], &[0u8; 32]);
    }

    #[test]
    fn a_domain_is_not_hashed_and_bad_s_texts_are_refused() {
        assert_eq!(hashed_user_name(b"CORP\\alice"), b"alice");
        assert_eq!(hashed_user_name(b"alice"), b"alice");
        assert_eq!(hashed_user_name(b"alice\\"), b"");
        assert!(parse_authenticator_response(b"S=407A").is_none());
        assert!(
            parse_authenticator_response(b"X=407A5589115FD0D6209F510FE9C04566932CDA56").is_none()
        );
        assert!(
            parse_authenticator_response(b"S=407A5589115FD0D6209F510FE9C04566932CDAZZ").is_none()
        );
        assert!(
            parse_authenticator_response(b"S=+07A5589115FD0D6209F510FE9C04566932CDA56").is_none()
        );
    }

    #[test]
    fn non_utf8_passwords_are_latin_1() {
        // "é" as UTF-8 and as the Latin-1 octet 0xE9 are one UTF-16 unit.
        assert_eq!(
            *nt_password_hash("\u{e9}".as_bytes()),
            *nt_password_hash(&[0xe9])
        );
    }
}
