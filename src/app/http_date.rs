//! The `Date` field every response carries (RFC 9110 6.6.1), formatted once per second per
//! thread rather than once per response.

use std::cell::RefCell;

thread_local! {
    static CACHED: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// Calls `f` with the current time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(super) fn with_now<R>(f: impl FnOnce(&str) -> R) -> R {
    let now = jiff::Timestamp::now();
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != now.as_second() {
            cached.1.clear();
            let second = jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
            // Printing a timestamp into a String cannot fail.
            let _ = jiff::fmt::rfc2822::DateTimePrinter::new()
                .print_timestamp_rfc9110(&second, &mut cached.1);
            cached.0 = now.as_second();
        }
        f(&cached.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_an_imf_fixdate() {
        let date = with_now(str::to_owned);
        assert_eq!(date.len(), "Sun, 06 Nov 1994 08:49:37 GMT".len(), "{date}");
        assert!(date.ends_with(" GMT"), "{date}");
        let parsed = jiff::fmt::rfc2822::parse(&date.replace("GMT", "+0000")).unwrap();
        let skew = jiff::Timestamp::now().as_second() - parsed.timestamp().as_second();
        assert!((0..=2).contains(&skew), "{date}");
    }
}
