//! The calendar's answer to `POST /digest`, as the Python calendar builds it.
//!
//! For a submitted `digest`, a round with Merkle tree `T`, unix time `t` and commitment MAC `m`:
//!
//! ```text
//! digest
//!   append(nonce)          16 random bytes, so the leaf reveals nothing and is ours
//!   sha256                 -> leaf of T
//!   (append|prepend(sibling), sha256)*   the leaf's Merkle path -> root of T
//!   prepend(t as 4 bytes big-endian)
//!   append(m)              8 bytes -> the 44-byte commitment t || root || m
//!   attestation Pending(calendar uri)
//! ```
//!
//! Everything after the Merkle path is the same for all digests of a round, so it is encoded once
//! in a [`RoundTail`]. The digest itself is not part of the answer (the client has it), but it must
//! be at most `MAX_MSG_LEN - NONCE_LEN` bytes for the answer to be a valid timestamp; the Python
//! calendar accepts at most 64.

use sha2::{Digest, Sha256};

use super::attestation::Attestation;
use super::merkle::{Hash, Path};
use super::op::Op;
use super::path::{encode_tail, PathWriter};

/// Length of the per-digest nonce.
pub const NONCE_LEN: usize = 16;
/// Length of the commitment MAC.
pub const MAC_LEN: usize = 8;

/// The Merkle leaf for a digest: `sha256(digest || nonce)`.
pub fn nonce_leaf(digest: &[u8], nonce: &[u8; NONCE_LEN]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(digest);
    hasher.update(nonce);
    hasher.finalize().into()
}

/// The encoded end of every answer in one round: time, MAC and pending attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundTail {
    bytes: Vec<u8>,
}

impl RoundTail {
    pub fn new(time: u32, mac: &[u8; MAC_LEN], attestation: &Attestation) -> Self {
        let ops = [
            Op::Prepend(time.to_be_bytes().to_vec()),
            Op::Append(mac.to_vec()),
        ];
        RoundTail {
            bytes: encode_tail(&ops, attestation),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Appends the answer for the digest whose leaf has `path` in the round's tree.
pub fn write_answer(out: &mut Vec<u8>, nonce: &[u8; NONCE_LEN], path: Path<'_>, tail: &RoundTail) {
    let mut writer = PathWriter::new(out);
    writer.append(nonce).sha256();
    for step in path {
        writer.step(&step);
    }
    writer.raw(&tail.bytes);
}
