//! iked.conf holds the pre-shared keys: a file that group or others may
//! read or write, or that root does not own, is refused at start and on
//! reload, naming the file, and a refused reload keeps the running
//! configuration (iked(8), "Starting up").

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use iked_tests::{binary, require_root, write_config, Daemon, Scratch};
use nix::sys::signal::Signal;

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test-all.sh"]
fn a_config_others_can_read_is_refused_at_start_naming_the_file() {
    require_root("a_config_others_can_read_is_refused_at_start_naming_the_file");
    let scratch = Scratch::new("mode-start");
    let config = scratch.config("iked.conf", "set passive\n");
    for (mode, owner) in [(0o644, 0), (0o660, 0), (0o600, 65534)] {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&config, Some(owner), None).unwrap();
        let out = scratch.iked_command(&config).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("mode {mode:04o} owner {owner}: {}", stderr.trim());
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let expected = if owner == 0 {
            format!(
                "iked: {}: mode {mode:04o} lets group or others",
                config.display()
            )
        } else {
            format!("iked: {}: owned by uid {owner}, not root", config.display())
        };
        assert!(stderr.contains(&expected), "{stderr}");
        assert!(
            !scratch.file("iked.sock").exists(),
            "nothing started: no control socket"
        );
    }
    // Written by the harness (0600, root's) it starts.
    write_config(&config, "set passive\n");
    std::os::unix::fs::chown(&config, Some(0), None).unwrap();
    let out = Command::new(binary("iked"))
        .arg("-n")
        .arg("-f")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test-all.sh"]
fn a_reload_of_a_file_others_can_read_is_refused_and_the_old_config_stays() {
    require_root("a_reload_of_a_file_others_can_read_is_refused_and_the_old_config_stays");
    let mut daemon = Daemon::start("mode-reload", "set passive\n");
    daemon.rewrite_config("set active\n");
    std::fs::set_permissions(&daemon.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let expected = format!(
        "reload failed, keeping the current configuration: {}: mode 0644 lets group or others",
        daemon.config.display()
    );
    daemon.signal(Signal::SIGHUP);
    daemon.expect_log(&expected, Duration::from_secs(3));
    let reload = daemon.ikectl(&["reload"]);
    assert!(!reload.status.success());
    let stderr = String::from_utf8_lossy(&reload.stderr);
    assert!(
        stderr.contains("mode 0644 lets group or others"),
        "{stderr}"
    );
    assert!(daemon.is_running(), "a refused reload keeps the daemon");
    assert!(
        !daemon.log_text().contains("initiation mode: active"),
        "the refused file was not applied"
    );
    // Fixed, the same file loads.
    daemon.rewrite_config("set active\n");
    daemon.ikectl_ok(&["reload"]);
    daemon.expect_log("initiation mode: active", Duration::from_secs(3));
    println!("refused reload: {expected}");
}
