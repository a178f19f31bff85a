//! Durations from outside (config values and CLI flags), written the human way: `"30s"`,
//! `"5m"`, `"1h 30m"`, `"7d"`; `"never"` where a limit may be absent.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The one parser for durations from outside.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| {
        format!("invalid duration {text:?}: {e} (write e.g. \"500ms\", \"30s\", \"5m\", \"7d\")")
    })
}

/// For `#[serde(deserialize_with = "...")]`: a duration.
pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Like [`required`]; `"never"` means no limit.
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "never" {
        return Ok(None);
    }
    parse_duration(&text).map(Some).map_err(serde::de::Error::custom)
}
