//! The tip trees of final stamping transactions, kept on disk without their lowest levels.
//!
//! A transaction's tip is `make_merkle_tree` over `sha256(commitment)` of its rounds (and the log
//! head, if any, as the last leaf; see [`crate::anchor::proof`]). Because an odd last node is
//! carried up unchanged, node `j` of level `l` always covers exactly leaves `j << l ..
//! (j + 1) << l` (cut at the end), so the tree splits cleanly at level [`LOW_LEVELS`]: each
//! node there is the root of the tree over its [`CHUNK`] leaves, and the levels above are the
//! same construction over those nodes. Only the levels from [`LOW_LEVELS`] up are stored (one
//! hash per `CHUNK` leaves, twice over with the levels above: 2 bytes per round); a proof recomputes
//! its chunk from [`CHUNK`] round entries (one read of 2 KiB, 63 SHA-256 blocks) and reads one
//! sibling per level above it.

use crate::ots::merkle::{next_level, Hash, MerkleTree, Side, Step};

/// Levels recomputed per request.
pub const LOW_LEVELS: u32 = 5;
/// Leaves per stored node of the lowest stored level.
pub const CHUNK: u64 = 1 << LOW_LEVELS;

/// Number of nodes per stored level (lowest first) for a tree of `leaves` leaves.
pub fn level_sizes(leaves: u64) -> Vec<u64> {
    let mut sizes = vec![leaves.div_ceil(CHUNK).max(1)];
    while let Some(&last) = sizes.last().filter(|&&n| n > 1) {
        sizes.push(last.div_ceil(2));
    }
    sizes
}

/// Bytes of the stored levels for `leaves` leaves.
pub fn stored_len(leaves: u64) -> u64 {
    level_sizes(leaves).iter().sum::<u64>() * 32
}

/// The leaf hash of a commitment, as [`crate::anchor::proof::tip_leaves`] makes it (a legacy
/// commitment is hashed as the 36 bytes its clients hold).
pub fn leaf(commitment: &[u8]) -> Hash {
    crate::sha::short(crate::calendar::legacy::client_message(commitment))
}

/// The root of the tree over one chunk's leaves (its node at level [`LOW_LEVELS`]).
pub fn chunk_root(leaves: Vec<Hash>) -> Option<Hash> {
    MerkleTree::new(leaves).map(|t| *t.root())
}

/// Builds the stored levels from the chunk nodes (level [`LOW_LEVELS`]), appending them to `out`,
/// lowest level first. Returns the root (the tip).
pub fn build_levels(mut level: Vec<Hash>, out: &mut Vec<u8>) -> Option<Hash> {
    if level.is_empty() {
        return None;
    }
    loop {
        for h in &level {
            out.extend_from_slice(h);
        }
        if level.len() == 1 {
            return Some(level[0]);
        }
        level = next_level(&level);
    }
}

/// Where the sibling of leaf `index` is on each stored level: (level, node index, side), or no
/// step where the node is carried up.
pub fn upper_siblings(leaves: u64, index: u64) -> Vec<(usize, u64, Side)> {
    let sizes = level_sizes(leaves);
    let mut out = Vec::new();
    for (l, &n) in sizes.iter().enumerate().take(sizes.len() - 1) {
        let j = index >> (LOW_LEVELS + l as u32);
        if j % 2 == 1 {
            out.push((l, j - 1, Side::Prepend));
        } else if j + 1 < n {
            out.push((l, j + 1, Side::Append));
        }
    }
    out
}

/// Byte offset of node `j` of stored level `l` within the stored levels.
pub fn node_offset(leaves: u64, l: usize, j: u64) -> u64 {
    let sizes = level_sizes(leaves);
    (sizes[..l].iter().sum::<u64>() + j) * 32
}

/// Index of the first node of each stored level among all stored nodes (lowest level first), and
/// the total number of stored nodes last: node `j` of level `l` is node `starts[l] + j`.
pub fn level_starts(leaves: u64) -> Vec<u64> {
    let mut starts = vec![0];
    for n in level_sizes(leaves) {
        starts.push(starts[starts.len() - 1] + n);
    }
    starts
}

/// The nodes `first..end` of stored level 0 whose own tree gives leaf `index`'s siblings on the
/// stored levels below `levels`: the aligned run of `2^levels` nodes holding its chunk's node (cut
/// at the level's end). Aligned runs pair exactly as the whole level does, so their tree is the
/// whole tree's, cut below level `levels`.
pub fn low_run(leaves: u64, index: u64, levels: usize) -> (u64, u64) {
    let n = leaves.div_ceil(CHUNK).max(1);
    let first = (index / CHUNK) >> levels << levels;
    (first, (first + (1 << levels)).min(n))
}

/// The steps of leaf `index % CHUNK` within its chunk, owned.
pub fn chunk_steps(chunk: &MerkleTree, index: u64) -> Vec<(Side, Hash)> {
    chunk_steps_at(chunk, (index % CHUNK) as usize)
}

/// The steps of leaf `at` of `tree`, owned (none if there is no such leaf).
pub fn chunk_steps_at(tree: &MerkleTree, at: usize) -> Vec<(Side, Hash)> {
    tree.path(at)
        .map(|p| p.map(|s: Step<'_>| (s.side, *s.sibling)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths from chunk recomputation and stored levels equal the whole tree's, for all shapes.
    #[test]
    fn split_paths_equal_whole_tree_paths() {
        for n in [
            1u64,
            2,
            3,
            31,
            32,
            33,
            64,
            65,
            100,
            1000,
            1025,
            5000,
            16 * 32 * 3 + 40,
        ] {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf(&i.to_le_bytes())).collect();
            let whole = MerkleTree::new(leaves.clone()).unwrap();
            let chunks: Vec<Hash> = leaves
                .chunks(CHUNK as usize)
                .map(|c| chunk_root(c.to_vec()).unwrap())
                .collect();
            let mut stored = Vec::new();
            let root = build_levels(chunks, &mut stored).unwrap();
            assert_eq!(&root, whole.root(), "n={n}");
            assert_eq!(stored.len() as u64, stored_len(n));
            for i in (0..n).step_by(7).chain([n - 1]) {
                let c = (i / CHUNK) as usize;
                let chunk = MerkleTree::new(
                    leaves[c * CHUNK as usize..((c + 1) * CHUNK as usize).min(n as usize)].to_vec(),
                )
                .unwrap();
                let mut steps = chunk_steps(&chunk, i);
                for (l, j, side) in upper_siblings(n, i) {
                    let at = node_offset(n, l, j) as usize;
                    let mut h = [0u8; 32];
                    h.copy_from_slice(&stored[at..at + 32]);
                    steps.push((side, h));
                }
                let want: Vec<(Side, Hash)> = whole
                    .path(i as usize)
                    .unwrap()
                    .map(|s| (s.side, *s.sibling))
                    .collect();
                assert_eq!(steps, want, "n={n} i={i}");
                // The levels below `low` from the tree of an aligned run of level-0 nodes.
                for low in 0..5usize {
                    let mut steps = chunk_steps(&chunk, i);
                    let (first, end) = low_run(n, i, low);
                    let run: Vec<Hash> = (first..end)
                        .map(|j| {
                            let mut h = [0u8; 32];
                            h.copy_from_slice(&stored[j as usize * 32..j as usize * 32 + 32]);
                            h
                        })
                        .collect();
                    let tree = MerkleTree::new(run).unwrap();
                    steps.extend(
                        tree.path((i / CHUNK - first) as usize)
                            .unwrap()
                            .map(|s| (s.side, *s.sibling)),
                    );
                    for (l, j, side) in upper_siblings(n, i).into_iter().filter(|s| s.0 >= low) {
                        let at = node_offset(n, l, j) as usize;
                        let mut h = [0u8; 32];
                        h.copy_from_slice(&stored[at..at + 32]);
                        steps.push((side, h));
                    }
                    assert_eq!(steps, want, "n={n} i={i} low={low}");
                }
            }
        }
    }
}
