//! The round Merkle tree against python-opentimestamps' `make_merkle_tree`.
//!
//! Two references: a straightforward port of the python loop that builds the timestamp graph
//! (an arena of nodes linked by operations, as python links `Timestamp` objects), for every size
//! from 1 to 70 leaves; and tests/vectors/python-ots-fixtures.json, produced by python itself with
//! tests/vectors/gen_python_fixtures.py, which holds roots and the exact serialized leaf proofs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]

use std::path::PathBuf;

use otsd::ots::merkle::Hash;
use otsd::ots::path::PathWriter;
use otsd::ots::{Attestation, MerkleTree, Op, Timestamp};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Python's timestamp graph: each node's message and the single operation leaving it (every
/// node of a Merkle tree has at most one, which python shares between the two parents of a pair).
struct Arena {
    msgs: Vec<Vec<u8>>,
    next: Vec<Option<(Op, usize)>>,
}

impl Arena {
    fn node(&mut self, msg: Vec<u8>) -> usize {
        self.msgs.push(msg);
        self.next.push(None);
        self.msgs.len() - 1
    }

    fn link(&mut self, from: usize, op: Op, to: usize) {
        assert_eq!(
            op.apply(&self.msgs[from]).expect("op applies"),
            self.msgs[to]
        );
        assert!(self.next[from].is_none(), "python would branch here");
        self.next[from] = Some((op, to));
    }

    /// python `cat_sha256(left, right)`.
    fn cat_sha256(&mut self, left: usize, right: usize) -> usize {
        let (l, r) = (self.msgs[left].clone(), self.msgs[right].clone());
        let cat = self.node([l.as_slice(), r.as_slice()].concat());
        self.link(left, Op::Append(r), cat);
        self.link(right, Op::Prepend(l), cat);
        let hashed = self.node(Sha256::digest(&self.msgs[cat]).to_vec());
        self.link(cat, Op::Sha256, hashed);
        hashed
    }

    /// python `make_merkle_tree`, loop for loop.
    fn make_merkle_tree(&mut self, mut stamps: Vec<usize>) -> usize {
        loop {
            let mut iter = stamps.into_iter();
            let mut prev = Some(iter.next().expect("need at least one timestamp"));
            let mut next_stamps = Vec::new();
            for stamp in iter {
                match prev.take() {
                    Some(p) => next_stamps.push(self.cat_sha256(p, stamp)),
                    None => prev = Some(stamp),
                }
            }
            if next_stamps.is_empty() {
                return prev.expect("single stamp left");
            }
            next_stamps.extend(prev);
            stamps = next_stamps;
        }
    }

    fn ops_from(&self, mut node: usize) -> Vec<Op> {
        let mut ops = Vec::new();
        while let Some((op, to)) = &self.next[node] {
            ops.push(op.clone());
            node = *to;
        }
        ops
    }
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n as u32)
        .map(|i| Sha256::digest([(n as u32).to_be_bytes(), i.to_be_bytes()].concat()).into())
        .collect()
}

fn pending() -> Attestation {
    Attestation::pending("https://calendar.example.org").expect("valid uri")
}

/// Leaf `i`'s proof as our writer produces it.
fn our_proof(tree: &MerkleTree, i: usize, attestation: &Attestation) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = PathWriter::new(&mut out);
    for step in tree.path(i).expect("leaf exists") {
        writer.step(&step);
    }
    writer.attest(attestation);
    out
}

/// The same proof built as a tree and serialized the general way.
fn tree_proof(leaf: &Hash, ops: &[Op], attestation: &Attestation) -> Vec<u8> {
    let mut root = Timestamp::new(leaf.to_vec());
    let mut node = &mut root;
    for op in ops {
        node = node.add_op(op.clone()).expect("op applies");
    }
    node.attestations.insert(attestation.clone());
    root.to_bytes().expect("non-empty")
}

#[test]
fn matches_python_loop_for_1_to_70_leaves() {
    let attestation = pending();
    for n in 1..=70 {
        let leaves = leaves(n);
        let mut arena = Arena {
            msgs: Vec::new(),
            next: Vec::new(),
        };
        let ids: Vec<usize> = leaves.iter().map(|l| arena.node(l.to_vec())).collect();
        let root = arena.make_merkle_tree(ids.clone());
        let tree = MerkleTree::new(leaves.clone()).expect("leaves");
        assert_eq!(tree.root().as_slice(), arena.msgs[root], "root, n={n}");
        for (i, id) in ids.into_iter().enumerate() {
            let python_ops = arena.ops_from(id);
            let our_ops: Vec<Op> = tree.path(i).expect("leaf").flat_map(|s| s.ops()).collect();
            assert_eq!(our_ops, python_ops, "path n={n} i={i}");
            let proof = tree_proof(&leaves[i], &python_ops, &attestation);
            assert_eq!(
                our_proof(&tree, i, &attestation),
                proof,
                "bytes n={n} i={i}"
            );
        }
    }
}

fn fixtures() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/python-ots-fixtures.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture json")
}

#[test]
fn matches_python_opentimestamps_output() {
    let fixtures = fixtures();
    let attestation = Attestation::pending(fixtures["uri"].as_str().expect("uri")).expect("uri");
    let cases = fixtures["merkle"].as_array().expect("merkle cases");
    assert!(cases.len() >= 70);
    for case in cases {
        let n = case["n"].as_u64().expect("n") as usize;
        let tree = MerkleTree::new(leaves(n)).expect("leaves");
        assert_eq!(
            hex::encode(tree.root()),
            case["root"].as_str().expect("root"),
            "root n={n}"
        );
        let proofs: Vec<Vec<u8>> = (0..n).map(|i| our_proof(&tree, i, &attestation)).collect();
        assert_eq!(
            hex::encode(Sha256::digest(proofs.concat())),
            case["paths_sha256"],
            "n={n}"
        );
        if let Some(paths) = case["paths"].as_array() {
            for (i, want) in paths.iter().enumerate() {
                assert_eq!(
                    hex::encode(&proofs[i]),
                    want.as_str().expect("hex"),
                    "n={n} i={i}"
                );
            }
        }
    }
}

#[test]
fn large_round_paths_all_reach_the_root() {
    let n = 20_011;
    let tree = MerkleTree::new(leaves(n)).expect("leaves");
    let max_steps = (n as f64).log2().ceil() as usize;
    for (i, leaf) in tree.leaves().iter().enumerate() {
        let mut steps = 0;
        let top = tree.path(i).expect("leaf").fold(*leaf, |msg, step| {
            steps += 1;
            step.apply(&msg)
        });
        assert_eq!(&top, tree.root());
        assert!(steps <= max_steps);
    }
}
