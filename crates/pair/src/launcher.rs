//! The fake launcher's rule: how long each launched task runs and how it
//! ends, decided by a function of the [`Launch`] the manager core asked
//! for. The [`Pair`](crate::Pair) keeps the contract a real launcher keeps:
//! every launch ends in exactly one exit, and a killed task exits at once
//! with `SIGTERM`.

use pool_manager_core::{ExitStatus, Launch};
use std::time::Duration;

/// How a fake task ends: after how long, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FakeRun {
    pub duration: Duration,
    pub status: ExitStatus,
}

impl FakeRun {
    /// Exits with code 0 after `duration`.
    pub const fn succeeds_after(duration: Duration) -> Self {
        Self {
            duration,
            status: ExitStatus::Code(0),
        }
    }
}

impl Default for FakeRun {
    /// Exits with code 0 at once.
    fn default() -> Self {
        Self::succeeds_after(Duration::ZERO)
    }
}

/// Decides how each launched task runs.
pub type LaunchPlan = Box<dyn FnMut(&Launch) -> FakeRun>;

/// Every task exits with code 0 at once.
pub fn instant_launcher() -> LaunchPlan {
    Box::new(|_| FakeRun::default())
}

/// Runs `sleep <seconds>` for that long (to the millisecond) and exits 0;
/// any other command exits 0 at once. With it a workload carries its
/// durations in the tasks' commands.
pub fn sleep_launcher() -> LaunchPlan {
    Box::new(|launch| FakeRun::succeeds_after(sleep_duration(&launch.command).unwrap_or_default()))
}

/// The command [`sleep_launcher`] runs for `duration` (whole milliseconds).
pub fn sleep_command(duration: Duration) -> String {
    format!("sleep {}", duration.as_millis() as f64 / 1000.0)
}

/// How long `sleep <seconds>` runs, rounded to the millisecond; `None` for
/// any other command.
pub fn sleep_duration(command: &str) -> Option<Duration> {
    let seconds: f64 = command.strip_prefix("sleep ")?.trim().parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_millis((seconds * 1000.0).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_commands_round_trip_to_the_millisecond() {
        for millis in [0, 1, 999, 12_345, 300_000, 86_400_001] {
            let duration = Duration::from_millis(millis);
            assert_eq!(sleep_duration(&sleep_command(duration)), Some(duration));
        }
        assert_eq!(sleep_duration("true"), None);
        assert_eq!(sleep_duration("sleep -1"), None);
        assert_eq!(sleep_duration("sleep x"), None);
    }
}
