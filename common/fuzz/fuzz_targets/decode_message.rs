//! libFuzzer target: decoding a datagram never panics, and whatever decodes
//! re-encodes to bytes that decode to the same message. The same input is
//! also tried as decrypted SK contents. Seed the corpus from
//! ../testdata/interop/messages.hex (one hex message per line).
#![no_main]

use iked_common::wire::{
    decode_payloads, encode_payloads, ExchangeType, Flags, Header, Message, PayloadType,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        let encoded = message.encode().expect("accepted message encodes");
        let again = Message::decode(&encoded).expect("re-encoded message decodes");
        assert_eq!(again, message);
        let _ = message.to_string();
    }
    if let Some((&first, chain)) = data.split_first() {
        let header = Header {
            initiator_spi: 1,
            responder_spi: 2,
            exchange: ExchangeType::IkeAuth,
            flags: Flags::default(),
            message_id: 1,
        };
        if let Ok(payloads) = decode_payloads(PayloadType::from_value(first), chain, &header) {
            let (first_again, bytes) = encode_payloads(&payloads).expect("inner encodes");
            let again = decode_payloads(first_again, &bytes, &header).expect("inner decodes");
            assert_eq!(again, payloads);
        }
    }
});
