//! Calendar dates and instants. Business times are China Standard Time
//! (UTC+8, no daylight saving); `recorded_at` is UTC.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// UTC+8, the offset of every business date in the domain.
pub fn china_offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("8 hours is a valid offset")
}

/// A calendar day. Stored as days since 0001-01-01 (CE day 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub NaiveDate);

impl Date {
    pub fn ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        NaiveDate::from_ymd_opt(year, month, day).map(Date)
    }

    pub fn year(self) -> i32 {
        self.0.year()
    }

    /// Today in China (UTC+8), the one "today" every date left out defaults to.
    pub fn today() -> Date {
        BeijingTime::now().business_date()
    }
}

impl FromStr for Date {
    type Err = String;

    fn from_str(text: &str) -> Result<Date, String> {
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map(Date)
            .map_err(|_| format!("`{text}` is not a date of the calendar (YYYY-MM-DD)"))
    }
}

impl fmt::Display for Date {
    /// `YYYY-MM-DD`, written directly for years of four digits (every
    /// question's notes and JSON write dates: chrono's `format` parses its
    /// pattern each time); chrono's form for the others.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let year = self.0.year();
        if (0..=9999).contains(&year) {
            write!(f, "{year:04}-{:02}-{:02}", self.0.month(), self.0.day())
        } else {
            write!(f, "{}", self.0.format("%Y-%m-%d"))
        }
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i32(self.0.num_days_from_ce())
        }
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        if deserializer.is_human_readable() {
            let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
            text.parse().map_err(de::Error::custom)
        } else {
            let days = i32::deserialize(deserializer)?;
            NaiveDate::from_num_days_from_ce_opt(days)
                .map(Date)
                .ok_or_else(|| de::Error::custom(format!("day {days} out of range")))
        }
    }
}

/// An instant, microseconds since the Unix epoch. `recorded_at` shows it in
/// UTC; business instants ([`BeijingTime`]) show it at UTC+8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime(pub i64);

impl UtcTime {
    pub fn now() -> UtcTime {
        UtcTime(Utc::now().timestamp_micros())
    }

    pub fn to_chrono(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_chrono().format("%Y-%m-%dT%H:%M:%S%.6fZ"))
    }
}

impl FromStr for UtcTime {
    type Err = String;

    fn from_str(text: &str) -> Result<UtcTime, String> {
        parse_instant(text, &FixedOffset::east_opt(0).expect("zero offset")).map(UtcTime)
    }
}

/// A business instant (paid at, refunded at), shown in China Standard Time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BeijingTime(pub i64);

impl BeijingTime {
    pub fn now() -> BeijingTime {
        BeijingTime(UtcTime::now().0)
    }

    /// The calendar day in China (UTC+8): 00:30 on 1 March Beijing time is a
    /// March day although it is still February in UTC.
    pub fn business_date(self) -> Date {
        let utc = DateTime::from_timestamp_micros(self.0).unwrap_or_default();
        Date(utc.with_timezone(&china_offset()).date_naive())
    }
}

impl fmt::Display for BeijingTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let utc = DateTime::from_timestamp_micros(self.0).unwrap_or_default();
        write!(f, "{}", utc.with_timezone(&china_offset()).format("%Y-%m-%dT%H:%M:%S%:z"))
    }
}

impl FromStr for BeijingTime {
    type Err = String;

    /// RFC 3339 with an offset, or a local time without one, read as UTC+8.
    fn from_str(text: &str) -> Result<BeijingTime, String> {
        parse_instant(text, &china_offset()).map(BeijingTime)
    }
}

fn parse_instant(text: &str, default_offset: &FixedOffset) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Ok(with_offset.timestamp_micros());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            if let Some(local) = default_offset.from_local_datetime(&naive).single() {
                return Ok(local.timestamp_micros());
            }
        }
    }
    Err(format!(
        "`{text}` is not a time: use RFC 3339 (2025-03-01T00:30:00+08:00) or a local time (2025-03-01 00:30:00)"
    ))
}

macro_rules! instant_serde {
    ($ty:ident) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.collect_str(self)
                } else {
                    serializer.serialize_i64(self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$ty, D::Error> {
                if deserializer.is_human_readable() {
                    let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
                    text.parse().map_err(de::Error::custom)
                } else {
                    i64::deserialize(deserializer).map($ty)
                }
            }
        }
    };
}

instant_serde!(UtcTime);
instant_serde!(BeijingTime);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_chrono_writes_them() {
        for (year, month, day) in
            [(2021, 1, 1), (2021, 12, 31), (1, 2, 3), (999, 10, 9), (9999, 12, 31), (10_000, 1, 1), (-1, 6, 7)]
        {
            let date = Date::ymd(year, month, day).expect("a date");
            assert_eq!(date.to_string(), date.0.format("%Y-%m-%d").to_string());
        }
        assert_eq!(Date::ymd(2021, 3, 5).expect("a date").to_string(), "2021-03-05");
    }

    #[test]
    fn half_past_midnight_on_first_march_is_a_march_payment() {
        let paid: BeijingTime = "2025-03-01T00:30:00+08:00".parse().expect("time");
        assert_eq!(paid.business_date(), Date::ymd(2025, 3, 1).expect("date"));
        let same: BeijingTime = "2025-02-28T16:30:00Z".parse().expect("time");
        assert_eq!(same, paid);
        let local: BeijingTime = "2025-03-01 00:30:00".parse().expect("local");
        assert_eq!(local, paid);
        assert_eq!(paid.to_string(), "2025-03-01T00:30:00+08:00");
    }

    #[test]
    fn today_is_the_day_in_china_not_in_utc() {
        let china_day = || Date((Utc::now() + chrono::Duration::hours(8)).date_naive());
        let (before, today, after) = (china_day(), Date::today(), china_day());
        assert!(today == before || today == after, "{today} is neither {before} nor {after}");
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert!("2021-02-29".parse::<Date>().is_err());
        assert!("2024-02-29".parse::<Date>().is_ok());
        assert!("2025-13-01T00:00:00+08:00".parse::<BeijingTime>().is_err());
    }
}
