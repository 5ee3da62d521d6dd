//! `ikeauth` and public-key policies, DN identities (issue 13).

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str("test.conf", text, &[])
}

fn only_policy(text: &str) -> (Policy, Vec<(String, PreSharedKey)>) {
    let c = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(c.policies.len(), 1);
    (c.policies[0].clone(), c.psks)
}

fn error_at(text: &str) -> (u32, u32, String) {
    let e = parse(text).expect_err("should fail");
    assert_eq!(e.location.file, "test.conf");
    (e.location.line, e.location.col, e.message)
}

#[test]
fn a_policy_without_psk_uses_public_keys_with_any_signature() {
    let (p, psks) = only_policy("ikev2 \"x\" local 192.0.2.1 peer 192.0.2.2\n");
    assert_eq!(p.auth, AuthSpec::PublicKey(SignatureAuth::Any));
    assert!(psks.is_empty());
}

#[test]
fn ikeauth_methods_as_openbsd_writes_them_and_after_ikeauth() {
    for (word, method) in [
        ("rsa", SignatureAuth::Rsa),
        ("ecdsa256", SignatureAuth::Ecdsa256),
        ("ecdsa384", SignatureAuth::Ecdsa384),
        ("ecdsa521", SignatureAuth::Ecdsa521),
        ("rfc7427", SignatureAuth::Rfc7427),
        ("signature", SignatureAuth::Any),
    ] {
        for text in [
            format!("ikev2 \"x\" peer 192.0.2.2 {word}\n"),
            format!("ikev2 \"x\" peer 192.0.2.2 ikeauth {word} srcid gw.example\n"),
        ] {
            let (p, psks) = only_policy(&text);
            assert_eq!(p.auth, AuthSpec::PublicKey(method), "{text}");
            assert!(psks.is_empty());
        }
    }
}

#[test]
fn psk_alone_or_after_ikeauth() {
    for text in [
        "ikev2 \"x\" peer 192.0.2.2 psk \"k1\"\n",
        "ikev2 \"x\" peer 192.0.2.2 ikeauth psk \"k1\"\n",
    ] {
        let (p, psks) = only_policy(text);
        assert_eq!(p.auth, AuthSpec::Psk);
        assert_eq!(psks.len(), 1);
        assert_eq!(psks[0].1.expose(), b"k1");
    }
}

#[test]
fn ikeauth_errors_name_the_word() {
    for (text, at, message) in [
        (
            "ikev2 \"x\" ikeauth dsa",
            (1, 19),
            "unknown ikeauth 'dsa': expected psk \"KEY\" or one of rsa, ecdsa256",
        ),
        ("ikev2 \"x\" ikeauth", (1, 11), "expected psk"),
        ("ikev2 \"x\" ikeauth \"rsa\"", (1, 19), "expected psk"),
        (
            "ikev2 \"x\" ikeauth psk",
            (1, 19),
            "psk needs a quoted string",
        ),
        (
            "ikev2 \"x\" rsa psk \"k\"",
            (1, 15),
            "'ikeauth' given twice",
        ),
        (
            "ikev2 \"x\" psk \"k\" ecdsa256",
            (1, 19),
            "'ikeauth' given twice",
        ),
    ] {
        let (line, col, got) = error_at(text);
        assert_eq!((line, col), at, "{text}: {got}");
        assert!(got.contains(message), "{text}: {got}");
    }
}

#[test]
fn dn_identities_in_both_spellings() {
    let (p, _) = only_policy(
        "ikev2 \"x\" peer 192.0.2.2 srcid \"C=DE, O=Example, CN=gw-a\" \
         dstid \"/C=DE/O=Example/CN=gw-b/emailAddress=ops@example.com\"\n",
    );
    assert_eq!(
        p.srcid,
        Some(IdentitySpec::Asn1Dn("C=DE, O=Example, CN=gw-a".into()))
    );
    assert_eq!(
        p.dstid,
        Some(IdentitySpec::Asn1Dn(
            "C=DE, O=Example, CN=gw-b, emailAddress=ops@example.com".into()
        ))
    );
    // The other types are unchanged.
    let (p, _) = only_policy("ikev2 \"x\" srcid ops@example.com dstid @gw.example rsa\n");
    assert_eq!(
        p.srcid,
        Some(IdentitySpec::UserFqdn("ops@example.com".into()))
    );
    assert_eq!(p.dstid, Some(IdentitySpec::Fqdn("gw.example".into())));
}

#[test]
fn an_identity_that_is_no_dn_is_refused_where_it_stands() {
    for (text, at, message) in [
        (
            "ikev2 \"x\" srcid \"Bogus=1, CN=x\"",
            (1, 17),
            "'Bogus=1, CN=x' is not a distinguished name: 'Bogus=1': unknown attribute",
        ),
        (
            "# second line\nikev2 \"x\" dstid \"C=DE,, CN=x\"",
            (2, 17),
            "is not a distinguished name: an empty attribute",
        ),
        (
            "ikev2 \"x\" dstid \"/C=Germany/CN=x\"",
            (1, 17),
            "is not a distinguished name",
        ),
        ("ikev2 \"x\" srcid /", (1, 17), "no attribute"),
    ] {
        let (line, col, got) = error_at(text);
        assert_eq!((line, col), at, "{text}: {got}");
        assert!(got.contains(message), "{text}: {got}");
    }
}
