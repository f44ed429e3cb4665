//! Whether an instant falls inside a weekly [`TimeWindow`]. The clock is a parameter: this file
//! never reads the system time.
//!
//! Windows are read in civil local time as jiff computes it for the window's zone. Across a
//! daylight-saving change that means: when clocks spring forward, the skipped hour never
//! happens, so a window opening inside it opens at the first instant after the jump (a window
//! lying wholly inside the gap never opens that day); when clocks fall back, the repeated hour
//! happens twice and a window covering it is open both times. A window's real length therefore
//! differs by the shift on those days.

use jiff::Timestamp;

use super::rule::TimeWindow;

impl TimeWindow {
    /// Whether `now` is inside the window: on one of `days`, at or after `start` and before
    /// `end`, local time in `tz`. When `end <= start` the window runs past midnight, so its
    /// tail belongs to the day after the one it opened on.
    pub fn contains(&self, now: Timestamp) -> bool {
        // `to_datetime` is `now.to_zoned(tz).datetime()` without cloning the zone.
        let local = self.tz.to_datetime(now);
        let day = local.weekday();
        let time = local.time();
        if self.start < self.end {
            self.days.contains(&day) && self.start <= time && time < self.end
        } else {
            (self.days.contains(&day) && time >= self.start)
                || (self.days.contains(&day.previous()) && time < self.end)
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::{Time, Weekday};
    use jiff::tz::TimeZone;

    use super::*;

    fn window(days: &[Weekday], start: Time, end: Time, tz: &str) -> TimeWindow {
        TimeWindow {
            days: days.to_vec(),
            start,
            end,
            tz: TimeZone::get(tz).unwrap(),
        }
    }

    fn at(instant: &str) -> Timestamp {
        instant.parse().unwrap()
    }

    const WEEKDAYS: [Weekday; 5] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
    ];

    fn office_hours(tz: &str) -> TimeWindow {
        window(
            &WEEKDAYS,
            Time::constant(9, 0, 0, 0),
            Time::constant(17, 0, 0, 0),
            tz,
        )
    }

    #[test]
    fn berlin_office_hours() {
        let w = office_hours("Europe/Berlin");
        // 2024-01-15 is a Monday; Berlin is UTC+1 in winter.
        assert!(w.contains(at("2024-01-15T08:00:00Z")), "09:00 local opens");
        assert!(!w.contains(at("2024-01-15T07:59:59Z")), "08:59:59 local");
        assert!(w.contains(at("2024-01-15T15:59:59Z")), "16:59:59 local");
        assert!(
            !w.contains(at("2024-01-15T16:00:00Z")),
            "17:00 local is closed"
        );
        // Saturday 2024-01-20 at noon local.
        assert!(!w.contains(at("2024-01-20T11:00:00Z")));
    }

    #[test]
    fn berlin_summer_offset_is_used() {
        let w = office_hours("Europe/Berlin");
        // 2024-07-15 is a Monday; Berlin is UTC+2 in summer: 07:00Z is 09:00 local.
        assert!(w.contains(at("2024-07-15T07:00:00Z")));
        assert!(!w.contains(at("2024-07-15T06:59:59Z")));
        assert!(!w.contains(at("2024-07-15T15:00:00Z")));
    }

    #[test]
    fn new_york_weekday_differs_from_utc() {
        let w = office_hours("America/New_York");
        // Saturday 2024-01-20 02:00Z is Friday 21:00 in New York: Friday, but after hours.
        assert!(!w.contains(at("2024-01-20T02:00:00Z")));
        // Friday 2024-01-19 20:00Z is 15:00 local on Friday.
        assert!(w.contains(at("2024-01-19T20:00:00Z")));
        // Monday 2024-01-15 03:00Z is Sunday 22:00 local.
        let evening = window(
            &[Weekday::Sunday],
            Time::constant(20, 0, 0, 0),
            Time::constant(23, 0, 0, 0),
            "America/New_York",
        );
        assert!(evening.contains(at("2024-01-15T03:00:00Z")));
    }

    #[test]
    fn overnight_window_spans_midnight() {
        // Friday 22:00 to 06:00, New York (UTC-5 in January).
        let w = window(
            &[Weekday::Friday],
            Time::constant(22, 0, 0, 0),
            Time::constant(6, 0, 0, 0),
            "America/New_York",
        );
        assert!(w.contains(at("2024-01-20T03:00:00Z")), "Fri 22:00 opens");
        assert!(!w.contains(at("2024-01-20T02:59:59Z")), "Fri 21:59:59");
        assert!(w.contains(at("2024-01-20T05:00:00Z")), "Sat 00:00");
        assert!(w.contains(at("2024-01-20T10:59:59Z")), "Sat 05:59:59");
        assert!(!w.contains(at("2024-01-20T11:00:00Z")), "Sat 06:00 closes");
        // Saturday evening is not a window start, and Friday early morning is Thursday's tail.
        assert!(!w.contains(at("2024-01-21T03:00:00Z")), "Sat 22:00");
        assert!(!w.contains(at("2024-01-19T08:00:00Z")), "Fri 03:00");
    }

    #[test]
    fn overnight_window_wraps_the_week() {
        // Sunday 23:00 to 01:00 Berlin: the tail falls on Monday.
        let w = window(
            &[Weekday::Sunday],
            Time::constant(23, 0, 0, 0),
            Time::constant(1, 0, 0, 0),
            "Europe/Berlin",
        );
        assert!(w.contains(at("2024-01-21T22:30:00Z")), "Sun 23:30");
        assert!(w.contains(at("2024-01-21T23:30:00Z")), "Mon 00:30");
        assert!(!w.contains(at("2024-01-22T00:00:00Z")), "Mon 01:00");
    }

    #[test]
    fn equal_start_and_end_is_a_full_day_from_start() {
        let w = window(
            &[Weekday::Monday],
            Time::constant(8, 0, 0, 0),
            Time::constant(8, 0, 0, 0),
            "Europe/Berlin",
        );
        assert!(w.contains(at("2024-01-15T07:00:00Z")), "Mon 08:00");
        assert!(w.contains(at("2024-01-16T06:59:59Z")), "Tue 07:59:59");
        assert!(!w.contains(at("2024-01-16T07:00:00Z")), "Tue 08:00");
        assert!(!w.contains(at("2024-01-15T06:59:59Z")), "Mon 07:59:59");
    }

    #[test]
    fn spring_forward_day_uses_civil_time() {
        // Berlin 2024-03-31 (Sunday): 02:00 CET jumps to 03:00 CEST.
        let w = window(
            &[Weekday::Sunday],
            Time::constant(1, 0, 0, 0),
            Time::constant(4, 0, 0, 0),
            "Europe/Berlin",
        );
        assert!(w.contains(at("2024-03-31T00:00:00Z")), "01:00 CET opens");
        assert!(
            w.contains(at("2024-03-31T01:00:00Z")),
            "03:00 CEST, after the jump"
        );
        assert!(w.contains(at("2024-03-31T01:59:59Z")), "03:59:59 CEST");
        assert!(!w.contains(at("2024-03-31T02:00:00Z")), "04:00 CEST closes");
        // A window inside the skipped hour never opens that day.
        let gap = window(
            &[Weekday::Sunday],
            Time::constant(2, 15, 0, 0),
            Time::constant(2, 45, 0, 0),
            "Europe/Berlin",
        );
        assert!(!gap.contains(at("2024-03-31T00:59:59Z")));
        assert!(!gap.contains(at("2024-03-31T01:00:00Z")));
    }

    #[test]
    fn fall_back_day_repeats_the_hour() {
        // New York 2024-11-03 (Sunday): 02:00 EDT falls back to 01:00 EST.
        let w = window(
            &[Weekday::Sunday],
            Time::constant(1, 0, 0, 0),
            Time::constant(2, 0, 0, 0),
            "America/New_York",
        );
        assert!(w.contains(at("2024-11-03T05:30:00Z")), "01:30 EDT");
        assert!(
            w.contains(at("2024-11-03T06:30:00Z")),
            "01:30 EST, the hour again"
        );
        assert!(!w.contains(at("2024-11-03T07:00:00Z")), "02:00 EST");
        assert!(!w.contains(at("2024-11-03T04:59:59Z")), "00:59:59 EDT");
    }

    #[test]
    fn no_days_never_opens() {
        let w = window(
            &[],
            Time::constant(0, 0, 0, 0),
            Time::constant(23, 59, 59, 0),
            "UTC",
        );
        assert!(!w.contains(at("2024-01-15T12:00:00Z")));
    }
}
