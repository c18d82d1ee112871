//! Calendar arithmetic for the RTC: a Unix time as the date and time of day the CMOS clock
//! registers show, computed here rather than with a date crate because it is a dozen lines.

/// A UTC date and time, as the RTC registers hold it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DateTime {
    pub year: u32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// 1 = Sunday ... 7 = Saturday, the RTC's numbering.
    pub weekday: u8,
}

impl DateTime {
    /// The date and time `seconds` after 1970-01-01 00:00:00 UTC.
    pub(crate) fn from_unix(seconds: u64) -> Self {
        let days = seconds / 86_400;
        let in_day = seconds % 86_400;
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (in_day / 3600) as u8,
            minute: (in_day / 60 % 60) as u8,
            second: (in_day % 60) as u8,
            // 1970-01-01 was a Thursday (5).
            weekday: ((days + 4) % 7 + 1) as u8,
        }
    }
}

/// The (year, month, day) `days` days after 1970-01-01, in the proleptic Gregorian calendar.
///
/// Counts in 400-year eras (146,097 days each) of years that start on 1 March, so that the
/// leap day is the last day of its year and month lengths follow a fixed 153-day pattern
/// every five months.
fn civil_from_days(days: u64) -> (u32, u8, u8) {
    // Days from 0000-03-01 to 1970-01-01.
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    // Leap days so far in the era: one per 4 years, none per 100, one per 400.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Month counted from March = 0: months come in runs of 31, 30, 31, 30, 31 (153 days).
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year as u32, month as u8, day as u8)
}

/// Seconds after 1970-01-01 00:00:00 UTC of a UTC date and time: the inverse of the
/// conversion the CMOS model shows a Unix time with, for a host that reads a real RTC (the
/// type-1 hypervisor gives its guests' CMOS the machine's time). Dates before 1970 count as
/// 1970-01-01.
///
/// ```
/// assert_eq!(axvm_pc::unix_time_of(2000, 2, 29, 0, 0, 0), 951_782_400);
/// ```
pub fn unix_time_of(year: u32, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> u64 {
    // The same March-based eras as `civil_from_days`, backwards.
    let year = u64::from(year) - u64::from(month <= 2);
    let era = year / 400;
    let year_of_era = year % 400;
    let march_month = (u64::from(month) + 9) % 12;
    let day_of_year = (153 * march_month + 2) / 5 + u64::from(day).saturating_sub(1);
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = (era * 146_097 + day_of_era).saturating_sub(719_468);
    days * 86_400 + u64::from(hour) * 3600 + u64::from(minute) * 60 + u64::from(second)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: u32, month: u8, day: u8, weekday: u8) -> (u32, u8, u8, u8) {
        (year, month, day, weekday)
    }

    #[test]
    fn civil_dates_of_known_unix_times() {
        for (seconds, expected) in [
            (0, date(1970, 1, 1, 5)),
            (951_782_400, date(2000, 2, 29, 3)),
            (1_709_164_800, date(2024, 2, 29, 5)),
            (4_102_444_800, date(2100, 1, 1, 6)),
            // 2100 is not a leap year: 28 February is followed by 1 March.
            (4_107_542_400, date(2100, 3, 1, 2)),
            (2_147_483_647, date(2038, 1, 19, 3)),
        ] {
            let t = DateTime::from_unix(seconds);
            assert_eq!((t.year, t.month, t.day, t.weekday), expected, "{seconds}");
        }
        let t = DateTime::from_unix(1_234_567_890);
        assert_eq!((t.hour, t.minute, t.second), (23, 31, 30));
        // The last day of a non-leap year (after leap 1972), and the first of the next.
        assert_eq!(civil_from_days(365 * 3 + 1 + 364), (1973, 12, 31));
        assert_eq!(civil_from_days(365 * 4 + 1), (1974, 1, 1));
    }

    #[test]
    fn unix_time_of_inverts_from_unix() {
        for seconds in [0, 951_782_400, 1_234_567_890, 1_709_164_800, 4_107_542_400] {
            let t = DateTime::from_unix(seconds);
            let back = unix_time_of(t.year, t.month, t.day, t.hour, t.minute, t.second);
            assert_eq!(back, seconds, "{t:?}");
        }
    }
}
