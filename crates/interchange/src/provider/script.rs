//! Batch scripts from the templates in `deploy/slurm/` and `deploy/pbs/`:
//! a pure renderer (no I/O), so that the scripts can be checked line by
//! line in unit tests.
//!
//! A placeholder is an upper-case name in double braces. The rules:
//! - In a line that starts with `#` (a batch directive or a comment), a
//!   value goes in as it is; it must be one word (no white space), since
//!   batch systems split directives at spaces.
//! - In any other line (shell code), a value goes in single-quoted for the
//!   shell, so that paths and URLs are taken literally.
//! - A line holding a placeholder without a value (an optional setting that
//!   is not set, such as the account) is left out.
//! - `SCHEDULER_OPTIONS` and `WORKER_INIT` stand alone on their line and
//!   become zero or more lines, as given.
//!
//! The placeholders are listed in [`Placeholder`] and in deploy/README.md.

use std::collections::HashMap;

/// Every placeholder the templates may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// The block id the pool-manager registers with (also the job name).
    BlockId,
    /// Nodes in the block.
    Nodes,
    /// `HH:MM:SS`; optional.
    Walltime,
    /// Slurm partition; optional.
    Partition,
    /// PBS queue (the same setting as the partition); optional.
    Queue,
    /// Account or project to charge; optional.
    Account,
    /// The file the job's output goes to.
    Output,
    /// Extra directive lines.
    SchedulerOptions,
    /// Shell lines run before the pool-manager.
    WorkerInit,
    /// The interchange's manager URL as blocks reach it.
    Interchange,
    /// The key directory; empty for `--insecure`.
    KeysDir,
    /// The pool-manager's run directory (task output).
    RunDir,
    /// The pool-manager program.
    PoolManager,
    /// `mpiexec`, `srun` or `aprun`.
    Launcher,
    /// Seconds, as the interchange's own settings.
    HeartbeatPeriod,
    HeartbeatThreshold,
}

impl Placeholder {
    pub const ALL: [Placeholder; 16] = [
        Placeholder::BlockId,
        Placeholder::Nodes,
        Placeholder::Walltime,
        Placeholder::Partition,
        Placeholder::Queue,
        Placeholder::Account,
        Placeholder::Output,
        Placeholder::SchedulerOptions,
        Placeholder::WorkerInit,
        Placeholder::Interchange,
        Placeholder::KeysDir,
        Placeholder::RunDir,
        Placeholder::PoolManager,
        Placeholder::Launcher,
        Placeholder::HeartbeatPeriod,
        Placeholder::HeartbeatThreshold,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::BlockId => "BLOCK_ID",
            Placeholder::Nodes => "NODES",
            Placeholder::Walltime => "WALLTIME",
            Placeholder::Partition => "PARTITION",
            Placeholder::Queue => "QUEUE",
            Placeholder::Account => "ACCOUNT",
            Placeholder::Output => "OUTPUT",
            Placeholder::SchedulerOptions => "SCHEDULER_OPTIONS",
            Placeholder::WorkerInit => "WORKER_INIT",
            Placeholder::Interchange => "INTERCHANGE",
            Placeholder::KeysDir => "KEYS_DIR",
            Placeholder::RunDir => "RUN_DIR",
            Placeholder::PoolManager => "POOL_MANAGER",
            Placeholder::Launcher => "LAUNCHER",
            Placeholder::HeartbeatPeriod => "HEARTBEAT_PERIOD",
            Placeholder::HeartbeatThreshold => "HEARTBEAT_THRESHOLD",
        }
    }

    fn is_lines(self) -> bool {
        matches!(
            self,
            Placeholder::SchedulerOptions | Placeholder::WorkerInit
        )
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|placeholder| placeholder.name() == name)
    }
}

/// The values for one block's script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptValues {
    pub block_id: String,
    pub nodes: u32,
    pub walltime: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub output: String,
    pub scheduler_options: Vec<String>,
    pub worker_init: String,
    pub interchange: String,
    /// `None`: `--insecure`.
    pub keys_dir: Option<String>,
    pub run_dir: String,
    pub pool_manager: String,
    pub launcher: String,
    pub heartbeat_period: String,
    pub heartbeat_threshold: String,
}

/// A template that cannot be rendered with these values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("template line {line}: unknown placeholder {name:?}")]
    Unknown { line: usize, name: String },
    #[error("template line {line}: a placeholder is not closed with }}}}")]
    Unclosed { line: usize },
    #[error("template line {line}: {name} must stand alone on its line")]
    NotAlone { line: usize, name: &'static str },
    #[error(
        "template line {line}: the value of {name} ({value:?}) has white space or a line break, \
         which a batch directive cannot hold"
    )]
    NotOneWord {
        line: usize,
        name: &'static str,
        value: String,
    },
}

enum Value {
    Word(Option<String>),
    Lines(Vec<String>),
}

impl ScriptValues {
    fn lookup(&self) -> HashMap<Placeholder, Value> {
        let word = |text: &str| Value::Word(Some(text.to_owned()));
        let optional = |text: &Option<String>| Value::Word(text.clone());
        HashMap::from([
            (Placeholder::BlockId, word(&self.block_id)),
            (Placeholder::Nodes, word(&self.nodes.to_string())),
            (Placeholder::Walltime, optional(&self.walltime)),
            (Placeholder::Partition, optional(&self.partition)),
            (Placeholder::Queue, optional(&self.partition)),
            (Placeholder::Account, optional(&self.account)),
            (Placeholder::Output, word(&self.output)),
            (
                Placeholder::SchedulerOptions,
                Value::Lines(self.scheduler_options.clone()),
            ),
            (
                Placeholder::WorkerInit,
                Value::Lines(self.worker_init.lines().map(str::to_owned).collect()),
            ),
            (Placeholder::Interchange, word(&self.interchange)),
            (
                Placeholder::KeysDir,
                word(self.keys_dir.as_deref().unwrap_or("")),
            ),
            (Placeholder::RunDir, word(&self.run_dir)),
            (Placeholder::PoolManager, word(&self.pool_manager)),
            (Placeholder::Launcher, word(&self.launcher)),
            (Placeholder::HeartbeatPeriod, word(&self.heartbeat_period)),
            (
                Placeholder::HeartbeatThreshold,
                word(&self.heartbeat_threshold),
            ),
        ])
    }
}

/// Quotes `text` for the shell: single quotes, with `'` written as `'\''`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The placeholders of one line, in order, as (start, end, placeholder);
/// `start..end` covers the braces.
fn placeholders(
    number: usize,
    line: &str,
) -> Result<Vec<(usize, usize, Placeholder)>, ScriptError> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = line[from..].find("{{") {
        let start = from + offset;
        let Some(length) = line[start + 2..].find("}}") else {
            return Err(ScriptError::Unclosed { line: number });
        };
        let name = &line[start + 2..start + 2 + length];
        let placeholder = Placeholder::from_name(name).ok_or_else(|| ScriptError::Unknown {
            line: number,
            name: name.to_owned(),
        })?;
        let end = start + 2 + length + 2;
        found.push((start, end, placeholder));
        from = end;
    }
    Ok(found)
}

/// The placeholders a template uses (to check a template before use).
pub fn used_placeholders(template: &str) -> Result<Vec<Placeholder>, ScriptError> {
    let mut used = Vec::new();
    for (index, line) in template.lines().enumerate() {
        for (_, _, placeholder) in placeholders(index + 1, line)? {
            if !used.contains(&placeholder) {
                used.push(placeholder);
            }
        }
    }
    Ok(used)
}

/// Renders `template` with `values`, by the rules in the module
/// documentation.
pub fn render(template: &str, values: &ScriptValues) -> Result<String, ScriptError> {
    let lookup = values.lookup();
    let mut script = String::with_capacity(template.len() + 256);
    for (index, line) in template.lines().enumerate() {
        let number = index + 1;
        let found = placeholders(number, line)?;
        if found.is_empty() {
            script.push_str(line);
            script.push('\n');
            continue;
        }
        if let Some((_, _, placeholder)) = found.iter().find(|(_, _, p)| p.is_lines()) {
            if found.len() != 1 || line.trim() != format!("{{{{{}}}}}", placeholder.name()) {
                return Err(ScriptError::NotAlone {
                    line: number,
                    name: placeholder.name(),
                });
            }
            if let Some(Value::Lines(lines)) = lookup.get(placeholder) {
                for text in lines {
                    script.push_str(text);
                    script.push('\n');
                }
            }
            continue;
        }
        let directive = line.trim_start().starts_with('#');
        let mut rendered = String::with_capacity(line.len() + 64);
        let mut from = 0;
        let mut complete = true;
        for (start, end, placeholder) in found {
            rendered.push_str(&line[from..start]);
            from = end;
            let Some(Value::Word(Some(value))) = lookup.get(&placeholder) else {
                complete = false;
                break;
            };
            if directive {
                if value.is_empty() || value.chars().any(char::is_whitespace) {
                    return Err(ScriptError::NotOneWord {
                        line: number,
                        name: placeholder.name(),
                        value: value.clone(),
                    });
                }
                rendered.push_str(value);
            } else {
                rendered.push_str(&shell_quote(value));
            }
        }
        if complete {
            rendered.push_str(&line[from..]);
            script.push_str(&rendered);
            script.push('\n');
        }
    }
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> ScriptValues {
        ScriptValues {
            block_id: "rhtex-x-1".to_owned(),
            nodes: 4,
            walltime: Some("01:00:00".to_owned()),
            partition: None,
            account: Some("proj42".to_owned()),
            output: "/runs/blocks/rhtex-x-1.out".to_owned(),
            scheduler_options: vec![
                "#SBATCH --mem=0".to_owned(),
                "#SBATCH --gres=gpu:1".to_owned(),
            ],
            worker_init: "module load mpich\nexport A='b c'".to_owned(),
            interchange: "tcp://gw:5".to_owned(),
            keys_dir: Some("/home/o'brien/keys".to_owned()),
            run_dir: "/runs/blocks/rhtex-x-1".to_owned(),
            pool_manager: "/opt/rhtex/pool-manager".to_owned(),
            launcher: "srun".to_owned(),
            heartbeat_period: "30".to_owned(),
            heartbeat_threshold: "120".to_owned(),
        }
    }

    #[test]
    fn directives_take_words_shell_lines_take_quoted_values_and_unset_lines_go() {
        let template = "#!/bin/bash\n#SBATCH --nodes={{NODES}}\n#SBATCH --partition={{PARTITION}}\n\
                        #SBATCH --account={{ACCOUNT}}\n{{SCHEDULER_OPTIONS}}\nset -e\n\
                        KEYS={{KEYS_DIR}}\n{{WORKER_INIT}}\nexec {{POOL_MANAGER}} --block-id {{BLOCK_ID}}\n";
        let script = render(template, &values()).expect("renders");
        assert_eq!(
            script,
            "#!/bin/bash\n#SBATCH --nodes=4\n#SBATCH --account=proj42\n#SBATCH --mem=0\n\
             #SBATCH --gres=gpu:1\nset -e\nKEYS='/home/o'\\''brien/keys'\nmodule load mpich\n\
             export A='b c'\nexec '/opt/rhtex/pool-manager' --block-id 'rhtex-x-1'\n"
        );
    }

    #[test]
    fn bad_templates_and_values_are_named() {
        let cases: &[(&str, &str)] = &[
            ("#SBATCH --x={{NOPE}}\n", "unknown placeholder \"NOPE\""),
            ("#SBATCH --x={{NODES\n", "not closed"),
            ("echo {{WORKER_INIT}}\n", "WORKER_INIT must stand alone"),
            ("#SBATCH --output={{OUTPUT}}\n", "OUTPUT"),
        ];
        let mut spaced = values();
        spaced.output = "/my runs/x.out".to_owned();
        for (template, fragment) in cases {
            match render(template, &spaced) {
                Ok(script) => panic!("{template:?} rendered: {script}"),
                Err(error) => assert!(
                    error.to_string().contains(fragment),
                    "{template:?}: {error}"
                ),
            }
        }
    }

    #[test]
    fn the_shipped_templates_use_only_known_placeholders_and_render() {
        for (name, template) in [
            ("slurm", super::super::SLURM_TEMPLATE),
            ("pbs", super::super::PBS_TEMPLATE),
        ] {
            let used =
                used_placeholders(template).unwrap_or_else(|error| panic!("{name}: {error}"));
            for needed in [
                Placeholder::BlockId,
                Placeholder::Nodes,
                Placeholder::Output,
                Placeholder::Interchange,
                Placeholder::KeysDir,
                Placeholder::PoolManager,
                Placeholder::WorkerInit,
                Placeholder::SchedulerOptions,
            ] {
                assert!(
                    used.contains(&needed),
                    "{name} template lacks {}",
                    needed.name()
                );
            }
            let script =
                render(template, &values()).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert!(!script.contains("{{"), "{name}: {script}");
            assert!(script.starts_with("#!/bin/bash\n"), "{name}: {script}");
        }
    }
}
