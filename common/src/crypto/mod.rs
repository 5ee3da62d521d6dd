//! IKEv2 cryptography over OpenSSL: key exchange, PRFs and key derivation,
//! the encrypted payload, and AUTH octets.
