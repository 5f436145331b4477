//! A schedule's times as the server keeps them, in one line: `every 2s`, `cron 0 3 * * *`.
//! The server stores a cron expression as a structured calendar, so it is turned back into
//! cron fields here.

use std::time::Duration;

use temporalio_common::protos::temporal::api::schedule::v1::{
    Range, ScheduleSpec, StructuredCalendarSpec,
};

use super::format::duration;

pub fn summarize(spec: &ScheduleSpec) -> String {
    let mut parts = Vec::new();
    for interval in &spec.interval {
        let every = interval.interval.as_ref().map_or(Duration::ZERO, |d| {
            Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)
        });
        let mut part = format!("every {}", duration(every));
        if let Some(phase) = interval
            .phase
            .as_ref()
            .filter(|p| p.seconds > 0 || p.nanos > 0)
        {
            let phase = Duration::new(phase.seconds.max(0) as u64, phase.nanos.max(0) as u32);
            part.push_str(&format!(" (offset {})", duration(phase)));
        }
        parts.push(part);
    }
    parts.extend(spec.structured_calendar.iter().map(calendar));
    parts.extend(spec.cron_string.iter().map(|c| format!("cron {c}")));
    if parts.is_empty() {
        return "no times".into();
    }
    let mut out = parts.join(", ");
    if !spec.timezone_name.is_empty() {
        out.push_str(&format!(" ({})", spec.timezone_name));
    }
    out
}

/// Cron fields (minute hour day-of-month month day-of-week), with seconds first when they are
/// not just 0 and the years last when they are limited.
fn calendar(c: &StructuredCalendarSpec) -> String {
    let mut fields = Vec::new();
    let seconds = field(&c.second, (0, 59), "0");
    if seconds != "0" {
        fields.push(seconds);
    }
    fields.push(field(&c.minute, (0, 59), "0"));
    fields.push(field(&c.hour, (0, 23), "0"));
    fields.push(field(&c.day_of_month, (1, 31), "*"));
    fields.push(field(&c.month, (1, 12), "*"));
    fields.push(field(&c.day_of_week, (0, 6), "*"));
    // Years have no fixed bounds: any range given is a limit.
    let years = field(&c.year, (i32::MIN, i32::MAX), "*");
    if years != "*" {
        fields.push(years);
    }
    let mut out = format!("cron {}", fields.join(" "));
    if !c.comment.is_empty() {
        out.push_str(&format!(" # {}", c.comment));
    }
    out
}

/// One cron field from ranges: `*`, `*/15`, `1-5`, `0,30`. No ranges means the proto's
/// default for the field.
fn field(ranges: &[Range], (low, high): (i32, i32), default: &str) -> String {
    if ranges.is_empty() {
        return default.into();
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|r| {
            // The proto's zeros: no end is a single value, no step is 1.
            let end = r.end.max(r.start);
            let span = if (r.start, end) == (low, high) {
                "*".to_string()
            } else if end == r.start {
                r.start.to_string()
            } else {
                format!("{}-{end}", r.start)
            };
            match r.step {
                step if step > 1 => format!("{span}/{step}"),
                _ => span,
            }
        })
        .collect();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::temporal::api::schedule::v1::IntervalSpec;

    fn range(start: i32, end: i32, step: i32) -> Range {
        Range { start, end, step }
    }

    #[test]
    fn intervals_read_as_typed() {
        let mut every = IntervalSpec {
            interval: Some(Default::default()),
            phase: None,
        };
        every.interval.as_mut().unwrap().seconds = 90;
        let spec = ScheduleSpec {
            interval: vec![every],
            ..Default::default()
        };
        assert_eq!(summarize(&spec), "every 1m30s");
        assert_eq!(summarize(&ScheduleSpec::default()), "no times");
    }

    #[test]
    fn calendars_read_back_as_cron() {
        let weekdays_at_nine = StructuredCalendarSpec {
            second: vec![range(0, 0, 0)],
            minute: vec![range(0, 0, 0), range(30, 0, 0)],
            hour: vec![range(9, 17, 1)],
            day_of_month: vec![range(1, 31, 1)],
            month: vec![range(1, 12, 1)],
            day_of_week: vec![range(1, 5, 1)],
            year: vec![],
            comment: String::new(),
        };
        let spec = ScheduleSpec {
            structured_calendar: vec![weekdays_at_nine],
            timezone_name: "Europe/Paris".into(),
            ..Default::default()
        };
        assert_eq!(summarize(&spec), "cron 0,30 9-17 * * 1-5 (Europe/Paris)");
        let every_five = StructuredCalendarSpec {
            minute: vec![range(0, 59, 5)],
            hour: vec![range(0, 23, 1)],
            ..Default::default()
        };
        assert_eq!(calendar(&every_five), "cron */5 * * * *");
    }
}
