//! Durations in configuration: `250ms`, `5s`, `5m`, `2h`, `1d`.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Parses `<integer><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` has no unit (use ms, s, m, h or d)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` does not start with a whole number"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        "d" => n.saturating_mul(86_400_000),
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use ms, s, m, h or d)"
            ))
        }
    };
    Ok(Duration::from_millis(ms))
}

/// Serde adapter: `#[serde(deserialize_with = "duration::de")]`.
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

/// Serde adapter for a list of durations.
pub fn de_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter()
        .map(|s| parse(s).map_err(serde::de::Error::custom))
        .collect()
}

/// Serde adapter both ways (`#[serde(with = "duration::both")]`): read as [`de`], written as
/// whole seconds (`"300s"`), for rules that are shown back (a task's detail).
pub mod both {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    /// See [`super::de`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::de(d)
    }

    /// `"<seconds>s"`.
    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", v.as_secs()))
    }
}

/// Serde adapter for an optional duration (with `#[serde(default)]`).
pub fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de(d).map(Some)
}

/// Serde adapter for an optional list of durations (with `#[serde(default)]`).
pub fn de_vec_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
    de_vec(d).map(Some)
}

#[cfg(test)]
mod tests {
    #[test]
    fn units() {
        assert_eq!(
            super::parse("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert_eq!(super::parse("5m"), Ok(std::time::Duration::from_secs(300)));
        assert!(super::parse("5").is_err());
        assert!(super::parse("5w").is_err());
        assert!(super::parse("").is_err());
    }
}
