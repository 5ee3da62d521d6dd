//! iked-ca
