//! Cron expressions and time zones: the one place that does calendar arithmetic.
//!
//! Parsing and matching are croner's (POSIX/Vixie semantics: five fields; lists, ranges, steps;
//! month and weekday names; day of week 0 or 7 = Sunday; when both day of month and day of
//! week are restricted, either matches); zones are chrono-tz's IANA database. Seconds and year
//! fields are refused: a schedule fires at most once a minute.
//!
//! **Invariant:** `next_after(t)` is strictly after `t`, so a schedule that fires at `t` and
//! asks for its next time never fires twice for one slot.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};

use crate::clock::Micros;

/// A parsed cron expression in a time zone (UTC when none was given).
#[derive(Debug, Clone)]
pub struct CronSpec {
    cron: croner::Cron,
    tz: Tz,
}

const FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build()
}

impl CronSpec {
    /// Parses `expr` (five fields) and `timezone` (an IANA name such as `Europe/Zurich`). The
    /// error names the bad field or the unknown zone.
    pub fn parse(expr: &str, timezone: Option<&str>) -> Result<CronSpec, CronError> {
        let tz = parse_timezone(timezone)?;
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 && !expr.trim_start().starts_with('@') {
            return Err(CronError::Expression(format!(
                "`{}` has {} field(s); a cron expression has five: minute hour day-of-month month day-of-week",
                crate::text::clip(expr),
                fields.len()
            )));
        }
        match parser().parse(expr) {
            Ok(cron) => Ok(CronSpec { cron, tz }),
            Err(e) => Err(CronError::Expression(
                blame_field(&fields).unwrap_or_else(|| format!("`{}`: {e}", crate::text::clip(expr))),
            )),
        }
    }

    /// The first fire time strictly after `after`, if any within croner's search horizon.
    pub fn next_after(&self, after: Micros) -> Option<Micros> {
        let start = Utc.timestamp_micros(after).single()?.with_timezone(&self.tz);
        let next: DateTime<Tz> = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(next.with_timezone(&Utc).timestamp_micros())
    }

    /// The next `count` fire times after `after`.
    pub fn upcoming(&self, after: Micros, count: usize) -> Vec<Micros> {
        let mut times = Vec::with_capacity(count);
        let mut at = after;
        while times.len() < count {
            match self.next_after(at) {
                Some(next) => {
                    times.push(next);
                    at = next;
                }
                None => break,
            }
        }
        times
    }
}

/// Finds the first field that fails on its own (the others set to `*`), for a message that
/// points at it.
fn blame_field(fields: &[&str]) -> Option<String> {
    if fields.len() != 5 {
        return None;
    }
    for (i, field) in fields.iter().enumerate() {
        let probe: Vec<&str> = (0..5).map(|j| if j == i { *field } else { "*" }).collect();
        if let Err(e) = parser().parse(&probe.join(" ")) {
            return Some(format!("field {} ({}) `{}`: {e}", i + 1, FIELDS[i], crate::text::clip(field)));
        }
    }
    None
}

/// `None` is UTC; otherwise an IANA zone name.
pub fn parse_timezone(name: Option<&str>) -> Result<Tz, CronError> {
    match name {
        None => Ok(Tz::UTC),
        Some(name) => Tz::from_str(name).map_err(|_| {
            CronError::TimeZone(format!(
                "unknown time zone `{}`; use an IANA name such as `Europe/Zurich` or `UTC`",
                crate::text::clip(name)
            ))
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("invalid cron expression: {0}")]
    Expression(String),
    #[error("{0}")]
    TimeZone(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::rfc3339_seconds;

    fn at(text: &str) -> Micros {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp_micros()
    }

    fn next(expr: &str, after: &str) -> String {
        rfc3339_seconds(CronSpec::parse(expr, None).unwrap().next_after(at(after)).unwrap())
    }

    const EPOCH: &str = "1970-01-01T00:00:00+00:00";

    /// lovely.remotetask's cron tables (its `timeOfNextCall`), translated to standard
    /// expressions. Its day of week counts 0 = Monday; standard cron counts 0 = Sunday.
    #[test]
    fn the_lovely_remotetask_tables() {
        // minute=(0, 10)
        assert_eq!(next("0,10 * * * *", EPOCH), "1970-01-01T00:10:00+00:00");
        assert_eq!(next("0,10 * * * *", "1970-01-01T00:10:00+00:00"), "1970-01-01T01:00:00+00:00");
        // hour=(2, 13)
        assert_eq!(next("0 2,13 * * *", EPOCH), "1970-01-01T02:00:00+00:00");
        assert_eq!(next("0 2,13 * * *", "1970-01-01T02:00:00+00:00"), "1970-01-01T13:00:00+00:00");
        // month=(1, 5, 12): Jan 1 00:00 is the start itself, so the next is May 1.
        assert_eq!(next("0 0 1 1,5,12 *", EPOCH), "1970-05-01T00:00:00+00:00");
        assert_eq!(next("0 0 1 1,5,12 *", "1970-05-01T00:00:00+00:00"), "1970-12-01T00:00:00+00:00");
        // dayOfWeek=(0, 2, 4, 5), Monday-based = Mon, Wed, Fri, Sat = standard 1,3,5,6.
        assert_eq!(next("0 0 * * 1,3,5,6", EPOCH), "1970-01-02T00:00:00+00:00");
        assert_eq!(next("0 0 * * 1,3,5,6", "1970-01-02T00:00:00+00:00"), "1970-01-03T00:00:00+00:00");
        assert_eq!(next("0 0 * * 1,3,5,6", "1970-01-03T00:00:00+00:00"), "1970-01-05T00:00:00+00:00");
        assert_eq!(next("0 0 * * 1,3,5,6", "1970-01-05T00:00:00+00:00"), "1970-01-07T00:00:00+00:00");
        // dayOfMonth=(1, 12, 21, 30)
        assert_eq!(next("0 0 1,12,21,30 * *", EPOCH), "1970-01-12T00:00:00+00:00");
        assert_eq!(next("0 0 1,12,21,30 * *", "1970-01-12T00:00:00+00:00"), "1970-01-21T00:00:00+00:00");
        // Combined: minute=(10,), dayOfMonth=(1, 12, 21, 30)
        assert_eq!(next("10 * 1,12,21,30 * *", EPOCH), "1970-01-01T00:10:00+00:00");
        assert_eq!(next("10 * 1,12,21,30 * *", "1970-01-01T00:10:00+00:00"), "1970-01-01T01:10:00+00:00");
        // minute=(10,), hour=(4,), dayOfMonth=(1, 12, 21, 30)
        assert_eq!(next("10 4 1,12,21,30 * *", EPOCH), "1970-01-01T04:10:00+00:00");
        assert_eq!(next("10 4 1,12,21,30 * *", "1970-01-01T00:10:00+00:00"), "1970-01-01T04:10:00+00:00");
    }

    #[test]
    fn standard_syntax_names_steps_and_sunday_as_0_or_7() {
        let sunday = "2026-11-22T00:00:00+00:00"; // a Sunday
        assert_eq!(next("0 12 * * 0", "2026-11-20T00:00:00+00:00"), "2026-11-22T12:00:00+00:00");
        assert_eq!(next("0 12 * * 7", "2026-11-20T00:00:00+00:00"), "2026-11-22T12:00:00+00:00");
        assert_eq!(next("0 12 * * sun", "2026-11-20T00:00:00+00:00"), "2026-11-22T12:00:00+00:00");
        assert_eq!(next("*/15 * * * *", "2026-11-22T10:07:00+00:00"), "2026-11-22T10:15:00+00:00");
        assert_eq!(next("0 9-17/4 * * MON-FRI", sunday), "2026-11-23T09:00:00+00:00");
        assert_eq!(next("30 6 1 JAN,jul *", sunday), "2027-01-01T06:30:00+00:00");
        // Day of month OR day of week when both are restricted (Vixie cron).
        assert_eq!(next("0 0 13 * 5", "2026-11-22T00:00:00+00:00"), "2026-11-27T00:00:00+00:00");
        // Strictly after: a fire time itself is never its own next.
        assert_eq!(next("0 * * * *", "2026-11-22T10:00:00+00:00"), "2026-11-22T11:00:00+00:00");
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        let zurich = CronSpec::parse("0 9 * * *", Some("Europe/Zurich")).unwrap();
        // Winter: UTC+1; summer: UTC+2.
        assert_eq!(
            rfc3339_seconds(zurich.next_after(at("2026-11-22T00:00:00Z")).unwrap()),
            "2026-11-22T08:00:00+00:00"
        );
        assert_eq!(
            rfc3339_seconds(zurich.next_after(at("2026-07-01T00:00:00Z")).unwrap()),
            "2026-07-01T07:00:00+00:00"
        );
        // 02:30 does not exist on 2026-03-29 in Zurich (clocks jump 02:00 → 03:00): croner
        // moves the slot into the gap's end rather than skipping the day.
        let gap = CronSpec::parse("30 2 * * *", Some("Europe/Zurich")).unwrap();
        let fired = gap.next_after(at("2026-03-28T12:00:00Z")).unwrap();
        assert!(
            fired > at("2026-03-29T00:00:00Z") && fired < at("2026-03-30T00:00:00Z"),
            "{}",
            rfc3339_seconds(fired)
        );
    }

    #[test]
    fn errors_point_at_the_field_or_the_zone() {
        let cases = [
            ("61 * * * *", "field 1 (minute)"),
            ("* 24 * * *", "field 2 (hour)"),
            ("* * 32 * *", "field 3 (day of month)"),
            ("* * * 13 *", "field 4 (month)"),
            ("* * * * 8", "field 5 (day of week)"),
            ("* * * * *  *", "has 6 field(s)"),
            ("* * *", "has 3 field(s)"),
            ("*/0 * * * *", "field 1 (minute)"),
        ];
        for (expr, want) in cases {
            let err = CronSpec::parse(expr, None).unwrap_err().to_string();
            assert!(err.contains(want), "{expr}: {err}");
        }
        let err = CronSpec::parse("* * * * *", Some("Mars/Olympus")).unwrap_err().to_string();
        assert!(err.contains("unknown time zone `Mars/Olympus`"), "{err}");
    }

    #[test]
    fn upcoming_lists_strictly_increasing_times() {
        let spec = CronSpec::parse("0 0 1 * *", None).unwrap();
        let times: Vec<String> =
            spec.upcoming(at("2026-11-22T00:00:00Z"), 3).into_iter().map(rfc3339_seconds).collect();
        assert_eq!(
            times,
            ["2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00", "2027-02-01T00:00:00+00:00"]
        );
    }
}
