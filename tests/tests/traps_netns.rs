//! Issue 17 on this machine's kernel, whose XFRM holds policies (no ESP
//! needed): every loaded policy's flows have an outbound trap policy, so
//! their traffic never leaves in clear while no Child SA covers them;
//! `notrap` opts out; reload and stop remove them.

use std::process::Command;
use std::time::Duration;

use iked_tests::{fresh_netns, require_root, wait_until, Daemon};
use nix::sys::signal::Signal;

const NS: &str = "nc-traps";

fn out_policies() -> String {
    let out = Command::new("ip")
        .args(["-n", NS, "xfrm", "policy", "list", "dir", "out"])
        .output()
        .expect("ip xfrm");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The policy entry (its lines) whose first line selects `src` -> `dst`.
fn entry(listing: &str, src: &str, dst: &str) -> Option<String> {
    let head = format!("src {src} dst {dst}");
    let mut lines = listing.lines().skip_while(|l| !l.starts_with(&head));
    let first = lines.next()?;
    let rest: Vec<&str> = lines.take_while(|l| !l.starts_with("src ")).collect();
    Some(format!("{first}\n{}", rest.join("\n")))
}

fn config(passive_option: &str) -> String {
    format!(
        "set passive\n\
         ikev2 \"pass\" passive esp {passive_option} from 10.1.0.0/24 to 10.2.0.0/24 \
         local 198.18.0.1 peer 198.18.0.2 psk \"k1\"\n\
         ikev2 \"act\" active esp from 10.1.1.0/24 to 10.2.1.0/24 \
         local 198.18.0.1 peer 198.18.0.2 psk \"k2\"\n\
         ikev2 \"clear\" passive esp notrap from 10.1.2.0/24 to 10.2.2.0/24 \
         local 198.18.0.1 peer 198.18.0.3 psk \"k3\"\n"
    )
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn flows_are_trapped_while_loaded_unless_notrap_and_traps_go_on_reload_and_stop() {
    require_root("flows_are_trapped_while_loaded_unless_notrap_and_traps_go_on_reload_and_stop");
    fresh_netns(NS);
    let mut daemon = Daemon::start_in(Some(NS), "nc-traps", &config(""));
    wait_until(
        "the traps of the passive and the active policy",
        Duration::from_secs(10),
        || {
            let l = out_policies();
            entry(&l, "10.1.0.0/24", "10.2.0.0/24").is_some()
                && entry(&l, "10.1.1.0/24", "10.2.1.0/24").is_some()
        },
        || format!("{}\n{}", out_policies(), daemon.log_text()),
    );
    let listing = out_policies();
    for (src, dst) in [
        ("10.1.0.0/24", "10.2.0.0/24"),
        ("10.1.1.0/24", "10.2.1.0/24"),
    ] {
        let trap = entry(&listing, src, dst).unwrap();
        // An IPsec policy requiring ESP to the peer, not a bypass: without
        // an SA the kernel holds the packets back.
        assert!(
            trap.contains("tmpl src 198.18.0.1 dst 198.18.0.2")
                && trap.contains("proto esp")
                && trap.contains("mode tunnel")
                && !trap.contains("action block"),
            "{src} -> {dst}:\n{trap}"
        );
    }
    assert!(
        entry(&listing, "10.1.2.0/24", "10.2.2.0/24").is_none(),
        "notrap installs nothing:\n{listing}"
    );
    println!("traps after start:\n{listing}");

    // The passive policy opts out on reload: its trap goes, the other stays.
    daemon.rewrite_config(&config("notrap"));
    daemon.signal(Signal::SIGHUP);
    daemon
        .wait_for_log("configuration 2 loaded", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("reload: {e}\n{}", daemon.log_text()));
    wait_until(
        "the passive policy's trap removed by the reload",
        Duration::from_secs(10),
        || entry(&out_policies(), "10.1.0.0/24", "10.2.0.0/24").is_none(),
        || format!("{}\n{}", out_policies(), daemon.log_text()),
    );
    assert!(entry(&out_policies(), "10.1.1.0/24", "10.2.1.0/24").is_some());

    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(5)).expect("stopped");
    assert!(status.success());
    let left = out_policies();
    assert!(
        !left.contains("10.1."),
        "our traps are gone after stop:\n{left}"
    );
    let _ = Command::new("ip").args(["netns", "del", NS]).status();
}
