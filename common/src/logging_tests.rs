use super::*;

#[test]
fn a_short_line_is_prefix_message_end() {
    let line = format_line("iked[7] ikev2: ", &"IKE SA up", "\n");
    assert_eq!(line, "iked[7] ikev2: IKE SA up\n");
}

#[test]
fn a_peer_cannot_end_the_line_and_forge_another() {
    let identity = "alice\niked[1] parent: authenticated admin\r";
    let line = format_line(
        "iked[7] ikev2: ",
        &format_args!("AUTH of {identity} failed"),
        "\n",
    );
    assert_eq!(
        line,
        "iked[7] ikev2: AUTH of alice\\niked[1] parent: authenticated admin\\r failed\n"
    );
    assert_eq!(line.matches('\n').count(), 1);
    assert!(line.ends_with('\n'));
}

#[test]
fn other_controls_and_line_separators_are_escaped() {
    let line = format_line(
        "",
        &"a\u{0}b\u{1b}[31mc\u{7f}d\u{85}e\u{2028}f\u{202e}g\th",
        "",
    );
    assert_eq!(
        line,
        "a\\x00b\\x1b[31mc\\x7fd\\x85e\\u{2028}f\\u{202e}g\\th"
    );
}

#[test]
fn ordinary_text_and_non_ascii_names_stay_as_they_are() {
    let text = "peer 192.0.2.1[500] id user@example.org, Zürich, \\x41 stays";
    assert_eq!(format_line("", &text, ""), text);
}

#[test]
fn a_long_line_is_cut_at_the_bound_with_a_marker() {
    let long = "x".repeat(MAX_LINE * 2);
    let line = format_line("iked[7] pfkey: ", &long, "\n");
    assert_eq!(line.len(), MAX_LINE);
    assert!(line.ends_with(&format!("{TRUNCATED}\n")), "{line}");
    assert!(line.starts_with("iked[7] pfkey: xxx"));
    assert_eq!(line.matches('\n').count(), 1);
}

#[test]
fn a_line_of_exactly_the_bound_is_not_cut() {
    let prefix = "p: ";
    let fits = "y".repeat(MAX_LINE - prefix.len() - 1);
    let line = format_line(prefix, &fits, "\n");
    assert_eq!(line.len(), MAX_LINE);
    assert!(!line.contains(TRUNCATED));
    let one_more = "y".repeat(MAX_LINE - prefix.len());
    assert!(format_line(prefix, &one_more, "\n").contains(TRUNCATED));
}

#[test]
fn truncation_never_splits_a_character_or_an_escape() {
    // Multi-byte characters and escapes around the cut: the result is
    // valid UTF-8 (a String) within the bound, for every offset.
    for shift in 0..8 {
        let message = format!("{}{}", "a".repeat(shift), "é\n€".repeat(MAX_LINE));
        let line = format_line("", &message, "\n");
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(line.ends_with(&format!("{TRUNCATED}\n")));
        let body = line.trim_end_matches(&format!("{TRUNCATED}\n"));
        // The cut falls between whole escapes: no lone backslash at the end.
        assert!(
            body.ends_with('é') || body.ends_with('€') || body.ends_with("\\n"),
            "{}",
            &body[body.len() - 8..]
        );
    }
}

#[test]
fn facilities_by_name() {
    assert_eq!(Facility::from_name("daemon").unwrap(), Facility::DAEMON);
    assert_eq!(Facility::from_name("LOCAL3").unwrap().code(), 19);
    assert_eq!(Facility::from_name("log_authpriv").unwrap().code(), 10);
    assert_eq!(Facility::from_name("local7").unwrap().name(), "local7");
    let error = Facility::from_name("local8").unwrap_err();
    assert!(
        error.contains("local8") && error.contains("local0"),
        "{error}"
    );
}

#[test]
fn syslog_severities_keep_info_visible_by_default() {
    assert_eq!(severity(Level::Error), 3);
    assert_eq!(severity(Level::Warn), 4);
    assert_eq!(severity(Level::Info), 5);
    assert_eq!(severity(Level::Debug), 6);
    assert_eq!(severity(Level::Trace), 7);
}

#[test]
fn a_timestamp_has_the_rfc_3164_shape() {
    let stamp = local_timestamp();
    assert_eq!(stamp.len(), 15, "{stamp:?}");
    let bytes = stamp.as_bytes();
    assert_eq!(bytes[3], b' ');
    assert_eq!(bytes[9], b':');
    assert_eq!(bytes[12], b':');
}
