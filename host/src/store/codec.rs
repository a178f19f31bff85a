//! The one record codec: bincode 2 (serde, standard config) behind a leading format-version
//! byte. Switching encodings later (postcard, wincode) is a change to this file only.

use serde::{de::DeserializeOwned, Serialize};

/// The record format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("the record is empty")]
    Empty,
    #[error("the record has format version {0}, newer than this build understands ({FORMAT_VERSION}); upgrade jobhost")]
    Newer(u8),
    #[error("the record has unknown format version {0}")]
    Unknown(u8),
    #[error("the record does not decode: {0}")]
    Corrupt(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Encoding our own plain structs into a Vec cannot fail: no I/O, no unsupported types.
    bincode::serde::encode_into_std_write(value, &mut out, config()).expect("records encode");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    match version {
        FORMAT_VERSION => {}
        v if v > FORMAT_VERSION => return Err(CodecError::Newer(v)),
        v => return Err(CodecError::Unknown(v)),
    }
    let (value, used) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::Corrupt(format!("{} trailing bytes", body.len() - used)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_cannot_read() {
        let value = (7u64, "x".to_owned(), Some(-3i64));
        let bytes = encode(&value);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<(u64, String, Option<i64>)>(&bytes), Ok(value));

        assert_eq!(decode::<u64>(&[]), Err(CodecError::Empty));
        assert_eq!(decode::<u64>(&[FORMAT_VERSION + 1, 0]), Err(CodecError::Newer(FORMAT_VERSION + 1)));
        assert_eq!(decode::<u64>(&[0, 0]), Err(CodecError::Unknown(0)));
        assert!(matches!(decode::<String>(&[FORMAT_VERSION, 200]), Err(CodecError::Corrupt(_))));
        let mut trailing = encode(&1u8);
        trailing.push(9);
        assert!(matches!(decode::<u8>(&trailing), Err(CodecError::Corrupt(_))));
    }
}
