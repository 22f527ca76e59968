//! A borrowed view of the two events a replay folds millions of times, decoded without copying
//! or allocating: the digest and the commitment are slices of the payload.
//!
//! The view mirrors the first variants of [`super::Event`] (variants are encoded by index, so
//! its variant order must stay theirs), with the same field types where it does not borrow, so
//! that it accepts no payload the whole event would refuse: the fields the fold does not need
//! (the nonce, the root and MAC that the commitment repeats) are still checked. Any other event,
//! or an encoding the view does not know, fails to decode as a view; the caller then decodes the
//! whole [`super::Event`], which remains the definition. A test checks that both agree.
use serde::Deserialize;

use super::NONCE_LEN;

/// [`super::Event::DigestSubmitted`] or [`super::Event::RoundSealed`], borrowed. Fixed arrays
/// are read through `serde_bytes` as in the event (a byte string, or the integer array written
/// before the compact encoding), and a seal's commitment may be left out (compact) or present.
#[derive(Debug, Deserialize)]
pub enum EventView<'a> {
    DigestSubmitted {
        #[serde(borrow)]
        digest: &'a [u8],
        #[allow(dead_code)]
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        nonce: [u8; NONCE_LEN],
    },
    RoundSealed {
        round: u64,
        time: u32,
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        root: [u8; 32],
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        mac: [u8; 8],
        #[serde(default, borrow)]
        commitment: Option<&'a [u8]>,
        digests: u32,
    },
}

/// A seal's commitment: the one it carries, or `time || root || mac` put back into `buf`, as the
/// whole event's decoding does.
pub fn seal_commitment<'a>(
    carried: Option<&'a [u8]>,
    time: u32,
    root: &[u8; 32],
    mac: &[u8; 8],
    buf: &'a mut [u8; 44],
) -> &'a [u8] {
    match carried {
        Some(c) => c,
        None => {
            buf[..4].copy_from_slice(&time.to_be_bytes());
            buf[4..36].copy_from_slice(root);
            buf[36..].copy_from_slice(mac);
            &buf[..]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec;
    use super::super::Event;
    use super::*;

    fn view(e: &Event) -> Option<(u8, Vec<u8>, u64, u32, u32)> {
        let bytes = codec::encode(e).unwrap();
        match codec::decode_borrowed::<EventView>(&bytes).ok()? {
            EventView::DigestSubmitted { digest, .. } => Some((0, digest.to_vec(), 0, 0, 0)),
            EventView::RoundSealed {
                round,
                time,
                root,
                mac,
                commitment,
                digests,
            } => {
                let mut buf = [0; 44];
                let c = seal_commitment(commitment, time, &root, &mac, &mut buf);
                Some((1, c.to_vec(), round, time, digests))
            }
        }
    }

    #[test]
    fn the_view_reads_what_the_event_holds_and_refuses_other_events() {
        let digest = Event::DigestSubmitted {
            digest: vec![7; 32],
            nonce: [9; 16],
        };
        assert_eq!(view(&digest), Some((0, vec![7; 32], 0, 0, 0)));
        let long = Event::DigestSubmitted {
            digest: vec![1; 64],
            nonce: [0; 16],
        };
        assert_eq!(view(&long), Some((0, vec![1; 64], 0, 0, 0)));
        let sealed = Event::RoundSealed {
            round: 1 << 40,
            time: 1_700_000_000,
            root: [3; 32],
            mac: [4; 8],
            commitment: vec![5; 44],
            digests: 24,
        };
        assert_eq!(
            view(&sealed),
            Some((1, vec![5; 44], 1 << 40, 1_700_000_000, 24))
        );
        // A seal otsd writes leaves its commitment out (compact encoding); the view puts it back.
        let own = [&1_700_000_000u32.to_be_bytes()[..], &[3; 32], &[4; 8]].concat();
        let compact = Event::RoundSealed {
            round: 2,
            time: 1_700_000_000,
            root: [3; 32],
            mac: [4; 8],
            commitment: own.clone(),
            digests: 1,
        };
        let bytes = codec::encode(&compact).unwrap();
        assert!(
            bytes.len() < 80,
            "the commitment was left out: {} bytes",
            bytes.len()
        );
        assert_eq!(view(&compact), Some((1, own, 2, 1_700_000_000, 1)));
        let others = [
            Event::BlockSeen {
                height: 5,
                hash: [1; 32],
            },
            Event::CommitmentReadmitted {
                round: 3,
                commitment: vec![2; 44],
            },
            Event::ProofSuffixImported { bytes: vec![1, 2] },
        ];
        for e in &others {
            assert_eq!(view(e), None, "{e:?}");
        }
    }
}
