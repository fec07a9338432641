//! Resource specifications: what a task asks for, and the rules that make a
//! request valid.
//!
//! A request travels as a loose map ([`ResourceRequest`]) so that a bad one
//! reaches [`validate`] and gets an error that says what is wrong, instead of
//! failing to decode. [`validate`] turns it into [`TaskResources`], which
//! cannot be invalid. The client library validates before sending; the
//! interchange validates again on arrival.
//!
//! Rules (the same as Parsl's MPI mode, with integers only):
//! - keys: `num_nodes`, `ranks_per_node`, `num_ranks`, `launcher_options`,
//!   `priority`, `walltime`, `retries`, `exclusive` ([`KNOWN_KEYS`]); any
//!   other key is rejected with its name;
//! - `num_nodes`, `ranks_per_node`, `num_ranks` are integers, each at least 1;
//!   `num_nodes` defaults to 1;
//! - given one rank count, the other is derived
//!   (`num_ranks = num_nodes * ranks_per_node`,
//!   `ranks_per_node = ceil(num_ranks / num_nodes)`); given neither,
//!   `ranks_per_node = 1`;
//! - the result must satisfy
//!   `(num_nodes - 1) * ranks_per_node < num_ranks <= num_nodes * ranks_per_node`,
//!   so that every node runs at least one rank;
//! - `launcher_options` is a string; `priority` is an integer (smaller runs
//!   first, tasks without one come last);
//! - `walltime` is a number of seconds, more than 0 and at most
//!   [`MAX_WALLTIME`]: the manager kills the task when it runs longer, and
//!   the scheduler may backfill short tasks ahead of a waiting large one;
//! - `retries` is an integer from 0 to [`MAX_RETRIES`]: how many times a task
//!   that failed through no fault of its own (its manager was lost) goes back
//!   to the queue; absent, the interchange's default applies;
//! - `exclusive` is a boolean, true by default: the task gets whole nodes.
//!   With `false` it takes `ranks_per_node` slots on each of `num_nodes` nodes
//!   and may share those nodes with other non-exclusive tasks.
//!
//! An empty request is a serial task: one node, one rank.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The keys a resource specification may hold.
pub const KNOWN_KEYS: &[&str] = &[
    "num_nodes",
    "ranks_per_node",
    "num_ranks",
    "launcher_options",
    "priority",
    "walltime",
    "retries",
    "exclusive",
];

/// Longest `walltime` accepted, in seconds (about 31 years).
pub const MAX_WALLTIME: f64 = 1e9;

/// Most `retries` accepted.
pub const MAX_RETRIES: i64 = 1000;

/// Upper bound on node and rank counts, to keep arithmetic far from overflow.
pub const MAX_COUNT: i64 = 1 << 24;

/// One value in a resource request, as it came from the wire or a file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SpecValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Null,
}

impl fmt::Display for SpecValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecValue::Bool(value) => write!(f, "{value}"),
            SpecValue::Int(value) => write!(f, "{value}"),
            SpecValue::Float(value) => write!(f, "{value:?}"),
            SpecValue::Text(value) => write!(f, "{value:?}"),
            SpecValue::Null => f.write_str("null"),
        }
    }
}

impl From<i64> for SpecValue {
    fn from(value: i64) -> Self {
        SpecValue::Int(value)
    }
}

impl From<u32> for SpecValue {
    fn from(value: u32) -> Self {
        SpecValue::Int(i64::from(value))
    }
}

impl From<i32> for SpecValue {
    fn from(value: i32) -> Self {
        SpecValue::Int(i64::from(value))
    }
}

impl From<bool> for SpecValue {
    fn from(value: bool) -> Self {
        SpecValue::Bool(value)
    }
}

impl From<&str> for SpecValue {
    fn from(value: &str) -> Self {
        SpecValue::Text(value.to_owned())
    }
}

impl From<String> for SpecValue {
    fn from(value: String) -> Self {
        SpecValue::Text(value)
    }
}

/// A resource specification as sent: a map from key to value, not yet
/// validated. On the wire: a msgpack map, possibly empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceRequest(pub BTreeMap<String, SpecValue>);

impl ResourceRequest {
    /// An empty request (a serial task).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, builder style.
    pub fn with(mut self, key: &str, value: impl Into<SpecValue>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: &str, value: impl Into<SpecValue>) {
        self.0.insert(key.to_owned(), value.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A validated resource specification: every count present and consistent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskResources {
    pub num_nodes: u32,
    pub ranks_per_node: u32,
    pub num_ranks: u32,
    #[serde(default)]
    pub launcher_options: Option<String>,
    #[serde(default)]
    pub priority: Option<i64>,
    /// Seconds the task may run before it is killed; none means no limit.
    #[serde(default)]
    pub walltime: Option<f64>,
    /// How many times the task is queued again after a failure that was not
    /// its own; none means the interchange's default.
    #[serde(default)]
    pub retries: Option<u32>,
    /// True (the default): whole nodes. False: `ranks_per_node` slots on each
    /// node, which other non-exclusive tasks may share.
    #[serde(default = "exclusive_default")]
    pub exclusive: bool,
}

fn exclusive_default() -> bool {
    true
}

impl TaskResources {
    /// A serial task: one node, one rank.
    pub fn serial() -> Self {
        Self {
            num_nodes: 1,
            ranks_per_node: 1,
            num_ranks: 1,
            launcher_options: None,
            priority: None,
            walltime: None,
            retries: None,
            exclusive: true,
        }
    }

    /// The request that validates to these resources.
    pub fn to_request(&self) -> ResourceRequest {
        let mut request = ResourceRequest::new()
            .with("num_nodes", self.num_nodes)
            .with("ranks_per_node", self.ranks_per_node)
            .with("num_ranks", self.num_ranks);
        if let Some(options) = &self.launcher_options {
            request.insert("launcher_options", options.as_str());
        }
        if let Some(priority) = self.priority {
            request.insert("priority", priority);
        }
        if let Some(walltime) = self.walltime {
            request.insert("walltime", SpecValue::Float(walltime));
        }
        if let Some(retries) = self.retries {
            request.insert("retries", retries);
        }
        if !self.exclusive {
            request.insert("exclusive", false);
        }
        request
    }
}

/// Why a resource request is invalid. Each message says what is wrong and
/// what would be valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "unknown resource specification key(s): {}; valid keys are {}",
        keys.join(", "),
        KNOWN_KEYS.join(", ")
    )]
    UnknownKeys { keys: Vec<String> },
    #[error("{key} must be an integer from 1 to {MAX_COUNT}, got {got}")]
    NotACount { key: String, got: String },
    #[error("priority must be an integer (smaller runs first), got {got}")]
    NotAPriority { got: String },
    #[error("launcher_options must be a string of extra launcher arguments, got {got}")]
    NotAString { got: String },
    #[error(
        "num_ranks = {num_ranks} does not fit num_nodes = {num_nodes} with ranks_per_node = {ranks_per_node}: \
         every node must run at least one rank, so num_ranks must be from {} to {}",
        (*num_nodes as u64 - 1) * *ranks_per_node as u64 + 1,
        *num_nodes as u64 * *ranks_per_node as u64
    )]
    RanksDoNotFit {
        num_nodes: u32,
        ranks_per_node: u32,
        num_ranks: u32,
    },
    #[error(
        "num_ranks = {num_ranks} is fewer than num_nodes = {num_nodes}: every node must run at least one rank, \
         so give num_ranks of at least {num_nodes} or fewer nodes"
    )]
    FewerRanksThanNodes { num_nodes: u32, num_ranks: u32 },
    #[error(
        "num_ranks = {num_ranks} cannot be spread over num_nodes = {num_nodes}: ranks_per_node would be \
         ceil({num_ranks} / {num_nodes}) = {ranks_per_node}, which leaves some nodes without a rank; \
         use a num_ranks from {} to {}, or a multiple of num_nodes, or fewer nodes",
        (*num_nodes as u64 - 1) * *ranks_per_node as u64 + 1,
        *num_nodes as u64 * *ranks_per_node as u64
    )]
    UnevenRanks {
        num_nodes: u32,
        ranks_per_node: u32,
        num_ranks: u32,
    },
    #[error(
        "walltime must be a number of seconds, more than 0 and at most {MAX_WALLTIME}, got {got}"
    )]
    NotAWalltime { got: String },
    #[error("retries must be an integer from 0 to {MAX_RETRIES}, got {got}")]
    NotRetries { got: String },
    #[error("exclusive must be true (whole nodes) or false (share nodes by slots), got {got}")]
    NotABool { got: String },
    #[error("num_nodes * ranks_per_node = {num_nodes} * {ranks_per_node} is larger than {MAX_COUNT} ranks")]
    TooManyRanks { num_nodes: u32, ranks_per_node: u32 },
}

fn count(request: &ResourceRequest, key: &str) -> Result<Option<u32>, SpecError> {
    match request.0.get(key) {
        None => Ok(None),
        Some(SpecValue::Int(value)) if (1..=MAX_COUNT).contains(value) => {
            // In range 1..=2^24, so the conversion is exact.
            Ok(Some(u32::try_from(*value).unwrap_or(u32::MAX)))
        }
        Some(other) => Err(SpecError::NotACount {
            key: key.to_owned(),
            got: other.to_string(),
        }),
    }
}

/// Checks a resource request and derives the missing counts.
pub fn validate(request: &ResourceRequest) -> Result<TaskResources, SpecError> {
    let unknown: Vec<String> = request
        .0
        .keys()
        .filter(|key| !KNOWN_KEYS.contains(&key.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(SpecError::UnknownKeys { keys: unknown });
    }

    let num_nodes = count(request, "num_nodes")?.unwrap_or(1);
    let given_ranks_per_node = count(request, "ranks_per_node")?;
    let given_num_ranks = count(request, "num_ranks")?;

    let launcher_options = match request.0.get("launcher_options") {
        None => None,
        Some(SpecValue::Text(text)) => Some(text.clone()),
        Some(other) => {
            return Err(SpecError::NotAString {
                got: other.to_string(),
            })
        }
    };
    let priority = match request.0.get("priority") {
        None => None,
        Some(SpecValue::Int(value)) => Some(*value),
        Some(other) => {
            return Err(SpecError::NotAPriority {
                got: other.to_string(),
            })
        }
    };

    let walltime = match request.0.get("walltime") {
        None => None,
        Some(SpecValue::Int(value)) if (1..=MAX_WALLTIME as i64).contains(value) => {
            Some(*value as f64)
        }
        Some(SpecValue::Float(value)) if *value > 0.0 && *value <= MAX_WALLTIME => Some(*value),
        Some(other) => {
            return Err(SpecError::NotAWalltime {
                got: other.to_string(),
            })
        }
    };
    let retries = match request.0.get("retries") {
        None => None,
        // In range 0..=1000, so the conversion is exact.
        Some(SpecValue::Int(value)) if (0..=MAX_RETRIES).contains(value) => {
            Some(u32::try_from(*value).unwrap_or(0))
        }
        Some(other) => {
            return Err(SpecError::NotRetries {
                got: other.to_string(),
            })
        }
    };
    let exclusive = match request.0.get("exclusive") {
        None => true,
        Some(SpecValue::Bool(value)) => *value,
        Some(other) => {
            return Err(SpecError::NotABool {
                got: other.to_string(),
            })
        }
    };

    let total = |ranks_per_node: u32| -> Result<u32, SpecError> {
        let product = u64::from(num_nodes) * u64::from(ranks_per_node);
        if product > MAX_COUNT as u64 {
            return Err(SpecError::TooManyRanks {
                num_nodes,
                ranks_per_node,
            });
        }
        Ok(product as u32)
    };

    let (ranks_per_node, num_ranks) = match (given_ranks_per_node, given_num_ranks) {
        (None, None) => (1, total(1)?),
        (Some(ranks_per_node), None) => (ranks_per_node, total(ranks_per_node)?),
        (None, Some(num_ranks)) => {
            if num_ranks < num_nodes {
                return Err(SpecError::FewerRanksThanNodes {
                    num_nodes,
                    num_ranks,
                });
            }
            let ranks_per_node = num_ranks.div_ceil(num_nodes);
            if u64::from(num_nodes - 1) * u64::from(ranks_per_node) >= u64::from(num_ranks) {
                return Err(SpecError::UnevenRanks {
                    num_nodes,
                    ranks_per_node,
                    num_ranks,
                });
            }
            (ranks_per_node, num_ranks)
        }
        (Some(ranks_per_node), Some(num_ranks)) => {
            let upper = u64::from(num_nodes) * u64::from(ranks_per_node);
            let lower_exclusive = u64::from(num_nodes - 1) * u64::from(ranks_per_node);
            let ranks = u64::from(num_ranks);
            if !(lower_exclusive < ranks && ranks <= upper) {
                return Err(SpecError::RanksDoNotFit {
                    num_nodes,
                    ranks_per_node,
                    num_ranks,
                });
            }
            (ranks_per_node, num_ranks)
        }
    };

    Ok(TaskResources {
        num_nodes,
        ranks_per_node,
        num_ranks,
        launcher_options,
        priority,
        walltime,
        retries,
        exclusive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(request: ResourceRequest, expected: Result<(u32, u32, u32), &str>) {
        let actual = validate(&request);
        match (actual, expected) {
            (Ok(resources), Ok((nodes, per_node, ranks))) => assert_eq!(
                (
                    resources.num_nodes,
                    resources.ranks_per_node,
                    resources.num_ranks
                ),
                (nodes, per_node, ranks),
                "request {request:?}"
            ),
            (Err(error), Err(fragment)) => assert!(
                error.to_string().contains(fragment),
                "request {request:?}: error {error:?} does not contain {fragment:?}"
            ),
            (actual, expected) => {
                panic!("request {request:?}: got {actual:?}, expected {expected:?}")
            }
        }
    }

    fn req() -> ResourceRequest {
        ResourceRequest::new()
    }

    fn nodes_ranks(num_nodes: i64, num_ranks: i64) -> ResourceRequest {
        req()
            .with("num_nodes", num_nodes)
            .with("num_ranks", num_ranks)
    }

    #[test]
    fn empty_request_is_serial() {
        check(req(), Ok((1, 1, 1)));
        assert_eq!(validate(&req()), Ok(TaskResources::serial()));
    }

    #[test]
    fn nodes_alone_give_one_rank_per_node() {
        check(req().with("num_nodes", 4), Ok((4, 1, 4)));
    }

    #[test]
    fn num_ranks_derived_from_ranks_per_node() {
        check(
            req().with("num_nodes", 2).with("ranks_per_node", 4),
            Ok((2, 4, 8)),
        );
    }

    #[test]
    fn ranks_per_node_derived_by_ceiling() {
        check(nodes_ranks(3, 7), Ok((3, 3, 7)));
        check(nodes_ranks(2, 8), Ok((2, 4, 8)));
        check(req().with("num_ranks", 5), Ok((1, 5, 5)));
    }

    #[test]
    fn both_counts_must_fit() {
        let two_nodes_of_four = |num_ranks: i64| {
            req()
                .with("num_nodes", 2)
                .with("ranks_per_node", 4)
                .with("num_ranks", num_ranks)
        };
        check(two_nodes_of_four(5), Ok((2, 4, 5)));
        check(two_nodes_of_four(8), Ok((2, 4, 8)));
        check(two_nodes_of_four(9), Err("num_ranks must be from 5 to 8"));
        check(two_nodes_of_four(4), Err("num_ranks must be from 5 to 8"));
    }

    #[test]
    fn derived_ranks_per_node_must_leave_no_node_empty() {
        check(
            nodes_ranks(29, 30),
            Err("leaves some nodes without a rank; use a num_ranks from 57 to 58"),
        );
        check(nodes_ranks(4, 14), Ok((4, 4, 14)));
    }

    #[test]
    fn fewer_ranks_than_nodes_is_rejected() {
        check(
            nodes_ranks(4, 2),
            Err("num_ranks = 2 is fewer than num_nodes = 4"),
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        check(
            req().with("num_nodes", 1).with("cores", 2).with("gpus", 1),
            Err("unknown resource specification key(s): cores, gpus"),
        );
    }

    #[test]
    fn counts_must_be_positive_integers() {
        for bad in [
            SpecValue::Int(0),
            SpecValue::Int(-3),
            SpecValue::Float(2.0),
            SpecValue::Text("2".into()),
            SpecValue::Bool(true),
            SpecValue::Null,
            SpecValue::Int(MAX_COUNT + 1),
        ] {
            for key in ["num_nodes", "ranks_per_node", "num_ranks"] {
                let mut request = req();
                request.insert(key, bad.clone());
                check(request, Err(&format!("{key} must be an integer from 1")));
            }
        }
    }

    #[test]
    fn too_many_ranks_is_rejected() {
        check(
            req().with("num_nodes", MAX_COUNT).with("ranks_per_node", 2),
            Err("is larger than"),
        );
    }

    #[test]
    fn launcher_options_and_priority() {
        let resources = validate(
            &req()
                .with("launcher_options", "--cpu-bind=cores")
                .with("priority", -5),
        )
        .expect("valid");
        assert_eq!(
            resources.launcher_options.as_deref(),
            Some("--cpu-bind=cores")
        );
        assert_eq!(resources.priority, Some(-5));
        check(
            req().with("launcher_options", 3),
            Err("launcher_options must be a string"),
        );
        check(
            req().with("priority", "high"),
            Err("priority must be an integer"),
        );
    }

    #[test]
    fn to_request_round_trips() {
        let resources = TaskResources {
            num_nodes: 3,
            ranks_per_node: 4,
            num_ranks: 10,
            launcher_options: Some("-x".into()),
            priority: Some(2),
            walltime: Some(1.5),
            retries: Some(3),
            exclusive: false,
        };
        assert_eq!(validate(&resources.to_request()), Ok(resources));
    }

    #[test]
    fn walltime_retries_exclusive() {
        let resources = validate(
            &req()
                .with("walltime", 30)
                .with("retries", 2)
                .with("exclusive", false),
        )
        .expect("valid");
        assert_eq!(resources.walltime, Some(30.0));
        assert_eq!(resources.retries, Some(2));
        assert!(!resources.exclusive);
        let mut fractional = req();
        fractional.insert("walltime", SpecValue::Float(0.25));
        assert_eq!(validate(&fractional).map(|r| r.walltime), Ok(Some(0.25)));
        let defaults = validate(&req()).expect("valid");
        assert_eq!(
            (defaults.walltime, defaults.retries, defaults.exclusive),
            (None, None, true)
        );
        for bad in [
            SpecValue::Int(0),
            SpecValue::Float(-1.0),
            SpecValue::Float(f64::NAN),
            SpecValue::Text("1h".into()),
            SpecValue::Int(2_000_000_000),
        ] {
            let mut request = req();
            request.insert("walltime", bad);
            check(request, Err("walltime must be a number of seconds"));
        }
        for bad in [
            SpecValue::Int(-1),
            SpecValue::Int(1001),
            SpecValue::Float(1.0),
            SpecValue::Bool(true),
        ] {
            let mut request = req();
            request.insert("retries", bad);
            check(request, Err("retries must be an integer from 0 to 1000"));
        }
        for bad in [
            SpecValue::Int(0),
            SpecValue::Text("no".into()),
            SpecValue::Null,
        ] {
            let mut request = req();
            request.insert("exclusive", bad);
            check(request, Err("exclusive must be true"));
        }
    }

    proptest::proptest! {
        #[test]
        fn validated_counts_always_fit(
            nodes in proptest::option::of(1i64..50),
            per_node in proptest::option::of(1i64..50),
            ranks in proptest::option::of(1i64..3000),
        ) {
            let mut request = req();
            if let Some(value) = nodes { request.insert("num_nodes", value); }
            if let Some(value) = per_node { request.insert("ranks_per_node", value); }
            if let Some(value) = ranks { request.insert("num_ranks", value); }
            if let Ok(resources) = validate(&request) {
                let n = u64::from(resources.num_nodes);
                let p = u64::from(resources.ranks_per_node);
                let r = u64::from(resources.num_ranks);
                proptest::prop_assert!((n - 1) * p < r && r <= n * p);
                proptest::prop_assert!(n >= 1 && p >= 1);
            }
        }
    }
}
