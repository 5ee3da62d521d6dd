//! The `--json` envelope (doc/ikectl-json.md): every answer is one JSON
//! object with the schema version, the command, and `ok`; the command's
//! fields beside them, or `error` and `error_kind`.

use serde_json::{Map, Value};

use crate::connect::Failure;
use crate::{Command, ResetWhat, Show};

/// The version of the JSON schema; raised when a field changes meaning or
/// goes away (new fields may come without it).
pub const JSON_VERSION: u64 = 1;

/// The command as the operator typed its words, e.g. "show sa".
pub fn command_name(command: &Command) -> String {
    match command {
        Command::Log { .. } => "log".into(),
        Command::Reload => "reload".into(),
        Command::Reset { what, .. } => format!(
            "reset {}",
            match what {
                ResetWhat::Ca => "ca",
                ResetWhat::All => "all",
                ResetWhat::Sa => "sa",
                ResetWhat::Policy => "policy",
                ResetWhat::User => "user",
                ResetWhat::Id => "id",
            }
        ),
        Command::Show { what } => match what {
            Show::Certstore => "show certstore".into(),
            Show::Sa { .. } => "show sa".into(),
            Show::Ca { .. } => "show ca".into(),
            Show::Flows => "show flows".into(),
            Show::Stats => "show stats".into(),
        },
        Command::Initiate { .. } => "initiate".into(),
        Command::Terminate { .. } => "terminate".into(),
        Command::Ca { .. } => "ca".into(),
        Command::Load { .. } => "load".into(),
        Command::Active => "active".into(),
        Command::Passive => "passive".into(),
        Command::Couple => "couple".into(),
        Command::Decouple => "decouple".into(),
        Command::Completions { .. } => "completions".into(),
        Command::Monitor { .. } => "monitor".into(),
    }
}

/// `body`'s fields inside the envelope; the envelope's own names win.
pub fn envelope(command: &str, ok: bool, body: Value) -> Value {
    let mut object = Map::new();
    object.insert("version".into(), JSON_VERSION.into());
    object.insert("command".into(), command.into());
    object.insert("ok".into(), ok.into());
    if let Value::Object(fields) = body {
        for (name, value) in fields {
            object.entry(name).or_insert(value);
        }
    }
    Value::Object(object)
}

/// A failure in the envelope.
pub fn failure(command: &str, failure: &Failure) -> Value {
    envelope(
        command,
        false,
        serde_json::json!({
            "error": failure.message,
            "error_kind": failure.kind.name(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::FailureKind;

    #[test]
    fn the_envelope_carries_version_command_and_ok_over_the_body() {
        let value = envelope(
            "show sa",
            true,
            serde_json::json!({ "sas": [], "ok": false, "version": 9 }),
        );
        assert_eq!(value["version"], 1);
        assert_eq!(value["command"], "show sa");
        assert_eq!(value["ok"], true);
        assert_eq!(value["sas"], serde_json::json!([]));
    }

    #[test]
    fn a_failure_has_its_kind() {
        let value = failure(
            "reload",
            &Failure {
                kind: FailureKind::NotRunning,
                message: "iked is not running".into(),
            },
        );
        assert_eq!(value["ok"], false);
        assert_eq!(value["error_kind"], "not_running");
        assert_eq!(value["error"], "iked is not running");
    }
}
