//! Certificate-authenticated connections between iked and strongSwan in
//! the namespace lab ([`crate::lab`]): each side's configuration (iked.conf
//! with `ikeauth`, `set certdir`, `set fragmentation`; swanctl.conf with
//! `auth = pubkey`), and a packet capture that tells IKE fragments (RFC
//! 7383 SKF payloads) and IP fragments apart on the wire.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use crate::lab::{Lab, Side, Strongswan, SwanKernel, SwanSetup};
use crate::pki::{write_iked_certdir, GatewayPki};
use crate::{show_sa, wait_until, Daemon, Scratch};

/// A connection authenticated with certificates, configured alike on both
/// sides. Identities are FQDNs (a.ike.test / b.ike.test, in the
/// certificates' subjectAltName); traffic selectors 10.A.N.0/24 <->
/// 10.B.N.0/24 with N = `inner`.
#[derive(Debug, Clone, Copy)]
pub struct CertConnection {
    pub name: &'static str,
    /// strongSwan's IKE and ESP proposals; iked's match ([`Self::iked_policy`]).
    pub ike_proposal: &'static str,
    pub esp_proposals: &'static str,
    pub inner: u8,
    /// iked's `ikeauth` (None: any signature method, RFC 7427 when the
    /// peer supports it).
    pub ikeauth: Option<&'static str>,
    /// strongSwan's `charon.signature_authentication` (RFC 7427): off, it
    /// neither sends SIGNATURE_HASH_ALGORITHMS nor signs with method 14,
    /// so that both sides use the key's own method (1 for RSA, 9 for
    /// ECDSA P-256).
    pub swan_rfc7427: bool,
    /// strongSwan's `fragmentation = yes` (else `no`).
    pub fragmentation: bool,
    /// Global lines of iked.conf (`set fragmentation`, ...).
    pub iked_settings: &'static str,
    /// Raw public keys instead of certificates: strongSwan's `pubkeys =`
    /// (its own and iked's), iked's `pubkeys/fqdn/b.ike.test`.
    pub raw_keys: bool,
}

const CBC_IKE: &str = "aes256-sha256-modp2048";
const CBC_ESP: &str = "aes256-sha256";
const GCM_IKE: &str = "aes128gcm16-prfsha256-x25519";
const GCM_ESP: &str = "aes128gcm16";

/// The interop lab's `rsa` connection (/work/shared/interop): RSA
/// certificates, AUTH method 1 (RSA PKCS#1 v1.5, `ikeauth rsa`).
pub const RSA: CertConnection = CertConnection {
    name: "rsa",
    ike_proposal: CBC_IKE,
    esp_proposals: CBC_ESP,
    inner: 2,
    ikeauth: Some("rsa"),
    swan_rfc7427: false,
    fragmentation: false,
    iked_settings: "",
    raw_keys: false,
};

/// RSA certificates with RFC 7427 Digital Signatures (method 14), iked
/// without `ikeauth`.
pub const RSA_7427: CertConnection = CertConnection {
    name: "rsa-7427",
    ike_proposal: CBC_IKE,
    esp_proposals: CBC_ESP,
    inner: 2,
    ikeauth: None,
    swan_rfc7427: true,
    fragmentation: false,
    iked_settings: "",
    raw_keys: false,
};

/// ECDSA P-256 certificates, AUTH method 9 (RFC 4754, `ikeauth ecdsa256`).
pub const ECDSA256: CertConnection = CertConnection {
    name: "ecdsa256",
    ike_proposal: GCM_IKE,
    esp_proposals: GCM_ESP,
    inner: 1,
    ikeauth: Some("ecdsa256"),
    swan_rfc7427: false,
    fragmentation: false,
    iked_settings: "",
    raw_keys: false,
};

/// Ed25519 certificates: RFC 8420 signatures in Digital Signature
/// authentication (method 14, `ikeauth rfc7427`), the only way.
pub const ED25519: CertConnection = CertConnection {
    name: "ed25519",
    ike_proposal: GCM_IKE,
    esp_proposals: GCM_ESP,
    inner: 1,
    ikeauth: Some("rfc7427"),
    swan_rfc7427: true,
    fragmentation: false,
    iked_settings: "",
    raw_keys: false,
};

/// A 3-certificate RSA-4096 chain: IKE_AUTH far over 1280 bytes, sent in
/// fragments.
pub const FRAGMENTED: CertConnection = CertConnection {
    name: "frag",
    ike_proposal: CBC_IKE,
    esp_proposals: CBC_ESP,
    inner: 0,
    ikeauth: None,
    swan_rfc7427: true,
    fragmentation: true,
    iked_settings: "set fragmentation\nset fragment_size 1280\n",
    raw_keys: false,
};

/// [`FRAGMENTED`] with iked's `set nofragmentation`: iked does not
/// announce IKE fragmentation, so neither side may use it (RFC 7383 §2.3)
/// and the IKE_AUTH messages cross the 1280-byte link in IP fragments.
pub const UNFRAGMENTED: CertConnection = CertConnection {
    name: "nofrag",
    iked_settings: "set nofragmentation\n",
    ..FRAGMENTED
};

/// ECDSA P-256 raw public keys, no certificate on either side (RFC 7427
/// signatures; iked's `pubkeys/`).
pub const RAW_P256: CertConnection = CertConnection {
    name: "raw-p256",
    ike_proposal: GCM_IKE,
    esp_proposals: GCM_ESP,
    inner: 1,
    ikeauth: None,
    swan_rfc7427: true,
    fragmentation: false,
    iked_settings: "",
    raw_keys: true,
};

impl CertConnection {
    pub fn local_ts(&self, side: Side) -> String {
        format!("10.{}.{}.0/24", side.inner_net(), self.inner)
    }

    /// `side`'s inner address in this connection's selector.
    pub fn inner_address(&self, side: Side) -> String {
        format!("10.{}.{}.1", side.inner_net(), self.inner)
    }

    /// The iked.conf policy for `side` (srcid/dstid as FQDNs, no psk:
    /// public keys), with `extra` (lifetimes, ...) before the identities.
    pub fn iked_policy(&self, side: Side, active: bool, extra: &str) -> String {
        let (ikesa, childsa) = if self.ike_proposal == GCM_IKE {
            (
                "ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519",
                "childsa enc aes-128-gcm",
            )
        } else {
            (
                "ikesa enc aes-256 auth hmac-sha2-256 prf hmac-sha2-256 group modp2048",
                "childsa enc aes-256 auth hmac-sha2-256",
            )
        };
        let ikeauth = self
            .ikeauth
            .map(|a| format!(" ikeauth {a}"))
            .unwrap_or_default();
        format!(
            "ikev2 \"{name}\" {mode} esp tunnel from {from} to {to} local {local} peer {peer} \\\n  {ikesa} \\\n  {childsa} \\\n  {extra}{sep}srcid \"{srcid}\" dstid \"{dstid}\"{ikeauth}\n",
            name = self.name,
            mode = if active { "active" } else { "passive" },
            from = self.local_ts(side),
            to = self.local_ts(side.other()),
            local = side.outer_v4(),
            peer = side.other().outer_v4(),
            sep = if extra.is_empty() { "" } else { " " },
            srcid = side.id(),
            dstid = side.other().id(),
        )
    }

    /// A whole iked.conf for `side`: global settings (`set passive`, `set
    /// certdir`, fragmentation) and the policy.
    pub fn iked_config(&self, side: Side, certdir: &Path, extra: &str) -> String {
        format!(
            "set passive\nset certdir \"{}\"\n{}{}",
            certdir.display(),
            self.iked_settings,
            self.iked_policy(side, false, extra)
        )
    }

    /// strongSwan's swanctl.conf section for `side`. (strongSwan 5.9.8
    /// sends its end-entity certificate only, not the intermediates in its
    /// x509ca/, with or without a local `cacerts` trust anchor: a peer
    /// needs strongSwan's intermediate in its own store.)
    pub fn swanctl_section(&self, side: Side) -> String {
        let fragmentation = if self.fragmentation { "yes" } else { "no" };
        let (local_key, remote_key) = if self.raw_keys {
            (
                format!("pubkeys = {}", crate::pki::swanctl_pubkey_name(side.id())),
                format!(
                    "\n            pubkeys = {}",
                    crate::pki::swanctl_pubkey_name(side.other().id())
                ),
            )
        } else {
            (
                format!("certs = {}", crate::pki::swanctl_cert_name(side.id())),
                String::new(),
            )
        };
        crate::lab::swanctl_tunnel_section(&crate::lab::SwanctlTunnel {
            name: self.name,
            local: side.outer_v4(),
            remote: side.other().outer_v4(),
            ike: self.ike_proposal,
            ike_extra: &format!("        fragmentation = {fragmentation}\n"),
            local_auth: &format!("auth = pubkey\n            {local_key}"),
            remote_auth: &format!("auth = pubkey{remote_key}"),
            local_id: side.id(),
            remote_id: side.other().id(),
            local_ts: &self.local_ts(side),
            remote_ts: &self.local_ts(side.other()),
            esp: self.esp_proposals,
        })
    }

    /// What strongSwan on `side` is started with for this connection,
    /// holding `credentials`.
    pub fn swan_setup<'a>(
        &self,
        side: Side,
        kernel: SwanKernel,
        credentials: &'a GatewayPki,
    ) -> SwanSetup<'a> {
        SwanSetup {
            kernel,
            charon_settings: if self.swan_rfc7427 {
                ""
            } else {
                "    signature_authentication = no\n"
            },
            extra_sections: vec![self.swanctl_section(side)],
            credentials: Some(credentials),
            ..SwanSetup::default()
        }
    }
}

/// Two strongSwans (userspace ESP) for `conn` in `lab`, each with its
/// side's credentials: B (the responder) started first, then A.
pub fn start_strongswan_pair(
    lab: &Lab,
    conn: CertConnection,
    a: &GatewayPki,
    b: &GatewayPki,
) -> (Strongswan, Strongswan) {
    let swan_b = Strongswan::start_setup(
        lab,
        Side::B,
        &conn.swan_setup(Side::B, SwanKernel::Libipsec, b),
    );
    let swan_a = Strongswan::start_setup(
        lab,
        Side::A,
        &conn.swan_setup(Side::A, SwanKernel::Libipsec, a),
    );
    (swan_a, swan_b)
}

/// The last lines of both strongSwans' logs, for a failure's message.
pub fn strongswan_pair_context(swan_a: &Strongswan, swan_b: &Strongswan) -> String {
    format!(
        "--- A ---\n{}\n--- B ---\n{}",
        tail(&swan_a.log_text(), 60),
        tail(&swan_b.log_text(), 60)
    )
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether `sas` (`ikectl show sa`) hold policy `name`'s IKE SA with a
/// Child SA.
pub fn established_with_child(sas: &[Value], name: &str) -> bool {
    sas.iter().any(|sa| {
        sa["policy"] == name
            && sa["state"] == "established"
            && sa["children"].as_array().is_some_and(|c| !c.is_empty())
    })
}

/// Waits (30 s at most) until iked's `ikectl show sa` holds policy
/// `name`'s IKE SA with a Child SA and strongSwan lists an established IKE
/// SA and an installed Child SA.
pub fn wait_established_on_both(
    iked: &Daemon,
    swan: &Strongswan,
    name: &str,
    context: impl Fn() -> String,
) {
    wait_until(
        "IKE and Child SA established on both sides",
        Duration::from_secs(30),
        || {
            let swan = swan.list_sas();
            established_with_child(&show_sa(iked), name)
                && swan.contains("ESTABLISHED")
                && swan.contains("INSTALLED")
        },
        context,
    );
}

/// iked on side A, strongSwan on side B, with certificates.
pub struct CertPair {
    pub swan: Strongswan,
    pub iked: Daemon,
    pub lab: Lab,
    _certdir: Option<Scratch>,
}

impl CertPair {
    /// Starts both sides for `conn` in a new lab (hand-added routes, as
    /// interop_strongswan.rs): strongSwan (kernel-libipsec) holding `b`,
    /// iked holding `a` in a certdir of its own.
    pub fn start(tag: &str, conn: CertConnection, a: &GatewayPki, b: &GatewayPki) -> CertPair {
        CertPair::start_in(Lab::new(tag), SwanKernel::Libipsec, tag, conn, a, b)
    }

    /// [`CertPair::start`] in `lab`, strongSwan with `kernel`.
    pub fn start_in(
        lab: Lab,
        kernel: SwanKernel,
        tag: &str,
        conn: CertConnection,
        a: &GatewayPki,
        b: &GatewayPki,
    ) -> CertPair {
        let certdir = Scratch::new(&format!("{tag}-certdir"));
        let dir = write_iked_certdir(&certdir.file("iked"), a, Side::A.id());
        let mut pair = CertPair::start_with_certdir(lab, kernel, tag, conn, &dir, b);
        pair._certdir = Some(certdir);
        pair
    }

    /// [`CertPair::start_in`] with iked's certdir as it is at `certdir`
    /// (made by `ikectl ca ... install`, say).
    pub fn start_with_certdir(
        lab: Lab,
        kernel: SwanKernel,
        tag: &str,
        conn: CertConnection,
        certdir: &Path,
        b: &GatewayPki,
    ) -> CertPair {
        let swan = Strongswan::start_setup(&lab, Side::B, &conn.swan_setup(Side::B, kernel, b));
        let iked = Daemon::start_with(
            Some(&lab.a),
            tag,
            &conn.iked_config(Side::A, certdir, ""),
            &["--log-keys"],
        );
        CertPair {
            swan,
            iked,
            lab,
            _certdir: None,
        }
    }

    pub fn context(&self) -> String {
        format!(
            "--- iked log ---\n{}\n--- swanctl --list-sas ---\n{}\n--- charon log (tail) ---\n{}",
            self.iked.log_text(),
            self.swan.list_sas(),
            tail(&self.swan.log_text(), 120)
        )
    }

    /// Starts the IKE SA with `conn`'s Child SA from iked or strongSwan.
    pub fn initiate(&self, conn: CertConnection, iked_initiates: bool) {
        if iked_initiates {
            let out = self.iked.ikectl(&["initiate", conn.name]);
            assert!(
                out.status.success(),
                "ikectl initiate: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.context()
            );
        } else {
            let out = self
                .swan
                .swanctl(&["--initiate", "--child", conn.name, "--timeout", "30"]);
            assert!(
                out.status.success(),
                "swanctl --initiate failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                self.context()
            );
        }
    }

    /// strongSwan starts `conn` (20 s at most) and must fail: iked
    /// refuses it.
    pub fn swan_initiation_fails(&self, conn: CertConnection) {
        let out = self
            .swan
            .swanctl(&["--initiate", "--child", conn.name, "--timeout", "20"]);
        assert!(
            !out.status.success(),
            "strongSwan's IKE SA must fail\n{}",
            self.context()
        );
    }

    /// iked's IKE SA of policy `name` in `ikectl show sa` (panics when
    /// there is none).
    pub fn iked_sa(&self, name: &str) -> Value {
        show_sa(&self.iked)
            .into_iter()
            .find(|sa| sa["policy"] == name)
            .expect("iked's IKE SA")
    }

    pub fn wait_established(&self, conn: CertConnection) {
        wait_established_on_both(&self.iked, &self.swan, conn.name, || self.context());
    }
}

/// Sets the MTU of both veth ends of the lab.
pub fn set_veth_mtu(lab: &Lab, mtu: u32) {
    for (side, dev) in [(Side::A, "veth-a"), (Side::B, "veth-b")] {
        crate::ip_in(lab.ns(side), &format!("link set {dev} mtu {mtu}"));
    }
}

/// A UDP datagram as one side sent it, from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The whole IP datagram's length.
    pub ip_len: usize,
    /// An IP fragment (IPv4 MF or offset, or an IPv6 fragment header).
    pub ip_fragment: bool,
    pub src_port: u16,
    pub dst_port: u16,
    /// The UDP payload, when this is not a non-first IP fragment.
    pub payload: Vec<u8>,
}

/// The IKE header of a datagram (RFC 7296 §3.1), and its SKF header
/// (RFC 7383 §2.5) when the first payload is an Encrypted Fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeMessage {
    pub exchange: u8,
    pub response: bool,
    pub message_id: u32,
    pub length: u32,
    /// (fragment number, total fragments)
    pub fragment: Option<(u16, u16)>,
}

/// Exchange type IKE_AUTH (RFC 7296 §3.1).
pub const IKE_AUTH: u8 = 35;
/// Payload type of an Encrypted Fragment (RFC 7383 §2.5).
pub const PAYLOAD_SKF: u8 = 53;

impl Datagram {
    /// The IKE message in this datagram: on port 500 the UDP payload, on
    /// 4500 after the four-zero-byte non-ESP marker (RFC 3948 §2.2).
    pub fn ike(&self) -> Option<IkeMessage> {
        let body = if self.src_port == 4500 || self.dst_port == 4500 {
            self.payload.strip_prefix(&[0, 0, 0, 0][..])?
        } else if self.src_port == 500 || self.dst_port == 500 {
            &self.payload[..]
        } else {
            return None;
        };
        if body.len() < 28 || body[17] != 0x20 {
            return None;
        }
        let fragment = if body[16] == PAYLOAD_SKF && body.len() >= 36 {
            Some((
                u16::from_be_bytes([body[32], body[33]]),
                u16::from_be_bytes([body[34], body[35]]),
            ))
        } else {
            None
        };
        Some(IkeMessage {
            exchange: body[18],
            response: body[19] & 0x20 != 0,
            message_id: u32::from_be_bytes([body[20], body[21], body[22], body[23]]),
            length: u32::from_be_bytes([body[24], body[25], body[26], body[27]]),
            fragment,
        })
    }
}

/// The UDP datagrams of a pcap file (Ethernet link type, as on a veth).
pub fn read_pcap(bytes: &[u8]) -> Result<Vec<Datagram>, String> {
    if bytes.len() < 24 {
        return Err(format!("pcap of {} bytes has no header", bytes.len()));
    }
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let big_endian = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => false,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => true,
        other => return Err(format!("not a pcap file (magic {other:#x})")),
    };
    let u32_at = |at: usize| -> u32 {
        let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let link_type = u32_at(20);
    if link_type != 1 {
        return Err(format!("link type {link_type}, expected Ethernet (1)"));
    }
    let mut datagrams = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let captured = u32_at(at + 8) as usize;
        let start = at + 16;
        let end = start
            .checked_add(captured)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| format!("record at {at} runs past the end"))?;
        if let Some(d) = udp_of_frame(&bytes[start..end]) {
            datagrams.push(d);
        }
        at = end;
    }
    Ok(datagrams)
}

fn udp_of_frame(frame: &[u8]) -> Option<Datagram> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(14..)?;
    let (ip_len, ip_fragment, first, udp) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            if ip.get(9) != Some(&17) {
                return None;
            }
            let flags_offset = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
            let more = flags_offset & 0x2000 != 0;
            let offset = flags_offset & 0x1fff;
            let len = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            (len, more || offset != 0, offset == 0, ip.get(ihl..)?)
        }
        0x86dd => {
            let len = 40 + usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            match ip.get(6)? {
                17 => (len, false, true, ip.get(40..)?),
                // A fragment header: IP fragmentation of UDP.
                44 if ip.get(40) == Some(&17) => {
                    let offset = u16::from_be_bytes([*ip.get(42)?, *ip.get(43)?]) >> 3;
                    (len, true, offset == 0, ip.get(48..)?)
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    if !first {
        return Some(Datagram {
            ip_len,
            ip_fragment,
            src_port: 0,
            dst_port: 0,
            payload: Vec::new(),
        });
    }
    Some(Datagram {
        ip_len,
        ip_fragment,
        src_port: u16::from_be_bytes([*udp.first()?, *udp.get(1)?]),
        dst_port: u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]),
        payload: udp.get(8..)?.to_vec(),
    })
}

/// tcpdump writing what one side sends on its veth (`-Q out`) to a pcap
/// file, until stopped.
pub struct PcapCapture {
    child: Child,
    file: PathBuf,
    log: PathBuf,
}

impl PcapCapture {
    /// Starts the capture of `side`'s outgoing UDP and waits until tcpdump
    /// listens.
    pub fn start(lab: &Lab, side: Side) -> PcapCapture {
        let ns = lab.ns(side);
        let dev = if side == Side::A { "veth-a" } else { "veth-b" };
        let file = std::env::temp_dir().join(format!("pcap-{ns}-{}.pcap", std::process::id()));
        let log = file.with_extension("err");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "tcpdump",
                "-n",
                "-U",
                "--immediate-mode",
                "-Q",
                "out",
                "-i",
            ])
            .arg(dev)
            .arg("-w")
            .arg(&file)
            .arg("udp")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("capture log"))
            .spawn()
            .expect("tcpdump");
        wait_until(
            "tcpdump to start",
            Duration::from_secs(10),
            || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("listening on")),
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
        PcapCapture { child, file, log }
    }

    /// Stops tcpdump (after a short grace for packets in flight) and
    /// returns the datagrams it saw.
    pub fn stop(mut self) -> Vec<Datagram> {
        std::thread::sleep(Duration::from_millis(300));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.file).unwrap_or_default();
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(&self.log);
        read_pcap(&bytes).unwrap_or_else(|e| panic!("capture {}: {e}", self.file.display()))
    }
}

impl Drop for PcapCapture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one side's capture shows of IKE_AUTH fragmentation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FragmentSummary {
    /// IKE_AUTH datagrams carrying an SKF payload: (message ID, response,
    /// fragment number, total, IP datagram length).
    pub ike_auth_fragments: Vec<(u32, bool, u16, u16, usize)>,
    /// IKE_AUTH datagrams without fragments (SK).
    pub ike_auth_whole: usize,
    /// IP fragments of any UDP datagram.
    pub ip_fragments: usize,
    /// The largest UDP datagram (IP length).
    pub largest: usize,
}

pub fn summarize(datagrams: &[Datagram]) -> FragmentSummary {
    let mut summary = FragmentSummary::default();
    for d in datagrams {
        summary.largest = summary.largest.max(d.ip_len);
        if d.ip_fragment {
            summary.ip_fragments += 1;
        }
        let Some(ike) = d.ike() else { continue };
        if ike.exchange != IKE_AUTH {
            continue;
        }
        match ike.fragment {
            Some((number, total)) => summary.ike_auth_fragments.push((
                ike.message_id,
                ike.response,
                number,
                total,
                d.ip_len,
            )),
            None => summary.ike_auth_whole += 1,
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One Ethernet/IPv4/UDP frame from 198.18.0.1:4500 to :4500 with
    /// `payload`.
    fn frame(payload: &[u8], flags_offset: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = 20 + 8 + payload.len();
        let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0];
        ip.extend_from_slice(&flags_offset.to_be_bytes());
        ip.extend_from_slice(&[64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
        f.extend_from_slice(&ip);
        let udp_len = 8 + payload.len();
        f.extend_from_slice(&[
            0x11,
            0x94,
            0x11,
            0x94,
            (udp_len >> 8) as u8,
            udp_len as u8,
            0,
            0,
        ]);
        f.extend_from_slice(payload);
        f
    }

    fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        p.extend_from_slice(&[2, 0, 4, 0]);
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&65535u32.to_le_bytes());
        p.extend_from_slice(&1u32.to_le_bytes());
        for f in frames {
            p.extend_from_slice(&[0; 8]);
            p.extend_from_slice(&(f.len() as u32).to_le_bytes());
            p.extend_from_slice(&(f.len() as u32).to_le_bytes());
            p.extend_from_slice(f);
        }
        p
    }

    #[test]
    fn skf_fragments_and_ip_fragments_are_told_apart() {
        // Non-ESP marker, IKE header (IKE_AUTH request, message ID 1), SKF
        // header: fragment 2 of 3.
        let mut ike = vec![0, 0, 0, 0];
        ike.extend_from_slice(&[1; 16]);
        ike.extend_from_slice(&[PAYLOAD_SKF, 0x20, IKE_AUTH, 0x08, 0, 0, 0, 1, 0, 0, 0, 100]);
        ike.extend_from_slice(&[0, 0, 0, 40, 0, 2, 0, 3]);
        ike.extend_from_slice(&[0xaa; 32]);
        let mut whole = ike.clone();
        whole[4 + 16] = 46;
        let datagrams = read_pcap(&pcap(&[
            frame(&ike, 0),
            frame(&whole, 0x2000),
            frame(&[9; 10], 0x0010),
        ]))
        .unwrap();
        assert_eq!(datagrams.len(), 3);
        let summary = summarize(&datagrams);
        assert_eq!(
            summary.ike_auth_fragments,
            vec![(1, false, 2, 3, 20 + 8 + ike.len())]
        );
        assert_eq!(summary.ike_auth_whole, 1);
        assert_eq!(summary.ip_fragments, 2);
        assert!(read_pcap(b"short").is_err());
    }
}
