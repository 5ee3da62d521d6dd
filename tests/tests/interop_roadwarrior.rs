//! strongSwan 5.9.8 road warriors against an iked remote-access gateway
//! on this machine's kernel (issue 14), in the namespaces of
//! `iked_tests::roadwarrior`: each client is a charon of its own in its
//! own namespace, some beside the gateway, some behind one masquerading
//! NAT (nftables); iked has a passive `peer any` policy with `eap
//! "mschap-v2"`, its ECDSA certificate, `config address` and `config
//! name-server`, and `user` lines.
//!
//! What is shown: every client up at once, each with a distinct address
//! of the pool (strongSwan's `swanctl --list-sas` and iked's `ikectl show
//! sa`, which lists each client with its address and EAP identity); the
//! two clients behind the NAT as two IKE SAs from one address, two ports;
//! the gateway's certificate AUTH and the EAP-MSCHAPv2 MSK AUTH checked by
//! strongSwan; and the refusals, each with its reason in iked's log and
//! nothing installed: wrong password, unknown user, an address asked for
//! outside the pool, selectors claimed outside the lease, an empty pool;
//! and a client behind the NAT that crashes and reconnects: its old IKE
//! SA replaced (INITIAL_CONTACT of that identity only, not its
//! neighbour's behind the same address), its address the same again.
//!
//! strongSwan runs with kernel-libipsec (userspace ESP, UDP-encapsulated),
//! as in interop_strongswan.rs; iked's Child SA install fails here (no ESP
//! in this kernel), which it says. Traffic through real ESP from each
//! client's virtual IP is proven in the kernel lab
//! (kernel_lab_roadwarrior.rs).

#[path = "support/rw_pki.rs"]
mod rw_pki;

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use iked_tests::lab::SwanKernel;
use iked_tests::roadwarrior::{
    context, in_prefix, wait_all_up, xfrm_policies, Attachment, ClientSpec, Gateway, RwClient,
    RwNet, User, GW_ID, NAT_PUBLIC, POOL, PROTECTED_NET,
};
use iked_tests::wait_until;
use serde_json::Value;

/// Starts one strongSwan client per `specs` entry on `net`'s clients, in
/// order.
fn start_clients(net: &RwNet, specs: Vec<ClientSpec>, trust: &rw_pki::RwPki) -> Vec<RwClient> {
    net.clients
        .iter()
        .zip(specs)
        .map(|(ns, spec)| RwClient::start(ns, spec, &trust.client_trust))
        .collect()
}

/// Every client initiates at once (one thread each); what each swanctl
/// said.
fn initiate_all(clients: &[&RwClient]) -> Vec<(bool, String)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter()
            .map(|c| scope.spawn(move || c.initiate()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("initiate"))
            .collect()
    })
}

/// The first line of `log` holding every one of `needles`
/// (case-insensitive).
fn line_with<'a>(log: &'a str, needles: &[&str]) -> Option<&'a str> {
    log.lines().find(|l| {
        let lower = l.to_lowercase();
        needles.iter().all(|n| lower.contains(&n.to_lowercase()))
    })
}

fn leased(sa: &Value) -> Vec<IpAddr> {
    sa["virtual_ips"]
        .as_array()
        .map(|v| v.iter().filter_map(|a| a.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Whether `policies` (`ip xfrm policy list`) name `address` as a
/// template's or selector's destination.
fn names_destination(policies: &str, address: &str) -> bool {
    let words: Vec<&str> = policies.split_whitespace().collect();
    words
        .windows(2)
        .any(|w| w[0] == "dst" && w[1].split('/').next() == Some(address))
}

/// The gateway's IKE SAs (any state) with the peer at `address`.
fn sas_from(gateway: &Gateway, address: &str) -> Vec<Value> {
    gateway
        .sas()
        .into_iter()
        .filter(|sa| {
            sa["peer"]
                .as_str()
                .and_then(|peer| peer.parse::<std::net::SocketAddr>().ok())
                .is_some_and(|peer| peer.ip().to_string() == address)
        })
        .collect()
}

/// Asserts that `client` got no Child SA: none installed in its
/// strongSwan, none on the gateway's SAs of its user, no XFRM policy on
/// the gateway toward its address; unless `lease_kept` (the IKE SA
/// stands, only its Child SA was refused), also no virtual IP and no
/// lease.
fn assert_nothing_installed_for(
    gateway: &Gateway,
    net: &RwNet,
    client: &RwClient,
    lease_kept: bool,
) {
    let ctx = || context(gateway, &[client]);
    if !lease_kept {
        assert_eq!(client.virtual_ip(), None, "{}", ctx());
    }
    assert!(!client.swan.list_sas().contains("INSTALLED"), "{}", ctx());
    let user = &client.spec.user.name;
    for sa in gateway.sas() {
        if sa["eap_identity"] == user.as_str() {
            if !lease_kept {
                assert!(
                    leased(&sa).is_empty(),
                    "a lease for {user}: {sa}\n{}",
                    ctx()
                );
            }
            let children = sa["children"].as_array().cloned().unwrap_or_default();
            assert!(
                children.is_empty(),
                "a Child SA for {user}: {sa}\n{}",
                ctx()
            );
        }
    }
    let policies = xfrm_policies(&net.gw);
    assert!(
        !names_destination(&policies, client.ns.public_address()),
        "an XFRM policy toward {}:\n{policies}",
        client.ns.ns
    );
    println!("{}: nothing installed", client.ns.ns);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn strongswan_road_warriors_beside_and_behind_a_nat_get_distinct_pool_addresses_over_eap() {
    iked_tests::require_root("road warriors");
    let tag = "rw14-h";
    let net = RwNet::new(tag, 3, 2);
    let pki = rw_pki::rw_pki();
    let users: Vec<User> = (0..5).map(User::lab).collect();
    let mut gateway = Gateway::start(&net, tag, &pki.gateway, &users, POOL, "");
    let specs = users
        .iter()
        .map(|u| ClientSpec::new(u.clone(), SwanKernel::Libipsec))
        .collect();
    let clients = start_clients(&net, specs, &pki);
    let all: Vec<&RwClient> = clients.iter().collect();

    let results = initiate_all(&all);
    for (client, (ok, out)) in clients.iter().zip(&results) {
        assert!(
            *ok,
            "{}: swanctl --initiate failed:\n{out}\n{}",
            client.ns.ns,
            context(&gateway, &all)
        );
    }
    wait_all_up(&gateway, &all, Duration::from_secs(30));

    println!("ikectl show sa:\n{}", gateway.show_sa_text());
    let mut seen = HashSet::new();
    let mut nat_ports = HashSet::new();
    for client in &clients {
        let user = &client.spec.user.name;
        let vip = client.virtual_ip().expect("virtual IP");
        println!(
            "{} ({:?}, {user}): virtual IP {vip}",
            client.ns.ns, client.ns.attachment
        );
        assert!(in_prefix(vip, POOL), "{vip} outside {POOL}");
        assert!(seen.insert(vip), "{vip} handed out twice");
        // iked's view: the client's IKE SA, its EAP identity and lease,
        // its outer address (the NAT's for those behind it).
        let sa = gateway.sa_of(user).expect("the gateway's SA of the user");
        assert_eq!(leased(&sa), vec![vip], "{sa}");
        let peer: std::net::SocketAddr = sa["peer"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("peer of {sa}"));
        assert_eq!(peer.ip().to_string(), client.ns.public_address(), "{sa}");
        assert_eq!(sa["nat_t"], true, "{sa}");
        // Both announced MOBIKE_SUPPORTED (strongSwan's default, and
        // iked's `set mobike`), RFC 4555 §3.1.
        assert_eq!(sa["mobike"], true, "{sa}");
        if client.ns.attachment == Attachment::BehindNat {
            assert!(nat_ports.insert(peer.port()), "two clients on {peer}");
        }
        // The Child SA: our side the protected network, theirs narrowed to
        // the lease (RFC 7296 §2.9).
        let child = &sa["children"][0];
        assert_eq!(child["local_ts"][0], PROTECTED_NET, "{sa}");
        let remote_ts = child["remote_ts"][0].as_str().unwrap_or_default();
        assert!(
            remote_ts == vip.to_string() || remote_ts == format!("{vip}/32"),
            "their selector is not the lease {vip}: {sa}"
        );
        // strongSwan's view: the gateway's certificate AUTH, EAP, the
        // MSK AUTH, and its Child SA with the virtual IP as selector.
        let log = client.swan.log_text();
        for needle in [
            format!("authentication of '{GW_ID}' with ECDSA"),
            "EAP method EAP_MSCHAPV2 succeeded, MSK established".to_string(),
            "installing new virtual IP".to_string(),
        ] {
            assert!(
                log.contains(&needle),
                "{}: no {needle:?} in charon's log\n{}",
                client.ns.ns,
                client.context()
            );
        }
        let listing = client.swan.list_sas();
        assert!(listing.contains("INSTALLED"), "{listing}");
        assert!(listing.contains(&format!("local  {vip}/32")), "{listing}");
        assert!(
            listing.contains(&format!("remote {PROTECTED_NET}")),
            "{listing}"
        );
    }
    assert_eq!(nat_ports.len(), 2, "two clients behind the NAT");
    println!(
        "{} clients, {} distinct addresses from {POOL}; behind {NAT_PUBLIC}: ports {nat_ports:?}",
        clients.len(),
        seen.len()
    );
    let text = gateway.show_sa_text();
    for client in &clients {
        let vip = client.virtual_ip().unwrap().to_string();
        assert!(
            text.contains(&format!("virtual ip {vip}\n"))
                && text.contains(&format!("eap identity {}\n", client.spec.user.name)),
            "ikectl show sa lacks {} / {vip}:\n{text}",
            client.spec.user.name
        );
    }
    if let Err(e) = gateway
        .iked
        .wait_for_log("cannot install Child SA", Duration::from_secs(5))
    {
        panic!("{e}\n{}", context(&gateway, &all));
    }

    // A client that goes hands its address back: the gateway forgets
    // its SA, the others keep theirs.
    let leaving = &clients[0];
    let out = leaving
        .swan
        .swanctl(&["--terminate", "--ike", "rw", "--timeout", "15"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    wait_until(
        "the gateway to forget the leaving client",
        Duration::from_secs(15),
        || gateway.sa_of(&leaving.spec.user.name).is_none(),
        || context(&gateway, &all),
    );
    assert_eq!(gateway.sas().len(), clients.len() - 1);
}

/// Each refused client gets nothing, with the reason in iked's log; a
/// correct client of the same gateway, last, gets its address.
#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn wrong_password_unknown_user_address_outside_the_pool_and_selectors_outside_the_lease_are_refused(
) {
    iked_tests::require_root("road-warrior refusals");
    let tag = "rw14-r";
    let net = RwNet::new(tag, 5, 0);
    let pki = rw_pki::rw_pki();
    let users: Vec<User> = (0..5).map(User::lab).collect();
    let gateway = Gateway::start(&net, tag, &pki.gateway, &users, POOL, "");
    let wrong_password = ClientSpec::new(
        User {
            password: "not-the-password".to_string(),
            ..User::lab(0)
        },
        SwanKernel::Libipsec,
    );
    let unknown_user = ClientSpec::new(
        User {
            name: "nobody".to_string(),
            password: "whatever-it-is".to_string(),
        },
        SwanKernel::Libipsec,
    );
    let outside_pool = ClientSpec {
        vips: "198.19.99.5".to_string(),
        ..ClientSpec::new(User::lab(2), SwanKernel::Libipsec)
    };
    let outside_lease = ClientSpec {
        // Inside the pool, but not the address it will be leased.
        local_ts: Some("198.19.200.250/32".to_string()),
        ..ClientSpec::new(User::lab(3), SwanKernel::Libipsec)
    };
    let control = ClientSpec::new(User::lab(4), SwanKernel::Libipsec);
    let clients = start_clients(
        &net,
        vec![
            wrong_password,
            unknown_user,
            outside_pool,
            outside_lease,
            control,
        ],
        &pki,
    );

    // What iked's log must say for each (all words, any case); what
    // strongSwan must have been told (one of), and whether the IKE SA
    // (and its lease) may stand. A failed MSCHAPv2 ends with the
    // method's Failure packet, on which strongSwan gives up itself
    // (RFC 2759 §6; it sends AUTHENTICATION_FAILED, not iked).
    let eap_failed: &[&str] = &[
        "EAP-MS-CHAPv2 failed with error ERROR_AUTHENTICATION_FAILURE",
        "AUTHENTICATION_FAILED",
        "received EAP_FAILURE",
    ];
    let cases: [(&RwClient, &[&str], &[&str], bool); 4] = [
        (&clients[0], &["user0", "wrong password"], eap_failed, false),
        (&clients[1], &["nobody"], eap_failed, false),
        (
            &clients[2],
            &["198.19.99.5", "pool"],
            &["INTERNAL_ADDRESS_FAILURE"],
            false,
        ),
        (
            &clients[3],
            &["198.19.200.250", "outside its lease"],
            &["TS_UNACCEPTABLE"],
            true,
        ),
    ];
    for (client, reason, notify, lease_kept) in cases {
        let (ok, out) = client.initiate();
        let gave_up = std::time::Instant::now();
        assert!(
            !ok,
            "{} must be refused:\n{out}\n{}",
            client.ns.ns,
            context(&gateway, &[client])
        );
        if notify == eap_failed {
            // strongSwan gives up during EAP with AUTHENTICATION_FAILED in
            // an INFORMATIONAL (RFC 7296 §2.21.2): iked's half-open SA and
            // ca's session end then, not at the half-open timeout.
            wait_until(
                "the gateway holds no SA for the client",
                Duration::from_secs(5),
                || sas_from(&gateway, client.ns.public_address()).is_empty(),
                || context(&gateway, &[client]),
            );
            let log = gateway.iked.log_text();
            let ended = line_with(
                &log,
                &[
                    client.ns.public_address(),
                    "gave up during EAP",
                    "AUTHENTICATION_FAILED",
                ],
            );
            println!(
                "{}: no SA on the gateway {:?} after swanctl --initiate returned; iked: {}",
                client.ns.ns,
                gave_up.elapsed(),
                ended.unwrap_or("(no line)").trim()
            );
            assert!(
                ended.is_some(),
                "iked does not say the client gave up\n{}",
                context(&gateway, &[client])
            );
        }
        wait_until(
            "iked's reason",
            Duration::from_secs(15),
            || line_with(&gateway.iked.log_text(), reason).is_some(),
            || context(&gateway, &[client]),
        );
        let log = gateway.iked.log_text();
        println!(
            "{} ({}): iked: {}",
            client.ns.ns,
            client.spec.user.name,
            line_with(&log, reason).unwrap().trim()
        );
        let swan_log = client.swan.log_text();
        let told = notify.iter().find(|n| swan_log.contains(**n));
        println!("{}: strongSwan: {told:?}", client.ns.ns);
        assert!(
            told.is_some(),
            "{}: strongSwan was told none of {notify:?}\n{}",
            client.ns.ns,
            context(&gateway, &[client])
        );
        assert_nothing_installed_for(&gateway, &net, client, lease_kept);
    }

    let control = &clients[4];
    let (ok, out) = control.initiate();
    assert!(ok, "{out}\n{}", context(&gateway, &[control]));
    wait_all_up(&gateway, &[control], Duration::from_secs(20));
    let vip = control.virtual_ip().unwrap();
    assert!(in_prefix(vip, POOL), "{vip}");
    println!(
        "the control client {} got {vip}; ikectl show sa:\n{}",
        control.spec.user.name,
        gateway.show_sa_text()
    );
    assert!(
        gateway.sa_of(&control.spec.user.name).is_some(),
        "{}",
        gateway.show_sa_text()
    );
}

/// A pool of two addresses (/30: network and broadcast are not leased):
/// the third client is refused with INTERNAL_ADDRESS_FAILURE, the reason
/// logged, and nothing installed; the first two keep theirs.
#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn an_empty_pool_refuses_the_next_client() {
    iked_tests::require_root("road-warrior pool exhaustion");
    let tag = "rw14-p";
    let pool = "198.19.200.0/30";
    let net = RwNet::new(tag, 3, 0);
    let pki = rw_pki::rw_pki();
    let users: Vec<User> = (0..3).map(User::lab).collect();
    let gateway = Gateway::start(&net, tag, &pki.gateway, &users, pool, "");
    let specs = users
        .iter()
        .map(|u| ClientSpec::new(u.clone(), SwanKernel::Libipsec))
        .collect();
    let clients = start_clients(&net, specs, &pki);
    let first_two: Vec<&RwClient> = clients[..2].iter().collect();
    for (client, (ok, out)) in first_two.iter().zip(initiate_all(&first_two)) {
        assert!(
            ok,
            "{}:\n{out}\n{}",
            client.ns.ns,
            context(&gateway, &first_two)
        );
    }
    wait_all_up(&gateway, &first_two, Duration::from_secs(30));
    let vips: HashSet<IpAddr> = first_two.iter().filter_map(|c| c.virtual_ip()).collect();
    assert_eq!(
        vips,
        ["198.19.200.1", "198.19.200.2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect()
    );

    let third = &clients[2];
    let (ok, out) = third.initiate();
    assert!(!ok, "{out}\n{}", context(&gateway, &[third]));
    let reason: &[&str] = &["user2", "pool"];
    wait_until(
        "iked's reason",
        Duration::from_secs(15),
        || line_with(&gateway.iked.log_text(), reason).is_some(),
        || context(&gateway, &[third]),
    );
    println!(
        "iked: {}",
        line_with(&gateway.iked.log_text(), reason).unwrap().trim()
    );
    assert!(
        third.swan.log_text().contains("INTERNAL_ADDRESS_FAILURE"),
        "{}",
        third.context()
    );
    assert_nothing_installed_for(&gateway, &net, third, false);
    for client in &first_two {
        assert!(gateway.sa_of(&client.spec.user.name).is_some());
    }
}

/// A road warrior behind the NAT crashes (its charon killed, no Delete
/// sent) and comes back while the gateway still holds its old IKE SA:
/// the new IKE SA's INITIAL_CONTACT (RFC 7296 §2.4) replaces the old one
/// of the same identity only, not the other client's behind the same
/// public address, and the lease, held by the user throughout, gives it
/// the same address again.
#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn a_client_behind_the_nat_that_crashes_and_reconnects_gets_its_address_back_and_its_neighbour_keeps_its_sa(
) {
    iked_tests::require_root("road-warrior reconnect");
    let tag = "rw14-c";
    let net = RwNet::new(tag, 0, 2);
    let pki = rw_pki::rw_pki();
    let users: Vec<User> = (0..2).map(User::lab).collect();
    let gateway = Gateway::start(&net, tag, &pki.gateway, &users, POOL, "");
    let specs: Vec<ClientSpec> = users
        .iter()
        .map(|u| ClientSpec::new(u.clone(), SwanKernel::Libipsec))
        .collect();
    let mut clients = start_clients(&net, specs.clone(), &pki);
    for client in &clients {
        let (ok, out) = client.initiate();
        assert!(ok, "{out}\n{}", context(&gateway, &[client]));
    }
    {
        let all: Vec<&RwClient> = clients.iter().collect();
        wait_all_up(&gateway, &all, Duration::from_secs(30));
    }
    let vip_before = clients[0].virtual_ip().unwrap();
    let crashed_sa = gateway.sa_of(&users[0].name).unwrap();
    let neighbour_sa = gateway.sa_of(&users[1].name).unwrap();
    println!(
        "before: {} has {vip_before} (IKE SA {}), {} has {} (IKE SA {})",
        users[0].name,
        crashed_sa["spi_i"],
        users[1].name,
        leased(&neighbour_sa)[0],
        neighbour_sa["spi_i"]
    );

    // The crash: SIGKILL, so no Delete reaches the gateway.
    let mut crashed = clients.remove(0);
    crashed.swan.child.kill().expect("kill charon");
    let _ = crashed.swan.child.wait();
    drop(crashed);
    let back = RwClient::start(&net.clients[0], specs[0].clone(), &pki.client_trust);
    let (ok, out) = back.initiate();
    assert!(ok, "{out}\n{}", context(&gateway, &[&back]));
    wait_until(
        "one IKE SA of the user again, the new one",
        Duration::from_secs(20),
        || {
            let of_user: Vec<Value> = gateway
                .sas()
                .into_iter()
                .filter(|sa| sa["eap_identity"] == users[0].name.as_str())
                .collect();
            of_user.len() == 1
                && of_user[0]["spi_i"] != crashed_sa["spi_i"]
                && of_user[0]["state"] == "established"
        },
        || context(&gateway, &[&back]),
    );
    let vip_after = back.virtual_ip().expect("virtual IP");
    let new_sa = gateway.sa_of(&users[0].name).unwrap();
    println!(
        "after: {} has {vip_after} (IKE SA {})",
        users[0].name, new_sa["spi_i"]
    );
    assert_eq!(vip_after, vip_before, "{}", context(&gateway, &[&back]));
    assert_eq!(leased(&new_sa), vec![vip_before], "{new_sa}");
    let neighbour_now = gateway
        .sa_of(&users[1].name)
        .unwrap_or_else(|| panic!("the neighbour lost its SA\n{}", context(&gateway, &[&back])));
    assert_eq!(
        neighbour_now["spi_i"], neighbour_sa["spi_i"],
        "{neighbour_now}"
    );
    assert_eq!(leased(&neighbour_now), leased(&neighbour_sa));
    assert_eq!(gateway.sas().len(), 2, "{}", gateway.show_sa_text());
}
