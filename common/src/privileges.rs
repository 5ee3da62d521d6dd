//! What each process may do, declared in one place, and the code that takes
//! everything else away.
//!
//! | process | runs as        | chroot     | capabilities  | holds                                   |
//! |---------|----------------|------------|---------------|-----------------------------------------|
//! | parent  | root           | no         | all (root)    | config file, control socket             |
//! | ikev2   | `_iked`        | /var/empty | none          | UDP 500/4500 sockets, IKE SA state      |
//! | pfkey   | `_iked_pfkey`  | /var/empty | CAP_NET_ADMIN | kernel key sockets, NETLINK_ROUTE socket |
//! | ca      | `_iked_ca`     | /var/empty | none          | PSKs, private keys, CA certs, CRLs      |
//!
//! Every child also sets PR_SET_NO_NEW_PRIVS and has no supplementary groups,
//! and then confines itself further with Landlock and a seccomp filter of
//! its own ([`syscalls`] lists what each may call; [`sandbox::confine`]
//! applies it all).
//! Each child has a user (and group) of its own, so that none can signal,
//! ptrace or read the /proc entries of another: a compromised ikev2 cannot
//! stop ca or pfkey. `_iked` keeps OpenBSD's name for the process the
//! network reaches; the parent refuses to start if two roles' users share
//! a uid or a gid.
//! Before any child exists the parent, as root, also asks the kernel which
//! ESP algorithms XFRM installs, with throwaway SAs in a network namespace
//! of its own (CAP_SYS_ADMIN and CAP_NET_ADMIN: pfkey-proc/src/probe.rs);
//! without those capabilities it cannot tell, and warns.
//! The table below is what the code enforces; the one above is for people.

pub mod sandbox;
pub mod syscalls;

use caps::{CapSet, Capability, CapsHashSet};

use crate::ipc::Role;

/// The unprivileged user of the ikev2 process, the one the network
/// reaches (OpenBSD iked's name).
pub const DEFAULT_USER: &str = "_iked";
/// The user of the pfkey process.
pub const PFKEY_USER: &str = "_iked_pfkey";
/// The user of the ca process.
pub const CA_USER: &str = "_iked_ca";
/// Default chroot directory: empty, root-owned, 0755.
pub const DEFAULT_CHROOT: &str = "/var/empty";

/// The privileges one process keeps.
#[derive(Debug)]
pub struct Privileges {
    pub role: Role,
    /// Chrooted and running as the unprivileged user.
    pub confined: bool,
    /// The user (and its primary group) a confined process runs as: one
    /// per role, none shared. None for the parent.
    pub user: Option<&'static str>,
    /// Capabilities kept after the drop; every other one is removed from all
    /// sets, the bounding set included.
    pub capabilities: &'static [Capability],
    /// What the process is given, for documentation and audits.
    pub holds: &'static str,
}

pub const PROCESS_PRIVILEGES: [Privileges; 4] = [
    Privileges {
        role: Role::Parent,
        confined: false,
        user: None,
        capabilities: &[],
        holds: "root; reads the config, binds sockets, spawns and watches the children",
    },
    Privileges {
        role: Role::Ikev2,
        confined: true,
        user: Some(DEFAULT_USER),
        capabilities: &[],
        holds: "the UDP sockets for IKE (500) and NAT-T (4500); IKE SA state",
    },
    Privileges {
        role: Role::Pfkey,
        confined: true,
        user: Some(PFKEY_USER),
        capabilities: &[Capability::CAP_NET_ADMIN],
        holds: "the kernel key sockets (XFRM netlink or PF_KEY); a NETLINK_ROUTE socket for \
                routes and source address lookups",
    },
    Privileges {
        role: Role::Ca,
        confined: true,
        user: Some(CA_USER),
        capabilities: &[],
        holds: "long-term secrets: PSKs, private keys, CA certificates, CRLs",
    },
];

pub fn privileges_of(role: Role) -> &'static Privileges {
    // The table lists every role, in declaration order.
    match role {
        Role::Parent => &PROCESS_PRIVILEGES[0],
        Role::Ikev2 => &PROCESS_PRIVILEGES[1],
        Role::Pfkey => &PROCESS_PRIVILEGES[2],
        Role::Ca => &PROCESS_PRIVILEGES[3],
    }
}

/// The user `role` runs as (None for the parent).
pub fn user_of(role: Role) -> Option<&'static str> {
    privileges_of(role).user
}

/// The command that creates the user of a confined process, for the
/// refusal to start without it.
pub fn create_user_command(user: &str) -> String {
    format!("useradd --system --user-group --home-dir {DEFAULT_CHROOT} --shell /usr/sbin/nologin {user}")
}

/// A step of the confinement that failed, or a check of it afterwards
/// ("verify"): the child must not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dropping privileges: {step}: {reason}")]
pub struct PrivilegeError {
    pub step: String,
    pub reason: String,
}

fn fail(step: &str, e: impl std::fmt::Display) -> PrivilegeError {
    PrivilegeError {
        step: step.to_string(),
        reason: e.to_string(),
    }
}

/// Confines the calling process as its table entry says: chroot, no groups,
/// unprivileged uid/gid, only the listed capabilities, no new privileges.
/// Checks the result afterwards and fails rather than run half-confined.
pub fn drop_privileges(
    role: Role,
    chroot_dir: &str,
    uid: u32,
    gid: u32,
) -> Result<(), PrivilegeError> {
    use nix::sys::prctl;
    use nix::unistd::{chdir, chroot, setgroups, setresgid, setresuid, Gid, Uid};

    let entry = privileges_of(role);
    if !entry.confined {
        return Ok(());
    }
    if uid == 0 || gid == 0 {
        return Err(fail(
            "user",
            "the unprivileged user must not have uid or gid 0",
        ));
    }
    let keep: CapsHashSet = entry.capabilities.iter().copied().collect();

    // While still root (CAP_SETPCAP): shrink the bounding set for good.
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| fail("bounding set", e))?;
        }
    }
    // Keep the permitted set across the uid change only if something is kept.
    prctl::set_keepcaps(!keep.is_empty()).map_err(|e| fail("PR_SET_KEEPCAPS", e))?;

    chroot(chroot_dir).map_err(|e| fail(&format!("chroot {chroot_dir}"), e))?;
    chdir("/").map_err(|e| fail("chdir /", e))?;
    setgroups(&[]).map_err(|e| fail("setgroups", e))?;
    let (gid, uid) = (Gid::from_raw(gid), Uid::from_raw(uid));
    setresgid(gid, gid, gid).map_err(|e| fail("setresgid", e))?;
    setresuid(uid, uid, uid).map_err(|e| fail("setresuid", e))?;

    caps::set(None, CapSet::Permitted, &keep).map_err(|e| fail("permitted set", e))?;
    caps::set(None, CapSet::Effective, &keep).map_err(|e| fail("effective set", e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail("inheritable set", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient set", e))?;
    prctl::set_keepcaps(false).map_err(|e| fail("PR_SET_KEEPCAPS", e))?;
    prctl::set_no_new_privs().map_err(|e| fail("PR_SET_NO_NEW_PRIVS", e))?;

    verify(&keep, uid, gid)
}

/// Reads back what the kernel now says about us.
fn verify(
    keep: &CapsHashSet,
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
) -> Result<(), PrivilegeError> {
    let ids = nix::unistd::getresuid().map_err(|e| fail("getresuid", e))?;
    let gids = nix::unistd::getresgid().map_err(|e| fail("getresgid", e))?;
    if [ids.real, ids.effective, ids.saved] != [uid; 3]
        || [gids.real, gids.effective, gids.saved] != [gid; 3]
    {
        return Err(fail("verify", "uid/gid did not change"));
    }
    if !nix::unistd::getgroups()
        .map_err(|e| fail("getgroups", e))?
        .is_empty()
    {
        return Err(fail("verify", "supplementary groups remain"));
    }
    for set in [CapSet::Effective, CapSet::Permitted] {
        let have = caps::read(None, set).map_err(|e| fail("read capabilities", e))?;
        if &have != keep {
            return Err(fail("verify", format!("{set:?} capabilities are {have:?}")));
        }
    }
    if !nix::sys::prctl::get_no_new_privs().unwrap_or(false) {
        return Err(fail("verify", "no_new_privs is not set"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_its_own_entry() {
        for role in [Role::Parent, Role::Ikev2, Role::Pfkey, Role::Ca] {
            assert_eq!(privileges_of(role).role, role);
        }
    }

    #[test]
    fn only_pfkey_keeps_a_capability_and_it_is_net_admin() {
        for entry in &PROCESS_PRIVILEGES {
            let expected: &[Capability] = if entry.role == Role::Pfkey {
                &[Capability::CAP_NET_ADMIN]
            } else {
                &[]
            };
            assert_eq!(entry.capabilities, expected, "{}", entry.role);
            assert_eq!(entry.confined, entry.role != Role::Parent);
        }
    }

    #[test]
    fn every_confined_role_has_a_user_of_its_own() {
        let users: Vec<&str> = PROCESS_PRIVILEGES
            .iter()
            .filter(|e| e.confined)
            .map(|e| e.user.expect("a confined role names its user"))
            .collect();
        assert_eq!(users, ["_iked", "_iked_pfkey", "_iked_ca"]);
        assert_eq!(user_of(Role::Parent), None);
        assert!(create_user_command("_iked_ca").ends_with(" _iked_ca"));
    }
}
