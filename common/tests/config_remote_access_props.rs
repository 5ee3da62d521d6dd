//! Property tests of the remote-access grammar of iked.conf(5): policies
//! made of random remote-access words (right and wrong ones, in any
//! order) never panic the parser; every error is located inside the
//! text; and what it accepts prints back (`iked -n -v`) as a
//! configuration that parses to the same policies, no password shown.

use iked_common::config::{normalized, parse_str, Config};
use proptest::prelude::*;

/// Words a road-warrior policy uses, and some it must refuse.
const WORDS: &[&str] = &[
    "config",
    "address",
    "netmask",
    "name-server",
    "netbios-server",
    "dhcp-server",
    "protected-subnet",
    "access-server",
    "request",
    "any",
    "iface",
    "eap",
    "\"mschap-v2\"",
    "\"md5\"",
    "10.9.0.0/24",
    "10.9.0.0/16",
    "10.9.0.1/24",
    "fd00:9::/64",
    "fd00:9::/120",
    "255.255.255.0",
    "10.1.0.53",
    "fd00:1::53",
    "198.18.0.0/24",
    "vpn0",
    "eth0/1",
    "from",
    "to",
    "dynamic",
    "10.1.0.0/16",
    "peer",
    "local",
    "198.18.0.1",
    "198.18.0.2",
    "active",
    "passive",
    "psk",
    "\"k\"",
    "srcid",
    "alice",
    "bob",
    "rsa",
];

fn policy_words() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(proptest::sample::select(WORDS), 0..24)
}

const PASSWORD: &str = "pw-never-printed-4b7";

fn text_of(words: &[&str], second: &[&str]) -> String {
    format!(
        "user alice \"{PASSWORD}\"\nikev2 \"a\" {}\nikev2 \"b\" {}\n",
        words.join(" "),
        second.join(" ")
    )
}

fn same_policies(a: &Config, b: &Config) -> bool {
    a.policies == b.policies
        && a.users
            .iter()
            .map(|u| &u.name)
            .eq(b.users.iter().map(|u| &u.name))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn random_remote_access_policies_parse_or_fail_located_and_print_back(
        first in policy_words(),
        second in policy_words(),
    ) {
        let text = text_of(&first, &second);
        match parse_str("rw.conf", &text, &[]) {
            Err(e) => {
                // Line 1 is the user line, 2 and 3 the policies.
                prop_assert!((1..=3).contains(&e.location.line), "{e}: {text}");
                let line = text.lines().nth(e.location.line as usize - 1).unwrap();
                prop_assert!(
                    (1..=line.len() as u32).contains(&e.location.col),
                    "{e}: {text}"
                );
                prop_assert!(!e.message.contains(PASSWORD));
            }
            Ok(config) => {
                let printed = normalized(&config);
                prop_assert!(!printed.contains(PASSWORD), "{printed}");
                let again = parse_str("printed.conf", &printed, &[]);
                prop_assert!(again.is_ok(), "{:?}\n{text}\n{printed}", again.err());
                let again = again.unwrap();
                prop_assert!(same_policies(&config, &again), "{text}\n{printed}");
            }
        }
    }
}

/// `config` lines a gateway may have, any subset in any order.
const GATEWAY_OPTIONS: &[&str] = &[
    "config address 10.9.0.0/24",
    "config address 10.10.0.0/16",
    "config address fd00:9::/64",
    "config netmask 255.255.255.0",
    "config name-server 10.1.0.53",
    "config name-server fd00:1::53",
    "config netbios-server 10.1.0.54",
    "config dhcp-server 10.1.0.55",
    "config protected-subnet 10.2.0.0/16",
    "config access-server 10.1.0.56",
    "eap \"mschap-v2\"",
    "srcid gw.example",
    "from 10.1.0.0/16 to dynamic",
    "from any to 10.3.0.0/16",
];

/// What a client may add to `request address any`.
const CLIENT_OPTIONS: &[&str] = &[
    "request name-server any",
    "iface vpn0",
    "eap \"mschap-v2\" srcid alice",
    "from dynamic to 10.1.0.0/16",
    "from dynamic to fd00:1::/48",
    "dstid gw.example",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Well-formed gateways and clients, their words shuffled, are
    /// accepted and print back to the same policies.
    #[test]
    fn well_formed_gateways_and_clients_parse_and_print_back(
        gateway in proptest::sample::subsequence(GATEWAY_OPTIONS, 0..=GATEWAY_OPTIONS.len())
            .prop_shuffle(),
        client in proptest::sample::subsequence(CLIENT_OPTIONS, 0..=CLIENT_OPTIONS.len())
            .prop_shuffle(),
    ) {
        // `to dynamic` needs an IPv4 pool; without one the refusal says so.
        let has_v4_pool = gateway.iter().any(|w| w.starts_with("config address 10."));
        let needs_v4_pool = gateway.contains(&"from 10.1.0.0/16 to dynamic");
        let text = format!(
            "user alice \"{PASSWORD}\"\n\
             ikev2 \"gw\" passive local 198.18.0.1 peer any {}\n\
             ikev2 \"client\" active local 198.18.0.2 peer 198.18.0.1 request address any {}\n",
            gateway.join(" "),
            client.join(" ")
        );
        match parse_str("rw.conf", &text, &[]) {
            Err(e) => {
                prop_assert!(needs_v4_pool && !has_v4_pool, "{e}\n{text}");
                prop_assert!(e.message.contains("no IPv4 pool"), "{e}");
                prop_assert_eq!(e.location.line, 2);
            }
            Ok(config) => {
                prop_assert!(!needs_v4_pool || has_v4_pool);
                let gw = &config.policies[0].remote_access;
                prop_assert_eq!(
                    gw.config.len(),
                    gateway.iter().filter(|w| w.starts_with("config ")).count()
                );
                prop_assert!(config.policies[1].remote_access.request_address);
                let printed = normalized(&config);
                prop_assert!(!printed.contains(PASSWORD));
                let again = parse_str("printed.conf", &printed, &[]);
                prop_assert!(again.is_ok(), "{:?}\n{printed}", again.err());
                prop_assert!(same_policies(&config, &again.unwrap()), "{printed}");
            }
        }
    }
}
