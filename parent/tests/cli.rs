//! The iked command line without root: checking a configuration (`-n`) and
//! the refusal to run the daemon unprivileged. Here, in the binary's own
//! package, cargo builds `iked` for the test; the tests needing root live in
//! tests/tests/.

use std::path::PathBuf;
use std::process::Command;

const IKED: &str = env!("CARGO_BIN_EXE_iked");

/// A scratch directory removed at drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("iked-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    /// Writes a configuration as iked demands it (mode 0600, ours), as
    /// iked_tests::write_config does for the tests in tests/tests/.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write config");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod config");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn check_mode_accepts_a_good_file_and_locates_errors() {
    let scratch = Scratch::new("check");
    let good = scratch.write("good.conf", "# only this\nset passive\n");
    let out = Command::new(IKED)
        .arg("-n")
        .arg("-f")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("configuration OK"));

    let bad = scratch.write("bad.conf", "set passive\n  frobnicate\n");
    let out = Command::new(IKED)
        .arg("-n")
        .arg("-f")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "iked: {}:2:3: syntax error: unknown keyword 'frobnicate'",
            bad.display()
        )
    );
}

/// `-n -v` prints the configuration back, the road-warrior keywords
/// among it and every default, and never a secret; `-n` alone prints it
/// with only the settings that differ from their defaults.
#[test]
fn check_mode_with_v_prints_the_configuration_without_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("check-print");
    // An empty store: the gateway's policy uses public keys.
    let store = scratch.0.join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    // iked -n reads the store's files but leaves their contents to ca.
    let private = store.join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(private.join("local.key"), "parsed by ca, not by iked -n\n").unwrap();
    std::fs::set_permissions(
        private.join("local.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let conf = scratch.write(
        "iked.conf",
        &(format!("set certdir \"{}\"\n", store.display())
            + "set nomobike\nuser \"alice\" \"alice-password-9f3\"\n\
         ikev2 \"rw\" from 10.1.0.0/16 to dynamic local 198.18.0.1 peer any \
         eap \"mschap-v2\" config address 10.9.0.0/24 config name-server 10.1.0.53\n\
         ikev2 \"s2s\" active local 198.18.0.1 peer 198.18.0.2 psk \"psk-secret-7c1\"\n"),
    );
    let out = Command::new(IKED)
        .args(["-n", "-v", "-f"])
        .arg(&conf)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("configuration OK"), "{stderr}");
    for expected in [
        "set nomobike\n",
        "user \"alice\" \"(not shown)\"\n",
        "\tfrom 10.1.0.0/16 to 10.9.0.0/24 \\\n",
        "\tpeer any \\\n",
        "\teap \"mschap-v2\" \\\n",
        "\tconfig address 10.9.0.0/24 \\\n",
        "\tconfig name-server 10.1.0.53\n",
        "\tpsk \"(not shown)\"\n",
        "set retransmit_tries 5\n",
        "set noenforcesingleikesa\n",
        "set couple\n",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    for secret in ["alice-password-9f3", "psk-secret-7c1"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed"
        );
    }
    let quiet = Command::new(IKED)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(quiet.status.success());
    let brief = String::from_utf8_lossy(&quiet.stdout);
    for expected in ["set nomobike\n", "ikev2 \"rw\"", "ikev2 \"s2s\""] {
        assert!(brief.contains(expected), "{expected:?} not in:\n{brief}");
    }
    for default in [
        "set retransmit_tries",
        "set couple",
        "set dpd_check_interval",
    ] {
        assert!(
            !brief.contains(default),
            "-n printed the default {default:?}:\n{brief}"
        );
    }
    assert!(!brief.contains("psk-secret-7c1"), "-n printed a secret");
}

#[test]
fn check_mode_looks_up_the_control_group() {
    let scratch = Scratch::new("check-group");
    let check = |text: &str| {
        let conf = scratch.write("iked.conf", text);
        Command::new(IKED)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .output()
            .unwrap()
    };
    let out = check("set control_group \"root\"\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check("set control_group \"no-such-group-here\"\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "iked: control_group \"no-such-group-here\": no such group"
    );
}

#[test]
fn check_mode_refuses_a_file_others_can_read_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("check-mode");
    let conf = scratch.write("iked.conf", "set passive\n");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(IKED)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: mode 0644 lets group or others read or write it",
            conf.display()
        )),
        "{stderr}"
    );
}

#[test]
fn without_root_the_daemon_refuses_in_one_line() {
    let scratch = Scratch::new("noroot");
    let conf = scratch.write("iked.conf", "set passive\n");
    let mut command = Command::new(IKED);
    command.arg("-d").arg("-f").arg(&conf);
    if nix::unistd::Uid::effective().is_root() {
        use std::os::unix::process::CommandExt;
        command.uid(65534).gid(65534);
    }
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim(), "iked: need root privileges", "{stderr}");
}

/// A policy that a later one always outmatches (the last match wins,
/// iked.conf(5)) is accepted with a warning naming both.
#[test]
fn check_mode_warns_about_a_policy_a_later_one_outmatches() {
    let scratch = Scratch::new("check-shadow");
    let conf = scratch.write(
        "iked.conf",
        "ikev2 \"specific\" local 198.18.0.1 peer 192.0.2.2 psk \"k\"\n\
         ikev2 \"general\" local 198.18.0.1 peer 192.0.2.0/24 psk \"k\"\n",
    );
    let out = Command::new(IKED)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "iked: warning: policy 'specific' is never chosen for an incoming IKE SA: \
             the later policy 'general'"
        ),
        "{stderr}"
    );
}
