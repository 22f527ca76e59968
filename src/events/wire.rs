//! How an [`Event`] is written: the compact encoding (`log-format/README.md`, "Event encoding").
//!
//! Events are serialized through [`EventRef`], a borrowed mirror of [`Event`] with the same
//! variants and fields in the same order (the packed codec names both by index), so writing an
//! event copies nothing. The mirror differs from a plain derive in two ways, and decoding (the
//! `Deserialize` derived on [`Event`], plus [`round_sealed`]) takes both the compact and the older
//! form:
//! - fixed-size byte arrays (txids, hashes, nonces, MACs) are byte strings. A derive writes them
//!   as arrays of integers: one or two bytes per byte, about 1.9 on random data.
//! - `RoundSealed` leaves out `commitment` when it is `time || root || mac`, which it is for every
//!   seal otsd writes: 46 bytes a round. A commitment that differs is written, so such an
//!   event still decodes to itself and `otsctl verify` still sees (and reports) it.
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Event, LogHead, NONCE_LEN};

/// Width of `time || root || mac`.
const SEAL_COMMITMENT_LEN: usize = 4 + 32 + 8;

/// `time || root || mac` (time big-endian): the layout of `crate::calendar::commitment`, which
/// sits above this module; a test there checks that the two agree.
pub(super) fn seal_commitment(
    time: u32,
    root: &[u8; 32],
    mac: &[u8; 8],
) -> [u8; SEAL_COMMITMENT_LEN] {
    let mut out = [0; SEAL_COMMITMENT_LEN];
    out[..4].copy_from_slice(&time.to_be_bytes());
    out[4..36].copy_from_slice(root);
    out[36..].copy_from_slice(mac);
    out
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EventRef::from(self).serialize(serializer)
    }
}

/// [`Event`] as it is written. Variant and field order must stay that of [`Event`].
#[derive(Serialize)]
#[serde(rename = "Event")]
enum EventRef<'a> {
    DigestSubmitted {
        #[serde(with = "serde_bytes")]
        digest: &'a [u8],
        #[serde(with = "serde_bytes")]
        nonce: &'a [u8; NONCE_LEN],
    },
    RoundSealed {
        round: u64,
        time: u32,
        #[serde(with = "serde_bytes")]
        root: &'a [u8; 32],
        #[serde(with = "serde_bytes")]
        mac: &'a [u8; 8],
        /// `None` when it is `time || root || mac`; the field is then left out.
        #[serde(with = "serde_bytes", skip_serializing_if = "Option::is_none")]
        commitment: Option<&'a [u8]>,
        digests: u32,
    },
    TxBroadcast {
        #[serde(with = "serde_bytes")]
        txid: &'a [u8; 32],
        #[serde(with = "serde_bytes")]
        raw_tx: &'a [u8],
        #[serde(with = "serde_bytes")]
        tip: &'a [u8; 32],
        first_round: u64,
        last_round: u64,
        fee_sat: u64,
        feerate_sat_per_kvb: u64,
        input_sat: u64,
        height: u32,
        #[serde(with = "serde_bytes")]
        replaces: Option<&'a [u8; 32]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        log_head: Option<&'a LogHead>,
    },
    TxConfirmed {
        #[serde(with = "serde_bytes")]
        txid: &'a [u8; 32],
        #[serde(with = "serde_bytes")]
        block_hash: &'a [u8; 32],
        height: u32,
        #[serde(with = "serde_bytes")]
        block_txids: &'a [u8],
    },
    BlockSeen {
        height: u32,
        #[serde(with = "serde_bytes")]
        hash: &'a [u8; 32],
    },
    Reorg {
        fork_height: u32,
        #[serde(with = "serde_bytes")]
        old_tip: &'a [u8; 32],
        #[serde(with = "serde_bytes")]
        new_tip: &'a [u8; 32],
    },
    CommitmentReadmitted {
        round: u64,
        #[serde(with = "serde_bytes")]
        commitment: &'a [u8],
    },
    CommitmentImported {
        round: u64,
        #[serde(with = "serde_bytes")]
        commitment: &'a [u8],
        #[serde(with = "serde_bytes")]
        proof: Option<&'a [u8]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        suffix_seq: Option<u64>,
    },
    ProofSuffixImported {
        #[serde(with = "serde_bytes")]
        bytes: &'a [u8],
    },
}

impl<'a> From<&'a Event> for EventRef<'a> {
    fn from(event: &'a Event) -> EventRef<'a> {
        match event {
            Event::DigestSubmitted { digest, nonce } => EventRef::DigestSubmitted { digest, nonce },
            Event::RoundSealed {
                round,
                time,
                root,
                mac,
                commitment,
                digests,
            } => EventRef::RoundSealed {
                round: *round,
                time: *time,
                root,
                mac,
                commitment: (commitment[..] != seal_commitment(*time, root, mac))
                    .then_some(&commitment[..]),
                digests: *digests,
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
            } => EventRef::TxBroadcast {
                txid,
                raw_tx,
                tip,
                first_round: *first_round,
                last_round: *last_round,
                fee_sat: *fee_sat,
                feerate_sat_per_kvb: *feerate_sat_per_kvb,
                input_sat: *input_sat,
                height: *height,
                replaces: replaces.as_ref(),
                log_head: log_head.as_ref(),
            },
            Event::TxConfirmed {
                txid,
                block_hash,
                height,
                block_txids,
            } => EventRef::TxConfirmed {
                txid,
                block_hash,
                height: *height,
                block_txids,
            },
            Event::BlockSeen { height, hash } => EventRef::BlockSeen {
                height: *height,
                hash,
            },
            Event::Reorg {
                fork_height,
                old_tip,
                new_tip,
            } => EventRef::Reorg {
                fork_height: *fork_height,
                old_tip,
                new_tip,
            },
            Event::CommitmentReadmitted { round, commitment } => EventRef::CommitmentReadmitted {
                round: *round,
                commitment,
            },
            Event::CommitmentImported {
                round,
                commitment,
                proof,
                suffix_seq,
            } => EventRef::CommitmentImported {
                round: *round,
                commitment,
                proof: proof.as_deref(),
                suffix_seq: *suffix_seq,
            },
            Event::ProofSuffixImported { bytes } => EventRef::ProofSuffixImported { bytes },
        }
    }
}

/// `RoundSealed` as read: `commitment` may be absent (compact) or present (older events, or one
/// that is not `time || root || mac`).
#[derive(Deserialize)]
struct SealIn {
    round: u64,
    time: u32,
    #[serde(with = "serde_bytes")]
    root: [u8; 32],
    #[serde(with = "serde_bytes")]
    mac: [u8; 8],
    #[serde(default, with = "serde_bytes")]
    commitment: Option<Vec<u8>>,
    digests: u32,
}

/// The fields of `Event::RoundSealed`, in order.
type SealFields = (u64, u32, [u8; 32], [u8; 8], Vec<u8>, u32);

/// Reads a `RoundSealed`, putting back a commitment that was left out.
pub(super) fn round_sealed<'de, D: Deserializer<'de>>(d: D) -> Result<SealFields, D::Error> {
    let s = SealIn::deserialize(d)?;
    let commitment = s
        .commitment
        .unwrap_or_else(|| seal_commitment(s.time, &s.root, &s.mac).to_vec());
    Ok((s.round, s.time, s.root, s.mac, commitment, s.digests))
}
