//! Errors of the wire format.
//!
//! Decoding errors carry the byte offset into the input at which the problem was found, so a
//! rejected client file or a damaged stored proof can be located. Applying an operation has its own
//! error type because it also happens outside decoding (verifying a path, building a tree).

/// Why an operation could not be applied to a message, or built with an argument.
///
/// These mirror python-opentimestamps' `MsgValueError` and `OpArgValueError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("message too long for {op}: {len} > {max} bytes")]
    MsgTooLong {
        op: &'static str,
        len: usize,
        max: usize,
    },
    #[error("result of {op} too long: {len} > {max} bytes")]
    ResultTooLong {
        op: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{op} cannot be applied to an empty message")]
    EmptyMsg { op: &'static str },
    #[error("{op} argument must be 1..={max} bytes, got {len}")]
    BadArgLength {
        op: &'static str,
        len: usize,
        max: usize,
    },
}

/// Why bytes could not be decoded as an OpenTimestamps structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated at offset {offset}: {wanted} more bytes needed, {available} available")]
    Truncated {
        offset: usize,
        wanted: usize,
        available: usize,
    },
    #[error("varuint at offset {offset} does not fit in 64 bits")]
    VarUintOverflow { offset: usize },
    #[error("length {len} at offset {offset} outside {min}..={max}")]
    LengthOutOfRange {
        offset: usize,
        len: u64,
        min: usize,
        max: usize,
    },
    #[error("unknown operation tag {tag:#04x} at offset {offset}")]
    UnknownOp { offset: usize, tag: u8 },
    #[error("operation {tag:#04x} at offset {offset} is not a file hash operation")]
    NotAHashOp { offset: usize, tag: u8 },
    #[error("invalid timestamp at offset {offset}: {source}")]
    Op { offset: usize, source: OpError },
    #[error("timestamp nested deeper than {limit} levels at offset {offset}")]
    RecursionLimit { offset: usize, limit: usize },
    #[error("pending attestation URI at offset {offset} has a disallowed character or length")]
    InvalidUri { offset: usize },
    #[error("{count} trailing bytes at offset {offset}")]
    TrailingBytes { offset: usize, count: usize },
    #[error("not a detached timestamp file: bad magic header")]
    BadMagic,
    #[error("unsupported detached timestamp file major version {version}")]
    UnsupportedVersion { version: u8 },
}

/// Why a structure could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// python-opentimestamps refuses this too: an empty node has no encoding.
    #[error("a timestamp node with neither attestations nor operations cannot be serialized")]
    EmptyTimestamp,
    #[error(
        "file hash operation {tag:#04x} is not a hash, or the digest length does not match it"
    )]
    BadFileDigest { tag: u8 },
}
