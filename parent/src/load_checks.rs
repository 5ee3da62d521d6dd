//! The load-time checks that need the kernel (common/src/config/checks.rs):
//! what the kernel interface in use can install, asked once at start, is
//! held here and every configuration read (start, reload) is checked
//! against it before anything of it is applied.

use std::sync::Mutex;

use iked_common::config::checks::{check_kernel, KernelAlgorithms};
use iked_common::config::{Config, ConfigError};
use iked_common::kernel::KernelSocketKind;

/// What the kernel interface in use installs; `None` until [`probe`].
static KERNEL: Mutex<Option<KernelAlgorithms>> = Mutex::new(None);

/// Finds out what `kind` can install: PF_KEY's limits are known; XFRM's
/// kernel is asked (pfkey-proc/src/probe.rs). Root only, before the
/// children start: the question needs a network namespace of its own.
pub fn probe(kind: KernelSocketKind) {
    let algorithms = match kind {
        KernelSocketKind::Pfkey => KernelAlgorithms::LinuxPfkey,
        KernelSocketKind::Xfrm => iked_pfkey::probe::probe_xfrm_algorithms(),
    };
    if let KernelAlgorithms::Xfrm { unavailable, .. } = &algorithms {
        if !unavailable.is_empty() {
            log::info!("the kernel's XFRM refused ESP SAs with transforms {unavailable:?}");
        }
    }
    if let Ok(mut kernel) = KERNEL.lock() {
        *kernel = Some(algorithms);
    }
}

/// Which interface [`probe`] asked about, if it ran.
pub fn probed_kind() -> Option<KernelSocketKind> {
    let kernel = KERNEL.lock().ok()?;
    match kernel.as_ref()? {
        KernelAlgorithms::LinuxPfkey => Some(KernelSocketKind::Pfkey),
        KernelAlgorithms::Xfrm { .. } => Some(KernelSocketKind::Xfrm),
    }
}

/// Refuses what the kernel interface cannot install (with file:line:col),
/// fits the default proposals to it, and logs what cannot be known.
pub fn apply(config: &mut Config) -> Result<(), ConfigError> {
    let kernel = KERNEL.lock().ok().and_then(|k| k.clone());
    let Some(kernel) = kernel else {
        return Ok(());
    };
    for warning in check_kernel(config, &kernel)? {
        log::warn!("{warning}");
    }
    Ok(())
}

/// For `iked -n`: as root, the same questions and checks as at start, the
/// warnings returned for standard error; unprivileged, nothing (the
/// kernel cannot be asked, and the file's own checks already ran).
pub fn check_only(config: &mut Config) -> Result<Vec<String>, ConfigError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(Vec::new());
    }
    probe(config.kernel.unwrap_or(KernelSocketKind::Xfrm));
    let kernel = KERNEL.lock().ok().and_then(|k| k.clone());
    match kernel {
        Some(kernel) => check_kernel(config, &kernel),
        None => Ok(Vec::new()),
    }
}
