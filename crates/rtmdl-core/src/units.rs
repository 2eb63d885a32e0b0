//! Human-readable durations ("33 ms", "1.5s") and sizes ("9.5 MiB").
//!
//! Hand-written because the maintained crates do not fit: `humantime` rejects
//! fractions ("2.5ms") and `bytesize` rounds binary units. Both parsers are
//! tiny and are covered by tests below and by the config fuzz tests.

use crate::model::Time;

/// Nanoseconds per unit, for the units a duration may use.
const TIME_UNITS: &[(&str, f64)] = &[
    ("ns", 1.0),
    ("us", 1e3),
    ("µs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("min", 60e9),
];

const SIZE_UNITS: &[(&str, f64)] = &[
    ("B", 1.0),
    ("KB", 1e3),
    ("MB", 1e6),
    ("GB", 1e9),
    ("KiB", 1024.0),
    ("MiB", 1024.0 * 1024.0),
    ("GiB", 1024.0 * 1024.0 * 1024.0),
];

fn split_number(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let number_end = |s: &str| {
        s.char_indices()
            .find(|&(_, c)| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == '_'))
            .map_or(s.len(), |(i, _)| i)
    };
    let mut end = number_end(s);
    // An exponent ("1e30 s"): no unit starts with `e` followed by a digit.
    let exp = &s[end..];
    if exp.starts_with(['e', 'E'])
        && exp[1..]
            .trim_start_matches(['-', '+'])
            .starts_with(|c: char| c.is_ascii_digit())
    {
        end += 1 + number_end(&exp[1..]);
    }
    let number: f64 = s[..end].replace('_', "").parse().ok()?;
    Some((number, s[end..].trim()))
}

/// Parse a duration like `33 ms`, `1.5s`, `250us`, `2 min` into nanoseconds.
/// Negative, non-finite and over-large (> 1 year) values are rejected.
pub fn parse_duration(s: &str) -> Result<Time, String> {
    let expected = "expected a duration like \"33 ms\" (units: ns, us, ms, s, min)";
    let (n, unit) = split_number(s).ok_or_else(|| format!("`{s}`: {expected}"))?;
    let scale = TIME_UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            if unit.is_empty() {
                format!("`{s}` has no unit: {expected}")
            } else {
                format!("unknown time unit `{unit}` in `{s}`: {expected}")
            }
        })?;
    let ns = n * scale;
    if !ns.is_finite() || ns < 0.0 {
        return Err(format!("`{s}`: a duration must be a non-negative number"));
    }
    if ns > 365.0 * 24.0 * 3600.0 * 1e9 {
        return Err(format!("`{s}`: a duration over a year is not plausible"));
    }
    Ok(ns.round() as Time)
}

/// Parse a period: a duration like `33 ms`, or a rate like `30 Hz` (also
/// `kHz`), which is its reciprocal (`30 Hz` is 33.333 ms, rounded to the
/// nanosecond).
pub fn parse_period(s: &str) -> Result<Time, String> {
    let Some((n, unit)) = split_number(s) else {
        return parse_duration(s);
    };
    let hz = match unit {
        "Hz" | "hz" => 1.0,
        "kHz" | "khz" => 1e3,
        _ => {
            return parse_duration(s).map_err(|e| format!("{e}; or a rate like \"30 Hz\""));
        }
    };
    let f = n * hz;
    if !f.is_finite() || f <= 0.0 {
        return Err(format!("`{s}`: a rate must be above 0 Hz"));
    }
    Ok((1e9 / f).round() as Time)
}

/// Parse a size like `9.5 MiB`, `512 KB`, `1200 B` (or a bare number of bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let expected = "expected a size like \"9.5 MiB\" (units: B, KB, MB, GB, KiB, MiB, GiB)";
    let (n, unit) = split_number(s).ok_or_else(|| format!("`{s}`: {expected}"))?;
    let scale = if unit.is_empty() {
        1.0
    } else {
        SIZE_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(|| format!("unknown size unit `{unit}` in `{s}`: {expected}"))?
    };
    let bytes = n * scale;
    if !bytes.is_finite() || !(0.0..=1e15).contains(&bytes) {
        return Err(format!("`{s}`: a size must be between 0 B and 1 PB"));
    }
    Ok(bytes.round() as u64)
}

/// Format nanoseconds as milliseconds with three decimals ("12.345 ms").
pub fn fmt_ms(t: Time) -> String {
    format!("{:.3} ms", t as f64 / 1e6)
}

/// Format bytes with a binary unit ("9.50 MiB").
pub fn fmt_size(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b} B")
    }
}

/// The width of a table column holding `names`: the longest, at least `min`
/// characters (bytes; the names are ASCII in practice).
pub fn column_width<'a>(names: impl IntoIterator<Item = &'a str>, min: usize) -> usize {
    names
        .into_iter()
        .map(str::len)
        .max()
        .unwrap_or(min)
        .max(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_durations_or_rates() {
        assert_eq!(parse_period("30 Hz"), Ok(33_333_333));
        assert_eq!(parse_period("1 kHz"), Ok(1_000_000));
        assert_eq!(parse_period("50 ms"), Ok(50_000_000));
        assert!(parse_period("0 Hz").unwrap_err().contains("above 0 Hz"));
        assert!(parse_period("30 parsecs").unwrap_err().contains("30 Hz"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("33 ms"), Ok(33_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("250us"), Ok(250_000));
        assert_eq!(parse_duration("2 min"), Ok(120_000_000_000));
        assert_eq!(parse_duration("0 ms"), Ok(0));
        assert!(
            parse_duration("33 parsecs")
                .unwrap_err()
                .contains("parsecs")
        );
        assert!(parse_duration("33").unwrap_err().contains("no unit"));
        assert!(parse_duration("-3 ms").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(
            parse_duration("1e30 s")
                .unwrap_err()
                .contains("over a year")
        );
        assert_eq!(parse_duration("1e3 us"), Ok(1_000_000));
        assert_eq!(parse_duration("2.5E-3 s"), Ok(2_500_000));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("9.5 MiB"), Ok(9_961_472));
        assert_eq!(parse_size("512 KB"), Ok(512_000));
        assert_eq!(parse_size("1200"), Ok(1200));
        assert!(parse_size("3 furlongs").is_err());
    }
}
