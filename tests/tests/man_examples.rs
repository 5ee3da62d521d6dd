//! Every example configuration in the manual pages is a configuration
//! `iked -n` accepts: each `.Bd -literal` block of man/*.5 and man/*.8
//! that reads as iked.conf(5) (it starts with a statement: `ikev2`,
//! `set`, `user`, `include` or a macro definition) is written to a file
//! and checked by the built daemon. Needs no root.

use std::path::{Path, PathBuf};
use std::process::Command;

use iked_tests::{binary, write_config, Scratch};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lies inside the workspace")
        .to_path_buf()
}

/// mdoc's escapes of the examples: `\e` is a backslash, `\&` nothing.
fn unescape(line: &str) -> String {
    line.replace("\\&", "").replace("\\e", "\\")
}

/// The literal blocks of `page` with the line each starts on.
fn literal_blocks(page: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in page.lines().enumerate() {
        if line.starts_with(".Bd -literal") {
            current = Some((number + 1, String::new()));
        } else if line.starts_with(".Ed") {
            blocks.extend(current.take());
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(&unescape(line));
            text.push('\n');
        }
    }
    blocks
}

/// Whether a block is an iked.conf(5) example rather than a shell session.
fn is_configuration(block: &str) -> bool {
    let Some(first) = block.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return false;
    };
    let keyword = first.split_whitespace().next().unwrap_or("");
    matches!(keyword, "ikev2" | "set" | "user" | "include")
        || first.split_once('=').is_some_and(|(name, _)| {
            let name = name.trim();
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The name of a group the test's user is in, for examples whose
/// `set control_group` names one this host lacks (`iked -n` checks that
/// the group exists, as the daemon would at start).
fn own_group() -> String {
    let gid = nix::unistd::Gid::effective();
    nix::unistd::Group::from_gid(gid)
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| panic!("group {gid} has no name in the group database"))
}

fn with_existing_group(block: &str) -> String {
    block
        .lines()
        .map(
            |line| match line.trim().strip_prefix("set control_group ") {
                Some(group)
                    if nix::unistd::Group::from_name(group.trim_matches('"'))
                        .ok()
                        .flatten()
                        .is_none() =>
                {
                    format!("set control_group \"{}\"", own_group())
                }
                _ => line.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// An empty certificate store as `iked -n` reads it, for the examples
/// that use public keys: `set certdir` to it goes before the example.
fn certificate_store(scratch: &Scratch) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let store = scratch.file("store");
    let private = store.join("private");
    std::fs::create_dir_all(&private).expect("store");
    for dir in [&store, &private] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    write_config(&private.join("local.key"), "read by ca, not by iked -n\n");
    store
}

#[test]
fn every_example_configuration_in_the_manual_passes_iked_n() {
    let iked = binary("iked");
    let scratch = Scratch::new("man-examples");
    let store = certificate_store(&scratch);
    let mut checked = 0;
    let mut failures = Vec::new();
    for page in ["man/iked.conf.5", "man/iked.8", "man/ikectl.8"] {
        let path = workspace().join(page);
        let Ok(text) = std::fs::read_to_string(&path) else {
            if page == "man/iked.conf.5" {
                panic!("cannot read {}", path.display());
            }
            continue;
        };
        for (line, block) in literal_blocks(&text) {
            if !is_configuration(&block) {
                continue;
            }
            let config = scratch.file(&format!("example-{checked}.conf"));
            write_config(
                &config,
                &format!(
                    "set certdir \"{}\"\n{}",
                    store.display(),
                    with_existing_group(&block)
                ),
            );
            let out = Command::new(&iked)
                .arg("-n")
                .arg("-f")
                .arg(&config)
                .output()
                .expect("run iked -n");
            checked += 1;
            if !out.status.success() {
                failures.push(format!(
                    "{page}:{line}: {}\n{block}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "examples iked -n refuses:\n{}",
        failures.join("\n")
    );
    // iked.conf.5 alone has nine; fewer means the extraction broke.
    assert!(checked >= 9, "only {checked} example configurations found");
}

#[test]
fn the_extraction_sees_through_mdoc_escapes_and_skips_shell_sessions() {
    let page = ".Bd -literal -offset indent\n\
                ikev2 \"a\" from 10.1.0.0/24 to 10.2.0.0/24 \\e\n\
                \tpeer 192.0.2.2 psk \"k\"\n\
                .Ed\n\
                .Bd -literal\n\
                # iked -n -f /etc/iked.conf\n\
                .Ed\n";
    let blocks = literal_blocks(page);
    assert_eq!(blocks.len(), 2);
    assert_eq!(
        blocks[0].1,
        "ikev2 \"a\" from 10.1.0.0/24 to 10.2.0.0/24 \\\n\tpeer 192.0.2.2 psk \"k\"\n"
    );
    assert!(is_configuration(&blocks[0].1));
    assert!(!is_configuration(&blocks[1].1));
    assert!(is_configuration("gw = \"198.18.0.2\"\n"));
    assert!(!is_configuration("useradd --system _iked\n"));
}

#[test]
fn every_tunable_and_refused_option_is_in_iked_conf_5() {
    let page = std::fs::read_to_string(workspace().join("man/iked.conf.5")).expect("read page");
    let items: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with(".It Ic set "))
        .collect();
    for tunable in iked_common::config::TUNABLES {
        let item = format!(".It Ic set {} Ar ", tunable.keyword);
        assert!(
            items.iter().any(|l| l.starts_with(&item)),
            "iked.conf.5 has no {item:?}"
        );
        // The bounds are in the description.
        let from = page.find(&item).unwrap_or(0);
        let description = &page[from..page.len().min(from + 900)];
        assert!(
            description.contains(&tunable.max.to_string()),
            "iked.conf.5 does not give the bound {} of {}",
            tunable.max,
            tunable.keyword
        );
    }
    for (option, _) in iked_common::config::REFUSED_OPTIONS {
        assert!(
            page.contains(&format!(".Ic set {option}")),
            "iked.conf.5 does not say 'set {option}' is refused"
        );
    }
    for flag in [
        "couple",
        "decouple",
        "enforcesingleikesa",
        "noenforcesingleikesa",
        "novendorid",
    ] {
        assert!(
            items.contains(&format!(".It Ic set {flag}").as_str()),
            "iked.conf.5 has no .It Ic set {flag}"
        );
    }
    for keyword in [
        "quick", "skip", "default", "tap", "rdomain", "tag", "ipcomp",
    ] {
        assert!(
            page.contains(&format!(".It Cm {keyword}\n")),
            "iked.conf.5 has no .It Cm {keyword}"
        );
    }
}
