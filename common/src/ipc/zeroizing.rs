//! IPC bytes that may carry secrets (PSKs to ca, ESP keys to pfkey) are
//! zeroed when dropped, and never left behind in a freed allocation when a
//! buffer grows: the encoder's output, each frame queued for sending, the
//! receive buffer and the message being reassembled (security review L3).
//! All messages are treated alike, so no caller has to know which carry
//! keys; the cost is one extra pass over the bytes (measured by
//! common/tests/ipc_zeroize_cost.rs).

use zeroize::{Zeroize, Zeroizing};

/// Bytes zeroed on drop.
pub type SecretBuffer = Zeroizing<Vec<u8>>;

/// Appends `data` to `buffer`; when that needs more room, the bytes move
/// to a new allocation and the old one is zeroed before it is freed (a
/// plain `Vec` would free it as it is). Grows by doubling, never past
/// `limit` (the whole message's announced length).
pub fn extend_zeroizing(buffer: &mut SecretBuffer, data: &[u8], limit: usize) {
    let needed = buffer.len() + data.len();
    if needed > buffer.capacity() {
        let capacity = buffer
            .capacity()
            .saturating_mul(2)
            .clamp(needed, limit.max(needed));
        let mut grown = Vec::with_capacity(capacity);
        grown.extend_from_slice(buffer);
        // Zeroizing<Vec> zeroes the old allocation, its spare capacity
        // included, as it is dropped here.
        *buffer = Zeroizing::new(grown);
    }
    buffer.extend_from_slice(data);
}

/// A postcard output that grows as [`extend_zeroizing`] does and refuses
/// to grow past `limit` (the message cap), so encoding never allocates
/// more than a message may be.
pub struct ZeroizingFlavor {
    buffer: SecretBuffer,
    limit: usize,
}

impl ZeroizingFlavor {
    /// An output of at most `limit` bytes, allocated at `size_hint` (the
    /// encoded size, from [`CountingFlavor`], so that it never grows).
    pub fn new(limit: usize, size_hint: usize) -> ZeroizingFlavor {
        ZeroizingFlavor {
            buffer: Zeroizing::new(Vec::with_capacity(size_hint.min(limit))),
            limit,
        }
    }
}

/// A postcard output that only counts: the size of a message before it
/// is encoded into a buffer of exactly that size. Stops counting past
/// `limit`.
pub struct CountingFlavor {
    count: usize,
    limit: usize,
}

impl CountingFlavor {
    pub fn new(limit: usize) -> CountingFlavor {
        CountingFlavor { count: 0, limit }
    }
}

impl postcard::ser_flavors::Flavor for CountingFlavor {
    type Output = usize;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.count += data.len();
        if self.count > self.limit {
            return Err(postcard::Error::SerializeBufferFull);
        }
        Ok(())
    }

    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.try_extend(&[0])
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.count)
    }
}

impl postcard::ser_flavors::Flavor for ZeroizingFlavor {
    type Output = SecretBuffer;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.buffer.len() + data.len() > self.limit {
            return Err(postcard::Error::SerializeBufferFull);
        }
        extend_zeroizing(&mut self.buffer, data, self.limit);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(self) -> postcard::Result<SecretBuffer> {
        Ok(self.buffer)
    }
}

/// Zeroes the first `len` bytes of a receive buffer once a frame has been
/// taken out of it.
pub fn wipe(buffer: &mut [u8], len: usize) {
    if let Some(used) = buffer.get_mut(..len) {
        used.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_keeps_the_bytes_and_respects_the_limit() {
        let mut buffer = Zeroizing::new(Vec::with_capacity(4));
        for chunk in [&b"abc"[..], b"defgh", b"ijklmnop"] {
            extend_zeroizing(&mut buffer, chunk, 16);
        }
        assert_eq!(&buffer[..], b"abcdefghijklmnop");
        assert!(buffer.capacity() >= 16);
    }

    #[test]
    fn the_encoder_refuses_to_grow_past_its_limit() {
        let fits =
            postcard::serialize_with_flavor(&[1u8; 10], ZeroizingFlavor::new(10, 4)).unwrap();
        assert_eq!(fits.len(), 10);
        let over = postcard::serialize_with_flavor(&vec![1u8; 10], ZeroizingFlavor::new(10, 0));
        assert!(over.is_err(), "a Vec of 10 has a length prefix: 11 bytes");
        let counted =
            postcard::serialize_with_flavor(&vec![1u8; 10], CountingFlavor::new(100)).unwrap();
        assert_eq!(counted, 11);
        assert!(postcard::serialize_with_flavor(&vec![1u8; 10], CountingFlavor::new(10)).is_err());
    }

    #[test]
    fn wipe_zeroes_what_was_used() {
        let mut buffer = vec![9u8; 8];
        wipe(&mut buffer, 5);
        assert_eq!(buffer, [0, 0, 0, 0, 0, 9, 9, 9]);
        wipe(&mut buffer, 100);
    }
}
