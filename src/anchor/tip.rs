//! The Merkle tip of the pending commitments, as the Python stamper builds it.
//!
//! python-opentimestamps `make_merkle_tree` over the commitments' timestamps: adjacent messages are
//! joined with `sha256(left || right)`, an odd last message is carried up unchanged. Commitments are
//! 44 bytes, not hashes, so a lone commitment is its own tip and carried-up messages keep their
//! length; this is why it does not reuse the round tree, whose leaves are all 32-byte hashes.
//!
//! Not the stamping tip: the tip a transaction commits to ([`super::proof::stamp_tip`]) hashes
//! each commitment first and adds the log head. This one only answers `GET /tip`, as Python does.
use sha2::{Digest, Sha256};

/// The tip over `messages` in order, or `None` when there are none.
pub fn merkle_tip<'a>(messages: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut level: Vec<Vec<u8>> = messages.into_iter().map(<[u8]>::to_vec).collect();
    while level.len() > 1 {
        let mut next: Vec<Vec<u8>> = level
            .chunks_exact(2)
            .map(|p| {
                Sha256::new()
                    .chain_update(&p[0])
                    .chain_update(&p[1])
                    .finalize()
                    .to_vec()
            })
            .collect();
        if level.len() % 2 == 1 {
            next.push(level.pop().unwrap_or_default());
        }
        level = next;
    }
    level.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tip_pairs_adjacent_and_carries_the_odd_one() {
        let (a, b, c) = (&[1u8; 44][..], &[2u8; 44][..], &[3u8; 44][..]);
        assert_eq!(merkle_tip([]), None);
        assert_eq!(merkle_tip([a]).unwrap(), a);
        let ab = Sha256::new()
            .chain_update(a)
            .chain_update(b)
            .finalize()
            .to_vec();
        assert_eq!(merkle_tip([a, b]).unwrap(), ab);
        let abc = Sha256::new()
            .chain_update(&ab)
            .chain_update(c)
            .finalize()
            .to_vec();
        assert_eq!(merkle_tip([a, b, c]).unwrap(), abc);
    }
}
