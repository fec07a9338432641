//! The shapes both daemon cores share with their shells.
//!
//! A core never reads a clock: its shell reads a monotonic clock and hands
//! the core a [`Time`], milliseconds since the shell started it. Tests and
//! the simulator hand it virtual time instead. This crate depends on
//! nothing, so it can sit under every pure core.

use std::time::Duration;

mod seconds;
pub use seconds::seconds_text;

/// A point on the shell's monotonic clock, in milliseconds since the core
/// was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    /// The moment the core was created.
    pub const ZERO: Time = Time(0);

    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This time plus `duration` (saturating).
    pub fn plus(self, duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// How long from `self` until `later` (zero if `later` is earlier).
    pub fn until(self, later: Time) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }

    /// How long from `earlier` until `self` (zero if `earlier` is later).
    pub fn since(self, earlier: Time) -> Duration {
        earlier.until(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let start = Time::from_millis(1_000);
        assert_eq!(start.plus(Duration::from_millis(500)).as_millis(), 1_500);
        assert_eq!(
            Time::from_millis(u64::MAX)
                .plus(Duration::from_secs(1))
                .as_millis(),
            u64::MAX
        );
        assert_eq!(start.until(Time::ZERO), Duration::ZERO);
        assert_eq!(
            Time::from_millis(1_500).since(start),
            Duration::from_millis(500)
        );
    }
}
