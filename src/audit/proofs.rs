//! Recomputing complete proofs from the events alone, for `otsctl verify`.
//!
//! For every round the projection would serve as complete, the proof is evaluated from the round's
//! commitment and must end in one Bitcoin attestation whose message is the Merkle root of the block
//! recorded by the `TxConfirmed` at that height, recomputed from the block's txids in the event.
//! (Whether that block is in the best chain needs a node; that check is not made here.)
use std::collections::HashMap;

use bitcoin::hashes::Hash as _;

use crate::ots::{Attestation, Timestamp};
use crate::projection::{Projection, Status};

/// The Merkle root of a block from its txids (32 bytes each, internal byte order, in block order).
///
/// Kept apart from [`crate::anchor::proof`]'s block branch on purpose: an independent cross-check.
/// The proofs otsd serves are built by our own code there; `verify` recomputes the root with the
/// `bitcoin` crate's implementation, so a bug in ours cannot vouch for itself.
pub fn block_merkle_root(flat_txids: &[u8]) -> Option<[u8; 32]> {
    if flat_txids.is_empty() || !flat_txids.len().is_multiple_of(32) {
        return None;
    }
    let txids = flat_txids.chunks_exact(32).map(|c| {
        let mut b = [0u8; 32];
        b.copy_from_slice(c);
        bitcoin::Txid::from_byte_array(b)
    });
    bitcoin::merkle_tree::calculate_root(txids).map(|n| n.to_byte_array())
}

/// Block Merkle roots by height, from the `TxConfirmed` events seen (the latest wins after a reorg).
#[derive(Debug, Default)]
pub(crate) struct BlockRoots(HashMap<u32, [u8; 32]>);

impl BlockRoots {
    pub(crate) fn confirmed(&mut self, height: u32, flat_txids: &[u8]) {
        match block_merkle_root(flat_txids) {
            Some(root) => self.0.insert(height, root),
            None => self.0.remove(&height),
        };
    }
}

/// Checks every complete proof of `view`; returns `(round, why)` for each that does not hold and
/// the number that do.
pub(crate) fn check_complete_proofs(
    view: &Projection,
    roots: &BlockRoots,
) -> (u64, Vec<(u64, String)>) {
    let mut good = 0;
    let mut bad = Vec::new();
    for round in 0..view.next_round() {
        let Some(commitment) = view
            .round_commitments(round, round)
            .ok()
            .and_then(|mut c| c.pop())
        else {
            continue;
        };
        // A repeated commitment (a readmission `verify` reports) is served from its first round.
        let message = crate::calendar::legacy::client_message(&commitment);
        let Status::Complete { round: r, proof } = view.status(message) else {
            continue;
        };
        if r == round {
            match check_proof(message, &proof, roots) {
                Ok(()) => good += 1,
                Err(why) => bad.push((round, why)),
            }
        }
    }
    (good, bad)
}

fn check_proof(commitment: &[u8], proof: &[u8], roots: &BlockRoots) -> Result<(), String> {
    let ts = Timestamp::from_bytes(proof, commitment.to_vec())
        .map_err(|e| format!("complete proof does not parse: {e}"))?;
    let atts = ts.all_attestations();
    let [(msg, Attestation::Bitcoin { height })] = atts.as_slice() else {
        return Err(format!(
            "complete proof has {} attestations, not one Bitcoin",
            atts.len()
        ));
    };
    let height = u32::try_from(*height).map_err(|_| format!("height {height} out of range"))?;
    let root = roots
        .0
        .get(&height)
        .ok_or_else(|| format!("proof attests block {height}, which no TxConfirmed records"))?;
    if *msg != root.as_slice() {
        return Err(format!(
            "proof does not reach the Merkle root of block {height}"
        ));
    }
    Ok(())
}
