//! Times, durations and tables as a person reads them: local time, short units, aligned
//! columns. Pure, so the shapes are unit-tested.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local};

pub fn now_ms() -> u64 {
    millis(SystemTime::now())
}

pub fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Local wall-clock time: `HH:MM:SS` today, with the date otherwise.
pub fn clock(ms: u64) -> String {
    let at: DateTime<Local> = DateTime::from(UNIX_EPOCH + Duration::from_millis(ms));
    if at.date_naive() == Local::now().date_naive() {
        at.format("%H:%M:%S").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// Compact elapsed time: `850ms`, `4.2s`, `3m07s`, `1h02m`, `2d03h`.
pub fn elapsed(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{:.1}s", ms as f64 / 1000.0),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// A schedule interval as typed: `30s`, `5m`, `1h30m`, `500ms`, `2d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 30s, 5m, 1h or 1h30m");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86400),
            _ => return Err(bad()),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        return Err(format!("{text:?}: a schedule interval must be more than 0"));
    }
    Ok(total)
}

/// The shortest exact spelling of a duration, in the units [`parse_duration`] reads.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    if rest > 0 {
        out.push_str(&format!("{rest}ms"));
    }
    out
}

/// Left-aligned columns two spaces apart; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_in_the_same_units() {
        let cases = [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("2d", 172_800_000),
            ("1m30s", 90_000),
        ];
        for (text, ms) in cases {
            let d = parse_duration(text).unwrap();
            assert_eq!(d, Duration::from_millis(ms), "{text}");
            assert_eq!(duration(d), text);
        }
        for bad in ["", "5", "m", "5x", "1.5h", "0s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn elapsed_is_short() {
        assert_eq!(elapsed(850), "850ms");
        assert_eq!(elapsed(4_200), "4.2s");
        assert_eq!(elapsed(187_000), "3m07s");
        assert_eq!(elapsed(3_720_000), "1h02m");
        assert_eq!(elapsed(183_600_000), "2d03h");
    }

    #[test]
    fn clock_is_time_of_day_today_and_dated_otherwise() {
        assert_eq!(clock(now_ms()).len(), "12:01:03".len());
        assert_eq!(clock(0).len(), "1970-01-01 00:00:00".len());
    }

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["extract".to_string(), "ok".to_string(), "".to_string()],
            vec!["a".to_string(), "failed".to_string(), "why".to_string()],
        ];
        assert_eq!(
            table(&["STEP", "STATUS", "NOTE"], &rows),
            "STEP     STATUS  NOTE\nextract  ok\na        failed  why\n"
        );
    }
}
