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
    assert_eq!(parse("# nothing\n\n   # here\n").unwrap(), Config::default());
}

#[test]
fn set_passive_and_active() {
    assert_eq!(parse("set passive\n").unwrap().mode, InitiationMode::Passive);
    assert_eq!(parse("set passive\nset active # back\n").unwrap().mode, InitiationMode::Active);
}

#[test]
fn set_kernel_and_dpd() {
    let c = parse("set kernel pfkey\nset dpd_check_interval 30").unwrap();
    assert_eq!(c.kernel, Some(KernelSocketKind::Pfkey));
    assert_eq!(c.dpd_check_interval, 30);
    assert_eq!(parse("set kernel xfrm").unwrap().kernel, Some(KernelSocketKind::Xfrm));
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
    let e = parse("set $nope").unwrap_err();
    assert_eq!((e.location.line, e.location.col), (1, 5));
    assert!(e.message.contains("'nope' is not defined"));
}

#[test]
fn line_continuation_joins_statements() {
    assert_eq!(parse("set \\\n passive\n").unwrap().mode, InitiationMode::Passive);
}

#[test]
fn macro_definitions_from_the_command_line() {
    assert_eq!(parse_macro_definition("a=b").unwrap(), ("a".into(), "b".into()));
    assert!(parse_macro_definition("1a=b").is_err());
    assert!(parse_macro_definition("novalue").is_err());
}

#[test]
fn includes_are_followed_and_errors_name_the_included_file() {
    let dir = std::env::temp_dir().join(format!("iked-conf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.conf"), "include \"sub.conf\"\n").unwrap();
    std::fs::write(dir.join("sub.conf"), "set passive\n").unwrap();
    assert_eq!(parse_file(&dir.join("main.conf"), &[]).unwrap().mode, InitiationMode::Passive);

    std::fs::write(dir.join("sub.conf"), "\nset what\n").unwrap();
    let e = parse_file(&dir.join("main.conf"), &[]).unwrap_err();
    assert!(e.location.file.ends_with("sub.conf"), "{e}");
    assert_eq!((e.location.line, e.location.col), (2, 5));

    std::fs::write(dir.join("loop.conf"), "include \"loop.conf\"\n").unwrap();
    let e = parse_file(&dir.join("loop.conf"), &[]).unwrap_err();
    assert!(e.message.contains("nested deeper"), "{e}");

    let e = parse_file(&dir.join("missing.conf"), &[]).unwrap_err();
    assert!(e.message.contains("cannot open"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
