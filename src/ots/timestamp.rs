//! The timestamp tree: a message, the attestations on it, and the operations leading to further
//! messages.
//!
//! Serialization is python-opentimestamps' byte for byte. A node writes its attestations (sorted),
//! then its operations (sorted), each preceded by `0xff` except the very last item, which is how a
//! reader knows the node has ended. An attestation is introduced by `0x00`, an operation by its
//! tag. Decoding untrusted input is bounded: nesting stops at [`MAX_DEPTH`] (python's recursion
//! limit), every length is checked before use, and operation results are limited to 4096 bytes.
//!
//! Decoding is lenient in the ways python is (duplicate operations replace one another, duplicate
//! attestations merge, operations may come in any order), so re-encoding is canonical rather than
//! a copy of the input. Encoding does not check depth; callers building trees deeper than
//! [`MAX_DEPTH`] produce proofs python cannot read.
//!
//! Memory: one input byte can add one node whose message is up to 4096 bytes (e.g. `reverse` of a
//! long message), so a decoded tree may take up to ~4096 times its input size, as in python.
//! Callers that read untrusted proofs must bound the input length.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use super::attestation::Attestation;
use super::error::{DecodeError, EncodeError, OpError};
use super::op::Op;
use super::ser::Reader;

/// Deepest nesting of timestamp nodes decoded (python's `_recursion_limit`): the root plus at
/// most `MAX_DEPTH - 1` operations on any path.
pub const MAX_DEPTH: usize = 256;

const MARK_MORE: u8 = 0xff;
const MARK_ATTESTATION: u8 = 0x00;

/// A node of a timestamp proof. `ops` maps each operation to the node for its result, so a
/// child's `msg` always equals `op.apply(&parent.msg)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timestamp {
    pub msg: Vec<u8>,
    pub attestations: BTreeSet<Attestation>,
    pub ops: BTreeMap<Op, Timestamp>,
}

impl Timestamp {
    pub fn new(msg: Vec<u8>) -> Self {
        Timestamp {
            msg,
            attestations: BTreeSet::new(),
            ops: BTreeMap::new(),
        }
    }

    /// The child for `op`, created if absent (python `OpSet.add`).
    pub fn add_op(&mut self, op: Op) -> Result<&mut Timestamp, OpError> {
        match self.ops.entry(op) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => {
                let child = Timestamp::new(entry.key().apply(&self.msg)?);
                Ok(entry.insert(child))
            }
        }
    }

    /// Every attestation in the tree with the message it attests, depth first in serialization
    /// order.
    pub fn all_attestations(&self) -> Vec<(&[u8], &Attestation)> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            out.extend(node.attestations.iter().map(|a| (node.msg.as_slice(), a)));
            stack.extend(node.ops.values().rev());
        }
        out
    }

    /// Encodes the tree below this node (the node's own message is not written).
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let items = self.attestations.len() + self.ops.len();
        if items == 0 {
            return Err(EncodeError::EmptyTimestamp);
        }
        let mut written = 0;
        for attestation in &self.attestations {
            written += 1;
            mark_more(out, written < items);
            out.push(MARK_ATTESTATION);
            attestation.write(out);
        }
        for (op, child) in &self.ops {
            written += 1;
            mark_more(out, written < items);
            op.write(out);
            child.write(out)?;
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.write(&mut out)?;
        Ok(out)
    }

    /// Decodes a tree for `msg` from the reader, leaving anything after it unread.
    pub fn read(r: &mut Reader<'_>, msg: Vec<u8>) -> Result<Timestamp, DecodeError> {
        read_node(r, msg, MAX_DEPTH)
    }

    /// Decodes a tree for `msg` that must take up all of `bytes`.
    pub fn from_bytes(bytes: &[u8], msg: Vec<u8>) -> Result<Timestamp, DecodeError> {
        let mut r = Reader::new(bytes);
        let timestamp = Self::read(&mut r, msg)?;
        r.expect_end()?;
        Ok(timestamp)
    }
}

fn mark_more(out: &mut Vec<u8>, more: bool) {
    if more {
        out.push(MARK_MORE);
    }
}

fn read_node(r: &mut Reader<'_>, msg: Vec<u8>, depth: usize) -> Result<Timestamp, DecodeError> {
    if depth == 0 {
        return Err(DecodeError::RecursionLimit {
            offset: r.position(),
            limit: MAX_DEPTH,
        });
    }
    let mut node = Timestamp::new(msg);
    loop {
        let offset = r.position();
        let mut tag = r.read_u8()?;
        let more = tag == MARK_MORE;
        if more {
            tag = r.read_u8()?;
        }
        read_item(r, &mut node, tag, offset, depth)?;
        if !more {
            return Ok(node);
        }
    }
}

/// Reads one attestation or one operation with its subtree into `node`.
fn read_item(
    r: &mut Reader<'_>,
    node: &mut Timestamp,
    tag: u8,
    offset: usize,
    depth: usize,
) -> Result<(), DecodeError> {
    if tag == MARK_ATTESTATION {
        node.attestations.insert(Attestation::read(r)?);
        return Ok(());
    }
    let op = Op::read_after_tag(r, tag, offset)?;
    let result = op
        .apply(&node.msg)
        .map_err(|source| DecodeError::Op { offset, source })?;
    let child = read_node(r, result, depth - 1)?;
    node.ops.insert(op, child);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Attestation {
        Attestation::pending("http://a").unwrap()
    }

    #[test]
    fn empty_timestamp_cannot_be_written() {
        assert_eq!(
            Timestamp::new(vec![1]).to_bytes(),
            Err(EncodeError::EmptyTimestamp)
        );
    }

    #[test]
    fn branches_are_marked_and_sorted() {
        let mut t = Timestamp::new(b"m".to_vec());
        t.add_op(Op::Sha256).unwrap().attestations.insert(pending());
        t.add_op(Op::Append(vec![7]))
            .unwrap()
            .attestations
            .insert(pending());
        t.attestations.insert(Attestation::Bitcoin { height: 1 });
        let bytes = t.to_bytes().unwrap();
        assert_eq!(bytes[..2], [0xff, 0x00]);
        let sha_at = 2 + 8 + 2;
        assert_eq!(bytes[sha_at..sha_at + 2], [0xff, 0x08]);
        assert_eq!(Timestamp::from_bytes(&bytes, b"m".to_vec()).unwrap(), t);
    }

    #[test]
    fn depth_limit_matches_python() {
        let chain = |ops: usize| {
            let mut bytes = vec![0x08; ops];
            bytes.push(0x00);
            pending().write(&mut bytes);
            bytes
        };
        assert!(Timestamp::from_bytes(&chain(MAX_DEPTH - 1), vec![0]).is_ok());
        let err = Timestamp::from_bytes(&chain(MAX_DEPTH), vec![0]).unwrap_err();
        assert!(matches!(err, DecodeError::RecursionLimit { .. }));
    }

    #[test]
    fn op_failure_is_a_decode_error() {
        let bytes = [0xf3, 0xf3, 0xf3, 0x00];
        let err = Timestamp::from_bytes(&bytes, vec![1; 1500]).unwrap_err();
        assert!(matches!(err, DecodeError::Op { offset: 1, .. }));
    }

    #[test]
    fn duplicate_ops_collapse_like_python() {
        let mut bytes = vec![0xff, 0x08, 0x00];
        pending().write(&mut bytes);
        bytes.extend_from_slice(&[0x08, 0x00]);
        Attestation::Bitcoin { height: 5 }.write(&mut bytes);
        let t = Timestamp::from_bytes(&bytes, vec![1]).unwrap();
        assert_eq!(t.ops.len(), 1);
        assert_eq!(t.all_attestations().len(), 1);
    }
}
