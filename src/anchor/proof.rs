//! Complete proofs: commitment -> Merkle tip of the transaction's commitments -> txid -> block
//! Merkle root -> `BitcoinBlockHeaderAttestation(height)`, as the Python stamper builds them.
//!
//! - The tip is python-opentimestamps `make_merkle_tree` over `sha256(commitment)` of the covered
//!   rounds in order (the Python stamper hashes the 44-byte commitments first), followed by the
//!   log's public chain head (already a 32-byte hash, used as is) when the transaction commits to
//!   one ([`crate::events::LogHead`]); every leaf is a 32-byte hash and [`MerkleTree`] applies.
//!   A commitment's proof keeps the shape clients expect (`sha256`, then append/prepend-sha256
//!   steps); the head's proof is the same without the first `sha256`.
//! - The transaction step is `prepend(bytes before the tip) append(bytes after) sha256 sha256` over
//!   the transaction's serialization without witness (the txid preimage).
//! - The block step is Bitcoin's Merkle tree (an odd last node is paired with itself), each level
//!   `append|prepend(sibling) sha256 sha256`.
//!
//! Only what a proof needs is kept per confirmed transaction ([`TxProof`]: the tx split and the
//! branch, about 400 bytes), not the block's txid list.
use sha2::{Digest, Sha256};

use crate::ots::attestation::Attestation;
use crate::ots::merkle::{Hash, MerkleTree, Side};
use crate::ots::path::PathWriter;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("the transaction does not contain the tip")]
    TipNotInTx,
    #[error("the txid is not in the block's transaction list")]
    TxNotInBlock,
    #[error("the block's transaction list is not a whole number of 32-byte txids")]
    BadTxidList,
    #[error("no commitments")]
    Empty,
}

/// The leaves of the tip tree: `sha256` of each commitment (of its 36 bytes for a padded legacy
/// one, see [`crate::calendar::legacy`]), then the log head if any.
pub fn tip_leaves<'a>(
    commitments: impl IntoIterator<Item = &'a [u8]>,
    log_head: Option<&Hash>,
) -> Vec<Hash> {
    commitments
        .into_iter()
        .map(|c| Sha256::digest(crate::calendar::legacy::client_message(c)).into())
        .chain(log_head.copied())
        .collect()
}

/// The tip committed in the transaction's OP_RETURN for these commitments and log head.
pub fn stamp_tip<'a>(
    commitments: impl IntoIterator<Item = &'a [u8]>,
    log_head: Option<&Hash>,
) -> Option<Hash> {
    MerkleTree::new(tip_leaves(commitments, log_head)).map(|t| *t.root())
}

fn sha256d(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Sha256::digest(h.finalize()).into()
}

/// What is kept per confirmed stamping transaction to prove any of its commitments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxProof {
    /// Non-witness serialization before and after the tip.
    pub prefix: Vec<u8>,
    pub suffix: Vec<u8>,
    /// From the txid (internal byte order) up to the block's Merkle root.
    pub branch: Vec<(Side, Hash)>,
    pub height: u32,
}

impl TxProof {
    /// Builds the proof data from the transaction (serialized without witness), its tip, and the
    /// block's txids (internal byte order, concatenated).
    pub fn new(
        tx_no_witness: &[u8],
        tip: &Hash,
        block_txids: &[u8],
        height: u32,
    ) -> Result<TxProof, ProofError> {
        let at = tx_no_witness
            .windows(32)
            .position(|w| w == tip)
            .ok_or(ProofError::TipNotInTx)?;
        let (prefix, rest) = tx_no_witness.split_at(at);
        let txid = sha256d(&[tx_no_witness]);
        if !block_txids.len().is_multiple_of(32) {
            return Err(ProofError::BadTxidList);
        }
        let txids: Vec<Hash> = block_txids
            .chunks_exact(32)
            .map(|c| c.try_into().unwrap_or([0; 32]))
            .collect();
        let index = txids
            .iter()
            .position(|t| *t == txid)
            .ok_or(ProofError::TxNotInBlock)?;
        Ok(TxProof {
            prefix: prefix.to_vec(),
            suffix: rest[32..].to_vec(),
            branch: block_branch(txids, index),
            height,
        })
    }

    /// The block Merkle root the branch leads to (for checks).
    pub fn root(&self, tip: &Hash) -> Hash {
        let mut msg = sha256d(&[&self.prefix, tip, &self.suffix]);
        for (side, sibling) in &self.branch {
            msg = match side {
                Side::Append => sha256d(&[&msg, sibling]),
                Side::Prepend => sha256d(&[sibling, &msg]),
            };
        }
        msg
    }
}

/// The txid (internal byte order) of the transaction `tx` describes when it commits to `tip`.
pub fn txid_of(tx: &TxProof, tip: &Hash) -> Hash {
    sha256d(&[&tx.prefix, tip, &tx.suffix])
}

/// Writes the part of every proof in `tx` that follows the tip: into the transaction, up the
/// block's Merkle tree, and the attestation. The same bytes end every commitment's proof.
pub fn write_tx_tail(out: &mut Vec<u8>, tx: &TxProof) {
    write_tail(&mut PathWriter::new(out), tx);
}

fn write_tail(w: &mut PathWriter<'_>, tx: &TxProof) {
    w.prepend(&tx.prefix).append(&tx.suffix).sha256().sha256();
    for (side, sibling) in &tx.branch {
        match side {
            Side::Append => w.append(sibling),
            Side::Prepend => w.prepend(sibling),
        }
        .sha256()
        .sha256();
    }
    w.attest(&Attestation::Bitcoin {
        height: u64::from(tx.height),
    });
}

/// The transaction's serialization without witness: the txid preimage.
pub fn no_witness_bytes(tx: &bitcoin::Transaction) -> Vec<u8> {
    let mut stripped = tx.clone();
    for input in &mut stripped.input {
        input.witness.clear();
    }
    bitcoin::consensus::encode::serialize(&stripped)
}

/// Bitcoin's Merkle branch of `txids[index]` (the one implementation otsd's proofs use;
/// `audit::proofs::block_merkle_root` re-derives the root independently, as a cross-check).
fn block_branch(mut level: Vec<Hash>, mut index: usize) -> Vec<(Side, Hash)> {
    let mut branch = Vec::new();
    while level.len() > 1 {
        if !level.len().is_multiple_of(2) {
            level.push(level[level.len() - 1]);
        }
        branch.push(if index.is_multiple_of(2) {
            (Side::Append, level[index + 1])
        } else {
            (Side::Prepend, level[index - 1])
        });
        level = level
            .chunks_exact(2)
            .map(|p| sha256d(&[&p[0], &p[1]]))
            .collect();
        index /= 2;
    }
    branch
}

/// Writes the complete proof of `commitments[index]` (the timestamp on the commitment itself) in a
/// transaction whose tip also commits to `log_head`.
pub fn write_proof(
    out: &mut Vec<u8>,
    commitments: &[&[u8]],
    log_head: Option<&Hash>,
    index: usize,
    tx: &TxProof,
) -> Result<(), ProofError> {
    let tree = tip_tree(commitments.iter().copied(), log_head).ok_or(ProofError::Empty)?;
    write_commitment_proof(out, &tree, commitments.len(), index, tx)
}

/// The tip's whole Merkle tree (see [`tip_leaves`]), to write many proofs from one transaction.
pub fn tip_tree<'a>(
    commitments: impl IntoIterator<Item = &'a [u8]>,
    log_head: Option<&Hash>,
) -> Option<MerkleTree> {
    MerkleTree::new(tip_leaves(commitments, log_head))
}

/// [`write_proof`] from a [`tip_tree`] over `commitments` commitments (and maybe a log head).
pub fn write_commitment_proof(
    out: &mut Vec<u8>,
    tree: &MerkleTree,
    commitments: usize,
    index: usize,
    tx: &TxProof,
) -> Result<(), ProofError> {
    if index >= commitments {
        return Err(ProofError::Empty);
    }
    let mut w = PathWriter::new(out);
    w.sha256();
    write_tree_proof(&mut w, tree, index, tx)
}

/// Writes the complete proof of `log_head` (the timestamp on the 32-byte chain value) in a
/// transaction covering `commitments`.
pub fn write_head_proof(
    out: &mut Vec<u8>,
    commitments: &[&[u8]],
    log_head: &Hash,
    tx: &TxProof,
) -> Result<(), ProofError> {
    let leaves = tip_leaves(commitments.iter().copied(), Some(log_head));
    write_leaf_proof(&mut PathWriter::new(out), leaves, commitments.len(), tx)
}

/// From `leaves[index]` up to the tip, into the transaction, up to the block's Merkle root.
fn write_leaf_proof(
    w: &mut PathWriter<'_>,
    leaves: Vec<Hash>,
    index: usize,
    tx: &TxProof,
) -> Result<(), ProofError> {
    let tree = MerkleTree::new(leaves).ok_or(ProofError::Empty)?;
    write_tree_proof(w, &tree, index, tx)
}

/// From leaf `index` of `tree` up to the tip, into the transaction, up to the block's Merkle root.
fn write_tree_proof(
    w: &mut PathWriter<'_>,
    tree: &MerkleTree,
    index: usize,
    tx: &TxProof,
) -> Result<(), ProofError> {
    let path = tree.path(index).ok_or(ProofError::Empty)?;
    for step in path {
        w.step(&step);
    }
    write_tail(w, tx);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ots::timestamp::Timestamp;

    /// Evaluates a serialized linear proof and returns the attested message and attestation.
    fn evaluate(commitment: &[u8], proof: &[u8]) -> (Vec<u8>, Attestation) {
        let ts = Timestamp::from_bytes(proof, commitment.to_vec()).expect("valid timestamp");
        let all = ts.all_attestations();
        assert_eq!(all.len(), 1);
        (all[0].0.to_vec(), all[0].1.clone())
    }

    #[test]
    fn proofs_lead_every_commitment_to_the_block_merkle_root() {
        // Non-zero bytes: a commitment whose MAC is eight zero bytes is a legacy one (its leaf
        // is over its first 36 bytes, see crate::calendar::legacy).
        let commitments: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i + 1; 44]).collect();
        let refs: Vec<&[u8]> = commitments.iter().map(Vec::as_slice).collect();
        let tip = stamp_tip(refs.iter().copied(), None).unwrap();
        let mut tx = vec![2, 0, 0, 0, 1];
        tx.extend_from_slice(&tip);
        tx.extend_from_slice(&[0, 0, 0, 0]);
        let txid = sha256d(&[&tx]);
        for (n, pos) in [(1usize, 0usize), (2, 1), (3, 2), (7, 4), (8, 7)] {
            let mut txids: Vec<Hash> = (0..n).map(|i| [i as u8 + 100; 32]).collect();
            txids[pos] = txid;
            let flat: Vec<u8> = txids.concat();
            let proof = TxProof::new(&tx, &tip, &flat, 321).unwrap();
            let root = bitcoin_root(txids.clone());
            assert_eq!(proof.root(&tip), root, "n={n}");
            for (i, c) in refs.iter().enumerate() {
                let mut out = Vec::new();
                write_proof(&mut out, &refs, None, i, &proof).unwrap();
                let (msg, att) = evaluate(c, &out);
                assert_eq!(msg, root.to_vec());
                assert_eq!(att, Attestation::Bitcoin { height: 321 });
            }
        }
        assert_eq!(
            TxProof::new(&tx, &[9; 32], &txid, 1),
            Err(ProofError::TipNotInTx)
        );
        assert_eq!(
            TxProof::new(&tx, &tip, &[0; 32], 1),
            Err(ProofError::TxNotInBlock)
        );
    }

    /// With a log head as the last leaf, the commitments' and the head's proofs all reach the root.
    #[test]
    fn log_head_is_one_more_leaf_with_its_own_proof() {
        let head = [0xabu8; 32];
        for n in 1..=5u8 {
            let commitments: Vec<Vec<u8>> = (0..n).map(|i| vec![i + 1; 44]).collect();
            let refs: Vec<&[u8]> = commitments.iter().map(Vec::as_slice).collect();
            let tip = stamp_tip(refs.iter().copied(), Some(&head)).unwrap();
            assert_ne!(Some(tip), stamp_tip(refs.iter().copied(), None));
            let mut tx = vec![1, 0, 0, 0];
            tx.extend_from_slice(&tip);
            tx.extend_from_slice(&[0, 0, 0, 0]);
            let txid = sha256d(&[&tx]);
            let proof = TxProof::new(&tx, &tip, &[txid, [4; 32]].concat(), 77).unwrap();
            let root = proof.root(&tip).to_vec();
            for (i, c) in refs.iter().enumerate() {
                let mut out = Vec::new();
                write_proof(&mut out, &refs, Some(&head), i, &proof).unwrap();
                assert_eq!(evaluate(c, &out).0, root, "n={n} i={i}");
            }
            let mut out = Vec::new();
            write_head_proof(&mut out, &refs, &head, &proof).unwrap();
            assert_eq!(evaluate(&head, &out).0, root, "head, n={n}");
            let mut out = Vec::new();
            let past_end = write_proof(&mut out, &refs, Some(&head), refs.len(), &proof);
            assert_eq!(past_end, Err(ProofError::Empty));
        }
    }

    /// Bitcoin's Merkle root, written independently of `block_branch`.
    fn bitcoin_root(mut level: Vec<Hash>) -> Hash {
        while level.len() > 1 {
            let mut next = Vec::new();
            for i in (0..level.len()).step_by(2) {
                let right = level.get(i + 1).unwrap_or(&level[i]);
                next.push(sha256d(&[&level[i], right]));
            }
            level = next;
        }
        level[0]
    }
}
