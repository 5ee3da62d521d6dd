//! Limits on what authenticated peers may make us hold, shared by ikev2
//! (which refuses a CREATE_CHILD_SA past them with NO_ADDITIONAL_SAS,
//! RFC 7296 §1.3, §3.10.1) and pfkey (which checks again what reaches the
//! kernel, should ikev2 be compromised or wrong).
//!
//! The kernel table pfkey keeps for ikev2 holds at most
//! `pfkey::service::MAX_INSTALLED` (65,536) entries; a tunnel-mode Child SA
//! takes about five (two SAs, and in, fwd and out policies). Without these
//! caps one authenticated peer could fill it for everyone.

/// Child SAs one IKE SA may hold. A peer normally has one per subnet pair
/// (flow); 64 leaves ample room for multi-subnet sites while keeping one
/// peer to well under 1% of the kernel table. A policy with more flows
/// than this still gets one Child SA per flow (ikev2 takes the larger).
pub const MAX_CHILD_SAS_PER_IKE_SA: usize = 64;

/// Child SAs all IKE SAs of one policy may hold together. A road-warrior
/// policy serves many peers, so this is large: 8,192 Child SAs take about
/// 41,000 kernel entries, so one policy can use most of the table but
/// always leaves about a third of it to the others.
pub const MAX_CHILD_SAS_PER_POLICY: usize = 8_192;

/// Rekeys replace a Child SA by a new one while the old one waits for its
/// DELETE (RFC 7296 §2.8), so for a moment both exist: a rekey is allowed
/// past the caps above, up to this factor of them, never beyond (a peer
/// rekeying in a loop cannot grow the count without bound).
pub const REKEY_OVERLAP_FACTOR: usize = 2;

/// Kernel SAs pfkey installs for one policy: two per Child SA (inbound and
/// outbound), with room for rekeys at the cap.
pub const MAX_KERNEL_SAS_PER_POLICY: usize = 2 * REKEY_OVERLAP_FACTOR * MAX_CHILD_SAS_PER_POLICY;
