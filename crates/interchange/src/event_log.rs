//! The event log (`<run-dir>/events.jsonl` by default, `proto/EVENTS.md`):
//! the shell drains the core's events ([`Core::poll_event`]) after each
//! turn of the poll loop and appends one JSON line per event, rotating the
//! file by size (FILE becomes FILE.1, FILE.1 becomes FILE.2, ... up to
//! [`KEPT_OLD_FILES`]). A log that cannot be written is a warning, never a
//! reason to stop: the interchange carries on without it.

use crate::config::EventsConfig;
use interchange_core::Core;
use protocol::events::rfc3339_millis;
use protocol::{EventRecord, UnixTime};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// How many rotated files are kept beside the current one.
pub const KEPT_OLD_FILES: u32 = 3;

/// The write buffer: a busy turn writes thousands of lines (about 150
/// bytes each), in few `write` calls.
const BUFFER_BYTES: usize = 64 * 1024;

/// The open event log.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    max_bytes: u64,
    /// `None` after a write failed: the log is off from then on.
    file: Option<BufWriter<File>>,
    bytes: u64,
    /// The line being written (kept, so that its capacity is reused).
    line: Vec<u8>,
    /// The last time formatted: the wall time (its bits) and its RFC 3339
    /// text, which the events of one input share.
    time: Option<(u64, String)>,
}

impl EventLog {
    /// Opens (appends to) the log; its directory is created if missing.
    pub fn open(config: &EventsConfig) -> std::io::Result<Self> {
        if let Some(parent) = config
            .path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        let file = open_append(&config.path)?;
        let bytes = file.metadata()?.len();
        Ok(Self {
            path: config.path.clone(),
            max_bytes: config.max_bytes,
            file: Some(BufWriter::with_capacity(BUFFER_BYTES, file)),
            bytes,
            line: Vec::new(),
            time: None,
        })
    }

    /// Writes every event the core has queued, then flushes.
    pub fn write_from(&mut self, core: &mut Core) {
        let mut wrote = false;
        let mut line = std::mem::take(&mut self.line);
        while let Some((at, event)) = core.poll_event() {
            line.clear();
            EventRecord::write_json_line(&mut line, self.time_text(at), &event);
            if let Err(error) = self.write_line(&line) {
                tracing::warn!(path = %self.path.display(), %error, "cannot write the event log; no more events are written");
                self.file = None;
            }
            wrote = true;
        }
        self.line = line;
        if wrote {
            if let Some(Err(error)) = self.file.as_mut().map(BufWriter::flush) {
                tracing::warn!(path = %self.path.display(), %error, "cannot write the event log; no more events are written");
                self.file = None;
            }
        }
    }

    /// `at` as RFC 3339, formatted once for the events that share it.
    fn time_text(&mut self, at: UnixTime) -> &str {
        let bits = at.to_bits();
        if !matches!(&self.time, Some((cached, _)) if *cached == bits) {
            self.time = Some((bits, rfc3339_millis(at)));
        }
        self.time.as_ref().map_or("", |(_, text)| text)
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        let length = line.len() as u64;
        if self.bytes > 0 && self.bytes + length > self.max_bytes {
            self.rotate()?;
        }
        if let Some(file) = self.file.as_mut() {
            file.write_all(line)?;
            self.bytes += length;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()?;
        }
        for index in (1..KEPT_OLD_FILES).rev() {
            let older = numbered(&self.path, index);
            if older.exists() {
                std::fs::rename(&older, numbered(&self.path, index + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = Some(BufWriter::with_capacity(
            BUFFER_BYTES,
            open_append(&self.path)?,
        ));
        self.bytes = 0;
        tracing::info!(path = %self.path.display(), "event log rotated");
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `path` with `.N` appended.
fn numbered(path: &Path, index: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use interchange_core::CoreConfig;
    use protocol::{FromClient, TaskId, TaskSubmission};
    use seam::Time;

    fn submit(core: &mut Core, n_tasks: usize) {
        let peer = interchange_core::PeerId::unauthenticated(b"client".to_vec());
        let hello = FromClient::Hello {
            protocol_version: protocol::PROTOCOL_VERSION,
            client_version: String::new(),
        };
        core.handle_client_message(Time::ZERO, peer.clone(), hello);
        let tasks = (0..n_tasks)
            .map(|_| TaskSubmission::new(TaskId::new_random(), "true"))
            .collect();
        core.handle_client_message(
            Time::ZERO,
            peer,
            FromClient::Submit {
                request_id: 1,
                tasks,
            },
        );
    }

    #[test]
    fn events_are_json_lines_and_the_log_rotates_by_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("log/events.jsonl");
        let mut log = EventLog::open(&EventsConfig {
            path: path.clone(),
            max_bytes: 300,
        })
        .expect("opens");
        let mut core = Core::new(
            CoreConfig {
                record_events: true,
                ..CoreConfig::default()
            },
            Time::ZERO,
        );
        submit(&mut core, 12);
        log.write_from(&mut core);
        let mut n_lines = 0;
        for file in [
            path.clone(),
            numbered(&path, 1),
            numbered(&path, 2),
            numbered(&path, 3),
        ] {
            let text = std::fs::read_to_string(&file).expect("each file is there");
            assert!(
                text.len() <= 300,
                "{} has {} bytes",
                file.display(),
                text.len()
            );
            for line in text.lines() {
                let record = EventRecord::from_json_line(line).expect("a record");
                assert_eq!(record.time, "1970-01-01T00:00:00.000Z");
                assert!(matches!(
                    record.event,
                    protocol::Event::TaskSubmitted { .. }
                ));
                n_lines += 1;
            }
        }
        assert!(!numbered(&path, 4).exists(), "at most 3 old files");
        assert!(n_lines < 12, "the oldest events went with the oldest file");
        assert!(n_lines >= 4);
    }
}
