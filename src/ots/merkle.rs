//! The Merkle tree of a calendar round, with python-opentimestamps `make_merkle_tree` semantics.
//!
//! Python pairs the nodes of a level left to right, `(0,1), (2,3), ...`; each pair becomes
//! `sha256(left || right)`, reached from the left by `append(right)` then `sha256` and from the
//! right by `prepend(left)` then `sha256`. An odd last node is carried up unchanged, so it gains no
//! step on that level. This is consensus-critical: a different pairing gives different proofs.
//!
//! Instead of a timestamp tree per leaf we keep every level's hashes (about `2n` hashes in all).
//! A leaf's path is then read off by walking its index up the levels: `O(log n)` per leaf without
//! allocation, `O(n log n)` for all of them.

use super::op::Op;

pub type Hash = [u8; 32];

/// Which side the sibling goes on: the step is `append(sibling)` or `prepend(sibling)`, always
/// followed by `sha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Side {
    Append,
    Prepend,
}

/// One level of a leaf's path to the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    pub side: Side,
    pub sibling: &'a Hash,
}

impl Step<'_> {
    /// The step as the two operations python would record.
    pub fn ops(&self) -> [Op; 2] {
        let sibling = self.sibling.to_vec();
        let cat = match self.side {
            Side::Append => Op::Append(sibling),
            Side::Prepend => Op::Prepend(sibling),
        };
        [cat, Op::Sha256]
    }

    /// The hash of the next level up, given this level's hash.
    pub fn apply(&self, msg: &Hash) -> Hash {
        match self.side {
            Side::Append => cat_sha256(msg, self.sibling),
            Side::Prepend => cat_sha256(self.sibling, msg),
        }
    }
}

/// `sha256(left || right)`.
pub fn cat_sha256(left: &Hash, right: &Hash) -> Hash {
    crate::sha::pair(left, right)
}

/// All levels of a round's tree, leaves first, root last.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// Builds the tree; `None` for no leaves (python raises `ValueError`).
    pub fn new(leaves: Vec<Hash>) -> Option<Self> {
        if leaves.is_empty() {
            return None;
        }
        let mut levels = vec![leaves];
        while let Some(level) = levels.last().filter(|l| l.len() > 1) {
            let next = next_level(level);
            levels.push(next);
        }
        Some(MerkleTree { levels })
    }

    pub fn root(&self) -> &Hash {
        // `new` guarantees at least one level and a last level of one hash.
        &self.levels[self.levels.len() - 1][0]
    }

    pub fn leaves(&self) -> &[Hash] {
        &self.levels[0]
    }

    /// The steps from leaf `index` to the root, or `None` if there is no such leaf.
    pub fn path(&self, index: usize) -> Option<Path<'_>> {
        (index < self.leaves().len()).then_some(Path {
            levels: &self.levels,
            level: 0,
            index,
        })
    }
}

/// The level above `level`: pairs hashed with [`cat_sha256`], an odd last node carried up unchanged.
pub fn next_level(level: &[Hash]) -> Vec<Hash> {
    let mut next: Vec<Hash> = level
        .chunks_exact(2)
        .map(|p| cat_sha256(&p[0], &p[1]))
        .collect();
    if level.len() % 2 == 1 {
        next.push(level[level.len() - 1]);
    }
    next
}

/// Iterator over one leaf's steps, lowest level first. Carried-up levels yield nothing.
#[derive(Debug, Clone)]
pub struct Path<'a> {
    levels: &'a [Vec<Hash>],
    level: usize,
    index: usize,
}

impl<'a> Iterator for Path<'a> {
    type Item = Step<'a>;

    fn next(&mut self) -> Option<Step<'a>> {
        while self.level + 1 < self.levels.len() {
            let nodes = &self.levels[self.level];
            let index = self.index;
            self.level += 1;
            self.index /= 2;
            if index % 2 == 1 {
                return Some(Step {
                    side: Side::Prepend,
                    sibling: &nodes[index - 1],
                });
            }
            if let Some(sibling) = nodes.get(index + 1) {
                return Some(Step {
                    side: Side::Append,
                    sibling,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| Sha256::digest((i as u64).to_be_bytes()).into())
            .collect()
    }

    #[test]
    fn no_leaves_no_tree() {
        assert!(MerkleTree::new(vec![]).is_none());
    }

    #[test]
    fn single_leaf_is_its_own_root() {
        let tree = MerkleTree::new(leaves(1)).unwrap();
        assert_eq!(tree.root(), &leaves(1)[0]);
        assert_eq!(tree.path(0).unwrap().count(), 0);
        assert!(tree.path(1).is_none());
    }

    #[test]
    fn three_leaves_carry_the_last() {
        let l = leaves(3);
        let tree = MerkleTree::new(l.clone()).unwrap();
        let left = cat_sha256(&l[0], &l[1]);
        assert_eq!(tree.root(), &cat_sha256(&left, &l[2]));
        let path: Vec<_> = tree.path(2).unwrap().collect();
        assert_eq!(
            path,
            [Step {
                side: Side::Prepend,
                sibling: &left
            }]
        );
    }

    #[test]
    fn every_path_reaches_the_root() {
        for n in 1..40 {
            let tree = MerkleTree::new(leaves(n)).unwrap();
            for (i, leaf) in tree.leaves().iter().enumerate() {
                let top = tree
                    .path(i)
                    .unwrap()
                    .fold(*leaf, |msg, step| step.apply(&msg));
                assert_eq!(&top, tree.root(), "n={n} i={i}");
            }
        }
    }
}
