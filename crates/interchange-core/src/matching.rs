//! Matching queued tasks to managers, with one reservation so that the
//! first waiting task is never starved (EASY backfill).
//!
//! After every input, [`Core::schedule`] walks the queue's bucket heads in
//! queue order (one head per task shape and walltime class; see
//! `queue.rs`) and starts the first that can start, then walks again, until
//! nothing more starts:
//!
//! 1. A task ahead of the holder (below) starts on any manager where it
//!    fits now: the best fit (`Placement::BestFit`) or the newest registered
//!    manager (`Placement::NewestBlock`), from the table's indexes, compared
//!    with the reserved manager (which the indexes leave out).
//! 2. The first head that cannot start, but that some accepting manager
//!    could hold once enough of its tasks end, is the *holder*. As soon as a
//!    task behind it could start somewhere, the holder reserves the manager
//!    where it can start soonest ([`Core::reserve_for`]): the earliest known
//!    *shadow time* T (when enough nodes are free, from the running tasks'
//!    dispatch time + walltime; a task without walltime never ends as far as
//!    the estimate knows), else the fewest nodes missing now (ties: fewer
//!    nodes under best fit, newer under newest block, then manager id). The
//!    reserved manager leaves the indexes. (Before a task behind the holder
//!    could start, holding back changes nothing, so no reservation is made:
//!    a saturated stream of like tasks never pays for one.)
//! 3. Heads behind the holder start on other managers as in 1. On the
//!    reserved manager one may start only if T is known and either the task
//!    has a walltime and now + walltime <= T (it ends before the holder
//!    starts), or it fits on nodes the holder will not use at T (the nodes
//!    it expects to use are those that free up by T, then the ones free
//!    now, up to what it needs). With T unknown, nothing behind the holder
//!    starts there until the holder does.
//! 4. When the holder fits anywhere it starts there, by the rule of 1, and
//!    the reservation ends. The reservation is chosen again when another
//!    task becomes holder, or its manager leaves, is held or drained, or
//!    any manager is released; T is recomputed when a task ends on the
//!    reserved manager or a task ahead of the holder starts there.
//!
//! Within a bucket only the head is tried, so a short task behind a longer
//! one of the same shape and walltime class (a power of two) waits for it.
//!
//! Costs: each start is O(B · log) for B buckets, plus O(log) index updates
//! per node given; when nothing behind the holder can start the walk stops
//! at once. Choosing the reservation scans the managers, O(M), each
//! looking at its running tasks in order of expected end until enough
//! nodes free up or the best time found so far passes, and happens only as
//! said in 2 and 4; recomputing T looks at the reserved manager only.

use super::managers::Shadow;
use super::queue::{QueueKey, Shape};
use super::{Core, Phase, Placement, Retry, Task, Time};
use protocol::{ManagerId, NodeShare, TaskDispatch, TaskId, ToManager};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The manager held for the first queued task that cannot start yet.
#[derive(Debug)]
pub(super) struct Reservation {
    pub(super) task_id: TaskId,
    pub(super) shape: Shape,
    pub(super) manager_id: ManagerId,
    /// When the holder is expected to start there (unknown when a task it
    /// waits for has no walltime).
    pub(super) shadow: Option<Time>,
    /// The nodes the holder expects to use at `shadow`.
    pub(super) nodes: BTreeSet<u32>,
    /// Tasks ended on the manager (or one ahead of the holder started
    /// there): recompute `shadow` and `nodes` before use.
    pub(super) stale: bool,
}

/// Where a task goes.
#[derive(Debug)]
struct Choice {
    manager_id: ManagerId,
    placement: Vec<NodeShare>,
    /// On the reserved manager by the backfill rule (not by its own right).
    backfill: bool,
}

impl Core {
    /// Starts every queued task that can start now (see the module
    /// documentation); one `run_tasks` per manager.
    pub(super) fn schedule(&mut self) {
        let mut batches: BTreeMap<ManagerId, Vec<TaskDispatch>> = BTreeMap::new();
        // Shapes no listed manager fits. Within one pass listed capacity
        // only shrinks (tasks start, a manager is reserved) until a
        // reservation ends and its manager is listed again, so a miss is
        // remembered until then: a head that fits nowhere is looked up once
        // per pass, not once per start.
        let mut misses: BTreeSet<Shape> = BTreeSet::new();
        'walk: loop {
            let mut after = None;
            let mut holder: Option<(TaskId, Shape)> = None;
            let mut reserved_for_holder = false;
            while let Some((key, shape, task_id)) = self.queue.next_head(after) {
                after = Some(key);
                let Some((holder_id, holder_shape)) = holder else {
                    // Ahead of any holder: start wherever it fits.
                    if let Some(choice) = self.choose(shape, task_id, false, &mut misses) {
                        if self.start_in_pass(
                            task_id,
                            shape,
                            key,
                            choice,
                            &mut batches,
                            &mut misses,
                        ) {
                            continue 'walk;
                        }
                        break 'walk;
                    }
                    if self.managers.could_ever_fit(shape) {
                        holder = Some((task_id, shape));
                        if self
                            .reservation
                            .as_ref()
                            .is_some_and(|reservation| reservation.task_id == task_id)
                        {
                            self.reserve_for(task_id, shape);
                            reserved_for_holder = true;
                        } else if self.reservation.is_some() {
                            self.clear_reservation();
                            misses.clear();
                        }
                    }
                    continue;
                };
                if !self.room_behind_holder() {
                    // Nothing behind the holder can start: stop early, so
                    // that a full system costs O(heads up to the holder).
                    break;
                }
                if !reserved_for_holder {
                    // The reservation is made only once it matters: when a
                    // task behind the holder could otherwise start.
                    if self.choose(shape, task_id, false, &mut misses).is_none() {
                        continue;
                    }
                    self.reserve_for(holder_id, holder_shape);
                    reserved_for_holder = true;
                }
                if let Some(choice) = self.choose(shape, task_id, true, &mut misses) {
                    if self.start_in_pass(task_id, shape, key, choice, &mut batches, &mut misses) {
                        continue 'walk;
                    }
                    break 'walk;
                }
            }
            if holder.is_none() {
                self.clear_reservation();
            }
            break;
        }
        for (manager_id, tasks) in batches {
            if let Some(manager) = self.managers.get(manager_id) {
                let peer = manager.peer.clone();
                self.send_manager(&peer, ToManager::RunTasks { tasks });
            }
        }
    }

    /// Whether a task behind the holder could start anywhere: some listed
    /// manager has a free slot, or the reserved manager has one and a
    /// known shadow time.
    fn room_behind_holder(&self) -> bool {
        self.managers.any_listed_free_slot()
            || self.reservation.as_ref().is_some_and(|reservation| {
                reservation.shadow.is_some()
                    && self
                        .managers
                        .get(reservation.manager_id)
                        .is_some_and(|manager| manager.accepts_tasks() && manager.has_free_slot())
            })
    }

    /// The walltime of a queued task.
    fn walltime(&self, task_id: TaskId) -> Option<Duration> {
        match self.tasks.get(&task_id).map(|task| &task.phase) {
            Some(Phase::Queued { dispatch, .. }) => dispatch
                .resources
                .walltime
                .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok()),
            _ => None,
        }
    }

    /// Where a task of this shape can start now. `behind_holder`: the task
    /// is behind the reservation's holder, so the reserved manager takes it
    /// only by the backfill rule.
    fn choose(
        &self,
        shape: Shape,
        task_id: TaskId,
        behind_holder: bool,
        misses: &mut BTreeSet<Shape>,
    ) -> Option<Choice> {
        let policy = self.config.placement;
        let general = if misses.contains(&shape) {
            None
        } else {
            let found = match policy {
                Placement::BestFit => self
                    .managers
                    .best_fit(shape)
                    .map(|(manager_id, _)| manager_id),
                Placement::NewestBlock => self.managers.newest_fit(shape),
            };
            if found.is_none() {
                misses.insert(shape);
            }
            found
        }
        .and_then(|manager_id| {
            let manager = self.managers.get(manager_id)?;
            let (placement, tightness) = manager.place(shape, &BTreeSet::new())?;
            Some((manager_id, placement, tightness, manager.order()))
        });
        let reserved = self.reservation.as_ref().and_then(|reservation| {
            let manager = self.managers.get(reservation.manager_id)?;
            if !manager.accepts_tasks() {
                return None;
            }
            let (placement, tightness, backfill) = if !behind_holder {
                let (placement, tightness) = manager.place(shape, &BTreeSet::new())?;
                (placement, tightness, false)
            } else {
                let shadow = reservation.shadow?;
                let ends_in_time = self
                    .walltime(task_id)
                    .is_some_and(|walltime| self.now.plus(walltime) <= shadow);
                let excluded = if ends_in_time {
                    &BTreeSet::new()
                } else {
                    &reservation.nodes
                };
                let (placement, tightness) = manager.place(shape, excluded)?;
                (placement, tightness, true)
            };
            Some((
                reservation.manager_id,
                placement,
                tightness,
                manager.order(),
                backfill,
            ))
        });
        let take_reserved = match (&general, &reserved) {
            (None, None) => return None,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (Some(general), Some(reserved)) => match policy {
                Placement::BestFit => (reserved.2, reserved.0) < (general.2, general.0),
                Placement::NewestBlock => reserved.3 > general.3,
            },
        };
        if take_reserved {
            reserved.map(|(manager_id, placement, _, _, backfill)| Choice {
                manager_id,
                placement,
                backfill,
            })
        } else {
            general.map(|(manager_id, placement, _, _)| Choice {
                manager_id,
                placement,
                backfill: false,
            })
        }
    }

    /// [`Core::start`], forgetting the misses if it ended the reservation
    /// (its manager is listed again).
    fn start_in_pass(
        &mut self,
        task_id: TaskId,
        shape: Shape,
        key: QueueKey,
        choice: Choice,
        batches: &mut BTreeMap<ManagerId, Vec<TaskDispatch>>,
        misses: &mut BTreeSet<Shape>,
    ) -> bool {
        let reserved_before = self.reservation.is_some();
        let started = self.start(task_id, shape, key, choice, batches);
        if reserved_before && self.reservation.is_none() {
            misses.clear();
        }
        started
    }

    /// Gives a queued task its placement and adds it to its manager's
    /// batch. False (logged) if the table refused the placement, which
    /// would be a bug: the task stays queued.
    fn start(
        &mut self,
        task_id: TaskId,
        shape: Shape,
        key: QueueKey,
        choice: Choice,
        batches: &mut BTreeMap<ManagerId, Vec<TaskDispatch>>,
    ) -> bool {
        let Choice {
            manager_id,
            placement,
            backfill,
        } = choice;
        let expected_end = self
            .walltime(task_id)
            .map(|walltime| self.now.plus(walltime));
        if let Err(error) =
            self.managers
                .allocate(manager_id, task_id, placement.clone(), expected_end)
        {
            tracing::error!(task_id = %task_id, manager_id = %manager_id, %error, "placement refused; the task stays queued");
            return false;
        }
        if let Some(Task {
            phase: Phase::Queued { dispatch, .. },
            ..
        }) = self.tasks.get(&task_id)
        {
            self.queue.remove(&dispatch.resources, key);
        }
        if let Some(reservation) = &mut self.reservation {
            if reservation.task_id == task_id {
                tracing::debug!(task_id = %task_id, manager_id = %manager_id, "reservation holder started");
                self.clear_reservation();
            } else if reservation.manager_id == manager_id && !backfill {
                reservation.stale = true;
            }
        }
        let default_retries = self.config.default_retries;
        let Some(Task { phase, .. }) = self.tasks.get_mut(&task_id) else {
            return true;
        };
        let queued = std::mem::replace(
            phase,
            Phase::Running {
                manager_id,
                cancel_requested: false,
                attempts: 1,
                retry: None,
            },
        );
        if let Phase::Queued {
            mut dispatch,
            key,
            attempts,
        } = queued
        {
            let attempts = attempts + 1;
            let budget = dispatch.resources.retries.unwrap_or(default_retries);
            dispatch.placement = placement;
            let retry = (attempts <= budget).then(|| {
                Box::new(Retry {
                    dispatch: (*dispatch).clone(),
                    key,
                })
            });
            *phase = Phase::Running {
                manager_id,
                cancel_requested: false,
                attempts,
                retry,
            };
            tracing::debug!(task_id = %task_id, manager_id = %manager_id, num_nodes = shape.num_nodes, attempt = attempts, backfill, "task sent");
            batches.entry(manager_id).or_default().push(*dispatch);
        }
        true
    }

    /// Makes sure the holder has a reservation: kept (and brought up to
    /// date) while it is for the same task on a manager that still accepts
    /// tasks, chosen afresh otherwise.
    fn reserve_for(&mut self, task_id: TaskId, shape: Shape) {
        let now = self.now;
        if let Some(reservation) = &mut self.reservation {
            let still_good = reservation.task_id == task_id
                && self
                    .managers
                    .get(reservation.manager_id)
                    .is_some_and(|manager| {
                        manager.accepts_tasks() && manager.could_ever_fit(shape)
                    });
            if still_good {
                if reservation.stale {
                    if let Some(manager) = self.managers.get(reservation.manager_id) {
                        let Shadow { at, nodes, .. } = manager.shadow(shape, now, None, true);
                        reservation.shadow = at;
                        reservation.nodes = nodes;
                    }
                    reservation.stale = false;
                }
                return;
            }
        }
        self.clear_reservation();
        let policy = self.config.placement;
        // The earliest known shadow time wins, else the fewest nodes
        // missing; a manager whose tasks cannot free enough by the best
        // time found so far is given up on early.
        type Rank = (bool, Option<Time>, u32, usize, ManagerId);
        let mut best: Option<Rank> = None;
        for manager in self.managers.iter() {
            if !manager.accepts_tasks() || !manager.could_ever_fit(shape) {
                continue;
            }
            let cutoff = best.and_then(|rank| rank.1);
            let shadow = manager.shadow(shape, now, cutoff, false);
            let tie = match policy {
                Placement::BestFit => manager.n_nodes as usize,
                Placement::NewestBlock => usize::MAX - manager.order(),
            };
            let rank = (
                shadow.at.is_none(),
                shadow.at,
                shadow.n_missing,
                tie,
                manager.manager_id,
            );
            if best.map_or(true, |best| rank < best) {
                best = Some(rank);
            }
        }
        let Some((.., manager_id)) = best else {
            return;
        };
        let Some(shadow) = self
            .managers
            .get(manager_id)
            .map(|manager| manager.shadow(shape, now, None, true))
        else {
            return;
        };
        tracing::debug!(
            task_id = %task_id,
            manager_id = %manager_id,
            n_missing = shadow.n_missing,
            expected_in_ms = shadow.at.map(|at| now.until(at).as_millis() as u64),
            "manager reserved for the first waiting task"
        );
        self.managers.set_reserved(manager_id, true);
        self.reservation = Some(Reservation {
            task_id,
            shape,
            manager_id,
            shadow: shadow.at,
            nodes: shadow.nodes,
            stale: false,
        });
    }

    /// The table's own check, and that exactly the reserved manager (if
    /// it is still registered) is out of the indexes for the reservation,
    /// and that the holder is queued.
    #[cfg(test)]
    pub(super) fn check_invariants(&self) -> Result<(), String> {
        self.managers.check()?;
        let reserved: Vec<ManagerId> = self
            .managers
            .iter()
            .filter(|manager| manager.is_reserved())
            .map(|manager| manager.manager_id)
            .collect();
        let expected: Vec<ManagerId> = self
            .reservation
            .iter()
            .map(|reservation| reservation.manager_id)
            .filter(|manager_id| self.managers.get(*manager_id).is_some())
            .collect();
        if reserved != expected {
            return Err(format!(
                "managers marked reserved {reserved:?}, reservation on {expected:?}"
            ));
        }
        if let Some(reservation) = &self.reservation {
            if !matches!(
                self.tasks.get(&reservation.task_id).map(|task| &task.phase),
                Some(Phase::Queued { .. })
            ) {
                return Err(format!(
                    "reservation for task {}, which is not queued",
                    reservation.task_id
                ));
            }
        }
        Ok(())
    }

    /// Ends the reservation (the next walk chooses one again if needed).
    pub(super) fn clear_reservation(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            self.managers.set_reserved(reservation.manager_id, false);
        }
    }

    /// Tasks ended on the reserved manager: its shadow time is recomputed
    /// at the next walk.
    pub(super) fn reservation_changed(&mut self) {
        if let Some(reservation) = &mut self.reservation {
            reservation.stale = true;
        }
    }
}
