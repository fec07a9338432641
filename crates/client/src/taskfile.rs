//! `rhtex run` task files: JSON lines or TOML, read into [`FileTask`]s.
//!
//! JSON lines: one object per line, blank lines and lines starting with `#`
//! skipped. TOML: `[[task]]` tables. Both take the same keys: `command`
//! (required), `resources` (`num_nodes`, `ranks_per_node`, `num_ranks`,
//! `launcher_options`, `priority`, `walltime`, `retries`, `exclusive`: the
//! resource specification as the wire carries it), `env`, `cwd`, `stdout`,
//! `stderr`. Unknown keys are rejected by name; a resource key written
//! beside `command` instead of inside `resources` gets a hint saying so. A
//! resource value that is not a boolean, a number or a string is rejected
//! naming its key. The format follows the extension (`.jsonl`, `.json`,
//! `.toml`), else the first meaningful line (`{` means JSON lines).
//!
//! Relative `cwd`, `stdout` and `stderr` are resolved against the task
//! file's directory, so that output lands next to the file whatever the
//! daemons' working directories are. Every task's resources are validated
//! here, so a bad file fails before anything is submitted.

use crate::error::TaskFileError;
use protocol::{ResourceRequest, SpecValue, TaskId, TaskSubmission};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// One task read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileTask {
    /// Position in the file, from 0.
    pub index: usize,
    /// Line where the task starts, from 1.
    pub line: usize,
    /// The task, with a fresh id.
    pub submission: TaskSubmission,
}

/// The format of a task file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    Toml,
}

/// One task as written in a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskEntry {
    command: String,
    #[serde(default)]
    resources: FileResources,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    stdout: Option<String>,
    #[serde(default)]
    stderr: Option<String>,
}

/// A task's `resources` as written in a file: a map whose values are
/// booleans, numbers or strings (or JSON null). A value of another type
/// (a list, a table, a TOML date) is an error that names its key.
#[derive(Debug, Default)]
struct FileResources(ResourceRequest);

impl<'de> Deserialize<'de> for FileResources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ResourcesVisitor)
    }
}

struct ResourcesVisitor;

impl<'de> Visitor<'de> for ResourcesVisitor {
    type Value = FileResources;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a map of resource keys (num_nodes, walltime, exclusive...)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut request = ResourceRequest::new();
        while let Some(key) = map.next_key::<String>()? {
            let FileSpecValue(value) = map
                .next_value()
                .map_err(|error| de::Error::custom(format_args!("resources key {key}: {error}")))?;
            request.insert(&key, value);
        }
        Ok(FileResources(request))
    }
}

/// One resource value as written in a file.
struct FileSpecValue(SpecValue);

impl<'de> Deserialize<'de> for FileSpecValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SpecValueVisitor)
    }
}

struct SpecValueVisitor;

impl<'de> Visitor<'de> for SpecValueVisitor {
    type Value = FileSpecValue;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a boolean, a number or a string")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(FileSpecValue(SpecValue::Bool(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(FileSpecValue(SpecValue::Int(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        // Too large for an i64: kept as a number, which validation rejects
        // with the key's own rule.
        Ok(FileSpecValue(match i64::try_from(value) {
            Ok(value) => SpecValue::Int(value),
            Err(_) => SpecValue::Float(value as f64),
        }))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(FileSpecValue(SpecValue::Float(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(FileSpecValue(SpecValue::Text(value.to_owned())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(FileSpecValue(SpecValue::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(FileSpecValue(SpecValue::Null))
    }
}

/// A decoding problem, with a hint when it is a resource key written at
/// the task's top level instead of inside `resources`.
fn with_resource_hint(problem: String, format: Format) -> String {
    let misplaced = protocol::spec::KNOWN_KEYS
        .iter()
        .find(|key| problem.contains(&format!("unknown field `{key}`")));
    match misplaced {
        None => problem,
        Some(key) => {
            let example = match format {
                Format::JsonLines => format!("\"resources\": {{\"{key}\": ...}}"),
                Format::Toml => format!("resources = {{ {key} = ... }}"),
            };
            format!("{problem} ({key} is a resource key: write it inside resources, as {example})")
        }
    }
}

/// A TOML task file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    task: Vec<toml::Spanned<TaskEntry>>,
}

/// Reads and checks a task file.
pub fn read(path: &Path) -> Result<Vec<FileTask>, TaskFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TaskFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = base_directory(path);
    parse(&text, path, &base, format_of(path, &text))
}

/// The format from the extension, else from the content.
pub fn format_of(path: &Path, text: &str) -> Format {
    match path.extension().and_then(|ext| ext.to_str()) {
        Some("jsonl" | "json") => Format::JsonLines,
        Some("toml") => Format::Toml,
        _ => {
            let first = text
                .lines()
                .map(str::trim)
                .find(|line| !line.is_empty() && !line.starts_with('#'));
            if first.is_some_and(|line| line.starts_with('{')) {
                Format::JsonLines
            } else {
                Format::Toml
            }
        }
    }
}

/// Parses task file text. `path` names the file in errors; relative paths
/// in tasks are resolved against `base`.
pub fn parse(
    text: &str,
    path: &Path,
    base: &Path,
    format: Format,
) -> Result<Vec<FileTask>, TaskFileError> {
    let entries = match format {
        Format::JsonLines => parse_json_lines(text, path)?,
        Format::Toml => parse_toml(text, path)?,
    };
    if entries.is_empty() {
        return Err(TaskFileError::Whole {
            path: path.to_path_buf(),
            problem: match format {
                Format::JsonLines => "no tasks: expected one JSON object per line".to_owned(),
                Format::Toml => "no tasks: expected [[task]] tables".to_owned(),
            },
        });
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(index, (line, entry))| {
            let at_line = |problem: String| TaskFileError::AtLine {
                path: path.to_path_buf(),
                line,
                problem,
            };
            if entry.command.trim().is_empty() {
                return Err(at_line(format!("task {index}: command is empty")));
            }
            let FileResources(resources) = entry.resources;
            protocol::validate(&resources)
                .map_err(|error| at_line(format!("task {index}: {error}")))?;
            if let Some(key) = entry.env.keys().find(|key| !valid_env_name(key)) {
                return Err(at_line(format!(
                    "task {index}: env key {key:?} is not a valid variable name \
                     (letters, digits and _, not starting with a digit)"
                )));
            }
            Ok(FileTask {
                index,
                line,
                submission: TaskSubmission {
                    task_id: TaskId::new_random(),
                    command: entry.command,
                    resources,
                    env: entry.env,
                    cwd: entry.cwd.map(|dir| resolve(base, &dir)),
                    stdout: entry.stdout.map(|file| resolve(base, &file)),
                    stderr: entry.stderr.map(|file| resolve(base, &file)),
                    input: None,
                },
            })
        })
        .collect()
}

fn parse_json_lines(text: &str, path: &Path) -> Result<Vec<(usize, TaskEntry)>, TaskFileError> {
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line_number = number + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let index = entries.len();
        let entry: TaskEntry =
            serde_json::from_str(trimmed).map_err(|error| TaskFileError::AtLine {
                path: path.to_path_buf(),
                line: line_number,
                problem: format!(
                    "task {index}: {}",
                    with_resource_hint(json_problem(&error), Format::JsonLines)
                ),
            })?;
        entries.push((line_number, entry));
    }
    Ok(entries)
}

/// serde_json's message without its "at line 1 column N" suffix (the line
/// is always 1 here), with the column kept when it helps.
fn json_problem(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text);
    if error.is_syntax() || error.is_eof() {
        format!("not valid JSON: {message} (column {})", error.column())
    } else {
        message.to_owned()
    }
}

fn parse_toml(text: &str, path: &Path) -> Result<Vec<(usize, TaskEntry)>, TaskFileError> {
    let file: TomlFile = toml::from_str(text).map_err(|error| {
        // toml's messages may run over several lines ("...\nin `key`").
        let one_line = error
            .message()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let problem = with_resource_hint(one_line, Format::Toml);
        match error.span() {
            Some(span) => TaskFileError::AtLine {
                path: path.to_path_buf(),
                line: line_of(text, span.start),
                problem,
            },
            None => TaskFileError::Whole {
                path: path.to_path_buf(),
                problem,
            },
        }
    })?;
    Ok(file
        .task
        .into_iter()
        .map(|spanned| (line_of(text, spanned.span().start), spanned.into_inner()))
        .collect())
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first == '_' || first.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The directory relative task paths are resolved against: the task file's
/// directory, made absolute.
pub fn base_directory(path: &Path) -> PathBuf {
    let parent = path.parent().unwrap_or(Path::new(""));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// `value` if absolute, else `base/value`.
fn resolve(base: &Path, value: &str) -> String {
    let candidate = Path::new(value);
    if candidate.is_absolute() {
        value.to_owned()
    } else {
        base.join(candidate).to_string_lossy().into_owned()
    }
}
