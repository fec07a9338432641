//! Readers of `/proc`: CPU time, resident memory and process trees.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`,
/// else the Linux default of 100).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

fn proc_file(pid: u32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{name}"))
}

fn read(pid: u32, name: &str) -> Result<String> {
    let path = proc_file(pid, name);
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// The fields of `/proc/PID/stat` after the command name, so that field 3
/// (state) is at index 0.
fn stat_fields(pid: u32) -> Result<Vec<String>> {
    let text = read(pid, "stat")?;
    let Some((_, rest)) = text.rsplit_once(')') else {
        bail!("/proc/{pid}/stat has no command name");
    };
    Ok(rest.split_whitespace().map(str::to_owned).collect())
}

/// User plus system CPU seconds the process has used (its threads
/// included, its children not).
pub fn cpu_seconds(pid: u32, ticks: f64) -> Result<f64> {
    let fields = stat_fields(pid)?;
    // utime and stime are fields 14 and 15, so indices 11 and 12 here.
    let tick = |index: usize| -> Result<f64> {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .with_context(|| format!("/proc/{pid}/stat has no field {}", index + 3))
    };
    Ok((tick(11)? + tick(12)?) / ticks)
}

/// The parent pid, from `/proc/PID/stat`.
pub fn parent(pid: u32) -> Result<u32> {
    let fields = stat_fields(pid)?;
    fields
        .get(1)
        .and_then(|field| field.parse().ok())
        .with_context(|| format!("/proc/{pid}/stat has no parent pid"))
}

/// A `kB` field of `/proc/PID/status` (VmRSS, VmHWM...), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    kib_field(&read(pid, "status")?, field)
        .with_context(|| format!("/proc/{pid}/status has no {field}"))
}

/// Proportional set size (shared pages divided among their users), in KiB.
pub fn pss_kib(pid: u32) -> Result<u64> {
    kib_field(&read(pid, "smaps_rollup")?, "Pss")
        .with_context(|| format!("/proc/{pid}/smaps_rollup has no Pss"))
}

fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The short command name (`comm`).
pub fn comm(pid: u32) -> Result<String> {
    Ok(read(pid, "comm")?.trim().to_owned())
}

/// Every live process's pid.
fn all_pids() -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").context("cannot list /proc")? {
        let Ok(entry) = entry else { continue };
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Every descendant of `root` (children, grandchildren...), not `root`.
pub fn descendants(root: u32) -> Result<Vec<u32>> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for pid in all_pids()? {
        // A process can end between the listing and the read: skip it.
        if let Ok(parent) = parent(pid) {
            parents.push((pid, parent));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(current) = frontier.pop() {
        for (pid, parent) in &parents {
            if *parent == current {
                found.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    Ok(found)
}

/// A process's memory at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub pss_kib: u64,
    pub hwm_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Result<Self> {
        Ok(Self {
            rss_kib: status_kib(pid, "VmRSS")?,
            pss_kib: pss_kib(pid)?,
            hwm_kib: status_kib(pid, "VmHWM")?,
        })
    }

    pub fn plus(self, other: Memory) -> Memory {
        Memory {
            rss_kib: self.rss_kib + other.rss_kib,
            pss_kib: self.pss_kib + other.pss_kib,
            hwm_kib: self.hwm_kib + other.hwm_kib,
        }
    }
}

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid, clock_ticks()).is_ok());
        let memory = Memory::of(pid).expect("memory of this process");
        assert!(memory.rss_kib > 0);
        assert!(memory.hwm_kib >= memory.rss_kib);
        assert_eq!(parent(pid).ok(), Some(std::os::unix::process::parent_id()));
    }

    #[test]
    fn kib_fields_parse() {
        let text = "Name:\tx\nVmHWM:\t  1234 kB\nVmRSS:\t  1000 kB\n";
        assert_eq!(kib_field(text, "VmHWM"), Some(1234));
        assert_eq!(kib_field(text, "VmRSS"), Some(1000));
        assert_eq!(kib_field(text, "VmSwap"), None);
    }
}
