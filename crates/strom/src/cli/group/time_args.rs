//! The time arguments of `group reset-offsets`: `--to-datetime` (a date and
//! time, UTC unless it names a zone) and `--by-duration` (an ISO-8601
//! duration such as `PT30M`), as Kafka's tool takes them.

use crate::cli::time::parse_timestamp;

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// Parses Kafka's `YYYY-MM-DDTHH:mm:SS.sss` (optionally followed by `Z` or
/// `±HH:MM`) into ms since the Unix epoch. Kafka's tool reads a time without
/// a zone as local time; Strom's tools carry no zone database, so it is UTC.
pub fn parse_datetime_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let has_zone = s
        .split_once(['T', 't'])
        .is_some_and(|(_, time)| time.ends_with(['Z', 'z']) || time.contains(['+', '-']));
    let zoned = if has_zone {
        s.to_owned()
    } else {
        format!("{s}Z")
    };
    parse_timestamp(&zoned).map_err(|_| {
        format!(
            "expected a date and time such as 2026-01-02T03:04:05.000 (UTC) or \
             2026-01-02T03:04:05+02:00, got '{s}'"
        )
    })
}

/// Parses an ISO-8601 duration `PnDTnHnMn.nS` (Java's `Duration.parse`,
/// without a sign) into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let bad =
        || format!("expected an ISO-8601 duration such as PT30M, PT1.5S or P1DT12H, got '{s}'");
    let upper = s.trim().to_ascii_uppercase();
    let body = upper.strip_prefix('P').ok_or_else(bad)?;
    let (days_part, time_part) = match body.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return Err(bad()),
        None => (body, None),
    };
    let mut total: i64 = 0;
    let mut components = 0;
    if !days_part.is_empty() {
        let days = days_part.strip_suffix('D').ok_or_else(bad)?;
        total = add(total, whole(days).ok_or_else(bad)?, MS_PER_DAY).ok_or_else(bad)?;
        components += 1;
    }
    if let Some(mut t) = time_part {
        for (unit, ms) in [('H', MS_PER_HOUR), ('M', MS_PER_MINUTE)] {
            if let Some((n, rest)) = t.split_once(unit) {
                total = add(total, whole(n).ok_or_else(bad)?, ms).ok_or_else(bad)?;
                components += 1;
                t = rest;
            }
        }
        if let Some(seconds) = t.strip_suffix('S') {
            let ms = seconds_ms(seconds).ok_or_else(bad)?;
            total = total.checked_add(ms).ok_or_else(bad)?;
            components += 1;
        } else if !t.is_empty() {
            return Err(bad());
        }
    }
    if components == 0 {
        return Err(bad());
    }
    Ok(total)
}

fn add(total: i64, n: i64, unit_ms: i64) -> Option<i64> {
    total.checked_add(n.checked_mul(unit_ms)?)
}

/// A non-empty run of ASCII digits.
fn whole(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `S` or `S.fff...` seconds as ms (digits past the millisecond are dropped).
fn seconds_ms(s: &str) -> Option<i64> {
    let (secs, fraction) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    let mut ms = whole(secs)?.checked_mul(MS_PER_SECOND)?;
    if let Some(f) = fraction {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let millis: String = f.chars().chain("000".chars()).take(3).collect();
        ms = ms.checked_add(millis.parse::<i64>().ok()?)?;
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_utc_unless_they_name_a_zone() {
        // 2026-01-02T03:04:05.678Z, checked with `date -u -d ... +%s%3N`.
        let t = 1_767_323_045_678;
        assert_eq!(parse_datetime_ms("2026-01-02T03:04:05.678"), Ok(t));
        assert_eq!(parse_datetime_ms("2026-01-02T03:04:05.678Z"), Ok(t));
        assert_eq!(parse_datetime_ms("2026-01-02T05:04:05.678+02:00"), Ok(t));
        assert_eq!(parse_datetime_ms("2026-01-02T01:04:05.678-02:00"), Ok(t));
        assert_eq!(parse_datetime_ms("2026-01-02T03:04:05"), Ok(t - 678));
        for bad in [
            "2026-01-02",
            "2026-13-02T00:00:00",
            "2026-01-02T24:00:00",
            "yesterday",
        ] {
            assert!(parse_datetime_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_follow_iso_8601() {
        assert_eq!(parse_duration_ms("PT30M"), Ok(30 * MS_PER_MINUTE));
        assert_eq!(parse_duration_ms("pt1.5s"), Ok(1_500));
        assert_eq!(
            parse_duration_ms("P1DT2H3M4S"),
            Ok(MS_PER_DAY + 2 * MS_PER_HOUR + 3 * MS_PER_MINUTE + 4_000)
        );
        assert_eq!(parse_duration_ms("P2D"), Ok(2 * MS_PER_DAY));
        for bad in [
            "", "P", "PT", "30M", "PT-1H", "PT1H2", "P1H", "PT1S2M", "-PT1H",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
