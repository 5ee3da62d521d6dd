//! Byte strings holding key material: zeroed when dropped, never printed.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

/// Secret bytes (shared secrets, SKEYSEED, SK_*, Child SA keys, PSKs).
///
/// The buffer is overwritten with zeros when the value is dropped, `Debug`
/// shows only the length, and there is no `Display`: a key cannot end up in
/// a log line by accident.
#[derive(Clone, Default, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

/// `==` on secrets runs in constant time too (a derived comparison would
/// stop at the first differing octet).
impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.expose(), other.expose())
    }
}

impl SecretBytes {
    /// Takes ownership of `bytes` without copying them.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies `bytes` into a new secret buffer.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// A buffer of `len` zero bytes, to be filled in place.
    pub fn zeroed(len: usize) -> Self {
        Self::new(vec![0; len])
    }

    /// The secret bytes. The name makes each use of the secret visible in review.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Mutable access, for filling a buffer made with [`SecretBytes::zeroed`].
    pub fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Shortens the buffer to `len` bytes, zeroing the bytes cut off.
    pub fn truncate(&mut self, len: usize) {
        if let Some(tail) = self.0.get_mut(len..) {
            tail.zeroize();
        }
        self.0.truncate(len);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison of the contents; lengths are not secret.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        ct_eq(self.expose(), other)
    }
}

/// Constant-time equality of two byte strings (`CRYPTO_memcmp`).
///
/// Differing lengths compare unequal at once: lengths of MACs and keys are
/// public. (`openssl::memcmp::eq` panics on differing lengths.)
///
/// This is the only place that may call `openssl::memcmp::eq`: clippy.toml
/// forbids it everywhere else (`disallowed-methods`).
#[allow(clippy::disallowed_methods)]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.len())
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl Zeroize for SecretBytes {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

// Serialization lets the IPC layer carry keys between our processes (e.g.
// Child SA keys to pfkey-proc); deserialization moves the decoded buffer in
// without a copy.
impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.expose())
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> serde::de::Visitor<'de> for BytesVisitor {
            type Value = SecretBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<SecretBytes, E> {
                Ok(SecretBytes::from_slice(v))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<SecretBytes, E> {
                Ok(SecretBytes::new(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SecretBytes, A::Error> {
                let mut out =
                    SecretBytes::new(Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024)));
                while let Some(byte) = seq.next_element::<u8>()? {
                    out.0.push(byte);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_length_not_contents() {
        let secret = SecretBytes::from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let shown = format!("{secret:?}");
        assert_eq!(shown, "SecretBytes(4 bytes)");
    }

    #[test]
    fn ct_eq_handles_lengths_and_contents() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn postcard_round_trip() {
        let secret = SecretBytes::from_slice(&[1, 2, 3, 250]);
        let encoded = postcard::to_allocvec(&secret).unwrap();
        let decoded: SecretBytes = postcard::from_bytes(&encoded).unwrap();
        assert_eq!(decoded.expose(), &[1, 2, 3, 250]);
    }
}
