//! The event vocabulary: everything the calendar records in its log.
//!
//! Events are encoded with [`codec`] (CBOR today) and stored as opaque payloads; the log
//! itself never looks inside them. Adding a field is a compatible change only when it is optional
//! (`#[serde(default)]`); anything else needs a new variant. An event is written through the
//! borrowed mirror in `wire.rs` (which leaves out what decoding can put back) and read by the
//! `Deserialize` derived here, which accepts both the compact form and the one written before it.
pub mod codec;
pub mod view;
mod wire;

use serde::{Deserialize, Serialize};

/// Length in bytes of the per-digest nonce the calendar appends before hashing.
pub const NONCE_LEN: usize = 16;

/// One thing that happened to the calendar.
///
/// Fixed-size byte arrays are read through `serde_bytes`, which takes a byte string (how they are
/// written since the compact encoding) or an array of integers (how they were written before);
/// `Serialize` is in `wire.rs`. Field and variant order is the format: `log-format/README.md`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum Event {
    /// A client's digest was accepted into the round that follows it in the same record.
    DigestSubmitted {
        #[serde(with = "serde_bytes")]
        digest: Vec<u8>,
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        nonce: [u8; NONCE_LEN],
    },
    /// A round was sealed: the `digests` DigestSubmitted events just before it are its leaves.
    /// Its `commitment` is written only when it is not `time || root || mac` (never, for seals
    /// otsd writes; `otsctl verify` reports such a seal), and put back when left out.
    #[serde(deserialize_with = "wire::round_sealed")]
    RoundSealed {
        round: u64,
        /// Unix time in seconds, prepended to the Merkle root as 4 big-endian bytes.
        time: u32,
        root: [u8; 32],
        mac: [u8; 8],
        /// `time || root || mac`: the message the pending attestation is made on.
        commitment: Vec<u8>,
        digests: u32,
    },
    /// A stamping transaction was accepted by Bitcoin Core (written after `sendrawtransaction` succeeds).
    TxBroadcast {
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        txid: [u8; 32],
        #[serde(with = "serde_bytes")]
        raw_tx: Vec<u8>,
        /// The Merkle tip committed in the OP_RETURN output.
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        tip: [u8; 32],
        /// Rounds covered by the tip: `first_round..=last_round`.
        first_round: u64,
        last_round: u64,
        fee_sat: u64,
        feerate_sat_per_kvb: u64,
        /// Value of the single input; `input_sat - fee_sat` is the change output.
        input_sat: u64,
        /// Best block height when sent (also the transaction's nLockTime).
        height: u32,
        /// The txid this transaction replaces (replace-by-fee), if any.
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        replaces: Option<[u8; 32]>,
        /// The log's public chain head the tip also commits to, as its last leaf (see
        /// [`LogHead`]); `None` in transactions written before the calendar stamped its own history.
        /// Left out of the encoding when `None`, so older events re-encode to the same bytes.
        #[serde(default)]
        log_head: Option<LogHead>,
    },
    /// A stamping transaction was seen in a block of the best chain.
    TxConfirmed {
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        txid: [u8; 32],
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        block_hash: [u8; 32],
        height: u32,
        /// The block's txids in order (internal byte order): the path from the txid to the block's
        /// Merkle root is rebuilt from them.
        #[serde(with = "serde_bytes")]
        block_txids: Vec<u8>,
    },
    /// A new best block was observed.
    BlockSeen {
        height: u32,
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        hash: [u8; 32],
    },
    /// Blocks above `fork_height` were disconnected; confirmations in them are undone.
    Reorg {
        fork_height: u32,
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        old_tip: [u8; 32],
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        new_tip: [u8; 32],
    },
    /// A commitment this calendar issued earlier but lost (its round is missing from the log), put
    /// back from a client's pending proof by `otsctl readmit` after its MAC verified. It occupies
    /// round `round` as a seal of no digests would: the stamper commits to it and it is served like
    /// any other round. Appended at the end: variants are encoded by index.
    CommitmentReadmitted {
        round: u64,
        /// `time || root || mac`, as the client holds it.
        #[serde(with = "serde_bytes")]
        commitment: Vec<u8>,
    },
    /// A journal commitment of a Python otsd calendar, brought in by `otsctl import-otsd` in journal
    /// order (round `round` is journal index `round`). It occupies its round as a seal of no digests
    /// would. With `proof`, its tree was complete in the Python calendar's database: `proof` is the
    /// Python server's `GET /timestamp` body byte for byte (the serialized timestamp on
    /// `commitment`, up to Bitcoin block header attestations), served as is and never restamped.
    /// Without, it is pending and the stamper commits to it like any other round. Appended at the
    /// end: variants are encoded by index.
    CommitmentImported {
        round: u64,
        /// The journal record as the Python server keys it: `time || root || mac` (44 bytes), or
        /// `time || root` (36 bytes) for a legacy record whose MAC is eight zero bytes.
        #[serde(with = "serde_bytes")]
        commitment: Vec<u8>,
        #[serde(with = "serde_bytes")]
        proof: Option<Vec<u8>>,
        /// With `proof`: when present, `proof` is only the head of the Python answer, and its rest
        /// is the `bytes` of the [`Event::ProofSuffixImported`] at this sequence number (earlier
        /// in the log), which the commitments of one stamping transaction share (the part from
        /// the transaction's tip up to the block). Left out of the encoding when `None`, so
        /// events written before it re-encode to the same bytes.
        #[serde(default)]
        suffix_seq: Option<u64>,
    },
    /// The shared end of imported proofs (see `CommitmentImported::suffix_seq`), written by
    /// `otsctl import-otsd` once, before the first commitment that uses it. Not a round.
    /// Appended at the end: variants are encoded by index.
    ProofSuffixImported {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

/// The whole imported proof: `head` followed by the suffix it names, if any.
pub fn joined_proof(head: &[u8], suffix: Option<&[u8]>) -> Vec<u8> {
    let mut proof = Vec::with_capacity(head.len() + suffix.map_or(0, <[u8]>::len));
    proof.extend_from_slice(head);
    proof.extend_from_slice(suffix.unwrap_or_default());
    proof
}

/// The kind of an [`Event`], decoded without its fields: lets a fold that only counts some kinds
/// (replay counts `DigestSubmitted`) skip decoding them. Variants in the order of [`Event`] (the
/// packed encoding names variants by index); a kind it does not know fails to decode, and the
/// caller decodes the whole event instead.
#[derive(Debug, Deserialize)]
pub enum EventKind {
    DigestSubmitted(serde::de::IgnoredAny),
}

/// A point of the log's public hash chain, committed in a stamping transaction's tip so that
/// anyone holding a replica can prove with Bitcoin that the history up to it existed then.
///
/// `hash` is the public chain value (`h_i` of `log-format/README.md`) after the last record whose
/// events all precede `next_seq`: what [`crate::log::Head`] reports after that record. The tip is
/// `make_merkle_tree` over `sha256(commitment)` of the covered rounds followed by `hash` itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    pub next_seq: u64,
    /// A byte string; an array of integers (the form before the compact encoding) is read too.
    #[serde(with = "serde_bytes")]
    pub hash: [u8; 32],
}
