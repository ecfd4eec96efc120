//! Date shifting for the Retain Longitudinal Temporal Information with Modified Dates option: every DA and DT of a
//! patient moves by the same whole number of days, so intervals (and times of day) are kept.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn valid(y: i64, m: i64, d: i64) -> bool {
    (1..=12).contains(&m) && d >= 1 && civil_from_days(days_from_civil(y, m, d)) == (y, m, d)
}

/// Shifts one date-like value: `YYYYMMDD` (and its legacy `YYYY.MM.DD` form) by days, `YYYY` or `YYYYMM` (DT
/// precision) by whole years. `None` when the value is not a date.
fn shift_date_part(s: &str, days: i64) -> Option<String> {
    let digits: String = s.chars().filter(|c| *c != '.').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let years = (days as f64 / 365.25).round() as i64;
    match digits.len() {
        8 => {
            let (y, m, d) = (
                digits[0..4].parse().ok()?,
                digits[4..6].parse().ok()?,
                digits[6..8].parse().ok()?,
            );
            if !valid(y, m, d) {
                return None;
            }
            let (y2, m2, d2) = civil_from_days(days_from_civil(y, m, d) + days);
            (y2 >= 0).then(|| format!("{y2:04}{m2:02}{d2:02}"))
        }
        4 => Some(format!("{:04}", digits.parse::<i64>().ok()? + years)),
        6 => Some(format!(
            "{:04}{}",
            digits[0..4].parse::<i64>().ok()? + years,
            &digits[4..6]
        )),
        _ => None,
    }
}

/// Applies `f` to each backslash-separated value (empty values stay empty); `None` if `f` refuses any.
fn per_value(value: &str, f: impl Fn(&str) -> Option<String>) -> Option<String> {
    let vals: Option<Vec<String>> = value
        .trim_end_matches(['\0', ' '])
        .split('\\')
        .map(|v| match v.trim() {
            "" => Some(String::new()),
            v => f(v),
        })
        .collect();
    vals.map(|v| v.join("\\"))
}

/// Shifts a DA value (each of several values, and both ends of a range). `None` if any part is not a date.
pub fn shift_da(value: &str, days: i64) -> Option<String> {
    per_value(value, |v| {
        let parts: Option<Vec<String>> = v
            .split('-')
            .map(|p| {
                if p.is_empty() {
                    Some(String::new())
                } else {
                    shift_date_part(p, days)
                }
            })
            .collect();
        parts.map(|p| p.join("-"))
    })
}

/// Shifts a DT value's date part (`YYYY[MM[DD[HH…]]]` with an optional `&ZZXX` offset); the time part is kept.
pub fn shift_dt(value: &str, days: i64) -> Option<String> {
    per_value(value, |v| {
        let date_len = v.chars().take_while(|c| c.is_ascii_digit()).count().min(8);
        let (date, rest) = v.split_at(date_len);
        if !matches!(date.len(), 4 | 6 | 8) {
            return None;
        }
        Some(format!("{}{rest}", shift_date_part(date, days)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_day_shifts_keep_intervals() {
        // hand-derived: 2020-03-01 minus 1 day is the leap day 2020-02-29; minus 366 days is 2019-03-01
        assert_eq!(shift_da("20200301", -1).as_deref(), Some("20200229"));
        assert_eq!(shift_da("20200301", -366).as_deref(), Some("20190301"));
        assert_eq!(
            shift_da("19000301", -1).as_deref(),
            Some("19000228"),
            "1900 is no leap year"
        );
        assert_eq!(shift_da("20000301", -1).as_deref(), Some("20000229"), "2000 is");
        assert_eq!(
            shift_da("20240115\\20240120", -10).as_deref(),
            Some("20240105\\20240110")
        );
        assert_eq!(shift_da("20240115-20240120", -10).as_deref(), Some("20240105-20240110"));
        assert_eq!(shift_da("2024.01.15", -10).as_deref(), Some("20240105"));
        assert_eq!(shift_da("20241345", -1), None, "not a date");
        assert_eq!(shift_da("yesterday", -1), None);
        assert_eq!(shift_da("", -1).as_deref(), Some(""));
    }

    #[test]
    fn datetimes_shift_their_date_and_keep_their_time() {
        assert_eq!(
            shift_dt("20200301101530.123456+0100", -1).as_deref(),
            Some("20200229101530.123456+0100")
        );
        assert_eq!(shift_dt("2020", -730).as_deref(), Some("2018"));
        assert_eq!(shift_dt("202003", -365).as_deref(), Some("201903"));
        assert_eq!(shift_dt("20x", -1), None);
    }

    #[test]
    fn civil_round_trip() {
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
