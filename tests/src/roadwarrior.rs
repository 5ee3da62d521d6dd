//! A remote-access network in namespaces (issue 14): an iked gateway,
//! the protected network behind it, road-warrior clients on its outside
//! (some directly, some behind one masquerading NAT), and strongSwan or
//! iked as those clients. Everything this creates is removed at drop.
//!
//! ```text
//!                 gw: bridge "wan" 198.18.1.1/24          "prot" 198.19.10.1/24 -- lan: 198.19.10.2 (the host behind iked)
//!                  |            |
//!  cN: eth0 198.18.1.(10+N)    nat: wan0 198.18.1.100, bridge "inside" 198.19.1.1/24, nftables masquerade
//!                                   |
//!                               nN: eth0 198.19.1.(10+N), default via 198.19.1.1
//! ```
//!
//! The gateway hands out addresses from [`POOL`] (`config address`); its
//! policy is `from PROTECTED_NET to dynamic local GW_WAN peer any`. iked
//! installs no route for the pool: this network adds one on the gateway
//! (the pool on-link on "wan", where the Child SAs' policies take the
//! packets) and a default route via the gateway on the protected host,
//! as an operator would.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::lab::{Strongswan, SwanKernel, SwanSetup};
use crate::pki::GatewayPki;
use crate::{fresh_netns, ip_in, show_sa, wait_until, Daemon, Scratch};

/// The gateway's outside address (the road warriors' `remote_addrs`).
pub const GW_WAN: &str = "198.18.1.1";
/// The network behind the gateway, and the host on it the clients ping.
pub const PROTECTED_NET: &str = "198.19.10.0/24";
pub const PROTECTED_GW: &str = "198.19.10.1";
pub const PROTECTED_HOST: &str = "198.19.10.2";
/// The gateway's pool (`config address`).
pub const POOL: &str = "198.19.200.0/24";
/// What the gateway hands out as `config name-server`.
pub const NAME_SERVER: &str = "198.19.10.53";
/// The NAT's outside address: every client behind it shows up from it.
pub const NAT_PUBLIC: &str = "198.18.1.100";
/// The NAT's inside address (its clients' default gateway).
pub const NAT_INSIDE: &str = "198.19.1.1";
/// The gateway's identity: its certificate's CN and DNS subjectAltName.
pub const GW_ID: &str = "gw.ike.test";
/// The gateway's policy name (and the clients' connection name).
pub const POLICY: &str = "rw";
/// IKE and ESP proposals of both sides (iked's match: [`GATEWAY_PROPOSALS`]).
pub const SWAN_IKE: &str = "aes128gcm16-prfsha256-x25519";
pub const SWAN_ESP: &str = "aes128gcm16";
pub const GATEWAY_PROPOSALS: &str =
    "ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 \\\n  childsa enc aes-128-gcm";

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sysctl(ns: &str, setting: &str) {
    run(&["ip", "netns", "exec", ns, "sysctl", "-q", "-w", setting]);
}

/// Where a client sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attachment {
    /// On the gateway's outside network, with an address of its own.
    Direct,
    /// Behind the NAT, which masquerades it as [`NAT_PUBLIC`].
    BehindNat,
}

/// One client's namespace.
#[derive(Debug, Clone)]
pub struct ClientNs {
    pub ns: String,
    /// Its own address (on `eth0`).
    pub address: String,
    pub attachment: Attachment,
}

impl ClientNs {
    /// The address the gateway sees it come from.
    pub fn public_address(&self) -> &str {
        match self.attachment {
            Attachment::Direct => &self.address,
            Attachment::BehindNat => NAT_PUBLIC,
        }
    }
}

/// The namespaces of the remote-access network.
pub struct RwNet {
    pub gw: String,
    pub lan: String,
    pub nat: Option<String>,
    pub clients: Vec<ClientNs>,
}

impl RwNet {
    /// The gateway, the protected host, `direct` clients on the outside
    /// and `behind_nat` clients behind the NAT (made only when there is
    /// one). Namespaces are named `TAG-gw`, `TAG-lan`, `TAG-nat`,
    /// `TAG-cN` (direct) and `TAG-nN` (behind the NAT).
    pub fn new(tag: &str, direct: usize, behind_nat: usize) -> RwNet {
        crate::require_root("the road-warrior network");
        let mut net = RwNet {
            gw: format!("{tag}-gw"),
            lan: format!("{tag}-lan"),
            nat: (behind_nat > 0).then(|| format!("{tag}-nat")),
            clients: Vec::new(),
        };
        fresh_netns(&net.gw);
        fresh_netns(&net.lan);
        for command in [
            "link set lo up",
            "link add wan type bridge",
            &format!("addr add {GW_WAN}/24 dev wan"),
            "link set wan up",
        ] {
            ip_in(&net.gw, command);
        }
        sysctl(&net.gw, "net.ipv4.ip_forward=1");
        // The protected network.
        veth(&net.gw, "prot", &net.lan, "eth0");
        ip_in(&net.gw, &format!("addr add {PROTECTED_GW}/24 dev prot"));
        ip_in(&net.gw, "link set prot up");
        for command in [
            "link set lo up",
            &format!("addr add {PROTECTED_HOST}/24 dev eth0"),
            "link set eth0 up",
            &format!("route add default via {PROTECTED_GW}"),
        ] {
            ip_in(&net.lan, command);
        }
        // The pool is reached on the outside: the Child SAs' policies
        // then send each client's traffic to its own outer address.
        ip_in(&net.gw, &format!("route add {POOL} dev wan"));
        for n in 0..direct {
            let client = ClientNs {
                ns: format!("{tag}-c{n}"),
                address: format!("198.18.1.{}", 10 + n),
                attachment: Attachment::Direct,
            };
            fresh_netns(&client.ns);
            let gw_end = format!("c{n}");
            veth(&net.gw, &gw_end, &client.ns, "eth0");
            ip_in(&net.gw, &format!("link set {gw_end} master wan up"));
            for command in [
                "link set lo up",
                &format!("addr add {}/24 dev eth0", client.address),
                "link set eth0 up",
            ] {
                ip_in(&client.ns, command);
            }
            net.clients.push(client);
        }
        if let Some(nat) = net.nat.clone() {
            fresh_netns(&nat);
            veth(&net.gw, "nat", &nat, "wan0");
            ip_in(&net.gw, "link set nat master wan up");
            for command in [
                "link set lo up",
                &format!("addr add {NAT_PUBLIC}/24 dev wan0"),
                "link set wan0 up",
                "link add inside type bridge",
                &format!("addr add {NAT_INSIDE}/24 dev inside"),
                "link set inside up",
            ] {
                ip_in(&nat, command);
            }
            sysctl(&nat, "net.ipv4.ip_forward=1");
            // Masquerade: every inside client leaves as NAT_PUBLIC, two of
            // them from port 500 (or 4500) get different outside ports.
            let rules = "table ip rwnat {\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"wan0\" masquerade\n  }\n}\n";
            let rules_file = std::env::temp_dir().join(format!("{nat}.nft"));
            std::fs::write(&rules_file, rules).expect("nft rules");
            let out = Command::new("ip")
                .args(["netns", "exec", &nat, "nft", "-f"])
                .arg(&rules_file)
                .output()
                .expect("nft (apt-get install nftables)");
            let _ = std::fs::remove_file(&rules_file);
            assert!(
                out.status.success(),
                "nft masquerade in {nat}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for n in 0..behind_nat {
                let client = ClientNs {
                    ns: format!("{tag}-n{n}"),
                    address: format!("198.19.1.{}", 10 + n),
                    attachment: Attachment::BehindNat,
                };
                fresh_netns(&client.ns);
                let nat_end = format!("n{n}");
                veth(&nat, &nat_end, &client.ns, "eth0");
                ip_in(&nat, &format!("link set {nat_end} master inside up"));
                for command in [
                    "link set lo up",
                    &format!("addr add {}/24 dev eth0", client.address),
                    "link set eth0 up",
                    &format!("route add default via {NAT_INSIDE}"),
                ] {
                    ip_in(&client.ns, command);
                }
                net.clients.push(client);
            }
        }
        net
    }

    /// Every namespace of this network.
    pub fn namespaces(&self) -> Vec<&str> {
        let mut all = vec![self.gw.as_str(), self.lan.as_str()];
        all.extend(self.nat.as_deref());
        all.extend(self.clients.iter().map(|c| c.ns.as_str()));
        all
    }

    /// Runs a command inside namespace `ns`.
    pub fn exec(ns: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for RwNet {
    fn drop(&mut self) {
        for ns in self.namespaces() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A veth pair from `a_dev` in namespace `a` to `b_dev` in `b`.
fn veth(a: &str, a_dev: &str, b: &str, b_dev: &str) {
    run(&[
        "ip", "link", "add", a_dev, "netns", a, "type", "veth", "peer", "name", b_dev, "netns", b,
    ]);
}

/// An EAP user of the gateway (`user "name" "password"`).
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password: String,
}

impl User {
    /// The lab's user `n`: `userN` with password `secret-N-of-the-lab`.
    pub fn lab(n: usize) -> User {
        User {
            name: format!("user{n}"),
            password: format!("secret-{n}-of-the-lab"),
        }
    }
}

/// The iked.conf of the gateway: `set certdir`, the `user` lines and a
/// passive `peer any` policy [`POLICY`] with `eap "mschap-v2"`, signed
/// with its certificate, leasing from `pool` and handing out
/// [`NAME_SERVER`]; `extra` (more words of the policy) before `config`.
pub fn gateway_config(certdir: &Path, users: &[User], pool: &str, extra: &str) -> String {
    let mut conf = format!("set passive\nset certdir \"{}\"\n", certdir.display());
    for user in users {
        conf += &format!("user \"{}\" \"{}\"\n", user.name, user.password);
    }
    conf += &format!(
        "ikev2 \"{POLICY}\" passive esp tunnel from {PROTECTED_NET} to dynamic \\\n  local {GW_WAN} peer any \\\n  {GATEWAY_PROPOSALS} \\\n  srcid \"{GW_ID}\" \\\n  eap \"mschap-v2\" {extra}\\\n  config address {pool} \\\n  config name-server {NAME_SERVER}\n"
    );
    conf
}

/// iked as the gateway in `net`, holding `pki` (its certificate and key)
/// in a certdir of its own.
pub struct Gateway {
    pub iked: Daemon,
    _certdir: Scratch,
}

impl Gateway {
    /// Starts iked in the gateway's namespace with [`gateway_config`].
    pub fn start(
        net: &RwNet,
        tag: &str,
        pki: &GatewayPki,
        users: &[User],
        pool: &str,
        extra: &str,
    ) -> Gateway {
        let certdir = Scratch::new(&format!("{tag}-gw-certdir"));
        let dir = crate::pki::write_iked_certdir(&certdir.file("iked"), pki, GW_ID);
        let iked = Daemon::start_in_within(
            Some(&net.gw),
            tag,
            &gateway_config(&dir, users, pool, extra),
            Duration::from_secs(20),
        );
        Gateway {
            iked,
            _certdir: certdir,
        }
    }

    /// The gateway's IKE SAs of [`POLICY`] (`ikectl --json show sa`).
    pub fn sas(&self) -> Vec<Value> {
        show_sa(&self.iked)
            .into_iter()
            .filter(|sa| sa["policy"] == POLICY)
            .collect()
    }

    /// The established IKE SA whose EAP identity is `user`, if any.
    pub fn sa_of(&self, user: &str) -> Option<Value> {
        self.sas()
            .into_iter()
            .find(|sa| sa["eap_identity"] == user && sa["state"] == "established")
    }

    /// `ikectl show sa` as text.
    pub fn show_sa_text(&self) -> String {
        String::from_utf8_lossy(&self.iked.ikectl(&["show", "sa"]).stdout).into_owned()
    }
}

/// How a strongSwan road warrior is configured.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub user: User,
    /// swanctl.conf `vips` (`0.0.0.0`: any address from the pool).
    pub vips: String,
    /// The Child SA's `local_ts`; None: `dynamic` (the virtual IP).
    pub local_ts: Option<String>,
    pub kernel: SwanKernel,
}

impl ClientSpec {
    /// User `user`, any address from the pool, the virtual IP as selector.
    pub fn new(user: User, kernel: SwanKernel) -> ClientSpec {
        ClientSpec {
            user,
            vips: "0.0.0.0".to_string(),
            local_ts: None,
            kernel,
        }
    }
}

/// The swanctl.conf connection of a road warrior: EAP-MSCHAPv2 as
/// `spec.user` (its IKE identity its own address, strongSwan's default),
/// the gateway authenticated by its certificate ([`GW_ID`]), a virtual
/// IP requested, the protected network as remote selector.
pub fn client_section(spec: &ClientSpec) -> String {
    let local_ts = spec
        .local_ts
        .as_deref()
        .map(|ts| format!("                local_ts = {ts}\n"))
        .unwrap_or_default();
    format!(
        r#"    {POLICY} {{
        version = 2
        remote_addrs = {GW_WAN}
        proposals = {SWAN_IKE}
        vips = {vips}
        dpd_delay = 0
        rekey_time = 0
        local {{
            auth = eap-mschapv2
            eap_id = {user}
        }}
        remote {{
            auth = pubkey
            id = {GW_ID}
        }}
        children {{
            {POLICY} {{
{local_ts}                remote_ts = {PROTECTED_NET}
                esp_proposals = {SWAN_ESP}
                mode = tunnel
                start_action = none
                rekey_time = 0
            }}
        }}
    }}
"#,
        vips = spec.vips,
        user = spec.user.name,
    )
}

/// A strongSwan road warrior: its charon in client namespace `client`.
pub struct RwClient {
    pub swan: Strongswan,
    pub ns: ClientNs,
    pub spec: ClientSpec,
}

impl RwClient {
    /// Starts charon in `client`'s namespace with [`client_section`],
    /// trusting the CA in `trust` (its `trusted` certificates).
    pub fn start(client: &ClientNs, spec: ClientSpec, trust: &GatewayPki) -> RwClient {
        let secret = format!(
            "    eap-{name} {{\n        id = {name}\n        secret = \"{password}\"\n    }}\n",
            name = spec.user.name,
            password = spec.user.password
        );
        let swan = Strongswan::start_in_netns(
            &client.ns,
            &spec.user.name,
            &SwanSetup {
                kernel: spec.kernel,
                extra_sections: vec![client_section(&spec)],
                credentials: Some(trust),
                plugins: "eap-identity eap-mschapv2",
                secrets: vec![secret],
                ..SwanSetup::default()
            },
        );
        RwClient {
            swan,
            ns: client.clone(),
            spec,
        }
    }

    /// `swanctl --initiate` (30 s at most): whether strongSwan says the
    /// Child SA is up, and what swanctl printed.
    pub fn initiate(&self) -> (bool, String) {
        let out = self
            .swan
            .swanctl(&["--initiate", "--child", POLICY, "--timeout", "30"]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The virtual IP strongSwan lists for its IKE SA (`swanctl
    /// --list-sas`: `local '...' @ ADDR[PORT] [VIP]`), if any.
    pub fn virtual_ip(&self) -> Option<IpAddr> {
        virtual_ip_of(&self.swan.list_sas())
    }

    pub fn context(&self) -> String {
        format!(
            "--- {} swanctl --list-sas ---\n{}\n--- {} charon log (tail) ---\n{}",
            self.ns.ns,
            self.swan.list_sas(),
            self.ns.ns,
            crate::certlab::tail(&self.swan.log_text(), 80)
        )
    }
}

/// strongSwan as the gateway in `net` (for iked as the client): the
/// same policy as [`gateway_config`], in swanctl.conf: its certificate
/// ([`GW_ID`], `pki`), EAP-MSCHAPv2 for the clients (`eap_id = %any`,
/// the `users` as EAP secrets), virtual IPs from a `pools` range of
/// `pool` with [`NAME_SERVER`].
pub fn start_strongswan_gateway(
    net: &RwNet,
    pki: &GatewayPki,
    users: &[User],
    pool: &str,
    kernel: SwanKernel,
) -> Strongswan {
    let section = format!(
        r#"    {POLICY} {{
        version = 2
        local_addrs = {GW_WAN}
        proposals = {SWAN_IKE}
        pools = rwpool
        unique = never
        dpd_delay = 0
        rekey_time = 0
        local {{
            auth = pubkey
            certs = {cert}
            id = {GW_ID}
        }}
        remote {{
            auth = eap-mschapv2
            eap_id = %any
        }}
        children {{
            {POLICY} {{
                local_ts = {PROTECTED_NET}
                esp_proposals = {SWAN_ESP}
                mode = tunnel
                start_action = none
                rekey_time = 0
            }}
        }}
    }}
"#,
        cert = crate::pki::swanctl_cert_name(GW_ID),
    );
    let secrets = users
        .iter()
        .map(|u| {
            format!(
                "    eap-{name} {{\n        id = {name}\n        secret = \"{password}\"\n    }}\n",
                name = u.name,
                password = u.password
            )
        })
        .collect();
    Strongswan::start_in_netns(
        &net.gw,
        GW_ID,
        &SwanSetup {
            kernel,
            extra_sections: vec![section],
            credentials: Some(pki),
            plugins: "eap-identity eap-mschapv2 attr",
            secrets,
            blocks: vec![format!(
                "pools {{\n    rwpool {{\n        addrs = {pool}\n        dns = {NAME_SERVER}\n    }}\n}}\n"
            )],
            ..SwanSetup::default()
        },
    )
}

/// The iked.conf of iked as a road-warrior client of the gateway at
/// [`GW_WAN`]: `local` its own address, EAP-MSCHAPv2 as `user` (its
/// `srcid`, with the `user` line), the gateway's certificate checked
/// against the CA in `certdir`, `request address any` and `iface`
/// `iface`, `from dynamic to PROTECTED_NET`.
pub fn client_config(certdir: &Path, local: &str, user: &User, iface: &str) -> String {
    format!(
        "set passive\nset certdir \"{certdir}\"\nuser \"{name}\" \"{password}\"\nikev2 \"{POLICY}\" active esp tunnel from dynamic to {PROTECTED_NET} \\\n  local {local} peer {GW_WAN} \\\n  {GATEWAY_PROPOSALS} \\\n  srcid \"{name}\" dstid \"{GW_ID}\" \\\n  eap \"mschap-v2\" \\\n  request address any iface {iface}\n",
        certdir = certdir.display(),
        name = user.name,
        password = user.password,
    )
}

/// The client's interface for its virtual address: one end of a veth
/// pair of its own (this machine's kernel has no dummy devices).
pub const IFACE: &str = "vip0";

/// iked as the client in `client`'s namespace, trusting the CA of
/// `trust`, as `user`, with [`IFACE`] made for it.
pub struct IkedClient {
    pub iked: Daemon,
    pub ns: String,
    _certdir: Scratch,
}

impl IkedClient {
    pub fn start(tag: &str, client: &ClientNs, trust: &GatewayPki, user: &User) -> IkedClient {
        ip_in(
            &client.ns,
            &format!("link add {IFACE} type veth peer name {IFACE}-peer"),
        );
        ip_in(&client.ns, &format!("link set {IFACE}-peer up"));
        ip_in(&client.ns, &format!("link set {IFACE} up"));
        let certdir = Scratch::new(&format!("{tag}-client-certdir"));
        let dir = crate::pki::write_iked_certdir(&certdir.file("iked"), trust, &user.name);
        let iked = Daemon::start_in(
            Some(&client.ns),
            &format!("{tag}-client"),
            &client_config(&dir, &client.address, user, IFACE),
        );
        IkedClient {
            iked,
            ns: client.ns.clone(),
            _certdir: certdir,
        }
    }

    /// The client's SA of [`POLICY`], once established with an address.
    pub fn sa(&self) -> Option<Value> {
        show_sa(&self.iked).into_iter().find(|sa| {
            sa["policy"] == POLICY
                && sa["state"] == "established"
                && sa["virtual_ips"].as_array().is_some_and(|v| !v.is_empty())
        })
    }

    /// The IPv4 addresses on [`IFACE`] (`ip -4 -o addr show dev`).
    pub fn iface_addresses(&self) -> Vec<String> {
        ip_in(&self.ns, &format!("-4 -o addr show dev {IFACE}"))
            .lines()
            .filter_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = words.iter().position(|w| *w == "inet")?;
                words.get(at + 1).map(|a| a.to_string())
            })
            .collect()
    }

    pub fn context(&self) -> String {
        format!(
            "--- client iked log (tail) ---\n{}\n--- client ip addr ---\n{}",
            crate::certlab::tail(&self.iked.log_text(), 150),
            ip_in(&self.ns, "addr show")
        )
    }

    /// `ikectl initiate`, then waits (30 s) for the SA with its address
    /// and the address on the interface: returns the address.
    pub fn connect(&self, gateway_context: &dyn Fn() -> String) -> IpAddr {
        self.iked.ikectl_ok(&["initiate", POLICY]);
        wait_until(
            "the client's IKE SA with an address, the address on its interface",
            Duration::from_secs(30),
            || {
                self.sa().is_some_and(|sa| {
                    let vip = sa["virtual_ips"][0]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    self.iface_addresses().contains(&format!("{vip}/32"))
                })
            },
            || format!("{}\n{}", self.context(), gateway_context()),
        );
        let sa = self.sa().unwrap();
        println!(
            "client: ikectl show sa:\n{}",
            String::from_utf8_lossy(&self.iked.ikectl(&["show", "sa"]).stdout)
        );
        println!(
            "client: ip addr show dev {IFACE}: {:?}",
            self.iface_addresses()
        );
        // Both announced MOBIKE_SUPPORTED (RFC 4555 §3.1): iked's `set
        // mobike` default, strongSwan's too.
        assert_eq!(sa["mobike"], true, "{sa}");
        let vip: IpAddr = sa["virtual_ips"][0].as_str().unwrap().parse().unwrap();
        assert!(in_prefix(vip, POOL), "{vip} outside {POOL}");
        // Our selector is the address we were given, theirs the network.
        let child = &sa["children"][0];
        let local_ts = child["local_ts"][0].as_str().unwrap_or_default();
        assert!(
            local_ts == vip.to_string() || local_ts == format!("{vip}/32"),
            "our selector is not {vip}: {sa}"
        );
        assert_eq!(child["remote_ts"][0], PROTECTED_NET, "{sa}");
        vip
    }

    /// `ikectl terminate`, then waits (15 s) until the SA and the address
    /// are gone.
    pub fn terminate(&self, vip: IpAddr, gateway_context: &dyn Fn() -> String) {
        self.iked.ikectl_ok(&["terminate", POLICY]);
        wait_until(
            "the client's SA and its address gone",
            Duration::from_secs(15),
            || show_sa(&self.iked).is_empty() && self.iface_addresses().is_empty(),
            || format!("{}\n{}", self.context(), gateway_context()),
        );
        println!("after ikectl terminate: no SA, {vip} no longer on {IFACE}");
    }
}

/// The virtual IP in `swanctl --list-sas` output: the bracketed address
/// after the local endpoint.
pub fn virtual_ip_of(list_sas: &str) -> Option<IpAddr> {
    list_sas
        .lines()
        .filter(|l| l.trim_start().starts_with("local "))
        .flat_map(|l| l.split_whitespace())
        .find_map(|token| {
            token
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
        })
}

/// Whether `addr` lies in IPv4 prefix `prefix` (`a.b.c.d/len`).
pub fn in_prefix(addr: IpAddr, prefix: &str) -> bool {
    let (net, len) = prefix.split_once('/').expect("prefix");
    let (IpAddr::V4(addr), Ok(IpAddr::V4(net)), Ok(len)) =
        (addr, net.parse::<IpAddr>(), len.parse::<u32>())
    else {
        return false;
    };
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(addr) & mask == u32::from(net) & mask
}

/// The context of a road-warrior failure: iked's log, `ikectl show sa`
/// and each client's view.
pub fn context(gateway: &Gateway, clients: &[&RwClient]) -> String {
    let mut text = format!(
        "--- iked log (tail) ---\n{}\n--- ikectl show sa ---\n{}\n",
        crate::certlab::tail(&gateway.iked.log_text(), 200),
        gateway.show_sa_text()
    );
    for client in clients {
        text += &client.context();
        text += "\n";
    }
    text
}

/// Waits (`timeout`) until every client's user has an established IKE
/// SA on the gateway with a leased address, and each client lists its
/// virtual IP.
pub fn wait_all_up(gateway: &Gateway, clients: &[&RwClient], timeout: Duration) {
    wait_until(
        "every road warrior established on both sides with its virtual IP",
        timeout,
        || {
            clients.iter().all(|c| {
                c.virtual_ip().is_some()
                    && gateway.sa_of(&c.spec.user.name).is_some_and(|sa| {
                        sa["virtual_ips"].as_array().is_some_and(|v| !v.is_empty())
                    })
            })
        },
        || context(gateway, clients),
    );
}

/// The XFRM policies in namespace `ns` (`ip xfrm policy list`).
pub fn xfrm_policies(ns: &str) -> String {
    String::from_utf8_lossy(&RwNet::exec(ns, &["ip", "xfrm", "policy", "list"]).stdout).into_owned()
}

/// The XFRM states in namespace `ns` (`ip xfrm state list`).
pub fn xfrm_states(ns: &str) -> String {
    String::from_utf8_lossy(&RwNet::exec(ns, &["ip", "xfrm", "state", "list"]).stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtual_ip_is_read_from_swanctl_list_sas() {
        let listing = "rw: #1, ESTABLISHED, IKEv2, 5b5fcd4b11d1fa08_i* 0d8f4a9c09e5c4e6_r\n  local  '198.18.1.10' @ 198.18.1.10[4500] [198.19.200.1]\n  remote 'gw.ike.test' @ 198.18.1.1[4500]\n";
        assert_eq!(
            virtual_ip_of(listing),
            Some("198.19.200.1".parse().unwrap())
        );
        assert_eq!(
            virtual_ip_of("rw: #1, CONNECTING\n  local  '%any' @ 198.18.1.10[500]\n"),
            None
        );
    }

    #[test]
    fn prefixes_hold_what_they_should() {
        assert!(in_prefix("198.19.200.7".parse().unwrap(), POOL));
        assert!(!in_prefix("198.19.201.7".parse().unwrap(), POOL));
        assert!(in_prefix(
            "198.19.200.2".parse().unwrap(),
            "198.19.200.0/30"
        ));
        assert!(!in_prefix(
            "198.19.200.4".parse().unwrap(),
            "198.19.200.0/30"
        ));
    }

    #[test]
    fn the_client_config_requests_an_address() {
        let conf = client_config(Path::new("/c"), "198.18.1.10", &User::lab(2), "vip0");
        assert!(conf.contains("user \"user2\" \"secret-2-of-the-lab\"\n"));
        assert!(conf.contains("from dynamic to 198.19.10.0/24"));
        assert!(conf.contains("request address any iface vip0\n"));
        assert!(conf.contains("srcid \"user2\" dstid \"gw.ike.test\""));
    }

    #[test]
    fn the_gateway_config_has_the_policy_and_users() {
        let conf = gateway_config(Path::new("/c"), &[User::lab(1)], POOL, "");
        assert!(conf.contains("user \"user1\" \"secret-1-of-the-lab\"\n"));
        assert!(conf.contains("peer any"));
        assert!(conf.contains("to dynamic"));
        assert!(conf.contains("eap \"mschap-v2\""));
        assert!(conf.contains(&format!("config address {POOL}")));
    }
}
