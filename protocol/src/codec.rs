//! The MessagePack codec: the only place in tickforge that calls rmp-serde.
//!
//! Encoding writes structs as arrays (fields in declaration order) and enum variants as a
//! one-entry map from the variant's name to its fields: compact, yet self-describing enough for
//! a client in another language (see `docs/PROTOCOL.md`).
//!
//! Decoding takes a byte slice only (never a stream, so a declared length can never make it
//! wait or allocate past the input), checks the size limit before looking at a byte, caps
//! nesting depth at [`DecodeLimits::max_depth`] (16 by default, in debug builds too: rmp-serde's
//! own default of 1024 overflows a 2 MiB debug stack), refuses trailing bytes, and turns every
//! malformed input into a typed [`DecodeError`].

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{self, Cursor};

/// Limits applied while decoding untrusted bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest input accepted, in bytes.
    pub max_bytes: usize,
    /// The deepest nesting of arrays and maps accepted.
    pub max_depth: usize,
}

impl DecodeLimits {
    /// What the server accepts from a client: 4 KiB frames, 16 levels.
    pub const CLIENT: DecodeLimits = DecodeLimits {
        max_bytes: 4 * 1024,
        max_depth: 16,
    };
    /// What a reader accepts from a log record or a server frame: 16 MiB, 16 levels.
    pub const TRUSTED: DecodeLimits = DecodeLimits {
        max_bytes: 16 * 1024 * 1024,
        max_depth: 16,
    };
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::CLIENT
    }
}

/// Why bytes could not be decoded. Every variant says what was wrong and, where known, where.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("message nests deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("message ends early at byte {offset} of {len}")]
    Truncated { offset: u64, len: usize },
    #[error("wrong type at byte {offset}: {detail}")]
    WrongType { offset: u64, detail: String },
    #[error("invalid message at byte {offset}: {detail}")]
    Invalid { offset: u64, detail: String },
    #[error("{extra} trailing bytes after a complete message of {used} bytes")]
    TrailingBytes { used: u64, extra: u64 },
}

/// Why a value could not be encoded (only values that MessagePack cannot represent, such as
/// maps with non-string keys under some configurations; none of this crate's types).
#[derive(Debug, thiserror::Error)]
#[error("could not encode message: {0}")]
pub struct EncodeError(String);

/// Encode `value` as MessagePack.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Encode `value` as MessagePack, appending to `out` (reuse one buffer on hot paths).
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    rmp_serde::encode::write(out, value).map_err(|e| EncodeError(e.to_string()))
}

/// Decode one message from `bytes` with the client limits ([`DecodeLimits::CLIENT`]).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_with(bytes, DecodeLimits::CLIENT)
}

/// Decode one message from `bytes`, which must hold exactly one value, within `limits`.
pub fn decode_with<T: DeserializeOwned>(
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<T, DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let mut de = rmp_serde::Deserializer::new(Cursor::new(bytes));
    // rmp-serde fails when its counter reaches zero, so allow one more than the levels we accept.
    de.set_max_depth(limits.max_depth + 1);
    let result = T::deserialize(&mut de);
    let offset = de.position();
    match result {
        Ok(value) if offset as usize == bytes.len() => Ok(value),
        Ok(_) => Err(DecodeError::TrailingBytes {
            used: offset,
            extra: bytes.len() as u64 - offset,
        }),
        Err(e) => Err(classify(e, offset, bytes.len(), limits)),
    }
}

fn classify(
    e: rmp_serde::decode::Error,
    offset: u64,
    len: usize,
    limits: DecodeLimits,
) -> DecodeError {
    use rmp_serde::decode::Error as E;
    let eof = |io: &io::Error| io.kind() == io::ErrorKind::UnexpectedEof;
    match e {
        E::DepthLimitExceeded => DecodeError::TooDeep {
            max: limits.max_depth,
        },
        E::InvalidMarkerRead(ref io) | E::InvalidDataRead(ref io) if eof(io) => {
            DecodeError::Truncated { offset, len }
        }
        E::TypeMismatch(marker) => DecodeError::WrongType {
            offset,
            detail: format!("unexpected marker {marker:?}"),
        },
        E::Syntax(ref msg) | E::Uncategorized(ref msg) if msg.contains("invalid type") => {
            DecodeError::WrongType {
                offset,
                detail: msg.clone(),
            }
        }
        other => DecodeError::Invalid {
            offset,
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_limit_counts_levels_exactly() {
        // 16 nested arrays around a nil is accepted as a generic value; 17 is refused.
        fn nested(levels: usize) -> Vec<u8> {
            let mut bytes = vec![0x91; levels];
            bytes.push(0xc0);
            bytes
        }
        assert!(
            decode::<serde::de::IgnoredAny>(&nested(16)).is_ok(),
            "16 levels should be accepted"
        );
        assert_eq!(
            decode::<serde::de::IgnoredAny>(&nested(17)).unwrap_err(),
            DecodeError::TooDeep { max: 16 },
            "17 levels should be refused"
        );
    }

    #[test]
    fn size_limit_is_checked_before_decoding() {
        let bytes = vec![0xc0; 5000];
        assert_eq!(
            decode::<()>(&bytes).unwrap_err(),
            DecodeError::TooLarge {
                len: 5000,
                max: 4096
            }
        );
    }
}
