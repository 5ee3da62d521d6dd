//! A two-gateway network in namespaces, and strongSwan as an independent
//! peer in it. Everything this creates is removed at drop.
//!
//! ```text
//!  netns A  veth-a 198.18.0.1/24 fd00:18::1/64  <-->  veth-b 198.18.0.2/24 fd00:18::2/64  netns B
//!  inner (on lo): 10.1.{0,1,2}.1  fd01:a::1            10.2.{0,1,2}.1  fd01:b::1
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::Scratch;

/// The pre-shared key of the lab's connections.
pub const LAB_PSK: &str = "interop-lab-psk-0123456789";

fn run(args: &[&str]) -> Output {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    assert!(
        output.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// One side of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    pub fn outer_v4(self) -> &'static str {
        match self {
            Side::A => "198.18.0.1",
            Side::B => "198.18.0.2",
        }
    }

    pub fn outer_v6(self) -> &'static str {
        match self {
            Side::A => "fd00:18::1",
            Side::B => "fd00:18::2",
        }
    }

    /// Second octet of the side's inner networks (10.1.x.0/24 or 10.2.x.0/24).
    pub fn inner_net(self) -> u8 {
        match self {
            Side::A => 1,
            Side::B => 2,
        }
    }

    pub fn inner_v6(self) -> &'static str {
        match self {
            Side::A => "fd01:a::",
            Side::B => "fd01:b::",
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Side::A => "a.ike.test",
            Side::B => "b.ike.test",
        }
    }
}

/// Two namespaces joined by a veth pair.
pub struct Lab {
    pub a: String,
    pub b: String,
}

impl Lab {
    /// The lab with hand-added routes to the other side's inner networks
    /// on both sides, for peers that install none themselves.
    pub fn new(tag: &str) -> Lab {
        Lab::with_hand_routes(tag, &[Side::A, Side::B])
    }

    /// The lab with hand-added routes on `routed` only: a side running a
    /// daemon that routes its tunnels itself (iked, strongSwan with
    /// install_routes) gets none, so that its own routes are what carries
    /// the traffic.
    pub fn with_hand_routes(tag: &str, routed: &[Side]) -> Lab {
        crate::require_root("the namespace lab");
        let lab = Lab {
            a: format!("iked-{tag}-a"),
            b: format!("iked-{tag}-b"),
        };
        for ns in [&lab.a, &lab.b] {
            // A namespace left by an interrupted run is replaced.
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            run(&["ip", "netns", "add", ns]);
        }
        run(&[
            "ip", "link", "add", "veth-a", "netns", &lab.a, "type", "veth", "peer", "name",
            "veth-b", "netns", &lab.b,
        ]);
        for side in [Side::A, Side::B] {
            let ns = lab.ns(side);
            let dev = if side == Side::A { "veth-a" } else { "veth-b" };
            let other = side.other();
            let mut commands = vec![
                "link set lo up".to_string(),
                format!("addr add {}/24 dev {dev}", side.outer_v4()),
                format!("addr add {}/64 dev {dev} nodad", side.outer_v6()),
                format!("link set {dev} up"),
                format!("addr add {}1/128 dev lo", side.inner_v6()),
            ];
            if routed.contains(&side) {
                // The other side's inner networks are reached over the veth;
                // the IPsec policies then decide that they travel in ESP.
                commands.push(format!(
                    "route add 10.{}.0.0/16 dev {dev}",
                    other.inner_net()
                ));
                commands.push(format!("route add {}/64 dev {dev}", other.inner_v6()));
            }
            for n in 0..3 {
                commands.push(format!("addr add 10.{}.{n}.1/32 dev lo", side.inner_net()));
            }
            for command in commands {
                let mut args = vec!["ip", "-n", ns];
                args.extend(command.split_whitespace());
                run(&args);
            }
        }
        lab
    }

    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// Runs a command inside a side's namespace.
    pub fn exec(&self, side: Side, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", self.ns(side)])
            .args(args)
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// tcpdump of what one side sends on its veth (`-Q out`: Linux also shows
/// decrypted inbound tunnel packets on the interface, which never crossed
/// the wire in the clear), until stopped.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Starts tcpdump on `side`'s veth with the pcap `filter` (e.g.
    /// `["not", "arp"]`) and waits until it listens.
    pub fn start(lab: &Lab, side: Side, filter: &[&str]) -> Capture {
        let dev = if side == Side::A { "veth-a" } else { "veth-b" };
        Capture::start_on(lab.ns(side), dev, filter)
    }

    /// As [`Capture::start`], on device `dev` of namespace `ns`.
    pub fn start_on(ns: &str, dev: &str, filter: &[&str]) -> Capture {
        let file = std::env::temp_dir().join(format!("capture-{ns}-{dev}.txt"));
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tcpdump", "-n", "-l", "-Q", "out", "-i", dev,
            ])
            .args(filter)
            .stdout(std::fs::File::create(&file).expect("capture file"))
            .stderr(std::fs::File::create(file.with_extension("err")).expect("capture log"))
            .spawn()
            .expect("tcpdump");
        // tcpdump says "listening on" once the capture is in place.
        crate::wait_until(
            "tcpdump to start",
            Duration::from_secs(10),
            || {
                std::fs::read_to_string(file.with_extension("err"))
                    .is_ok_and(|t| t.contains("listening on"))
            },
            String::new,
        );
        Capture { child, file }
    }

    /// Stops the capture (after a short grace for packets in flight) and
    /// returns tcpdump's text.
    pub fn stop(mut self) -> String {
        std::thread::sleep(Duration::from_millis(300));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }
}

/// How strongSwan installs Child SAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwanKernel {
    /// Userspace ESP over a TUN device: works on kernels without ESP, and
    /// forces UDP encapsulation (strongSwan fakes its NAT-D hashes).
    Libipsec,
    /// Kernel XFRM: needs a kernel with ESP (the kernel lab).
    Netlink,
}

/// A connection both strongSwan and iked configure the same way.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    pub name: &'static str,
    pub ike_proposal: &'static str,
    pub esp_proposals: &'static str,
    pub v6: bool,
    /// Third octet of the inner networks (10.x.N.0/24).
    pub inner: u8,
}

pub const PSK_CBC: Connection = Connection {
    name: "psk-cbc",
    ike_proposal: "aes256-sha256-modp2048",
    esp_proposals: "aes256-sha256-modp2048,aes256-sha256",
    v6: false,
    inner: 0,
};
pub const PSK_GCM: Connection = Connection {
    name: "psk-gcm",
    ike_proposal: "aes128gcm16-prfsha256-x25519",
    esp_proposals: "aes128gcm16-x25519,aes128gcm16",
    v6: false,
    inner: 1,
};
pub const PSK_V6: Connection = Connection {
    name: "psk-v6",
    ike_proposal: "aes256-sha256-modp2048",
    esp_proposals: "aes256-sha256",
    v6: true,
    inner: 0,
};

/// Host to host: an iked policy without `from ... to` (iked.conf(5): the
/// traffic between the two gateways), strongSwan's default selectors.
pub const PSK_HOSTS: Connection = Connection {
    name: "psk-hosts",
    ike_proposal: "aes256-sha256-modp2048",
    esp_proposals: "aes256-sha256",
    v6: false,
    inner: 0,
};
/// Camellia-256-CBC with HMAC-SHA2-256 and MODP-2048 for the IKE and the
/// ESP SAs (RFC 5529, RFC 4312).
pub const PSK_CAMELLIA: Connection = Connection {
    name: "psk-camellia",
    ike_proposal: "camellia256-sha256-modp2048",
    esp_proposals: "camellia256-sha256-modp2048,camellia256-sha256",
    v6: false,
    inner: 2,
};

impl Connection {
    /// Whether the connection protects only the traffic between the two
    /// gateways (no `from ... to` in iked.conf).
    pub fn host_to_host(&self) -> bool {
        self.name == PSK_HOSTS.name
    }

    pub fn local_ts(&self, side: Side) -> String {
        if self.host_to_host() {
            format!("{}/32", self.address(side))
        } else if self.v6 {
            format!("{}/64", side.inner_v6())
        } else {
            format!("10.{}.{}.0/24", side.inner_net(), self.inner)
        }
    }

    pub fn address(&self, side: Side) -> &'static str {
        if self.v6 {
            side.outer_v6()
        } else {
            side.outer_v4()
        }
    }

    /// The matching iked.conf policy for `side`.
    pub fn iked_policy(&self, side: Side, active: bool) -> String {
        let (ikesa, childsa) = match self.name {
            "psk-gcm" => (
                "ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519",
                "childsa enc aes-128-gcm group curve25519",
            ),
            "psk-cbc" => (
                "ikesa enc aes-256 auth hmac-sha2-256 prf hmac-sha2-256 group modp2048",
                "childsa enc aes-256 auth hmac-sha2-256 group modp2048",
            ),
            "psk-camellia" => (
                "ikesa enc camellia-256 auth hmac-sha2-256 prf hmac-sha2-256 group modp2048",
                "childsa enc camellia-256 auth hmac-sha2-256 group modp2048",
            ),
            _ => (
                "ikesa enc aes-256 auth hmac-sha2-256 prf hmac-sha2-256 group modp2048",
                "childsa enc aes-256 auth hmac-sha2-256",
            ),
        };
        let flows = if self.host_to_host() {
            String::new()
        } else {
            format!(
                "from {} to {} ",
                self.local_ts(side),
                self.local_ts(side.other())
            )
        };
        format!(
            "ikev2 \"{name}\" {mode} esp tunnel {flows}local {local} peer {peer} \\\n  {ikesa} \\\n  {childsa} \\\n  srcid {srcid} dstid {dstid} psk \"{LAB_PSK}\"\n",
            name = self.name,
            mode = if active { "active" } else { "passive" },
            local = self.address(side),
            peer = self.address(side.other()),
            srcid = side.id(),
            dstid = side.other().id(),
        )
    }

    fn swanctl_section(&self, side: Side) -> String {
        swanctl_tunnel_section(&SwanctlTunnel {
            name: self.name,
            local: self.address(side),
            remote: self.address(side.other()),
            ike: self.ike_proposal,
            ike_extra: "",
            local_auth: "auth = psk",
            remote_auth: "auth = psk",
            local_id: side.id(),
            remote_id: side.other().id(),
            local_ts: &self.local_ts(side),
            remote_ts: &self.local_ts(side.other()),
            esp: self.esp_proposals,
        })
    }
}

/// A strongSwan charon running in one side's namespace, with its own
/// configuration, vici socket and key-dumping log in a scratch directory.
pub struct Strongswan {
    pub child: Child,
    pub dir: PathBuf,
    pub log: PathBuf,
    ns: String,
    _scratch: Scratch,
}

/// How strongSwan retransmits its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwanRetransmission {
    /// The lab's quicker schedule (first after 2 s, 3 tries), so that
    /// failing interop tests fail fast.
    Lab,
    /// strongSwan's own defaults (first after 4 s, then x1.8, 5 tries), as
    /// deployed peers run: a lost packet costs them 4 s.
    Default,
}

/// What a strongSwan instance is started with.
#[derive(Clone)]
pub struct SwanSetup<'a> {
    pub kernel: SwanKernel,
    /// The PSK connections, configured as iked's [`Connection::iked_policy`].
    pub connections: &'a [Connection],
    pub retransmission: SwanRetransmission,
    /// Lines added to strongswan.conf's charon section.
    pub charon_settings: &'a str,
    /// More swanctl.conf connection sections, written as they are
    /// (certificate connections: [`crate::certlab::CertConnection`]).
    pub extra_sections: Vec<String>,
    /// Our certificates and key, written under the swanctl directory.
    pub credentials: Option<&'a crate::pki::GatewayPki>,
    /// More charon plugins (`eap-mschapv2 eap-identity`, ...), loaded
    /// before the kernel and socket plugins.
    pub plugins: &'a str,
    /// More sections of swanctl.conf's `secrets` block, written as they
    /// are (EAP users: `eap-NAME { id = NAME secret = ... }`).
    pub secrets: Vec<String>,
    /// More top-level blocks of swanctl.conf (`pools { ... }`), written
    /// as they are after `secrets`.
    pub blocks: Vec<String>,
}

impl Default for SwanSetup<'_> {
    fn default() -> Self {
        SwanSetup {
            kernel: SwanKernel::Libipsec,
            connections: &[],
            retransmission: SwanRetransmission::Lab,
            charon_settings: "",
            extra_sections: Vec::new(),
            credentials: None,
            plugins: "",
            secrets: Vec::new(),
            blocks: Vec::new(),
        }
    }
}

impl Strongswan {
    pub fn start(
        lab: &Lab,
        side: Side,
        kernel: SwanKernel,
        connections: &[Connection],
    ) -> Strongswan {
        Strongswan::start_with(lab, side, kernel, connections, SwanRetransmission::Lab)
    }

    pub fn start_with(
        lab: &Lab,
        side: Side,
        kernel: SwanKernel,
        connections: &[Connection],
        retransmission: SwanRetransmission,
    ) -> Strongswan {
        Strongswan::start_with_settings(lab, side, kernel, connections, retransmission, "")
    }

    /// As [`Strongswan::start_with`], with `charon_settings` (lines of
    /// strongswan.conf's charon section, e.g. `spi_min = 0xc0000001`) added.
    pub fn start_with_settings(
        lab: &Lab,
        side: Side,
        kernel: SwanKernel,
        connections: &[Connection],
        retransmission: SwanRetransmission,
        charon_settings: &str,
    ) -> Strongswan {
        Strongswan::start_setup(
            lab,
            side,
            &SwanSetup {
                kernel,
                connections,
                retransmission,
                charon_settings,
                ..SwanSetup::default()
            },
        )
    }

    /// strongSwan as `setup` says: its PSK connections and, with
    /// credentials, its certificate connections (the x509 and key plugins
    /// are then loaded into charon).
    pub fn start_setup(lab: &Lab, side: Side, setup: &SwanSetup) -> Strongswan {
        Strongswan::start_full(lab.ns(side), side.id(), Some(side), setup)
    }

    /// strongSwan as `setup` says in namespace `ns`, its certificate and
    /// key (if any) named after `local_id`: any topology's peer, such as
    /// the road-warrior clients of [`crate::roadwarrior`]. `setup` holds
    /// no PSK [`Connection`]s (they are the two-sided lab's).
    pub fn start_in_netns(ns: &str, local_id: &str, setup: &SwanSetup) -> Strongswan {
        assert!(
            setup.connections.is_empty(),
            "PSK lab connections need a side of the lab"
        );
        Strongswan::start_full(ns, local_id, None, setup)
    }

    fn start_full(ns: &str, local_id: &str, side: Option<Side>, setup: &SwanSetup) -> Strongswan {
        let SwanSetup {
            kernel,
            connections,
            retransmission,
            charon_settings,
            extra_sections,
            credentials,
            plugins: extra_plugins,
            secrets,
            blocks,
        } = setup;
        let (kernel, retransmission) = (*kernel, *retransmission);
        let scratch = Scratch::new(&format!("swan-{ns}"));
        let dir = scratch.0.clone();
        let log = dir.join("charon.log");
        let vici = dir.join("charon.vici");
        let plugins = match kernel {
            // kernel-libipsec must precede kernel-netlink: the first provider wins.
            SwanKernel::Libipsec => "kernel-libipsec kernel-netlink",
            SwanKernel::Netlink => "kernel-netlink",
        };
        std::fs::write(
            dir.join("strongswan.conf"),
            format!(
                r#"charon-systemd {{
    journal {{
        default = -1
    }}
}}
charon {{
    load_modular = no
    load = random nonce openssl aes sha1 sha2 hmac gcm kdf curve25519 {cert_plugins}{extra_plugins}{plugins} socket-default vici
    install_routes = yes
{retransmit}{charon_settings}    plugins {{
        vici {{
            socket = unix://{vici}
        }}
{peer_ts}    }}
    filelog {{
        lab {{
            path = {log}
            time_format = %H:%M:%S
            ike_name = yes
            append = no
            flush_line = yes
            default = 1
            ike = 4
            chd = 4
            knl = 2
            net = 2
            cfg = 2
        }}
    }}
}}
swanctl {{
    load = random nonce openssl aes sha1 sha2 hmac pem pkcs1 pkcs8 x509 pubkey
}}
"#,
                vici = vici.display(),
                log = log.display(),
                // Certificates and keys reach charon as PEM blobs over vici;
                // revocation checks them against x509crl/'s CRLs.
                cert_plugins = if credentials.is_some() {
                    "pem pkcs1 pkcs8 x509 revocation constraints pubkey "
                } else {
                    ""
                },
                charon_settings = charon_settings,
                extra_plugins = if extra_plugins.is_empty() {
                    String::new()
                } else {
                    format!("{extra_plugins} ")
                },
                // libipsec routes a Child SA's remote selectors into its TUN
                // device (table 220): for host-to-host selectors, the IKE
                // peer itself, it refuses the Child SA unless allow_peer_ts,
                // and then the route would swallow its own IKE and ESP-in-UDP
                // packets; marked by the socket, they skip table 220.
                peer_ts = if kernel == SwanKernel::Libipsec
                    && connections.iter().any(|c| c.host_to_host())
                {
                    "        kernel-libipsec {\n            allow_peer_ts = yes\n        }\n        \
                     socket-default {\n            fwmark = 0x42\n        }\n        \
                     kernel-netlink {\n            fwmark = !0x42\n        }\n"
                } else {
                    ""
                },
                retransmit = match retransmission {
                    SwanRetransmission::Lab =>
                        "    retransmit_tries = 3\n    retransmit_timeout = 2.0\n",
                    SwanRetransmission::Default => "",
                },
            ),
        )
        .expect("strongswan.conf");
        let swanctl = dir.join("swanctl");
        for sub in ["conf.d", "x509", "x509ca", "x509crl", "private"] {
            std::fs::create_dir_all(swanctl.join(sub)).expect("swanctl dir");
        }
        if let Some(pki) = credentials {
            crate::pki::write_swanctl_credentials(&swanctl, pki, local_id);
        }
        let mut conf = String::from("connections {\n");
        for c in connections.iter() {
            conf += &c.swanctl_section(side.expect("a side for PSK connections"));
        }
        for section in extra_sections {
            conf += section;
        }
        conf += &format!(
            "}}\nsecrets {{\n    ike-lab {{\n        id-a = a.ike.test\n        id-b = b.ike.test\n        secret = \"{LAB_PSK}\"\n    }}\n"
        );
        for section in secrets {
            conf += section;
        }
        conf += "}\n";
        for block in blocks {
            conf += block;
        }
        std::fs::write(swanctl.join("swanctl.conf"), conf).expect("swanctl.conf");

        let child = Command::new("ip")
            .args(["netns", "exec", ns, "/usr/sbin/charon-systemd"])
            .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("charon.stderr")).expect("stderr file"))
            .spawn()
            .expect("start charon-systemd (apt-get install charon-systemd strongswan-swanctl libcharon-extra-plugins)");
        let mut swan = Strongswan {
            child,
            dir,
            log,
            ns: ns.to_string(),
            _scratch: scratch,
        };
        // Longer in the emulated kernel lab, whose VMs share the host's
        // cores (charon took over 10 s to start there under load).
        let start_wait = Duration::from_secs(if crate::in_kernel_lab() { 60 } else { 10 });
        let deadline = Instant::now() + start_wait;
        while !vici.exists() {
            if let Ok(Some(status)) = swan.child.try_wait() {
                panic!(
                    "charon exited ({status}): {}",
                    std::fs::read_to_string(swan.dir.join("charon.stderr")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "strongSwan's vici socket did not appear"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let loaded = swan.swanctl(&["--load-all", "--noprompt"]);
        assert!(
            loaded.status.success(),
            "swanctl --load-all: {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
        swan
    }

    /// Runs swanctl against this instance (bounded by its own --timeout
    /// where the command takes one).
    pub fn swanctl(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("60")
            .arg("swanctl")
            .args(args)
            .arg("--uri")
            .arg(format!("unix://{}", self.dir.join("charon.vici").display()))
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .env("SWANCTL_DIR", self.dir.join("swanctl"))
            .output()
            .expect("swanctl")
    }

    pub fn list_sas(&self) -> String {
        String::from_utf8_lossy(&self.swanctl(&["--list-sas"]).stdout).into_owned()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        &self.ns
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Strongswan {
    fn drop(&mut self) {
        if crate::terminate_within(&mut self.child, Duration::from_secs(5)) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keys strongSwan logged at `ike = 4`/`chd = 4`, by label, in log order
/// ("Sk_ei secret", "encryption initiator key", ...), as lowercase hex. A
/// key line reads `... LABEL => N bytes @ 0x...`; N bytes follow as hex
/// dump lines `...>    0: 50 64 9C ...  ascii`.
pub fn strongswan_keys(log: &str) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    let mut lines = log.lines();
    while let Some(line) = lines.next() {
        let Some((label, len)) = key_header(line) else {
            continue;
        };
        let mut hex = String::new();
        while hex.len() < 2 * len {
            let Some(dump) = lines.next() else { break };
            let Some((_, rest)) = dump.split_once("> ") else {
                break;
            };
            let Some((_offset, bytes)) = rest.trim_start().split_once(": ") else {
                break;
            };
            for token in bytes.split(' ').take_while(|t| !t.is_empty()) {
                if hex.len() < 2 * len {
                    hex += &token.to_lowercase();
                }
            }
        }
        keys.push((label, hex));
    }
    keys
}

/// The labels of the keys both strongSwan and iked log for an IKE SA and
/// its first Child SA.
pub const KEY_LABELS: &[&str] = &[
    "SKEYSEED",
    "Sk_d secret",
    "Sk_ai secret",
    "Sk_ar secret",
    "Sk_ei secret",
    "Sk_er secret",
    "Sk_pi secret",
    "Sk_pr secret",
    "encryption initiator key",
    "encryption responder key",
    "integrity initiator key",
    "integrity responder key",
];

/// Compares every key strongSwan derived for the first IKE SA and its first
/// Child SA (its log at `ike = 4`, `chd = 4`) with iked's (`--log-keys`):
/// the number compared, or what differs or is missing. With AEAD there are
/// no integrity keys: SK_a* are empty and strongSwan logs no Child
/// integrity keys; iked's must be absent too.
pub fn compare_keys(swan_log: &str, iked_log: &str) -> Result<usize, String> {
    let theirs = strongswan_keys(swan_log);
    let ours = crate::iked_keys(iked_log);
    let first = |keys: &[(String, String)], label: &str| {
        keys.iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| v.clone())
    };
    let mut compared = 0;
    for label in KEY_LABELS {
        let Some(their) = first(&theirs, label) else {
            if label.starts_with("Sk_a") || label.starts_with("integrity") {
                let our = first(&ours, label);
                if our.is_some() && our.as_deref() != Some("") {
                    return Err(format!(
                        "iked has {label} {our:?} where strongSwan has none"
                    ));
                }
                continue;
            }
            return Err(format!("strongSwan logged no {label}"));
        };
        let our = first(&ours, label).ok_or_else(|| format!("iked logged no {label}"))?;
        if our.is_empty() {
            return Err(format!("{label} is empty"));
        }
        if our != their {
            return Err(format!("{label} differs: iked {our}, strongSwan {their}"));
        }
        compared += 1;
    }
    Ok(compared)
}

fn key_header(line: &str) -> Option<(String, usize)> {
    const LABELS: &[&str] = &[
        "Sk_d secret",
        "Sk_ai secret",
        "Sk_ar secret",
        "Sk_ei secret",
        "Sk_er secret",
        "Sk_pi secret",
        "Sk_pr secret",
        "SKEYSEED",
        "encryption initiator key",
        "encryption responder key",
        "integrity initiator key",
        "integrity responder key",
    ];
    let label = LABELS
        .iter()
        .find(|l| line.contains(&format!("> {} =>", l)))?;
    let len = line.split("=> ").nth(1)?.split(' ').next()?.parse().ok()?;
    Some((label.to_string(), len))
}

/// Loads the kernel `modules` a kernel-lab test needs (`modprobe -a`);
/// one that is built in or missing shows later, in the test's own checks.
pub fn modprobe(modules: &[&str]) {
    let _ = Command::new("modprobe").arg("-a").args(modules).status();
}

/// Asserts that `side`'s capture `wire` (tcpdump's lines) holds at least
/// `at_least` ESP packets (printing how many, for `what`) and nothing in
/// the clear but IKE.
pub fn assert_esp_and_ike_only(side: Side, wire: &str, at_least: usize, what: &str) {
    assert_wire_esp_and_ike_only(&format!("side {side:?}"), wire, at_least, what);
}

/// [`assert_esp_and_ike_only`] for any capture: `who` names its sender.
pub fn assert_wire_esp_and_ike_only(who: &str, wire: &str, at_least: usize, what: &str) {
    let esp = wire.lines().filter(|l| l.contains("ESP(spi=")).count();
    println!("{who} sent {esp} ESP packets for {what}");
    assert!(esp >= at_least, "{who} sent {esp} ESP packets:\n{wire}");
    let clear: Vec<&str> = wire
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.contains("ESP(spi=")
                && !l.contains(".500:")
                && !l.contains(".4500:")
                && !l.contains("isakmp")
        })
        .collect();
    assert!(
        clear.is_empty(),
        "{who} sent more than ESP and IKE:\n{clear:?}\nall:\n{wire}"
    );
}

/// One swanctl.conf connection with a tunnel-mode child of the same name,
/// neither rekeyed nor probed (DPD), started by the test: what the PSK and
/// the certificate labs share.
pub(crate) struct SwanctlTunnel<'a> {
    pub name: &'a str,
    pub local: &'a str,
    pub remote: &'a str,
    pub ike: &'a str,
    /// More lines of the connection (each indented by 8 and ended by a
    /// newline), after `rekey_time`.
    pub ike_extra: &'a str,
    /// The `local` and `remote` blocks' lines before `id` (further lines
    /// indented by 12).
    pub local_auth: &'a str,
    pub remote_auth: &'a str,
    pub local_id: &'a str,
    pub remote_id: &'a str,
    pub local_ts: &'a str,
    pub remote_ts: &'a str,
    pub esp: &'a str,
}

pub(crate) fn swanctl_tunnel_section(c: &SwanctlTunnel<'_>) -> String {
    format!(
        r#"    {name} {{
        version = 2
        local_addrs = {local}
        remote_addrs = {remote}
        proposals = {ike}
        unique = never
        dpd_delay = 0
        rekey_time = 0
{ike_extra}        local {{
            {local_auth}
            id = {lid}
        }}
        remote {{
            {remote_auth}
            id = {rid}
        }}
        children {{
            {name} {{
                local_ts = {lts}
                remote_ts = {rts}
                esp_proposals = {esp}
                mode = tunnel
                start_action = none
                rekey_time = 0
            }}
        }}
    }}
"#,
        name = c.name,
        local = c.local,
        remote = c.remote,
        ike = c.ike,
        ike_extra = c.ike_extra,
        local_auth = c.local_auth,
        remote_auth = c.remote_auth,
        lid = c.local_id,
        rid = c.remote_id,
        lts = c.local_ts,
        rts = c.remote_ts,
        esp = c.esp,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_read_from_a_strongswan_log() {
        let log = "15:14:03.844 13[IKE4] <psk-cbc|1> Sk_ei secret => 20 bytes @ 0x7f940c039460\n\
15:14:03.844 13[IKE4] <psk-cbc|1>    0: 9E 44 32 47 B9 EA D9 AC 7E A9 04 2C 0E 2F 43 79  .D2G....~..,./Cy\n\
15:14:03.844 13[IKE4] <psk-cbc|1>   16: 41 42 43 44                                      ABCD\n\
15:14:03.844 13[IKE4] <psk-cbc|1> natd_hash => 20 bytes @ 0x7f940c039120\n";
        let keys = super::strongswan_keys(log);
        assert_eq!(
            keys,
            vec![(
                "Sk_ei secret".to_string(),
                "9e443247b9ead9ac7ea9042c0e2f437941424344".to_string()
            )]
        );
    }
}
