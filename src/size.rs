//! Byte sizes as people write them on a command line: `64M`, `1G`, `512KiB`.
//!
//! Units are binary (K = 1024), as `ls -h`, `du -h` and most command lines
//! mean them; `KB`, `KiB` and `K` are the same unit here. A bare number is
//! bytes.

/// Parses `65536`, `64K`, `64M`, `1G`, `1T` (with an optional `i`/`iB`/`B`
/// after the letter, any case), or `0`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err("is not a size; use a number and a unit: 64M, 1G, 512K".into());
    }
    let n: u64 = s[..digits]
        .parse()
        .map_err(|_| "has a number too large".to_string())?;
    let unit = s[digits..].trim().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        "t" | "tb" | "ti" | "tib" => 40,
        u => return Err(format!("has an unknown unit '{u}'; use K, M, G or T")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| "is too large".to_string())
}

/// Formats a size the way `parse_size` reads it, in the largest whole unit.
pub fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if n != 0 && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, n) in [
            ("0", 0),
            ("65536", 65536),
            ("64M", 64 << 20),
            ("64m", 64 << 20),
            ("64MiB", 64 << 20),
            ("64 MB", 64 << 20),
            ("1G", 1 << 30),
            ("512k", 512 << 10),
            ("2T", 2 << 40),
            ("10b", 10),
        ] {
            assert_eq!(parse_size(text), Ok(n), "{text}");
        }
        for bad in [
            "",
            "M",
            "-1",
            "1.5G",
            "5x",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(64 << 20), "64M");
        assert_eq!(format_size(1 << 30), "1G");
        assert_eq!(format_size(1500), "1500");
        assert_eq!(format_size(0), "0");
    }
}
