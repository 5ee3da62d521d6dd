//! Mutations of IKE datagrams, aware of the header and of the chain of
//! generic payload headers (RFC 7296 §3.1, §3.2), so that a mutation can
//! keep every length consistent and reach the code behind the decoder.

use super::Choices;

/// Offset of the first payload (the IKE header is 28 octets).
pub const HEADER_LEN: usize = 28;
const NEXT_PAYLOAD: usize = 16;
const EXCHANGE: usize = 18;
const FLAGS: usize = 19;
const MESSAGE_ID: usize = 20;
const LENGTH: usize = 24;

/// RFC 7296 §3.10.1 notify types worth injecting, COOKIE first.
pub const COOKIE: u16 = 16390;
const NOTIFY_TYPES: [u16; 20] = [
    COOKIE, 17,    // INVALID_KE_PAYLOAD
    16388, // NAT_DETECTION_SOURCE_IP
    16389, // NAT_DETECTION_DESTINATION_IP
    16393, // REKEY_SA
    16384, // INITIAL_CONTACT
    16391, // USE_TRANSPORT_MODE
    16430, // IKEV2_FRAGMENTATION_SUPPORTED
    16431, // SIGNATURE_HASH_ALGORITHMS
    14,    // NO_PROPOSAL_CHOSEN
    7,     // INVALID_SYNTAX
    24,    // AUTHENTICATION_FAILED
    43,    // TEMPORARY_FAILURE
    44,    // CHILD_SA_NOT_FOUND
    35,    // NO_ADDITIONAL_SAS
    38,    // TS_UNACCEPTABLE
    11,    // INVALID_SPI
    9,     // INVALID_MESSAGE_ID
    1,     // UNSUPPORTED_CRITICAL_PAYLOAD
    16385, // SET_WINDOW_SIZE
];
const PAYLOAD_TYPES: [u8; 17] = [
    33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 53,
];
/// Lengths that sit on the edges of what a parser or a comparison expects
/// (a cookie is 1 + 32 octets, a nonce 16 to 256, a hash 20 or 32).
const EDGE_LENGTHS: [usize; 14] = [0, 1, 2, 15, 16, 20, 31, 32, 33, 34, 64, 65, 256, 1200];

/// One payload in the clear part of a message.
#[derive(Debug, Clone, Copy)]
pub struct PayloadAt {
    /// Offset of its generic payload header.
    pub offset: usize,
    /// Its type (from the previous next-payload field).
    pub kind: u8,
    /// Its length, generic header included.
    pub len: usize,
}

/// The chain of payloads as far as the lengths are consistent.
pub fn payloads(data: &[u8]) -> Vec<PayloadAt> {
    let mut out = Vec::new();
    if data.len() < HEADER_LEN {
        return out;
    }
    let mut kind = data[NEXT_PAYLOAD];
    let mut offset = HEADER_LEN;
    while kind != 0 && offset + 4 <= data.len() && out.len() < 64 {
        let len = usize::from(u16::from_be_bytes([data[offset + 2], data[offset + 3]]));
        if len < 4 || offset + len > data.len() {
            break;
        }
        out.push(PayloadAt { offset, kind, len });
        kind = data[offset];
        offset += len;
    }
    out
}

/// The offset of the next-payload field that names payload `index`.
fn next_field(chain: &[PayloadAt], index: usize) -> usize {
    if index == 0 {
        NEXT_PAYLOAD
    } else {
        chain[index - 1].offset
    }
}

fn set_u16(data: &mut [u8], at: usize, value: u16) {
    if at + 2 <= data.len() {
        data[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }
}

fn set_u32(data: &mut [u8], at: usize, value: u32) {
    if at + 4 <= data.len() {
        data[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }
}

/// Sets the header's length field to the datagram's length.
pub fn fix_length(data: &mut [u8]) {
    let len = data.len() as u32;
    set_u32(data, LENGTH, len);
}

/// Inserts a payload (`kind`, `body` without generic header) as payload
/// `index` of the chain, keeping the chain and the lengths consistent.
pub fn insert_payload(data: &mut Vec<u8>, index: usize, kind: u8, body: &[u8]) {
    if data.len() < HEADER_LEN || body.len() + 4 > usize::from(u16::MAX) {
        return;
    }
    let chain = payloads(data);
    let index = index.min(chain.len());
    let field = next_field(&chain, index);
    let at = chain.get(index).map_or_else(
        || chain.last().map_or(HEADER_LEN, |p| p.offset + p.len),
        |p| p.offset,
    );
    let mut payload = vec![data[field], 0];
    payload.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    payload.extend_from_slice(body);
    data[field] = kind;
    data.splice(at..at, payload);
    fix_length(data);
}

/// A Notify payload body (RFC 7296 §3.10): protocol, SPI size 0, type, data.
pub fn notify_body(notify_type: u16, notify_data: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&notify_type.to_be_bytes());
    body.extend_from_slice(notify_data);
    body
}

/// A length for injected data: mostly the edges, sometimes anything.
pub fn edge_length(c: &mut Choices) -> usize {
    if c.chance(3) {
        c.below(2000)
    } else {
        EDGE_LENGTHS[c.below(EDGE_LENGTHS.len())]
    }
}

fn random_bytes(c: &mut Choices, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    c.fill(&mut bytes);
    bytes
}

/// Applies one to four mutations to `data`; `others` are other captured
/// datagrams to splice from. `cookies` allows COOKIE notify injection.
pub fn mutate(c: &mut Choices, data: &mut Vec<u8>, others: &[Vec<u8>], cookies: bool) {
    for _ in 0..1 + c.below(4) {
        mutate_once(c, data, others, cookies);
    }
}

fn mutate_once(c: &mut Choices, data: &mut Vec<u8>, others: &[Vec<u8>], cookies: bool) {
    let chain = payloads(data);
    match c.below(16) {
        // Bit flips.
        0 | 1 => {
            if !data.is_empty() {
                for _ in 0..1 + c.below(3) {
                    let at = c.below(data.len());
                    data[at] ^= 1 << c.below(8);
                }
            }
        }
        // An interesting value at any offset.
        2 => {
            if !data.is_empty() {
                let at = c.below(data.len());
                let value = [0u8, 1, 0x7f, 0x80, 0xff][c.below(5)];
                data[at] = value;
                if c.chance(2) && at + 1 < data.len() {
                    data[at + 1] = value;
                }
            }
        }
        // The header's length field lies.
        3 => {
            let real = data.len() as u32;
            let lie = match c.below(5) {
                0 => 0,
                1 => u32::MAX,
                2 => real.wrapping_add(1 + c.below(64) as u32),
                3 => real.saturating_sub(1 + c.below(64) as u32),
                _ => c.below(70_000) as u32,
            };
            set_u32(data, LENGTH, lie);
        }
        // A payload's length field lies.
        4 => {
            if !chain.is_empty() {
                let p = chain[c.below(chain.len())];
                let lie = match c.below(4) {
                    0 => c.below(4) as u16,
                    1 => (p.len as u16).wrapping_add(1 + c.below(16) as u16),
                    2 => (p.len as u16).saturating_sub(1 + c.below(16) as u16),
                    _ => c.below(65_536) as u16,
                };
                set_u16(data, p.offset + 2, lie);
            }
        }
        // Truncation.
        5 => {
            if !data.is_empty() {
                let keep = c.below(data.len());
                data.truncate(keep);
                if c.chance(2) {
                    fix_length(data);
                }
            }
        }
        // A payload's body grows or shrinks, lengths kept consistent.
        6 | 7 => {
            if !chain.is_empty() {
                let p = chain[c.below(chain.len())];
                let body = p.len - 4;
                let new_len = match c.below(3) {
                    0 => c.below(body + 1),
                    1 => body + 1 + c.below(64),
                    _ => edge_length(c),
                }
                .min(60_000);
                let start = p.offset + 4;
                if new_len < body {
                    data.drain(start + new_len..start + body);
                } else {
                    let extra = random_bytes(c, new_len - body);
                    let at = start + body;
                    data.splice(at..at, extra);
                }
                set_u16(data, p.offset + 2, (new_len + 4) as u16);
                fix_length(data);
            }
        }
        // A payload from another captured message is spliced in.
        8 | 9 => {
            if let Some(other) = pick(c, others) {
                let theirs = payloads(other);
                if !theirs.is_empty() {
                    let p = theirs[c.below(theirs.len())];
                    let body = other[p.offset + 4..p.offset + p.len].to_vec();
                    let index = c.below(chain.len() + 1);
                    if c.chance(3) && !chain.is_empty() {
                        remove_payload(data, index.min(chain.len() - 1));
                    }
                    insert_payload(data, index, p.kind, &body);
                }
            }
        }
        // A payload is removed.
        10 => {
            if !chain.is_empty() {
                let index = c.below(chain.len());
                remove_payload(data, index);
            }
        }
        // A notify is injected, most often first (where COOKIE belongs).
        11 | 12 => {
            let notify_type = if cookies && c.chance(2) {
                COOKIE
            } else {
                let t = NOTIFY_TYPES[c.below(NOTIFY_TYPES.len())];
                if t == COOKIE && !cookies {
                    16384
                } else {
                    t
                }
            };
            let len = edge_length(c);
            let body = notify_body(notify_type, &random_bytes(c, len));
            let index = if c.chance(4) {
                c.below(chain.len() + 1)
            } else {
                0
            };
            insert_payload(data, index, 41, &body);
        }
        // Header fields: exchange, flags, message ID, SPIs from another message.
        13 => {
            if data.len() >= HEADER_LEN {
                match c.below(4) {
                    0 => data[EXCHANGE] = [34, 35, 36, 37, 0, 255][c.below(6)],
                    1 => data[FLAGS] ^= [0x08, 0x20, 0x10, 0x28][c.below(4)],
                    2 => {
                        let id = match c.below(3) {
                            0 => 0,
                            1 => u32::MAX,
                            _ => c.below(8) as u32,
                        };
                        set_u32(data, MESSAGE_ID, id);
                    }
                    _ => {
                        if let Some(other) = pick(c, others) {
                            if other.len() >= 16 {
                                let (from, len) = [(0, 8), (8, 8), (0, 16)][c.below(3)];
                                data[from..from + len].copy_from_slice(&other[from..from + len]);
                            }
                        }
                    }
                }
            }
        }
        // The next-payload field of a payload names another type.
        14 => {
            if !chain.is_empty() {
                let index = c.below(chain.len() + 1);
                let field = if index == chain.len() {
                    chain[index - 1].offset
                } else {
                    next_field(&chain, index)
                };
                data[field] = if c.chance(4) {
                    c.below(256) as u8
                } else {
                    PAYLOAD_TYPES[c.below(PAYLOAD_TYPES.len())]
                };
                if c.chance(3) && field > NEXT_PAYLOAD {
                    // The critical bit (RFC 7296 §2.5).
                    data[field + 1] ^= 0x80;
                }
            }
        }
        // Raw splice: our head, another message's tail.
        _ => {
            if let Some(other) = pick(c, others) {
                let head = c.below(data.len() + 1);
                let tail = c.below(other.len() + 1);
                data.truncate(head);
                data.extend_from_slice(&other[tail..]);
                if c.chance(2) {
                    fix_length(data);
                }
            }
        }
    }
}

fn pick<'a>(c: &mut Choices, others: &'a [Vec<u8>]) -> Option<&'a Vec<u8>> {
    if others.is_empty() {
        None
    } else {
        Some(&others[c.below(others.len())])
    }
}

/// Removes payload `index`, keeping the chain and the lengths consistent.
pub fn remove_payload(data: &mut Vec<u8>, index: usize) {
    let chain = payloads(data);
    let Some(p) = chain.get(index).copied() else {
        return;
    };
    let field = next_field(&chain, index);
    data[field] = data[p.offset];
    data.drain(p.offset..p.offset + p.len);
    fix_length(data);
}
