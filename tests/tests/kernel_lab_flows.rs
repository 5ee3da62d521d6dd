//! `ikectl show flows`, `decouple` and `couple` with real ESP SAs, in the
//! kernel lab (Debian's stock kernel under qemu, tests/lab/kernel-lab.sh):
//! what show flows lists is what `ip xfrm` shows of ours; decouple takes
//! the policies out while the SAs stay; couple puts them back and traffic
//! goes through ESP again.
//!
//! On the build machine the test boots the VM and runs itself inside it,
//! where IKED_KERNEL_LAB is set.

use std::time::Duration;

use iked_tests::lab::{Lab, Side, PSK_GCM};
use iked_tests::{in_kernel_lab, run_in_kernel_lab, show_sa, wait_until, xfrm_listing, Daemon};
use serde_json::Value;

fn modprobe() {
    iked_tests::lab::modprobe(&[
        "esp4",
        "esp6",
        "xfrm_user",
        "xfrm4_tunnel",
        "veth",
        "aes",
        "gcm",
        "chacha20poly1305",
        "sha256",
    ]);
}

/// The installed Child SAs of `daemon`.
fn installed_children(daemon: &Daemon) -> Vec<Value> {
    show_sa(daemon)
        .into_iter()
        .filter(|sa| sa["state"] == "established")
        .flat_map(|sa| sa["children"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["installed"] == true)
        .collect()
}

fn flows(daemon: &Daemon) -> Value {
    let out = daemon.ikectl(&["--json", "show", "flows"]);
    let value: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("show flows: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(value["version"], 1, "{value}");
    assert_eq!(value["ok"], true, "{value}");
    value["flows"].clone()
}

/// Pings B's inner address from A's; how many answers came.
fn ping(lab: &Lab) -> u32 {
    let src = format!("10.{}.{}.1", Side::A.inner_net(), PSK_GCM.inner);
    let dst = format!("10.{}.{}.1", Side::B.inner_net(), PSK_GCM.inner);
    let out = lab.exec(
        Side::A,
        &["ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", &src, &dst],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.split(", ")
                .find_map(|p| p.strip_suffix(" received")?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
#[ignore = "needs root and the kernel lab (qemu): run by .ci/run"]
fn show_flows_lists_our_esp_sas_and_decouple_couple_move_the_policies() {
    if !in_kernel_lab() {
        return run_in_kernel_lab(
            "show_flows_lists_our_esp_sas_and_decouple_couple_move_the_policies",
            400,
        );
    }
    modprobe();
    let conn = PSK_GCM;
    let lab = Lab::with_hand_routes("f", &[]);
    let a = Daemon::start_in(
        Some(&lab.a),
        "flows-a",
        &format!("set passive\n{}", conn.iked_policy(Side::A, false)),
    );
    let b = Daemon::start_in(
        Some(&lab.b),
        "flows-b",
        &format!("set passive\n{}", conn.iked_policy(Side::B, false)),
    );
    a.ikectl_ok(&["initiate", conn.name]);
    let context = || format!("--- A ---\n{}\n--- B ---\n{}", a.log_text(), b.log_text());
    wait_until(
        "installed Child SAs on both iked",
        Duration::from_secs(60),
        || !installed_children(&a).is_empty() && !installed_children(&b).is_empty(),
        context,
    );
    let child = installed_children(&a)[0].clone();
    let info = flows(&a);
    assert_eq!(info["kernel"], "xfrm");
    assert_eq!(info["coupled"], true);
    // Both ESP SAs of the Child SA, under its policy.
    let sas = info["sas"].as_array().unwrap();
    for spi in [&child["spi_in"], &child["spi_out"]] {
        assert!(
            sas.iter().any(|sa| &sa["spi"] == spi
                && sa["policy"] == conn.name
                && sa["protocol"] == "esp"),
            "SA {spi} not in show flows: {info:#}"
        );
    }
    // Policies out, in and fwd for the tunnel's selectors, tunnel mode.
    let selector = format!(
        "10.{}.{}.0/24 -> 10.{}.{}.0/24",
        Side::A.inner_net(),
        conn.inner,
        Side::B.inner_net(),
        conn.inner
    );
    let policies = info["policies"].as_array().unwrap();
    assert!(
        policies.iter().any(|p| p["selector"] == selector.as_str()
            && p["direction"] == "out"
            && p["mode"] == "tunnel"
            && p["in_kernel"] == true),
        "no out policy {selector}: {info:#}"
    );
    assert!(
        policies.iter().any(|p| p["direction"] == "in")
            && policies.iter().any(|p| p["direction"] == "fwd"),
        "{info:#}"
    );
    // What ip xfrm shows of ours is what show flows lists.
    let states = xfrm_listing::ours(&String::from_utf8_lossy(
        &lab.exec(Side::A, &["ip", "xfrm", "state", "list"]).stdout,
    ));
    assert_eq!(
        states.len() as u64,
        info["sas_total"].as_u64().unwrap(),
        "{states:#?}\n{info:#}"
    );
    for sa in sas {
        let spi = format!("spi 0x{}", sa["spi"].as_str().unwrap());
        assert!(
            states.iter().any(|s| s.contains(&spi)),
            "{spi} not in ip xfrm state: {states:#?}"
        );
    }
    let our_policies = || {
        xfrm_listing::ours(&String::from_utf8_lossy(
            &lab.exec(Side::A, &["ip", "xfrm", "policy", "list"]).stdout,
        ))
    };
    assert_eq!(
        our_policies().len() as u64,
        info["policies_total"].as_u64().unwrap()
    );
    assert_eq!(ping(&lab), 3, "ping through the tunnel\n{}", context());

    // decouple: no policy of ours in the kernel, the SAs stay.
    let out = a.ikectl_ok(&["decouple"]);
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    assert!(our_policies().is_empty(), "{:#?}", our_policies());
    let held = flows(&a);
    assert_eq!(held["coupled"], false);
    assert_eq!(held["policies_total"], info["policies_total"]);
    assert!(held["policies"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["in_kernel"] == false));
    assert_eq!(held["sas_total"], info["sas_total"], "the SAs stay");
    assert!(!installed_children(&a).is_empty());

    // couple: back, and the tunnel carries traffic again.
    let out = a.ikectl_ok(&["couple"]);
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(
        our_policies().len() as u64,
        info["policies_total"].as_u64().unwrap()
    );
    assert_eq!(flows(&a)["coupled"], true);
    assert_eq!(ping(&lab), 3, "ping after couple\n{}", context());
}
