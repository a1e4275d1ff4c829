//! Time: now in Unix seconds, and durations as people read them (`1d2h3m4s`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// `seconds` in days, hours, minutes and seconds, leaving out the zero ones: `1d2h3m4s`, `8h`.
pub fn human_duration(seconds: u64) -> String {
    duration_in_units(seconds, 4)
}

/// [`human_duration`] to its two largest units: `3d4h`, `15m`.
pub fn human_duration_approx(seconds: u64) -> String {
    duration_in_units(seconds, 2)
}

fn duration_in_units(seconds: u64, most: usize) -> String {
    let parts = [(seconds / 86_400, "d"), (seconds / 3600 % 24, "h"), (seconds / 60 % 60, "m"), (seconds % 60, "s")];
    let text: String = parts.iter().filter(|(n, _)| *n > 0).take(most).map(|(n, unit)| format!("{n}{unit}")).collect();
    if text.is_empty() {
        "0s".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human_duration(93_784), "1d2h3m4s");
        assert_eq!(human_duration(8 * 3600), "8h");
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration_approx(93_784), "1d2h");
    }
}
