//! Waiting says why: while a command waits for results, it asks the
//! interchange every few seconds why the tasks it waits for are still
//! queued (`task_status`'s waiting reason, as `rhtex status` shows it) and
//! prints that on stderr when it first knows and whenever it changes. It
//! never writes to stdout, so `--json` output stays clean.

use crate::client::Client;
use crate::error::ClientError;
use protocol::{Command, Reply, TaskId, TaskResult, TaskState};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// How long a command waits before it first asks why, and then between
/// two questions.
pub const FIRST_ASK_AFTER: Duration = Duration::from_secs(3);
pub const ASK_EVERY: Duration = Duration::from_secs(3);
/// At most this many of the tasks waited for are asked about.
const MAX_ASKED: usize = 1000;

/// Results, with the waiting reasons of the tasks still queued on stderr.
#[derive(Debug)]
pub struct WaitingReasons {
    next_ask: Instant,
    /// The reason said last (empty: none said, or none waits since).
    last: String,
}

impl Default for WaitingReasons {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitingReasons {
    pub fn new() -> Self {
        Self {
            next_ask: Instant::now() + FIRST_ASK_AFTER,
            last: String::new(),
        }
    }

    /// The next result for `client`; while none comes, asks every few
    /// seconds why the `pending` tasks wait, and says so on stderr.
    pub async fn next_result(
        &mut self,
        client: &mut Client,
        pending: &HashSet<TaskId>,
    ) -> Result<TaskResult, ClientError> {
        loop {
            if let Ok(result) = tokio::time::timeout_at(self.next_ask, client.next_result()).await {
                return result;
            }
            let ids: Vec<TaskId> = pending.iter().take(MAX_ASKED).copied().collect();
            match client.command(Command::TaskStatus { task_ids: ids }).await {
                Ok(Reply::TaskStatus { tasks }) => {
                    let reasons = tasks.into_iter().filter_map(|task| {
                        (task.state == TaskState::Queued).then_some(task.waiting_reason)?
                    });
                    match describe(reasons) {
                        Some((reason, line)) if reason != self.last => {
                            eprintln!("rhtex: {line}");
                            self.last = reason;
                        }
                        Some(_) => {}
                        None if !self.last.is_empty() => {
                            eprintln!("rhtex: no task waited for is queued any more");
                            self.last.clear();
                        }
                        None => {}
                    }
                }
                Ok(other) => tracing::debug!(reply = ?other, "unexpected answer to task_status"),
                Err(error @ ClientError::ConnectionLost { .. }) => return Err(error),
                Err(error) => tracing::debug!(%error, "cannot ask why tasks wait"),
            }
            self.next_ask = Instant::now() + ASK_EVERY;
        }
    }
}

/// What to say of the queued tasks' reasons: the reason most of them
/// give (it is said again only when that reason changes), and the line.
/// "1 task queued: REASON", "5 tasks queued: REASON", or "5 tasks queued;
/// 3 of them: REASON". `None` if no reason is given.
pub fn describe(reasons: impl Iterator<Item = String>) -> Option<(String, String)> {
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for reason in reasons {
        *by_reason.entry(reason).or_default() += 1;
    }
    let total: usize = by_reason.values().sum();
    let (reason, n_most) = by_reason
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
    let line = match total {
        1 => format!("1 task queued: {reason}"),
        _ if n_most == total => format!("{total} tasks queued: {reason}"),
        _ => format!("{total} tasks queued; {n_most} of them: {reason}"),
    };
    Some((reason, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(texts: &[&str]) -> Option<String> {
        describe(texts.iter().map(|text| (*text).to_owned())).map(|(_, line)| line)
    }

    #[test]
    fn the_most_common_reason_is_said() {
        assert_eq!(reasons(&[]), None);
        assert_eq!(
            reasons(&["waiting for 9 free nodes"]).as_deref(),
            Some("1 task queued: waiting for 9 free nodes")
        );
        assert_eq!(
            reasons(&["no manager connected", "no manager connected"]).as_deref(),
            Some("2 tasks queued: no manager connected")
        );
        assert_eq!(
            reasons(&["b", "a", "b"]).as_deref(),
            Some("3 tasks queued; 2 of them: b")
        );
        assert_eq!(
            describe(["a", "b"].iter().map(|text| (*text).to_owned())),
            Some(("a".to_owned(), "2 tasks queued; 1 of them: a".to_owned()))
        );
    }
}
