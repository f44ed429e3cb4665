//! Durations (`"500ms"`, `"90s"`, `"1h30m"`) and byte sizes (`"10MiB"`, `"1MB"`, `4096`) as
//! written in the config. Pure string parsing: no defaults and no range policy (whether zero is
//! allowed is the caller's business).

use std::time::Duration;

/// Parses a duration: one or more `<digits><unit>` parts, units `ms`, `s`, `m`, `h`, `d`
/// (`"500ms"`, `"90s"`, `"15m"`, `"12h"`, `"90d"`, `"1h30m"`). Zero is accepted here.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("empty duration; write e.g. \"30s\", \"15m\" or \"1h30m\"".into());
    }
    if s.starts_with('-') {
        return Err(format!("`{s}`: a duration cannot be negative"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(format!(
                "`{s}`: expected a number before each unit, e.g. \"90s\" or \"1h30m\""
            ));
        }
        let (digits, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "`{s}`: missing unit after {digits}; use ms, s, m, h or d (e.g. \"{digits}s\")"
                ));
            }
            other => {
                return Err(format!(
                    "`{s}`: unknown unit `{other}`; use ms, s, m, h or d"
                ));
            }
        };
        let overflow = || format!("`{s}`: duration is too large");
        let count: u64 = digits.parse().map_err(|_| overflow())?;
        let millis = count.checked_mul(millis_per_unit).ok_or_else(overflow)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(overflow)?;
        rest = next;
    }
    Ok(total)
}

/// Parses a byte size: plain digits, or digits followed by `B`, `KB`/`MB`/`GB`/`TB` (powers
/// of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024). Units are case-insensitive and may
/// follow a space (`"10 MiB"`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err("empty size; write e.g. \"10MiB\", \"512KiB\" or a number of bytes".into());
    }
    if trimmed.starts_with('-') {
        return Err(format!("`{s}`: a size cannot be negative"));
    }
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    if digits_end == 0 {
        return Err(format!("`{s}`: expected a number of bytes, e.g. \"10MiB\""));
    }
    let (digits, unit) = trimmed.split_at(digits_end);
    let multiplier: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "`{s}`: unknown size unit `{other}`; use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    let overflow = || format!("`{s}`: size is too large");
    let count: u64 = digits.parse().map_err(|_| overflow())?;
    count.checked_mul(multiplier).ok_or_else(overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn compounds_add_up() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
        assert_eq!(parse_duration("2d12h"), Ok(Duration::from_secs(216_000)));
    }

    #[test]
    fn bad_durations_say_why() {
        let err = |s: &str| parse_duration(s).err().unwrap_or_default();
        assert!(err("").contains("empty"));
        assert!(err("-5s").contains("negative"));
        assert!(err("90").contains("missing unit"));
        assert!(err("1h30").contains("missing unit"));
        assert!(err("5y").contains("unknown unit `y`"));
        assert!(err("5 s").contains("unknown unit"));
        assert!(err("1.5h").contains("unknown unit"));
        assert!(err("s").contains("expected a number"));
        assert!(err("99999999999999999999s").contains("too large"));
        assert!(err("18446744073709551615d").contains("too large"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10 mib"), Ok(10 * 1024 * 1024));
    }

    #[test]
    fn bad_sizes_say_why() {
        let err = |s: &str| parse_size(s).err().unwrap_or_default();
        assert!(err("").contains("empty"));
        assert!(err("-1MiB").contains("negative"));
        assert!(err("MiB").contains("expected a number"));
        assert!(err("10XB").contains("unknown size unit"));
        assert!(err("99999999999TiB").contains("too large"));
    }
}
