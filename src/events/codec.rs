//! The one place that knows how event payloads are encoded (CBOR through `serde_cbor` today).
//!
//! `serde_cbor` is unmaintained; every caller goes through [`encode`] and [`decode`], so swapping the
//! codec touches this file only. Structs are written "packed" (fields by index, not by name), which
//! keeps a `DigestSubmitted` small; field order is therefore part of the format. What each event
//! writes (byte strings for fixed arrays, a seal without its derivable commitment) is decided by
//! its serde shape, in `wire.rs`, not here; the byte layout is in `log-format/README.md`.
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// A payload could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("codec: {0}")]
pub struct CodecError(String);

/// Encodes a value as packed CBOR.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    serde_cbor::ser::to_vec_packed(value).map_err(|e| CodecError(e.to_string()))
}

/// Decodes packed CBOR written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    serde_cbor::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
}

/// Decodes packed CBOR written by [`encode`] into a value that borrows from `bytes` (byte
/// strings as slices, no copy).
pub fn decode_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    serde_cbor::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
}
