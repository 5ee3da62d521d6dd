//! Checks at load time (common/src/config/checks.rs, parent/src/load_checks.rs):
//! a configuration the kernel interface cannot install, a transport-mode
//! policy whose flows are not the gateways', a file others can read: iked
//! refuses to start with `file:line:col` and the reason, `iked -n` says the
//! same, and a reload to such a file keeps the old configuration in force.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use iked_tests::{
    binary, fresh_netns, ip_in, require_root, wait_until, xfrm_listing, Daemon, Scratch,
};

const PSK: &str = "psk \"load-checks-psk\"";

/// `iked -d` with `config`, in a network namespace of its own; returns
/// its exit status and what it wrote, once it exits (at most 15 s).
fn start_refused(scratch: &Scratch, config: &std::path::Path) -> (bool, String) {
    let mut command = scratch.iked_command(config);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: unshare(2) is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        });
    }
    let mut child = command.spawn().expect("spawn iked");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "iked still running 15 s after start with a bad config:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (out.status.success(), text(&out))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn check_only(config: &std::path::Path) -> (bool, String) {
    let out = Command::new(binary("iked"))
        .arg("-n")
        .arg("-f")
        .arg(config)
        .output()
        .expect("iked -n");
    (out.status.success(), text(&out))
}

/// `file:line:col` of the first `needle` on line `line` (1-based) of `text`.
fn location(file: &std::path::Path, text: &str, line: usize, needle: &str) -> String {
    let col = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.find(needle))
        .unwrap_or_else(|| panic!("{needle:?} not on line {line}"));
    format!("{}:{line}:{}", file.display(), col + 1)
}

/// Each configuration the kernel interface or RFC 4301 refuses: where,
/// and the words of the reason.
fn refused_configs() -> Vec<(&'static str, String, usize, &'static str, &'static str)> {
    let site = format!(
        "ikev2 \"site\" active esp from 10.1.0.0/24 to 10.2.0.0/24 \
         local 198.18.0.1 peer 198.18.0.2 {PSK}"
    );
    vec![
        (
            "pfkey-aead",
            format!("set kernel pfkey\n{site} childsa enc aes-128-gcm\n"),
            2,
            "aes-128-gcm",
            "Linux PF_KEY has no combined-mode (AEAD) ciphers",
        ),
        (
            "pfkey-chacha",
            format!("set kernel pfkey\n{site} childsa enc chacha20-poly1305\n"),
            2,
            "chacha20-poly1305",
            "Linux PF_KEY has no combined-mode (AEAD) ciphers",
        ),
        (
            "pfkey-sha256",
            format!("{site} childsa enc aes-256 auth hmac-sha2-256\nset kernel pfkey\n"),
            1,
            "hmac-sha2-256",
            "truncates hmac-sha2-256 to 96 bits",
        ),
        (
            "pfkey-esn",
            format!("set kernel pfkey\n{site} childsa enc aes-256 auth hmac-sha2-512 esn\n"),
            2,
            " esn",
            "cannot install extended sequence numbers",
        ),
        (
            "short-gcm-icv",
            format!("{site} childsa enc aes-256-gcm-12\n"),
            1,
            "aes-256-gcm-12",
            "iked gives the kernel AES-GCM with the 16-byte ICV only",
        ),
        (
            "transport-networks",
            format!(
                "ikev2 \"tr\" active esp transport from 10.1.0.0/24 to 198.18.0.2 \
                 local 198.18.0.1 peer 198.18.0.2 {PSK}\n"
            ),
            1,
            "from",
            "transport mode protects only the traffic between the two gateways",
        ),
        (
            "transport-other-host",
            format!(
                "ikev2 \"tr\" active esp transport from 198.18.0.1 to 198.18.0.9 \
                 local 198.18.0.1 peer 198.18.0.2 {PSK}\n"
            ),
            1,
            "from",
            "is not the peer's address (peer 198.18.0.2/32)",
        ),
    ]
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn bad_configurations_stop_the_start_with_file_line_col_and_the_reason() {
    require_root("bad_configurations_stop_the_start_with_file_line_col_and_the_reason");
    for (tag, config_text, line, needle, reason) in refused_configs() {
        let scratch = Scratch::new(&format!("lc-{tag}"));
        let config = scratch.config("iked.conf", &config_text);
        // ` esn` points at the space before the word.
        let mut at = location(&config, &config_text, line, needle);
        if needle == " esn" {
            let (head, col) = at.rsplit_once(':').unwrap();
            at = format!("{head}:{}", col.parse::<u32>().unwrap() + 1);
        }
        let (ok, said) = start_refused(&scratch, &config);
        assert!(!ok, "{tag}: iked started with\n{config_text}\n{said}");
        assert!(said.contains(&at), "{tag}: no {at} in:\n{said}");
        assert!(said.contains(reason), "{tag}: no {reason:?} in:\n{said}");
        let (ok, said_n) = check_only(&config);
        assert!(!ok, "{tag}: iked -n accepted it");
        assert!(
            said_n.contains(&at) && said_n.contains(reason),
            "{tag}: iked -n said:\n{said_n}"
        );
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn files_others_can_read_stop_the_start_naming_the_file_and_its_mode() {
    require_root("files_others_can_read_stop_the_start_naming_the_file_and_its_mode");
    let scratch = Scratch::new("lc-modes");
    let config = scratch.config("iked.conf", "set passive\ninclude \"sub.conf\"\n");
    let sub = scratch.config("sub.conf", "set dpd_check_interval 30\n");
    for (file, mode) in [(&config, 0o644), (&config, 0o660), (&sub, 0o604)] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).unwrap();
        let (ok, said) = start_refused(&scratch, &config);
        assert!(!ok, "started with {} mode {mode:o}", file.display());
        let expected = format!("{}: mode {mode:04o} lets group or others", file.display());
        assert!(said.contains(&expected), "no {expected:?} in:\n{said}");
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // The included file is named with where it was included from.
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (_, said) = start_refused(&scratch, &config);
    assert!(
        said.contains(&format!("{}:2:9", config.display())),
        "{said}"
    );
}

/// Whether `ip xfrm state add` in a fresh namespace installs an SA with
/// `algorithms`: what the kernel says, through iproute2 rather than iked.
fn kernel_installs(ns: &str, spi: u32, algorithms: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(["-n", ns, "xfrm", "state", "add"])
        .args(
            format!("src 192.0.2.1 dst 192.0.2.2 proto esp spi {spi} mode tunnel {algorithms}")
                .split_whitespace(),
        )
        .output()
        .expect("ip xfrm state add");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The XFRM kernel is asked, not assumed: iproute2 tells what this kernel
/// has, and iked must agree. A kernel without ESP (this machine) cannot
/// tell which algorithms would install: iked starts and warns. A kernel
/// with ESP and without AES-GCM: refused. With both: started, no warning.
#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn xfrm_algorithms_are_asked_from_the_kernel() {
    require_root("xfrm_algorithms_are_asked_from_the_kernel");
    let ns = "lc-xfrm-oracle";
    fresh_netns(ns);
    let cbc = kernel_installs(
        ns,
        0x100,
        "enc cbc(aes) 0x00112233445566778899aabbccddeeff auth-trunc hmac(sha1) \
         0x00112233445566778899aabbccddeeff00112233 96",
    );
    let gcm = kernel_installs(
        ns,
        0x101,
        "aead rfc4106(gcm(aes)) 0x00112233445566778899aabbccddeeff00112233 128",
    );
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
    let config_text = format!(
        "set passive\nikev2 \"gcm\" passive esp from 10.1.0.0/24 to 10.2.0.0/24 \
         local 198.18.0.1 peer 198.18.0.2 childsa enc aes-128-gcm {PSK}\n"
    );
    let no_esp = cbc.as_ref().err().is_some_and(|e| {
        e.contains("Protocol not supported") || e.contains("Requested type not found")
    });
    println!("kernel: cbc {cbc:?}, gcm {gcm:?}");
    let scratch = Scratch::new("lc-xfrm-n");
    let checked = scratch.config("iked.conf", &config_text);
    let (n_ok, n_said) = check_only(&checked);
    match (no_esp, &gcm) {
        (true, _) => {
            assert!(
                n_ok && n_said.contains("warning: cannot tell which ESP algorithms"),
                "iked -n said:\n{n_said}"
            );
            let mut daemon = Daemon::start("lc-xfrm-noesp", &config_text);
            daemon.expect_log(
                "cannot tell which ESP algorithms the kernel installs (the kernel has no ESP",
                Duration::from_secs(5),
            );
            daemon.stop_within(Duration::from_secs(10));
        }
        (false, Ok(())) => {
            assert!(
                n_ok && !n_said.contains("warning"),
                "iked -n said:\n{n_said}"
            );
            let mut daemon = Daemon::start("lc-xfrm-gcm", &config_text);
            let log = daemon.log_text();
            assert!(!log.contains("cannot tell which ESP"), "{log}");
            daemon.stop_within(Duration::from_secs(10));
        }
        (false, Err(_)) => {
            assert!(!n_ok, "iked -n said:\n{n_said}");
            let scratch = Scratch::new("lc-xfrm-nogcm");
            let config = scratch.config("iked.conf", &config_text);
            let (ok, said) = start_refused(&scratch, &config);
            assert!(!ok, "{said}");
            let at = location(&config, &config_text, 2, "aes-128-gcm");
            assert!(
                said.contains(&at) && said.contains("the kernel's XFRM refused an SA with it"),
                "{said}"
            );
        }
    }
}

fn our_policies(ns: &str) -> Vec<String> {
    let mut policies: Vec<String> = xfrm_listing::ours(&ip_in(ns, "xfrm policy list"))
        .into_iter()
        .filter_map(|e| e.lines().next().map(str::to_string))
        .collect();
    policies.sort();
    policies
}

/// A reload to each refused configuration fails with its location and
/// reason, and the kernel keeps exactly the trap policies of the old one;
/// a good reload then changes them (so the test sees changes).
#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn a_refused_reload_keeps_the_old_configuration_in_force() {
    require_root("a_refused_reload_keeps_the_old_configuration_in_force");
    let ns = "lc-reload";
    fresh_netns(ns);
    struct Gone(&'static str);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", self.0]).status();
        }
    }
    let _gone = Gone(ns);
    let good = format!(
        "set passive\nikev2 \"old\" active esp from 10.10.0.0/24 to 10.11.0.0/24 \
         local 198.18.0.1 peer 198.18.0.2 {PSK}\n"
    );
    let mut daemon = Daemon::start_in(Some(ns), "lc-reload", &good);
    wait_until(
        "the old policy's trap policies",
        Duration::from_secs(10),
        || our_policies(ns).iter().any(|p| p.contains("10.10.0.0/24")),
        || daemon.log_text(),
    );
    let before = our_policies(ns);
    for (tag, config_text, line, needle, reason) in refused_configs() {
        daemon.rewrite_config(&config_text);
        let out = daemon.ikectl(&["reload"]);
        let said = text(&out);
        assert!(!out.status.success(), "{tag}: reload accepted:\n{said}");
        let mut at = location(&daemon.config, &config_text, line, needle);
        if needle == " esn" {
            let (head, col) = at.rsplit_once(':').unwrap();
            at = format!("{head}:{}", col.parse::<u32>().unwrap() + 1);
        }
        assert!(
            said.contains("keeping the current configuration")
                && said.contains(&at)
                && said.contains(reason),
            "{tag}: ikectl reload said:\n{said}"
        );
        assert_eq!(
            our_policies(ns),
            before,
            "{tag}: the kernel's policies changed"
        );
    }
    // The log has every refusal at the default level.
    let log = daemon.log_text();
    assert_eq!(
        log.matches("reload failed, keeping the current configuration")
            .count(),
        refused_configs().len(),
        "{log}"
    );
    let new = good.replace("10.10.0.0/24", "10.20.0.0/24");
    daemon.rewrite_config(&new);
    daemon.ikectl_ok(&["reload"]);
    wait_until(
        "the new policy's trap policies",
        Duration::from_secs(10),
        || {
            let now = our_policies(ns);
            now.iter().any(|p| p.contains("10.20.0.0/24"))
                && !now.iter().any(|p| p.contains("10.10.0.0/24"))
        },
        || daemon.log_text(),
    );
    daemon.stop_within(Duration::from_secs(10));
}
