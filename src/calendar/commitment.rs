//! The one commitment layout: what a round's pending attestation is made on.
//!
//! ```text
//! offset  width  field
//!      0      4  time: unix seconds, big-endian (when the round was sealed)
//!      4     32  root: the round's Merkle root
//!     36      8  mac: sha256(time || root || k_time)[..8] (see [`super::mac`])
//! ```
//!
//! Every place that builds, splits or sizes a commitment goes through this module.
use super::mac::MAC_LEN;

/// Width of the time field.
pub const TIME_LEN: usize = 4;
/// Width of the root field.
pub const ROOT_LEN: usize = 32;
/// Length of a commitment: time, root, MAC.
pub const COMMITMENT_LEN: usize = TIME_LEN + ROOT_LEN + MAC_LEN;

/// A commitment, `time || root || mac`.
pub type Commitment = [u8; COMMITMENT_LEN];

/// Lays out a commitment.
pub fn join_commitment(time: u32, root: &[u8; ROOT_LEN], mac: &[u8; MAC_LEN]) -> Commitment {
    let mut out = [0u8; COMMITMENT_LEN];
    out[..TIME_LEN].copy_from_slice(&time.to_be_bytes());
    out[TIME_LEN..TIME_LEN + ROOT_LEN].copy_from_slice(root);
    out[TIME_LEN + ROOT_LEN..].copy_from_slice(mac);
    out
}

/// Splits a commitment into time, root and MAC.
pub fn split_commitment(c: &Commitment) -> (u32, [u8; ROOT_LEN], [u8; MAC_LEN]) {
    let mut time = [0u8; TIME_LEN];
    let mut root = [0u8; ROOT_LEN];
    let mut mac = [0u8; MAC_LEN];
    time.copy_from_slice(&c[..TIME_LEN]);
    root.copy_from_slice(&c[TIME_LEN..TIME_LEN + ROOT_LEN]);
    mac.copy_from_slice(&c[TIME_LEN + ROOT_LEN..]);
    (u32::from_be_bytes(time), root, mac)
}

/// The time a commitment (or any message) starts with, if it is long enough to have one.
pub fn commitment_time(message: &[u8]) -> Option<u32> {
    message
        .first_chunk::<TIME_LEN>()
        .map(|t| u32::from_be_bytes(*t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_and_split_are_inverse() {
        let c = join_commitment(0x0102_0304, &[7; 32], &[9; 8]);
        assert_eq!(&c[..4], &[1, 2, 3, 4]);
        assert_eq!(split_commitment(&c), (0x0102_0304, [7; 32], [9; 8]));
        assert_eq!(commitment_time(&c), Some(0x0102_0304));
        assert_eq!(commitment_time(&c[..3]), None);
    }

    /// The event codec (below this module) leaves a seal's commitment out when it is
    /// `time || root || mac` and puts it back on decoding: its idea of the layout must be this one.
    #[test]
    fn a_seal_of_this_layout_is_written_without_its_commitment() {
        use crate::events::{codec, Event};
        let (time, root, mac) = (0x0102_0304, [7; 32], [9; 8]);
        let seal = |commitment: Vec<u8>| Event::RoundSealed {
            round: 1,
            time,
            root,
            mac,
            commitment,
            digests: 1,
        };
        let joined = seal(join_commitment(time, &root, &mac).to_vec());
        let other = seal(vec![0; COMMITMENT_LEN]);
        let joined_bytes = codec::encode(&joined).unwrap();
        let other_bytes = codec::encode(&other).unwrap();
        // Field 4: one byte of key, two of byte-string header, the commitment.
        assert_eq!(other_bytes.len(), joined_bytes.len() + 3 + COMMITMENT_LEN);
        assert_eq!(codec::decode::<Event>(&joined_bytes).unwrap(), joined);
        assert_eq!(codec::decode::<Event>(&other_bytes).unwrap(), other);
    }
}
