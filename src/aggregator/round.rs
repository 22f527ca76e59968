//! Sealing a round: nonces, Merkle tree, time and MAC, and each digest's answer.
//!
//! Each digest gets a fresh 16-byte nonce, so its answer reveals nothing about the other digests of
//! its round: the proof starts `append(nonce) sha256`, as in the Python server. The leaves are
//! Merkle-hashed the python-opentimestamps way; the root is then `prepend(time)` and `append(mac)`,
//! giving the 44-byte commitment that the pending attestation is made on.
use bytes::Bytes;
use rand::{rngs::StdRng, RngCore, SeedableRng};

use crate::calendar::mac::CommitmentMac;
use crate::events::{Event, NONCE_LEN};
use crate::ots::answer::{nonce_leaf, write_answer, RoundTail};
use crate::ots::{Attestation, MerkleTree};

/// The events and answers of one sealed round.
pub struct SealedRound {
    /// `DigestSubmitted` for each digest, then one `RoundSealed`.
    pub events: Vec<Event>,
    /// The serialized timestamp for each digest, in submission order.
    pub answers: Vec<Bytes>,
}

/// Seals rounds for one calendar.
pub struct RoundSealer {
    attestation: Attestation,
    mac: CommitmentMac,
    rng: StdRng,
}

impl RoundSealer {
    /// `uri` must be a valid pending-attestation URI (checked when the calendar directory loads).
    pub fn new(uri: &str, hmac_key: &[u8]) -> Option<RoundSealer> {
        let attestation = Attestation::pending(uri)?;
        Some(RoundSealer {
            attestation,
            mac: CommitmentMac::new(hmac_key),
            rng: StdRng::from_entropy(),
        })
    }

    /// Seals `digests` (at least one) as round `round` at unix time `time`.
    pub fn seal(&mut self, round: u64, time: u32, digests: &[&[u8]]) -> SealedRound {
        let nonces: Vec<[u8; NONCE_LEN]> = digests.iter().map(|_| self.nonce()).collect();
        let leaves = digests
            .iter()
            .zip(&nonces)
            .map(|(d, n)| nonce_leaf(d, n))
            .collect();
        #[allow(
            clippy::expect_used,
            reason = "callers seal non-empty rounds (documented above)"
        )]
        let tree = MerkleTree::new(leaves).expect("a round has at least one digest");
        let root = *tree.root();
        let mac = self.mac.mac(time, &root);
        let commitment = self.mac.commitment(time, &root);
        let tail = RoundTail::new(time, &mac, &self.attestation);
        let answers = nonces
            .iter()
            .enumerate()
            .map(|(i, nonce)| {
                let mut out = Vec::with_capacity(64 + 34 * 20 + tail.as_bytes().len());
                #[allow(clippy::expect_used, reason = "the tree has one leaf per digest")]
                let path = tree.path(i).expect("every digest has a leaf");
                write_answer(&mut out, nonce, path, &tail);
                Bytes::from(out)
            })
            .collect();
        let mut events: Vec<Event> = digests
            .iter()
            .zip(nonces)
            .map(|(d, nonce)| Event::DigestSubmitted {
                digest: d.to_vec(),
                nonce,
            })
            .collect();
        events.push(Event::RoundSealed {
            round,
            time,
            root,
            mac,
            commitment: commitment.to_vec(),
            digests: digests.len() as u32,
        });
        SealedRound { events, answers }
    }

    fn nonce(&mut self) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut n);
        n
    }
}
