//! iked-pfkey
