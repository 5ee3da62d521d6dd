//! iked-ikev2
