//! The README's two commands, taken from the README itself, so it cannot
//! drift from what works: the demo is run exactly as written, and the test
//! command must be the one CI runs.

use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The commands of the README's first code block: `COMMAND   # comment`.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let block: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("    ./"))
        .take_while(|l| l.starts_with("    "))
        .collect();
    block
        .iter()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn the_readme_names_exactly_two_commands_and_ci_runs_the_second() {
    let commands = readme_commands();
    assert_eq!(
        commands,
        ["./scripts/demo.sh", "./scripts/test-all.sh"],
        "the README's quick start"
    );
    let ci = std::fs::read_to_string(workspace().join(".ci/run")).expect(".ci/run");
    let ci_command = ci
        .lines()
        .find_map(|l| l.strip_prefix("exec "))
        .expect(".ci/run execs the test command");
    assert_eq!(
        ci_command.trim(),
        commands[1],
        ".ci/run must run the README's test command"
    );
}

#[test]
#[ignore = "needs root (namespaces) and the kernel lab on kernels without ESP: run by .ci/run"]
fn the_readme_demo_command_runs_and_passes() {
    iked_tests::require_root("the README demo");
    let commands = readme_commands();
    let demo = commands.first().expect("a demo command");
    let output = Command::new("bash")
        .arg("-c")
        .arg(demo)
        .current_dir(workspace())
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`{demo}` failed:\n{stdout}\n{stderr}"
    );
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("demo: PASS:"))
        .unwrap_or_else(|| panic!("no verdict line:\n{stdout}"));
    assert!(verdict.contains("5/5 pings through ESP"), "{verdict}");
    assert!(
        verdict.contains("rtt avg") && verdict.contains("ESP packets seen"),
        "{verdict}"
    );
    assert!(
        stdout.contains("--- ikectl show sa (gateway A) ---")
            && stdout.contains("--- ikectl show sa (gateway B) ---")
    );
}

#[test]
#[ignore = "needs root (namespaces), strongSwan and the kernel lab on kernels without ESP: run by .ci/run"]
fn the_readme_demo_runs_against_strongswan() {
    iked_tests::require_root("the README demo against strongSwan");
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let demo = format!("{} --peer strongswan", readme_commands()[0]);
    assert!(
        readme.contains(&format!("`{demo}`")),
        "the README documents `{demo}`"
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(&demo)
        .current_dir(workspace())
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "`{demo}` failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("demo: PASS: iked <-> strongswan") && l.contains("5/5 pings")),
        "{stdout}"
    );
}
