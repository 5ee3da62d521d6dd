//! Every ikectl command against a running daemon, in text and `--json`
//! (doc/ikectl-json.md: one object with `version`, `command`, `ok`), with
//! its effect checked where it has one: `decouple` takes our XFRM policies
//! out of the kernel and `couple` puts them back (seen with `ip xfrm
//! policy`), `passive` stops initiation, `load FILE` changes the policies,
//! `reset` flushes, the filters of `show sa` narrow it, `terminate --sa`
//! and `reset id|sa` delete IKE SAs on both sides. And the errors when the
//! daemon is not running or the socket is not ours to use.
//!
//! This host's kernel has XFRM policies but no ESP: Child SAs are not
//! installed here, IKE SAs and trap policies are (show flows with real ESP
//! SAs is kernel_lab_flows.rs).

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use iked_tests::lab::{Lab, Side};
use iked_tests::{
    binary, fresh_netns, ip_in, require_root, show_sa, wait_until, xfrm_listing, Daemon, Scratch,
};
use serde_json::Value;

/// One daemon pair at a time: the machine is shared.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const NOBODY: u32 = 65534;

/// A network namespace of this test, removed at drop.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        fresh_netns(name);
        ip_in(name, "link set lo up");
        // The peer is on a wire where nobody has its address: what we
        // send vanishes (ARP is never answered), an IKE SA we start stays
        // half-open instead of being answered (by ourselves on loopback).
        ip_in(name, "link add d0 type veth peer name d1");
        ip_in(name, "addr add 198.18.5.1/24 dev d0");
        ip_in(name, "link set d0 up");
        ip_in(name, "link set d1 up");
        Netns(name.to_string())
    }

    /// Our XFRM policies (iked's reqids) as `ip xfrm policy` lists them.
    fn our_policies(&self) -> Vec<String> {
        xfrm_listing::ours(&ip_in(&self.0, "xfrm policy list"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `ikectl ARGS` in text: must succeed; its stdout.
fn ok_text(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.ikectl(args);
    assert!(
        out.status.success(),
        "ikectl {args:?} failed: {}\n--- log ---\n{}",
        text(&out),
        daemon.log_text()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Parses one `--json` answer and checks the envelope: exactly one JSON
/// object on one line, version 1, the command's name, `ok` as expected.
fn envelope(out: &Output, command: &str, ok: bool) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim_end().lines().count(),
        1,
        "one line of JSON expected: {stdout}"
    );
    let value: Value = serde_json::from_str(stdout.trim_end())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert!(value.is_object(), "{value}");
    assert_eq!(value["version"], 1, "{value}");
    assert_eq!(value["command"], command, "{value}");
    assert_eq!(value["ok"], ok, "{value}");
    assert_eq!(out.status.success(), ok, "exit status of {value}");
    if !ok {
        assert!(value["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert!(value["error_kind"].is_string(), "{value}");
    }
    value
}

/// `ikectl --json ARGS`, its envelope checked.
fn json(daemon: &Daemon, args: &[&str], command: &str, ok: bool) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = daemon.ikectl(&all);
    envelope(&out, command, ok)
}

/// A configuration with active policies `names` (their outbound trap
/// policies are installed at once), passive so that nothing starts alone.
fn policies(names: &[&str]) -> String {
    let mut config = String::from("set passive\n");
    for (n, name) in names.iter().enumerate() {
        config += &format!(
            "ikev2 \"{name}\" active esp from 10.10.{n}.0/24 to 10.11.{n}.0/24 \
             local 198.18.5.1 peer 198.18.5.2 psk \"k\"\n"
        );
    }
    config
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn every_command_in_text_and_json_against_one_daemon() {
    require_root("every_command_in_text_and_json_against_one_daemon");
    let _serial = serial();
    let ns = Netns::new("ictl-one");
    let mut daemon = Daemon::start_in(Some(&ns.0), "ictl-one", &policies(&["t0"]));
    let context = || daemon.log_text();
    wait_until(
        "the trap policy of t0",
        Duration::from_secs(10),
        || ns.our_policies().len() == 1,
        context,
    );

    // show sa, empty.
    assert_eq!(ok_text(&daemon, &["show", "sa"]).trim(), "no IKE SAs");
    let value = json(&daemon, &["show", "sa"], "show sa", true);
    assert_eq!(value["sas"], serde_json::json!([]));
    assert_eq!(value["total"], 0);
    assert_eq!(value["truncated"], false);

    // show flows: the trap policy, with its template.
    let flows = ok_text(&daemon, &["show", "flows"]);
    assert!(
        flows.starts_with("kernel xfrm, coupled\npolicies: 1\n"),
        "{flows}"
    );
    assert!(
        flows.contains("10.10.0.0/24 -> 10.11.0.0/24 dir out tunnel 198.18.5.1 -> 198.18.5.2"),
        "{flows}"
    );
    let value = json(&daemon, &["show", "flows"], "show flows", true);
    let info = &value["flows"];
    assert_eq!(info["kernel"], "xfrm");
    assert_eq!(info["coupled"], true);
    assert_eq!(info["policies_total"], 1);
    assert_eq!(info["policies"][0]["direction"], "out");
    assert_eq!(info["policies"][0]["mode"], "tunnel");
    assert_eq!(info["policies"][0]["in_kernel"], true);
    assert_eq!(info["policies"][0]["dst"], "198.18.5.2");
    assert!(info["policies"][0]["reqid"].is_u64(), "{info}");

    // decouple: the policy leaves the kernel, held; couple: back.
    let value = json(&daemon, &["decouple"], "decouple", true);
    assert!(value["message"]
        .as_str()
        .unwrap()
        .contains("1 policies removed"));
    assert!(ns.our_policies().is_empty(), "{:?}", ns.our_policies());
    let value = json(&daemon, &["show", "flows"], "show flows", true);
    assert_eq!(value["flows"]["coupled"], false);
    assert_eq!(value["flows"]["policies"][0]["in_kernel"], false);
    assert!(ok_text(&daemon, &["show", "flows"]).contains("(held)"));
    assert_eq!(ok_text(&daemon, &["decouple"]).trim(), "already decoupled");
    assert!(ok_text(&daemon, &["couple"]).contains("coupled: 1 policies installed"));
    assert_eq!(ns.our_policies().len(), 1);
    let value = json(&daemon, &["couple"], "couple", true);
    assert_eq!(value["message"], "already coupled");
    assert_eq!(
        ok_text(&daemon, &["decouple"]).trim(),
        "decoupled: 1 policies removed from the kernel, SAs stay"
    );
    assert!(ns.our_policies().is_empty());
    json(&daemon, &["couple"], "couple", true);
    assert_eq!(ns.our_policies().len(), 1);

    // log brief|verbose.
    assert_eq!(ok_text(&daemon, &["log", "brief"]).trim(), "logging brief");
    let value = json(&daemon, &["log", "verbose"], "log", true);
    assert_eq!(value["message"], "logging verbose");

    // active starts t0; passive and reset sa stop it, and a reload in
    // passive (kept by `ikectl passive`) starts nothing.
    assert_eq!(
        ok_text(&daemon, &["active"]).trim(),
        "initiation mode active"
    );
    let sas = show_sa(&daemon);
    assert_eq!(
        sas.len(),
        1,
        "active started t0: {sas:?}\n{}",
        daemon.log_text()
    );
    assert_eq!(sas[0]["policy"], "t0");
    let value = json(&daemon, &["passive"], "passive", true);
    assert_eq!(value["message"], "initiation mode passive");
    let value = json(&daemon, &["reset", "sa"], "reset sa", true);
    assert_eq!(value["message"], "deleting 1 IKE SA(s)");
    wait_until(
        "the IKE SA of t0 gone",
        Duration::from_secs(10),
        || show_sa(&daemon).is_empty(),
        || daemon.log_text(),
    );
    daemon.rewrite_config(&policies(&["t0"]).replace("set passive\n", "set active\n"));
    let value = json(&daemon, &["reload"], "reload", true);
    assert!(
        value["message"]
            .as_str()
            .unwrap()
            .contains("configuration 2 loaded"),
        "{value}"
    );
    assert!(
        show_sa(&daemon).is_empty(),
        "passive kept through the reload"
    );
    assert!(ok_text(&daemon, &["reload"]).contains("configuration 3 loaded"));

    // initiate and terminate by name, in text and json.
    assert_eq!(
        ok_text(&daemon, &["initiate", "t0"]).trim(),
        "initiating policy t0"
    );
    let value = json(&daemon, &["initiate", "t0"], "initiate", true);
    assert_eq!(value["message"], "policy t0 already has an IKE SA");
    let value = json(&daemon, &["terminate", "t0"], "terminate", true);
    assert!(value["message"]
        .as_str()
        .unwrap()
        .starts_with("terminating 1 IKE SA"));
    wait_until(
        "the IKE SA of t0 gone",
        Duration::from_secs(10),
        || show_sa(&daemon).is_empty(),
        || daemon.log_text(),
    );
    let value = json(&daemon, &["terminate", "t0"], "terminate", false);
    assert_eq!(value["error"], "policy t0 has no IKE SA");
    assert_eq!(value["error_kind"], "failed");
    let out = daemon.ikectl(&["terminate", "t0"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("ikectl: policy t0 has no IKE SA"),
        "{}",
        text(&out)
    );
    let value = json(
        &daemon,
        &["terminate", "--sa", "00000000000000ff"],
        "terminate",
        false,
    );
    assert_eq!(value["error"], "no IKE SA with SPI 00000000000000ff");
    let value = json(
        &daemon,
        &["terminate", "--sa", "nothex"],
        "terminate",
        false,
    );
    assert!(value["error"]
        .as_str()
        .unwrap()
        .contains("is not an IKE SPI"));
    let value = json(
        &daemon,
        &["reset", "id", "fqdn/nobody.example"],
        "reset id",
        false,
    );
    assert_eq!(
        value["error"],
        "no IKE SA with peer identity fqdn/nobody.example"
    );

    // show sa filters against an SA that is there.
    ok_text(&daemon, &["initiate", "t0"]);
    let value = json(&daemon, &["show", "sa", "--policy", "t0"], "show sa", true);
    assert_eq!(value["sas"].as_array().unwrap().len(), 1);
    let value = json(&daemon, &["show", "sa", "--policy", "t9"], "show sa", true);
    assert_eq!(value["sas"], serde_json::json!([]));
    let value = json(
        &daemon,
        &["show", "sa", "--peer", "198.18.5.2"],
        "show sa",
        true,
    );
    assert_eq!(value["sas"].as_array().unwrap().len(), 1);
    let value = json(
        &daemon,
        &["show", "sa", "--peer", "198.18.5.9"],
        "show sa",
        true,
    );
    assert_eq!(value["sas"], serde_json::json!([]));
    assert!(ok_text(&daemon, &["show", "sa", "--policy", "t0"]).starts_with("t0: "));
    assert_eq!(
        ok_text(&daemon, &["show", "sa", "--peer", "198.18.5.9"]).trim(),
        "no IKE SAs"
    );

    // load FILE: two policies from another file; a broken file is refused
    // with file:line:col and changes nothing; reload then reads the loaded
    // file.
    let scratch = Scratch::new("ictl-load");
    let two = scratch.config("two.conf", &policies(&["t0", "t1"]));
    let value = json(&daemon, &["load", two.to_str().unwrap()], "load", true);
    assert!(
        value["message"]
            .as_str()
            .unwrap()
            .contains(&format!("loaded from {}", two.display())),
        "{value}"
    );
    wait_until(
        "the trap policies of t0 and t1",
        Duration::from_secs(10),
        || ns.our_policies().len() == 2,
        || daemon.log_text(),
    );
    let value = json(&daemon, &["show", "flows"], "show flows", true);
    assert_eq!(value["flows"]["policies_total"], 2);
    let broken = scratch.config("broken.conf", "set passive\nikev2 \"x\" frobnicate\n");
    let value = json(&daemon, &["load", broken.to_str().unwrap()], "load", false);
    let error = value["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{}:2:", broken.display())),
        "{error}"
    );
    assert!(
        error.contains("keeping the current configuration"),
        "{error}"
    );
    assert_eq!(ns.our_policies().len(), 2);
    std::fs::write(&two, policies(&["t0", "t1", "t2"])).unwrap();
    assert!(ok_text(&daemon, &["reload"]).contains(&format!("loaded from {}", two.display())));
    wait_until(
        "three trap policies after reloading the loaded file",
        Duration::from_secs(10),
        || ns.our_policies().len() == 3,
        || daemon.log_text(),
    );
    // Relative paths are made absolute by ikectl.
    let out = Command::new(binary("ikectl"))
        .current_dir(&scratch.0)
        .args(["-s", daemon.socket.to_str().unwrap(), "load", "two.conf"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // reset policy|user|all: the policies (and their kernel entries) go
    // until a reload; reset ca re-reads the (empty) store.
    let value = json(&daemon, &["reset", "policy"], "reset policy", true);
    assert!(value["message"]
        .as_str()
        .unwrap()
        .starts_with("reset: policies and their SAs flushed"));
    wait_until(
        "no policy of ours after reset policy",
        Duration::from_secs(10),
        || ns.our_policies().is_empty(),
        || daemon.log_text(),
    );
    assert!(show_sa(&daemon).is_empty());
    assert_eq!(
        json(&daemon, &["show", "flows"], "show flows", true)["flows"]["policies_total"],
        0
    );
    let value = json(&daemon, &["initiate", "t0"], "initiate", false);
    assert_eq!(value["error"], "no policy named t0");
    assert!(ok_text(&daemon, &["reset", "user"]).starts_with("reset: users flushed"));
    ok_text(&daemon, &["reload"]);
    wait_until(
        "the policies back after a reload",
        Duration::from_secs(10),
        || ns.our_policies().len() == 3,
        || daemon.log_text(),
    );
    assert!(
        ok_text(&daemon, &["reset", "all"]).starts_with("reset: policies, SAs and users flushed")
    );
    wait_until(
        "no policy of ours after reset all",
        Duration::from_secs(10),
        || ns.our_policies().is_empty(),
        || daemon.log_text(),
    );
    json(&daemon, &["reset", "user"], "reset user", true);
    json(&daemon, &["reset", "all"], "reset all", true);
    json(&daemon, &["reset", "ca"], "reset ca", true);
    ok_text(&daemon, &["reset", "ca"]);

    // show certstore, text and json.
    assert!(ok_text(&daemon, &["show", "certstore"]).starts_with("certificate store: "));
    let value = json(&daemon, &["show", "certstore"], "show certstore", true);
    assert!(value["certstore"]["generation"].is_u64(), "{value}");

    // A member of nobody may not load files (root only) nor even connect.
    let out = ikectl_as_nobody(&daemon, &["show", "sa"]);
    assert!(!out.status.success());
    let error = text(&out);
    assert!(error.contains("Permission denied"), "{error}");
    assert!(error.contains(daemon.socket.to_str().unwrap()), "{error}");
    assert!(error.contains("only root"), "{error}");
    let out = ikectl_as_nobody(&daemon, &["--json", "show", "sa"]);
    let value = envelope(&out, "show sa", false);
    assert_eq!(value["error_kind"], "permission_denied");

    // The daemon stopped: not running, in text and json.
    let socket = daemon.socket.clone();
    daemon.stop_within(Duration::from_secs(10));
    for args in [vec!["show", "sa"], vec!["reload"]] {
        let out = ikectl_at(&socket, &args);
        assert!(!out.status.success());
        assert!(text(&out).contains("iked is not running"), "{}", text(&out));
        assert!(
            text(&out).contains(socket.to_str().unwrap()),
            "{}",
            text(&out)
        );
    }
    let mut args = vec!["--json", "show", "flows"];
    let out = ikectl_at(&socket, &args);
    let value = envelope(&out, "show flows", false);
    assert_eq!(value["error_kind"], "not_running");
    // A socket left behind, nobody listening.
    let _ = std::fs::remove_file(&socket);
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    args = vec!["--json", "couple"];
    let value = envelope(&ikectl_at(&socket, &args), "couple", false);
    assert_eq!(value["error_kind"], "not_running");
    assert!(value["error"].as_str().unwrap().contains("nobody listens"));
}

#[test]
#[ignore = "needs root: run by .ci/run"]
fn completions_are_generated_for_bash_zsh_and_fish() {
    require_root("completions_are_generated_for_bash_zsh_and_fish");
    for shell in ["bash", "zsh", "fish"] {
        let out = ikectl_at(
            std::path::Path::new("/nonexistent.sock"),
            &["completions", shell],
        );
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["ikectl", "decouple", "certstore", "flows", "completions"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let value = envelope(
        &ikectl_at(
            std::path::Path::new("/nonexistent.sock"),
            &["--json", "completions", "bash"],
        ),
        "completions",
        true,
    );
    assert!(value["script"].as_str().unwrap().contains("_ikectl"));
}

/// Two iked in the namespace lab, host to host (IKE SAs only: no ESP
/// here): the IKE SA commands against a real peer.
#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn sa_commands_delete_with_the_peer() {
    require_root("sa_commands_delete_with_the_peer");
    let _serial = serial();
    let lab = Lab::new("ictl");
    let policy = |local: Side| {
        format!(
            "set passive\n\
             ikev2 \"gw\" passive esp local {} peer {} \\\n  \
             ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 \\\n  \
             srcid {} dstid {} psk \"ikectl-test-psk\"\n",
            local.outer_v4(),
            local.other().outer_v4(),
            local.id(),
            local.other().id(),
        )
    };
    let a = Daemon::start_in(Some(&lab.a), "ictl-a", &policy(Side::A));
    let b = Daemon::start_in(Some(&lab.b), "ictl-b", &policy(Side::B));
    let context = || format!("--- a ---\n{}\n--- b ---\n{}", a.log_text(), b.log_text());
    let establish = || {
        ok_text(&a, &["initiate", "gw"]);
        wait_until(
            "the IKE SA established on both sides",
            Duration::from_secs(30),
            || {
                [&a, &b]
                    .iter()
                    .all(|d| show_sa(d).iter().any(|sa| sa["state"] == "established"))
            },
            context,
        );
    };
    let gone_on_both = |what: &str| {
        wait_until(
            what,
            Duration::from_secs(15),
            || show_sa(&a).is_empty() && show_sa(&b).is_empty(),
            context,
        );
    };

    establish();
    // Filters: by policy, by peer address and by peer identity.
    let all = json(&a, &["show", "sa"], "show sa", true);
    let sa = all["sas"][0].clone();
    assert_eq!(sa["peer_id"], Side::B.id().to_string(), "{sa}");
    for filter in [
        vec!["--policy", "gw"],
        vec!["--peer", Side::B.outer_v4()],
        vec!["--peer", sa["peer_id"].as_str().unwrap()],
        vec!["--policy", "gw", "--peer", Side::B.outer_v4()],
    ] {
        let mut args = vec!["show", "sa"];
        args.extend(filter.iter().copied());
        let value = json(&a, &args, "show sa", true);
        assert_eq!(
            value["sas"].as_array().unwrap().len(),
            1,
            "{filter:?}: {value}"
        );
        assert_eq!(value["sas"][0]["spi_i"], sa["spi_i"]);
    }
    for filter in [vec!["--policy", "nope"], vec!["--peer", Side::A.outer_v4()]] {
        let mut args = vec!["show", "sa"];
        args.extend(filter.iter().copied());
        assert_eq!(json(&a, &args, "show sa", true)["total"], 0, "{filter:?}");
    }

    // terminate --sa by the responder SPI as show sa prints it.
    let spi = sa["spi_r"].as_str().unwrap().to_string();
    let value = json(&a, &["terminate", "--sa", &spi], "terminate", true);
    assert_eq!(
        value["message"],
        format!("terminating IKE SA {spi} of policy gw")
    );
    gone_on_both("the IKE SA gone after terminate --sa");

    // reset id with the peer's identity.
    establish();
    let peer_id = Side::B.id().to_string();
    let out = ok_text(&a, &["reset", "id", &peer_id]);
    assert_eq!(out.trim(), format!("deleting 1 IKE SA(s) of {peer_id}"));
    gone_on_both("the IKE SA gone after reset id");

    // reset sa, from the responder's side this time.
    establish();
    assert_eq!(ok_text(&b, &["reset", "sa"]).trim(), "deleting 1 IKE SA(s)");
    gone_on_both("the IKE SA gone after reset sa");
}

/// A member of `set control_group` may run the commands, but not `load`,
/// which would make the root parent read any file it names.
#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn a_control_group_member_may_not_load_files() {
    require_root("a_control_group_member_may_not_load_files");
    let _serial = serial();
    let group = format!("ikectlc{}", std::process::id() % 100_000);
    let _ = Command::new("groupdel").arg(&group).output();
    let out = Command::new("groupadd")
        .arg(&group)
        .output()
        .expect("groupadd");
    assert!(out.status.success(), "groupadd: {}", text(&out));
    struct Delete(String);
    impl Drop for Delete {
        fn drop(&mut self) {
            let _ = Command::new("groupdel").arg(&self.0).output();
        }
    }
    let _delete = Delete(group.clone());
    let gid = nix::unistd::Group::from_name(&group)
        .expect("getgrnam")
        .expect("the group just added")
        .gid
        .as_raw();
    let daemon = Daemon::start(
        "ictl-group",
        &format!("set passive\nset control_group \"{group}\"\n"),
    );
    let member = |args: &[&str]| ikectl_as_nobody_in(&daemon, &[gid], args);
    let out = member(&["--json", "passive"]);
    assert_eq!(
        envelope(&out, "passive", true)["message"],
        "initiation mode passive"
    );
    let out = member(&["--json", "load", daemon.config.to_str().unwrap()]);
    let value = envelope(&out, "load", false);
    assert_eq!(value["error"], "load is for root only");
    assert_eq!(value["error_kind"], "failed");
    // Root may.
    let value = json(
        &daemon,
        &["load", daemon.config.to_str().unwrap()],
        "load",
        true,
    );
    assert!(
        value["message"]
            .as_str()
            .unwrap()
            .contains("configuration 2 loaded"),
        "{value}"
    );
    // Not a member: refused, told who may.
    let out = ikectl_as_nobody(&daemon, &["show", "sa"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("members of group {group}")),
        "{}",
        text(&out)
    );
}

fn ikectl_at(socket: &std::path::Path, args: &[&str]) -> Output {
    Command::new(binary("ikectl"))
        .arg("-s")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ikectl")
}

/// ikectl as nobody:nogroup, without supplementary groups.
fn ikectl_as_nobody(daemon: &Daemon, args: &[&str]) -> Output {
    ikectl_as_nobody_in(daemon, &[], args)
}

/// ikectl as nobody:nogroup with the supplementary `groups`.
fn ikectl_as_nobody_in(daemon: &Daemon, groups: &[u32], args: &[&str]) -> Output {
    let groups: Vec<nix::unistd::Gid> = groups
        .iter()
        .map(|&g| nix::unistd::Gid::from_raw(g))
        .collect();
    let mut command = Command::new(binary("ikectl"));
    command
        .arg("-s")
        .arg(&daemon.socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setgroups, setresgid and setresuid are system calls, safe
    // between fork and exec; `groups` was allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            let gid = nix::unistd::Gid::from_raw(NOBODY);
            let uid = nix::unistd::Uid::from_raw(NOBODY);
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setresgid(gid, gid, gid)?;
            nix::unistd::setresuid(uid, uid, uid)?;
            Ok(())
        });
    }
    command.output().expect("run ikectl as nobody")
}
