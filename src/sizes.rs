//! Byte sizes written for people, the one formatter of the crate (manifest pages, build
//! progress, log lines). Hand-written: five lines, where a crate would bring its own
//! choice of units and rounding.

/// `12.3 MB`: decimal units (kB, MB, GB, TB), one decimal from kB on.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_500), "1.5 kB");
        assert_eq!(human_size(123_456_789), "123.5 MB");
        assert_eq!(human_size(2_000_000_000), "2.0 GB");
        assert_eq!(human_size(3_000_000_000_000_000), "3000.0 TB");
    }
}
