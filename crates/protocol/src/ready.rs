//! The interchange's ready line: one JSON object that the interchange
//! prints on stdout (and writes to `RUN_DIR/interchange.json`) once its
//! sockets are bound, `{"client_url": ..., "manager_url": ..., "pid": ...}`.
//! The URLs are as bound, so they may name a wildcard address
//! (`tcp://0.0.0.0:41235`); `transport::connectable_url` turns them into
//! URLs to connect to on the same host.

use serde::Serialize;

/// What the interchange says once it is ready.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadyLine {
    /// Where clients connect, as bound.
    pub client_url: String,
    /// Where pool-managers connect, as bound.
    pub manager_url: String,
    /// The interchange's process id.
    pub pid: u32,
}

/// A line that is not a ready line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ReadyLineError {
    pub reason: String,
}

impl ReadyLine {
    /// Parses a ready line (surrounding white space allowed).
    pub fn parse(line: &str) -> Result<Self, ReadyLineError> {
        let error = |reason: String| ReadyLineError { reason };
        let value: serde_json::Value = serde_json::from_str(line.trim())
            .map_err(|parse_error| error(format!("not JSON: {parse_error}")))?;
        let text = |key: &str| {
            value
                .get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| error(format!("no string {key:?}")))
        };
        let pid = value
            .get("pid")
            .and_then(serde_json::Value::as_u64)
            .and_then(|pid| u32::try_from(pid).ok())
            .ok_or_else(|| error("no integer \"pid\"".to_owned()))?;
        Ok(ReadyLine {
            client_url: text("client_url")?,
            manager_url: text("manager_url")?,
            pid,
        })
    }

    /// The line as the interchange prints it, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_parses_and_rejects() {
        let parse = |line: &str| ReadyLine::parse(line).map_err(|error| error.to_string());
        let ready = parse(
            r#"{"client_url": "tcp://127.0.0.1:41234", "manager_url": "tcp://0.0.0.0:41235", "pid": 1234}"#,
        );
        assert_eq!(
            ready,
            Ok(ReadyLine {
                client_url: "tcp://127.0.0.1:41234".into(),
                manager_url: "tcp://0.0.0.0:41235".into(),
                pid: 1234,
            })
        );
        let missing = parse(r#"{"client_url": "tcp://a:1", "pid": 1}"#);
        assert_eq!(missing, Err("no string \"manager_url\"".to_owned()));
        assert!(parse("listening on 4100").is_err_and(|problem| problem.starts_with("not JSON")));
    }

    #[test]
    fn formatted_lines_parse_back() {
        let ready = ReadyLine {
            client_url: "tcp://127.0.0.1:1".into(),
            manager_url: "tcp://0.0.0.0:2".into(),
            pid: 7,
        };
        assert_eq!(
            ready.to_line(),
            r#"{"client_url":"tcp://127.0.0.1:1","manager_url":"tcp://0.0.0.0:2","pid":7}"#
        );
        assert_eq!(ReadyLine::parse(&ready.to_line()), Ok(ready));
    }
}
