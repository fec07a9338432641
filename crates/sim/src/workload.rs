//! Workload descriptions: the tasks a simulated client submits and the
//! blocks whose pool-managers (real pool-manager cores on the Pair) run them.
//!
//! A [`Workload`] is plain data. It comes from one of the named generators
//! ([`parsl_mixed`], [`starvation`], [`heavy_tailed`], each fully
//! determined by its seed) or from a JSON or TOML file ([`Workload::from_file`]).
//!
//! File format (JSON shown; TOML uses `[[block]]`/`[[task]]` tables, and
//! `blocks`/`tasks` arrays work in both):
//!
//! ```json
//! {
//!   "name": "mine",
//!   "blocks": [{"nodes": 8, "slots_per_node": 8, "join": 0, "leave": 300}],
//!   "tasks": [{"submit": 0, "duration": 5.5, "num_nodes": 2, "ranks_per_node": 4,
//!              "exclusive": true, "walltime": 10, "priority": 1, "retries": 0, "count": 3}]
//! }
//! ```
//!
//! Times are seconds from the start of the simulation. Task keys other than
//! `submit`, `duration` and `count` (how many identical tasks; default 1) are
//! the resource specification keys and go to the interchange as given (an
//! absent key stays absent). Block keys: `nodes`, `slots_per_node`
//! (default 1), `join` (default 0), `leave` (optional: from then on the
//! block's manager is silent, as a lost manager is).

use crate::rng::SplitMix64;
use protocol::{ResourceRequest, SpecValue, TaskResources};
use std::path::Path;

/// One task: when it is submitted, what it asks for, how long it truly runs.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    /// Seconds from the start of the simulation.
    pub submit: f64,
    /// How long the task runs, in seconds, if nothing stops it.
    pub duration: f64,
    /// Resource specification keys; `None` leaves the key out.
    pub num_nodes: Option<u32>,
    pub ranks_per_node: Option<u32>,
    pub exclusive: Option<bool>,
    pub walltime: Option<f64>,
    pub priority: Option<i64>,
    pub retries: Option<u32>,
}

impl TaskSpec {
    /// A task asking for `num_nodes` whole nodes.
    pub fn new(submit: f64, duration: f64, num_nodes: u32) -> Self {
        Self {
            submit,
            duration,
            num_nodes: Some(num_nodes),
            ranks_per_node: None,
            exclusive: None,
            walltime: None,
            priority: None,
            retries: None,
        }
    }

    /// The resource specification as the client sends it.
    pub fn request(&self) -> ResourceRequest {
        let mut request = ResourceRequest::new();
        insert_some(&mut request, "num_nodes", self.num_nodes);
        insert_some(&mut request, "ranks_per_node", self.ranks_per_node);
        insert_some(&mut request, "exclusive", self.exclusive);
        insert_some(
            &mut request,
            "walltime",
            self.walltime.map(SpecValue::Float),
        );
        insert_some(&mut request, "priority", self.priority);
        insert_some(&mut request, "retries", self.retries);
        request
    }

    /// The specification as the interchange will see it once validated;
    /// `None` when it is invalid (the interchange refuses the task).
    pub fn resources(&self) -> Option<TaskResources> {
        protocol::validate(&self.request()).ok()
    }
}

/// Sets `key` in `request` if there is a `value`; leaves it out if not.
fn insert_some<T: Into<SpecValue>>(request: &mut ResourceRequest, key: &str, value: Option<T>) {
    if let Some(value) = value {
        request.insert(key, value);
    }
}

/// One block: a batch job whose pool-manager registers its nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockSpec {
    pub nodes: u32,
    pub slots_per_node: u32,
    /// When its manager registers, in seconds.
    pub join: f64,
    /// When its manager goes silent (stops heartbeating and reporting), if
    /// ever: a lost manager.
    pub leave: Option<f64>,
}

impl BlockSpec {
    pub fn new(nodes: u32, slots_per_node: u32, join: f64) -> Self {
        Self {
            nodes,
            slots_per_node,
            join,
            leave: None,
        }
    }
}

/// Tasks and blocks to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub name: String,
    /// One line on how it was made (distributions and parameters).
    pub description: String,
    pub tasks: Vec<TaskSpec>,
    pub blocks: Vec<BlockSpec>,
}

/// Why a workload is unusable.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("cannot read workload file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("workload file {path} is not valid {format}: {message}")]
    Syntax {
        path: String,
        format: &'static str,
        message: String,
    },
    #[error("workload {at}: {message}")]
    Invalid { at: String, message: String },
    #[error("unknown workload {name:?}; valid workloads are {}", WORKLOAD_NAMES.join(", "))]
    UnknownName { name: String },
}

/// The names [`by_name`] knows.
pub const WORKLOAD_NAMES: &[&str] = &["parsl-mixed", "starvation", "heavy-tailed", "packing"];

fn invalid(at: impl Into<String>, message: impl Into<String>) -> WorkloadError {
    WorkloadError::Invalid {
        at: at.into(),
        message: message.into(),
    }
}

impl Workload {
    /// Checks what the simulator relies on: finite, non-negative times and
    /// at least one node and slot per block. (Resource specifications are
    /// not checked here: an invalid one is the interchange's to refuse.)
    pub fn validate(&self) -> Result<(), WorkloadError> {
        for (index, task) in self.tasks.iter().enumerate() {
            let at = format!("task {index}");
            if !(task.submit.is_finite() && task.submit >= 0.0 && task.submit <= MAX_SECONDS) {
                return Err(invalid(
                    at,
                    format!(
                        "submit must be a number of seconds from 0 to {MAX_SECONDS}, got {}",
                        task.submit
                    ),
                ));
            }
            if !(task.duration.is_finite() && task.duration >= 0.0 && task.duration <= MAX_SECONDS)
            {
                return Err(invalid(
                    at,
                    format!(
                        "duration must be a number of seconds from 0 to {MAX_SECONDS}, got {}",
                        task.duration
                    ),
                ));
            }
        }
        for (index, block) in self.blocks.iter().enumerate() {
            let at = format!("block {index}");
            if block.nodes == 0 || block.nodes > MAX_BLOCK_NODES {
                return Err(invalid(
                    at,
                    format!(
                        "nodes must be from 1 to {MAX_BLOCK_NODES}, got {}",
                        block.nodes
                    ),
                ));
            }
            if block.slots_per_node == 0 {
                return Err(invalid(at, "slots_per_node must be at least 1"));
            }
            if !(block.join.is_finite() && block.join >= 0.0 && block.join <= MAX_SECONDS) {
                return Err(invalid(
                    at,
                    format!(
                        "join must be a number of seconds from 0 to {MAX_SECONDS}, got {}",
                        block.join
                    ),
                ));
            }
            if let Some(leave) = block.leave {
                if !(leave.is_finite() && leave >= block.join && leave <= MAX_SECONDS) {
                    return Err(invalid(
                        at,
                        format!(
                            "leave must be a number of seconds from join ({}) to {MAX_SECONDS}, got {leave}",
                            block.join
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads a workload from a JSON file, or TOML when the name ends in `.toml`.
    pub fn from_file(path: &Path) -> Result<Self, WorkloadError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Read {
            path: shown.clone(),
            source,
        })?;
        let is_toml = path.extension().is_some_and(|ext| ext == "toml");
        let value = if is_toml {
            let parsed: toml::Value =
                toml::from_str(&text).map_err(|error| WorkloadError::Syntax {
                    path: shown.clone(),
                    format: "TOML",
                    message: error.to_string(),
                })?;
            serde_json::to_value(parsed).map_err(|error| WorkloadError::Syntax {
                path: shown.clone(),
                format: "TOML",
                message: error.to_string(),
            })?
        } else {
            serde_json::from_str(&text).map_err(|error| WorkloadError::Syntax {
                path: shown.clone(),
                format: "JSON",
                message: error.to_string(),
            })?
        };
        let default_name = path.file_stem().map_or_else(
            || "file".to_owned(),
            |stem| stem.to_string_lossy().into_owned(),
        );
        Self::from_value(&value, &default_name)
    }

    /// Builds a workload from a parsed JSON (or TOML converted to JSON)
    /// document; see the module documentation for the keys.
    pub fn from_value(
        value: &serde_json::Value,
        default_name: &str,
    ) -> Result<Self, WorkloadError> {
        let top = value
            .as_object()
            .ok_or_else(|| invalid("file", "the top level must be a table/object"))?;
        for key in top.keys() {
            if !["name", "description", "blocks", "block", "tasks", "task"].contains(&key.as_str())
            {
                return Err(invalid(
                    "file",
                    format!(
                        "unknown key {key:?}; valid keys are name, description, blocks (or block), tasks (or task)"
                    ),
                ));
            }
        }
        let name = match top.get("name") {
            None => default_name.to_owned(),
            Some(value) => value
                .as_str()
                .ok_or_else(|| invalid("name", "must be a string"))?
                .to_owned(),
        };
        let description = match top.get("description") {
            None => "read from a file".to_owned(),
            Some(value) => value
                .as_str()
                .ok_or_else(|| invalid("description", "must be a string"))?
                .to_owned(),
        };
        let list =
            |plural: &str, singular: &str| -> Result<Vec<serde_json::Value>, WorkloadError> {
                match (top.get(plural), top.get(singular)) {
                    (Some(_), Some(_)) => Err(invalid(
                        "file",
                        format!("give either {plural} or {singular}, not both"),
                    )),
                    (Some(value), None) | (None, Some(value)) => value
                        .as_array()
                        .cloned()
                        .ok_or_else(|| invalid(plural, "must be a list")),
                    (None, None) => Ok(Vec::new()),
                }
            };
        let mut blocks = Vec::new();
        for (index, entry) in list("blocks", "block")?.iter().enumerate() {
            blocks.push(block_from_value(entry, &format!("block {index}"))?);
        }
        let mut tasks = Vec::new();
        for (index, entry) in list("tasks", "task")?.iter().enumerate() {
            let (task, count) = task_from_value(entry, &format!("task entry {index}"))?;
            if tasks.len() as u64 + count > MAX_TASKS {
                return Err(invalid(
                    format!("task entry {index}"),
                    format!("more than {MAX_TASKS} tasks in all"),
                ));
            }
            for _ in 0..count {
                tasks.push(task.clone());
            }
        }
        let workload = Workload {
            name,
            description,
            tasks,
            blocks,
        };
        workload.validate()?;
        Ok(workload)
    }
}

/// Longest time accepted anywhere in a workload (about 31 years), so that
/// milliseconds stay exact in a `u64`.
pub const MAX_SECONDS: f64 = 1e9;
/// Most nodes in one block.
pub const MAX_BLOCK_NODES: u32 = 1 << 20;
/// Most tasks a file may describe.
pub const MAX_TASKS: u64 = 10_000_000;

type Object = serde_json::Map<String, serde_json::Value>;

fn object<'a>(value: &'a serde_json::Value, at: &str) -> Result<&'a Object, WorkloadError> {
    value
        .as_object()
        .ok_or_else(|| invalid(at, "must be a table/object"))
}

fn check_keys(entry: &Object, at: &str, known: &[&str]) -> Result<(), WorkloadError> {
    for key in entry.keys() {
        if !known.contains(&key.as_str()) {
            return Err(invalid(
                at,
                format!("unknown key {key:?}; valid keys are {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn seconds(entry: &Object, at: &str, key: &str) -> Result<Option<f64>, WorkloadError> {
    match entry.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|seconds| seconds.is_finite())
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    at,
                    format!("{key} must be a number of seconds, got {value}"),
                )
            }),
    }
}

fn unsigned(entry: &Object, at: &str, key: &str) -> Result<Option<u32>, WorkloadError> {
    match entry.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|number| u32::try_from(number).ok())
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    at,
                    format!("{key} must be a non-negative integer, got {value}"),
                )
            }),
    }
}

fn block_from_value(value: &serde_json::Value, at: &str) -> Result<BlockSpec, WorkloadError> {
    let entry = object(value, at)?;
    check_keys(entry, at, &["nodes", "slots_per_node", "join", "leave"])?;
    let nodes = unsigned(entry, at, "nodes")?.ok_or_else(|| invalid(at, "nodes is required"))?;
    Ok(BlockSpec {
        nodes,
        slots_per_node: unsigned(entry, at, "slots_per_node")?.unwrap_or(1),
        join: seconds(entry, at, "join")?.unwrap_or(0.0),
        leave: seconds(entry, at, "leave")?,
    })
}

fn task_from_value(value: &serde_json::Value, at: &str) -> Result<(TaskSpec, u64), WorkloadError> {
    let entry = object(value, at)?;
    check_keys(
        entry,
        at,
        &[
            "submit",
            "duration",
            "count",
            "num_nodes",
            "ranks_per_node",
            "exclusive",
            "walltime",
            "priority",
            "retries",
        ],
    )?;
    let duration =
        seconds(entry, at, "duration")?.ok_or_else(|| invalid(at, "duration is required"))?;
    let exclusive =
        match entry.get("exclusive") {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(value.as_bool().ok_or_else(|| {
                invalid(at, format!("exclusive must be true or false, got {value}"))
            })?),
        };
    let priority = match entry.get("priority") {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => Some(
            value
                .as_i64()
                .ok_or_else(|| invalid(at, format!("priority must be an integer, got {value}")))?,
        ),
    };
    let count = match entry.get("count") {
        None => 1,
        Some(value) => value.as_u64().ok_or_else(|| {
            invalid(
                at,
                format!("count must be a non-negative integer, got {value}"),
            )
        })?,
    };
    let task = TaskSpec {
        submit: seconds(entry, at, "submit")?.unwrap_or(0.0),
        duration,
        num_nodes: unsigned(entry, at, "num_nodes")?,
        ranks_per_node: unsigned(entry, at, "ranks_per_node")?,
        exclusive,
        walltime: seconds(entry, at, "walltime")?,
        priority,
        retries: unsigned(entry, at, "retries")?,
    };
    Ok((task, count))
}

/// A named generated workload.
pub fn by_name(name: &str, seed: u64) -> Result<Workload, WorkloadError> {
    match name {
        "parsl-mixed" => Ok(parsl_mixed(seed)),
        "starvation" => Ok(starvation(seed)),
        "heavy-tailed" => Ok(heavy_tailed(seed)),
        "packing" => Ok(packing(seed)),
        other => Err(WorkloadError::UnknownName {
            name: other.to_owned(),
        }),
    }
}

/// Rounds seconds to whole milliseconds (the simulator's resolution), so
/// that a workload printed and read back is the same.
fn millis(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// Parsl's own mixed test (`parsl/tests/test_htex/mpi/`): one 8-node block,
/// 100 tasks submitted at once, `num_nodes` uniform in {1, 2, 4},
/// `ranks_per_node` uniform in {4, 8}, whole nodes (Parsl cannot share
/// nodes). Parsl's test tasks do no work; here each runs for a duration
/// uniform in [1, 10) seconds so that placement matters. Slots per node: 8.
pub fn parsl_mixed(seed: u64) -> Workload {
    let mut rng = SplitMix64::new(seed);
    let tasks = (0..100)
        .map(|_| {
            let num_nodes = *rng.pick(&[1u32, 2, 4]).unwrap_or(&1);
            let ranks_per_node = *rng.pick(&[4u32, 8]).unwrap_or(&4);
            let duration = millis(rng.uniform(1.0, 10.0));
            TaskSpec {
                ranks_per_node: Some(ranks_per_node),
                ..TaskSpec::new(0.0, duration, num_nodes)
            }
        })
        .collect();
    Workload {
        name: "parsl-mixed".to_owned(),
        description:
            "1 block of 8 nodes (8 slots each); 100 tasks at t=0, num_nodes uniform in {1,2,4}, \
                      ranks_per_node uniform in {4,8}, whole nodes, duration uniform in [1,10) s"
                .to_owned(),
        tasks,
        blocks: vec![BlockSpec::new(8, 8, 0.0)],
    }
}

/// Parameters of the [`starvation`] workload, for tests that reason about it.
pub mod starvation_params {
    /// Nodes in the one block (and in each whole-block task).
    pub const BLOCK_NODES: u32 = 8;
    /// 1-node tasks arrive from t = 0 until this time (seconds)...
    pub const STREAM_END: f64 = 1200.0;
    /// ...with gaps uniform in this range (mean 1.5 s)...
    pub const GAP: (f64, f64) = (1.0, 2.0);
    /// ...and run for a duration uniform in this range (mean 10 s).
    pub const SHORT_DURATION: (f64, f64) = (5.0, 15.0);
    /// A whole-block task arrives at each of these times...
    pub const LARGE_AT: [f64; 6] = [100.0, 300.0, 500.0, 700.0, 900.0, 1100.0];
    /// ...and runs this long.
    pub const LARGE_DURATION: f64 = 20.0;
}

/// The starvation case (Parsl section 7, the large task that waits
/// forever): one 8-node block kept busy by a stream of 1-node tasks (gaps
/// uniform in [1, 2) s, durations uniform in [5, 15) s: about 83% of the
/// block on their own), and a whole-block task (8 nodes, 20 s) every 200 s
/// from t = 100 s (about 10% more). Without reservation, a freed node is
/// taken by the next 1-node task and the whole-block task waits until the
/// block happens to drain on its own.
pub fn starvation(seed: u64) -> Workload {
    use starvation_params::*;
    let mut rng = SplitMix64::new(seed);
    let mut tasks = Vec::new();
    let mut at = 0.0;
    while at < STREAM_END {
        let duration = millis(rng.uniform(SHORT_DURATION.0, SHORT_DURATION.1));
        tasks.push(TaskSpec::new(millis(at), duration, 1));
        at += rng.uniform(GAP.0, GAP.1);
    }
    for large_at in LARGE_AT {
        tasks.push(TaskSpec::new(large_at, LARGE_DURATION, BLOCK_NODES));
    }
    tasks.sort_by(|a, b| a.submit.total_cmp(&b.submit));
    Workload {
        name: "starvation".to_owned(),
        description:
            "1 block of 8 nodes; 1-node tasks every U[1,2) s until t=1200 s running U[5,15) s, \
                      and an 8-node task of 20 s at t=100,300,...,1100 s"
                .to_owned(),
        tasks,
        blocks: vec![BlockSpec::new(BLOCK_NODES, 8, 0.0)],
    }
}

/// 10,000 tasks with heavy-tailed durations over several block sizes: two
/// blocks each of 4, 8 and 16 nodes (56 nodes, 8 slots per node), all
/// joined at t = 0; every task submitted at t = 0 (a bulk ensemble).
/// `num_nodes` is skewed toward small tasks (1: 55%, 2: 20%, 4: 13%,
/// 8: 8%, 16: 4%). Durations are Pareto with minimum 1 s and shape 1.5
/// (mean 3 s), cut at 300 s. Each task has a walltime, as users give one:
/// its duration times U[1.5, 3), rounded up to a whole 10 s; 1% of tasks
/// instead get a walltime of half their duration and fail as
/// `walltime_exceeded`.
pub fn heavy_tailed(seed: u64) -> Workload {
    let mut rng = SplitMix64::new(seed);
    let tasks = (0..10_000)
        .map(|_| {
            let num_nodes = rng
                .weighted(&[(1u32, 55.0), (2, 20.0), (4, 13.0), (8, 8.0), (16, 4.0)])
                .unwrap_or(1);
            let duration = millis(rng.pareto(1.0, 1.5).min(300.0));
            let walltime = if rng.next_f64() < 0.01 {
                millis((duration / 2.0).max(0.001))
            } else {
                ((duration * rng.uniform(1.5, 3.0)) / 10.0).ceil() * 10.0
            };
            TaskSpec {
                walltime: Some(walltime),
                ..TaskSpec::new(0.0, duration, num_nodes)
            }
        })
        .collect();
    let blocks = [4, 4, 8, 8, 16, 16]
        .into_iter()
        .map(|nodes| BlockSpec::new(nodes, 8, 0.0))
        .collect();
    Workload {
        name: "heavy-tailed".to_owned(),
        description: "blocks of 4,4,8,8,16,16 nodes; 10,000 tasks at t=0, num_nodes 1/2/4/8/16 at \
                      55/20/13/8/4%, durations Pareto(min 1 s, shape 1.5) cut at 300 s, walltime \
                      duration*U[1.5,3) rounded up to 10 s (1% get half their duration and exceed it)"
            .to_owned(),
        tasks,
        blocks,
    }
}

/// Sub-node packing (Parsl #3927): two blocks of 4 nodes with 16 slots
/// each; 2,000 tasks at t = 0, durations uniform in [1, 10) s. 70% are
/// shared (`exclusive: false`) 1-node tasks with `ranks_per_node` uniform in
/// {1, 2, 4, 8}, 20% shared 2-node tasks with 4 or 8 ranks per node, 10%
/// whole-node tasks of 1 or 2 nodes. Utilization counts a shared task as
/// its ranks over the node's slots, so only packing reaches a high figure.
pub fn packing(seed: u64) -> Workload {
    let mut rng = SplitMix64::new(seed);
    let tasks = (0..2000)
        .map(|_| {
            let duration = millis(rng.uniform(1.0, 10.0));
            let kind = rng.next_f64();
            if kind < 0.7 {
                TaskSpec {
                    ranks_per_node: Some(*rng.pick(&[1u32, 2, 4, 8]).unwrap_or(&1)),
                    exclusive: Some(false),
                    ..TaskSpec::new(0.0, duration, 1)
                }
            } else if kind < 0.9 {
                TaskSpec {
                    ranks_per_node: Some(*rng.pick(&[4u32, 8]).unwrap_or(&4)),
                    exclusive: Some(false),
                    ..TaskSpec::new(0.0, duration, 2)
                }
            } else {
                TaskSpec::new(0.0, duration, *rng.pick(&[1u32, 2]).unwrap_or(&1))
            }
        })
        .collect();
    Workload {
        name: "packing".to_owned(),
        description: "2 blocks of 4 nodes (16 slots each); 2,000 tasks at t=0, duration U[1,10) s: \
                      70% shared 1-node with 1/2/4/8 ranks, 20% shared 2-node with 4/8 ranks per node, \
                      10% whole-node of 1 or 2 nodes"
            .to_owned(),
        tasks,
        blocks: vec![BlockSpec::new(4, 16, 0.0), BlockSpec::new(4, 16, 0.0)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_valid() {
        for name in WORKLOAD_NAMES {
            let a = by_name(name, 3).expect("known name");
            let b = by_name(name, 3).expect("known name");
            assert_eq!(a, b);
            a.validate().expect("generated workloads are valid");
            assert!(a.tasks.iter().all(|task| task.resources().is_some()));
        }
        assert_ne!(parsl_mixed(1), parsl_mixed(2));
        assert_eq!(heavy_tailed(1).tasks.len(), 10_000);
    }

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let error = by_name("nope", 1).expect_err("unknown");
        assert!(error.to_string().contains("parsl-mixed"), "{error}");
    }

    #[test]
    fn json_document_with_count_and_defaults() {
        let value = serde_json::json!({
            "blocks": [{"nodes": 4, "slots_per_node": 2, "leave": 50}],
            "tasks": [{"duration": 3, "count": 2}, {"submit": 1.5, "duration": 1, "num_nodes": 2, "exclusive": false}]
        });
        let workload = Workload::from_value(&value, "x").expect("valid");
        assert_eq!(workload.name, "x");
        assert_eq!(workload.tasks.len(), 3);
        assert_eq!(workload.tasks[0].num_nodes, None);
        assert_eq!(workload.tasks[2].exclusive, Some(false));
        assert_eq!(workload.blocks[0].leave, Some(50.0));
        assert_eq!(workload.blocks[0].join, 0.0);
    }

    #[test]
    fn bad_documents_name_the_problem() {
        let cases = [
            (
                serde_json::json!({"tasks": [{"duration": 1, "nodes": 2}]}),
                "unknown key \"nodes\"",
            ),
            (serde_json::json!({"tasks": [{}]}), "duration is required"),
            (
                serde_json::json!({"blocks": [{"nodes": 0}]}),
                "nodes must be from 1",
            ),
            (
                serde_json::json!({"tasks": [{"duration": -1}]}),
                "duration must be",
            ),
            (
                serde_json::json!({"blocks": [{"nodes": 2, "join": 5, "leave": 1}]}),
                "leave must be",
            ),
            (serde_json::json!({"extra": 1}), "unknown key \"extra\""),
            (serde_json::json!([1]), "top level"),
        ];
        for (value, expected) in cases {
            let error = Workload::from_value(&value, "x").expect_err("invalid");
            assert!(
                error.to_string().contains(expected),
                "{error} should contain {expected}"
            );
        }
    }
}
