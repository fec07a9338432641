//! Durations shown as seconds, the way rhtex's messages and flags write
//! them.

use std::time::Duration;

/// `duration` in seconds: whole seconds without a fraction (`30`), others
/// with as many digits as they need (`0.25`).
pub fn seconds_text(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds.fract() == 0.0 {
        format!("{seconds:.0}")
    } else {
        format!("{seconds}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_have_no_fraction() {
        assert_eq!(seconds_text(Duration::from_secs(30)), "30");
        assert_eq!(seconds_text(Duration::from_millis(250)), "0.25");
        assert_eq!(seconds_text(Duration::ZERO), "0");
    }
}
