//! Road warriors (issue 14): `config`, `request`, `iface`, `eap`, `user`,
//! `set mobike|nomobike`, `to/from dynamic`, and the load-time checks.

use super::*;
use std::net::IpAddr;

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str("test.conf", text, &[])
}

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// (line, col, message) of the error `text` must give.
fn error_at(text: &str) -> (u32, u32, String) {
    let e = parse(text).expect_err(text);
    assert_eq!(e.location.file, "test.conf");
    (e.location.line, e.location.col, e.message)
}

/// Asserts that `text` fails at `(line, col)` with a message holding `needle`.
fn refused(text: &str, at: (u32, u32), needle: &str) {
    let (line, col, message) = error_at(text);
    assert_eq!((line, col), at, "{text}: {message}");
    assert!(message.contains(needle), "{text}: {message}");
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix {
        addr: ip(a),
        len: l.parse().unwrap(),
    }
}

/// The gateway of the man page's example: EAP-MSCHAPv2 with our
/// certificate, a pool for each family, DNS, `to dynamic`.
const GATEWAY: &str = "user \"alice\" \"alice-password\"\n\
    user bob \"bob password\"\n\
    ikev2 \"roadwarriors\" passive esp from 10.1.0.0/16 to dynamic \\\n\
    \tlocal 198.18.0.1 peer any \\\n\
    \tconfig address 10.9.0.0/24 config address fd00:9::/64 \\\n\
    \tconfig name-server 10.1.0.53 config name-server fd00:1::53 \\\n\
    \tconfig netmask 255.255.255.0 config netbios-server 10.1.0.54 \\\n\
    \tconfig dhcp-server 10.1.0.55 config protected-subnet 10.2.0.0/16 \\\n\
    \tconfig access-server 10.1.0.56 \\\n\
    \tsrcid gw.example eap \"mschap-v2\"\n";

#[test]
fn a_road_warrior_gateway_parses_every_config_option() {
    let c = ok(GATEWAY);
    let p = &c.policies[0];
    assert_eq!(p.initiation, PolicyInitiation::Passive);
    assert_eq!(p.peer, None);
    assert_eq!(p.auth, AuthSpec::PublicKey(SignatureAuth::Any));
    let ra = &p.remote_access;
    assert_eq!(
        ra.config,
        vec![
            ConfigAttributeSpec::AddressPool(net("10.9.0.0/24")),
            ConfigAttributeSpec::AddressPool(net("fd00:9::/64")),
            ConfigAttributeSpec::NameServer(ip("10.1.0.53")),
            ConfigAttributeSpec::NameServer(ip("fd00:1::53")),
            ConfigAttributeSpec::Netmask(ip("255.255.255.0")),
            ConfigAttributeSpec::NetbiosServer(ip("10.1.0.54")),
            ConfigAttributeSpec::DhcpServer(ip("10.1.0.55")),
            ConfigAttributeSpec::ProtectedSubnet(net("10.2.0.0/16")),
            ConfigAttributeSpec::AccessServer(ip("10.1.0.56")),
        ]
    );
    assert_eq!(
        ra.pools().copied().collect::<Vec<_>>(),
        vec![net("10.9.0.0/24"), net("fd00:9::/64")]
    );
    assert!(ra.hands_out_addresses());
    assert_eq!(ra.eap, Some(EapMethod::MsChapV2));
    assert!(!ra.request_address && !ra.request_name_server && ra.iface.is_none());
    // `from 10.1.0.0/16 to dynamic`: our network towards the IPv4 pool;
    // the IPv6 pool has no flow of its family on our side.
    let flows: Vec<String> = p.flows.iter().map(|f| f.to_string()).collect();
    assert_eq!(flows, ["10.1.0.0/16 -> 10.9.0.0/24"]);
    // The users, in file order, for ca only; passwords never printed.
    assert_eq!(c.users.len(), 2);
    assert_eq!(c.users[0].name, "alice");
    assert_eq!(c.users[0].password.expose(), b"alice-password");
    assert_eq!(c.users[1].name, "bob");
    assert_eq!(c.users[1].password.expose(), b"bob password");
    let debug = format!("{c:?}");
    assert!(!debug.contains("alice-password") && !debug.contains("bob password"));
    assert!(c.psks.is_empty());
}

#[test]
fn to_dynamic_gives_one_flow_per_pool_of_our_sides_family() {
    let c = ok(
        "ikev2 \"rw\" from any to dynamic local 198.18.0.1 peer any \
         config address 10.9.0.0/24 config address 10.10.0.0/24 config address fd00:9::/64\n",
    );
    let flows: Vec<String> = c.policies[0].flows.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        flows,
        [
            "0.0.0.0/0 -> 10.9.0.0/24",
            "0.0.0.0/0 -> 10.10.0.0/24",
            "::/0 -> fd00:9::/64"
        ]
    );
    // `inet6` makes `any` of one family: only the IPv6 pool.
    let c = ok(
        "ikev2 \"rw\" inet6 from any to dynamic local 2001:db8::1 peer any \
         config address 10.9.0.0/24 config address fd00:9::/64\n",
    );
    let flows: Vec<String> = c.policies[0].flows.iter().map(|f| f.to_string()).collect();
    assert_eq!(flows, ["::/0 -> fd00:9::/64"]);
    // Ports and protocol carry over; `config` may come before `from`.
    let c = ok("ikev2 \"rw\" config address 10.9.0.0/24 proto tcp \
         from 10.1.0.0/16 port 80 to dynamic local 198.18.0.1 peer 198.18.0.0/15\n");
    let flows: Vec<String> = c.policies[0].flows.iter().map(|f| f.to_string()).collect();
    assert_eq!(flows, ["10.1.0.0/16 port 80 -> 10.9.0.0/24 proto 6"]);
    assert_eq!(c.policies[0].peer, Some(net("198.18.0.0/15")));
}

#[test]
fn a_road_warrior_client_requests_an_address_and_authenticates_with_eap() {
    let c = ok("user \"alice\" \"secret\"\n\
         ikev2 \"vpn\" active esp from dynamic to 10.1.0.0/16 from dynamic to fd00:1::/48 \
         peer 198.18.0.1 srcid alice dstid gw.example \
         request address any request name-server any iface vpn0 eap \"MSCHAP-V2\"\n");
    let p = &c.policies[0];
    let ra = &p.remote_access;
    assert!(ra.request_address && ra.request_name_server);
    assert_eq!(ra.iface.as_deref(), Some("vpn0"));
    assert_eq!(ra.eap, Some(EapMethod::MsChapV2));
    assert!(ra.config.is_empty() && !ra.hands_out_addresses());
    // `from dynamic`: our side is the /0 of the `to` family until the
    // gateway names our address.
    let flows: Vec<String> = p.flows.iter().map(|f| f.to_string()).collect();
    assert_eq!(flows, ["0.0.0.0/0 -> 10.1.0.0/16", "::/0 -> fd00:1::/48"]);
    // Without iface: None (pfkey's default, lo).
    let c = ok("ikev2 \"vpn\" active from dynamic to any peer 198.18.0.1 request address any\n");
    assert_eq!(c.policies[0].remote_access.iface, None);
    assert_eq!(c.policies[0].flows[0].to_string(), "0.0.0.0/0 -> 0.0.0.0/0");
}

#[test]
fn set_mobike_and_nomobike() {
    assert!(ok("").mobike, "on by default");
    assert!(!ok("set nomobike\n").mobike);
    assert!(ok("set nomobike\nset mobike\n").mobike);
    refused(
        "set mobike now\n",
        (1, 12),
        "unexpected text after 'set mobike'",
    );
}

#[test]
fn config_lines_are_checked_and_located() {
    let rw = |words: &str| format!("ikev2 \"rw\" local 198.18.0.1 peer any {words}\n");
    // col 38 is the word after `peer any `.
    for (words, col, needle) in [
        ("config", 38, "'config' needs an option and a value"),
        (
            "config gateway 10.0.0.1",
            45,
            "unknown config option 'gateway'",
        ),
        ("config address", 45, "'config address' needs a value"),
        (
            "config address any",
            53,
            "needs a network such as 10.9.0.0/24",
        ),
        ("config address 10.9.0.1/24", 53, "write 10.9.0.0/24"),
        (
            "config address 10.0.0.0/7",
            53,
            "an IPv4 pool must be a /8 to /30",
        ),
        (
            "config address 10.9.0.0/31",
            53,
            "an IPv4 pool must be a /8 to /30",
        ),
        (
            "config address 10.9.0.1",
            53,
            "an IPv4 pool must be a /8 to /30 (one address is not a pool",
        ),
        (
            "config address fd00::/48",
            53,
            "an IPv6 pool must be a /64 to /126",
        ),
        (
            "config address fd00::1",
            53,
            "an IPv6 pool must be a /64 to /126",
        ),
        ("config address pool.example", 53, "is not an address"),
        (
            "config address 10.9.0.0/24 config address 10.9.0.128/25",
            80,
            "overlaps pool 10.9.0.0/24 of the same policy",
        ),
        (
            "config address 198.18.0.0/24",
            53,
            "address pool 198.18.0.0/24 holds our own local address 198.18.0.1",
        ),
        ("config netmask 255.0.255.0", 53, "is not an IPv4 netmask"),
        ("config netmask ffff::", 53, "is not an IPv4 netmask"),
        (
            "config name-server 10.0.0.0/24",
            57,
            "needs a single IP address",
        ),
        (
            "config netbios-server fd00::53",
            60,
            "takes an IPv4 address",
        ),
        ("config dhcp-server any", 57, "needs a single IP address"),
        (
            "config protected-subnet 10.1.0.1/16",
            62,
            "write 10.1.0.0/16",
        ),
        ("config access-server x", 59, "needs a single IP address"),
        (
            "config name-server 10.0.0.53 config name-server 10.0.0.53",
            86,
            "given twice",
        ),
    ] {
        refused(&rw(words), (1, col), needle);
    }
    // The cap on config lines.
    let many: String = (0..=remote_access::MAX_CONFIG_ATTRIBUTES)
        .map(|i| format!("config name-server 10.0.{}.{} ", i / 200, i % 200 + 1))
        .collect();
    let (_, _, message) = error_at(&rw(&many));
    assert!(message.contains("more than 64 'config' lines"), "{message}");
}

#[test]
fn request_iface_and_eap_words_are_checked_and_located() {
    let client = |words: &str| format!("ikev2 \"c\" active peer 198.18.0.1 {words}\n");
    // col 34 is the word after `peer 198.18.0.1 `.
    for (words, col, needle) in [
        (
            "request",
            34,
            "'request' needs 'address any' or 'name-server any'",
        ),
        (
            "request gateway any",
            42,
            "unknown request option 'gateway'",
        ),
        ("request address", 42, "'request address' needs a value"),
        (
            "request address 10.9.0.7",
            50,
            "takes 'any' (the gateway chooses)",
        ),
        (
            "request address any request address any",
            54,
            "'request address any' given twice",
        ),
        ("request address any iface", 54, "'iface' needs a value"),
        (
            "request address any iface \"\"",
            60,
            "invalid interface name",
        ),
        (
            "request address any iface eth0/1",
            60,
            "invalid interface name",
        ),
        (
            "request address any iface eth0:1",
            60,
            "invalid interface name",
        ),
        (
            "request address any iface \"vpn 0\"",
            60,
            "invalid interface name",
        ),
        ("request address any iface ..", 60, "invalid interface name"),
        (
            "request address any iface a23456789012345x",
            60,
            "expected 1 to 15 characters",
        ),
        (
            "request address any iface a iface b",
            62,
            "'iface' given twice",
        ),
        (
            "eap",
            34,
            "'eap' needs the EAP method: the supported one is \"mschap-v2\"",
        ),
        (
            "eap \"md5\"",
            38,
            "unsupported EAP method \"md5\": the supported one is \"mschap-v2\"",
        ),
        ("eap tls", 38, "unsupported EAP method \"tls\""),
    ] {
        refused(&client(words), (1, col), needle);
    }
    // A 15-character name is the longest Linux takes.
    let c = ok(&client("request address any iface a23456789012345"));
    assert_eq!(
        c.policies[0].remote_access.iface.as_deref(),
        Some("a23456789012345")
    );
}

#[test]
fn road_warrior_policies_must_be_passive_with_one_local_address() {
    for (text, at, needle) in [
        (
            "ikev2 \"rw\" active local 198.18.0.1 peer any\n",
            (1, 12),
            "policy 'rw': 'peer any' admits peers whose address is not known in advance, \
             so the policy cannot initiate: make it passive",
        ),
        (
            "ikev2 \"rw\" local 198.18.0.1 peer 198.18.0.0/15 active\n",
            (1, 48),
            "'peer 198.18.0.0/15' admits peers",
        ),
        (
            "ikev2 \"rw\" passive peer any\n",
            (1, 25),
            "policy 'rw': 'peer any' needs 'local ADDR', the one address of ours",
        ),
        (
            "ikev2 \"rw\" local any peer 198.18.0.0/16\n",
            (1, 27),
            "'peer 198.18.0.0/16' needs 'local ADDR'",
        ),
    ] {
        refused(text, at, needle);
    }
    // A single peer address needs neither.
    ok("ikev2 \"s2s\" active peer 198.18.0.2\n");
    ok("ikev2 \"rw\" local 198.18.0.1 peer 198.18.0.0/15\n");
}

#[test]
fn eap_needs_certificates_on_our_side_and_a_user_for_a_client() {
    refused(
        "ikev2 \"rw\" local 198.18.0.1 peer any eap \"mschap-v2\" psk \"k\"\n",
        (1, 54),
        "policy 'rw': 'eap' cannot go with 'psk': with EAP the gateway proves itself with \
         its certificate",
    );
    refused(
        "ikev2 \"rw\" local 198.18.0.1 peer any ikeauth psk \"k\" eap \"mschap-v2\"\n",
        (1, 38),
        "'eap' cannot go with 'psk'",
    );
    // A gateway may name its signature method.
    let c = ok("ikev2 \"rw\" local 198.18.0.1 peer any eap \"mschap-v2\" ecdsa256\n");
    assert_eq!(
        c.policies[0].auth,
        AuthSpec::PublicKey(SignatureAuth::Ecdsa256)
    );
    // A client authenticates as the user its srcid names.
    refused(
        "ikev2 \"c\" active peer 198.18.0.1 eap \"mschap-v2\"\n",
        (1, 34),
        "policy 'c': as initiator, 'eap' authenticates as the user its 'srcid' names",
    );
    refused(
        "user \"bob\" \"pw\"\n\
         ikev2 \"c\" active peer 198.18.0.1 srcid alice eap \"mschap-v2\"\n",
        (2, 40),
        "policy 'c': as initiator, 'eap' authenticates as the user its srcid names, \
         but there is no line 'user \"alice\" \"PASSWORD\"'",
    );
    // The user line may come after the policy.
    let c = ok(
        "ikev2 \"c\" active peer 198.18.0.1 srcid alice@example.com eap \"mschap-v2\"\n\
         user \"alice@example.com\" \"pw\"\n",
    );
    assert_eq!(c.policies[0].remote_access.eap, Some(EapMethod::MsChapV2));
}

#[test]
fn config_request_iface_and_dynamic_need_the_right_kind_of_policy() {
    for (text, at, needle) in [
        (
            "ikev2 \"c\" active peer 198.18.0.1 config address 10.9.0.0/24\n",
            (1, 34),
            "policy 'c': 'config' hands out settings to the initiators that ask for them, \
             so it belongs on a passive policy",
        ),
        (
            "ikev2 \"g\" passive peer 198.18.0.2 request address any\n",
            (1, 35),
            "policy 'g': 'request' asks the gateway for settings as initiator, so it \
             needs an active policy",
        ),
        (
            "ikev2 \"c\" active peer 198.18.0.1 iface vpn0\n",
            (1, 34),
            "'iface' is where the address the gateway hands us goes: it needs \
             'request address any'",
        ),
        (
            "ikev2 \"c\" active from dynamic to 10.1.0.0/16 peer 198.18.0.1\n",
            (1, 23),
            "policy 'c': 'from dynamic' uses the address the gateway hands us: it needs \
             'request address any'",
        ),
        (
            "ikev2 \"rw\" from 10.1.0.0/16 to dynamic local 198.18.0.1 peer any\n",
            (1, 32),
            "policy 'rw': 'to dynamic' means the addresses the policy hands out, but it has \
             no IPv4 pool: add 'config address NET'",
        ),
        (
            "ikev2 \"rw\" from 10.1.0.0/16 to dynamic local 198.18.0.1 peer any \
             config address fd00:9::/64\n",
            (1, 32),
            "no IPv4 pool",
        ),
        (
            "ikev2 \"rw\" from any to dynamic local 198.18.0.1 peer any\n",
            (1, 24),
            "but it has no pool",
        ),
        (
            "ikev2 \"x\" from dynamic to dynamic\n",
            (1, 27),
            "only one side can be dynamic",
        ),
    ] {
        refused(text, at, needle);
    }
}

#[test]
fn pools_of_two_policies_must_not_overlap() {
    refused(
        "ikev2 \"a\" local 198.18.0.1 peer any config address 10.9.0.0/24\n\
         ikev2 \"b\" local 198.18.0.1 peer any config address 10.9.0.0/16\n",
        (2, 52),
        "policy 'b': address pool 10.9.0.0/16 overlaps pool 10.9.0.0/24 of policy 'a' \
         (test.conf:1:52)",
    );
    ok(
        "ikev2 \"a\" local 198.18.0.1 peer any config address 10.9.0.0/24\n\
        ikev2 \"b\" local 198.18.0.1 peer any config address 10.9.1.0/24\n",
    );
}

#[test]
fn user_lines_are_checked_and_their_passwords_never_shown() {
    let secret = "hunter2-never-shown";
    for (text, at, needle) in [
        (
            "user\n".to_string(),
            (1, 1),
            "'user' needs a name and a password",
        ),
        (
            "user \"\" \"pw\"\n".to_string(),
            (1, 6),
            "invalid user name \"\"",
        ),
        (
            format!("user \"{}\" \"pw\"\n", "n".repeat(256)),
            (1, 6),
            "expected 1 to 255 bytes",
        ),
        (
            "user alice\n".to_string(),
            (1, 1),
            "user \"alice\" needs a password",
        ),
        (
            "user alice \"\"\n".to_string(),
            (1, 12),
            "the password must have 1 to 256 characters (RFC 2759), it has 0",
        ),
        (
            format!("user alice \"{}\"\n", "é".repeat(257)),
            (1, 12),
            "it has 257",
        ),
        (
            format!("user alice \"{secret}\" extra\n"),
            (1, 34),
            "unexpected text after the password of user \"alice\"",
        ),
        (
            format!("user alice \"{secret}\"\nuser \"alice\" \"{secret}\"\n"),
            (2, 1),
            "user \"alice\" given twice",
        ),
    ] {
        let (line, col, message) = error_at(&text);
        assert_eq!((line, col), at, "{text}: {message}");
        assert!(message.contains(needle), "{text}: {message}");
        assert!(!message.contains(secret), "{message}");
    }
    // 256 characters (of two bytes each) are taken.
    let c = ok(&format!("user alice \"{}\"\n", "é".repeat(256)));
    assert_eq!(c.users[0].password.expose().len(), 512);
}

/// Every literal example of iked.conf(5) parses, the road-warrior
/// gateway and client among them, as an operator would copy it.
#[test]
fn the_man_page_examples_parse() {
    let page = include_str!("../../../man/iked.conf.5");
    let mut examples = 0;
    let mut rest = page;
    while let Some(start) = rest.find(".Bd -literal -offset indent\n") {
        let body = &rest[start + ".Bd -literal -offset indent\n".len()..];
        let end = body.find(".Ed\n").expect("an example ends with .Ed");
        // mdoc writes a backslash as \e.
        let text = body[..end].replace("\\e", "\\");
        let c = ok(&text);
        if text.contains("eap \"mschap-v2\"") {
            assert!(c.policies.iter().any(|p| p.remote_access.eap.is_some()));
        }
        examples += 1;
        rest = &body[end..];
    }
    assert!(
        examples >= 7,
        "only {examples} examples found in iked.conf.5"
    );
}

/// The users go to ca in one IPC message: their names and passwords are
/// capped in all, and the 100,000 users that fit parse quickly (a set,
/// not a scan, finds duplicates).
#[test]
fn many_users_parse_and_their_total_size_is_capped() {
    let many: String = (0..100_000)
        .map(|i| format!("user \"user-{i}\" \"password-{i}\"\n"))
        .collect();
    let started = std::time::Instant::now();
    let c = ok(&many);
    println!("100000 user lines parsed in {:?}", started.elapsed());
    assert_eq!(c.users.len(), 100_000);
    let (line, _, message) = error_at(&(many.clone() + "user \"one-more\" \"pw\"\n"));
    assert_eq!(line, 100_001);
    assert!(
        message.contains("more than 100000 'user' lines"),
        "{message}"
    );
    let big_password = "p".repeat(256);
    let heavy: String = (0..20_000)
        .map(|i| format!("user \"user-{i:0>200}\" \"{big_password}\"\n"))
        .collect();
    let (line, col, message) = error_at(&heavy);
    assert_eq!(col, 1);
    assert!(line > 8_000 && line < 10_000, "{line}");
    assert!(
        message.contains("the 'user' lines hold more than 4 MiB"),
        "{message}"
    );
    assert!(!message.contains(&big_password));
}
