//! The `set` options of settings.rs, `quick`/`skip`/`default`, `{ }`
//! lists and the refused OpenBSD keywords: each accepted, and each
//! mistake refused with file:line:col.

use super::*;

fn parse(text: &str) -> Config {
    parse_str("t.conf", text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn refused(text: &str) -> String {
    match parse_str("t.conf", text, &[]) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

const POLICY: &str = "ikev2 \"p\" from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 psk \"k\"\n";

#[test]
fn defaults_are_the_former_constants() {
    let config = parse("");
    let t = config.engine;
    assert_eq!(t.retransmit_timeout_secs, 2);
    assert_eq!(t.retransmit_tries, 5);
    assert_eq!(t.half_open_timeout_secs, 30);
    assert_eq!(t.cookie_threshold, 500);
    assert_eq!(t.half_open_max, 20_000);
    assert_eq!(t.half_open_per_source, 5);
    assert_eq!(
        t.child_sas_per_ike_sa as usize,
        crate::limits::MAX_CHILD_SAS_PER_IKE_SA
    );
    assert_eq!(
        t.child_sas_per_policy as usize,
        crate::limits::MAX_CHILD_SAS_PER_POLICY
    );
    assert!(!t.enforce_single_ike_sa);
    assert!(config.couple);
}

#[test]
fn every_tunable_is_set_within_its_bounds_and_refused_outside() {
    for tunable in TUNABLES {
        for value in [tunable.min, tunable.max] {
            // The other side of the cookie_threshold <= half_open_max check
            // out of the way.
            let room = match tunable.keyword {
                "cookie_threshold" => "set half_open_max 1000000\n",
                "half_open_max" => "set cookie_threshold 0\n",
                _ => "",
            };
            let config = parse(&format!("{room}set {} {value}\n", tunable.keyword));
            assert_eq!((tunable.get)(&config.engine), value, "{}", tunable.keyword);
        }
        let over = u64::from(tunable.max) + 1;
        let message = refused(&format!("# over\n  set {} {over}\n", tunable.keyword));
        assert_eq!(
            message,
            format!(
                "t.conf:2:{}: invalid {} '{over}': expected {}..{} {}",
                8 + tunable.keyword.len(),
                tunable.keyword,
                tunable.min,
                tunable.max,
                tunable.unit
            )
        );
        if tunable.min > 0 {
            let under = tunable.min - 1;
            let message = refused(&format!("set {} {under}\n", tunable.keyword));
            assert!(message.starts_with("t.conf:1:"), "{message}");
        }
        let message = refused(&format!("set {} many\n", tunable.keyword));
        assert!(message.contains("invalid"), "{message}");
        let message = refused(&format!("set {}\n", tunable.keyword));
        assert_eq!(
            message,
            format!(
                "t.conf:1:5: set {} needs a number: expected {}..{} {}",
                tunable.keyword, tunable.min, tunable.max, tunable.unit
            )
        );
        let message = refused(&format!("set {} {} 4\n", tunable.keyword, tunable.min));
        assert!(message.contains("unexpected text after"), "{message}");
    }
}

#[test]
fn the_child_sa_caps_can_only_be_lowered() {
    let over = crate::limits::MAX_CHILD_SAS_PER_IKE_SA + 1;
    let message = refused(&format!("set childsa_max_per_ikesa {over}\n"));
    assert!(message.starts_with("t.conf:1:27: invalid"), "{message}");
}

#[test]
fn a_cookie_threshold_above_the_cap_is_refused_where_written() {
    let message = refused("set half_open_max 100\nset cookie_threshold 200\n");
    assert!(
        message.starts_with("t.conf:2:5: cookie_threshold 200 is above half_open_max 100"),
        "{message}"
    );
    // The default threshold (500) above a lowered cap: the cap is named.
    let message = refused("set half_open_max 100\n");
    assert!(
        message.starts_with("t.conf:1:5: cookie_threshold 500"),
        "{message}"
    );
    let config = parse("set half_open_max 100\nset cookie_threshold 0\n");
    assert_eq!(config.engine.cookie_threshold, 0);
}

#[test]
fn flags_enforcesingleikesa_couple_and_novendorid() {
    assert!(
        parse("set enforcesingleikesa\n")
            .engine
            .enforce_single_ike_sa
    );
    assert!(
        !parse("set enforcesingleikesa\nset noenforcesingleikesa\n")
            .engine
            .enforce_single_ike_sa
    );
    assert!(!parse("set decouple\n").couple);
    assert!(parse("set decouple\nset couple\n").couple);
    parse("set novendorid\n");
    let message = refused("set couple now\n");
    assert_eq!(message, "t.conf:1:12: unexpected text after 'set couple'");
}

#[test]
fn unimplemented_openbsd_options_are_refused_by_name() {
    for (name, why) in REFUSED_OPTIONS {
        let message = refused(&format!("\nset {name}\n"));
        assert_eq!(
            message,
            format!("t.conf:2:5: 'set {name}' is refused: {why}")
        );
    }
    let message = refused("set ocsp \"http://ocsp.example/\"\n");
    assert!(
        message.starts_with("t.conf:1:5: 'set ocsp' is refused: OCSP"),
        "{message}"
    );
}

#[test]
fn quick_skip_and_default_are_read_and_printed() {
    for (word, kind) in [
        ("quick", PolicyMatch::Quick),
        ("skip", PolicyMatch::Skip),
        ("default", PolicyMatch::Default),
    ] {
        let config = parse(&format!(
            "ikev2 \"p\" {word} active from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 psk \"k\"\n"
        ));
        assert_eq!(config.policies[0].matching, kind);
        let printed = normalized(&config);
        assert!(
            printed.contains(&format!("ikev2 \"p\" {word} \\\n")),
            "{printed}"
        );
        assert_eq!(parse(&printed).policies, config.policies);
    }
    assert_eq!(parse(POLICY).policies[0].matching, PolicyMatch::Normal);
    let message = refused("ikev2 \"p\" quick default peer 192.0.2.2 psk \"k\"\n");
    assert_eq!(message, "t.conf:1:17: 'quick/skip/default' given twice");
}

#[test]
fn preference_order_is_quick_then_last_match_then_default_never_skip() {
    let config = parse(
        "ikev2 \"first\" peer 192.0.2.2 psk \"k\"\n\
         ikev2 \"fallback\" default peer 192.0.2.2 psk \"k\"\n\
         ikev2 \"second\" peer 192.0.2.2 psk \"k\"\n\
         ikev2 \"only-flows\" skip peer 192.0.2.2 psk \"k\"\n\
         ikev2 \"fast\" quick peer 192.0.2.2 psk \"k\"\n\
         ikev2 \"other-peer\" quick peer 192.0.2.9 psk \"k\"\n",
    );
    let peer: std::net::IpAddr = "192.0.2.2".parse().unwrap();
    let names = |matches: &dyn Fn(&Policy) -> bool| -> Vec<String> {
        preference_order(&config.policies, matches)
            .into_iter()
            .map(|p| p.name.clone())
            .collect()
    };
    let for_peer = |p: &Policy| p.peer.is_none_or(|pp| pp.contains(peer));
    assert_eq!(names(&for_peer), ["fast", "second", "first", "fallback"]);
    // Without the quick one the last match wins.
    assert_eq!(
        names(&|p: &Policy| for_peer(p) && p.name != "fast"),
        ["second", "first", "fallback"]
    );
}

#[test]
fn from_and_to_take_lists() {
    let config = parse(
        "ikev2 \"p\" from { 10.1.0.0/24, 10.3.0.0/24 } to { 10.2.0.0/24 10.4.0.0/24 } \
         from 10.5.0.0/24 to 10.6.0.0/24 peer 192.0.2.2 psk \"k\"\n",
    );
    let flows: Vec<String> = config.policies[0]
        .flows
        .iter()
        .map(|f| format!("{}/{}>{}/{}", f.src, f.src_prefix, f.dst, f.dst_prefix))
        .collect();
    assert_eq!(
        flows,
        [
            "10.1.0.0/24>10.2.0.0/24",
            "10.1.0.0/24>10.4.0.0/24",
            "10.3.0.0/24>10.2.0.0/24",
            "10.3.0.0/24>10.4.0.0/24",
            "10.5.0.0/24>10.6.0.0/24",
        ]
    );
    // From a macro, as in OpenBSD examples.
    let config = parse(
        "nets = \"{ 10.1.0.0/24, 10.3.0.0/24 }\"\n\
         ikev2 \"p\" from $nets to 10.2.0.0/24 peer 192.0.2.2 psk \"k\"\n",
    );
    assert_eq!(config.policies[0].flows.len(), 2);
    let printed = normalized(&config);
    assert_eq!(parse(&printed).policies[0].flows, config.policies[0].flows);
}

#[test]
fn bad_lists_are_refused_where_written() {
    let message = refused("ikev2 \"p\" from { 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2\n");
    assert!(message.starts_with("t.conf:1:"), "{message}");
    let message = refused("ikev2 \"p\" from { } to 10.2.0.0/24 peer 192.0.2.2 psk \"k\"\n");
    assert_eq!(message, "t.conf:1:16: empty list '{ }'");
    let message = refused("ikev2 \"p\" from { 10.1.0.0/24, nowhere } to 10.2.0.0/24 psk \"k\"\n");
    assert!(
        message.starts_with("t.conf:1:31: 'nowhere' is not an address"),
        "{message}"
    );
    let many: Vec<String> = (0..20).map(|i| format!("10.{i}.0.0/16")).collect();
    let message = refused(&format!(
        "ikev2 \"p\" from {{ {} }} to {{ {} }} peer 192.0.2.2 psk \"k\"\n",
        many.join(", "),
        many.iter()
            .map(|n| n.replace("10.", "172."))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    assert!(message.contains("more than 256 flows"), "{message}");
}

#[test]
fn openbsd_only_policy_keywords_are_refused_by_name() {
    for word in ["tap", "rdomain", "tag", "ipcomp"] {
        let message = refused(&format!("ikev2 \"p\" peer 192.0.2.2 {word} x psk \"k\"\n"));
        assert!(
            message.starts_with(&format!("t.conf:1:26: '{word}' is refused: ")),
            "{message}"
        );
    }
}

#[test]
fn brief_print_leaves_out_defaults_and_verbose_has_every_tunable() {
    let config = parse(&format!("set retransmit_tries 3\nset decouple\n{POLICY}"));
    let brief = normalized_brief(&config);
    assert!(brief.contains("set retransmit_tries 3\n"), "{brief}");
    assert!(brief.contains("set decouple\n"), "{brief}");
    assert!(!brief.contains("set half_open_max"), "{brief}");
    assert!(!brief.contains("set dpd_check_interval"), "{brief}");
    assert!(brief.contains("ikev2 \"p\""), "{brief}");
    assert!(!brief.contains("ikelifetime"), "{brief}");
    assert_eq!(parse(&brief).policies, config.policies, "{brief}");
    let full = normalized(&config);
    assert!(full.contains("\tikelifetime 86400 \\\n"), "{full}");
    for tunable in TUNABLES {
        assert!(
            full.contains(&format!("set {} ", tunable.keyword)),
            "{full}"
        );
    }
    let again = parse(&full);
    assert_eq!(again.engine, config.engine);
    assert_eq!(again.couple, config.couple);
    assert_eq!(parse(&brief).engine, config.engine);
}

#[test]
fn a_policy_a_later_one_always_outmatches_is_warned_about() {
    let config = parse(
        "ikev2 \"specific\" local 198.18.0.1 peer 192.0.2.2 psk \"k\"\n\
         ikev2 \"general\" local 198.18.0.1 peer 192.0.2.0/24 psk \"k\"\n",
    );
    let warnings = order_warnings(&config);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "policy 'specific' is never chosen for an incoming IKE SA: the later policy 'general'"
        ),
        "{warnings:?}"
    );
    // In the right order, or with quick, or told apart by dstid: none.
    for text in [
        "ikev2 \"general\" local 198.18.0.1 peer 192.0.2.0/24 psk \"k\"\nikev2 \"specific\" local 198.18.0.1 peer 192.0.2.2 psk \"k\"\n",
        "ikev2 \"specific\" quick local 198.18.0.1 peer 192.0.2.2 psk \"k\"\nikev2 \"general\" local 198.18.0.1 peer 192.0.2.0/24 psk \"k\"\n",
        "ikev2 \"specific\" local 198.18.0.1 peer 192.0.2.2 psk \"k\"\nikev2 \"general\" local 198.18.0.1 peer 192.0.2.0/24 dstid gw.example psk \"k\"\n",
        "ikev2 \"specific\" local 198.18.0.1 peer 192.0.2.2 psk \"k\"\nikev2 \"other\" local 198.18.0.1 peer 192.0.2.3 psk \"k\"\n",
        "ikev2 \"specific\" local 198.18.0.1 peer 192.0.2.2 ikesa enc aes-256 psk \"k\"\nikev2 \"general\" local 198.18.0.1 peer 192.0.2.0/24 psk \"k\"\n",
    ] {
        assert!(order_warnings(&parse(text)).is_empty(), "{text}");
    }
}
