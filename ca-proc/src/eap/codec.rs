//! EAP packets (RFC 3748 §4, §5) and the EAP-MSCHAPv2 type data
//! (draft-kamath-pppext-eap-mschapv2-02 §2, RFC 2759 §3-§6). Decoding
//! returns errors that name the problem; sizes are capped; nothing panics
//! on any input.

use super::mschapv2::{CHALLENGE_LEN, NT_RESPONSE_LEN};

/// An EAP packet larger than this is refused: the largest we expect (an
/// MS-CHAPv2 Response with a 256-octet name) is under 320 octets.
pub const MAX_EAP_PACKET: usize = 1024;
/// Longest identity or MS-CHAPv2 name accepted (RFC 2759: 0 to 256 octets).
pub const MAX_NAME: usize = 256;
/// Longest text of a Success or Failure packet kept.
pub const MAX_MESSAGE: usize = 512;

/// EAP codes (RFC 3748 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Request = 1,
    Response = 2,
    Success = 3,
    Failure = 4,
}

/// EAP types we know (RFC 3748 §5; draft-kamath: 26).
pub const TYPE_IDENTITY: u8 = 1;
pub const TYPE_NOTIFICATION: u8 = 2;
pub const TYPE_NAK: u8 = 3;
pub const TYPE_MSCHAPV2: u8 = 26;

/// One decoded EAP packet. `kind` and `data` are the Type and Type-Data of
/// a Request or Response; Success and Failure have neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub code: Code,
    pub identifier: u8,
    pub kind: Option<u8>,
    pub data: &'a [u8],
}

/// Decodes an EAP packet (RFC 3748 §4). Octets past the Length field are
/// padding and ignored (§4); a Length beyond the octets is refused.
pub fn parse(bytes: &[u8]) -> Result<Packet<'_>, String> {
    if bytes.len() > MAX_EAP_PACKET {
        return Err(format!(
            "EAP packet of {} octets exceeds the {MAX_EAP_PACKET}-octet cap",
            bytes.len()
        ));
    }
    let [code, identifier, l0, l1, ..] = *bytes else {
        return Err(format!(
            "EAP packet of {} octets is shorter than its 4-octet header",
            bytes.len()
        ));
    };
    let length = usize::from(u16::from_be_bytes([l0, l1]));
    if length < 4 || length > bytes.len() {
        return Err(format!(
            "EAP Length {length} does not fit the {} octets received",
            bytes.len()
        ));
    }
    let body = &bytes[4..length];
    let code = match code {
        1 => Code::Request,
        2 => Code::Response,
        3 => Code::Success,
        4 => Code::Failure,
        other => return Err(format!("unknown EAP code {other}")),
    };
    match code {
        Code::Success | Code::Failure => {
            if !body.is_empty() {
                return Err(format!(
                    "EAP-{:?} with {} octets of data (it has none)",
                    code,
                    body.len()
                ));
            }
            Ok(Packet {
                code,
                identifier,
                kind: None,
                data: &[],
            })
        }
        Code::Request | Code::Response => {
            let Some((&kind, data)) = body.split_first() else {
                return Err(format!("EAP-{code:?} without a Type"));
            };
            Ok(Packet {
                code,
                identifier,
                kind: Some(kind),
                data,
            })
        }
    }
}

/// Encodes a Request or Response of `kind` with `data`.
pub fn encode(code: Code, identifier: u8, kind: u8, data: &[u8]) -> Vec<u8> {
    let length = 5 + data.len();
    let mut out = Vec::with_capacity(length);
    out.push(code as u8);
    out.push(identifier);
    out.extend_from_slice(&(length as u16).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(data);
    out
}

/// Encodes an EAP-Success or EAP-Failure (RFC 3748 §4.2).
pub fn encode_result(success: bool, identifier: u8) -> Vec<u8> {
    let code = if success {
        Code::Success
    } else {
        Code::Failure
    };
    vec![code as u8, identifier, 0, 4]
}

/// MS-CHAPv2 OpCodes (RFC 2759 §3).
pub const OP_CHALLENGE: u8 = 1;
pub const OP_RESPONSE: u8 = 2;
pub const OP_SUCCESS: u8 = 3;
pub const OP_FAILURE: u8 = 4;
pub const OP_CHANGE_PASSWORD: u8 = 7;

/// Value-Size of a Challenge (RFC 2759 §3) and of a Response (§4).
const CHALLENGE_VALUE_SIZE: u8 = CHALLENGE_LEN as u8;
const RESPONSE_VALUE_SIZE: u8 = 49;

/// The EAP-MSCHAPv2 type data of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsChapV2<'a> {
    /// Server -> peer (Request).
    Challenge {
        id: u8,
        challenge: [u8; CHALLENGE_LEN],
        name: &'a [u8],
    },
    /// Peer -> server (Response).
    Response {
        id: u8,
        peer_challenge: [u8; CHALLENGE_LEN],
        nt_response: [u8; NT_RESPONSE_LEN],
        name: &'a [u8],
    },
    /// Server -> peer: "S=<40 hex> M=<message>" (Request).
    SuccessRequest { id: u8, message: &'a [u8] },
    /// Peer -> server: the OpCode alone (Response).
    SuccessResponse,
    /// Server -> peer: "E=eeeeeeeeee R=r C=... V=v M=..." (Request).
    FailureRequest { id: u8, message: &'a [u8] },
    /// Peer -> server: the OpCode alone (Response).
    FailureResponse,
}

/// Decodes the Type-Data of an EAP-MSCHAPv2 Request (`request`) or
/// Response. The MS-Length must be the Type-Data's length.
pub fn parse_mschapv2(request: bool, data: &[u8]) -> Result<MsChapV2<'_>, String> {
    let Some(&opcode) = data.first() else {
        return Err("EAP-MSCHAPv2 packet without an OpCode".into());
    };
    // A peer's Success and Failure Responses are the OpCode alone
    // (draft-kamath §2.3, §2.4); octets after it are ignored.
    if !request && (opcode == OP_SUCCESS || opcode == OP_FAILURE) {
        return Ok(if opcode == OP_SUCCESS {
            MsChapV2::SuccessResponse
        } else {
            MsChapV2::FailureResponse
        });
    }
    let [_, id, m0, m1, ref value @ ..] = *data else {
        return Err(format!(
            "EAP-MSCHAPv2 OpCode {opcode} in {} octets, shorter than its 4-octet header",
            data.len()
        ));
    };
    let ms_length = usize::from(u16::from_be_bytes([m0, m1]));
    if ms_length != data.len() {
        return Err(format!(
            "EAP-MSCHAPv2 MS-Length {ms_length} is not the {} octets of the packet's data",
            data.len()
        ));
    }
    match (request, opcode) {
        (true, OP_CHALLENGE) => {
            let [size, ref rest @ ..] = *value else {
                return Err("EAP-MSCHAPv2 Challenge without a Value-Size".into());
            };
            if size != CHALLENGE_VALUE_SIZE || rest.len() < CHALLENGE_LEN {
                return Err(format!(
                    "EAP-MSCHAPv2 Challenge of Value-Size {size}, not {CHALLENGE_LEN}"
                ));
            }
            let (challenge, name) = rest.split_at(CHALLENGE_LEN);
            Ok(MsChapV2::Challenge {
                id,
                challenge: challenge.try_into().map_err(|_| "challenge length")?,
                name: capped_name(name)?,
            })
        }
        (false, OP_RESPONSE) => {
            let [size, ref rest @ ..] = *value else {
                return Err("EAP-MSCHAPv2 Response without a Value-Size".into());
            };
            if size != RESPONSE_VALUE_SIZE || rest.len() < usize::from(RESPONSE_VALUE_SIZE) {
                return Err(format!(
                    "EAP-MSCHAPv2 Response of Value-Size {size} in {} octets, not {RESPONSE_VALUE_SIZE}",
                    rest.len()
                ));
            }
            // Peer-Challenge (16) | Reserved (8) | NT-Response (24) | Flags (1).
            let (response, name) = rest.split_at(usize::from(RESPONSE_VALUE_SIZE));
            Ok(MsChapV2::Response {
                id,
                peer_challenge: response[..16].try_into().map_err(|_| "peer challenge")?,
                nt_response: response[24..48].try_into().map_err(|_| "NT-Response")?,
                name: capped_name(name)?,
            })
        }
        (true, OP_SUCCESS) => Ok(MsChapV2::SuccessRequest {
            id,
            message: capped_message(value)?,
        }),
        (true, OP_FAILURE) => Ok(MsChapV2::FailureRequest {
            id,
            message: capped_message(value)?,
        }),
        (_, OP_CHANGE_PASSWORD) => Err("EAP-MSCHAPv2 Change-Password is not supported".into()),
        (true, other) => Err(format!("EAP-MSCHAPv2 Request with OpCode {other}")),
        (false, other) => Err(format!("EAP-MSCHAPv2 Response with OpCode {other}")),
    }
}

fn capped_name(name: &[u8]) -> Result<&[u8], String> {
    if name.len() > MAX_NAME {
        return Err(format!(
            "EAP-MSCHAPv2 name of {} octets exceeds {MAX_NAME}",
            name.len()
        ));
    }
    Ok(name)
}

fn capped_message(message: &[u8]) -> Result<&[u8], String> {
    if message.len() > MAX_MESSAGE {
        return Err(format!(
            "EAP-MSCHAPv2 message of {} octets exceeds {MAX_MESSAGE}",
            message.len()
        ));
    }
    Ok(message)
}

/// The MS-CHAPv2 header (OpCode, MS-CHAPv2-ID, MS-Length) and `value`.
fn mschapv2_data(opcode: u8, id: u8, value: &[&[u8]]) -> Vec<u8> {
    let length = 4 + value.iter().map(|v| v.len()).sum::<usize>();
    let mut out = Vec::with_capacity(length);
    out.push(opcode);
    out.push(id);
    out.extend_from_slice(&(length as u16).to_be_bytes());
    for v in value {
        out.extend_from_slice(v);
    }
    out
}

/// An EAP-Request/MSCHAPv2 Challenge (RFC 2759 §3).
pub fn encode_challenge(identifier: u8, challenge: &[u8; CHALLENGE_LEN], name: &[u8]) -> Vec<u8> {
    let data = mschapv2_data(
        OP_CHALLENGE,
        identifier,
        &[&[CHALLENGE_VALUE_SIZE], challenge, name],
    );
    encode(Code::Request, identifier, TYPE_MSCHAPV2, &data)
}

/// An EAP-Response/MSCHAPv2 Response (RFC 2759 §4); `id` echoes the
/// Challenge's MS-CHAPv2-ID.
pub fn encode_response(
    identifier: u8,
    id: u8,
    peer_challenge: &[u8; CHALLENGE_LEN],
    nt_response: &[u8; NT_RESPONSE_LEN],
    name: &[u8],
) -> Vec<u8> {
    let data = mschapv2_data(
        OP_RESPONSE,
        id,
        &[
            &[RESPONSE_VALUE_SIZE],
            peer_challenge,
            &[0; 8],
            nt_response,
            &[0],
            name,
        ],
    );
    encode(Code::Response, identifier, TYPE_MSCHAPV2, &data)
}

/// An EAP-Request/MSCHAPv2 Success or Failure with its text (RFC 2759 §5, §6).
pub fn encode_result_request(identifier: u8, id: u8, success: bool, text: &[u8]) -> Vec<u8> {
    let opcode = if success { OP_SUCCESS } else { OP_FAILURE };
    let data = mschapv2_data(opcode, id, &[text]);
    encode(Code::Request, identifier, TYPE_MSCHAPV2, &data)
}

/// An EAP-Response/MSCHAPv2 Success or Failure: the OpCode alone
/// (draft-kamath §2.3, §2.4).
pub fn encode_result_response(identifier: u8, success: bool) -> Vec<u8> {
    let opcode = if success { OP_SUCCESS } else { OP_FAILURE };
    encode(Code::Response, identifier, TYPE_MSCHAPV2, &[opcode])
}

/// Printable form of a name or message for logs: control and non-ASCII
/// octets as '?', at most [`MAX_NAME`] characters.
pub fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(MAX_NAME)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip() {
        let identity = encode(Code::Response, 7, TYPE_IDENTITY, b"alice");
        assert_eq!(identity, b"\x02\x07\x00\x0a\x01alice");
        assert_eq!(
            parse(&identity).unwrap(),
            Packet {
                code: Code::Response,
                identifier: 7,
                kind: Some(TYPE_IDENTITY),
                data: b"alice"
            }
        );
        let success = encode_result(true, 9);
        assert_eq!(parse(&success).unwrap().code, Code::Success);
        assert_eq!(parse(&encode_result(false, 9)).unwrap().code, Code::Failure);

        let challenge = encode_challenge(3, &[0xaa; 16], b"iked");
        let packet = parse(&challenge).unwrap();
        assert_eq!(
            parse_mschapv2(true, packet.data).unwrap(),
            MsChapV2::Challenge {
                id: 3,
                challenge: [0xaa; 16],
                name: b"iked"
            }
        );
        let response = encode_response(3, 3, &[0xbb; 16], &[0xcc; 24], b"alice");
        let packet = parse(&response).unwrap();
        assert_eq!(
            parse_mschapv2(false, packet.data).unwrap(),
            MsChapV2::Response {
                id: 3,
                peer_challenge: [0xbb; 16],
                nt_response: [0xcc; 24],
                name: b"alice"
            }
        );
        let ok = encode_result_response(4, true);
        assert_eq!(ok, b"\x02\x04\x00\x06\x1a\x03");
        let packet = parse(&ok).unwrap();
        assert_eq!(
            parse_mschapv2(false, packet.data).unwrap(),
            MsChapV2::SuccessResponse
        );
    }

    #[test]
    fn malformed_packets_are_refused_with_the_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "shorter than its 4-octet header"),
            (b"\x01\x01\x00", "shorter than its 4-octet header"),
            (b"\x01\x01\x00\x09\x01ab", "does not fit"),
            (b"\x01\x01\x00\x03\x01", "does not fit"),
            (b"\x09\x01\x00\x04", "unknown EAP code 9"),
            (b"\x03\x01\x00\x05\x01", "has none"),
            (b"\x01\x01\x00\x04", "without a Type"),
        ];
        for (bytes, why) in cases {
            let e = parse(bytes).unwrap_err();
            assert!(e.contains(why), "{bytes:?}: {e}");
        }
        assert!(parse(&vec![1; MAX_EAP_PACKET + 1])
            .unwrap_err()
            .contains("cap"));
        // Padding past Length is ignored (RFC 3748 §4).
        assert_eq!(parse(b"\x03\x05\x00\x04\x00\x00").unwrap().identifier, 5);

        let mschap: &[(bool, &[u8], &str)] = &[
            (true, b"", "without an OpCode"),
            (true, b"\x01\x01\x00", "shorter"),
            (true, b"\x01\x01\x00\x09\x10", "MS-Length 9"),
            (true, b"\x01\x01\x00\x05\x08", "Value-Size 8"),
            (true, b"\x01\x01\x00\x06\x10\x00", "Value-Size 16"),
            (false, b"\x02\x01\x00\x05\x31", "Value-Size 49 in 0"),
            (true, b"\x07\x01\x00\x04", "Change-Password"),
            (true, b"\x09\x01\x00\x04", "OpCode 9"),
            (false, b"\x01\x01\x00\x04", "Response with OpCode 1"),
        ];
        for (request, data, why) in mschap {
            let e = parse_mschapv2(*request, data).unwrap_err();
            assert!(e.contains(why), "{data:?}: {e}");
        }
        let long_name = encode_response(1, 1, &[0; 16], &[0; 24], &[b'a'; MAX_NAME + 1]);
        let packet = parse(&long_name).unwrap();
        assert!(parse_mschapv2(false, packet.data)
            .unwrap_err()
            .contains("exceeds"));
    }

    #[test]
    fn printable_masks_control_octets() {
        assert_eq!(printable(b"al\x00ice\n\xff"), "al?ice??");
    }
}
