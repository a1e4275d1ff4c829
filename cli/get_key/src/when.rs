//! Times as the original ssh-ca (and `ssh-keygen -V`) takes them: `+30m`, `-5m`, `+2h`, `+1d`,
//! `+1w`, `+90s`, or an absolute `YYYYMMDDHHMMSS` (UTC).

use anyhow::{bail, Context, Result};
use time::macros::format_description;
use time::PrimitiveDateTime;

/// A time given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Seconds from now (may be negative).
    Relative(i64),
    /// Unix seconds.
    Absolute(u64),
}

impl When {
    pub fn parse(text: &str) -> Result<Self> {
        let hint = "write it as +30m, +2h, +1d, +1w (or -5m for the past), or YYYYMMDDHHMMSS in UTC";
        if let Some(sign) = text.chars().next().filter(|c| *c == '+' || *c == '-') {
            let body = &text[1..];
            let split = body.find(|c: char| !c.is_ascii_digit()).unwrap_or(body.len());
            let (digits, unit) = body.split_at(split);
            let amount: i64 = digits.parse().with_context(|| format!("{text:?} has no number: {hint}"))?;
            let scale = match unit {
                "" | "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                "w" => 7 * 86_400,
                _ => bail!("{text:?} has an unknown unit {unit:?}: {hint}"),
            };
            let seconds = amount.checked_mul(scale).with_context(|| format!("{text:?} is too far away"))?;
            return Ok(When::Relative(if sign == '-' { -seconds } else { seconds }));
        }
        let format = format_description!("[year][month][day][hour][minute][second]");
        let at = PrimitiveDateTime::parse(text, format).with_context(|| format!("{text:?} is not a time: {hint}"))?;
        let unix = at.assume_utc().unix_timestamp();
        Ok(When::Absolute(u64::try_from(unix).with_context(|| format!("{text:?} is before 1970"))?))
    }

    /// The absolute Unix time this names, `now` being the current one.
    pub fn at(self, now: u64) -> u64 {
        match self {
            When::Relative(seconds) => now.saturating_add_signed(seconds),
            When::Absolute(unix) => unix,
        }
    }
}

/// A positive duration: `30m`, `+2h`, `1d`, `1w`.
pub fn duration(text: &str) -> Result<u64> {
    let relative = if text.starts_with('+') { text.to_owned() } else { format!("+{text}") };
    match When::parse(&relative)? {
        When::Relative(seconds) if seconds > 0 => Ok(seconds as u64),
        _ => bail!("{text:?} is not a positive duration: write it as 30m, 2h, 1d or 1w"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_times() {
        assert_eq!(When::parse("+30m").unwrap(), When::Relative(1800));
        assert_eq!(When::parse("+2h").unwrap(), When::Relative(7200));
        assert_eq!(When::parse("+1d").unwrap(), When::Relative(86_400));
        assert_eq!(When::parse("+1w").unwrap(), When::Relative(604_800));
        assert_eq!(When::parse("-5m").unwrap(), When::Relative(-300));
        assert_eq!(When::parse("+0m").unwrap(), When::Relative(0));
        assert_eq!(When::parse("20300101000000").unwrap(), When::Absolute(1_893_456_000));
        for bad in ["2h", "+2x", "+", "tomorrow", "20301301000000", "+99999999999999999999d"] {
            assert!(When::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(When::Relative(-10).at(5), 0);
    }
}
