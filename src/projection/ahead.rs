//! The verifying thread of a rebuild, and what it works out ahead of the fold.
//!
//! A rebuild of many sealed segments runs on two threads. One verifies the next segment in full
//! (CRCs, sequence numbers, both hash chains, the seal) and then reads its events into an
//! [`Ahead`]: every part of the fold that does not depend on the fold's state (decoding the two
//! events of every round, the SHA-256 of each digest and, once the digest index has its salt,
//! each digest's salted key) is done there, on bytes that are still in that thread's cache. The
//! other thread applies the [`Ahead`] of one segment to the projection and writes it to the
//! checkpoint files while the next one is verified. Nothing reaches the fold before its whole
//! segment is verified; any event other than the two is handed over as its bytes and decoded by
//! the fold as a serial replay would.
use std::sync::atomic::{AtomicU64, Ordering};

use super::digests::{digest_hash, DigestHash, Key};
use crate::calendar::commitment::{Commitment, COMMITMENT_LEN};
use crate::events::view::EventView;
use crate::log::{ChainState, Head, LogError, Reader};

/// Sealed segments prepared ahead of the fold: at most this many wait for it. More than one, so
/// that a segment that takes the fold longer (a commit's sync) does not stop the verifier too.
const PREPARED_AHEAD: usize = 4;

/// A `RoundSealed` as the fold takes it.
#[derive(Debug, Clone, Copy)]
pub struct SealAhead {
    pub round: u64,
    pub time: u32,
    pub digests: u32,
    pub commitment: Commitment,
}

/// One event of an [`Ahead`], in log order.
#[derive(Debug, Clone, Copy)]
pub enum EventAhead<'a> {
    /// A `DigestSubmitted`: its digest's SHA-256.
    Digest(&'a DigestHash),
    /// A `RoundSealed` whose commitment has the one valid length.
    Seal(&'a SealAhead),
    /// Any other event, or one the view cannot read: its payload, for the full decoder.
    Other(&'a [u8]),
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Digest,
    Seal,
    Other,
}

/// A verified sealed segment's events, worked out for the fold. Memory: a few vectors sized by
/// one segment (about 100 bytes a round), reused from segment to segment.
#[derive(Debug)]
pub struct Ahead {
    /// The head after the segment's seal.
    pub head: Head,
    first_seq: u64,
    kinds: Vec<Kind>,
    hashes: Vec<DigestHash>,
    /// The salted key of each digest in `hashes`, when `key_salt` was known.
    keys: Vec<Key>,
    key_salt: Option<u64>,
    seals: Vec<SealAhead>,
    /// The payloads of the `Other` events, one after the other, and where each ends.
    others: Vec<u8>,
    other_ends: Vec<usize>,
}

impl Default for Ahead {
    fn default() -> Ahead {
        Ahead {
            head: Head {
                next_seq: 0,
                chain: ChainState::GENESIS,
            },
            first_seq: 0,
            kinds: Vec::new(),
            hashes: Vec::new(),
            keys: Vec::new(),
            key_salt: None,
            seals: Vec::new(),
            others: Vec::new(),
            other_ends: Vec::new(),
        }
    }
}

impl Ahead {
    /// Verifies the sealed segment `first_seq` (continuing `at`) and reads its events, into the
    /// buffers of `self` (an earlier segment's, so that their pages are not faulted in again).
    /// With `key_salt`, each digest's key in the digest index is worked out too.
    pub fn read(
        mut self,
        reader: &Reader,
        first_seq: u64,
        at: Head,
        key_salt: Option<u64>,
    ) -> Result<Ahead, LogError> {
        let segment = reader.verify_sealed(first_seq, at)?;
        self.head = segment.head;
        // A verified segment's events are numbered from its first seq on, without gaps.
        self.first_seq = first_seq;
        self.key_salt = key_salt;
        self.kinds.clear();
        self.hashes.clear();
        self.keys.clear();
        self.seals.clear();
        self.others.clear();
        self.other_ends.clear();
        segment.for_each_event(|_, payload| self.push(payload))?;
        Ok(self)
    }

    fn push(&mut self, payload: &[u8]) {
        let kind = match EventView::read(payload) {
            Ok(EventView::DigestSubmitted { digest, .. }) => {
                let h = digest_hash(digest);
                if let Some(salt) = self.key_salt {
                    self.keys.push(Key::new(&h, salt));
                }
                self.hashes.push(h);
                Kind::Digest
            }
            Ok(view) => {
                let mut buf = [0; COMMITMENT_LEN];
                match view.seal(&mut buf).map(|s| (s, s.commitment.try_into())) {
                    Some((s, Ok(commitment))) => {
                        self.seals.push(SealAhead {
                            round: s.round,
                            time: s.time,
                            digests: s.digests,
                            commitment,
                        });
                        Kind::Seal
                    }
                    // The fold refuses it, with the error a serial replay gives.
                    _ => self.push_other(payload),
                }
            }
            Err(_) => self.push_other(payload),
        };
        self.kinds.push(kind);
    }

    fn push_other(&mut self, payload: &[u8]) -> Kind {
        self.others.extend_from_slice(payload);
        self.other_ends.push(self.others.len());
        Kind::Other
    }

    /// Calls `f(seq, event)` for every event of the segment, in order.
    pub fn for_each(&self, mut f: impl FnMut(u64, EventAhead<'_>)) {
        let (mut hashes, mut seals) = (self.hashes.iter(), self.seals.iter());
        let mut ends = self.other_ends.iter();
        let mut other_start = 0;
        for (i, kind) in self.kinds.iter().enumerate() {
            let event = match kind {
                Kind::Digest => hashes.next().map(EventAhead::Digest),
                Kind::Seal => seals.next().map(EventAhead::Seal),
                Kind::Other => ends.next().map(|&end| {
                    let payload = &self.others[other_start..end];
                    other_start = end;
                    EventAhead::Other(payload)
                }),
            };
            if let Some(event) = event {
                f(self.first_seq + i as u64, event);
            }
        }
    }

    /// The digests' hashes and their keys in the digest index with `salt`, in log order: what
    /// the checkpoint files insert (see [`super::checkpoint::DigestKeys`]).
    pub fn digest_keys(&self) -> Option<super::checkpoint::DigestKeys<'_>> {
        let salt = self.key_salt?;
        Some(super::checkpoint::DigestKeys {
            salt,
            hashes: &self.hashes,
            keys: &self.keys,
        })
    }
}

/// Verifies and reads the sealed segments `sealed` (the first continuing `at`) on a thread of its
/// own and hands each [`Ahead`] to `fold` on this one, in order. `key_salt` is the digest index's
/// salt once `fold` has made the index (0 before): from then on the verifying thread works out the
/// digests' keys too. Memory: at most [`PREPARED_AHEAD`] + 2 [`Ahead`]s and one mapped segment.
/// With `drop_cached`, each segment leaves the page cache once read ([`Reader::drop_cached`]).
/// Returns the head after the last segment.
pub fn verified_ahead<E: From<LogError>>(
    reader: &Reader,
    sealed: &[u64],
    at: Head,
    key_salt: &AtomicU64,
    drop_cached: bool,
    mut fold: impl FnMut(&Ahead) -> Result<Head, E>,
) -> Result<Head, E> {
    let salt = || Some(key_salt.load(Ordering::Acquire)).filter(|&s| s != 0);
    if sealed.len() < 2 {
        // Nothing to overlap.
        let mut at = at;
        for &first_seq in sealed {
            at = fold(&Ahead::default().read(reader, first_seq, at, salt())?)?;
        }
        return Ok(at);
    }
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(PREPARED_AHEAD);
        // Buffers the fold is done with go back to the verifier.
        let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Ahead>();
        let verifier = std::thread::Builder::new()
            .name("otsd-verify".into())
            .spawn_scoped(scope, move || {
                let mut at = at;
                for (i, &first_seq) in sealed.iter().enumerate() {
                    if let Some(&next) = sealed.get(i + 1) {
                        reader.prefetch(next);
                    }
                    let spare = spare_rx.try_recv().unwrap_or_default();
                    let ahead = spare.read(reader, first_seq, at, salt());
                    if drop_cached {
                        // Its events are copied out: its bytes are not needed again.
                        reader.drop_cached(first_seq);
                    }
                    let next = ahead.as_ref().map(|a| a.head).ok();
                    // A closed channel: the fold stopped; so does the verifier.
                    if tx.send(ahead).is_err() {
                        return;
                    }
                    match next {
                        Some(head) => at = head,
                        None => return,
                    }
                }
            });
        let mut at = at;
        match verifier {
            Ok(_) => {
                for ahead in rx.iter().take(sealed.len()) {
                    let ahead = ahead?;
                    at = fold(&ahead)?;
                    let _ = spare_tx.send(ahead);
                }
            }
            Err(e) => {
                // No thread to spare: verify and fold in turn.
                tracing::debug!("verifying on the folding thread: {e}");
                for &first_seq in sealed {
                    at = fold(&Ahead::default().read(reader, first_seq, at, salt())?)?;
                }
            }
        }
        Ok(at)
    })
}
