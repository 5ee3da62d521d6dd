//! `iked -n -v`: the configuration printed back reads as the same
//! configuration, with every secret left out.

use super::*;

fn parse(text: &str) -> Config {
    parse_str("test.conf", text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Prints `text`'s configuration, parses the print, and checks that both
/// are the same but for the secrets, which the print never holds.
fn round_trip(text: &str, secrets: &[&str]) -> String {
    let config = parse(text);
    let printed = normalized(&config);
    for secret in secrets {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    let again = parse_str("printed.conf", &printed, &[])
        .unwrap_or_else(|e| panic!("the print does not parse: {e}\n{printed}"));
    assert_eq!(again.policies, config.policies, "{printed}");
    let names = |c: &Config| c.users.iter().map(|u| u.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&again), names(&config));
    assert!(again
        .users
        .iter()
        .all(|u| u.password.expose() == HIDDEN_SECRET.as_bytes()));
    assert_eq!(again.psks.len(), config.psks.len());
    let settings = |c: &Config| {
        (
            c.mode,
            c.kernel,
            c.dpd_check_interval,
            c.control_group.clone(),
            c.routing,
            c.certdir.clone(),
            c.fragmentation,
            c.mobike,
            c.couple,
            c.engine,
        )
    };
    assert_eq!(settings(&again), settings(&config));
    printed
}

#[test]
fn a_road_warrior_gateway_prints_its_remote_access_keywords_without_passwords() {
    let printed = round_trip(
        "set nomobike\n\
         user \"alice\" \"alice-secret-pw\"\n\
         user \"bob@example.com\" \"bob-secret-pw\"\n\
         ikev2 \"rw\" passive esp from any to dynamic local 198.18.0.1 peer any \
         ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 childsa enc aes-256-gcm \
         srcid gw.example eap \"MSCHAP-v2\" config address 10.9.0.0/24 \
         config address fd00:9::/64 config name-server 10.1.0.53 config netmask 255.255.255.0 \
         config netbios-server 10.1.0.54 config dhcp-server fd00:1::55 \
         config protected-subnet 10.2.0.0/16 config access-server 10.1.0.56 ecdsa256\n",
        &["alice-secret-pw", "bob-secret-pw"],
    );
    for expected in [
        "set nomobike\n",
        "user \"alice\" \"(not shown)\"\n",
        "user \"bob@example.com\" \"(not shown)\"\n",
        "ikev2 \"rw\" \\\n",
        "\tpassive \\\n",
        "\tfrom 0.0.0.0/0 to 10.9.0.0/24 \\\n",
        "\tfrom ::/0 to fd00:9::/64 \\\n",
        "\tlocal 198.18.0.1 \\\n",
        "\tpeer any \\\n",
        "\tikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 \\\n",
        "\tchildsa enc aes-256-gcm noesn \\\n",
        "\tecdsa256 \\\n",
        "\teap \"mschap-v2\" \\\n",
        "\tconfig address 10.9.0.0/24 \\\n",
        "\tconfig address fd00:9::/64 \\\n",
        "\tconfig name-server 10.1.0.53 \\\n",
        "\tconfig netmask 255.255.255.0 \\\n",
        "\tconfig netbios-server 10.1.0.54 \\\n",
        "\tconfig dhcp-server fd00:1::55 \\\n",
        "\tconfig protected-subnet 10.2.0.0/16 \\\n",
        "\tconfig access-server 10.1.0.56\n",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} not in:\n{printed}"
        );
    }
}

#[test]
fn a_client_prints_from_dynamic_request_and_iface() {
    let printed = round_trip(
        "user alice \"alice-secret-pw\"\n\
         ikev2 \"c\" active from dynamic to 10.1.0.0/16 local 198.18.0.2 peer 198.18.0.1 \
         srcid alice dstid @gw.example request address any request name-server any \
         iface vpn0 eap \"mschap-v2\"\n",
        &["alice-secret-pw"],
    );
    for expected in [
        "set mobike\n",
        "\tfrom dynamic to 10.1.0.0/16 \\\n",
        "\tsrcid \"alice\" \\\n",
        "\tdstid \"gw.example\" \\\n",
        "\trequest address any \\\n",
        "\trequest name-server any \\\n",
        "\tiface vpn0\n",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} not in:\n{printed}"
        );
    }
}

#[test]
fn site_to_site_policies_and_every_setting_print_back_the_same() {
    round_trip(
        "set passive\nset kernel xfrm\nset dpd_check_interval 30\nset control_group ikeadm\n\
         set noroutes\nset routing_table 300\nset certdir \"/etc/iked-test\"\n\
         set nofragmentation\nset fragment_size 1400\n\
         ikev2 \"cbc\" active esp tunnel natt notrap proto udp \
         from 10.1.0.0/24 port 53 to 10.2.0.0/24 from 10.3.0.0/24 to 10.4.0.0/24 port 123 \
         local 198.18.0.1 peer 198.18.0.2 \
         ikesa enc aes-256 auth hmac-sha2-256 prf hmac-sha2-256 group modp2048 \
         ikesa enc chacha20-poly1305 prf hmac-sha2-512 group x448 \
         childsa enc aes-128 enc camellia-256 auth hmac-sha2-512 group ecp384 esn \
         srcid \"C=DE, O=Example, CN=gw-a\" dstid ops@example.com \
         ikelifetime 8h lifetime 1h bytes 4G psk \"psk-secret-never-shown\"\n\
         ikev2 \"hosts\" transport local fd00:18::1 peer fd00:18::2 rfc7427 dstid \"@a@b\"\n\
         ikev2 \"defaults\"\n\
         ikev2 \"range\" local 198.18.0.1 peer 198.18.0.0/15 signature\n",
        &["psk-secret-never-shown"],
    );
}
