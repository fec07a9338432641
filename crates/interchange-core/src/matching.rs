//! Matching queued tasks to managers, with one reservation so that the
//! first waiting task is never starved (EASY backfill).
//!
//! Matching decides and the core applies: after every input the core asks
//! [`Matcher::next_start`] for the next [`Start`] (which task, which
//! manager, which nodes), gives the task its slots in the manager table,
//! tells [`Matcher::started`], has the task table start the task, and asks
//! again, until nothing more starts. Matching never changes a task; its own
//! state is the reservation (and the reserved manager's place out of the
//! table's indexes). Each [`Matcher::next_start`] walks the queue's bucket
//! heads in queue order (one head per task shape and walltime class; see
//! `queue.rs`) and gives the first that can start:
//!
//! 1. A task ahead of the holder (below) starts on any manager where it
//!    fits now: the best fit (`Placement::BestFit`) or the newest registered
//!    manager (`Placement::NewestBlock`), from the table's indexes, compared
//!    with the reserved manager (which the indexes leave out).
//! 2. The first head that cannot start, but that some accepting manager
//!    could hold once enough of its tasks end, is the *holder*. As soon as a
//!    task behind it could start somewhere, the holder reserves the manager
//!    where it can start soonest: the earliest known
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

use crate::config::Placement;
use crate::managers::{ManagerTable, Shadow};
use crate::queue::Shape;
use crate::tasks::TaskTable;
use protocol::{ManagerId, NodeShare, TaskId};
use seam::Time;
use std::collections::BTreeSet;

/// The manager held for the first queued task that cannot start yet.
#[derive(Debug)]
pub(crate) struct Reservation {
    pub(crate) task_id: TaskId,
    pub(crate) shape: Shape,
    pub(crate) manager_id: ManagerId,
    /// When the holder is expected to start there (unknown when a task it
    /// waits for has no walltime).
    pub(crate) shadow: Option<Time>,
    /// The nodes the holder expects to use at `shadow`.
    pub(crate) nodes: BTreeSet<u32>,
    /// Tasks ended on the manager (or one ahead of the holder started
    /// there): recompute `shadow` and `nodes` before use.
    stale: bool,
}

/// A decision: start this queued task on this manager, on these nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Start {
    pub(crate) task_id: TaskId,
    pub(crate) shape: Shape,
    pub(crate) manager_id: ManagerId,
    pub(crate) placement: Vec<NodeShare>,
    /// On the reserved manager by the backfill rule (not by its own right).
    pub(crate) backfill: bool,
}

/// What one matching pass (the walks after one input) remembers.
#[derive(Debug, Default)]
pub(crate) struct Pass {
    /// Shapes no listed manager fits. Within one pass listed capacity only
    /// shrinks (tasks start, a manager is reserved) until a reservation
    /// ends and its manager is listed again, so a miss is remembered until
    /// then: a head that fits nowhere is looked up once per pass, not once
    /// per start.
    misses: BTreeSet<Shape>,
}

/// What matching reads, and the table whose reserved flag it sets.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) tasks: &'a TaskTable,
    pub(crate) managers: &'a mut ManagerTable,
    pub(crate) now: Time,
}

/// The placement rule and the reservation.
#[derive(Debug)]
pub(crate) struct Matcher {
    placement: Placement,
    reservation: Option<Reservation>,
}

impl Matcher {
    pub(crate) fn new(placement: Placement) -> Self {
        Self {
            placement,
            reservation: None,
        }
    }

    pub(crate) fn reservation(&self) -> Option<&Reservation> {
        self.reservation.as_ref()
    }

    /// The next task that can start now (see the module documentation);
    /// `None` when nothing more starts in this pass. The caller applies it
    /// and then calls [`Matcher::started`].
    pub(crate) fn next_start(
        &mut self,
        pass: &mut Pass,
        context: &mut Context<'_>,
    ) -> Option<Start> {
        let mut after = None;
        let mut holder: Option<(TaskId, Shape)> = None;
        let mut reserved_for_holder = false;
        while let Some((key, shape, task_id)) = context.tasks.queue().next_head(after) {
            after = Some(key);
            let Some((holder_id, holder_shape)) = holder else {
                // Ahead of any holder: start wherever it fits.
                if let Some(start) = self.choose(shape, task_id, false, pass, context) {
                    return Some(start);
                }
                if context.managers.could_ever_fit(shape) {
                    holder = Some((task_id, shape));
                    if self
                        .reservation
                        .as_ref()
                        .is_some_and(|reservation| reservation.task_id == task_id)
                    {
                        self.reserve_for(task_id, shape, context);
                        reserved_for_holder = true;
                    } else if self.reservation.is_some() {
                        self.clear(context.managers);
                        pass.misses.clear();
                    }
                }
                continue;
            };
            if !self.room_behind_holder(context.managers) {
                // Nothing behind the holder can start: stop early, so that
                // a full system costs O(heads up to the holder).
                break;
            }
            if !reserved_for_holder {
                // The reservation is made only once it matters: when a task
                // behind the holder could otherwise start.
                if self.choose(shape, task_id, false, pass, context).is_none() {
                    continue;
                }
                self.reserve_for(holder_id, holder_shape, context);
                reserved_for_holder = true;
            }
            if let Some(start) = self.choose(shape, task_id, true, pass, context) {
                return Some(start);
            }
        }
        if holder.is_none() {
            self.clear(context.managers);
        }
        None
    }

    /// The core applied `start`: the reservation ends if its holder
    /// started, and its shadow time is recomputed if a task ahead of the
    /// holder started on the reserved manager.
    pub(crate) fn started(&mut self, start: &Start, managers: &mut ManagerTable, pass: &mut Pass) {
        let Some(reservation) = &mut self.reservation else {
            return;
        };
        if reservation.task_id == start.task_id {
            tracing::debug!(task_id = %start.task_id, manager_id = %start.manager_id, "reservation holder started");
            self.clear(managers);
            // Its manager is listed again.
            pass.misses.clear();
        } else if reservation.manager_id == start.manager_id && !start.backfill {
            reservation.stale = true;
        }
    }

    /// Whether a task behind the holder could start anywhere: some listed
    /// manager has a free slot, or the reserved manager has one and a
    /// known shadow time.
    fn room_behind_holder(&self, managers: &ManagerTable) -> bool {
        managers.any_listed_free_slot()
            || self.reservation.as_ref().is_some_and(|reservation| {
                reservation.shadow.is_some()
                    && managers
                        .get(reservation.manager_id)
                        .is_some_and(|manager| manager.accepts_tasks() && manager.has_free_slot())
            })
    }

    /// Where a task of this shape can start now. `behind_holder`: the task
    /// is behind the reservation's holder, so the reserved manager takes it
    /// only by the backfill rule.
    fn choose(
        &self,
        shape: Shape,
        task_id: TaskId,
        behind_holder: bool,
        pass: &mut Pass,
        context: &Context<'_>,
    ) -> Option<Start> {
        let managers = &*context.managers;
        let policy = self.placement;
        let general = if pass.misses.contains(&shape) {
            None
        } else {
            let found = match policy {
                Placement::BestFit => managers.best_fit(shape).map(|(manager_id, _)| manager_id),
                Placement::NewestBlock => managers.newest_fit(shape),
            };
            if found.is_none() {
                pass.misses.insert(shape);
            }
            found
        }
        .and_then(|manager_id| {
            let manager = managers.get(manager_id)?;
            let (placement, tightness) = manager.place(shape, &BTreeSet::new())?;
            Some((manager_id, placement, tightness, manager.order()))
        });
        let reserved = self.reservation.as_ref().and_then(|reservation| {
            let manager = managers.get(reservation.manager_id)?;
            if !manager.accepts_tasks() {
                return None;
            }
            let (placement, tightness, backfill) = if !behind_holder {
                let (placement, tightness) = manager.place(shape, &BTreeSet::new())?;
                (placement, tightness, false)
            } else {
                let shadow = reservation.shadow?;
                let ends_in_time = context
                    .tasks
                    .walltime_of_queued(task_id)
                    .is_some_and(|walltime| context.now.plus(walltime) <= shadow);
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
        let (manager_id, placement, backfill) = if take_reserved {
            reserved
                .map(|(manager_id, placement, _, _, backfill)| (manager_id, placement, backfill))?
        } else {
            general.map(|(manager_id, placement, _, _)| (manager_id, placement, false))?
        };
        Some(Start {
            task_id,
            shape,
            manager_id,
            placement,
            backfill,
        })
    }

    /// Makes sure the holder has a reservation: kept (and brought up to
    /// date) while it is for the same task on a manager that still accepts
    /// tasks, chosen afresh otherwise.
    fn reserve_for(&mut self, task_id: TaskId, shape: Shape, context: &mut Context<'_>) {
        let now = context.now;
        if let Some(reservation) = &mut self.reservation {
            let still_good = reservation.task_id == task_id
                && context
                    .managers
                    .get(reservation.manager_id)
                    .is_some_and(|manager| {
                        manager.accepts_tasks() && manager.could_ever_fit(shape)
                    });
            if still_good {
                if reservation.stale {
                    if let Some(manager) = context.managers.get(reservation.manager_id) {
                        let Shadow { at, nodes, .. } = manager.shadow(shape, now, None, true);
                        reservation.shadow = at;
                        reservation.nodes = nodes;
                    }
                    reservation.stale = false;
                }
                return;
            }
        }
        self.clear(context.managers);
        let policy = self.placement;
        // The earliest known shadow time wins, else the fewest nodes
        // missing; a manager whose tasks cannot free enough by the best
        // time found so far is given up on early.
        type Rank = (bool, Option<Time>, u32, usize, ManagerId);
        let mut best: Option<Rank> = None;
        for manager in context.managers.iter() {
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
        let Some(shadow) = context
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
        context.managers.set_reserved(manager_id, true);
        self.reservation = Some(Reservation {
            task_id,
            shape,
            manager_id,
            shadow: shadow.at,
            nodes: shadow.nodes,
            stale: false,
        });
    }

    /// Ends the reservation (the next walk chooses one again if needed).
    pub(crate) fn clear(&mut self, managers: &mut ManagerTable) {
        if let Some(reservation) = self.reservation.take() {
            managers.set_reserved(reservation.manager_id, false);
        }
    }

    /// Ends the reservation if it is on this manager.
    pub(crate) fn clear_on(&mut self, manager_id: ManagerId, managers: &mut ManagerTable) {
        if self
            .reservation
            .as_ref()
            .is_some_and(|reservation| reservation.manager_id == manager_id)
        {
            self.clear(managers);
        }
    }

    /// A task ended on this manager: if it is the reserved one, its shadow
    /// time is recomputed at the next walk.
    pub(crate) fn task_ended_on(&mut self, manager_id: ManagerId) {
        if let Some(reservation) = &mut self.reservation {
            if reservation.manager_id == manager_id {
                reservation.stale = true;
            }
        }
    }

    /// The table's own check, and that exactly the reserved manager (if
    /// it is still registered) is out of the indexes for the reservation,
    /// and that the holder is queued.
    pub(crate) fn check(&self, managers: &ManagerTable, tasks: &TaskTable) -> Result<(), String> {
        managers.check()?;
        let reserved: Vec<ManagerId> = managers
            .iter()
            .filter(|manager| manager.is_reserved())
            .map(|manager| manager.manager_id)
            .collect();
        let expected: Vec<ManagerId> = self
            .reservation
            .iter()
            .map(|reservation| reservation.manager_id)
            .filter(|manager_id| managers.get(*manager_id).is_some())
            .collect();
        if reserved != expected {
            return Err(format!(
                "managers marked reserved {reserved:?}, reservation on {expected:?}"
            ));
        }
        if let Some(reservation) = &self.reservation {
            if !tasks.is_queued(reservation.task_id) {
                return Err(format!(
                    "reservation for task {}, which is not queued",
                    reservation.task_id
                ));
            }
        }
        Ok(())
    }
}
