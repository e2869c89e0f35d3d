//! Wall-clock helpers for the tools: timestamps given on the command line
//! (milliseconds since the epoch or RFC 3339) and Kafka's perf-test date
//! format. UTC only: the tools carry no time zone database, and UTC output
//! compares across machines.

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses a timestamp flag: milliseconds since the epoch (`1714521600000`) or
/// RFC 3339 (`2024-05-01T00:00:00Z`, `2024-05-01T02:00:00.250+02:00`).
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        if ms < 0 {
            return Err(format!("timestamp must not be negative, got {ms}"));
        }
        return Ok(ms);
    }
    parse_rfc3339(s).ok_or_else(|| {
        format!(
            "expected milliseconds since the epoch or RFC 3339 (2024-05-01T12:00:00Z), got '{s}'"
        )
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` to milliseconds since
/// the epoch; digits of the fraction beyond milliseconds are dropped.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0;
    if rest.first() == Some(&b'.') {
        let len = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        let frac = &rest[1..1 + len];
        for i in 0..3 {
            millis = millis * 10 + frac.get(i).map_or(0, |d| i64::from(d - b'0'));
        }
        rest = &rest[1 + len..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    // A leap second (:60) counts as the next second, as Java's parsers do.
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some((seconds - offset_minutes * 60) * 1000 + millis)
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Kafka's perf-test date format, `yyyy-MM-dd HH:mm:ss:SSS`, in UTC.
pub fn format_perf_time(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(MS_PER_DAY), ms.rem_euclid(MS_PER_DAY));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}:{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_milliseconds_parse_to_the_same_instant() {
        assert_eq!(parse_timestamp("1714521600000"), Ok(1_714_521_600_000));
        assert_eq!(
            parse_timestamp("2024-05-01T00:00:00Z"),
            Ok(1_714_521_600_000)
        );
        assert_eq!(
            parse_timestamp("2024-05-01T02:00:00.25+02:00"),
            Ok(1_714_521_600_250)
        );
        assert_eq!(
            parse_timestamp("2024-04-30t19:30:00.123456-04:30"),
            Ok(1_714_521_600_123)
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_timestamp("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for bad in [
            "-5",
            "yesterday",
            "2024-05-01",
            "2024-05-01T00:00:00",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T00:00:00.Z",
            "2024-05-01T00:00:00+0200",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn perf_times_use_kafkas_layout_and_round_trip_dates() {
        assert_eq!(format_perf_time(0), "1970-01-01 00:00:00:000");
        assert_eq!(
            format_perf_time(1_714_521_600_250),
            "2024-05-01 00:00:00:250"
        );
        assert_eq!(format_perf_time(951_868_799_999), "2000-02-29 23:59:59:999");
        for days in [-719_468, -1, 0, 59, 11_016, 19_844, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
