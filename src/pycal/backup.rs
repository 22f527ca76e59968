//! The Python otsd's backup chunk (`GET /experimental/backup/<N>`), which its `otsd-backup`
//! mirror downloads: byte for byte, so existing mirrors keep working against otsd.
//!
//! Chunk `N` covers the journal indices `PAGING·N .. PAGING·N + PAGING - 1` (in otsd: the rounds
//! with those numbers, an imported calendar's rounds being its journal's records in order). Its
//! body lists every node of the 1000 commitments' proofs as the Python db holds them, sorted by
//! key bytes, each once (a node shared by several proofs, such as a transaction's tip, is one
//! entry; within a chunk the Python map keeps one value per key too):
//!
//! ```text
//! entry = varuint(len key) || key || varuint(len value) || value
//! key   = the node's message (1..4096 bytes)
//! value = varuint(n attestations) || attestation* || varuint(n ops) || op*
//!         attestation = tag[8] || varbytes(payload); op = tag[1] [|| varbytes(arg)]
//! ```
//!
//! `value` describes one node, not its subtree: the children are found by applying the ops. See
//! `log-format/python-calendar.md` and `../shared/notes/python-calendar-format.md` section 4.
use std::collections::BTreeMap;

use crate::ots::ser::write_varuint;
use crate::ots::timestamp::Timestamp;

/// Commitments per chunk (Python's `PAGING`).
pub const PAGING: u64 = 1000;

/// Largest chunk number served: the Python cache names chunks with six digits.
pub const MAX_CHUNK: u64 = 999_999;

/// The nodes of a chunk being built, keyed by message (bounded by the 1000 proofs it holds).
#[derive(Debug, Default)]
pub struct ChunkBuilder {
    nodes: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl ChunkBuilder {
    /// Adds every node of `proof` (rooted at the commitment).
    pub fn add(&mut self, proof: &Timestamp) {
        let mut stack = vec![proof];
        while let Some(node) = stack.pop() {
            self.nodes.insert(node.msg.clone(), node_value(node));
            stack.extend(node.ops.values());
        }
    }

    /// The chunk's bytes.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in self.nodes {
            write_varuint(&mut out, key.len() as u64);
            out.extend_from_slice(&key);
            write_varuint(&mut out, value.len() as u64);
            out.extend_from_slice(&value);
        }
        out
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// One node as a Python db row: its attestations and ops, without the children's subtrees.
pub fn node_value(node: &Timestamp) -> Vec<u8> {
    let mut out = Vec::new();
    write_varuint(&mut out, node.attestations.len() as u64);
    for a in &node.attestations {
        a.write(&mut out);
    }
    write_varuint(&mut out, node.ops.len() as u64);
    for op in node.ops.keys() {
        op.write(&mut out);
    }
    out
}

/// Python's `int(s)` for the chunk number in the path, limited to `0..=MAX_CHUNK` (anything else
/// is a `404` there too): optional `+`, decimal digits with single `_` between them.
pub fn parse_chunk(s: &str) -> Option<u64> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    let n = clean.trim_start_matches('0');
    if n.len() > 7 {
        return None;
    }
    let n: u64 = if n.is_empty() { 0 } else { n.parse().ok()? };
    (n <= MAX_CHUNK).then_some(n)
}

/// The chunk's path under `backup_cache/`, as Python names it: `001/001234` for chunk 1234.
pub fn cache_rel_path(chunk: u64) -> std::path::PathBuf {
    let name = format!("{chunk:0>6}");
    std::path::Path::new(&name[..3]).join(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ots::attestation::Attestation;
    use crate::ots::op::Op;

    #[test]
    fn chunk_numbers_parse_as_python_int_within_the_cache_s_six_digits() {
        for (s, n) in [
            ("0", 0),
            ("5", 5),
            ("+5", 5),
            ("0005", 5),
            ("1_0", 10),
            ("999999", 999_999),
        ] {
            assert_eq!(parse_chunk(s), Some(n), "{s}");
        }
        for s in [
            "",
            "-1",
            "1__0",
            "_1",
            "1_",
            "x",
            "1.0",
            "1000000",
            "99999999999999999999",
        ] {
            assert_eq!(parse_chunk(s), None, "{s}");
        }
    }

    #[test]
    fn cache_paths_are_python_s() {
        assert_eq!(cache_rel_path(1234), std::path::Path::new("001/001234"));
        assert_eq!(cache_rel_path(0), std::path::Path::new("000/000000"));
    }

    #[test]
    fn nodes_are_rows_sorted_by_key_and_shared_nodes_appear_once() {
        // Two commitments whose paths meet at one tip, attested at height 5.
        let tip_of = |c: &[u8], sibling: u8, left: bool| {
            let mut t = Timestamp::new(c.to_vec());
            let leaf = t.add_op(Op::Sha256).unwrap();
            let op = if left {
                Op::Append(vec![sibling; 32])
            } else {
                Op::Prepend(vec![sibling; 32])
            };
            let cat = leaf.add_op(op).unwrap();
            let tip = cat.add_op(Op::Sha256).unwrap();
            tip.attestations.insert(Attestation::Bitcoin { height: 5 });
            t
        };
        let a = tip_of(b"a", 1, true);
        let b_ = tip_of(b"b", 2, false);
        let mut b = ChunkBuilder::default();
        b.add(&a);
        assert_eq!(b.len(), 4);
        b.add(&b_);
        b.add(&a);
        assert_eq!(b.len(), 8, "a node already in the chunk is not repeated");
        let bytes = b.finish();
        let mut r = crate::ots::ser::Reader::new(&bytes);
        let mut rows = Vec::new();
        while r.remaining() > 0 {
            let k = r.read_varbytes(1, 4096).unwrap().to_vec();
            let v = r.read_varbytes(0, 1 << 20).unwrap().to_vec();
            rows.push((k, v));
        }
        assert_eq!(rows.len(), 8);
        assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "sorted by key");
        let value_of = |k: &[u8]| rows.iter().find(|r| r.0 == k).unwrap().1.clone();
        assert_eq!(
            value_of(b"a"),
            [0, 1, 0x08],
            "no attestation, one op: sha256"
        );
        let mut append = vec![0, 1, 0xf0, 32];
        append.extend([1; 32]);
        let leaf_a = Op::Sha256.apply(b"a").unwrap();
        assert_eq!(value_of(&leaf_a), append);
        let tip = a.ops.values().next().unwrap().ops.values().next().unwrap();
        let tip = tip.ops.values().next().unwrap();
        let mut attested = vec![1, 0x05, 0x88, 0x96, 0x0d, 0x73, 0xd7, 0x19, 0x01, 1, 5, 0];
        assert_eq!(value_of(&tip.msg), attested.split_off(0));
    }
}
