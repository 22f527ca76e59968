//! The Python calendar's commitment MAC.
//!
//! Each journal commitment ([`super::commitment`]) is `time (4 bytes, big-endian unix seconds) || round root (32) || mac
//! (8)`, where `mac = sha256(time || root || k_time)[..8]` and `k_time` is derived from the calendar's
//! `hmac-key` by a binary tree over the 32 bits of the time, most significant bit first: at each
//! bit, append `0xff` (bit set) or `0x00` to the key so far and hash. The tree lets the calendar
//! reveal the keys for a range of times later without revealing the rest; we must derive keys
//! exactly as Python does so that commitments stay verifiable across implementations.
//!
//! Deriving a key costs 32 sha256 calls. [`CommitmentMac`] keeps the 32 intermediate keys of the
//! last time it derived: the next time shares its top bits, so checking a journal of increasing
//! times (`otsctl import-otsd`) costs about two sha256 calls per record instead of 32.

use sha2::{Digest, Sha256};

use super::commitment::{join_commitment, split_commitment, Commitment};

/// Bits of the time index the Python calendar derives over.
pub const INDEX_BITS: u32 = 32;
/// Length of the MAC in a commitment.
pub const MAC_LEN: usize = 8;

/// Python's `derive_key_for_idx(key, idx, bits)`: the key for `idx` after its top `bits` bits.
/// With `bits == 0` the key itself is returned.
pub fn derive_key_for_idx(key: &[u8], idx: u32, bits: u32) -> Vec<u8> {
    let mut current = key.to_vec();
    for bit in (0..bits.min(INDEX_BITS)).rev() {
        current.push(if (idx >> bit) & 1 == 1 { 0xff } else { 0x00 });
        current = Sha256::digest(&current).to_vec();
    }
    current
}

/// `sha256(time_be || root || per_idx_key)[..8]`.
pub fn mac_with_key(time: u32, root: &[u8; 32], per_idx_key: &[u8]) -> [u8; MAC_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(time.to_be_bytes());
    hasher.update(root);
    hasher.update(per_idx_key);
    let digest = hasher.finalize();
    let mut mac = [0u8; MAC_LEN];
    mac.copy_from_slice(&digest[..MAC_LEN]);
    mac
}

/// Computes and checks commitment MACs under one calendar key, caching the last per-time key.
#[derive(Clone)]
pub struct CommitmentMac {
    key: Vec<u8>,
    cached_time: Option<u32>,
    /// `steps[i]`: the key after the top `i + 1` bits of `cached_time`.
    steps: [[u8; 32]; INDEX_BITS as usize],
}

impl std::fmt::Debug for CommitmentMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitmentMac { .. }")
    }
}

impl CommitmentMac {
    pub fn new(hmac_key: &[u8]) -> Self {
        CommitmentMac {
            key: hmac_key.to_vec(),
            cached_time: None,
            steps: [[0; 32]; INDEX_BITS as usize],
        }
    }

    /// The derived key for `time`: only the bits below the highest one that differs from the
    /// previous time are derived again.
    pub fn key_for(&mut self, time: u32) -> &[u8] {
        let same = self
            .cached_time
            .map_or(0, |t| (t ^ time).leading_zeros() as usize);
        for i in same..INDEX_BITS as usize {
            let bit = INDEX_BITS as usize - 1 - i;
            let flag = if (time >> bit) & 1 == 1 { 0xff } else { 0x00 };
            let mut h = Sha256::new();
            match i {
                0 => h.update(&self.key),
                _ => h.update(self.steps[i - 1]),
            }
            h.update([flag]);
            self.steps[i] = h.finalize().into();
        }
        self.cached_time = Some(time);
        &self.steps[INDEX_BITS as usize - 1]
    }

    pub fn mac(&mut self, time: u32, root: &[u8; 32]) -> [u8; MAC_LEN] {
        mac_with_key(time, root, self.key_for(time))
    }

    /// The 44-byte journal commitment for a round.
    pub fn commitment(&mut self, time: u32, root: &[u8; 32]) -> Commitment {
        join_commitment(time, root, &self.mac(time, root))
    }

    /// Whether a commitment's MAC is ours.
    pub fn verify(&mut self, commitment: &Commitment) -> bool {
        let (time, root, mac) = split_commitment(commitment);
        self.mac(time, &root) == mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct transcription of the recursive Python definition.
    fn derive_recursive(key: Vec<u8>, idx: u32, bits: u32) -> Vec<u8> {
        if bits == 0 {
            return key;
        }
        let mut key = key;
        key.push(if (idx >> (bits - 1)) & 1 == 1 {
            0xff
        } else {
            0x00
        });
        derive_recursive(Sha256::digest(&key).to_vec(), idx, bits - 1)
    }

    #[test]
    fn iterative_derivation_equals_recursive_definition() {
        for idx in [0, 1, 0x8000_0000, 0x6b04_9b8c, u32::MAX] {
            for bits in [0, 1, 5, 32] {
                assert_eq!(
                    derive_key_for_idx(b"k", idx, bits),
                    derive_recursive(b"k".to_vec(), idx, bits)
                );
            }
        }
    }

    #[test]
    fn commitment_verifies_and_cache_follows_time() {
        let mut m = CommitmentMac::new(&[7; 32]);
        let root = [3; 32];
        let c1 = m.commitment(100, &root);
        let c2 = m.commitment(101, &root);
        assert_ne!(c1[36..], c2[36..]);
        assert!(m.verify(&c1));
        let mut bad = c1;
        bad[10] ^= 1;
        assert!(!m.verify(&bad));
        assert_eq!(CommitmentMac::new(&[7; 32]).commitment(100, &root), c1);
    }

    #[test]
    fn cached_steps_give_the_full_derivation_in_any_time_order() {
        let mut m = CommitmentMac::new(b"a key of another length\n");
        for t in [5, 6, 7, 0x8000_0000, 3, 3, u32::MAX, 0, 0x6b04_9b8c] {
            assert_eq!(
                m.key_for(t),
                derive_key_for_idx(b"a key of another length\n", t, INDEX_BITS)
            );
        }
    }
}
