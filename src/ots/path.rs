//! Linear timestamps written directly, without building a tree.
//!
//! A timestamp in which every node has exactly one operation and the last node exactly one
//! attestation serializes (per [`super::timestamp`]) as the plain concatenation of the operations
//! followed by `0x00` and the attestation: no node ever has a second item, so no `0xff` appears.
//! The calendar answers every `POST /digest` with such a chain, so this is the hot path.
//!
//! The writer does not apply the operations and trusts its caller for their arguments to be
//! `1..=4096` bytes and the chain to stay within python's limits (at most 255 operations, messages
//! of at most 4096 bytes); [`super::timestamp::Timestamp::from_bytes`] checks a result fully.

use super::attestation::Attestation;
use super::merkle::{Side, Step};
use super::op::{Op, TAG_APPEND, TAG_PREPEND, TAG_SHA256};
use super::ser::write_varbytes;

/// Appends a linear timestamp to a buffer, one operation at a time.
#[derive(Debug)]
pub struct PathWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> PathWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        PathWriter { out }
    }

    pub fn op(&mut self, op: &Op) -> &mut Self {
        op.write(self.out);
        self
    }

    pub fn append(&mut self, arg: &[u8]) -> &mut Self {
        self.out.push(TAG_APPEND);
        write_varbytes(self.out, arg);
        self
    }

    pub fn prepend(&mut self, arg: &[u8]) -> &mut Self {
        self.out.push(TAG_PREPEND);
        write_varbytes(self.out, arg);
        self
    }

    pub fn sha256(&mut self) -> &mut Self {
        self.out.push(TAG_SHA256);
        self
    }

    /// A Merkle step: `append` or `prepend` of the sibling, then `sha256`.
    pub fn step(&mut self, step: &Step<'_>) -> &mut Self {
        match step.side {
            Side::Append => self.append(step.sibling),
            Side::Prepend => self.prepend(step.sibling),
        }
        .sha256()
    }

    /// Ends the chain with an attestation.
    pub fn attest(&mut self, attestation: &Attestation) {
        self.out.push(0x00);
        attestation.write(self.out);
    }

    /// Ends the chain with bytes written earlier by [`PathWriter::attest`] (or
    /// [`encode_tail`]), to reuse one encoding across many answers.
    pub fn raw(&mut self, encoded: &[u8]) {
        self.out.extend_from_slice(encoded);
    }
}

/// Writes exactly what python writes for the timestamp `ops[0] -> ops[1] -> ... -> attestation`.
pub fn serialize_path(ops: &[Op], attestation: &Attestation, out: &mut Vec<u8>) {
    let mut writer = PathWriter::new(out);
    for op in ops {
        writer.op(op);
    }
    writer.attest(attestation);
}

/// Encodes the end of a chain (`ops` then the attestation) once, to be appended with
/// [`PathWriter::raw`].
pub fn encode_tail(ops: &[Op], attestation: &Attestation) -> Vec<u8> {
    let mut out = Vec::new();
    serialize_path(ops, attestation, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ots::timestamp::Timestamp;

    #[test]
    fn matches_tree_serialization() {
        let ops = [
            Op::Append(vec![1, 2]),
            Op::Sha256,
            Op::Prepend(vec![3]),
            Op::Keccak256,
        ];
        let att = Attestation::pending("http://x").unwrap();
        let mut tree = Timestamp::new(b"msg".to_vec());
        let mut node = &mut tree;
        for op in &ops {
            node = node.add_op(op.clone()).unwrap();
        }
        node.attestations.insert(att.clone());
        let mut out = Vec::new();
        serialize_path(&ops, &att, &mut out);
        assert_eq!(out, tree.to_bytes().unwrap());
        assert_eq!(Timestamp::from_bytes(&out, b"msg".to_vec()).unwrap(), tree);
    }
}
