//! `otsctl prove-head`: a standard `.ots` proof that the calendar's history up to a point existed
//! when a Bitcoin block was mined.
//!
//! Every stamping transaction's tip also commits to the log's public chain head ([`LogHead`]).
//! For a final transaction, this writes the detached timestamp of that 32-byte chain value
//! (file hash op SHA-256, "file digest" = the chain value) with its complete Bitcoin proof, which
//! any OpenTimestamps client checks (`ots verify -d HASH FILE.ots`). Anyone holding a replica of
//! the log recomputes the chain value at `next_seq` without the calendar's key (`otsctl verify
//! --no-key` reports it), so the proof shows that the replica's first `next_seq` events existed
//! by that block and have not been rewritten since.
//!
//! Before writing, the head is checked against this log's chain: a proof is never issued for a
//! head the log does not contain.
use serde::Serialize;

use super::verify::txid_hex;
use super::{hex, LogSource, ToolError};
use crate::anchor::proof::write_head_proof;
use crate::events::LogHead;
use crate::log::progress::Progress;
use crate::log::ChainState;
use crate::ots::{DetachedTimestampFile, Op, Timestamp};
use crate::projection::{stamps::Mined, Projection};

/// A head proof and what it proves.
#[derive(Debug, Clone, Serialize)]
pub struct HeadProof {
    /// Events `0..next_seq` of the log are covered.
    pub next_seq: u64,
    /// The public chain value after them (hex): the digest the proof timestamps.
    pub hash: String,
    /// The stamping transaction (as Bitcoin shows txids) and the block height it was mined at.
    pub txid: String,
    pub height: u32,
    /// The detached timestamp file (`.ots`).
    #[serde(skip)]
    pub ots: Vec<u8>,
}

/// The proof of the newest final log head, or with `seq`, of the oldest one covering event `seq`.
pub fn prove_head(
    source: &LogSource,
    seq: Option<u64>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<HeadProof, ToolError> {
    let view = super::replay::fold_source(source, progress)?;
    let (first_round, mined, head) = pick(&view, seq)?;
    check_on_chain(source, &head, &mined.txid)?;
    let unprovable = |e: &dyn std::fmt::Display| {
        ToolError::NoHeadProof(format!("transaction {}: {e}", txid_hex(&mined.txid)))
    };
    let commitments = view
        .round_commitments(first_round, mined.last_round)
        .map_err(|e| unprovable(&e))?;
    let refs: Vec<&[u8]> = commitments.iter().map(|c| &c[..]).collect();
    let mut path = Vec::new();
    write_head_proof(&mut path, &refs, &head.hash, &mined.proof).map_err(|e| unprovable(&e))?;
    let timestamp = Timestamp::from_bytes(&path, head.hash.to_vec()).map_err(|e| unprovable(&e))?;
    let file = DetachedTimestampFile {
        file_hash_op: Op::Sha256,
        timestamp,
    };
    Ok(HeadProof {
        next_seq: head.next_seq,
        hash: hex(&head.hash),
        txid: txid_hex(&mined.txid),
        height: mined.proof.height,
        ots: file.to_bytes().map_err(|e| unprovable(&e))?,
    })
}

/// The final mined transaction whose head to prove.
fn pick(view: &Projection, seq: Option<u64>) -> Result<(u64, &Mined, LogHead), ToolError> {
    let mut heads = view
        .stamps()
        .mined()
        .filter(|(_, _, is_final)| *is_final)
        .filter_map(|(first, m, _)| m.log_head.map(|h| (first, m, h)));
    let found = match seq {
        Some(seq) => heads.find(|(_, _, h)| h.next_seq > seq),
        None => heads.next_back(),
    };
    found.ok_or_else(|| {
        ToolError::NoHeadProof(match seq {
            Some(seq) => format!(
                "no final stamping transaction commits to a log head covering seq {seq} yet"
            ),
            None => "no final stamping transaction commits to a log head yet".into(),
        })
    })
}

/// The head is a point of this log's public chain.
fn check_on_chain(source: &LogSource, head: &LogHead, txid: &[u8; 32]) -> Result<(), ToolError> {
    let mut found = head.next_seq == 0 && head.hash == ChainState::GENESIS.hash;
    let mut seen = Vec::new();
    source
        .reader
        .for_each_record_from(head.next_seq.saturating_sub(1), |rec| {
            if rec.first_seq + u64::from(rec.count) == head.next_seq {
                found |= rec.hash == head.hash;
                seen.push(rec.hash);
            }
        })?;
    if found {
        return Ok(());
    }
    Err(ToolError::NoHeadProof(format!(
        "transaction {} commits to log head {} at seq {}, but this log's public chain there is {}: \
         the log is not the history that was timestamped",
        txid_hex(txid),
        hex(&head.hash),
        head.next_seq,
        seen.first().map_or_else(|| "missing".to_owned(), |h| hex(h)),
    )))
}

/// The human summary.
pub fn render(p: &HeadProof, out: &str) -> String {
    format!(
        "wrote {out}: log events 0..{} (public chain value {}) timestamped by transaction {} in block {}\n\
         check it with: ots verify -d {} {out}\n",
        p.next_seq, p.hash, p.txid, p.height, p.hash
    )
}
