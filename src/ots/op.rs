//! Operations: the edges of a timestamp tree, each turning a message into a new message.
//!
//! Tags, limits and ordering follow python-opentimestamps exactly, because the order of a node's
//! operations decides its serialization: ops sort by tag byte, then by argument bytes.

use std::cmp::Ordering;

use sha2::Digest;

use super::error::{DecodeError, OpError};
use super::ser::{write_varbytes, Reader};

/// Longest message an operation may be applied to (python `Op.MAX_MSG_LENGTH`).
pub const MAX_MSG_LEN: usize = 4096;
/// Longest result an operation may produce (python `Op.MAX_RESULT_LENGTH`).
pub const MAX_RESULT_LEN: usize = 4096;
/// Longest argument of append/prepend: a longer one could only produce a too-long result.
pub const MAX_ARG_LEN: usize = MAX_RESULT_LEN;
/// Longest message hexlify accepts, since it doubles its input.
pub const MAX_HEXLIFY_MSG_LEN: usize = MAX_RESULT_LEN / 2;

pub const TAG_SHA1: u8 = 0x02;
pub const TAG_RIPEMD160: u8 = 0x03;
pub const TAG_SHA256: u8 = 0x08;
pub const TAG_KECCAK256: u8 = 0x67;
pub const TAG_APPEND: u8 = 0xf0;
pub const TAG_PREPEND: u8 = 0xf1;
pub const TAG_REVERSE: u8 = 0xf2;
pub const TAG_HEXLIFY: u8 = 0xf3;

/// An operation. `Append`/`Prepend` arguments must be `1..=MAX_ARG_LEN` bytes; [`Op::apply`]
/// enforces this, and decoding never produces anything else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    Sha1,
    Ripemd160,
    Sha256,
    Keccak256,
    Append(Vec<u8>),
    Prepend(Vec<u8>),
    /// Deprecated in python but still readable.
    Reverse,
    /// Lower-case hexadecimal encoding of the message.
    Hexlify,
}

impl Op {
    pub fn tag(&self) -> u8 {
        match self {
            Op::Sha1 => TAG_SHA1,
            Op::Ripemd160 => TAG_RIPEMD160,
            Op::Sha256 => TAG_SHA256,
            Op::Keccak256 => TAG_KECCAK256,
            Op::Append(_) => TAG_APPEND,
            Op::Prepend(_) => TAG_PREPEND,
            Op::Reverse => TAG_REVERSE,
            Op::Hexlify => TAG_HEXLIFY,
        }
    }

    /// The name python prints for this operation.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Sha1 => "sha1",
            Op::Ripemd160 => "ripemd160",
            Op::Sha256 => "sha256",
            Op::Keccak256 => "keccak256",
            Op::Append(_) => "append",
            Op::Prepend(_) => "prepend",
            Op::Reverse => "reverse",
            Op::Hexlify => "hexlify",
        }
    }

    /// The argument of a binary operation.
    pub fn arg(&self) -> Option<&[u8]> {
        match self {
            Op::Append(arg) | Op::Prepend(arg) => Some(arg),
            _ => None,
        }
    }

    /// Digest length of a hash operation; `None` for the others. Only these may hash a file.
    pub fn digest_len(&self) -> Option<usize> {
        match self {
            Op::Sha1 | Op::Ripemd160 => Some(20),
            Op::Sha256 | Op::Keccak256 => Some(32),
            _ => None,
        }
    }

    /// Applies the operation with python's limits on message, argument and result lengths.
    pub fn apply(&self, msg: &[u8]) -> Result<Vec<u8>, OpError> {
        self.check_msg(msg)?;
        let result = self.compute(msg);
        if result.len() > MAX_RESULT_LEN {
            return Err(OpError::ResultTooLong {
                op: self.name(),
                len: result.len(),
                max: MAX_RESULT_LEN,
            });
        }
        Ok(result)
    }

    fn check_msg(&self, msg: &[u8]) -> Result<(), OpError> {
        let op = self.name();
        let max = match self {
            Op::Hexlify => MAX_HEXLIFY_MSG_LEN,
            _ => MAX_MSG_LEN,
        };
        if msg.len() > max {
            return Err(OpError::MsgTooLong {
                op,
                len: msg.len(),
                max,
            });
        }
        if msg.is_empty() && matches!(self, Op::Reverse | Op::Hexlify) {
            return Err(OpError::EmptyMsg { op });
        }
        match self.arg() {
            Some(arg) if arg.is_empty() || arg.len() > MAX_ARG_LEN => Err(OpError::BadArgLength {
                op,
                len: arg.len(),
                max: MAX_ARG_LEN,
            }),
            _ => Ok(()),
        }
    }

    fn compute(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            Op::Sha1 => sha1::Sha1::digest(msg).to_vec(),
            Op::Ripemd160 => ripemd::Ripemd160::digest(msg).to_vec(),
            Op::Sha256 => sha2::Sha256::digest(msg).to_vec(),
            Op::Keccak256 => sha3::Keccak256::digest(msg).to_vec(),
            Op::Append(arg) => [msg, arg].concat(),
            Op::Prepend(arg) => [arg, msg].concat(),
            Op::Reverse => msg.iter().rev().copied().collect(),
            Op::Hexlify => hex::encode(msg).into_bytes(),
        }
    }

    /// Appends the tag and, for binary operations, the varbytes argument.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        if let Some(arg) = self.arg() {
            write_varbytes(out, arg);
        }
    }

    /// Reads an operation whose tag byte has already been read at `offset`.
    pub fn read_after_tag(r: &mut Reader<'_>, tag: u8, offset: usize) -> Result<Op, DecodeError> {
        let op = match tag {
            TAG_SHA1 => Op::Sha1,
            TAG_RIPEMD160 => Op::Ripemd160,
            TAG_SHA256 => Op::Sha256,
            TAG_KECCAK256 => Op::Keccak256,
            TAG_APPEND => Op::Append(r.read_varbytes(1, MAX_ARG_LEN)?.to_vec()),
            TAG_PREPEND => Op::Prepend(r.read_varbytes(1, MAX_ARG_LEN)?.to_vec()),
            TAG_REVERSE => Op::Reverse,
            TAG_HEXLIFY => Op::Hexlify,
            tag => return Err(DecodeError::UnknownOp { offset, tag }),
        };
        Ok(op)
    }

    /// Reads a hash operation (python `CryptOp.deserialize`), as used for a file's digest.
    pub fn read_hash_op(r: &mut Reader<'_>) -> Result<Op, DecodeError> {
        let offset = r.position();
        let tag = r.read_u8()?;
        match tag {
            TAG_SHA1 | TAG_RIPEMD160 | TAG_SHA256 | TAG_KECCAK256 => {
                Op::read_after_tag(r, tag, offset)
            }
            _ => Err(DecodeError::NotAHashOp { offset, tag }),
        }
    }
}

impl Ord for Op {
    /// python's `Op.__lt__`: by tag, then by argument bytes.
    fn cmp(&self, other: &Self) -> Ordering {
        self.tag()
            .cmp(&other.tag())
            .then_with(|| self.arg().cmp(&other.arg()))
    }
}

impl PartialOrd for Op {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_digests() {
        let cases = [
            (Op::Sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            (Op::Ripemd160, "9c1185a5c5e9fc54612808977ee8f548b2258d31"),
            (
                Op::Sha256,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                Op::Keccak256,
                "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
            ),
        ];
        for (op, want) in cases {
            assert_eq!(hex::encode(op.apply(b"").unwrap()), want, "{}", op.name());
        }
    }

    #[test]
    fn binary_and_unary_ops() {
        assert_eq!(Op::Append(b"cd".to_vec()).apply(b"ab").unwrap(), b"abcd");
        assert_eq!(Op::Prepend(b"cd".to_vec()).apply(b"ab").unwrap(), b"cdab");
        assert_eq!(Op::Reverse.apply(b"abc").unwrap(), b"cba");
        assert_eq!(Op::Hexlify.apply(&[0xAB, 0x01]).unwrap(), b"ab01");
    }

    #[test]
    fn limits_follow_python() {
        assert!(Op::Sha256.apply(&[0; MAX_MSG_LEN]).is_ok());
        assert!(Op::Sha256.apply(&[0; MAX_MSG_LEN + 1]).is_err());
        assert!(Op::Append(vec![1]).apply(&[0; MAX_MSG_LEN]).is_err());
        assert!(Op::Append(vec![]).apply(b"x").is_err());
        assert!(Op::Hexlify.apply(&[0; MAX_HEXLIFY_MSG_LEN + 1]).is_err());
        assert!(Op::Hexlify.apply(b"").is_err());
        assert!(Op::Reverse.apply(b"").is_err());
    }

    #[test]
    fn ordering_is_tag_then_argument() {
        let mut ops = [
            Op::Prepend(vec![0]),
            Op::Append(vec![2]),
            Op::Sha256,
            Op::Append(vec![1, 5]),
            Op::Sha1,
            Op::Keccak256,
        ];
        ops.sort();
        let tags: Vec<u8> = ops.iter().map(Op::tag).collect();
        assert_eq!(tags, [0x02, 0x08, 0x67, 0xf0, 0xf0, 0xf1]);
        assert_eq!(ops[3], Op::Append(vec![1, 5]));
    }
}
