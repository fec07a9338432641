//! Runs the `rhtex` command line, each run with its own log, bounded by a
//! timeout, and hands back its exit status and output.

use crate::daemon::describe;
use crate::scenario::{Interchange, Scenario};
use crate::{binary, WAIT};
use std::process::ExitStatus;

/// What one `rhtex` run gave.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// The exit code; panics if the run was killed by a signal.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("rhtex ended with {}: {self:?}", describe(self.status)))
    }

    /// The string values of `key` in every object of the JSON output.
    pub fn strings_at(&self, key: &str) -> Vec<String> {
        json_objects(&self.json())
            .into_iter()
            .filter_map(|object| object.get(key)?.as_str().map(str::to_owned))
            .collect()
    }

    /// Stdout parsed as one JSON value, or as JSON lines (an array of them).
    pub fn json(&self) -> serde_json::Value {
        let text = self.stdout.trim();
        if let Ok(value) = serde_json::from_str(text) {
            return value;
        }
        let lines: Result<Vec<serde_json::Value>, _> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(serde_json::from_str)
            .collect();
        match lines {
            Ok(values) => serde_json::Value::Array(values),
            Err(error) => {
                panic!("rhtex --json printed something that is not JSON ({error}): {self:?}")
            }
        }
    }
}

/// The global flags that point `rhtex` at `interchange`.
pub fn connect_flags(interchange: &Interchange) -> Vec<String> {
    let mut flags = vec!["--interchange".to_owned(), interchange.client_url.clone()];
    flags.extend(interchange.security.flags());
    flags
}

/// Runs `rhtex ARGS` pointed at `interchange` (see [`run`]).
pub fn run_connected(
    scenario: &Scenario,
    interchange: &Interchange,
    name: &str,
    args: &[&str],
) -> CliOutput {
    let mut all = connect_flags(interchange);
    all.extend(strings(args));
    run(scenario, name, &all)
}

/// Runs `rhtex --json status` pointed at `interchange`, which must succeed.
pub fn json_status(scenario: &Scenario, interchange: &Interchange) -> CliOutput {
    let output = run_connected(scenario, interchange, "rhtex-status", &["--json", "status"]);
    assert_eq!(output.code(), 0, "{output:#?}");
    output
}

/// Runs `rhtex ARGS` in the scenario directory; its stderr goes to
/// `<name>.log`. Panics if it does not end within the test timeout.
pub fn run(scenario: &Scenario, name: &str, args: &[String]) -> CliOutput {
    // The defaults must not reach a user's interchange or keys.
    let launch = scenario
        .launch(name, binary("rhtex"))
        .args(args)
        .env("RHTEX_KEYS_DIR", scenario.file("no-default-keys"))
        .env("HOME", scenario.path())
        .env_remove("RHTEX_INTERCHANGE");
    let mut process = scenario.spawn(launch);
    let status = process.wait_exit(WAIT);
    CliOutput {
        status,
        stdout: process.stdout_text(),
        stderr: process.log(),
    }
}

/// Owned copies of command-line words.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// Every string anywhere inside a JSON value (keys excluded).
pub fn json_strings(value: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_strings(value, &mut found);
    found
}

fn collect_strings(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::String(text) => found.push(text.clone()),
        serde_json::Value::Array(items) => {
            items.iter().for_each(|item| collect_strings(item, found))
        }
        serde_json::Value::Object(map) => {
            map.values().for_each(|item| collect_strings(item, found))
        }
        _ => {}
    }
}

/// Every object anywhere inside a JSON value (itself included).
pub fn json_objects(value: &serde_json::Value) -> Vec<&serde_json::Map<String, serde_json::Value>> {
    let mut found = Vec::new();
    collect_objects(value, &mut found);
    found
}

fn collect_objects<'a>(
    value: &'a serde_json::Value,
    found: &mut Vec<&'a serde_json::Map<String, serde_json::Value>>,
) {
    match value {
        serde_json::Value::Array(items) => {
            items.iter().for_each(|item| collect_objects(item, found))
        }
        serde_json::Value::Object(map) => {
            found.push(map);
            map.values().for_each(|item| collect_objects(item, found));
        }
        _ => {}
    }
}
