//! Checked byte reading and writing for the kernel codecs. Kernel structures
//! use host byte order except where a field is marked big-endian (SPIs,
//! ports, addresses); every read is bounds-checked and returns an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A decoding failure: what was being read and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

pub fn decode_error(what: impl Into<String>) -> DecodeError {
    DecodeError(what.into())
}

/// Reads fields from a fixed slice, front to back.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, position: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.position)
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .position
            .checked_add(n)
            .ok_or_else(|| decode_error(format!("{what}: length overflow")))?;
        let slice = self.bytes.get(self.position..end).ok_or_else(|| {
            decode_error(format!(
                "{what}: needs {n} octets at offset {}, only {} left",
                self.position,
                self.remaining()
            ))
        })?;
        self.position = end;
        Ok(slice)
    }

    pub fn skip(&mut self, n: usize, what: &str) -> Result<(), DecodeError> {
        self.take(n, what).map(|_| ())
    }

    /// The next N octets as an array.
    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let slice = self.take(N, what)?;
        <[u8; N]>::try_from(slice).map_err(|_| decode_error(format!("{what}: short read")))
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16_ne(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_ne_bytes(self.array(what)?))
    }

    pub fn u16_be(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub fn u32_ne(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_ne_bytes(self.array(what)?))
    }

    pub fn i32_ne(&mut self, what: &str) -> Result<i32, DecodeError> {
        Ok(i32::from_ne_bytes(self.array(what)?))
    }

    pub fn u32_be(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub fn u64_ne(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_ne_bytes(self.array(what)?))
    }

    /// Sixteen octets holding an IPv4 address in the first four, or an IPv6
    /// address, as in `xfrm_address_t`.
    pub fn address16(&mut self, family: u16, what: &str) -> Result<IpAddr, DecodeError> {
        let raw: [u8; 16] = self.array(what)?;
        address_from_16(raw, family, what)
    }
}

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

pub fn family_of(addr: IpAddr) -> u16 {
    match addr {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

pub fn address_from_16(raw: [u8; 16], family: u16, what: &str) -> Result<IpAddr, DecodeError> {
    match family {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(raw))),
        other => Err(decode_error(format!(
            "{what}: unknown address family {other}"
        ))),
    }
}

pub fn address_to_16(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => {
            let mut out = [0u8; 16];
            out[..4].copy_from_slice(&v4.octets());
            out
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Appends fields to a growing buffer.
#[derive(Default)]
pub struct Writer {
    pub bytes: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer { bytes: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }

    pub fn u16_ne(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_ne_bytes());
        self
    }

    pub fn u16_be(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u32_ne(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_ne_bytes());
        self
    }

    pub fn u32_be(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64_ne(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_ne_bytes());
        self
    }

    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(v);
        self
    }

    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.bytes.resize(self.bytes.len() + n, 0);
        self
    }

    pub fn address16(&mut self, addr: IpAddr) -> &mut Self {
        self.raw(&address_to_16(addr))
    }

    /// Pads with zeros to a multiple of `align`.
    pub fn pad_to(&mut self, align: usize) -> &mut Self {
        let rem = self.bytes.len() % align;
        if rem != 0 {
            self.zeros(align - rem);
        }
        self
    }
}

impl std::fmt::Debug for Writer {
    // Messages may hold keys: show the size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Writer({} octets)", self.bytes.len())
    }
}

impl Drop for Writer {
    // Requests carry key material: clear it once the message is sent.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16_be("a").unwrap(), 0x0102);
        let err = r.u32_ne("b").unwrap_err();
        assert!(err.0.contains("needs 4 octets at offset 2"), "{err}");
        assert_eq!(r.u8("c").unwrap(), 3);
        assert!(r.u8("d").is_err());
        assert!(r.take(usize::MAX, "huge").is_err());
    }

    #[test]
    fn addresses_round_trip_and_unknown_family_fails() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let raw = address_to_16(v4);
        assert_eq!(&raw[..4], &[192, 0, 2, 1]);
        assert_eq!(&raw[4..], &[0u8; 12]);
        assert_eq!(address_from_16(raw, AF_INET, "x").unwrap(), v4);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            address_from_16(address_to_16(v6), AF_INET6, "x").unwrap(),
            v6
        );
        assert!(address_from_16(raw, 7, "x").is_err());
    }
}
