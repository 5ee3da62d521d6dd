//! The Debian package, as an operator meets it: built from this workspace
//! with scripts/build-deb.sh, installed with apt into a clean Debian 12
//! root, its unit checked with systemd-analyze, the daemon started as the
//! unit starts it (its ExecStart line, its capability bounding set, no new
//! privileges, a read-only file system but /run, a service manager's
//! NOTIFY_SOCKET and a syslog socket as the journal's), answering ikectl,
//! reloaded as ExecReload does, stopped as systemd stops it (SIGTERM to the
//! main process), then purged: nothing may be left but what Debian policy
//! keeps (the system users).
//!
//! This container has no systemd as PID 1, so systemd itself does not run
//! the unit: the sandbox above is what the test reproduces of it.
//!
//! The clean root is made once with debootstrap (minbase, with the
//! package's dependencies and systemd for systemd-analyze) from the host's
//! own Debian mirror, cached in /var/cache/iked-package-root, and copied
//! per run.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use iked_tests::{require_root, Scratch};

const CACHED_ROOT: &str = "/var/cache/iked-package-root";
/// Written last into the cached root: a debootstrap cut short is redone.
const COMPLETE_MARK: &str = ".iked-package-root-complete";
/// In the root (the unit's /run is writable, as ReadWritePaths says).
const NOTIFY_SOCKET: &str = "/run/iked-test-notify";
const UNIT: &str = "/lib/systemd/system/iked.service";
const DEBOOTSTRAP_TIMEOUT_SECS: u32 = 1200;
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The unit's TimeoutStopSec.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn require_tools(tools: &[&str]) {
    for tool in tools {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is missing: apt-get install debootstrap dpkg-dev fakeroot (scripts/test-all.sh does)"
        );
    }
}

fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The host's Debian mirror (a URI ending in /debian), from its apt
/// sources (deb822 or one-line), unless IKED_DEBIAN_MIRROR names one.
fn debian_mirror() -> String {
    if let Ok(mirror) = std::env::var("IKED_DEBIAN_MIRROR") {
        return mirror;
    }
    let mut texts = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push(text);
    }
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in entries.flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                texts.push(text);
            }
        }
    }
    for text in &texts {
        for line in text.lines().map(str::trim) {
            let uri = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                None
            };
            // Debian's own archive, not a third party's that also
            // serves bookworm (nor the security archive).
            if let Some(uri) = uri.filter(|u| u.trim_end_matches('/').ends_with("/debian")) {
                return uri.to_string();
            }
        }
    }
    panic!("no Debian mirror in the host's apt sources: set IKED_DEBIAN_MIRROR")
}

/// The cached clean root, made now if missing.
fn cached_root() -> PathBuf {
    let root = PathBuf::from(CACHED_ROOT);
    if root.join(COMPLETE_MARK).exists() {
        return root;
    }
    let partial = PathBuf::from(format!("{CACHED_ROOT}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let _ = std::fs::remove_dir_all(&root);
    eprintln!("making the clean Debian 12 root in {CACHED_ROOT} (once)");
    run(
        Command::new("timeout")
            .arg(DEBOOTSTRAP_TIMEOUT_SECS.to_string())
            .args([
                "debootstrap",
                "--variant=minbase",
                // The package's dependencies, so that installing it needs
                // no download; systemd for systemd-analyze and systemctl.
                "--include=libssl3,procps,systemd",
                "bookworm",
            ])
            .arg(&partial)
            .arg(debian_mirror()),
        "debootstrap",
    );
    std::fs::write(partial.join(COMPLETE_MARK), b"").expect("mark the root complete");
    std::fs::rename(&partial, &root).expect("move the root into place");
    root
}

/// `chroot ROOT sh -c SCRIPT` in a mount namespace of its own with /proc
/// mounted (apt, dpkg and systemd-tmpfiles want it); gone at exit.
fn in_root(root: &Path, script: &str) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t proc proc "$1/proc" && exec chroot "$1" /bin/sh -c "$2""#)
        .arg("sh")
        .arg(root)
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    command
}

/// Every path under `root` but the ones that change by themselves or that
/// only the test put there.
fn paths_under(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = format!(
                "/{}",
                path.strip_prefix(root).expect("under root").display()
            );
            let volatile = ["/proc", "/sys", "/dev", "/run", "/tmp", "/root/pkg"]
                .iter()
                .any(|p| relative == *p || relative.starts_with(&format!("{p}/")));
            if volatile || relative == format!("/{COMPLETE_MARK}") {
                continue;
            }
            out.insert(relative);
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// What a purge may leave of the package: dpkg's and apt's own records and
/// logs, and the backups useradd keeps of the user databases (the users
/// themselves stay, as Debian policy wants).
fn allowed_after_purge(path: &str) -> bool {
    [
        "/var/lib/dpkg/",
        "/var/lib/apt/",
        "/var/cache/",
        "/var/log/",
        "/var/lib/systemd/deb-systemd-helper-enabled",
    ]
    .iter()
    .any(|p| path.starts_with(p))
        || [
            "/etc/passwd-",
            "/etc/group-",
            "/etc/shadow-",
            "/etc/gshadow-",
        ]
        .contains(&path)
}

fn mode_and_owner(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{} is not installed: {e}", path.display()));
    (meta.permissions().mode() & 0o7777, meta.uid(), meta.gid())
}

/// `name:x:uid:gid:gecos:home:shell` of `name` in the root's /etc/passwd.
fn passwd_entry(root: &Path, name: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(root.join("etc/passwd")).expect("etc/passwd");
    text.lines()
        .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
        .find(|fields| fields.first().map(String::as_str) == Some(name))
}

fn group_gid(root: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(root.join("etc/group")).expect("etc/group");
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name))
        .and_then(|fields| fields.get(2).map(|g| g.to_string()))
}

/// The values of `key=` in the unit's [Service] section, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

/// Datagrams from the daemon: its sd_notify messages and its syslog lines.
struct Listener {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Listener {
    fn bind(path: &Path) -> Listener {
        let _ = std::fs::remove_file(path);
        let socket =
            UnixDatagram::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        Listener {
            socket,
            seen: Vec::new(),
        }
    }

    fn drain(&mut self) {
        let mut buffer = vec![0u8; 8192];
        while let Ok(n) = self.socket.recv(&mut buffer) {
            self.seen
                .push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    }

    /// Waits up to `timeout` for a datagram containing `needle` among those
    /// from `from` on; returns its index.
    fn wait_for(
        &mut self,
        needle: &str,
        from: usize,
        timeout: Duration,
        daemon: &mut Child,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if let Some(i) = self.seen.iter().skip(from).position(|m| m.contains(needle)) {
                return from + i;
            }
            if let Ok(Some(status)) = daemon.try_wait() {
                panic!(
                    "the daemon exited ({status}) before {needle:?}; seen: {:#?}\nstderr: {}",
                    self.seen,
                    stderr_of(daemon)
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {timeout:?}; seen: {:#?}",
                self.seen
            );
        }
    }
}

/// The daemon, killed if the test fails while it runs: no iked is left
/// behind in its namespace holding the scratch root.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn stderr_of(daemon: &mut Child) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Some(mut stderr) = daemon.stderr.take() {
        let _ = stderr.read_to_string(&mut text);
    }
    text
}

#[test]
#[ignore = "needs root, debootstrap and dpkg-dev: run by scripts/test-all.sh"]
fn the_debian_package_installs_starts_reloads_stops_and_purges() {
    require_root("the package test");
    require_tools(&[
        "debootstrap",
        "dpkg-deb",
        "dpkg-shlibdeps",
        "fakeroot",
        "unshare",
        "timeout",
    ]);
    let scratch = Scratch::new("package");

    // Build: the debug binaries this test run already has.
    let out = run(
        Command::new(workspace().join("scripts/build-deb.sh"))
            .arg("--debug")
            .arg(scratch.file("out")),
        "scripts/build-deb.sh",
    );
    let deb = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let deb_name = deb
        .file_name()
        .expect("package file name")
        .to_string_lossy()
        .to_string();
    assert!(
        deb_name.starts_with("iked_") && deb_name.ends_with(".deb"),
        "{deb_name}"
    );

    // A fresh copy of the clean root.
    let root = scratch.file("root");
    run(
        Command::new("cp").arg("-a").arg(cached_root()).arg(&root),
        "copy the clean root",
    );
    let before = paths_under(&root);
    assert!(
        passwd_entry(&root, "_iked").is_none(),
        "the clean root already has _iked"
    );
    std::fs::create_dir_all(root.join("root/pkg")).expect("root/pkg");
    std::fs::copy(&deb, root.join("root/pkg").join(&deb_name)).expect("copy the package");

    // Install as an operator would; the dependencies are all in the root.
    // (Not --no-download: apt 2.6 then takes the local file for an
    // archive's and refuses it as "not absolute".)
    let installed = run(
        &mut in_root(&root, &format!("apt-get install -y /root/pkg/{deb_name}")),
        "apt install ./iked_*.deb",
    );
    let apt_said = String::from_utf8_lossy(&installed.stdout);
    assert!(
        apt_said
            .lines()
            .filter(|l| l.starts_with("Need to get"))
            .all(|l| l.starts_with("Need to get 0 B/")),
        "installing the package downloaded dependencies the clean root should have had: {apt_said}"
    );

    // Files and modes.
    for (path, mode) in [
        ("usr/sbin/iked", 0o755),
        ("usr/sbin/ikectl", 0o755),
        ("usr/share/man/man8/iked.8.gz", 0o644),
        ("usr/share/man/man8/ikectl.8.gz", 0o644),
        ("usr/share/man/man5/iked.conf.5.gz", 0o644),
        ("usr/share/doc/iked/copyright", 0o644),
        ("usr/share/bash-completion/completions/ikectl", 0o644),
        ("usr/share/zsh/vendor-completions/_ikectl", 0o644),
        ("usr/share/fish/vendor_completions.d/ikectl.fish", 0o644),
        ("etc/iked", 0o755),
        ("etc/iked/iked.conf", 0o600),
        ("etc/iked/ca", 0o755),
        ("etc/iked/certs", 0o755),
        ("etc/iked/crls", 0o755),
        ("etc/iked/pubkeys", 0o755),
        ("etc/iked/private", 0o700),
        ("lib/systemd/system/iked.service", 0o644),
        ("usr/lib/tmpfiles.d/iked.conf", 0o644),
        ("var/empty", 0o755), // made by postinst
    ] {
        assert_eq!(
            mode_and_owner(&root.join(path)),
            (mode, 0, 0),
            "/{path}: mode, uid, gid"
        );
    }
    for page in [
        "usr/share/man/man8/iked.8.gz",
        "usr/share/man/man5/iked.conf.5.gz",
    ] {
        let bytes = std::fs::read(root.join(page)).expect("man page");
        assert_eq!(&bytes[..2], b"\x1f\x8b", "/{page} is gzipped");
    }
    let bash = std::fs::read_to_string(root.join("usr/share/bash-completion/completions/ikectl"))
        .expect("bash completion");
    assert!(
        bash.contains("ikectl") && bash.contains("decouple"),
        "the bash completion names ikectl's commands"
    );
    let conffiles = run(
        &mut in_root(&root, "dpkg-query -W -f='${Conffiles}' iked"),
        "dpkg-query conffiles",
    );
    assert!(
        String::from_utf8_lossy(&conffiles.stdout).contains("/etc/iked/iked.conf"),
        "/etc/iked/iked.conf is a conffile: {}",
        String::from_utf8_lossy(&conffiles.stdout)
    );

    // The users, each with a group of its own, as iked(8) wants them.
    let mut uids = BTreeSet::new();
    for user in ["_iked", "_iked_pfkey", "_iked_ca"] {
        let entry =
            passwd_entry(&root, user).unwrap_or_else(|| panic!("postinst did not create {user}"));
        assert_eq!(entry[5], "/var/empty", "{user}'s home");
        assert_eq!(entry[6], "/usr/sbin/nologin", "{user}'s shell");
        assert_ne!(entry[2], "0", "{user} is not root");
        assert_eq!(
            group_gid(&root, user).as_deref(),
            Some(entry[3].as_str()),
            "{user}'s primary group is its own"
        );
        uids.insert(entry[2].clone());
    }
    assert_eq!(uids.len(), 3, "three distinct uids");

    // The unit: valid, installed, not enabled.
    run(
        &mut in_root(&root, &format!("systemd-analyze verify --man=no {UNIT}")),
        "systemd-analyze verify",
    );
    let enabled = in_root(&root, "systemctl is-enabled iked.service")
        .output()
        .expect("systemctl is-enabled");
    assert_eq!(
        String::from_utf8_lossy(&enabled.stdout).trim(),
        "disabled",
        "the unit is installed but not enabled: {}",
        String::from_utf8_lossy(&enabled.stderr)
    );
    assert!(!root
        .join("etc/systemd/system/multi-user.target.wants/iked.service")
        .exists());

    // Start it as the unit does.
    let unit = std::fs::read_to_string(root.join(UNIT.trim_start_matches('/'))).expect("unit");
    assert_eq!(unit_values(&unit, "Type"), ["notify"]);
    let exec_start = unit_values(&unit, "ExecStart");
    assert_eq!(exec_start.len(), 1, "one ExecStart");
    let exec_reload = unit_values(&unit, "ExecReload");
    assert_eq!(exec_reload.len(), 2, "check, then HUP: {exec_reload:?}");
    let bounding: Vec<String> = unit_values(&unit, "CapabilityBoundingSet")
        .join(" ")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    assert!(!bounding.is_empty(), "the unit bounds the capabilities");
    assert_eq!(unit_values(&unit, "NoNewPrivileges"), ["yes"]);
    assert_eq!(unit_values(&unit, "ProtectSystem"), ["strict"]);
    assert_eq!(unit_values(&unit, "ReadWritePaths"), ["/run"]);

    let mut notify = Listener::bind(&root.join(NOTIFY_SOCKET.trim_start_matches('/')));
    // The journal's syslog socket, as the unit's processes see /dev/log.
    let mut syslog = Listener::bind(&root.join("dev/log"));
    // A network namespace of its own (port 500 may be taken on the host);
    // the root read-only but /run and /proc, as ProtectSystem=strict with
    // ReadWritePaths=/run makes it; the unit's capability bounding set and
    // no_new_privs; an environment as systemd's, with NOTIFY_SOCKET.
    let sandbox = r#"set -e
r=$1; shift
mount --bind "$r" "$r"
mount --bind "$r/run" "$r/run"
mount -o remount,bind,ro "$r"
mount -t proc proc "$r/proc"
exec chroot "$r" setpriv --bounding-set="$BOUNDING" --no-new-privs \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NOTIFY_SOCKET="$NOTIFY" "$@""#;
    let mut daemon = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            sandbox,
            "sh",
        ])
        .arg(&root)
        .args(exec_start[0].split_whitespace())
        .env("BOUNDING", format!("-all,{}", bounding.join(",")))
        .env("NOTIFY", NOTIFY_SOCKET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(KillOnDrop)
        .expect("start the daemon");
    // unshare, sh, chroot, setpriv and env all exec: the pid is iked's.
    let main_pid = daemon.0.id();

    let ready = notify.wait_for("READY=1", 0, START_TIMEOUT, &mut daemon.0);
    assert!(
        notify.seen[ready].contains(&format!("MAINPID={main_pid}")),
        "READY=1 names the main pid {main_pid}: {:?}",
        notify.seen[ready]
    );
    // It stayed in the foreground (systemd tracks that pid) and logs to
    // syslog, whence the journal takes it.
    assert!(daemon.0.try_wait().expect("try_wait").is_none());
    syslog.wait_for("parent: started:", 0, START_TIMEOUT, &mut daemon.0);
    assert!(
        syslog
            .seen
            .iter()
            .any(|l| l.contains(&format!("iked[{main_pid}]"))),
        "syslog lines carry iked[pid]: {:#?}",
        syslog.seen
    );

    // Up: ikectl, the installed one, answers in text and JSON.
    let text = run(&mut in_root(&root, "ikectl show sa"), "ikectl show sa");
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("no IKE SAs"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    let json = run(
        &mut in_root(&root, "ikectl --json show sa"),
        "ikectl --json show sa",
    );
    let answer: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("ikectl --json answers JSON");
    assert_eq!(answer["sas"], serde_json::json!([]), "{answer}");

    // Reload as ExecReload does: the check refuses a broken file, naming
    // where, and then no HUP is sent ...
    let config = root.join("etc/iked/iked.conf");
    let shipped = std::fs::read_to_string(&config).expect("iked.conf");
    iked_tests::write_config(&config, &format!("{shipped}\nset nosuchoption\n"));
    let check = in_root(&root, &exec_reload[0])
        .output()
        .expect("ExecReload check");
    let complaint = String::from_utf8_lossy(&check.stderr).to_string();
    assert!(
        !check.status.success() && complaint.contains("/etc/iked/iked.conf:"),
        "ExecReload's check refuses a broken file with its place: {} {complaint}",
        check.status
    );
    // ... and with the file repaired, the check passes and HUP reloads.
    iked_tests::write_config(&config, &shipped);
    let reloads_from = notify.seen.len();
    for line in &exec_reload {
        let line = line.replace("$MAINPID", &main_pid.to_string());
        run(&mut in_root(&root, &line), &format!("ExecReload {line}"));
    }
    let reloading = notify.wait_for("RELOADING=1", reloads_from, START_TIMEOUT, &mut daemon.0);
    notify.wait_for("READY=1", reloading + 1, START_TIMEOUT, &mut daemon.0);
    syslog.wait_for("configuration 2 loaded", 0, START_TIMEOUT, &mut daemon.0);

    // Stop as systemd does with KillMode=mixed: SIGTERM to the main process.
    assert_eq!(unit_values(&unit, "KillMode"), ["mixed"]);
    let stops_from = notify.seen.len();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(main_pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    notify.wait_for_exit_notice(stops_from);
    let deadline = Instant::now() + STOP_TIMEOUT;
    let status = loop {
        if let Some(status) = daemon.0.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            panic!("iked did not stop within {STOP_TIMEOUT:?} (TimeoutStopSec)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr_of(&mut daemon.0);
    assert!(status.success(), "iked stopped with {status}: {stderr}");
    syslog.wait_for_line("parent: stopped");
    drop(notify);
    drop(syslog);
    let _ = std::fs::remove_file(root.join(NOTIFY_SOCKET.trim_start_matches('/')));
    let _ = std::fs::remove_file(root.join("dev/log"));

    // Purge: nothing left but what Debian policy keeps.
    run(
        &mut in_root(&root, "apt-get purge -y iked"),
        "apt purge iked",
    );
    std::fs::remove_dir_all(root.join("root/pkg")).expect("remove the package copy");
    let after = paths_under(&root);
    let left: Vec<&String> = after
        .difference(&before)
        .filter(|p| !allowed_after_purge(p))
        .collect();
    assert!(left.is_empty(), "purge left {left:#?}");
    let lost: Vec<&String> = before
        .difference(&after)
        .filter(|p| !allowed_after_purge(p))
        .collect();
    assert!(
        lost.is_empty(),
        "purge removed what was not the package's: {lost:#?}"
    );
    for user in ["_iked", "_iked_pfkey", "_iked_ca"] {
        assert!(
            passwd_entry(&root, user).is_some(),
            "{user} is kept after purge (Debian policy: its uid may own files)"
        );
    }
}

impl Listener {
    /// STOPPING=1 comes first thing when the daemon is told to stop.
    fn wait_for_exit_notice(&mut self, from: usize) {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            self.drain();
            if self
                .seen
                .iter()
                .skip(from)
                .any(|m| m.contains("STOPPING=1"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no STOPPING=1 within {STOP_TIMEOUT:?}: {:#?}",
                self.seen
            );
        }
    }

    /// A line that must have come by the time the daemon exited.
    fn wait_for_line(&mut self, needle: &str) {
        self.drain();
        assert!(
            self.seen.iter().any(|m| m.contains(needle)),
            "no {needle:?} in syslog: {:#?}",
            self.seen
        );
    }
}
