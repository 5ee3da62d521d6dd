//! Road warriors through real ESP, in the kernel lab (tests/lab/
//! kernel-lab.sh; issue 14): an iked remote-access gateway (`peer any`,
//! `eap "mschap-v2"`, its certificate, `config address`) and four
//! strongSwan 5.9.8 clients with kernel XFRM, each in its own namespace:
//! two beside the gateway, two behind one nftables masquerading NAT
//! (same public address, different ports). All four are up at the same
//! time, each with its own pool address, and each pings the host behind
//! the gateway from its virtual IP at the same time as the others: every
//! ping answered, ESP (in UDP for the NATed ones) on every wire, nothing
//! in the clear but IKE; the gateway's kernel holds two ESP SAs per
//! client, the NATed clients' with their own UDP ports.
//!
//! The gateway's route to the pool (on-link on its outside bridge) is
//! added by the lab (`iked_tests::roadwarrior`), as iked installs none.
//!
//! And iked as the client of an iked gateway: the leased address on its
//! interface, a ping from it through ESP (pfkey's own route, table 222,
//! carries it with that source: no hand route on the client), the
//! address gone on terminate. And refusals (wrong password, selectors
//! outside the lease) that leave both kernels without SA or policy, where
//! a correct client then gets its two ESP SAs.
//!
//! On the build machine the test boots the VM and runs itself inside it,
//! where IKED_KERNEL_LAB is set.

#[path = "support/rw_pki.rs"]
mod rw_pki;

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use iked_tests::lab::{assert_wire_esp_and_ike_only, Capture, SwanKernel};
use iked_tests::roadwarrior::{
    context, in_prefix, wait_all_up, xfrm_states, Attachment, ClientSpec, Gateway, IkedClient,
    RwClient, RwNet, User, NAT_PUBLIC, POOL, PROTECTED_HOST,
};
use iked_tests::{in_kernel_lab, run_in_kernel_lab, wait_until};

fn modprobe() {
    iked_tests::lab::modprobe(&[
        "esp4",
        "xfrm_user",
        "xfrm4_tunnel",
        "veth",
        "bridge",
        "aes",
        "gcm",
        "sha256",
        "nf_tables",
        "nf_conntrack",
        "nf_nat",
        "nft_chain_nat",
        "nft_masq",
    ]);
}

/// What the captures keep: all but ARP and ICMPv6 (neighbour discovery).
const CAPTURE_FILTER: &[&str] = &["not", "arp", "and", "not", "icmp6"];

/// Pings answered of `count` sent, from ping's summary line.
fn received(ping_output: &str) -> u32 {
    ping_output
        .lines()
        .find_map(|l| {
            l.split(", ")
                .find_map(|p| p.strip_suffix(" received")?.parse().ok())
        })
        .unwrap_or(0)
}

/// `ip xfrm state list` cut into one text per state (each starts with an
/// unindented `src A dst B` line).
fn state_blocks(states: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    for line in states.lines() {
        if line.starts_with("src ") || blocks.is_empty() {
            blocks.push(String::new());
        }
        let block = blocks.last_mut().expect("a block");
        block.push_str(line);
        block.push('\n');
    }
    blocks
}

#[test]
#[ignore = "needs root, strongSwan and the kernel lab (qemu): run by scripts/test-all.sh"]
fn four_road_warriors_two_behind_one_nat_ping_the_protected_host_through_esp_at_once() {
    const NAME: &str =
        "four_road_warriors_two_behind_one_nat_ping_the_protected_host_through_esp_at_once";
    if !in_kernel_lab() {
        return run_in_kernel_lab(NAME, 500);
    }
    modprobe();
    let tag = "rw14-k";
    let net = RwNet::new(tag, 2, 2);
    let pki = rw_pki::rw_pki();
    let users: Vec<User> = (0..4).map(User::lab).collect();
    let gateway = Gateway::start(&net, tag, &pki.gateway, &users, POOL, "");
    let clients: Vec<RwClient> = net
        .clients
        .iter()
        .zip(&users)
        .map(|(ns, user)| {
            RwClient::start(
                ns,
                ClientSpec::new(user.clone(), SwanKernel::Netlink),
                &pki.client_trust,
            )
        })
        .collect();
    let all: Vec<&RwClient> = clients.iter().collect();
    // One at a time: the emulated machine is slow, and each gets the
    // full initiate timeout.
    for client in &clients {
        let (ok, out) = client.initiate();
        assert!(
            ok,
            "{}: swanctl --initiate:\n{out}\n{}",
            client.ns.ns,
            context(&gateway, &all)
        );
    }
    wait_all_up(&gateway, &all, Duration::from_secs(60));
    wait_until(
        "every client's Child SA installed on the gateway",
        Duration::from_secs(60),
        || {
            clients.iter().all(|c| {
                gateway.sa_of(&c.spec.user.name).is_some_and(|sa| {
                    sa["children"]
                        .as_array()
                        .is_some_and(|ch| ch.iter().any(|c| c["installed"] == true))
                })
            })
        },
        || context(&gateway, &all),
    );
    println!("ikectl show sa:\n{}", gateway.show_sa_text());

    let vips: Vec<IpAddr> = clients
        .iter()
        .map(|c| c.virtual_ip().expect("virtual IP"))
        .collect();
    let distinct: HashSet<&IpAddr> = vips.iter().collect();
    assert_eq!(distinct.len(), clients.len(), "{vips:?}");
    assert!(vips.iter().all(|v| in_prefix(*v, POOL)), "{vips:?}");
    for (client, vip) in clients.iter().zip(&vips) {
        println!(
            "{} ({:?}, {}): {vip}",
            client.ns.ns, client.ns.attachment, client.spec.user.name
        );
    }

    // The gateway's kernel: two ESP SAs per client; the two behind the NAT
    // encapsulated in UDP toward NAT_PUBLIC on two different ports.
    let states = xfrm_states(&net.gw);
    assert_eq!(
        states.matches("proto esp").count(),
        2 * clients.len(),
        "ESP SAs on the gateway:\n{states}"
    );
    let nat_ports: HashSet<String> = state_blocks(&states)
        .into_iter()
        .filter(|b| b.starts_with(&format!("src 198.18.1.1 dst {NAT_PUBLIC}")))
        .filter_map(|b| {
            let words: Vec<&str> = b.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "dport")?;
            words.get(at + 1).map(|p| p.to_string())
        })
        .collect();
    println!("outbound SAs toward {NAT_PUBLIC} use ports {nat_ports:?}");
    assert_eq!(nat_ports.len(), 2, "{states}");

    // Everyone pings at once, captures on every outside wire.
    let mut captures = vec![(
        "the gateway".to_string(),
        Capture::start_on(&net.gw, "wan", CAPTURE_FILTER),
    )];
    for client in clients
        .iter()
        .filter(|c| c.ns.attachment == Attachment::Direct)
    {
        captures.push((
            client.ns.ns.clone(),
            Capture::start_on(&client.ns.ns, "eth0", CAPTURE_FILTER),
        ));
    }
    let nat = net.nat.as_deref().expect("the NAT");
    captures.push((
        "the NAT".to_string(),
        Capture::start_on(nat, "wan0", CAPTURE_FILTER),
    ));
    let outputs: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter()
            .zip(&vips)
            .map(|(client, vip)| {
                let vip = vip.to_string();
                scope.spawn(move || {
                    let out = RwNet::exec(
                        &client.ns.ns,
                        &[
                            "ping",
                            "-c",
                            "5",
                            "-i",
                            "0.2",
                            "-W",
                            "2",
                            "-I",
                            &vip,
                            PROTECTED_HOST,
                        ],
                    );
                    String::from_utf8_lossy(&out.stdout).into_owned()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ping"))
            .collect()
    });
    for (client, text) in clients.iter().zip(&outputs) {
        println!(
            "{}: {}",
            client.ns.ns,
            text.trim().lines().last().unwrap_or("")
        );
        assert_eq!(
            received(text),
            5,
            "{}: pings from its virtual IP:\n{text}\n{}",
            client.ns.ns,
            context(&gateway, &all)
        );
    }
    for (who, capture) in captures {
        let wire = capture.stop();
        // The gateway answers all four clients; each direct client and the
        // NAT (for its two) send their own.
        let at_least = match who.as_str() {
            "the gateway" => 20,
            "the NAT" => 10,
            _ => 5,
        };
        assert_wire_esp_and_ike_only(&who, &wire, at_least, "the pings");
    }
    // Each client's Child SA on the gateway counted its pings.
    for client in &clients {
        let sa = gateway.sa_of(&client.spec.user.name).unwrap();
        let counted = sa["children"].as_array().is_some_and(|ch| {
            ch.iter().any(|c| {
                c["bytes_in"].as_u64().is_some_and(|n| n > 0)
                    && c["bytes_out"].as_u64().is_some_and(|n| n > 0)
            })
        });
        assert!(counted, "{}'s Child SA counts no bytes: {sa}", client.ns.ns);
    }
}

/// iked as the client of an iked gateway, with ESP: the address the
/// gateway leases it goes on its interface, the Child SA (our selector
/// that address) into both kernels, and a ping from it to the host behind
/// the gateway crosses as ESP; `ikectl terminate` takes the address off.
#[test]
#[ignore = "needs root and the kernel lab (qemu): run by scripts/test-all.sh"]
fn iked_client_of_an_iked_gateway_pings_from_its_leased_address_through_esp() {
    const NAME: &str = "iked_client_of_an_iked_gateway_pings_from_its_leased_address_through_esp";
    if !in_kernel_lab() {
        return run_in_kernel_lab(NAME, 400);
    }
    modprobe();
    let tag = "rw14-kv";
    let net = RwNet::new(tag, 1, 0);
    let pki = rw_pki::rw_pki();
    let user = User::lab(0);
    let gateway = Gateway::start(
        &net,
        &format!("{tag}-gw"),
        &pki.gateway,
        std::slice::from_ref(&user),
        POOL,
        "",
    );
    let client = IkedClient::start(tag, &net.clients[0], &pki.client_trust, &user);
    let gateway_context = || {
        format!(
            "--- gateway iked log (tail) ---\n{}\n--- gateway show sa ---\n{}",
            iked_tests::certlab::tail(&gateway.iked.log_text(), 150),
            gateway.show_sa_text()
        )
    };
    let vip = client.connect(&gateway_context);
    let installed = |sa: Option<serde_json::Value>| {
        sa.is_some_and(|sa| {
            sa["children"]
                .as_array()
                .is_some_and(|ch| ch.iter().any(|c| c["installed"] == true))
        })
    };
    wait_until(
        "the Child SA installed on both sides",
        Duration::from_secs(60),
        || installed(client.sa()) && installed(gateway.sa_of(&user.name)),
        || format!("{}\n{}", client.context(), gateway_context()),
    );
    let ns = &net.clients[0].ns;
    println!(
        "client routes:\n{}",
        String::from_utf8_lossy(&RwNet::exec(ns, &["ip", "route", "show", "table", "all"]).stdout)
    );
    let capture = Capture::start_on(ns, "eth0", CAPTURE_FILTER);
    let vip_text = vip.to_string();
    let out = RwNet::exec(
        ns,
        &[
            "ping",
            "-c",
            "5",
            "-i",
            "0.2",
            "-W",
            "2",
            "-I",
            &vip_text,
            PROTECTED_HOST,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{}", text.trim());
    assert_eq!(
        received(&text),
        5,
        "pings from {vip}:\n{text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        client.context()
    );
    assert_wire_esp_and_ike_only("the iked client", &capture.stop(), 5, "5 pings");
    client.terminate(vip, &gateway_context);
}

/// In a kernel that can hold ESP SAs, refused road warriors install
/// nothing: a wrong EAP password (no IKE SA), and selectors inside the
/// pool but outside the lease (the IKE SA stands, its Child SA refused
/// with TS_UNACCEPTABLE); neither kernel holds an SA or a policy for
/// them. Then a correct client of the same gateway gets its two ESP SAs,
/// so the emptiness is the refusals' doing.
#[test]
#[ignore = "needs root, strongSwan and the kernel lab (qemu): run by scripts/test-all.sh"]
fn refused_road_warriors_install_nothing_in_a_kernel_with_esp() {
    const NAME: &str = "refused_road_warriors_install_nothing_in_a_kernel_with_esp";
    if !in_kernel_lab() {
        return run_in_kernel_lab(NAME, 400);
    }
    modprobe();
    let tag = "rw14-kr";
    let net = RwNet::new(tag, 3, 0);
    let pki = rw_pki::rw_pki();
    let users: Vec<User> = (0..3).map(User::lab).collect();
    let gateway = Gateway::start(&net, tag, &pki.gateway, &users, POOL, "");
    let wrong_password = ClientSpec::new(
        User {
            password: "not-the-password".to_string(),
            ..User::lab(0)
        },
        SwanKernel::Netlink,
    );
    let outside_lease = ClientSpec {
        local_ts: Some("198.19.200.250/32".to_string()),
        ..ClientSpec::new(User::lab(1), SwanKernel::Netlink)
    };
    let control = ClientSpec::new(User::lab(2), SwanKernel::Netlink);
    let clients: Vec<RwClient> = net
        .clients
        .iter()
        .zip([wrong_password, outside_lease, control])
        .map(|(ns, spec)| RwClient::start(ns, spec, &pki.client_trust))
        .collect();
    let all: Vec<&RwClient> = clients.iter().collect();
    for (client, reason) in clients[..2]
        .iter()
        .zip(["wrong password", "outside its lease"])
    {
        let (ok, out) = client.initiate();
        assert!(!ok, "{} must be refused:\n{out}", client.ns.ns);
        wait_until(
            "iked's reason",
            Duration::from_secs(30),
            || gateway.iked.log_text().contains(reason),
            || context(&gateway, &all),
        );
        let log = gateway.iked.log_text();
        println!(
            "{}: iked: {}",
            client.ns.ns,
            log.lines()
                .find(|l| l.contains(reason))
                .unwrap_or("")
                .trim()
        );
        for ns in [net.gw.as_str(), client.ns.ns.as_str()] {
            let states = xfrm_states(ns);
            assert!(states.trim().is_empty(), "SAs in {ns}:\n{states}");
            let policies = iked_tests::roadwarrior::xfrm_policies(ns);
            assert!(
                !policies.contains("198.19.200."),
                "a policy for a pool address in {ns}:\n{policies}"
            );
        }
        println!(
            "{}: no SA and no pool policy in either kernel",
            client.ns.ns
        );
    }
    let control = &clients[2];
    let (ok, out) = control.initiate();
    assert!(ok, "{out}\n{}", context(&gateway, &all));
    wait_until(
        "the control client's two ESP SAs on the gateway",
        Duration::from_secs(60),
        || xfrm_states(&net.gw).matches("proto esp").count() == 2,
        || context(&gateway, &all),
    );
    println!(
        "the control client {} got {:?}: 2 ESP SAs in the gateway's kernel",
        control.spec.user.name,
        control.virtual_ip()
    );
}
