//! The benchmark scenarios, each a function from settings to a JSON report
//! (also printed as a table).

pub mod codec;
pub mod durability;
pub mod interchange;
pub mod memory;
pub mod scale;

use crate::{daemons, report};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Settings every scenario shares.
#[derive(Clone, Debug)]
pub struct Common {
    /// Where the `interchange` and `pool-manager` binaries are.
    pub bin_dir: PathBuf,
    /// CURVE on (the default) or off.
    pub curve: bool,
    /// Where the JSON results go.
    pub out_dir: PathBuf,
    /// Keep the temporary directory (logs) after the run.
    pub keep: bool,
    /// Flags every interchange of the scenario gets (`--no-journal`).
    pub interchange_args: Vec<String>,
}

impl Common {
    /// An interchange named `name` in `workspace` on the run directory
    /// `<name>-run`, with its keys and the scenario's flags (see
    /// [`daemons::start_interchange`]).
    pub fn start_interchange(
        &self,
        workspace: &Workspace,
        name: &str,
    ) -> Result<daemons::Interchange> {
        daemons::start_interchange(
            &self.bin_dir,
            workspace.path(),
            name,
            &workspace.path().join(format!("{name}-run")),
            workspace.keys.as_deref(),
            &self.interchange_args,
        )
    }

    /// The report of the scenario `benchmark`: its name, the machine and
    /// whether CURVE was on, then `fields` (an object). Writes it to
    /// `<out_dir>/<file>` and finishes `workspace`.
    pub fn finish(
        &self,
        workspace: Workspace,
        benchmark: &str,
        file: &str,
        fields: Value,
    ) -> Result<Value> {
        let mut report = json!({
            "benchmark": benchmark,
            "machine": report::machine(),
            "curve": self.curve,
        });
        if let (Some(report), Value::Object(fields)) = (report.as_object_mut(), fields) {
            report.extend(fields);
        }
        report::write_json(&self.out_dir, file, &report)?;
        workspace.finish(self.keep);
        Ok(report)
    }
}

/// A temporary directory for one scenario, with a key directory when CURVE
/// is on.
#[derive(Debug)]
pub struct Workspace {
    dir: tempfile::TempDir,
    pub keys: Option<PathBuf>,
}

impl Workspace {
    pub fn new(name: &str, common: &Common) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rhtex-bench-{name}-"))
            .tempdir()
            .context("cannot create a temporary directory")?;
        let keys = if common.curve {
            let keys = dir.path().join("keys");
            transport::keygen(&keys).context("cannot generate CURVE keys")?;
            Some(keys)
        } else {
            None
        };
        Ok(Self { dir, keys })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the directory on disk (for its logs) and says where it is.
    pub fn finish(self, keep: bool) {
        if keep {
            let path = self.dir.keep();
            eprintln!("rhtex-bench: logs kept in {}", path.display());
        }
    }
}
