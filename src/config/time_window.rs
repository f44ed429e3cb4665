//! `time = [{ days, from, to, tz }]` -> [`TimeWindow`]: day names (`mon`..`sun`, `weekdays`,
//! `weekend`, `all`), 24-hour clock times (`24:00` = end of day) and IANA zones from the
//! system database. It does not decide whether "now" is inside a window: that is
//! [`crate::policy`]'s.

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;

use super::convert::Problems;
use super::file::TimeWindowFile;
use crate::policy::TimeWindow;

pub(crate) fn time_window(at: &str, file: &TimeWindowFile, p: &mut Problems) -> Option<TimeWindow> {
    let days = match &file.days {
        None => ALL_DAYS.to_vec(),
        Some(names) => {
            if names.is_empty() {
                p.add(
                    format!("{at}.days"),
                    "empty list; leave it out for every day",
                );
            }
            let mut days: Vec<Weekday> = Vec::new();
            for (i, name) in names.iter().enumerate() {
                if let Some(found) = p.parsed_opt(&format!("{at}.days[{i}]"), day_names(name)) {
                    for day in found {
                        if !days.contains(&day) {
                            days.push(day);
                        }
                    }
                }
            }
            days
        }
    };
    let start = p.parsed_opt(&format!("{at}.from"), clock_time(&file.from));
    let end = p.parsed_opt(&format!("{at}.to"), clock_time(&file.to));
    let tz_name = file.tz.as_deref().unwrap_or("UTC");
    let tz = p.parsed_opt(
        &format!("{at}.tz"),
        TimeZone::get(tz_name).map_err(|_| {
            format!("`{tz_name}` is not an IANA time zone (e.g. \"Europe/Berlin\", \"UTC\")")
        }),
    );
    let (start, end) = (start?, end?);
    // Equal times would read as a 24-hour window that runs "past midnight": say it explicitly.
    if start == end && file.to != "24:00" {
        p.add(
            format!("{at}.to"),
            "same as `from`; for a whole day write from = \"00:00\", to = \"24:00\"",
        );
    }
    Some(TimeWindow {
        days,
        start,
        end,
        tz: tz?,
    })
}

const ALL_DAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

fn day_names(name: &str) -> Result<Vec<Weekday>, String> {
    let day = match name.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        "weekdays" => return Ok(ALL_DAYS[..5].to_vec()),
        "weekend" => return Ok(ALL_DAYS[5..].to_vec()),
        "all" => return Ok(ALL_DAYS.to_vec()),
        _ => {
            return Err(format!(
                "`{name}`: expected mon..sun, weekdays, weekend or all"
            ));
        }
    };
    Ok(vec![day])
}

/// `HH:MM` (or `HH:MM:SS`), 24-hour clock; `24:00` means midnight at the end of the day.
fn clock_time(text: &str) -> Result<Time, String> {
    let bad = || format!("`{text}`: expected a time like \"09:00\" or \"18:30\"");
    if text == "24:00" {
        return Ok(Time::midnight());
    }
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|s| s.len() != 2 || !s.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    let num = |s: &str| s.parse::<i8>().map_err(|_| bad());
    let hour = num(parts[0])?;
    let minute = num(parts[1])?;
    let second = match parts.get(2) {
        Some(s) => num(s)?,
        None => 0,
    };
    Time::new(hour, minute, second, 0).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times() {
        assert_eq!(clock_time("09:00"), Ok(Time::new(9, 0, 0, 0).unwrap()));
        assert_eq!(
            clock_time("23:59:30"),
            Ok(Time::new(23, 59, 30, 0).unwrap())
        );
        assert_eq!(clock_time("24:00"), Ok(Time::midnight()));
        for bad in [
            "9:00",
            "09:60",
            "25:00",
            "+9:00",
            "09",
            "09:00:00:00",
            "nine",
        ] {
            assert!(clock_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn day_groups_expand() {
        assert_eq!(day_names("weekdays").unwrap().len(), 5);
        assert_eq!(
            day_names("weekend"),
            Ok(vec![Weekday::Saturday, Weekday::Sunday])
        );
        assert_eq!(day_names("all").unwrap().len(), 7);
        assert_eq!(day_names("Wed"), Ok(vec![Weekday::Wednesday]));
        assert!(day_names("wensday").is_err());
    }

    #[test]
    fn whole_day_and_overnight_windows_are_accepted() {
        let mut p = Problems::default();
        let file = |from: &str, to: &str| TimeWindowFile {
            days: None,
            from: from.into(),
            to: to.into(),
            tz: Some("America/New_York".into()),
        };
        let whole = time_window("t", &file("00:00", "24:00"), &mut p).unwrap();
        assert_eq!(
            (whole.start, whole.end),
            (Time::midnight(), Time::midnight())
        );
        let night = time_window("t", &file("22:00", "06:00"), &mut p).unwrap();
        assert!(night.end < night.start);
        assert!(p.0.is_empty(), "{:?}", p.0);
    }
}
