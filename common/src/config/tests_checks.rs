use super::*;
use crate::config::parse_str;

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str("test.conf", text, &[])
}

fn refused(text: &str) -> (u32, u32, String) {
    let e = parse(text).expect_err("should be refused");
    assert_eq!(e.location.file, "test.conf");
    (e.location.line, e.location.col, e.message)
}

const SITE: &str = "ikev2 \"site\" active esp from 10.1.0.0/24 to 10.2.0.0/24 \
                    local 192.0.2.1 peer 192.0.2.2 psk \"secret-secret\"";

#[test]
fn pfkey_refuses_combined_mode_ciphers_where_written() {
    let text = format!("set kernel pfkey\n{SITE} childsa enc aes-128-gcm\n");
    let (line, col, message) = refused(&text);
    let written = text.lines().nth(1).unwrap().find("aes-128-gcm").unwrap() as u32 + 1;
    assert_eq!((line, col), (2, written), "{message}");
    assert!(
        message.contains(
            "policy 'site': 'childsa enc aes-128-gcm' cannot be installed through PF_KEY"
        ),
        "{message}"
    );
    assert!(
        message.contains("no combined-mode (AEAD) ciphers"),
        "{message}"
    );
    let (_, _, message) = refused(&format!(
        "set kernel pfkey\n{SITE} childsa enc chacha20-poly1305\n"
    ));
    assert!(message.contains("chacha20-poly1305"), "{message}");
}

#[test]
fn pfkey_after_the_policy_is_still_checked() {
    let (line, _, message) = refused(&format!(
        "{SITE} childsa enc aes-256-gcm\nset kernel pfkey\n"
    ));
    assert_eq!(line, 1, "{message}");
}

#[test]
fn pfkey_refuses_hmac_sha2_256_and_esn_with_the_reason() {
    let (_, _, message) = refused(&format!(
        "set kernel pfkey\n{SITE} childsa enc aes-256 auth hmac-sha2-256\n"
    ));
    assert!(
        message.contains("truncates hmac-sha2-256 to 96 bits"),
        "{message}"
    );
    let text = format!("set kernel pfkey\n{SITE} childsa enc aes-256 auth hmac-sha2-512 esn\n");
    let (line, col, message) = refused(&text);
    let esn = text.lines().nth(1).unwrap().rfind("esn").unwrap() as u32 + 1;
    assert_eq!((line, col), (2, esn), "{message}");
    assert!(message.contains("extended sequence numbers"), "{message}");
}

#[test]
fn pfkey_accepts_what_it_can_install_and_xfrm_accepts_all() {
    let fine = format!("set kernel pfkey\n{SITE} childsa enc aes-256 auth hmac-sha2-512 noesn\n");
    parse(&fine).unwrap();
    parse(&format!("set kernel pfkey\n{SITE}\n")).unwrap();
    parse(&format!(
        "set kernel xfrm\n{SITE} childsa enc aes-128-gcm childsa enc aes-256 auth hmac-sha2-256 esn\n"
    ))
    .unwrap();
    // No `set kernel`: not known until the parent opens one.
    parse(&format!("{SITE} childsa enc aes-128-gcm\n")).unwrap();
}

#[test]
fn the_kernel_check_refuses_written_algorithms_once_pfkey_is_open() {
    let mut config = parse(&format!("{SITE}\n{SITE2} childsa enc aes-128-gcm\n")).unwrap();
    let e = check_kernel(&mut config, &KernelAlgorithms::LinuxPfkey).unwrap_err();
    assert_eq!(e.location.line, 2, "{e}");
    assert!(e.message.contains("policy 'second'"), "{e}");
}

const SITE2: &str = "ikev2 \"second\" active esp from 10.3.0.0/24 to 10.4.0.0/24 \
                     local 192.0.2.1 peer 192.0.2.3 psk \"secret-secret\"";

#[test]
fn pfkey_keeps_only_installable_defaults() {
    let mut config = parse(&format!("{SITE}\n")).unwrap();
    let before = config.policies[0].child_proposals.clone();
    assert!(before
        .iter()
        .flat_map(|p| &p.transforms)
        .any(is_combined_mode));
    let warnings = check_kernel(&mut config, &KernelAlgorithms::LinuxPfkey).unwrap();
    assert!(warnings.is_empty());
    let after = &config.policies[0].child_proposals;
    assert!(!after.is_empty());
    for t in after.iter().flat_map(|p| &p.transforms) {
        assert!(pfkey_refusal(t).is_none(), "{t:?} left in {after:?}");
    }
    assert!(after
        .iter()
        .all(|p| p.of_type(TRANSFORM_INTEG).next().is_some()));
    // XFRM, nothing known missing: the defaults stay as they are.
    let mut config = parse(&format!("{SITE}\n")).unwrap();
    check_kernel(
        &mut config,
        &KernelAlgorithms::assumed(KernelSocketKind::Xfrm),
    )
    .unwrap();
    assert_eq!(config.policies[0].child_proposals, before);
}

#[test]
fn xfrm_refuses_what_the_kernel_refused_and_warns_when_it_cannot_tell() {
    let gcm = TransformSpec {
        transform_type: TRANSFORM_ENCR,
        id: 20,
        key_length: Some(128),
    };
    let kernel = KernelAlgorithms::Xfrm {
        unavailable: vec![gcm],
        unknown: None,
    };
    let mut config = parse(&format!("{SITE} childsa enc aes-128-gcm\n")).unwrap();
    let e = check_kernel(&mut config, &kernel).unwrap_err();
    assert!(e.message.contains("through XFRM"), "{e}");
    assert!(e.message.contains("refused an SA with it"), "{e}");
    // aes-256-gcm is another key length: not refused.
    let mut config = parse(&format!("{SITE} childsa enc aes-256-gcm\n")).unwrap();
    check_kernel(&mut config, &kernel).unwrap();
    let unknown = KernelAlgorithms::Xfrm {
        unavailable: Vec::new(),
        unknown: Some("the kernel has no ESP".into()),
    };
    let mut config = parse(&format!("{SITE} childsa enc aes-128-gcm\n")).unwrap();
    let warnings = check_kernel(&mut config, &unknown).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("the kernel has no ESP"),
        "{warnings:?}"
    );
    // No policy, no Child SA to install: nothing to warn about.
    let mut empty = parse("set passive\n").unwrap();
    assert!(check_kernel(&mut empty, &unknown).unwrap().is_empty());
}

#[test]
fn transport_mode_needs_the_gateways_addresses() {
    let base = "ikev2 \"t\" active esp transport local 192.0.2.1 peer 192.0.2.2 psk \"k-k-k-k\"";
    // No flows: the gateways' own traffic. Explicit hosts: the same.
    parse(&format!("{base}\n")).unwrap();
    parse(&format!("{base} from 192.0.2.1 to 192.0.2.2\n")).unwrap();
    let text = format!("{base} from 10.0.0.0/24 to 192.0.2.2\n");
    let (line, col, message) = refused(&text);
    assert_eq!((line, col), (1, text.find("from").unwrap() as u32 + 1));
    assert!(
        message.contains("transport mode protects only"),
        "{message}"
    );
    assert!(
        message.contains("source 10.0.0.0/24 is a network"),
        "{message}"
    );
    let (_, _, message) = refused(&format!("{base} from 192.0.2.1 to 10.9.0.0/16\n"));
    assert!(
        message.contains("destination 10.9.0.0/16 is a network"),
        "{message}"
    );
    let (_, _, message) = refused(&format!("{base} from 192.0.2.7 to 192.0.2.2\n"));
    assert!(
        message.contains("not our address (local 192.0.2.1)"),
        "{message}"
    );
    let (_, _, message) = refused(&format!("{base} from 192.0.2.1 to 192.0.2.9\n"));
    assert!(message.contains("not the peer's address"), "{message}");
    // The second flow is the wrong one: its `from` is named.
    let text = format!("{base} from 192.0.2.1 to 192.0.2.2 from 192.0.2.1 to 10.0.0.0/8\n");
    let (_, col, _) = refused(&text);
    assert_eq!(col, text.rfind("from").unwrap() as u32 + 1);
    // Tunnel mode takes networks.
    parse(&format!("{SITE}\n")).unwrap();
}

#[test]
fn source_maps_do_not_make_configs_differ() {
    let a = parse(&format!("{SITE}\n")).unwrap();
    let b = parse(&format!("\n\n{SITE}\n")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn short_gcm_icvs_are_refused_in_childsa_under_any_kernel() {
    for cipher in ["aes-128-gcm-12", "aes-256-gcm-8"] {
        let text = format!("{SITE} childsa enc {cipher}\n");
        let (line, col, message) = refused(&text);
        assert_eq!((line, col), (1, text.find(cipher).unwrap() as u32 + 1));
        assert!(message.contains("16-byte ICV only"), "{message}");
        // For the IKE SA, iked's own code does the cipher: accepted.
        parse(&format!(
            "{SITE} ikesa enc {cipher} prf hmac-sha2-256 group ecp256\n"
        ))
        .unwrap();
    }
}
