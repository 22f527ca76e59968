//! One journal chunk's events for `otsctl import-otsd`, built by a walking thread: every record's
//! MAC checked, its answer rebuilt ([`super::walk`]), and its `CommitmentImported` event encoded,
//! with a `ProofSuffixImported` before the first commitment of the chunk that shares a proof end.
//!
//! The events are encoded here, on the walking threads, but their sequence numbers are the log
//! writer's: a commitment that shares a suffix names it by its number in the chunk, and the
//! writer ([`super::importer`]) appends the `suffix_seq` field once the suffix has a sequence
//! number (or reuses the number of an equal suffix the previous chunk wrote, so that a
//! transaction cut by a chunk boundary still writes its suffix once).
use serde::Serialize;

use super::journal;
use super::walk::{Fail, Walker, WARM_BATCH};
use crate::calendar::commitment::COMMITMENT_LEN;
use crate::calendar::mac::CommitmentMac;
use crate::events::codec;

/// Journal records per chunk: the unit a walking thread takes.
pub const CHUNK_RECORDS: usize = 16 * 1024;
/// Problems listed by journal index in the report; the rest are counted.
pub const MAX_LISTED: usize = 100;
/// A proof's end shorter than this is kept in its own event, not shared.
pub const MIN_SHARED_SUFFIX: usize = 64;

/// [`Chunk::items`] kind of an event written as is.
pub const PLAIN: u32 = u32::MAX;
/// [`Chunk::items`] kind of a `ProofSuffixImported` (the chunk's suffixes are numbered in order).
pub const SUFFIX: u32 = u32::MAX - 1;

/// A journal record the report names.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Listed {
    pub index: u64,
    pub commitment: String,
    pub detail: String,
}

/// What a chunk found (counts as in [`super::importer::ImportReport`]).
#[derive(Debug, Default)]
pub struct Found {
    pub commitments: u64,
    pub complete: u64,
    pub pending: u64,
    pub legacy: u64,
    pub bad_macs: u64,
    pub bad_mac_records: Vec<Listed>,
    pub unusable_trees: u64,
    pub unusable_tree_records: Vec<Listed>,
    pub pending_before_known_good: u64,
    /// Whether a record of the chunk is pending, and the complete ones after the first such.
    pub any_pending: bool,
    pub complete_after_first_pending: u64,
}

/// A chunk's events in journal order.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The events' encodings, one after the other; a commitment event sharing a suffix lacks its
    /// last field.
    pub bytes: Vec<u8>,
    /// Per event: its end in `bytes`, and [`PLAIN`], [`SUFFIX`], or the number in the chunk of
    /// the suffix whose `suffix_seq` field is still to be appended.
    pub items: Vec<(u32, u32)>,
    pub found: Found,
}

/// Builds chunks with one walker and one MAC checker (one per thread).
pub struct ChunkBuilder<'t> {
    pub walker: Walker<'t>,
    mac: CommitmentMac,
    known_good: u64,
    /// End number (of the walker, this chunk) -> suffix number in the chunk.
    suffix_of_end: Vec<u32>,
    suffixes: u32,
}

impl<'t> ChunkBuilder<'t> {
    pub fn new(walker: Walker<'t>, hmac_key: &[u8], known_good: u64) -> ChunkBuilder<'t> {
        ChunkBuilder {
            walker,
            mac: CommitmentMac::new(hmac_key),
            known_good,
            suffix_of_end: Vec::new(),
            suffixes: 0,
        }
    }

    /// The events of the journal records `records` (whole 44-byte records), the first being
    /// journal index `first`.
    pub fn build(&mut self, first: u64, records: &[u8]) -> Chunk {
        self.walker.reset();
        self.suffix_of_end.clear();
        self.suffixes = 0;
        let mut chunk = Chunk {
            bytes: Vec::with_capacity(records.len() / COMMITMENT_LEN * 512),
            items: Vec::with_capacity(records.len() / COMMITMENT_LEN + 64),
            found: Found::default(),
        };
        let batch = WARM_BATCH * COMMITMENT_LEN;
        for (records, at) in records.chunks(batch).zip((first..).step_by(WARM_BATCH)) {
            let commitments = records.chunks_exact(COMMITMENT_LEN).filter_map(|r| {
                <&[u8; COMMITMENT_LEN]>::try_from(r)
                    .ok()
                    .map(journal::commitment)
            });
            self.walker.warm(commitments);
            for (record, index) in records.chunks_exact(COMMITMENT_LEN).zip(at..) {
                let Ok(record) = <&[u8; COMMITMENT_LEN]>::try_from(record) else {
                    continue;
                };
                self.record(index, record, &mut chunk);
            }
        }
        chunk
    }

    fn record(&mut self, index: u64, record: &[u8; COMMITMENT_LEN], chunk: &mut Chunk) {
        let f = &mut chunk.found;
        let c = journal::commitment(record);
        f.commitments += 1;
        if journal::is_legacy(c) {
            f.legacy += 1;
        } else if !self.mac.verify(record) {
            f.bad_macs += 1;
            let why = "MAC does not verify under hmac-key";
            list(&mut f.bad_mac_records, index, c, why.into());
        }
        let out = &mut chunk.bytes;
        match self.walker.answer(c) {
            Ok(p) => {
                f.complete += 1;
                f.complete_after_first_pending += u64::from(f.any_pending);
                let at = p.tree.len() + p.extra.len();
                if at == 0 || p.suffix.len() < MIN_SHARED_SUFFIX {
                    let parts = [p.tree, p.extra, p.suffix];
                    codec::commitment_imported_into(out, index, c, Some(&parts), false);
                    chunk.items.push((out.len() as u32, PLAIN));
                    return;
                }
                let end = p.end as usize;
                if self.suffix_of_end.len() <= end {
                    self.suffix_of_end.resize(end + 1, PLAIN);
                }
                if self.suffix_of_end[end] == PLAIN {
                    self.suffix_of_end[end] = self.suffixes;
                    self.suffixes += 1;
                    codec::proof_suffix_imported_into(out, p.suffix);
                    chunk.items.push((out.len() as u32, SUFFIX));
                }
                let parts = [p.tree, p.extra];
                codec::commitment_imported_into(out, index, c, Some(&parts), true);
                chunk
                    .items
                    .push((out.len() as u32, self.suffix_of_end[end]));
            }
            Err(fail) => {
                if let Fail::Bad { key, why } = fail {
                    f.unusable_trees += 1;
                    let detail = format!("row {}: {why}", hex::encode(key));
                    list(&mut f.unusable_tree_records, index, c, detail);
                }
                f.pending += 1;
                f.any_pending = true;
                f.pending_before_known_good += u64::from(index < self.known_good);
                codec::commitment_imported_into(out, index, c, None, false);
                chunk.items.push((out.len() as u32, PLAIN));
            }
        }
    }
}

fn list(into: &mut Vec<Listed>, index: u64, commitment: &[u8], detail: String) {
    if into.len() < MAX_LISTED {
        into.push(Listed {
            index,
            commitment: hex::encode(commitment),
            detail,
        });
    }
}
