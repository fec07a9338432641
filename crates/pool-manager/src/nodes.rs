//! Node discovery: which nodes belong to this block.
//!
//! A pure [`discover`] that takes the environment, the file reader and the
//! host name as functions and applies the parsers of
//! `pool_manager_core::hostlist` (Slurm host lists, PBS node files), plus
//! [`discover_from_system`], the thin reader that passes the real ones.
//!
//! Discovery order, first that applies:
//! 1. `--nodes a,b,c` (a Slurm host list) or `--nodefile FILE`;
//! 2. `SLURM_JOB_NODELIST`, else `SLURM_NODELIST`;
//! 3. `PBS_NODEFILE` (one host per line, duplicates removed, order kept);
//! 4. this host alone.

use pool_manager_core::hostlist::{expand_hostlist, parse_nodefile, HostlistError, NodefileError};
use protocol::NodeNameError;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the node list came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeSource {
    /// `--nodes`.
    NodesFlag,
    /// `--nodefile FILE`.
    NodefileFlag(PathBuf),
    /// `SLURM_JOB_NODELIST` or `SLURM_NODELIST` (the variable's name).
    Slurm(&'static str),
    /// `PBS_NODEFILE` (the file's path).
    Pbs(PathBuf),
    /// No batch system: this host alone.
    ThisHost,
}

impl fmt::Display for NodeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeSource::NodesFlag => f.write_str("--nodes"),
            NodeSource::NodefileFlag(path) => write!(f, "--nodefile {}", path.display()),
            NodeSource::Slurm(variable) => f.write_str(variable),
            NodeSource::Pbs(path) => write!(f, "PBS_NODEFILE={}", path.display()),
            NodeSource::ThisHost => f.write_str("this host (no --nodes, Slurm or PBS node list)"),
        }
    }
}

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeChoice {
    /// `--nodes LIST` (a Slurm host list).
    List(String),
    /// `--nodefile FILE`.
    File(PathBuf),
    /// Neither: look at the environment.
    Discover,
}

/// The block's nodes and where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nodes {
    pub nodes: Vec<String>,
    pub source: NodeSource,
}

/// Node discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{source_name}: {error}")]
    Hostlist {
        source_name: String,
        error: HostlistError,
    },
    #[error("cannot read node file {}: {error}", path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("node file {}, {error}", path.display())]
    BadNodefileLine { path: PathBuf, error: NodefileError },
    #[error("{source_name}: {error}")]
    BadNodes {
        source_name: String,
        error: NodeNameError,
    },
    #[error("node file {} lists no hosts", path.display())]
    EmptyFile { path: PathBuf },
    #[error("cannot find this host's name: {0}")]
    NoHostname(String),
}

fn read_nodefile(
    path: &Path,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<Vec<String>, NodeError> {
    let text = read_file(path).map_err(|error| NodeError::Unreadable {
        path: path.to_path_buf(),
        error,
    })?;
    let nodes = parse_nodefile(&text).map_err(|error| NodeError::BadNodefileLine {
        path: path.to_path_buf(),
        error,
    })?;
    if nodes.is_empty() {
        return Err(NodeError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(nodes)
}

/// Finds the block's nodes, in the documented order, and checks them by
/// the interchange's own rule (host names, each once). Pure: the
/// environment, the file reader and the host name come in as functions.
pub fn discover(
    choice: &NodeChoice,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
    hostname: &dyn Fn() -> Result<String, String>,
) -> Result<Nodes, NodeError> {
    let found = find_nodes(choice, env, read_file, hostname)?;
    // The count is the interchange's to bound (max_manager_nodes).
    protocol::limits::check_node_names(&found.nodes, usize::MAX).map_err(|error| {
        NodeError::BadNodes {
            source_name: found.source.to_string(),
            error,
        }
    })?;
    Ok(found)
}

fn find_nodes(
    choice: &NodeChoice,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
    hostname: &dyn Fn() -> Result<String, String>,
) -> Result<Nodes, NodeError> {
    let from_list = |list: &str, source: NodeSource| {
        expand_hostlist(list)
            .map(|nodes| Nodes {
                nodes,
                source: source.clone(),
            })
            .map_err(|error| NodeError::Hostlist {
                source_name: source.to_string(),
                error,
            })
    };
    match choice {
        NodeChoice::List(list) => return from_list(list, NodeSource::NodesFlag),
        NodeChoice::File(path) => {
            return Ok(Nodes {
                nodes: read_nodefile(path, read_file)?,
                source: NodeSource::NodefileFlag(path.clone()),
            })
        }
        NodeChoice::Discover => {}
    }
    for variable in ["SLURM_JOB_NODELIST", "SLURM_NODELIST"] {
        if let Some(list) = env(variable).filter(|value| !value.trim().is_empty()) {
            return from_list(&list, NodeSource::Slurm(variable));
        }
    }
    if let Some(path) = env("PBS_NODEFILE").filter(|value| !value.trim().is_empty()) {
        let path = PathBuf::from(path);
        return Ok(Nodes {
            nodes: read_nodefile(&path, read_file)?,
            source: NodeSource::Pbs(path),
        });
    }
    let name = hostname().map_err(NodeError::NoHostname)?;
    Ok(Nodes {
        nodes: vec![name],
        source: NodeSource::ThisHost,
    })
}

/// This host's name, as a string.
pub fn this_hostname() -> Result<String, String> {
    nix::unistd::gethostname()
        .map_err(|error| error.to_string())?
        .into_string()
        .map_err(|raw| format!("host name {raw:?} is not UTF-8"))
}

/// [`discover`] with the real environment, files and host name.
pub fn discover_from_system(choice: &NodeChoice) -> Result<Nodes, NodeError> {
    discover(
        choice,
        &|name| std::env::var(name).ok(),
        &|path| std::fs::read_to_string(path),
        &this_hostname,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct World {
        env: HashMap<&'static str, &'static str>,
        files: HashMap<PathBuf, &'static str>,
    }

    impl World {
        fn new(env: &[(&'static str, &'static str)], files: &[(&str, &'static str)]) -> Self {
            Self {
                env: env.iter().copied().collect(),
                files: files
                    .iter()
                    .map(|(path, text)| (PathBuf::from(path), *text))
                    .collect(),
            }
        }

        fn discover(&self, choice: &NodeChoice) -> Result<Nodes, NodeError> {
            discover(
                choice,
                &|name| self.env.get(name).map(|value| value.to_string()),
                &|path| {
                    self.files
                        .get(path)
                        .map(|text| text.to_string())
                        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
                },
                &|| Ok("lead".to_string()),
            )
        }

        /// The message of the error that discovering `choice` must give.
        fn error_text(&self, choice: &NodeChoice) -> String {
            match self.discover(choice) {
                Ok(found) => panic!("{choice:?} was expected to fail, found {found:?}"),
                Err(error) => error.to_string(),
            }
        }
    }

    fn nodes(found: Result<Nodes, NodeError>) -> (Vec<String>, NodeSource) {
        let found = found.expect("discovery succeeds");
        (found.nodes, found.source)
    }

    #[test]
    fn discovered_nodes_must_be_distinct_host_names() {
        let world = World::new(&[("SLURM_JOB_NODELIST", "a,a")], &[("/bad", "ok\nx;rm\n")]);
        let error = world.error_text(&NodeChoice::Discover);
        assert_eq!(
            error,
            "SLURM_JOB_NODELIST: node name \"a\" is listed more than once; node names must be distinct"
        );
        let error = world.error_text(&NodeChoice::File("/bad".into()));
        assert_eq!(
            error,
            "node file /bad, line 2: node name \"x;rm\" is not a host name: \
             only letters, digits, hyphens and dots are allowed"
        );
        let error = world.error_text(&NodeChoice::List("ok,-x".into()));
        assert!(error.starts_with("--nodes: node name \"-x\""), "{error}");
    }

    #[test]
    fn discovery_order() {
        let everything = World::new(
            &[
                ("SLURM_JOB_NODELIST", "s[1-2]"),
                ("SLURM_NODELIST", "old[1-3]"),
                ("PBS_NODEFILE", "/pbs"),
            ],
            &[("/pbs", "p1\np1\np2\n"), ("/mine", "m1\n")],
        );
        assert_eq!(
            nodes(everything.discover(&NodeChoice::List("f[1-2]".into()))),
            (vec!["f1".into(), "f2".into()], NodeSource::NodesFlag)
        );
        assert_eq!(
            nodes(everything.discover(&NodeChoice::File("/mine".into()))),
            (vec!["m1".into()], NodeSource::NodefileFlag("/mine".into()))
        );
        assert_eq!(
            nodes(everything.discover(&NodeChoice::Discover)),
            (
                vec!["s1".into(), "s2".into()],
                NodeSource::Slurm("SLURM_JOB_NODELIST")
            )
        );
        let old_slurm = World::new(
            &[("SLURM_NODELIST", "old[1-2]"), ("PBS_NODEFILE", "/pbs")],
            &[("/pbs", "p1\n")],
        );
        assert_eq!(
            nodes(old_slurm.discover(&NodeChoice::Discover)).1,
            NodeSource::Slurm("SLURM_NODELIST")
        );
        let pbs = World::new(&[("PBS_NODEFILE", "/pbs")], &[("/pbs", "p1\np1\np2\n")]);
        assert_eq!(
            nodes(pbs.discover(&NodeChoice::Discover)),
            (
                vec!["p1".into(), "p2".into()],
                NodeSource::Pbs("/pbs".into())
            )
        );
        let nothing = World::new(&[], &[]);
        assert_eq!(
            nodes(nothing.discover(&NodeChoice::Discover)),
            (vec!["lead".into()], NodeSource::ThisHost)
        );
    }

    #[test]
    fn discovery_errors_name_the_path_or_variable() {
        let world = World::new(&[("PBS_NODEFILE", "/empty")], &[("/empty", "\n \n")]);
        let error = world.error_text(&NodeChoice::Discover);
        assert_eq!(error, "node file /empty lists no hosts");
        let error = world.error_text(&NodeChoice::File("/missing".into()));
        assert!(
            error.starts_with("cannot read node file /missing:"),
            "{error}"
        );
        let bad_slurm = World::new(&[("SLURM_JOB_NODELIST", "n[4-2]")], &[]);
        let error = bad_slurm.error_text(&NodeChoice::Discover);
        assert!(
            error.starts_with("SLURM_JOB_NODELIST: host list"),
            "{error}"
        );
        let error = world.error_text(&NodeChoice::List("a[1".into()));
        assert!(error.starts_with("--nodes: host list"), "{error}");
    }
}
