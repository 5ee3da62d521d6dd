//! Key derivation: SKEYSEED and SK_* (RFC 7296 section 2.14), rekeyed
//! SKEYSEED (section 2.18, RFC 9370 section 2.2), Child SA KEYMAT (section 2.17).
//!
//! Only HMAC PRFs are implemented, so the section 2.14 rule for fixed-key
//! PRFs (half of Ni and of Nr as the key) does not arise.

use super::sk::{EncrAlg, IntegAlg, SkCipher, SkTransform};
use super::{PrfAlg, Result, SecretBytes};

/// SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 section 2.14). `shared` is g^ir
/// padded to its full length, as [`super::KeyExchange::complete`] returns it.
pub fn skeyseed(prf: PrfAlg, ni: &[u8], nr: &[u8], shared: &[u8]) -> Result<SecretBytes> {
    let mut key = SecretBytes::zeroed(ni.len() + nr.len());
    key.expose_mut()[..ni.len()].copy_from_slice(ni);
    key.expose_mut()[ni.len()..].copy_from_slice(nr);
    prf.prf(key.expose(), shared)
}

/// SKEYSEED from the previous SK_d:
/// prf(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)).
///
/// - IKE SA rekey (RFC 7296 section 2.18): `shared = [g^ir (new)]`, `prf` is
///   the OLD IKE SA's PRF, Ni and Nr are the CREATE_CHILD_SA nonces.
/// - IKE_INTERMEDIATE additional key exchange n (RFC 9370 section 2.2.2):
///   `shared = [SK(n)]`, `sk_d` is SK_d(n-1), nonces from IKE_SA_INIT.
/// - IKE SA rekey with additional key exchanges (RFC 9370 section 2.2.4):
///   `shared = [SK(0), SK(1), ..., SK(n)]`.
pub fn rekey_skeyseed(
    prf: PrfAlg,
    sk_d: &[u8],
    shared: &[&[u8]],
    ni: &[u8],
    nr: &[u8],
) -> Result<SecretBytes> {
    prf.prf_parts(sk_d, &kex_seed(shared, ni, nr))
}

/// SK(0) | Ni | Nr | SK(1) | ... | SK(n); just Ni | Nr without shared secrets.
fn kex_seed<'a>(shared: &[&'a [u8]], ni: &'a [u8], nr: &'a [u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::with_capacity(shared.len() + 2);
    if let Some((first, rest)) = shared.split_first() {
        parts.push(*first);
        parts.push(ni);
        parts.push(nr);
        parts.extend_from_slice(rest);
    } else {
        parts.push(ni);
        parts.push(nr);
    }
    parts
}

/// The seven IKE SA keys. `Debug` shows lengths only.
#[derive(Debug, Clone)]
pub struct IkeSaKeys {
    pub sk_d: SecretBytes,
    pub sk_ai: SecretBytes,
    pub sk_ar: SecretBytes,
    pub sk_ei: SecretBytes,
    pub sk_er: SecretBytes,
    pub sk_pi: SecretBytes,
    pub sk_pr: SecretBytes,
}

impl IkeSaKeys {
    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
    ///     = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr)  (RFC 7296 section 2.14).
    ///
    /// SK_d, SK_pi and SK_pr take the PRF's key length; SK_a the integrity
    /// key length (none for AEAD); SK_e the cipher key plus salt for AEAD
    /// (RFC 5282 section 7.1, RFC 7634 section 3).
    pub fn derive(
        prf: PrfAlg,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8],
        spi_r: &[u8],
        transform: SkTransform,
    ) -> Result<Self> {
        let prf_len = prf.key_len();
        let integ_len = transform.integ_key_len();
        let encr_len = transform.encr_keymat_len();
        let lengths = [
            prf_len, integ_len, integ_len, encr_len, encr_len, prf_len, prf_len,
        ];
        let total = lengths.iter().sum();
        let keymat = prf.prf_plus_parts(skeyseed, &[ni, nr, spi_i, spi_r], total)?;
        let mut pieces = split(keymat.expose(), &lengths).into_iter();
        let mut next = || pieces.next().unwrap_or_default();
        Ok(Self {
            sk_d: next(),
            sk_ai: next(),
            sk_ar: next(),
            sk_ei: next(),
            sk_er: next(),
            sk_pi: next(),
            sk_pr: next(),
        })
    }

    /// SKEYSEED from the IKE_SA_INIT exchange, then [`IkeSaKeys::derive`].
    #[allow(clippy::too_many_arguments)]
    pub fn from_ike_sa_init(
        prf: PrfAlg,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8],
        spi_r: &[u8],
        transform: SkTransform,
    ) -> Result<Self> {
        let seed = skeyseed(prf, ni, nr, shared)?;
        Self::derive(prf, seed.expose(), ni, nr, spi_i, spi_r, transform)
    }

    /// The Encrypted payload ciphers for our role: (outbound, inbound). The
    /// initiator sends with SK_ei/SK_ai and receives with SK_er/SK_ar.
    pub fn sk_ciphers(
        &self,
        transform: SkTransform,
        we_are_initiator: bool,
    ) -> Result<(SkCipher, SkCipher)> {
        let initiator = SkCipher::new(transform, self.sk_ei.expose(), self.sk_ai.expose())?;
        let responder = SkCipher::new(transform, self.sk_er.expose(), self.sk_ar.expose())?;
        Ok(if we_are_initiator {
            (initiator, responder)
        } else {
            (responder, initiator)
        })
    }
}

/// Child SA keys. `_i` keys protect traffic from the initiator to the
/// responder, `_r` keys the reverse. AEAD transforms have empty integrity
/// keys; AEAD encryption keys end with the salt.
/// Serializable so the engine can hand them to pfkey-proc over IPC.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ChildSaKeys {
    pub encr_i: SecretBytes,
    pub integ_i: SecretBytes,
    pub encr_r: SecretBytes,
    pub integ_r: SecretBytes,
}

impl ChildSaKeys {
    /// KEYMAT = prf+(SK_d, Ni | Nr), or with PFS prf+(SK_d, g^ir (new) | Ni | Nr)
    /// (RFC 7296 section 2.17), or with RFC 9370 additional key exchanges
    /// prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)). `shared` is empty
    /// without PFS.
    ///
    /// Keys are taken in the order encryption then integrity, initiator to
    /// responder first.
    pub fn derive(
        prf: PrfAlg,
        sk_d: &[u8],
        shared: &[&[u8]],
        ni: &[u8],
        nr: &[u8],
        encr: EncrAlg,
        integ: Option<IntegAlg>,
    ) -> Result<Self> {
        Self::derive_with_lengths(
            prf,
            sk_d,
            shared,
            ni,
            nr,
            encr.keymat_len(),
            integ.map_or(0, IntegAlg::key_len),
        )
    }

    /// As [`ChildSaKeys::derive`], for transforms this module does not name.
    pub fn derive_with_lengths(
        prf: PrfAlg,
        sk_d: &[u8],
        shared: &[&[u8]],
        ni: &[u8],
        nr: &[u8],
        encr_len: usize,
        integ_len: usize,
    ) -> Result<Self> {
        let lengths = [encr_len, integ_len, encr_len, integ_len];
        let keymat =
            prf.prf_plus_parts(sk_d, &kex_seed(shared, ni, nr), 2 * (encr_len + integ_len))?;
        let mut pieces = split(keymat.expose(), &lengths).into_iter();
        let mut next = || pieces.next().unwrap_or_default();
        Ok(Self {
            encr_i: next(),
            integ_i: next(),
            encr_r: next(),
            integ_r: next(),
        })
    }
}

/// Cuts `keymat` into consecutive secret pieces of the given lengths.
fn split(keymat: &[u8], lengths: &[usize]) -> Vec<SecretBytes> {
    let mut rest = keymat;
    lengths
        .iter()
        .map(|&len| {
            let (piece, tail) = rest.split_at(len.min(rest.len()));
            rest = tail;
            SecretBytes::from_slice(piece)
        })
        .collect()
}
