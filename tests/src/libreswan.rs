//! libreswan 4.10 as an independent peer in the lab of `lab.rs`: pluto,
//! unpacked from Debian's packages by `tests/lab/libreswan.sh` (its package
//! conflicts with strongSwan's), run in one side's namespace with its own
//! configuration, NSS database, control socket and log in a scratch
//! directory. Everything this starts is stopped at drop.
//!
//! What pluto 4.10 needs, found by hand and kept here:
//! - `leftupdown=%disabled`: the unpacked updown script fails, and pluto then
//!   refuses the Child SA (TS_UNACCEPTABLE as responder) or, as initiator,
//!   drops the IKE SA without a Delete and revives it in a loop;
//! - PFS is pluto's default for rekeyed Child SAs: iked's `childsa` carries a
//!   group in the lab's policies;
//! - one connection loaded at a time: pluto runs a connection's Child SA
//!   over any IKE SA it holds for the same peer and IDs, and as IKE_SA_INIT
//!   responder picks its connection by addresses and authentication method.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::lab::{Connection, Lab, Side, LAB_PSK};
use crate::Scratch;

fn setup_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/libreswan.sh")
}

/// Unpacks libreswan into its cache once (idempotent, locked): fails the
/// test with the script's reason when it cannot.
pub fn setup() {
    crate::require_root("libreswan's setup");
    let out = Command::new(setup_script())
        .arg("setup")
        .output()
        .expect("run tests/lab/libreswan.sh setup");
    assert!(
        out.status.success(),
        "tests/lab/libreswan.sh setup failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How one lab connection reads for libreswan, beyond what `Connection`
/// says for both implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwanMode {
    /// The connection's inner networks, tunnel mode.
    Tunnel,
    /// Host to host between the two gateways, transport mode.
    Transport,
}

/// A libreswan connection matching `conn` as iked's policy of the lab has
/// it (`Connection::iked_policy`), for the side pluto runs on.
pub fn conn_section(conn: Connection, side: Side, mode: SwanMode, extra: &str) -> String {
    // The same algorithms as iked's policy: pluto proposes the Child SA's
    // group only in CREATE_CHILD_SA (PFS), as iked does.
    let (ike, esp) = match conn.name {
        "psk-gcm" => ("aes_gcm128-sha2_256-dh31", "aes_gcm128-none-dh31"),
        "psk-cbc" => ("aes256-sha2_256-modp2048", "aes256-sha2_256-modp2048"),
        _ => ("aes256-sha2_256-modp2048", "aes256-sha2_256"),
    };
    let other = side.other();
    let subnets = match mode {
        SwanMode::Tunnel => format!(
            "    leftsubnet={}\n    rightsubnet={}\n    type=tunnel\n",
            conn.local_ts(side),
            conn.local_ts(other)
        ),
        SwanMode::Transport => "    type=transport\n".to_string(),
    };
    format!(
        "conn {name}\n    auto=ignore\n    ikev2=insist\n    authby=secret\n    left={left}\n    leftid=@{lid}\n    leftupdown=%disabled\n    right={right}\n    rightid=@{rid}\n{subnets}    ike={ike}\n    esp={esp}\n    pfs=yes\n    retransmit-timeout=20s\n{extra}\n",
        name = conn.name,
        left = conn.address(side),
        right = conn.address(other),
        lid = side.id(),
        rid = other.id(),
    )
}

/// iked's policy for `conn` on `side` in `mode`, with `extra` keywords
/// (lifetimes) before the key, passive.
pub fn iked_policy(conn: Connection, side: Side, mode: SwanMode, extra: &str) -> String {
    let other = side.other();
    let policy = conn
        .iked_policy(side, false)
        .replace(" psk ", &format!(" {extra} psk "));
    match mode {
        SwanMode::Tunnel => policy,
        SwanMode::Transport => policy.replace(
            &format!(
                "tunnel from {} to {}",
                conn.local_ts(side),
                conn.local_ts(other)
            ),
            &format!(
                "transport from {} to {}",
                conn.address(side),
                conn.address(other)
            ),
        ),
    }
}

/// A pluto running in one side's namespace.
pub struct Libreswan {
    child: Child,
    /// IKE SPIs by state, read from the log as it grows (the debug log
    /// runs to megabytes: polls read only what is new).
    spi_index: std::cell::RefCell<SpiIndex>,
    /// The unpacked libreswan (`libreswan.sh root`).
    root: PathBuf,
    dir: PathBuf,
    log: PathBuf,
    ctl: PathBuf,
    ns: String,
    _scratch: Scratch,
}

impl Libreswan {
    /// Starts pluto on `side` with `sections` (from `conn_section`) in its
    /// ipsec.conf, none loaded yet (`add` loads one), and waits for its
    /// control socket.
    pub fn start(lab: &Lab, side: Side, sections: &[String]) -> Libreswan {
        Libreswan::start_with_debug(lab, side, sections, "base crypt private")
    }

    /// As `start`, with pluto's debug classes: `base` at least (the IKE
    /// SPIs of each state); `crypt private` add the keys (`libreswan_keys`),
    /// a lot of text for an emulated machine.
    pub fn start_with_debug(lab: &Lab, side: Side, sections: &[String], debug: &str) -> Libreswan {
        setup();
        let out = Command::new(setup_script())
            .arg("root")
            .output()
            .expect("libreswan.sh root");
        let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let scratch = Scratch::new(&format!("pluto-{}", lab.ns(side)));
        let dir = scratch.0.clone();
        let log = dir.join("pluto.log");
        let run = dir.join("run");
        let nss = dir.join("nss");
        for d in [&run, &nss] {
            std::fs::create_dir_all(d).expect("pluto dir");
        }
        let ctl = run.join("pluto.ctl");
        let certutil = libreswan_command(None, "certutil")
            .args(["-N", "--empty-password", "-d"])
            .arg(format!("sql:{}", nss.display()))
            .output()
            .expect("certutil");
        assert!(
            certutil.status.success(),
            "certutil -N: {}",
            String::from_utf8_lossy(&certutil.stderr)
        );
        // base: the IKE SPIs of each state; crypt+private: the keys.
        let mut conf = format!(
            "config setup\n    logfile={log}\n    logappend=no\n    plutodebug=\"{debug}\"\n    dumpdir={run}\n    uniqueids=no\n\n",
            log = log.display(),
            run = run.display()
        );
        for s in sections {
            conf += s;
        }
        std::fs::write(dir.join("ipsec.conf"), conf).expect("ipsec.conf");
        let secrets = dir.join("ipsec.secrets");
        std::fs::write(
            &secrets,
            format!("@a.ike.test @b.ike.test : PSK \"{LAB_PSK}\"\n"),
        )
        .expect("ipsec.secrets");
        let child = libreswan_command(Some(lab.ns(side)), "pluto")
            .arg("--nofork")
            .arg("--config")
            .arg(dir.join("ipsec.conf"))
            .arg("--rundir")
            .arg(&run)
            .arg("--nssdir")
            .arg(&nss)
            .arg("--secretsfile")
            .arg(&secrets)
            .arg("--ipsecdir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("pluto.stderr")).expect("stderr file"))
            .spawn()
            .expect("start pluto");
        let mut pluto = Libreswan {
            child,
            spi_index: Default::default(),
            root,
            dir,
            log,
            ctl,
            ns: lab.ns(side).to_string(),
            _scratch: scratch,
        };
        // pluto self-tests its algorithms first: seconds under emulation.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(pluto.ctl.exists() && pluto.log_text().contains("listening for IKE messages")) {
            if let Ok(Some(status)) = pluto.child.try_wait() {
                panic!(
                    "pluto exited ({status}): {}\n{}",
                    std::fs::read_to_string(pluto.dir.join("pluto.stderr")).unwrap_or_default(),
                    pluto.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "pluto's control socket did not appear\n{}",
                pluto.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pluto
    }

    /// Runs whack against this pluto, bounded in time.
    pub fn whack(&self, args: &[&str]) -> Output {
        // whack only talks to pluto's control socket, a path: it needs
        // neither the namespace nor the mount of /usr/libexec, whose setup
        // costs seconds per call on an emulated machine (tests poll).
        Command::new("timeout")
            .arg("60")
            .arg(self.root.join("usr/libexec/ipsec/whack"))
            .env(
                "LD_LIBRARY_PATH",
                self.root.join("usr/lib/x86_64-linux-gnu"),
            )
            .arg("--ctlsocket")
            .arg(&self.ctl)
            .args(args)
            .output()
            .expect("whack")
    }

    fn whack_ok(&self, args: &[&str]) -> String {
        let out = self.whack(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "whack {}: {}\n{text}",
            args.join(" "),
            out.status
        );
        text
    }

    /// Loads connection `name` from the ipsec.conf (addconn).
    pub fn add(&self, name: &str) {
        let out = libreswan_command(Some(&self.ns), "addconn")
            .arg("--config")
            .arg(self.dir.join("ipsec.conf"))
            .arg("--ctlsocket")
            .arg(&self.ctl)
            .arg(name)
            .output()
            .expect("addconn");
        assert!(
            out.status.success(),
            "addconn {name}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
    }

    /// Starts the connection without waiting for the outcome.
    pub fn initiate(&self, name: &str) -> String {
        self.whack_ok(&["--name", name, "--initiate", "--asynchronous"])
    }

    /// Terminates the connection's SAs (pluto sends Deletes) and keeps it
    /// loaded.
    pub fn terminate(&self, name: &str) -> String {
        self.whack_ok(&["--name", name, "--terminate"])
    }

    /// Rekeys the connection's Child SA (CREATE_CHILD_SA, with KE: PFS).
    pub fn rekey_child(&self, name: &str) -> String {
        self.whack_ok(&["--name", name, "--rekey-ipsec", "--asynchronous"])
    }

    /// Rekeys the connection's IKE SA.
    pub fn rekey_ike(&self, name: &str) -> String {
        self.whack_ok(&["--name", name, "--rekey-ike", "--asynchronous"])
    }

    /// Unloads the connection, deleting its SAs.
    pub fn delete(&self, name: &str) -> String {
        self.whack_ok(&["--name", name, "--delete"])
    }

    pub fn status(&self) -> String {
        String::from_utf8_lossy(&self.whack(&["--status"]).stdout).into_owned()
    }

    pub fn showstates(&self) -> String {
        String::from_utf8_lossy(&self.whack(&["--showstates"]).stdout).into_owned()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log without pluto's debug lines (those start with "| ").
    pub fn log_summary(&self) -> String {
        self.log_text()
            .lines()
            .filter(|l| !is_debug_line(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// IKE SAs pluto holds as established, as "SPIi/SPIr" in 16 hex digits
    /// each (the form `ikectl show sa` uses).
    pub fn established_ike_spis(&self) -> Vec<String> {
        let states = established_states(&self.showstates(), "STATE_V2_ESTABLISHED_IKE_SA");
        let index = self.refreshed_spi_index();
        states
            .into_iter()
            .filter_map(|n| index.spis.get(&n).cloned())
            .collect()
    }

    /// Every IKE SA pluto created so far, by state number, with its SPIs
    /// as "SPIi/SPIr" (once IKE_SA_INIT is through).
    pub fn logged_ike_spis(&self) -> Vec<(u32, String)> {
        self.refreshed_spi_index()
            .spis
            .iter()
            .filter(|(_, spis)| !spis.ends_with("/0000000000000000"))
            .map(|(n, spis)| (*n, spis.clone()))
            .collect()
    }

    fn refreshed_spi_index(&self) -> std::cell::Ref<'_, SpiIndex> {
        {
            use std::io::{Read, Seek, SeekFrom};
            let mut index = self.spi_index.borrow_mut();
            if let Ok(mut file) = std::fs::File::open(&self.log) {
                let mut fresh = Vec::new();
                if file.seek(SeekFrom::Start(index.offset)).is_ok()
                    && file.read_to_end(&mut fresh).is_ok()
                {
                    index.offset += fresh.len() as u64;
                    index.partial.extend_from_slice(&fresh);
                    // Only whole lines: the last one may still be written.
                    if let Some(end) = index.partial.iter().rposition(|&b| b == b'\n') {
                        let whole: Vec<u8> = index.partial.drain(..=end).collect();
                        for line in String::from_utf8_lossy(&whole).lines() {
                            if let Some((state, spis)) = ike_spis_line(line) {
                                index.spis.insert(state, spis);
                            }
                        }
                    }
                }
            }
        }
        self.spi_index.borrow()
    }

    /// Established Child SAs as pluto reports them in `whack --status`.
    pub fn child_sas(&self) -> Vec<SwanChild> {
        child_sas(&self.status())
    }

    pub fn namespace(&self) -> &str {
        &self.ns
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything to print when a test fails.
    pub fn context(&self) -> String {
        format!(
            "--- whack --showstates ---\n{}\n--- pluto log (without debug, tail) ---\n{}",
            self.showstates(),
            tail(&self.log_summary(), 80)
        )
    }

    /// Kills pluto at once (no Deletes sent): a peer that vanished.
    pub fn kill(&mut self) {
        let pid = std::fs::read_to_string(self.ctl.with_file_name("pluto.pid")).unwrap_or_default();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = pid.trim();
        assert!(
            pid.is_empty() || !Path::new(&format!("/proc/{pid}")).exists(),
            "pluto (pid {pid}) survived the kill of its process"
        );
    }
}

impl Drop for Libreswan {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if crate::terminate_within(&mut self.child, Duration::from_secs(5)) {
                return;
            }
            self.kill();
        }
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A command of the unpacked libreswan (`libreswan.sh exec`: its libraries,
/// its usr/libexec over /usr/libexec in a private mount namespace), in the
/// named network namespace or the current one, bounded to 60 s.
fn libreswan_command(netns: Option<&str>, program: &str) -> Command {
    // pluto runs for the whole test and is stopped at drop: only the tools
    // are bounded. Each step below execs the next (ip netns exec, the
    // script, unshare, sh), so a pluto child is pluto itself and a signal
    // reaches it.
    let mut command = Command::new(if program == "pluto" { "env" } else { "timeout" });
    if program != "pluto" {
        command.arg("60");
    }
    if let Some(ns) = netns {
        command.args(["ip", "netns", "exec", ns]);
    }
    command.arg(setup_script()).arg("exec").arg(program);
    command
}

/// pluto's log lines read "Mon DD HH:MM:SS.ffffff: text"; debug text
/// starts with "| ".
fn log_text_of(line: &str) -> &str {
    // The time stamp ends at the first ": " after the clock.
    match line.find(": ") {
        Some(i) if i < 32 => &line[i + 2..],
        _ => line,
    }
}

fn is_debug_line(line: &str) -> bool {
    log_text_of(line).starts_with('|')
}

/// State numbers of `whack --showstates` lines in `state`.
fn established_states(showstates: &str, state: &str) -> Vec<u32> {
    showstates
        .lines()
        .filter(|l| l.contains(state))
        .filter_map(|l| {
            let rest = l.split_once('#')?.1;
            rest.split(':').next()?.parse().ok()
        })
        .collect()
}

/// What `refreshed_spi_index` has read of pluto's log so far.
#[derive(Default)]
struct SpiIndex {
    offset: u64,
    partial: Vec<u8>,
    spis: std::collections::BTreeMap<u32, String>,
}

/// pluto logs, at debug level base, each IKE SA's pair of SPIs when it
/// enters its state table: `entry state hash_table_entries.ike_spis@0x...
/// "name" #N: a2 d1 ... (16 bytes) added to hash table bucket`. The last
/// such line for state N holds its final SPIs.
fn ike_spis_line(line: &str) -> Option<(u32, String)> {
    if !(line.contains("hash_table_entries.ike_spis@") && line.contains("added to hash table")) {
        return None;
    }
    let rest = line.split_once("\" #")?.1;
    let (state, rest) = rest.split_once(": ")?;
    let bytes: String = rest
        .split(" added")
        .next()?
        .split_whitespace()
        .collect::<Vec<_>>()
        .concat();
    if bytes.len() != 32 {
        return None;
    }
    Some((
        state.parse().ok()?,
        format!("{}/{}", &bytes[..16], &bytes[16..]),
    ))
}

#[cfg(test)]
fn ike_spis_of_state(log: &str, state: u32) -> Option<String> {
    log.lines()
        .rev()
        .filter_map(ike_spis_line)
        .find(|(n, _)| *n == state)
        .map(|(_, spis)| spis)
}

/// One Child SA in `whack --status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwanChild {
    pub state: u32,
    /// The SPI pluto sends with (the peer's inbound SPI), 8 hex digits.
    pub spi_out: String,
    /// The SPI pluto receives with.
    pub spi_in: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Parses `whack --status` lines such as
/// `000 #2: "psk-cbc" esp.ef7b492a@198.18.0.1 esp.28c1305@198.18.0.2
/// (esp:SPI@address for IPv6)
/// tun.0@198.18.0.1 tun.0@198.18.0.2 Traffic: ESPin=84B ESPout=84B ESPmax=2^63B`
/// (outbound SA first: at the peer's address), for established Child SAs.
fn child_sas(status: &str) -> Vec<SwanChild> {
    let established = established_states(status, "STATE_V2_ESTABLISHED_CHILD_SA");
    status
        .lines()
        .filter_map(|l| {
            let rest = l.split_once('#')?.1;
            let state: u32 = rest.split(':').next()?.parse().ok()?;
            if !established.contains(&state) {
                return None;
            }
            let esp: Vec<&str> = rest
                .split_whitespace()
                // "esp.SPI@addr" for IPv4, "esp:SPI@addr" for IPv6.
                .filter_map(|t| t.strip_prefix("esp.").or_else(|| t.strip_prefix("esp:")))
                .collect();
            if esp.len() < 2 {
                return None;
            }
            let spi = |t: &str| -> Option<String> {
                let hex = t.split('@').next()?;
                u32::from_str_radix(hex, 16)
                    .ok()
                    .map(|v| format!("{v:08x}"))
            };
            let counter = |key: &str| -> u64 {
                rest.split_whitespace()
                    .find_map(|t| t.strip_prefix(key))
                    .and_then(|v| v.strip_suffix('B'))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            Some(SwanChild {
                state,
                spi_out: spi(esp[0])?,
                spi_in: spi(esp[1])?,
                bytes_in: counter("ESPin="),
                bytes_out: counter("ESPout="),
            })
        })
        .collect()
}

/// Keys pluto logged at debug `crypt private`: SK_pi and SK_pr of each IKE
/// SA (`chunk_SK_pi ...` then `unwrapped:` and hex dump lines), and each
/// Child SA's `our  keymat` / `peer keymat` (encryption then integrity key,
/// as the SA pluto sends with and the one it receives with), in log order,
/// as lowercase hex.
pub fn libreswan_keys(log: &str) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    let texts: Vec<&str> = log.lines().map(log_text_of).collect();
    let mut i = 0;
    while i < texts.len() {
        let t = texts[i].trim_start_matches('|').trim();
        let label = if let Some(rest) = t.strip_prefix("chunk_SK_") {
            // "chunk_SK_pi: symkey-key@..." starts the key's lines.
            rest.get(..2)
                .filter(|_| rest[2..].starts_with(": symkey-key"))
                .map(|which| format!("SK_{which}"))
        } else if t == "our  keymat" {
            Some("our keymat".to_string())
        } else if t == "peer keymat" {
            Some("peer keymat".to_string())
        } else {
            None
        };
        let Some(label) = label else {
            i += 1;
            continue;
        };
        // SK_p*: skip to "unwrapped:"; keymat: the dump follows at once.
        let mut j = i + 1;
        if label.starts_with("SK_") {
            while j < texts.len()
                && j < i + 8
                && texts[j].trim_start_matches('|').trim() != "unwrapped:"
            {
                j += 1;
            }
            j += 1;
        }
        let mut hex = String::new();
        while j < texts.len() {
            let Some(bytes) = dump_bytes(texts[j]) else {
                break;
            };
            hex += &bytes;
            j += 1;
        }
        if !hex.is_empty() {
            keys.push((label, hex));
        }
        i = j.max(i + 1);
    }
    keys
}

/// The hex bytes of a pluto dump line `|   50 7c 47 37  f5 c4 ...   P|G7..`:
/// up to 16 two-digit groups, then the ASCII column.
fn dump_bytes(text: &str) -> Option<String> {
    let body = text.strip_prefix('|')?;
    if !body.starts_with("   ") {
        return None;
    }
    let mut hex = String::new();
    for token in body.split_whitespace().take(16) {
        if token.len() == 2 && token.chars().all(|c| c.is_ascii_hexdigit()) {
            hex += &token.to_lowercase();
        } else {
            break;
        }
    }
    (!hex.is_empty()).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_sas_and_counters_are_read_from_whack_status() {
        let status = r#"000 #2: "psk-cbc":500 STATE_V2_ESTABLISHED_CHILD_SA (established Child SA); REKEY in 28503s; newest; eroute owner; isakmp#1; idle;
000 #2: "psk-cbc" esp.ef7b492a@198.18.0.1 esp.28c1305@198.18.0.2 tun.0@198.18.0.1 tun.0@198.18.0.2 Traffic: ESPin=420B ESPout=336B ESPmax=2^63B 
000 #3: "psk-cbc":500 STATE_V2_REKEY_CHILD_I1 (sent CREATE_CHILD_SA request to rekey IPsec SA); RETRANSMIT in 1s;
000 #3: "psk-cbc" esp.11111111@198.18.0.1 esp.2222@198.18.0.2 Traffic: ESPin=0B ESPout=0B ESPmax=2^63B
000 #5: "psk-v6":500 STATE_V2_ESTABLISHED_CHILD_SA (established Child SA); REKEY in 28503s; newest; eroute owner; isakmp#4; idle;
000 #5: "psk-v6" esp:958bb8c0@fd00:18::1 esp:c001@fd00:18::2 tun:0@fd00:18::1 tun:0@fd00:18::2 Traffic: ESPin=1B ESPout=2B ESPmax=2^63B
"#;
        assert_eq!(
            child_sas(status),
            vec![
                SwanChild {
                    state: 2,
                    spi_out: "ef7b492a".into(),
                    spi_in: "028c1305".into(),
                    bytes_in: 420,
                    bytes_out: 336,
                },
                SwanChild {
                    state: 5,
                    spi_out: "958bb8c0".into(),
                    spi_in: "0000c001".into(),
                    bytes_in: 1,
                    bytes_out: 2,
                }
            ]
        );
    }

    #[test]
    fn ike_spis_come_from_the_state_table_lines() {
        let log = "Dec  2 00:01:59.144877: | entry state hash_table_entries.ike_spis@0x5600 \"psk-cbc\" #1: 00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00 initialized\n\
Dec  2 00:01:59.144903: | entry state hash_table_entries.ike_spis@0x5600 \"psk-cbc\" #1: a2 d1 5b 30  cb 5d 95 59  00 00 00 00  00 00 00 00 added to hash table bucket 0x56\n\
Dec  2 00:01:59.154903: | entry state hash_table_entries.ike_spis@0x5600 \"psk-cbc\" #1: a2 d1 5b 30  cb 5d 95 59  93 73 be 70  36 ee 63 0f added to hash table bucket 0x57\n";
        assert_eq!(
            ike_spis_of_state(log, 1).as_deref(),
            Some("a2d15b30cb5d9559/9373be7036ee630f")
        );
        assert_eq!(ike_spis_of_state(log, 2), None);
        let states = "000 #1: \"psk-cbc\":500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); REKEY in 28502s; newest; idle;\n";
        assert_eq!(
            established_states(states, "STATE_V2_ESTABLISHED_IKE_SA"),
            vec![1]
        );
    }

    #[test]
    fn keys_are_read_from_a_pluto_log() {
        let log =
            "Dec  2 00:01:59.168119: | chunk_SK_pi extracting all 32 bytes of key@0x56001b2166c0\n\
Dec  2 00:01:59.168121: | chunk_SK_pi: symkey-key@0x56001b2166c0 (32-bytes, EXTRACT_KEY_FROM_KEY)\n\
Dec  2 00:01:59.168138: | sizeof bytes 32\n\
Dec  2 00:01:59.168158: | wrapper: (SECItemType)2709829: 53 d5 e4 39  91 1d 3a a2\n\
Dec  2 00:01:59.168165: | chunk_SK_pi extracted len 32 bytes at 0x56001b21efb0\n\
Dec  2 00:01:59.168167: | unwrapped:\n\
Dec  2 00:01:59.168169: |   50 7c 47 37  f5 c4 73 ac  27 8d 14 15  68 35 47 80   P|G7..s.'...h5G.\n\
Dec  2 00:01:59.168171: |   c0 7e a0 11  96 cb 96 5b  6b d4 a6 c0  be da 4a 1b   .~.....[k.....J.\n\
Dec  2 00:01:59.168172: |     key-offset: 192, key-size: 32\n\
Dec  2 00:01:59.169888: | our  keymat\n\
Dec  2 00:01:59.169889: |   46 a3 69 86  9a 9f cf d5  20 4d 16 05  a8 2e c4 a3   F.i..... M......\n\
Dec  2 00:01:59.169903: | kernel: install_ipsec_sa() for #2: inbound and outbound\n";
        assert_eq!(
            libreswan_keys(log),
            vec![
                (
                    "SK_pi".to_string(),
                    "507c4737f5c473ac278d141568354780c07ea01196cb965b6bd4a6c0beda4a1b".to_string()
                ),
                (
                    "our keymat".to_string(),
                    "46a369869a9fcfd5204d1605a82ec4a3".to_string()
                ),
            ]
        );
    }
}
