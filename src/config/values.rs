//! Parsing one option's value: booleans, whole numbers in a range, Mosquitto's durations,
//! CPU lists. Each error says what is allowed, for the line's message.

use std::fmt::Display;
use std::time::Duration;

/// `true` or `false`, as Mosquitto spells them.
pub fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got '{v}'")),
    }
}

/// A whole number from `lo` to `hi` inclusive.
pub fn parse_range<T>(v: &str, lo: T, hi: T) -> Result<T, String>
where
    T: TryFrom<i128> + Into<i128> + Display + Copy,
{
    let (lo_wide, hi_wide): (i128, i128) = (lo.into(), hi.into());
    let allowed = || format!("expected a whole number from {lo} to {hi}, got '{v}'");
    let n: i128 = v.parse().map_err(|_| allowed())?;
    if n < lo_wide || n > hi_wide {
        return Err(allowed());
    }
    T::try_from(n).map_err(|_| allowed())
}

/// A whole number with no bound but its type's.
pub fn parse_num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("expected a whole number, got '{v}'"))
}

/// Mosquitto's duration syntax: a number followed by h, d, w, m (months) or y.
pub fn parse_expiration(v: &str) -> Result<Duration, String> {
    let (num, unit) = v.split_at(v.len().saturating_sub(1));
    let n: u64 = num.parse().map_err(|_| format!("expected e.g. 1h, 2d, 1w, 1m, 1y; got '{v}'"))?;
    let hours = match unit {
        "h" => 1,
        "d" => 24,
        "w" => 24 * 7,
        "m" => 24 * 30,
        "y" => 24 * 365,
        _ => return Err(format!("unknown unit in '{v}' (use h, d, w, m or y)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(hours * 3600)))
}

/// Parses a CPU list such as `0,2-5`.
pub fn parse_cpu_list(v: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (parse_num(a)?, parse_num(b)?);
                if a > b {
                    return Err(format!("bad CPU range '{part}'"));
                }
                if b - a >= 1 << 16 {
                    return Err(format!("CPU range '{part}' is too long"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(parse_num(part)?),
        }
    }
    if cpus.is_empty() {
        return Err(format!("empty CPU list '{v}'"));
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_errors_say_what_is_allowed() {
        assert_eq!(
            parse_range::<u16>("70000", 0, 65535).unwrap_err(),
            "expected a whole number from 0 to 65535, got '70000'"
        );
        assert_eq!(
            parse_range::<u16>("x", 1, 10).unwrap_err(),
            "expected a whole number from 1 to 10, got 'x'"
        );
        assert_eq!(parse_range::<i64>("-1", -1, 5), Ok(-1));
    }

    #[test]
    fn durations_and_cpu_lists() {
        assert_eq!(parse_expiration("2d"), Ok(Duration::from_secs(2 * 86400)));
        assert!(parse_expiration("3x").is_err());
        assert_eq!(parse_cpu_list("0,2-3"), Ok(vec![0, 2, 3]));
        assert!(parse_cpu_list("3-1").is_err());
    }
}
