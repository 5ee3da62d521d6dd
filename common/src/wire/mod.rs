//! IKEv2 wire format (RFC 7296 §3): strict decoding and exact encoding.
