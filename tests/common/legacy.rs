//! The event encoding before the compact one: `enum Event` as it was derived until then (fixed
//! arrays as CBOR arrays of integers, `RoundSealed` always with its commitment), encoded the way
//! the codec did (`serde_cbor` packed). Lets tests write logs exactly as older otsd versions did;
//! `tests/event_vectors.rs` checks that it reproduces the pinned v1 bytes.
use otsd::events::{Event, LogHead};
use serde::Serialize;

#[derive(Serialize)]
struct OldLogHead {
    next_seq: u64,
    hash: [u8; 32],
}

#[derive(Serialize)]
enum OldEvent {
    DigestSubmitted {
        #[serde(with = "serde_bytes")]
        digest: Vec<u8>,
        nonce: [u8; 16],
    },
    RoundSealed {
        round: u64,
        time: u32,
        root: [u8; 32],
        mac: [u8; 8],
        #[serde(with = "serde_bytes")]
        commitment: Vec<u8>,
        digests: u32,
    },
    TxBroadcast {
        txid: [u8; 32],
        #[serde(with = "serde_bytes")]
        raw_tx: Vec<u8>,
        tip: [u8; 32],
        first_round: u64,
        last_round: u64,
        fee_sat: u64,
        feerate_sat_per_kvb: u64,
        input_sat: u64,
        height: u32,
        replaces: Option<[u8; 32]>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_head: Option<OldLogHead>,
    },
    TxConfirmed {
        txid: [u8; 32],
        block_hash: [u8; 32],
        height: u32,
        #[serde(with = "serde_bytes")]
        block_txids: Vec<u8>,
    },
    BlockSeen {
        height: u32,
        hash: [u8; 32],
    },
    Reorg {
        fork_height: u32,
        old_tip: [u8; 32],
        new_tip: [u8; 32],
    },
    CommitmentReadmitted {
        round: u64,
        #[serde(with = "serde_bytes")]
        commitment: Vec<u8>,
    },
    CommitmentImported {
        round: u64,
        #[serde(with = "serde_bytes")]
        commitment: Vec<u8>,
        #[serde(with = "serde_bytes")]
        proof: Option<Vec<u8>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        suffix_seq: Option<u64>,
    },
    ProofSuffixImported {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

/// `event` encoded as otsd wrote it before the compact encoding.
pub fn encode(event: &Event) -> Vec<u8> {
    serde_cbor::ser::to_vec_packed(&old(event.clone())).expect("encode")
}

fn old(event: Event) -> OldEvent {
    match event {
        Event::DigestSubmitted { digest, nonce } => OldEvent::DigestSubmitted { digest, nonce },
        Event::RoundSealed {
            round,
            time,
            root,
            mac,
            commitment,
            digests,
        } => OldEvent::RoundSealed {
            round,
            time,
            root,
            mac,
            commitment,
            digests,
        },
        Event::TxBroadcast {
            txid,
            raw_tx,
            tip,
            first_round,
            last_round,
            fee_sat,
            feerate_sat_per_kvb,
            input_sat,
            height,
            replaces,
            log_head,
        } => OldEvent::TxBroadcast {
            txid,
            raw_tx,
            tip,
            first_round,
            last_round,
            fee_sat,
            feerate_sat_per_kvb,
            input_sat,
            height,
            replaces,
            log_head: log_head.map(|LogHead { next_seq, hash }| OldLogHead { next_seq, hash }),
        },
        Event::TxConfirmed {
            txid,
            block_hash,
            height,
            block_txids,
        } => OldEvent::TxConfirmed {
            txid,
            block_hash,
            height,
            block_txids,
        },
        Event::BlockSeen { height, hash } => OldEvent::BlockSeen { height, hash },
        Event::Reorg {
            fork_height,
            old_tip,
            new_tip,
        } => OldEvent::Reorg {
            fork_height,
            old_tip,
            new_tip,
        },
        Event::CommitmentReadmitted { round, commitment } => {
            OldEvent::CommitmentReadmitted { round, commitment }
        }
        Event::CommitmentImported {
            round,
            commitment,
            proof,
            suffix_seq,
        } => OldEvent::CommitmentImported {
            round,
            commitment,
            proof,
            suffix_seq,
        },
        Event::ProofSuffixImported { bytes } => OldEvent::ProofSuffixImported { bytes },
    }
}
