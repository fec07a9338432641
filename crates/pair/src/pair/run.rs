//! Running a [`Pair`]: the next event or deadline, stepping, and posting
//! messages and fake task exits on the event queue.

use super::{after_handled, Delivery, Event, Pair};
use crate::checks::Problem;
use crate::config::{ManagerLife, Seen, Step};
use pool_manager_core::{TaskExit, TaskOutput};
use protocol::UnixTime;
use seam::Time;
use std::fmt;

impl Pair {
    // -----------------------------------------------------------------
    // Running
    // -----------------------------------------------------------------

    /// When the next step is due: the earliest event or deadline.
    pub fn next_time(&self) -> Option<Time> {
        let event = self.events.first_key_value().map(|(key, _)| key.0);
        let deadline = self.next_deadline().map(|(at, _)| at);
        match (event, deadline) {
            (Some(event), Some(deadline)) => Some(event.min(deadline)),
            (event, deadline) => event.or(deadline),
        }
    }

    /// The earliest deadline, and whose (`None`: the interchange's).
    pub(super) fn next_deadline(&self) -> Option<(Time, Option<usize>)> {
        let mut best = self
            .interchange
            .poll_timeout()
            .map(|at| (after_handled(at, self.interchange_timeout), None));
        for (manager, slot) in self.managers.iter().enumerate() {
            if slot.life != ManagerLife::Alive {
                continue;
            }
            if let Some(at) = slot.core.poll_timeout() {
                let at = after_handled(at, slot.last_timeout);
                if best.map_or(true, |(best_at, _)| at < best_at) {
                    best = Some((at, Some(manager)));
                }
            }
        }
        best
    }

    /// Handles the next thing due (see the module documentation) and
    /// everything it causes with no delay. `None` when nothing is left.
    pub fn step(&mut self) -> Option<Step> {
        let event_at = self.events.first_key_value().map(|(key, _)| key.0);
        let deadline = self.next_deadline();
        let take_event = match (event_at, deadline) {
            (Some(event), Some((deadline, _))) => event <= deadline,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        self.n_steps += 1;
        let step = if take_event {
            let ((at, _), event) = self.events.pop_first()?;
            self.now = self.now.max(at);
            self.handle_event(event);
            Step::Event
        } else {
            let (at, whose) = deadline?;
            self.now = self.now.max(at);
            let now = self.now;
            let stuck = match whose {
                None => {
                    self.interchange.handle_timeout(now);
                    self.interchange_timeout = Some(now);
                    self.drain_interchange();
                    self.interchange.poll_timeout().is_some_and(|at| at <= now)
                }
                Some(manager) => {
                    let slot = &mut self.managers[manager];
                    slot.core.handle_timeout(now);
                    slot.last_timeout = Some(now);
                    let stuck = slot.life == ManagerLife::Alive
                        && slot.core.poll_timeout().is_some_and(|at| at <= now);
                    self.drain_manager(manager, false);
                    stuck
                }
            };
            if stuck {
                let core =
                    whose.map_or_else(|| "interchange".to_owned(), |m| format!("manager {m}"));
                let message =
                    format!("{core}: its deadline did not move past {now:?} after handle_timeout");
                self.problems.push(Problem::Invalid { message });
            }
            Step::Timeout
        };
        self.flush();
        if self.config.validate_every_step {
            if let Err(message) = self.validate() {
                self.problems.push(Problem::Invalid { message });
            }
        }
        Some(step)
    }

    /// Steps through everything due up to and including `limit`, then sets
    /// the clock to `limit` (never back).
    pub fn run_until(&mut self, limit: Time) {
        while self.next_time().is_some_and(|at| at <= limit) {
            self.step();
        }
        self.now = self.now.max(limit);
    }

    /// Steps while an event is pending (a message in flight, a task
    /// running), with the deadlines that fall before it; the periodic
    /// deadlines after the last event are left. At most `max_steps` steps;
    /// returns false if work was still pending then.
    pub fn drive(&mut self, max_steps: u64) -> bool {
        for _ in 0..max_steps {
            if self.events.is_empty() {
                return true;
            }
            self.step();
        }
        self.events.is_empty()
    }

    // -----------------------------------------------------------------
    // Inside
    // -----------------------------------------------------------------

    pub(super) fn schedule(&mut self, at: Time, event: Event) {
        self.events.insert((at, self.sequence), event);
        self.sequence += 1;
    }

    /// A message leaves a peer: it arrives after the delay.
    pub(super) fn post(&mut self, delivery: Delivery) {
        if self.config.delay.is_zero() {
            self.in_flight.push_back(delivery);
        } else {
            let at = self.now.plus(self.config.delay);
            self.schedule(at, Event::Deliver(delivery));
        }
    }

    /// Posts a message the interchange sent to `peer`, or records that no
    /// client or manager has that routing id.
    pub(super) fn post_to_peer(
        &mut self,
        delivery: Option<Delivery>,
        peer: &impl std::fmt::Display,
    ) {
        match delivery {
            Some(delivery) => self.post(delivery),
            None => self.problems.push(Problem::UnknownPeer {
                peer: peer.to_string(),
            }),
        }
    }

    pub(crate) fn post_delivery_now(&mut self, delivery: Delivery) {
        self.post_now(delivery);
    }

    pub(super) fn post_now(&mut self, delivery: Delivery) {
        self.in_flight.push_back(delivery);
    }

    pub(crate) fn flush(&mut self) {
        while let Some(delivery) = self.in_flight.pop_front() {
            self.deliver(delivery);
        }
    }

    pub(super) fn wall(&self, at: Time) -> UnixTime {
        self.config.interchange.wall_clock_at_zero + at.as_millis() as f64 / 1000.0
    }

    pub(super) fn handle_event(&mut self, event: Event) {
        match event {
            Event::Deliver(delivery) => self.deliver(delivery),
            Event::TaskExit {
                manager,
                task_id,
                generation,
                status,
            } => {
                let slot = &mut self.managers[manager];
                let current = slot
                    .processes
                    .get(&task_id)
                    .is_some_and(|process| process.generation == generation);
                if !current || slot.life != ManagerLife::Alive {
                    return;
                }
                let Some(process) = slot.processes.remove(&task_id) else {
                    return;
                };
                let exit = TaskExit {
                    status,
                    stdout_tail: Vec::new(),
                    stderr_tail: Vec::new(),
                    start_time: self.wall(process.started),
                    end_time: self.wall(self.now),
                    output: TaskOutput::Absent,
                };
                if self.config.record {
                    self.seen.push_back(Seen::Exited {
                        manager,
                        task_id,
                        status,
                    });
                }
                self.managers[manager]
                    .core
                    .handle_task_exited(self.now, task_id, exit);
                self.drain_manager(manager, false);
            }
        }
    }

    pub(super) fn undecodable(&mut self, what: &'static str, error: impl fmt::Display) {
        self.problems.push(Problem::Undecodable {
            what,
            error: error.to_string(),
        });
    }
}
