//! The events the core emits for the event log: what happened to tasks,
//! managers and blocks, each with the wall time of the input that caused
//! it. The core only queues them (when [`CoreConfig::record_events`] is
//! set; otherwise nothing is kept); the shell drains them with
//! [`Core::poll_event`] and writes `events.jsonl` (`proto/EVENTS.md`).
//!
//! `tasks/` queues the task events in its own [`EventQueue`] (it is the
//! one place a task changes state); the core queues manager and block
//! events in its own and moves the task table's events ahead of each of
//! its own, so that the order is the order things happened.
//!
//! [`CoreConfig::record_events`]: crate::CoreConfig::record_events

use crate::machine::Core;
use protocol::{BlockInfo, BlockState, Event, UnixTime};
use std::collections::VecDeque;

/// Events waiting to be drained, or nothing if recording is off.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    enabled: bool,
    pending: VecDeque<(UnixTime, Event)>,
}

impl EventQueue {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            pending: VecDeque::new(),
        }
    }

    pub(crate) fn push(&mut self, at: UnixTime, event: Event) {
        if self.enabled {
            self.pending.push_back((at, event));
        }
    }

    fn append(&mut self, other: &mut EventQueue) {
        self.pending.append(&mut other.pending);
    }
}

impl Core {
    /// The next event, oldest first, with the wall time (seconds since
    /// the epoch) of the input that caused it. Always `None` unless
    /// `CoreConfig::record_events` is set.
    pub fn poll_event(&mut self) -> Option<(UnixTime, Event)> {
        self.events.append(self.tasks.events_mut());
        self.events.pending.pop_front()
    }

    /// Queues a manager or block event at the current input's time.
    pub(crate) fn emit(&mut self, event: Event) {
        self.events.append(self.tasks.events_mut());
        let at = self.unix(self.now);
        self.events.push(at, event);
    }

    /// Block events from the provider's new list: a block new to the list
    /// was submitted; one that reached `running` or `connected` runs; one
    /// that reached `ended` or `failed` ended.
    pub(crate) fn emit_block_changes(&mut self, new_blocks: &[BlockInfo]) {
        let phase = |state: BlockState| match state {
            BlockState::Pending => 0,
            BlockState::Running | BlockState::Connected | BlockState::Draining => 1,
            BlockState::Ended | BlockState::Failed => 2,
        };
        let mut events = Vec::new();
        for block in new_blocks {
            let before = self
                .blocks
                .iter()
                .find(|old| old.block_id == block.block_id)
                .map(|old| phase(old.state));
            let now = phase(block.state);
            if before.is_none() {
                events.push(Event::BlockSubmitted {
                    block_id: block.block_id.clone(),
                    job_id: block.job_id.clone(),
                    n_nodes: block.n_nodes,
                });
            }
            if now >= 1 && before.unwrap_or(0) < 1 && block.state != BlockState::Failed {
                events.push(Event::BlockRunning {
                    block_id: block.block_id.clone(),
                    job_id: block.job_id.clone(),
                });
            }
            if now == 2 && before.unwrap_or(0) < 2 {
                events.push(Event::BlockEnded {
                    block_id: block.block_id.clone(),
                    job_id: block.job_id.clone(),
                    state: block.state,
                });
            }
        }
        for event in events {
            self.emit(event);
        }
    }
}
