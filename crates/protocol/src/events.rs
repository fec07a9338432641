//! The interchange's event log: one JSON object per line in
//! `<run-dir>/events.jsonl` (`proto/EVENTS.md` is its normative
//! description). The interchange core emits [`Event`]s with the wall time
//! of the input that caused them; the daemon writes each as an
//! [`EventRecord`]; `rhtex report` reads them back.
//!
//! Times are RFC 3339 in UTC with milliseconds (`2026-12-05T21:03:04.123Z`):
//! [`rfc3339_millis`] writes them and [`parse_rfc3339`] reads them (any
//! offset, any number of fraction digits), with no date library.

use crate::ids::{ManagerId, TaskId};
use crate::messages::{BlockState, ErrorKind, TaskState, UnixTime};
use serde::{Deserialize, Serialize};

/// One line of the event log: when, and what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
}

impl EventRecord {
    /// The record of `event` at `unix` seconds since the epoch.
    pub fn new(unix: UnixTime, event: Event) -> Self {
        Self {
            time: rfc3339_millis(unix),
            event,
        }
    }

    /// One JSON line (without its newline).
    pub fn to_json_line(&self) -> String {
        // A record holds strings, numbers and lists only: it always encodes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Appends the line of `event` at `time` (RFC 3339, as
    /// [`rfc3339_millis`] writes it), with its newline, to `out`: the bytes
    /// of `EventRecord { time, event }.to_json_line()` and `\n`, without
    /// building the record (the interchange writes one line per event and
    /// formats a time once for the events of one input).
    pub fn write_json_line(out: &mut Vec<u8>, time: &str, event: &Event) {
        /// [`EventRecord`], borrowed.
        #[derive(Serialize)]
        struct Borrowed<'a> {
            time: &'a str,
            #[serde(flatten)]
            event: &'a Event,
        }
        let start = out.len();
        // A record holds strings, numbers and lists only: it always
        // encodes (as in `to_json_line`, a failure would leave no line).
        if serde_json::to_writer(&mut *out, &Borrowed { time, event }).is_err() {
            out.truncate(start);
        }
        out.push(b'\n');
    }

    /// Reads one JSON line.
    pub fn from_json_line(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// The record's time in seconds since the epoch, if it parses.
    pub fn unix(&self) -> Option<UnixTime> {
        parse_rfc3339(&self.time)
    }
}

/// What happened. Serialized with an `event` field naming the variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A client submitted the task (accepted or not: a refused task is
    /// `task_finished` at once).
    TaskSubmitted {
        task_id: TaskId,
        /// The nodes it asks for; absent if its specification was invalid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        num_nodes: Option<u32>,
    },
    /// The task was sent to a manager, to run on these nodes.
    TaskStarted {
        task_id: TaskId,
        manager_id: ManagerId,
        block_id: String,
        nodes: Vec<String>,
        /// 1 for its first run, 2 for its first retry...
        attempt: u32,
    },
    /// The task has its final result.
    TaskFinished {
        task_id: TaskId,
        state: TaskState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_kind: Option<ErrorKind>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        manager_id: Option<ManagerId>,
    },
    /// The task's manager was lost (or its dispatch not delivered): it is
    /// queued again in its old place.
    TaskRetried {
        task_id: TaskId,
        manager_id: ManagerId,
    },
    /// A client asked to cancel the task (a queued one is finished as
    /// cancelled at once; a running one when its manager has killed it).
    TaskCancelled { task_id: TaskId },
    /// A pool-manager registered with these nodes.
    ManagerRegistered {
        manager_id: ManagerId,
        block_id: String,
        hostname: String,
        nodes: Vec<String>,
    },
    /// A manager was dropped without saying goodbye (silent, or stopped at
    /// shutdown); its tasks were retried or failed.
    ManagerLost {
        manager_id: ManagerId,
        block_id: String,
        reason: String,
    },
    /// A manager was held (`held: true`) or released (`held: false`).
    ManagerHeld { manager_id: ManagerId, held: bool },
    /// A manager was told to take no new tasks and exit once idle.
    ManagerDrained { manager_id: ManagerId },
    /// A manager said goodbye and left.
    ManagerGone {
        manager_id: ManagerId,
        block_id: String,
        reason: String,
    },
    /// The provider submitted a block (a batch job).
    BlockSubmitted {
        block_id: String,
        job_id: String,
        n_nodes: u32,
    },
    /// The batch system runs the block (or its manager registered first).
    BlockRunning { block_id: String, job_id: String },
    /// The block's job ended (`state` is `ended` or `failed`).
    BlockEnded {
        block_id: String,
        job_id: String,
        state: BlockState,
    },
}

/// `unix` seconds since the epoch as RFC 3339 in UTC with milliseconds.
pub fn rfc3339_millis(unix: UnixTime) -> String {
    let millis_total = if unix.is_finite() {
        (unix * 1000.0).round() as i64
    } else {
        0
    };
    let (seconds_total, millis) = (millis_total.div_euclid(1000), millis_total.rem_euclid(1000));
    let (days, second_of_day) = (
        seconds_total.div_euclid(86_400),
        seconds_total.rem_euclid(86_400),
    );
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    );
    if !(0..=9999).contains(&year) {
        return format!(
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z"
        );
    }
    // The digits placed by hand: this runs once per event and per task
    // line, and `format!` costs several times as much.
    let mut text = *b"0000-00-00T00:00:00.000Z";
    for (at, width, value) in [
        (0, 4, year),
        (5, 2, month),
        (8, 2, day),
        (11, 2, hour),
        (14, 2, minute),
        (17, 2, second),
        (20, 3, millis),
    ] {
        let mut value = value;
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Seconds since the epoch of an RFC 3339 time (`Z` or `±hh:mm`, any
/// fraction); `None` if it is not one.
pub fn parse_rfc3339(text: &str) -> Option<UnixTime> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut fraction = 0.0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        fraction = format!("0.{}", &after_dot[..digits]).parse().ok()?;
        rest = &after_dot[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds as f64 + fraction)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month, day) of a day since 1970-01-01 in the proleptic
/// Gregorian calendar (the inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_format_writes_them() {
        let formatted = |unix: UnixTime| {
            let millis_total = (unix * 1000.0).round() as i64;
            let seconds_total = millis_total.div_euclid(1000);
            let (year, month, day) = civil_from_days(seconds_total.div_euclid(86_400));
            let second_of_day = seconds_total.rem_euclid(86_400);
            format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
                second_of_day / 3600,
                second_of_day / 60 % 60,
                second_of_day % 60,
                millis_total.rem_euclid(1000)
            )
        };
        let mut unix = -62_167_219_200.0; // 0000-01-01
        while unix < 253_402_300_800.0 {
            // 10000-01-01
            assert_eq!(rfc3339_millis(unix), formatted(unix), "{unix}");
            unix += 7_777_777.777;
        }
        for unix in [-62_167_219_201.0, 253_402_300_800.0, 1e15] {
            assert_eq!(rfc3339_millis(unix), formatted(unix), "{unix}");
        }
    }

    #[test]
    fn a_line_written_in_place_is_the_records_line() {
        let events = [
            Event::TaskSubmitted {
                task_id: TaskId::from_u128(1),
                num_nodes: Some(2),
            },
            Event::TaskStarted {
                task_id: TaskId::from_u128(1),
                manager_id: ManagerId::from_u128(7),
                block_id: "b\"0".to_owned(),
                nodes: vec!["n0".to_owned(), "n1".to_owned()],
                attempt: 1,
            },
            Event::TaskFinished {
                task_id: TaskId::from_u128(1),
                state: TaskState::Failed,
                exit_code: Some(3),
                error_kind: Some(ErrorKind::ExitCode),
                manager_id: None,
            },
            Event::ManagerHeld {
                manager_id: ManagerId::from_u128(7),
                held: true,
            },
        ];
        for event in events {
            let time = rfc3339_millis(1_765_000_000.25);
            let mut line = Vec::new();
            EventRecord::write_json_line(&mut line, &time, &event);
            let expected = format!(
                "{}\n",
                EventRecord::new(1_765_000_000.25, event).to_json_line()
            );
            assert_eq!(String::from_utf8(line).expect("utf-8"), expected);
        }
    }

    #[test]
    fn times_are_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339_millis(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400.5), "2000-02-29T00:00:00.500Z");
        assert_eq!(
            rfc3339_millis(1_796_511_784.123_4),
            "2026-12-05T23:03:04.123Z"
        );
        assert_eq!(rfc3339_millis(-1.0), "1969-12-31T23:59:59.000Z");
    }

    #[test]
    fn times_parse_back() {
        for unix in [0.0, 951_782_400.5, 1_796_511_784.123, 4_102_444_799.999] {
            let parsed = parse_rfc3339(&rfc3339_millis(unix)).expect("parses");
            assert!((parsed - unix).abs() < 1e-6, "{unix} became {parsed}");
        }
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.25Z"), Some(1.25));
        for bad in [
            "",
            "1970-01-01",
            "1970-13-01T00:00:00Z",
            "1970-01-01T00:00:00",
            "x970-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_record_is_one_flat_json_object() {
        let task_id = TaskId::new_random();
        let record = EventRecord::new(
            1.5,
            Event::TaskFinished {
                task_id,
                state: TaskState::Completed,
                exit_code: Some(0),
                error_kind: None,
                manager_id: None,
            },
        );
        let line = record.to_json_line();
        assert_eq!(
            line,
            format!(
                r#"{{"time":"1970-01-01T00:00:01.500Z","event":"task_finished","task_id":"{task_id}","state":"completed","exit_code":0}}"#
            )
        );
        assert_eq!(EventRecord::from_json_line(&line).expect("parses"), record);
        assert_eq!(record.unix(), Some(1.5));
    }
}
