//! Fixed-width entries of the projection's append-only tables, each with its own CRC so that a
//! damaged entry is detected when it is read, however old it is.
//!
//! `rounds`, [`ROUND_LEN`] bytes per round, round `r` at offset `r * ROUND_LEN`:
//!
//! ```text
//! offset size
//!      0   44  commitment: time (4, BE) || Merkle root (32) || MAC (8)
//!     44    4  time, u32 LE
//!     48    4  digests, u32 LE
//!     52    8  seal_seq: sequence number of the round's RoundSealed (or readmission), u64 LE
//!     60    4  CRC-32 (IEEE) of bytes 0..60, u32 LE
//! ```
//!
//! `txs`, [`TX_LEN`] bytes per final stamping transaction, in order of their first round:
//!
//! ```text
//! offset size
//!      0    8  first_round, u64 LE
//!      8    8  last_round, u64 LE
//!     16   32  tip: the Merkle root committed in the transaction
//!     48    8  offset of the transaction's record in `proofs`, u64 LE
//!     56    4  length of the proof tail in that record, u32 LE
//!     60    8  fee paid, satoshis, u64 LE
//!     68    4  time: of the newest round it covers (unix seconds), u32 LE
//!     72    4  height of the block it was mined in, u32 LE
//!     76    4  CRC-32 (IEEE) of bytes 0..76, u32 LE
//! ```
use super::RoundEntry;
use crate::calendar::commitment::{Commitment, COMMITMENT_LEN};

/// Bytes per round in `rounds`.
pub const ROUND_LEN: usize = 64;
/// Bytes per transaction in `txs`.
pub const TX_LEN: usize = 80;

const CRC_AT: usize = ROUND_LEN - 4;
const TX_CRC_AT: usize = TX_LEN - 4;

fn le4(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn le8(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Writes the CRC of an entry whose last 4 bytes hold it.
fn seal_crc(entry: &mut [u8]) {
    let at = entry.len() - 4;
    let crc = crc32fast::hash(&entry[..at]);
    entry[at..].copy_from_slice(&crc.to_le_bytes());
}

fn crc_ok(entry: &[u8], at: usize) -> bool {
    crc32fast::hash(&entry[..at]) == le4(entry, at)
}

/// Appends the `rounds` entry of `r` to `out`.
pub fn encode_round(r: &RoundEntry, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&r.commitment);
    out.extend_from_slice(&r.time.to_le_bytes());
    out.extend_from_slice(&r.digests.to_le_bytes());
    out.extend_from_slice(&r.seal_seq.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    seal_crc(&mut out[at..]);
}

/// Decodes one `rounds` entry; `None` when its CRC does not match (damage).
pub fn decode_round(b: &[u8]) -> Option<RoundEntry> {
    if b.len() != ROUND_LEN || !crc_ok(b, CRC_AT) {
        return None;
    }
    let mut commitment: Commitment = [0; COMMITMENT_LEN];
    commitment.copy_from_slice(&b[..COMMITMENT_LEN]);
    Some(RoundEntry {
        commitment,
        time: le4(b, 44),
        digests: le4(b, 48),
        seal_seq: le8(b, 52),
    })
}

/// A final stamping transaction as the `txs` table holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxEntry {
    pub first_round: u64,
    pub last_round: u64,
    pub tip: [u8; 32],
    /// Where its record starts in `proofs`.
    pub offset: u64,
    /// Length of the serialized proof tail (transaction, block, attestation) in that record.
    pub tail_len: u32,
    /// Fee paid, satoshis.
    pub fee_sat: u64,
    /// Time of the newest round it covers: about when it was sent.
    pub time: u32,
    /// Height of the block it was mined in.
    pub height: u32,
}

impl TxEntry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&self.first_round.to_le_bytes());
        out.extend_from_slice(&self.last_round.to_le_bytes());
        out.extend_from_slice(&self.tip);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.tail_len.to_le_bytes());
        out.extend_from_slice(&self.fee_sat.to_le_bytes());
        out.extend_from_slice(&self.time.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        seal_crc(&mut out[at..]);
    }

    /// `None` when the CRC does not match.
    pub fn decode(b: &[u8]) -> Option<TxEntry> {
        if b.len() != TX_LEN || !crc_ok(b, TX_CRC_AT) {
            return None;
        }
        let mut tip = [0u8; 32];
        tip.copy_from_slice(&b[16..48]);
        Some(TxEntry {
            first_round: le8(b, 0),
            last_round: le8(b, 8),
            tip,
            offset: le8(b, 48),
            tail_len: le4(b, 56),
            fee_sat: le8(b, 60),
            time: le4(b, 68),
            height: le4(b, 72),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_any_flipped_bit_is_caught() {
        let r = RoundEntry {
            commitment: [7; COMMITMENT_LEN],
            time: 1_700_000_000,
            digests: 3,
            seal_seq: 1 << 40,
        };
        let mut b = Vec::new();
        encode_round(&r, &mut b);
        assert_eq!(b.len(), ROUND_LEN);
        assert_eq!(decode_round(&b), Some(r));
        let t = TxEntry {
            first_round: 5,
            last_round: 9,
            tip: [3; 32],
            offset: 77,
            tail_len: 300,
            fee_sat: 1234,
            time: 1_700_000_100,
            height: 800_000,
        };
        let mut tb = Vec::new();
        t.encode(&mut tb);
        assert_eq!(TxEntry::decode(&tb), Some(t));
        assert_eq!(tb.len(), TX_LEN);
        for bit in 0..TX_LEN * 8 {
            if bit < ROUND_LEN * 8 {
                let mut d = b.clone();
                d[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(decode_round(&d), None, "bit {bit}");
            }
            let mut d = tb.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(TxEntry::decode(&d), None, "bit {bit}");
        }
    }
}
