use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str("test.conf", text, &[])
}

fn error_at(text: &str) -> (u32, u32, String) {
    let e = parse(text).expect_err("should fail");
    assert_eq!(e.location.file, "test.conf");
    (e.location.line, e.location.col, e.message)
}

#[test]
fn empty_and_comment_only_files_are_valid() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert_eq!(
        parse("# nothing\n\n   # here\n").unwrap(),
        Config::default()
    );
}

#[test]
fn set_passive_and_active() {
    assert_eq!(
        parse("set passive\n").unwrap().mode,
        InitiationMode::Passive
    );
    assert_eq!(
        parse("set passive\nset active # back\n").unwrap().mode,
        InitiationMode::Active
    );
}

#[test]
fn set_kernel_and_dpd() {
    let c = parse("set kernel pfkey\nset dpd_check_interval 30").unwrap();
    assert_eq!(c.kernel, Some(KernelSocketKind::Pfkey));
    assert_eq!(c.dpd_check_interval, 30);
    assert_eq!(
        parse("set kernel xfrm").unwrap().kernel,
        Some(KernelSocketKind::Xfrm)
    );
}

#[test]
fn set_control_group_takes_a_quoted_or_bare_group_name() {
    assert_eq!(parse("").unwrap().control_group, None);
    assert_eq!(
        parse("set control_group \"ikeadm\"\n")
            .unwrap()
            .control_group
            .as_deref(),
        Some("ikeadm")
    );
    assert_eq!(
        parse("g = \"vpn-ops\"\nset control_group $g\n")
            .unwrap()
            .control_group
            .as_deref(),
        Some("vpn-ops")
    );
    let (line, col, message) = error_at("set control_group\n");
    assert_eq!((line, col), (1, 5));
    assert!(message.contains("needs a group name"), "{message}");
    for bad in ["\"\"", "\"-x\"", "\"a b\"", "\"wheel:0\"", &"g".repeat(33)] {
        let (line, col, message) = error_at(&format!("set control_group {bad}\n"));
        assert_eq!((line, col), (1, 19), "{bad}");
        assert!(message.contains("invalid group name"), "{bad}: {message}");
    }
    let (_, col, message) = error_at("set control_group wheel staff\n");
    assert_eq!(col, 25);
    assert!(message.contains("unexpected text"), "{message}");
}

#[test]
fn unknown_syntax_names_line_and_column() {
    assert_eq!(
        error_at("set passive\n\n  bogus statement\n"),
        (3, 3, "syntax error: unknown keyword 'bogus'".to_string())
    );
    let (line, col, message) = error_at("set passive\nset sideways\n");
    assert_eq!((line, col), (2, 5));
    assert!(message.contains("set sideways"), "{message}");
    let (line, col, _) = error_at("set passive extra\n");
    assert_eq!((line, col), (1, 13));
}

#[test]
fn bad_values_are_located() {
    let (line, col, message) = error_at("set dpd_check_interval soon\n");
    assert_eq!((line, col), (1, 24));
    assert!(message.contains("soon"));
    assert_eq!(error_at("set kernel bsd").0, 1);
    let (line, col, message) = error_at("# c\nset passive \"unterminated\n");
    assert_eq!((line, col), (2, 13));
    assert!(message.contains("unterminated"));
}

#[test]
fn macros_expand_and_undefined_ones_are_errors() {
    let c = parse("mode = \"passive\"\nset $mode\n").unwrap();
    assert_eq!(c.mode, InitiationMode::Passive);
    let c = parse_str("t", "set $m", &[("m".into(), "passive".into())]).unwrap();
    assert_eq!(c.mode, InitiationMode::Passive);
    // -D wins over a definition in the file, as in OpenBSD.
    let c = parse_str("t", "m = active\nset $m", &[("m".into(), "passive".into())]).unwrap();
    assert_eq!(c.mode, InitiationMode::Passive);
    let e = parse("set $nope").unwrap_err();
    assert_eq!((e.location.line, e.location.col), (1, 5));
    assert!(e.message.contains("'nope' is not defined"));
}

#[test]
fn line_continuation_joins_statements() {
    assert_eq!(
        parse("set \\\n passive\n").unwrap().mode,
        InitiationMode::Passive
    );
}

#[test]
fn macro_definitions_from_the_command_line() {
    assert_eq!(
        parse_macro_definition("a=b").unwrap(),
        ("a".into(), "b".into())
    );
    assert!(parse_macro_definition("1a=b").is_err());
    assert!(parse_macro_definition("novalue").is_err());
}

/// Writes a configuration file as iked demands it: mode 0600.
fn write_secret(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn includes_are_followed_and_errors_name_the_included_file() {
    let dir = std::env::temp_dir().join(format!("iked-conf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_secret(&dir.join("main.conf"), "include \"sub.conf\"\n");
    write_secret(&dir.join("sub.conf"), "set passive\n");
    assert_eq!(
        parse_file(&dir.join("main.conf"), &[]).unwrap().mode,
        InitiationMode::Passive
    );

    write_secret(&dir.join("sub.conf"), "\nset what\n");
    let e = parse_file(&dir.join("main.conf"), &[]).unwrap_err();
    assert!(e.location.file.ends_with("sub.conf"), "{e}");
    assert_eq!((e.location.line, e.location.col), (2, 5));

    write_secret(&dir.join("loop.conf"), "include \"loop.conf\"\n");
    let e = parse_file(&dir.join("loop.conf"), &[]).unwrap_err();
    assert!(e.message.contains("nested deeper"), "{e}");

    let e = parse_file(&dir.join("missing.conf"), &[]).unwrap_err();
    assert!(e.message.contains("cannot open"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn files_readable_or_writable_by_others_are_refused_naming_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("iked-conf-mode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let main = dir.join("main.conf");
    let sub = dir.join("sub.conf");
    write_secret(&main, "include \"sub.conf\"\n");
    write_secret(&sub, "set passive\n");
    assert!(parse_file(&main, &[]).is_ok());
    for (mode, what) in [
        (0o644, "0644"),
        (0o640, "0640"),
        (0o620, "0620"),
        (0o602, "0602"),
    ] {
        std::fs::set_permissions(&main, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = parse_file(&main, &[]).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "{}: mode {what} lets group or others",
                main.display()
            )),
            "{e}"
        );
    }
    // Owner-only bits (and execute for nobody) are fine.
    std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(parse_file(&main, &[]).is_ok());
    // An included file is held to the same rule, and named.
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o604)).unwrap();
    let e = parse_file(&main, &[]).unwrap_err().to_string();
    assert!(e.contains(&format!("{}: mode 0604", sub.display())), "{e}");
    // Not owned by root (nor by us): refused. Only root can make such a file.
    if nix::unistd::Uid::effective().is_root() {
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&sub, Some(65534), None).unwrap();
        let e = parse_file(&main, &[]).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{}: owned by uid 65534, not root", sub.display())),
            "{e}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

const GCM: &str =
    "ikev2 \"gcm\" active esp from 10.1.1.0/24 to 10.2.1.0/24 local 198.18.0.1 peer 198.18.0.2 \
ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 childsa enc aes-128-gcm group curve25519 \
srcid a.ike.test dstid b.ike.test psk \"interop-lab-psk-0123456789\"\n";

#[test]
fn the_issue_example_policy_parses_exactly() {
    let c = parse(GCM).unwrap();
    assert_eq!(c.policies.len(), 1);
    let p = &c.policies[0];
    assert_eq!(p.name, "gcm");
    assert_eq!(p.initiation, PolicyInitiation::Active);
    assert_eq!(p.encapsulation, Encapsulation::Tunnel);
    assert_eq!(p.flows.len(), 1);
    assert_eq!(p.flows[0].to_string(), "10.1.1.0/24 -> 10.2.1.0/24");
    assert_eq!(p.local.unwrap().to_string(), "198.18.0.1/32");
    assert_eq!(p.peer.unwrap().to_string(), "198.18.0.2/32");
    let t = |transform_type, id, key_length| TransformSpec {
        transform_type,
        id,
        key_length,
    };
    assert_eq!(
        p.ike_proposals,
        vec![ProposalSpec {
            transforms: vec![
                t(TRANSFORM_ENCR, 20, Some(128)),
                t(TRANSFORM_PRF, 5, None),
                t(TRANSFORM_KE, 31, None)
            ]
        }]
    );
    assert_eq!(
        p.child_proposals,
        vec![ProposalSpec {
            transforms: vec![
                t(TRANSFORM_ENCR, 20, Some(128)),
                t(TRANSFORM_KE, 31, None),
                t(TRANSFORM_ESN, 0, None)
            ]
        }]
    );
    assert_eq!(p.srcid, Some(IdentitySpec::Fqdn("a.ike.test".into())));
    assert_eq!(p.dstid, Some(IdentitySpec::Fqdn("b.ike.test".into())));
    assert_eq!(p.ike_lifetime_secs, DEFAULT_IKE_LIFETIME);
    // The secret is kept apart from the policy, for ca-proc only.
    assert_eq!(c.psks.len(), 1);
    assert_eq!(c.psks[0].0, "gcm");
    assert_eq!(c.psks[0].1.expose(), b"interop-lab-psk-0123456789");
    assert!(
        !format!("{c:?}").contains("interop-lab-psk"),
        "Debug must not print the key"
    );
}

#[test]
fn cbc_policy_with_integrity_lifetimes_macros_and_hex_psk() {
    let text = "peer_b = \"198.18.0.2\"\n\
        ikev2 \"cbc\" passive esp tunnel from 10.1.0.0/24 to 10.2.0.0/24 \\\n\
          local 198.18.0.1 peer $peer_b \\\n\
          ikesa enc aes-256 auth hmac-sha2-256 prf hmac-sha2-256 group modp2048 \\\n\
          childsa enc aes-256 auth hmac-sha2-256 group modp2048 \\\n\
          srcid a.ike.test dstid b.ike.test ikelifetime 1h lifetime 20s bytes 100M psk 0x616263\n";
    let c = parse(text).unwrap();
    let p = &c.policies[0];
    assert_eq!(p.initiation, PolicyInitiation::Passive);
    assert_eq!(p.peer.unwrap().addr.to_string(), "198.18.0.2");
    let ids: Vec<(u8, u16)> = p.ike_proposals[0]
        .transforms
        .iter()
        .map(|t| (t.transform_type, t.id))
        .collect();
    assert_eq!(ids, vec![(1, 12), (3, 12), (2, 5), (4, 14)]);
    assert_eq!(p.ike_lifetime_secs, 3600);
    assert_eq!(p.child_lifetime_secs, 20);
    assert_eq!(p.child_lifetime_bytes, 100 << 20);
    assert_eq!(c.psks[0].1.expose(), b"abc");
}

#[test]
fn defaults_split_aead_and_cbc_proposals_and_v6_flows_parse() {
    let c = parse("ikev2 \"v6\" esp from fd01:a::/64 to fd01:b::/64 local fd00:18::1 peer fd00:18::2 psk \"k\"\n").unwrap();
    let p = &c.policies[0];
    assert_eq!(p.flows[0].to_string(), "fd01:a::/64 -> fd01:b::/64");
    assert_eq!(
        p.ike_proposals.len(),
        2,
        "AEAD and non-AEAD default proposals"
    );
    assert!(p.ike_proposals[0].of_type(TRANSFORM_INTEG).next().is_none());
    assert!(p.ike_proposals[1].of_type(TRANSFORM_INTEG).next().is_some());
    assert!(
        p.child_proposals
            .iter()
            .all(|pr| pr.of_type(TRANSFORM_KE).next().is_none()),
        "no PFS by default"
    );
    // Transport mode and unnamed policies.
    let c = parse("ikev2 transport local 192.0.2.1 peer 192.0.2.2 psk \"k\"\n").unwrap();
    assert_eq!(c.policies[0].name, "policy1");
    assert_eq!(c.policies[0].encapsulation, Encapsulation::Transport);
}

#[test]
fn policy_errors_are_located_and_say_what_is_wrong() {
    let cases: &[(&str, (u32, u32), &str)] = &[
        (
            "ikev2 \"x\" ikesa enc aes-999 psk \"k\"",
            (1, 21),
            "unknown cipher 'aes-999'",
        ),
        (
            "ikev2 \"x\" from 10.0.0.0/24 to fd00::/64 psk \"k\"",
            (1, 31),
            "different address families",
        ),
        (
            "ikev2 \"x\" from 10.0.0.0/33 to 10.1.0.0/24 psk \"k\"",
            (1, 16),
            "invalid prefix length",
        ),
        (
            "ikev2 \"x\" from gw.example to 10.1.0.0/24 psk \"k\"",
            (1, 16),
            "hostnames are not supported",
        ),
        ("ikev2 \"x\" lifetime 5s psk \"k\"", (1, 20), "too short"),
        (
            "ikev2 \"x\" ikesa enc aes-128-gcm auth hmac-sha2-256 psk \"k\"",
            (1, 11),
            "'auth' has no use",
        ),
        (
            "ikev2 \"x\" frobnicate psk \"k\"",
            (1, 11),
            "unknown keyword 'frobnicate'",
        ),
        ("ikev2 \"x\" psk 0xabc", (1, 15), "even"),
        (
            "ikev2 \"x\" active passive psk \"k\"",
            (1, 18),
            "given twice",
        ),
        (
            "ikev2 \"x\" psk \"a\"\nikev2 \"x\" psk \"b\"",
            (2, 1),
            "duplicate policy name 'x'",
        ),
        (
            "ikev2 \"x\" from 10.0.0.0/24 10.1.0.0/24 psk \"k\"",
            (1, 28),
            "expected 'to'",
        ),
        (
            "ikev2 \"x\" childsa group bogus psk \"k\"",
            (1, 25),
            "unknown group 'bogus'",
        ),
    ];
    for (text, (line, col), needle) in cases {
        let e = parse(text).expect_err(text);
        assert_eq!(
            (e.location.line, e.location.col),
            (*line, *col),
            "{text}: {e}"
        );
        assert!(e.message.contains(needle), "{text}: {e}");
    }
}

/// Issue 17: a policy without `from ... to` gets the flow between its two
/// gateways from the parser (so the engine negotiates what pfkey allows);
/// one without fixed addresses gets none.
#[test]
fn a_policy_without_from_to_protects_the_two_gateways() {
    let c = parse(
        "ikev2 \"h\" transport proto udp local 198.18.0.1 peer 198.18.0.2 psk \"k\"\n\
         ikev2 \"any\" local 198.18.0.1 peer any psk \"k\"\n\
         ikev2 \"v6\" local fd00:18::1 peer fd00:18::2 psk \"k\"\n",
    )
    .unwrap();
    assert_eq!(c.policies[0].flows.len(), 1);
    assert_eq!(
        c.policies[0].flows[0].to_string(),
        "198.18.0.1/32 -> 198.18.0.2/32 proto 17"
    );
    assert!(c.policies[1].flows.is_empty());
    assert_eq!(
        c.policies[2].flows[0].to_string(),
        "fd00:18::1/128 -> fd00:18::2/128"
    );
}

/// Traps are the default; `notrap` opts a policy out, once.
#[test]
fn notrap_opts_a_policy_out_of_its_traps() {
    let c = parse(
        "ikev2 \"t\" local 198.18.0.1 peer 198.18.0.2 psk \"k\"\n\
         ikev2 \"n\" notrap local 198.18.0.1 peer 198.18.0.3 psk \"k\"\n",
    )
    .unwrap();
    assert!(c.policies[0].trap);
    assert!(!c.policies[1].trap);
    let (_, _, message) = error_at("ikev2 notrap notrap psk \"k\"\n");
    assert!(message.contains("'notrap' given twice"), "{message}");
}

/// Camellia-CBC (RFC 4312) is a Child SA cipher too, with the key lengths
/// of `ikesa`.
#[test]
fn camellia_is_accepted_in_childsa() {
    let c = parse(
        "ikev2 \"c\" childsa enc camellia-256 enc camellia-128 enc camellia-192 \
         auth hmac-sha2-256 group modp2048 psk \"k\"\n",
    )
    .unwrap();
    let encr: Vec<(u16, Option<u16>)> = c.policies[0].child_proposals[0]
        .of_type(TRANSFORM_ENCR)
        .map(|t| (t.id, t.key_length))
        .collect();
    assert_eq!(
        encr,
        vec![(23, Some(256)), (23, Some(128)), (23, Some(192))]
    );
}

#[test]
fn routes_are_on_by_default_and_set_routes_noroutes_and_routing_table_change_them() {
    use crate::routing::DEFAULT_ROUTING_TABLE;
    let c = parse("").unwrap();
    assert!(c.routing.enabled);
    assert_eq!(c.routing.table, DEFAULT_ROUTING_TABLE);
    let c = parse("set noroutes\nset routing_table 100").unwrap();
    assert!(!c.routing.enabled);
    assert_eq!(c.routing.table, 100);
    assert!(parse("set noroutes\nset routes").unwrap().routing.enabled);
    assert_eq!(
        parse("set routing_table 70000").unwrap().routing.table,
        70000
    );
    for bad in ["0", "253", "254", "255", "main", "-1", "4294967296"] {
        let (line, col, message) = error_at(&format!("set routing_table {bad}\n"));
        assert_eq!((line, col), (1, 19), "{bad}: {message}");
        assert!(message.contains("invalid routing_table"), "{message}");
    }
    let (_, _, message) = error_at("set routing_table\n");
    assert!(message.contains("needs a table number"), "{message}");
    let (_, _, message) = error_at("set noroutes please\n");
    assert!(
        message.contains("unexpected text after 'set noroutes'"),
        "{message}"
    );
}

#[test]
fn set_certdir_takes_an_absolute_directory_and_defaults_to_etc_iked() {
    assert_eq!(parse("").unwrap().certdir, super::DEFAULT_CERTDIR);
    assert_eq!(
        parse("set certdir \"/etc/iked/pki\"\n").unwrap().certdir,
        "/etc/iked/pki"
    );
    assert_eq!(
        parse("d = \"/srv/ike\"\nset certdir $d\n").unwrap().certdir,
        "/srv/ike"
    );
    let (line, col, message) = error_at("set certdir\n");
    assert_eq!((line, col), (1, 5), "{message}");
    assert!(message.contains("needs a directory"), "{message}");
    let (_, col, message) = error_at("set certdir \"etc/iked\"\n");
    assert_eq!(col, 13, "{message}");
    assert!(message.contains("absolute directory path"), "{message}");
    let (_, _, message) = error_at("set certdir \"/a\" \"/b\"\n");
    assert!(
        message.contains("unexpected text after 'set certdir'"),
        "{message}"
    );
}

#[test]
fn fragmentation_is_on_at_1280_by_default_and_set_fragmentation_options_change_it() {
    let c = parse("").unwrap();
    assert!(c.fragmentation.enabled);
    assert_eq!(c.fragmentation.max_datagram, 1280);
    let c = parse("set nofragmentation\nset fragment_size 576").unwrap();
    assert!(!c.fragmentation.enabled);
    assert_eq!(c.fragmentation.max_datagram, 576);
    let c = parse("set nofragmentation\nset fragmentation\nset fragment_size 65535").unwrap();
    assert!(c.fragmentation.enabled);
    assert_eq!(c.fragmentation.max_datagram, 65535);
    for bad in ["575", "0", "65536", "-1", "1280b", "large"] {
        let (line, col, message) = error_at(&format!("set fragment_size {bad}\n"));
        assert_eq!((line, col), (1, 19), "{bad}: {message}");
        assert!(
            message.contains(&format!(
                "invalid fragment_size '{bad}': expected 576..65535"
            )),
            "{message}"
        );
    }
    let (_, _, message) = error_at("set fragment_size\n");
    assert!(message.contains("needs a number of bytes"), "{message}");
    let (_, _, message) = error_at("set fragmentation yes\n");
    assert!(
        message.contains("unexpected text after 'set fragmentation'"),
        "{message}"
    );
}
