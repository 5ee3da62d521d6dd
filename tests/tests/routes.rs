//! The daemon's routing table (issue 17) on this machine: whatever is in
//! our table and our rule goes when iked stops, orderly or after losing
//! pfkey (then the parent flushes them itself), and at the next start; with
//! `set noroutes` iked leaves the table alone. (Routes of real Child SAs
//! need ESP: tests/tests/kernel_lab_tunnels.rs shows them in the kernel
//! lab; pfkey-proc/tests/routes_netns.rs drives the route manager here.)
//! Namespaces are prefixed `rt-`.

use std::process::Command;
use std::time::Duration;

use iked_common::routing::{DEFAULT_ROUTING_TABLE, ROUTING_RULE_PRIORITY};
use iked_tests::{fresh_netns, require_root, Daemon};

fn ip(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Puts a route in our table and our rule, as pfkey would have.
fn plant_routes(ns: &str, table: u32) {
    let table = table.to_string();
    let priority = ROUTING_RULE_PRIORITY.to_string();
    for args in [
        vec!["route", "add", "blackhole", "10.2.1.0/24", "table", &table],
        vec![
            "-6",
            "route",
            "add",
            "blackhole",
            "2001:db8:b::/64",
            "table",
            &table,
        ],
        vec!["rule", "add", "priority", &priority, "lookup", &table],
        vec!["-6", "rule", "add", "priority", &priority, "lookup", &table],
    ] {
        let status = Command::new("ip")
            .arg("-n")
            .arg(ns)
            .args(&args)
            .status()
            .unwrap();
        assert!(status.success(), "ip {}", args.join(" "));
    }
}

/// What of ours is in `ns`: routes in `table`, rules to it.
fn ours(ns: &str, table: u32) -> String {
    let mut text = String::new();
    for family in ["-4", "-6"] {
        text += &ip(ns, &[family, "route", "show", "table", &table.to_string()]);
        text += &ip(ns, &[family, "rule", "show"])
            .lines()
            .filter(|l| l.contains(&format!("lookup {table}")))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
    }
    text
}

const CONFIG: &str = "set passive\nikev2 \"t\" passive esp from 10.1.1.0/24 to 10.2.1.0/24 \
                      local 198.18.0.1 peer 198.18.0.2 psk \"k\"\n";

fn wait_for_config(daemon: &mut Daemon) {
    daemon.expect_log("pfkey applied configuration 1", Duration::from_secs(10));
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn our_routes_and_rule_go_on_stop_and_when_pfkey_is_lost() {
    require_root("our_routes_and_rule_go_on_stop_and_when_pfkey_is_lost");
    for how in ["sigterm", "lose-pfkey"] {
        let ns = format!("rt-flush-{how}");
        fresh_netns(&ns);
        let mut daemon = Daemon::start_in(Some(&ns), &format!("rt-{how}"), CONFIG);
        wait_for_config(&mut daemon);
        plant_routes(&ns, DEFAULT_ROUTING_TABLE);
        assert!(ours(&ns, DEFAULT_ROUTING_TABLE).contains("10.2.1.0/24"));
        if how == "sigterm" {
            daemon.stop_within(Duration::from_secs(5));
        } else {
            let log = daemon.lose_child("pfkey", Duration::from_secs(5));
            assert!(
                log.contains("removed 2 routes pfkey left in table 222"),
                "the parent flushed them:\n{log}"
            );
        }
        let left = ours(&ns, DEFAULT_ROUTING_TABLE);
        assert!(left.is_empty(), "{how}: left behind:\n{left}");
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn a_new_start_clears_what_an_earlier_run_left_and_noroutes_leaves_the_table_alone() {
    require_root("a_new_start_clears_what_an_earlier_run_left_and_noroutes_leaves_the_table_alone");
    let ns = "rt-restart";
    fresh_netns(ns);
    // Left by a run that died with its pfkey.
    plant_routes(ns, DEFAULT_ROUTING_TABLE);
    let mut daemon = Daemon::start_in(Some(ns), "rt-restart", CONFIG);
    wait_for_config(&mut daemon);
    let log = daemon.log_text();
    assert!(
        log.contains("removed 2 stale routes from table 222"),
        "{log}"
    );
    assert!(ours(ns, DEFAULT_ROUTING_TABLE).is_empty());
    daemon.stop_within(Duration::from_secs(5));

    // With `set noroutes` the table may be the operator's: untouched at
    // start and at stop. Another table number is honoured too.
    plant_routes(ns, DEFAULT_ROUTING_TABLE);
    let mut daemon = Daemon::start_in(Some(ns), "rt-noroutes", &format!("set noroutes\n{CONFIG}"));
    wait_for_config(&mut daemon);
    daemon.stop_within(Duration::from_secs(5));
    assert!(
        ours(ns, DEFAULT_ROUTING_TABLE).contains("10.2.1.0/24"),
        "set noroutes must leave table 222 alone"
    );
    let mut daemon = Daemon::start_in(
        Some(ns),
        "rt-table",
        &format!("set routing_table 100\n{CONFIG}"),
    );
    wait_for_config(&mut daemon);
    daemon.stop_within(Duration::from_secs(5));
    assert!(
        ours(ns, DEFAULT_ROUTING_TABLE).contains("10.2.1.0/24"),
        "table 100 is ours now, not 222"
    );
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
}

/// Issue 12 through the real processes: a policy without `local` makes
/// ikev2 ask pfkey for the source address (ikev2 opens no socket); the
/// IKE SA to strongSwan comes up from the address the kernel picks.
#[test]
#[ignore = "needs root, network namespaces and strongSwan: run by .ci/run"]
fn an_initiation_without_a_local_address_takes_its_source_from_pfkey() {
    use iked_tests::lab::{Lab, Side, Strongswan, SwanKernel, PSK_GCM};
    use iked_tests::{show_sa, wait_until};
    require_root("an_initiation_without_a_local_address_takes_its_source_from_pfkey");
    let conn = PSK_GCM;
    let lab = Lab::new("rtsrc");
    let swan = Strongswan::start(&lab, Side::B, SwanKernel::Libipsec, &[conn]);
    // Host to host (no from/to) and no local address: the IKE SA only.
    let policy = format!(
        "ikev2 \"{name}\" passive esp peer {peer} \\\n  ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 \\\n  srcid {srcid} dstid {dstid} psk \"{psk}\"\n",
        name = conn.name,
        peer = Side::B.outer_v4(),
        srcid = Side::A.id(),
        dstid = Side::B.id(),
        psk = iked_tests::lab::LAB_PSK,
    );
    let iked = Daemon::start_in(Some(&lab.a), "rtsrc", &format!("set passive\n{policy}"));
    iked.ikectl_ok(&["initiate", conn.name]);
    let context = || {
        format!(
            "--- iked ---\n{}\n--- strongSwan ---\n{}",
            iked.log_text(),
            swan.list_sas()
        )
    };
    wait_until(
        "the IKE SA established from the looked-up source",
        Duration::from_secs(30),
        || {
            show_sa(&iked)
                .iter()
                // Port 4500: strongSwan's libipsec forces NAT-T.
                .any(|sa| {
                    sa["state"] == "established"
                        && sa["local"]
                            .as_str()
                            .is_some_and(|l| l.starts_with("198.18.0.1:"))
                })
                && swan.list_sas().contains("ESTABLISHED")
        },
        context,
    );
    let log = iked.log_text();
    assert!(
        log.contains("source address 198.18.0.1 towards 198.18.0.2"),
        "{log}"
    );
}
