//! The manual pages in man/: valid mdoc(7) by mandoc's lint, and in step
//! with the code. Flags, commands, keywords and algorithm names are read
//! from the source files themselves, so adding one there without
//! documenting it fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lies inside the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = workspace().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

const PAGES: [&str; 3] = ["man/iked.8", "man/ikectl.8", "man/iked.conf.5"];

/// Whether `page` has the mdoc macro `macro_name` directly followed by the
/// argument `argument` as a whole word (".Fl d", "Cm aes-128 ,").
fn has_macro_argument(page: &str, macro_name: &str, argument: &str) -> bool {
    page.lines().any(|line| {
        let words: Vec<&str> = line.trim_start_matches('.').split_whitespace().collect();
        words
            .windows(2)
            .any(|pair| pair[0] == macro_name && pair[1] == argument)
    })
}

/// Whether `page` has a list entry `.It macro_name argument ...`, the place
/// where an option or command is described, not merely mentioned.
fn has_item(page: &str, macro_name: &str, argument: &str) -> bool {
    page.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.get(..3) == Some(&[".It", macro_name, argument][..])
    })
}

/// The characters X of every `short = 'X'` in `source`.
fn short_flags(source: &str) -> Vec<char> {
    let mut flags = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("short = '") {
        let after = &rest[at + "short = '".len()..];
        let mut chars = after.chars();
        if let (Some(flag), Some('\'')) = (chars.next(), chars.next()) {
            flags.push(flag);
        }
        rest = after;
    }
    flags
}

/// The text between the first `{` after `header` in `source` and the
/// brace that closes it.
fn braced_body<'a>(source: &'a str, header: &str) -> &'a str {
    let at = source
        .find(header)
        .unwrap_or_else(|| panic!("'{header}' not found in the source"));
    let open = at
        + source[at..]
            .find('{')
            .unwrap_or_else(|| panic!("no '{{' after '{header}'"));
    let body = &source[open + 1..];
    let mut depth = 1usize;
    for (index, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &body[..index];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces after '{header}'")
}

/// The variant names of `enum name { ... }`, lower-cased as clap names
/// subcommands and values (these are single words).
fn enum_variants(source: &str, name: &str) -> Vec<String> {
    let body = braced_body(source, &format!("enum {name} "));
    let mut variants = Vec::new();
    let mut depth = 0usize;
    for line in body.lines() {
        let trimmed = line.trim();
        if depth == 0 && trimmed.starts_with(|c: char| c.is_ascii_uppercase()) {
            let variant: String = trimmed
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            variants.push(variant.to_lowercase());
        }
        for c in trimmed.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    variants
}

/// The first string of each `("name", ...)` row of `const NAME: &[...] = &[ ... ];`.
fn table_names(source: &str, table: &str) -> Vec<String> {
    let start = source
        .find(&format!("const {table}: &["))
        .unwrap_or_else(|| panic!("table {table} not found in policy_parser.rs"));
    let after = &source[start..];
    let body_start = after.find("= &[").expect("table initializer") + "= &[".len();
    let body = &after[body_start..];
    let body = &body[..body.find("];").expect("end of table")];
    body.lines()
        .filter_map(|line| {
            let row = line.trim().strip_prefix("(\"")?;
            Some(row[..row.find('"')?].to_string())
        })
        .collect()
}

/// Keywords of the arms of `match keyword.as_str()` in `parse_policy`, and
/// of the `ikesa`/`childsa` sub-keyword match: lines such as
/// `"tunnel" | "transport" => {` or `"prf" if ike => {`.
fn policy_keywords(source: &str) -> Vec<String> {
    let body = braced_body(source, "pub fn parse_policy(");
    let mut keywords = Vec::new();
    for line in body.lines() {
        let trimmed = line.trim();
        let Some((pattern, _)) = trimmed.split_once("=>") else {
            continue;
        };
        if !trimmed.starts_with('"') {
            continue;
        }
        let pattern = pattern.split(" if ").next().unwrap_or(pattern);
        for alternative in pattern.split('|') {
            let word = alternative.trim().trim_matches('"');
            if !word.is_empty() && !keywords.iter().any(|k| k == word) {
                keywords.push(word.to_string());
            }
        }
    }
    keywords
}

#[test]
fn pages_pass_mandoc_lint_without_warnings() {
    for page in PAGES {
        let path = workspace().join(page);
        let output = match Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(&path)
            .output()
        {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "mandoc is not installed, so the manual pages cannot be checked: \
                 install it (apt-get install mandoc) and run the tests again"
            ),
            Err(e) => panic!("cannot run mandoc: {e}"),
        };
        let messages = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && messages.trim().is_empty(),
            "mandoc -T lint -W warning {page}: {}\n{messages}",
            output.status
        );
    }
}

#[test]
fn every_iked_flag_is_documented() {
    let flags = short_flags(&read("parent/src/cli.rs"));
    // The ones OpenBSD's iked(8) has and ours declares; fewer means the
    // parse of cli.rs broke, not that the page is right.
    assert!(
        flags.len() >= 11,
        "found only {flags:?} in parent/src/cli.rs"
    );
    let page = read("man/iked.8");
    let missing: Vec<&char> = flags
        .iter()
        .filter(|flag| !has_item(&page, "Fl", &flag.to_string()))
        .collect();
    assert!(
        missing.is_empty(),
        "iked.8 has no '.It Fl X' entry for {missing:?}"
    );
}

#[test]
fn every_ikectl_command_and_option_is_documented() {
    let source = read("ikectl/src/main.rs");
    let page = read("man/ikectl.8");

    let commands = enum_variants(&source, "Command");
    assert_eq!(
        commands,
        [
            "log",
            "reload",
            "reset",
            "show",
            "initiate",
            "terminate",
            "ca",
            "monitor",
            "load",
            "active",
            "passive",
            "couple",
            "decouple",
            "completions"
        ],
        "commands parsed from ikectl"
    );
    let shown = enum_variants(&source, "Show");
    let levels = enum_variants(&source, "LogLevel");
    assert!(
        !shown.is_empty() && !levels.is_empty(),
        "show: {shown:?}, log: {levels:?}"
    );
    for word in commands.iter().chain(&levels) {
        assert!(
            has_macro_argument(&page, "Cm", word),
            "ikectl.8 lacks 'Cm {word}'"
        );
    }
    for what in &shown {
        assert!(
            page.contains(&format!(".It Cm show {what}")),
            "ikectl.8 lacks '.It Cm show {what}'"
        );
    }
    // Every command heads an entry of the command list.
    for command in &commands {
        assert!(
            has_item(&page, "Cm", command),
            "ikectl.8 has no '.It Cm {command}' entry"
        );
    }

    let flags = short_flags(&source);
    assert_eq!(flags, ['s'], "short options parsed from ikectl");
    for flag in flags {
        assert!(
            has_item(&page, "Fl", &flag.to_string()),
            "ikectl.8 has no '.It Fl {flag}' entry"
        );
    }
    // `#[arg(long)]` fields are long options named after the field.
    let mut long_options = Vec::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "#[arg(long)]" {
            let field = lines.next().unwrap_or("").trim();
            long_options.push(field.split(':').next().unwrap_or("").trim().to_string());
        }
    }
    assert_eq!(
        long_options,
        ["json", "count", "policy", "peer"],
        "long options parsed from ikectl"
    );
    for option in long_options {
        assert!(
            has_item(&page, "Fl", &format!("-{option}")),
            "ikectl.8 has no '.It Fl -{option}' entry"
        );
    }
}

/// The keywords of the `"word" =>` arms in `source`: the words the `ca`
/// option parser (ikectl/src/ca/options.rs) takes.
fn match_arm_words(source: &str) -> Vec<String> {
    let mut words = Vec::new();
    for line in source.lines() {
        let trimmed = line.trim();
        let Some((pattern, _)) = trimmed.split_once("=>") else {
            continue;
        };
        if !trimmed.starts_with('"') {
            continue;
        }
        for alternative in pattern.split('|') {
            let word = alternative.trim().trim_matches('"');
            if !word.is_empty() && !words.iter().any(|w| w == word) {
                words.push(word.to_string());
            }
        }
    }
    words
}

#[test]
fn every_ikectl_ca_command_and_option_is_documented() {
    let source = read("ikectl/src/ca/mod.rs");
    let page = read("man/ikectl.8");
    let forms = [
        ("CaAction", ".It Cm ca Ar name Cm "),
        (
            "CertificateAction",
            ".It Cm ca Ar name Cm certificate Ar host Cm ",
        ),
        ("KeyAction", ".It Cm ca Ar name Cm key Ar host Cm "),
    ];
    let mut count = 0;
    for (enumeration, entry) in forms {
        for action in enum_variants(&source, enumeration) {
            // `certificate` and `key` head their own lists.
            if enumeration == "CaAction" && (action == "certificate" || action == "key") {
                continue;
            }
            count += 1;
            assert!(
                page.lines().any(|line| line
                    .strip_prefix(entry)
                    .is_some_and(|rest| rest.split_whitespace().next() == Some(action.as_str()))),
                "ikectl.8 has no '{entry}{action}' entry"
            );
        }
    }
    assert!(
        count >= 13,
        "only {count} ca commands parsed from ikectl/src/ca/mod.rs"
    );
    assert!(page.contains(".It Cm show ca Ar name Cm certificates"));
    let words = match_arm_words(&read("ikectl/src/ca/options.rs"));
    for expected in [
        "password", "rsa", "ecdsa", "server", "client", "altname", "peer", "days", "cn",
    ] {
        assert!(
            words.iter().any(|w| w == expected),
            "'{expected}' not parsed from ikectl/src/ca/options.rs: {words:?}"
        );
    }
    let missing: Vec<&String> = words
        .iter()
        .filter(|w| !has_macro_argument(&page, "Cm", w))
        .collect();
    assert!(
        missing.is_empty(),
        "ikectl.8 lacks 'Cm word' for ca options {missing:?}"
    );
    assert!(page.contains(".It Ev IKECTL_CA_DIR"));
    assert!(source.contains("\"IKECTL_CA_DIR\""));
}

#[test]
fn every_algorithm_name_of_the_parser_is_documented() {
    let source = read("common/src/config/policy_parser.rs");
    let page = read("man/iked.conf.5");
    for table in ["CIPHERS", "INTEGRITY", "PRFS", "GROUPS"] {
        let names = table_names(&source, table);
        assert!(names.len() >= 4, "table {table} parsed as {names:?}");
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !has_macro_argument(&page, "Cm", n))
            .collect();
        assert!(
            missing.is_empty(),
            "iked.conf.5 lacks 'Cm name' for {table} {missing:?}"
        );
    }
}

/// The options of `config`, `request` and the methods of `eap`
/// (common/src/config/remote_access.rs) are documented, and so is the
/// top-level `user` statement.
#[test]
fn every_remote_access_option_of_the_parser_is_documented() {
    let source = read("common/src/config/remote_access.rs");
    let page = read("man/iked.conf.5");
    let config = table_names(&source, "CONFIG_OPTIONS");
    assert!(config.len() >= 7, "config options parsed as {config:?}");
    for option in &config {
        assert!(
            has_macro_argument(&page, "Cm", option),
            "iked.conf.5 lacks 'Cm {option}' for 'config {option}'"
        );
    }
    let request = table_names(&source, "REQUEST_OPTIONS");
    assert_eq!(request, ["address", "name-server"]);
    for option in &request {
        assert!(
            page.contains(&format!(".It Cm request {option} any")),
            "iked.conf.5 lacks '.It Cm request {option} any'"
        );
    }
    let methods = table_names(&source, "EAP_METHODS");
    assert_eq!(methods, ["mschap-v2"]);
    for method in &methods {
        assert!(page.contains(&format!(".Qq {method}")), "eap {method}");
    }
    assert!(page.contains(".Ic user Ar name password"));
}

/// The options of `set` the parser knows: the strings its `fn set(`
/// matches on (`"name" => ...` arms).
fn set_options(source: &str) -> Vec<String> {
    braced_body(source, "fn set(")
        .lines()
        .filter_map(|line| {
            let (name, after) = line.trim().strip_prefix('"')?.split_once('"')?;
            after
                .trim_start()
                .starts_with("=>")
                .then(|| name.to_string())
        })
        .collect()
}

#[test]
fn every_set_option_of_the_parser_is_documented() {
    let options = set_options(&read("common/src/config/parser.rs"));
    for expected in [
        "active",
        "passive",
        "dpd_check_interval",
        "kernel",
        "control_group",
        "fragmentation",
        "nofragmentation",
        "fragment_size",
    ] {
        assert!(
            options.iter().any(|o| o == expected),
            "'set {expected}' not found in the parser: {options:?}"
        );
    }
    let page = read("man/iked.conf.5");
    let missing: Vec<&String> = options
        .iter()
        .filter(|option| {
            !page.lines().any(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                words.get(..4) == Some(&[".It", "Ic", "set", option.as_str()][..])
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "iked.conf.5 lacks '.It Ic set OPTION' for {missing:?}"
    );
}

#[test]
fn every_policy_keyword_of_the_parser_is_documented() {
    let keywords = policy_keywords(&read("common/src/config/policy_parser.rs"));
    for expected in ["active", "from", "ikesa", "childsa", "enc", "group", "psk"] {
        assert!(
            keywords.iter().any(|k| k == expected),
            "'{expected}' not parsed from parse_policy: {keywords:?}"
        );
    }
    let page = read("man/iked.conf.5");
    let missing: Vec<&String> = keywords
        .iter()
        .filter(|k| !has_macro_argument(&page, "Cm", k))
        .collect();
    assert!(
        missing.is_empty(),
        "iked.conf.5 lacks 'Cm keyword' for {missing:?}"
    );
}

#[test]
fn documented_defaults_match_the_code() {
    let page = read("man/iked.conf.5");
    let policy_parser = read("common/src/config/policy_parser.rs");
    let config = read("common/src/config/mod.rs");
    // "pub const DEFAULT_IKE_LIFETIME: u64 = 86_400;" → "86400"
    let constant = |source: &str, name: &str| -> String {
        let line = source
            .lines()
            .find(|l| l.contains(&format!("const {name}:")))
            .unwrap_or_else(|| panic!("{name} not found"));
        let value = line
            .split('=')
            .nth(1)
            .unwrap_or("")
            .trim()
            .trim_end_matches(';');
        value.replace('_', "")
    };
    for name in [
        "DEFAULT_IKE_LIFETIME",
        "DEFAULT_CHILD_LIFETIME",
        "MIN_LIFETIME",
    ] {
        let value = constant(&policy_parser, name);
        assert!(
            page.contains(&format!("{value} seconds")),
            "iked.conf.5 does not give {name} = {value} seconds"
        );
    }
    let depth = constant(&config, "MAX_INCLUDE_DEPTH");
    assert!(
        page.contains(&format!("at most {depth} deep")),
        "include depth {depth}"
    );
    let dpd_line = config
        .lines()
        .find(|l| l.trim_start().starts_with("dpd_check_interval:"))
        .expect("default dpd_check_interval in Config::default");
    let dpd = dpd_line
        .split(':')
        .nth(1)
        .unwrap_or("")
        .trim()
        .trim_end_matches(',');
    assert!(
        page.contains(&format!("The default is {dpd}.")),
        "dpd_check_interval default {dpd}"
    );
}

#[test]
fn source_parsers_of_this_test_work_on_known_text() {
    // The helpers above must find what is there, or every check is vacuous.
    assert_eq!(
        short_flags("#[arg(short = 'x')] a #[arg(short = 'Y', long)]"),
        ['x', 'Y']
    );
    let source = "enum E {\n    /// doc\n    A { x: u8 },\n    Bb,\n    #[x]\n    C(String),\n}\n";
    assert_eq!(enum_variants(source, "E"), ["a", "bb", "c"]);
    let table = "const T: &[(&str, u16)] = &[\n    (\"one\", 1),\n    (\"two-2\", 2),\n];\n";
    assert_eq!(table_names(table, "T"), ["one", "two-2"]);
    assert!(has_macro_argument(".It Cm aes-128 , Cm x", "Cm", "aes-128"));
    assert!(!has_macro_argument(".It Cm aes-128-gcm", "Cm", "aes-128"));
    assert!(has_item(".It Fl s Ar socket", "Fl", "s"));
    let parser = "fn set(&mut self) -> R {\n    match x {\n        \"a\" => 1,\n        \"b_c\" => {\n            if v == \"no\" { 2 }\n        }\n    }\n}\n";
    assert_eq!(set_options(parser), ["a", "b_c"]);
    assert!(!has_item(".Op Fl s Ar socket", "Fl", "s"));
}

/// iked(8)'s table of what each process may do is the one generated from
/// the seccomp lists in common/src/privileges/syscalls.rs, verbatim.
#[test]
fn the_process_table_of_iked_8_is_generated_from_the_syscall_lists() {
    let table = iked_common::privileges::syscalls::man_page_table();
    let page = read("man/iked.8");
    assert!(
        page.contains(&table),
        "man/iked.8 does not have the table generated from \
         common/src/privileges/syscalls.rs; put this block in its \
         \"Privilege separation\" section, replacing the old one:\n{table}"
    );
}

/// `--seccomp-log` is the one long option of iked; it is documented too.
#[test]
fn the_seccomp_log_option_is_documented() {
    assert!(read("parent/src/cli.rs").contains("long = \"seccomp-log\""));
    assert!(has_item(&read("man/iked.8"), "Fl", "-seccomp-log"));
}
