//! iked under a spoofed IKE_SA_INIT flood (RFC 7296 §2.6, RFC 8019): an
//! attacker namespace sends well-formed requests from tens of thousands of
//! forged addresses for 30 s; iked answers them with COOKIE demands that go
//! back onto the attacker's wire and die there. Meanwhile a strongSwan peer
//! with its default retransmission schedule must establish its IKE SA
//! within 2 s, iked's memory must stay bounded, and once the flood stops
//! every half-open SA must expire.
//!
//! The flood is paced at 10,000 requests/s (the issue's aim), or
//! `IKED_FLOOD_RATE` (a number, or `max` for unpaced). The generator shares
//! the host's cores with iked: unpaced, it takes a whole core from the
//! daemon it attacks, which a remote attacker cannot, so the paced rate is
//! what CI asserts on; the summary also reports the host's unpaced rate.
//!
//! ```text
//!  strongSwan (B) 198.18.0.2 --veth-- 198.18.0.1 iked (A) 198.18.1.1 --veth-- 198.18.1.2 attacker (C)
//!                                        route 198.19.0.0/16 via 198.18.1.2 (the forged sources)
//! ```

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iked_tests::flood::{self, FloodConfig};
use iked_tests::lab::{Lab, Side, Strongswan, SwanKernel, SwanRetransmission, PSK_GCM};
use iked_tests::{cpu_seconds, show_sa, Daemon};
use serde_json::Value;

/// iked's half-open timeout (ikev2 Settings::half_open_timeout).
const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the flood lasts: the issue's 30 s, and a little longer than the
/// half-open timeout, so that the half-open SAs the flood made first have
/// expired and been replaced by new ones while it goes on; those are alive
/// when it stops, and the drain below waits for them for real.
const FLOOD: Duration = Duration::from_secs(32);
/// The strongSwan peer starts this long into the flood, when iked has long
/// passed its cookie threshold.
const PEER_STARTS_AFTER: Duration = Duration::from_secs(5);
/// The issue's bound on the legitimate peer's IKE SA setup during the flood.
const ESTABLISH_BOUND: Duration = Duration::from_secs(2);
/// The half-open SAs alive when the flood stops expire within the timeout;
/// a margin for a busy host.
const DRAIN_BOUND: Duration = HALF_OPEN_TIMEOUT.saturating_add(Duration::from_secs(10));
/// Upper bound on the sum of the resident memory of iked's four processes
/// during the flood. Measured on a 2-core host (debug build): 38 MiB at
/// rest, 43 MiB at the peak of the flood (500 half-open SAs, the cookie
/// threshold, and answers in flight).
const RSS_BOUND_KIB: u64 = 64 * 1024;
/// Forged sources: 198.19.0.1 ... 198.19.255.254.
const SOURCES: u32 = 65_534;

fn ip(ns: &str, command: &str) {
    let mut args = vec!["-n", ns];
    args.extend(command.split_whitespace());
    let out = Command::new("ip").args(&args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The attacker's namespace, joined to iked's; removed at drop.
struct Attacker {
    ns: String,
}

impl Attacker {
    fn new(lab: &Lab) -> Attacker {
        let attacker = Attacker {
            ns: "iked-flood-c".to_string(),
        };
        let _ = Command::new("ip")
            .args(["netns", "del", &attacker.ns])
            .output();
        let out = Command::new("ip")
            .args(["netns", "add", &attacker.ns])
            .output()
            .expect("ip netns add");
        assert!(out.status.success(), "ip netns add {}", attacker.ns);
        let out = Command::new("ip")
            .args([
                "link",
                "add",
                "veth-ac",
                "netns",
                &lab.a,
                "type",
                "veth",
                "peer",
                "name",
                "veth-c",
                "netns",
                &attacker.ns,
            ])
            .output()
            .expect("ip link add");
        assert!(
            out.status.success(),
            "veth to the attacker: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for command in [
            "addr add 198.18.1.1/24 dev veth-ac",
            "link set veth-ac up",
            // iked's answers to the forged sources go to the attacker's wire.
            "route add 198.19.0.0/16 via 198.18.1.2 dev veth-ac",
        ] {
            ip(&lab.a, command);
        }
        for command in [
            "link set lo up",
            "addr add 198.18.1.2/24 dev veth-c",
            "link set veth-c up",
            "route add 198.18.0.0/24 via 198.18.1.1 dev veth-c",
            // A sink to measure how fast this host can generate at all: a
            // veth pair without ARP whose far end drops what it gets (not
            // its MAC address), as a wire without a listener would.
            "link add sink0 type veth peer name sink1",
            "link set sink0 arp off",
            "link set sink0 up",
            "link set sink1 up",
            "addr add 198.18.2.1/24 dev sink0",
        ] {
            ip(&attacker.ns, command);
        }
        attacker
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// tcpdump on the attacker's side of the wire, writing iked's answers to a
/// pcap file; stopped at drop.
struct Capture {
    child: Child,
    file: std::path::PathBuf,
    stderr: std::path::PathBuf,
}

impl Capture {
    fn start(ns: &str, dir: &std::path::Path) -> Capture {
        let file = dir.join("answers.pcap");
        let stderr = dir.join("tcpdump.stderr");
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tcpdump", "-Z", "root", "-i", "veth-c", "-n", "-p",
            ])
            // Room for the IKE header and the first payload's header; a
            // large kernel buffer so a busy host loses no frames.
            .args(["-s", "128", "-B", "16384", "-U", "-w"])
            .arg(&file)
            // iked's answers only (the forged requests come from port 500 too).
            .args([
                "udp",
                "and",
                "src",
                "host",
                "198.18.0.1",
                "and",
                "src",
                "port",
                "500",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("tcpdump (apt-get install tcpdump)");
        let mut capture = Capture {
            child,
            file,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !capture.stderr_text().contains("listening on") {
            if let Ok(Some(status)) = capture.child.try_wait() {
                panic!("tcpdump exited ({status}): {}", capture.stderr_text());
            }
            assert!(Instant::now() < deadline, "tcpdump did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        capture
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Stops tcpdump and returns what it captured, and its own account
    /// ("N packets captured ... M packets dropped by kernel").
    fn stop(&mut self) -> (Vec<u8>, String) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let account = self
            .stderr_text()
            .lines()
            .filter(|l| l.contains("packets"))
            .collect::<Vec<_>>()
            .join("; ");
        (std::fs::read(&self.file).unwrap_or_default(), account)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident memory of processes `pids` together, in KiB (a process gone
/// meanwhile counts nothing).
fn rss_kib(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Responder IKE SAs not (yet) established: the half-open ones.
fn half_open(sas: &[Value]) -> usize {
    sas.iter()
        .filter(|sa| sa["initiator"] == false && sa["state"] != "established")
        .count()
}

/// The UDP counters of the namespace `pid` lives in (/proc/PID/net/snmp).
fn udp_counters(pid: i32) -> std::collections::HashMap<String, u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).unwrap_or_default();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("Udp:")).collect();
    let (Some(names), Some(values)) = (rows.first(), rows.get(1)) else {
        return Default::default();
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
        .collect()
}

/// The receive buffer of iked's IPv4 socket on port 500, as `ss` reports
/// it (skmem rb, in octets).
fn ike_receive_buffer(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ss", "-u", "-a", "-n", "-m", "-4"])
        .args(["sport", "=", ":500"])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(|c: char| c == ',' || c == '(' || c.is_whitespace())
        .find_map(|field| field.strip_prefix("rb")?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no receive buffer in ss's answer: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
#[ignore = "needs root, namespaces, strongSwan and tcpdump: run by .ci/run"]
fn strongswan_gets_through_a_spoofed_ike_sa_init_flood() {
    iked_tests::require_root("the flood test");
    let test_start = Instant::now();
    let conn = PSK_GCM;
    let lab = Lab::new("flood");
    let attacker = Attacker::new(&lab);
    let swan = Strongswan::start_with(
        &lab,
        Side::B,
        SwanKernel::Libipsec,
        &[conn],
        SwanRetransmission::Default,
    );
    // The strongSwan peer's policy, and one for road warriors from anywhere
    // with the same proposal: what the forged requests appear to be.
    let config = format!(
        "set passive\n{}\
         ikev2 \"roadwarriors\" passive esp tunnel from 10.1.9.0/24 to 10.9.0.0/16 \
         local 198.18.0.1 peer any \
         ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 \
         childsa enc aes-128-gcm srcid a.ike.test psk \"roadwarrior-psk-0123456789\"\n",
        conn.iked_policy(Side::A, false)
    );
    let iked = Daemon::start_in(Some(&lab.a), "flood", &config);
    // The parent raised the receive buffer of the IKE sockets (the kernel
    // reports twice what was set), so that a descheduled ikev2 does not
    // lose a legitimate peer's request under the flood.
    let receive_buffer = ike_receive_buffer(&lab.a);
    assert!(
        receive_buffer >= 8 << 20,
        "IKE socket receive buffer {receive_buffer} octets: the parent did not raise it"
    );
    // An operator's log level: -vv (the Daemon's default) writes lines for
    // every forged request, which is a disk flood of its own.
    let out = iked.ikectl(&["log", "brief"]);
    assert!(out.status.success(), "ikectl log brief");
    // The attacker's path works (and its neighbour entry is resolved).
    let ping = Command::new("ip")
        .args(["netns", "exec", &attacker.ns, "ping", "-c1", "-W2"])
        .arg(Side::A.outer_v4())
        .output()
        .expect("ping");
    assert!(ping.status.success(), "attacker cannot reach iked");

    // The host's capacity: one second unpaced into the sink.
    let host_max = flood::spawn_in(
        &attacker.ns,
        FloodConfig {
            target: "198.18.2.2".parse().unwrap(),
            port: 500,
            source_base: "198.19.0.1".parse().unwrap(),
            source_count: SOURCES,
            duration: Duration::from_secs(1),
            rate: None,
            batch: 64,
        },
    )
    .join()
    .expect("probe thread")
    .expect("flood generator")
    .rate();

    let ikev2 = *iked.children().get("ikev2").expect("ikev2 child");
    let mut capture = Capture::start(&attacker.ns, &iked.scratch.0);
    let pids: Vec<i32> = std::iter::once(iked.pid())
        .chain(iked.children().into_values())
        .collect();
    assert_eq!(pids.len(), 4, "iked's parent and three children");
    let rest_rss = rss_kib(&pids);
    let udp_before = udp_counters(iked.pid());
    let cpu_before = cpu_seconds(ikev2);
    let flood_started = Instant::now();
    let flooder = flood::spawn_in(
        &attacker.ns,
        FloodConfig {
            target: Side::A.outer_v4().parse().unwrap(),
            port: 500,
            source_base: "198.19.0.1".parse().unwrap(),
            source_count: SOURCES,
            duration: FLOOD,
            rate: match std::env::var("IKED_FLOOD_RATE").ok().as_deref() {
                None => Some(10_000),
                Some("max") => None,
                Some(n) => Some(n.parse().expect("IKED_FLOOD_RATE: a number or max")),
            },
            batch: 64,
        },
    );

    // Memory sampled all along, from a thread of its own.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        let pids = pids.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let total = rss_kib(&pids);
                peak = peak.max(total);
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };

    std::thread::sleep(PEER_STARTS_AFTER);
    let half_open_at_peer_start = half_open(&show_sa(&iked));
    let initiate_started = Instant::now();
    let initiated = swan.swanctl(&["--initiate", "--child", conn.name, "--timeout", "30"]);
    let establish = initiate_started.elapsed();
    let context = |why: &str| {
        format!(
            "{why}\n--- swanctl --initiate ---\n{}\n--- swanctl --list-sas ---\n{}\n--- charon log (tail) ---\n{}\n--- iked log (tail) ---\n{}\n--- iked log: the peer, failures ---\n{}",
            String::from_utf8_lossy(&initiated.stdout),
            swan.list_sas(),
            tail(&swan.log_text(), 80),
            tail(&iked.log_text(), 40),
            iked.log_text()
                .lines()
                .filter(|l| l.contains("198.18.0.2") || l.contains("failed"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    assert!(
        initiated.status.success(),
        "{}",
        context("strongSwan could not establish its SA during the flood")
    );
    let established_in_iked = show_sa(&iked)
        .iter()
        .any(|sa| sa["policy"] == conn.name && sa["state"] == "established");
    let flood_left = FLOOD.saturating_sub(flood_started.elapsed());
    assert!(
        !flood_left.is_zero(),
        "the flood ended before strongSwan finished: the test proves nothing"
    );

    let report = flooder
        .join()
        .expect("flood thread")
        .expect("flood generator");
    let flood_ended = Instant::now();
    let half_open_at_flood_end = half_open(&show_sa(&iked));
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak_rss = sampler.join().expect("sampler").max(rest_rss);
    let udp_after = udp_counters(iked.pid());
    let ikev2_cpu = cpu_seconds(ikev2) - cpu_before;
    let udp_delta = |name: &str| {
        udp_after
            .get(name)
            .unwrap_or(&0)
            .saturating_sub(*udp_before.get(name).unwrap_or(&0))
    };
    // Let the last answers reach the wire before stopping the capture.
    std::thread::sleep(Duration::from_millis(300));
    let (pcap, tcpdump_account) = capture.stop();
    let answers = flood::count_answers(&pcap).expect("pcap");

    // Every half-open SA expires once the flood stops.
    let mut drained = None;
    let mut last_half_open = usize::MAX;
    while flood_ended.elapsed() < DRAIN_BOUND {
        last_half_open = half_open(&show_sa(&iked));
        if last_half_open == 0 {
            drained = Some(flood_ended.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // strongSwan logs the notify in the parsed response: "[ N(COOKIE) ]".
    let cookie_seen_by_swan = swan.log_text().contains("N(COOKIE)");
    let summary = format!(
        "flood summary: rate={:.0}/s (host max {:.0}/s) packets={} sources={} send_errors={} \
         iked_udp_in={} iked_rcvbuf_errors={} iked_sndbuf_errors={} ikev2_cpu={:.1}s ({:.1}us/datagram) \
         half_open_at_peer_start={} \
         establish={:.3}s (bound {:.1}s) peer_got_cookie={} \
         peak_rss={}KiB (rest {}KiB, bound {}KiB) \
         sa_init_answers={} cookies={} cookie_destinations={} [tcpdump: {}] \
         half_open_at_flood_end={} drain={} rcvbuf={} total={:.1}s",
        report.rate(),
        host_max,
        report.sent,
        report.sources,
        report.send_errors,
        udp_delta("InDatagrams"),
        udp_delta("RcvbufErrors"),
        udp_delta("SndbufErrors"),
        ikev2_cpu,
        ikev2_cpu * 1e6 / udp_delta("InDatagrams").max(1) as f64,
        half_open_at_peer_start,
        establish.as_secs_f64(),
        ESTABLISH_BOUND.as_secs_f64(),
        cookie_seen_by_swan,
        peak_rss,
        rest_rss,
        RSS_BOUND_KIB,
        answers.sa_init_responses,
        answers.cookie_demands,
        answers.cookie_destinations,
        tcpdump_account,
        half_open_at_flood_end,
        drained
            .map(|d| format!("{:.1}s", d.as_secs_f64()))
            .unwrap_or_else(|| format!("not within {DRAIN_BOUND:?} ({last_half_open} left)")),
        receive_buffer,
        test_start.elapsed().as_secs_f64(),
    );
    println!("{summary}");

    assert!(
        established_in_iked,
        "{}",
        context("iked has no established SA")
    );
    assert!(
        establish <= ESTABLISH_BOUND,
        "{summary}\n{}",
        context("the legitimate peer took too long")
    );
    assert!(
        report.sent >= 100_000,
        "{summary}\nthe generator sent too little to be a flood"
    );
    assert!(
        half_open_at_peer_start >= 100,
        "{summary}\nthe forged requests made no half-open SAs: iked did not accept their proposal"
    );
    assert!(
        cookie_seen_by_swan,
        "{summary}\n{}",
        context("strongSwan was not asked for a cookie: iked was not under cookie pressure")
    );
    assert!(
        answers.cookie_demands >= report.sent / 2,
        "{summary}\ntoo few COOKIE demands on the wire: iked did not keep up with the flood"
    );
    assert!(
        answers.cookie_destinations >= 10_000,
        "{summary}\nCOOKIE demands went to too few of the forged sources"
    );
    assert!(peak_rss <= RSS_BOUND_KIB, "{summary}\nRSS over the bound");
    assert!(
        half_open_at_flood_end > 0,
        "{summary}\nno half-open SA was left when the flood stopped: the drain proves nothing"
    );
    assert!(drained.is_some(), "{summary}\nhalf-open SAs did not expire");
    let mut iked = iked;
    assert!(
        iked.is_running(),
        "{summary}\niked died:\n{}",
        tail(&iked.log_text(), 40)
    );
}
