//! The whole confinement of a child, in order: what must happen while still
//! root (OpenSSL's initialisation, Landlock's directories opened), the
//! privilege drop, then Landlock, then the seccomp filter. After
//! [`confine`] returns, the process can make only the system calls of its
//! role's list ([`super::syscalls`]).
//!
//! seccompiler (rust-vmm, the filters of Firecracker and Cloud Hypervisor)
//! compiles the lists: pure Rust, no C library to link into a process that
//! has almost nothing, and argument checks on the calls that need them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use landlock::{
    Access, AccessFs, AccessNet, LandlockStatus, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};

use super::syscalls::{self, Allowed};
use super::{drop_privileges, PrivilegeError};
use crate::ipc::Role;

/// What the kernel does with a system call outside the role's list.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViolationAction {
    /// SECCOMP_RET_KILL_PROCESS: production.
    #[default]
    Kill,
    /// SECCOMP_RET_LOG: the call goes through and the kernel logs it (audit
    /// type 1326). Only with `iked -d --seccomp-log`, for debugging.
    Log,
}

/// Everything [`confine`] needs to know.
#[derive(Debug, Clone)]
pub struct Confinement {
    pub role: Role,
    pub chroot_dir: String,
    pub uid: u32,
    pub gid: u32,
    pub on_violation: ViolationAction,
    /// Directories the role may read below (Landlock); only ca may have
    /// any (its key and certificate directories: none yet).
    pub read_only_dirs: Vec<PathBuf>,
}

/// What the kernel enforced, for one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfinementReport {
    pub landlock: String,
    pub landlock_fully_enforced: bool,
}

fn fail(step: &str, e: impl std::fmt::Display) -> PrivilegeError {
    PrivilegeError {
        step: step.to_string(),
        reason: e.to_string(),
    }
}

#[cfg(target_arch = "x86_64")]
const ARCH: Option<TargetArch> = Some(TargetArch::x86_64);
#[cfg(target_arch = "aarch64")]
const ARCH: Option<TargetArch> = Some(TargetArch::aarch64);
#[cfg(target_arch = "riscv64")]
const ARCH: Option<TargetArch> = Some(TargetArch::riscv64);
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
const ARCH: Option<TargetArch> = None;

fn rule(checks: &[syscalls::ArgIs]) -> Result<SeccompRule, PrivilegeError> {
    let conditions = checks
        .iter()
        .map(|c| {
            SeccompCondition::new(
                c.index,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(u64::from(c.mask)),
                u64::from(c.value),
            )
            .map_err(|e| fail("seccomp condition", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    SeccompRule::new(conditions).map_err(|e| fail("seccomp rule", e))
}

/// Compiles `allowed` into a BPF program whose default is `on_violation`.
pub fn compile_filter(
    allowed: &[&Allowed],
    on_violation: ViolationAction,
) -> Result<BpfProgram, PrivilegeError> {
    let arch = ARCH.ok_or_else(|| fail("seccomp", "no filter for this architecture"))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for entry in allowed {
        let chain = rules.entry(entry.number).or_default();
        for pattern in entry.only {
            chain.push(rule(pattern)?);
        }
    }
    let mismatch = match on_violation {
        ViolationAction::Kill => SeccompAction::KillProcess,
        ViolationAction::Log => SeccompAction::Log,
    };
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, arch)
        .map_err(|e| fail("seccomp filter", e))?;
    filter.try_into().map_err(|e| fail("seccomp compile", e))
}

/// The Landlock ruleset of `role`, with the directories it may read opened
/// now (before the chroot hides them).
fn landlock_ruleset(role: Role, read_only_dirs: &[PathBuf]) -> Result<RulesetCreated, String> {
    // The newest ABI this crate knows: best effort gives each kernel the
    // part it supports.
    let abi = ABI::V6;
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .map_err(|e| e.to_string())?;
    if !read_only_dirs.is_empty() && role != Role::Ca {
        return Err(format!("{role} may read no directory"));
    }
    for dir in read_only_dirs {
        let fd = PathFd::new(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, AccessFs::from_read(abi)))
            .map_err(|e| e.to_string())?;
    }
    Ok(ruleset)
}

fn describe(status: &landlock::RestrictionStatus) -> (String, bool) {
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => format!("{effective_abi:?}"),
        LandlockStatus::NotEnabled => return ("not enabled in this kernel".into(), false),
        LandlockStatus::NotImplemented => return ("not built into this kernel".into(), false),
    };
    match status.ruleset {
        RulesetStatus::FullyEnforced => (format!("fully enforced (ABI {abi})"), true),
        RulesetStatus::PartiallyEnforced => (
            format!(
                "partly enforced: the kernel has Landlock ABI {abi} \
                 (TCP bind/connect rules need ABI 4, signal and abstract socket scopes ABI 6)"
            ),
            false,
        ),
        RulesetStatus::NotEnforced => (format!("not enforced (ABI {abi})"), false),
    }
}

/// Initialises what must be ready before the filter: OpenSSL, whose
/// configuration file is read here, before the chroot (and never again),
/// and its DRBG when the kernel's random pool is ready. Seeding must not
/// wait: early in a boot getrandom(2) blocks until the pool is ready, and
/// the parent gives a child's start a few seconds only. Without a seed now
/// OpenSSL seeds itself at first use through getrandom, which the filter
/// allows.
fn prepare_openssl() -> Result<(), PrivilegeError> {
    openssl::init();
    // Certificate checks convert times with gmtime_r(3), whose first call
    // in glibc loads the time zone (opens /etc/localtime): done here, once,
    // so that ca's first validity check makes no openat(2) the filter
    // refuses.
    openssl::asn1::Asn1Time::days_from_now(0).map_err(|e| fail("OpenSSL time", e))?;
    let mut probe = [0u8; 1];
    // SAFETY: writes at most one byte into a live buffer.
    let pool_ready =
        unsafe { nix::libc::getrandom(probe.as_mut_ptr().cast(), 1, nix::libc::GRND_NONBLOCK) }
            == 1;
    if pool_ready {
        let mut seed = [0u8; 16];
        openssl::rand::rand_bytes(&mut seed).map_err(|e| fail("OpenSSL random generator", e))?;
    }
    Ok(())
}

/// Confines the calling process for good: chroot, unprivileged uid, only the
/// role's capabilities, no new privileges (`drop_privileges`), no
/// parent-death surprises, Landlock, and the role's seccomp filter.
/// Fails rather than run half-confined, except for Landlock, which is best
/// effort on kernels that lack it or parts of it (reported).
pub fn confine(c: &Confinement) -> Result<ConfinementReport, PrivilegeError> {
    if c.role == Role::Parent {
        return Err(fail("confine", "the parent is not confined"));
    }
    prepare_openssl()?;
    let filter = compile_filter(&syscalls::allowed(c.role), c.on_violation)?;
    let ruleset = landlock_ruleset(c.role, &c.read_only_dirs).map_err(|e| fail("landlock", e))?;

    drop_privileges(c.role, &c.chroot_dir, c.uid, c.gid)?;
    // Credentials changed, which cleared any parent-death signal: set it now
    // as a second line behind the closed channel. pfkey blocks SIGTERM and
    // reads it from a signalfd: for it the signal means flush our kernel
    // entries, then exit.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .map_err(|e| fail("PR_SET_PDEATHSIG", e))?;

    let status = ruleset.restrict_self().map_err(|e| fail("landlock", e))?;
    let (landlock, landlock_fully_enforced) = describe(&status);

    // Last: from here on only the role's system calls work (tests read
    // Seccomp: 2 in /proc/PID/status).
    seccompiler::apply_filter_all_threads(&filter).map_err(|e| fail("seccomp", e))?;
    Ok(ConfinementReport {
        landlock,
        landlock_fully_enforced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_compiles_in_both_modes() {
        for role in [Role::Ikev2, Role::Pfkey, Role::Ca] {
            for mode in [ViolationAction::Kill, ViolationAction::Log] {
                let program = compile_filter(&syscalls::allowed(role), mode).unwrap();
                assert!(program.len() > 10, "{role}: {} instructions", program.len());
            }
        }
    }

    #[test]
    fn the_parent_is_never_confined_here() {
        let c = Confinement {
            role: Role::Parent,
            chroot_dir: "/var/empty".into(),
            uid: 1,
            gid: 1,
            on_violation: ViolationAction::Kill,
            read_only_dirs: Vec::new(),
        };
        assert!(confine(&c).is_err());
    }

    #[test]
    fn only_ca_may_have_directories() {
        let dirs = vec![PathBuf::from("/")];
        assert!(landlock_ruleset(Role::Ikev2, &dirs).is_err());
        assert!(landlock_ruleset(Role::Pfkey, &dirs).is_err());
    }
}
