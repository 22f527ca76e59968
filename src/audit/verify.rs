//! `otsctl verify`: forensic verification of a calendar's whole history.
//!
//! One pass over the log checks, in this order of layers:
//! - the log itself (CRC of every record, public hash chain, HMAC chain when the key is given,
//!   segment headers and seals), through [`crate::log::Reader`]; damage ends the read of its
//!   segment (nothing after it there can be trusted) and is reported by segment, offset and sequence number;
//! - event order, by folding with [`Projection::apply`] (a round's digests precede its seal, round
//!   numbers are contiguous, the digest count matches) and, on top, that a transaction covers only
//!   sealed rounds and that a confirmation follows its broadcast;
//! - every `RoundSealed`: its Merkle root recomputed from the round's digests and nonces, its
//!   commitment equal to `time || root || mac`, and (with the key) its MAC recomputed;
//! - every `CommitmentReadmitted` (`otsctl readmit`): no digests to recompute a root from, so its
//!   MAC (with the key) is the whole proof that the calendar issued it; and it must not repeat a
//!   commitment the calendar already knew;
//! - every `CommitmentImported` (`otsctl import-otsd`): its MAC is counted, not reported (the Python
//!   calendar journaled and anchored records with bad MACs too, and the import reported them); its
//!   proof, when complete, must parse as a timestamp on the commitment in the canonical encoding the
//!   Python server writes, and every path must end in a Bitcoin attestation; the Merkle root it
//!   reaches is checked per block height (one root per height) and, with a node, against the block
//!   header at that height;
//! - every proof the projection would serve as complete, recomputed ([`super::proofs`]);
//! - the calendar's self-timestamping ([`super::heads`]): each `TxBroadcast`'s log head is a point
//!   of this log's public chain, and its tip is recomputed from the covered commitments and head;
//! - with a Bitcoin Core node ([`verify_with_node`]), every confirmation still standing against
//!   the node's best chain ([`super::node`]).
//!
//! Damage in a segment that is not the last does not end the report: reading resumes at the next
//! segment (trusting its header's chain values), so every damaged segment is named. Order checks stop
//! at the first damage, since the fold has lost events.
//!
//! `--from`/`--to` select which events are checked and reported. The log is always read from its
//! first record, because the chain values and the fold at `from` are only as trustworthy as
//! everything before them. At most [`MAX_PROBLEMS`] problems are listed; the rest are counted.
use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::heads::{check_tip, ChainPoints};
use super::node::{check_attested_roots, check_confirmations, Confirmations, Node};
use super::proofs::{check_complete_proofs, BlockRoots};
use super::{hex, LogSource, SeqFilter, ToolError};
use crate::calendar::commitment::{join_commitment, Commitment};
use crate::calendar::mac::CommitmentMac;
use crate::events::codec;
use crate::events::{joined_proof, Event, LogHead};
use crate::log::progress::{Progress, Ticker};
use crate::log::record::{for_each_event, RecordType};
use crate::log::segment::segment_name;
use crate::log::LogError;
use crate::ots::answer::nonce_leaf;
use crate::ots::merkle::Hash;
use crate::ots::MerkleTree;
use crate::projection::{Projection, Status};

/// Most problems listed in a report; a log damaged everywhere would otherwise drown the first one.
pub const MAX_PROBLEMS: usize = 1000;

/// One thing wrong, located as precisely as the layer that found it can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What kind of check failed (`log`, `decode`, `order`, `root`, `commitment`, `mac`, `tx`,
    /// `proof`, `readmit`, `head`, `tip`, `node`).
    pub check: &'static str,
    /// Segment file name.
    pub segment: Option<String>,
    /// Byte offset of the damaged record in the segment (log damage only).
    pub offset: Option<u64>,
    /// The event's sequence number; for log damage, the first sequence number not delivered.
    pub seq: Option<u64>,
    pub detail: String,
}

/// What a verification read and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Events read from the log.
    pub events: u64,
    /// Events in the selected range (checked).
    pub checked: u64,
    pub digests: u64,
    /// `RoundSealed` events.
    pub rounds: u64,
    /// `CommitmentReadmitted` events (rounds too, but of no digests).
    pub readmitted: u64,
    /// `CommitmentImported` events (rounds of no digests), and how many of them carry a proof.
    pub imported: u64,
    pub imported_complete: u64,
    /// Imported 44-byte commitments whose MAC does not verify under the key (not problems: the
    /// Python calendar issued and anchored them).
    pub imported_bad_macs: u64,
    /// Block Merkle roots attested by imported proofs and confirmed by the node (`None`: no node).
    pub node_imported_roots_checked: Option<u64>,
    /// Distinct blocks whose Merkle roots imported proofs attest.
    pub imported_roots_len: u64,
    pub roots_checked: u64,
    /// MACs of sealed and readmitted rounds.
    pub macs_checked: u64,
    /// Complete proofs recomputed from the events and found to reach their block's Merkle root.
    pub proofs_checked: u64,
    pub broadcasts: u64,
    pub confirmations: u64,
    /// Log heads committed by stamping transactions and found on this log's public chain.
    pub heads_checked: u64,
    /// Confirmations found in the best chain of the node given with `--btc-rpc` (`None`: no node).
    pub node_confirmations_checked: Option<u64>,
    /// Whether the HMAC chain and commitment MACs were checked (the key was given).
    pub keyed: bool,
    /// Sequence number after the last event read.
    pub next_seq: u64,
    /// Public hash chain head (hex) when the whole log verified.
    pub head_hash: Option<String>,
    pub problems: Vec<Problem>,
    /// Problems beyond [`MAX_PROBLEMS`], counted only.
    pub problems_omitted: u64,
    /// Segments where reading resumed after damage (first sequence numbers); order checks stop at
    /// the first.
    pub resumed_at: Vec<u64>,
    pub seconds: f64,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.problems_omitted == 0
    }

    fn push(&mut self, problem: Problem) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(problem);
        } else {
            self.problems_omitted += 1;
        }
    }
}

/// Verifies the log of `source`, calling `progress` now and then.
pub fn verify(
    source: &LogSource,
    range: SeqFilter,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report, ToolError> {
    verify_with_node(source, range, None, progress)
}

/// [`verify`], and with `node`, every confirmation still standing checked against its best chain.
pub fn verify_with_node(
    source: &LogSource,
    range: SeqFilter,
    node: Option<&Node>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report, ToolError> {
    let segments = source.segments()?;
    let mut checker = Checker::new(source.hmac_key.as_deref(), range, segments);
    let mut ticker = Ticker::new(progress);
    let mut from = 0;
    loop {
        let result = source.reader.for_each_record_from(from, |rec| {
            if rec.record_type == RecordType::Batch {
                for_each_event(rec.payload, rec.count, |k, payload| {
                    let seq = rec.first_seq + u64::from(k);
                    ticker.tick(seq);
                    checker.event(seq, payload);
                });
            }
            checker
                .points
                .record(rec.first_seq + u64::from(rec.count), rec.hash);
        });
        match result {
            Ok(next_seq) => {
                checker.report.next_seq = next_seq;
                if checker.report.resumed_at.is_empty() {
                    let head = source.reader.head()?;
                    checker.report.head_hash = Some(hex(&head.chain.hash));
                }
                break;
            }
            Err(e) => match checker.log_damage(e) {
                Some(next_segment) => from = next_segment,
                None => break,
            },
        }
    }
    checker.check_proofs();
    checker.report.imported_roots_len = checker.imported_roots.len() as u64;
    if let Some(node) = node {
        checker.check_node(node)?;
    }
    checker.report.seconds = ticker.progress(checker.next_seq).elapsed.as_secs_f64();
    Ok(checker.report)
}

/// The fold behind [`verify`].
struct Checker {
    view: Projection,
    mac: Option<CommitmentMac>,
    range: SeqFilter,
    segments: Vec<u64>,
    /// Leaves of the round being read: `sha256(digest || nonce)` of its DigestSubmitted events.
    leaves: Vec<Hash>,
    broadcast: HashSet<[u8; 32]>,
    next_seq: u64,
    /// Sequence number of every round's seal, by round.
    seal_seqs: Vec<u64>,
    block_roots: BlockRoots,
    /// Chain values after the latest records, for the log heads of stamping transactions.
    points: ChainPoints,
    confirmed: Confirmations,
    /// Block Merkle roots attested by imported proofs: height -> (root, first seq attesting it).
    imported_roots: std::collections::BTreeMap<u32, ([u8; 32], u64)>,
    /// `ProofSuffixImported` bytes by sequence number: one per stamping transaction of the
    /// imported Python history (a few hundred bytes each).
    imported_suffixes: HashMap<u64, Vec<u8>>,
    /// Events were lost to damage: the fold no longer matches the history.
    gap: bool,
    /// The next seal's leaves are incomplete (reading resumed inside its round).
    skip_next_root: bool,
    report: Report,
}

impl Checker {
    fn new(hmac_key: Option<&[u8]>, range: SeqFilter, segments: Vec<u64>) -> Checker {
        Checker {
            view: Projection::default(),
            mac: hmac_key.map(CommitmentMac::new),
            range,
            segments,
            leaves: Vec::new(),
            broadcast: HashSet::new(),
            next_seq: 0,
            seal_seqs: Vec::new(),
            block_roots: BlockRoots::default(),
            points: ChainPoints::default(),
            confirmed: Confirmations::default(),
            imported_roots: Default::default(),
            imported_suffixes: HashMap::new(),
            gap: false,
            skip_next_root: false,
            report: Report {
                keyed: hmac_key.is_some(),
                ..Report::default()
            },
        }
    }

    /// The segment holding `seq`.
    fn segment_of(&self, seq: u64) -> Option<String> {
        let i = self.segments.partition_point(|&s| s <= seq);
        i.checked_sub(1).map(|i| segment_name(self.segments[i]))
    }

    fn problem(&mut self, seq: u64, check: &'static str, detail: String) {
        if self.range.contains(seq) {
            let segment = self.segment_of(seq);
            self.report.push(Problem {
                check,
                segment,
                offset: None,
                seq: Some(seq),
                detail,
            });
        }
    }

    fn event(&mut self, seq: u64, payload: &[u8]) {
        self.next_seq = seq + 1;
        self.report.events += 1;
        self.report.checked += u64::from(self.range.contains(seq));
        let event = match codec::decode::<Event>(payload) {
            Ok(e) => e,
            Err(e) => return self.problem(seq, "decode", format!("undecodable event: {e}")),
        };
        self.check_event(seq, &event);
        if self.gap {
            return;
        }
        match self.view.apply_checked(seq, &event) {
            Ok(None) => {}
            // A broadcast over unsealed rounds is already named by `check_broadcast`.
            Ok(Some(_)) if self.named_already(&event) => {}
            Ok(Some(stamp)) => self.problem(seq, "stamp", stamp.detail),
            Err(e) => self.problem(seq, "order", e.to_string()),
        }
    }

    fn check_event(&mut self, seq: u64, event: &Event) {
        match event {
            Event::DigestSubmitted { digest, nonce } => {
                self.report.digests += 1;
                self.leaves.push(nonce_leaf(digest, nonce));
            }
            Event::RoundSealed {
                round,
                time,
                root,
                mac,
                commitment,
                ..
            } => {
                self.report.rounds += 1;
                self.seal_seqs.push(seq);
                let leaves = std::mem::take(&mut self.leaves);
                if self.range.contains(seq) {
                    self.check_seal(seq, *round, leaves, (*time, root, mac), commitment);
                }
            }
            Event::CommitmentReadmitted { round, commitment } => {
                self.report.readmitted += 1;
                self.seal_seqs.push(seq);
                // Digests before a readmission belong to no round; the fold reports them.
                self.leaves.clear();
                if self.range.contains(seq) {
                    self.check_readmitted(seq, *round, commitment);
                }
            }
            Event::CommitmentImported {
                round,
                commitment,
                proof,
                suffix_seq,
            } => {
                self.report.imported += 1;
                self.seal_seqs.push(seq);
                self.leaves.clear();
                if self.range.contains(seq) {
                    let suffix = suffix_seq.map(|s| self.imported_suffixes.get(&s));
                    let proof = match (proof, suffix) {
                        (Some(head), Some(Some(suffix))) => Some(joined_proof(head, Some(suffix))),
                        (Some(head), None) => Some(head.clone()),
                        (Some(_), Some(None)) => {
                            let detail = format!(
                                "round {round}: its proof suffix (seq {}) is not a ProofSuffixImported before it",
                                suffix_seq.unwrap_or_default()
                            );
                            return self.problem(seq, "proof", detail);
                        }
                        (None, _) => None,
                    };
                    self.check_imported(seq, *round, commitment, proof.as_deref());
                }
            }
            Event::ProofSuffixImported { bytes } => {
                self.imported_suffixes.insert(seq, bytes.clone());
            }
            _ if self.gap => {}
            Event::TxBroadcast {
                txid,
                tip,
                first_round,
                last_round,
                log_head,
                ..
            } => {
                self.confirmed.broadcast(txid, tip);
                if self.check_broadcast(seq, txid, *last_round) {
                    self.check_self_stamp(seq, (*first_round, *last_round), log_head.as_ref(), tip);
                }
            }
            Event::TxConfirmed {
                txid,
                block_hash,
                height,
                block_txids,
            } => {
                self.report.confirmations += 1;
                self.block_roots.confirmed(*height, block_txids);
                self.confirmed
                    .confirmed(seq, txid, (block_hash, *height), block_txids);
                if !self.broadcast.contains(txid) {
                    let detail = format!(
                        "TxConfirmed of {} with no TxBroadcast before it",
                        txid_hex(txid)
                    );
                    self.problem(seq, "tx", detail);
                }
            }
            Event::BlockSeen { .. } | Event::Reorg { .. } => {}
        }
    }

    /// Whether the problem the fold has with this stamping event is already reported: a broadcast
    /// over unsealed rounds, a confirmation without a broadcast.
    fn named_already(&self, event: &Event) -> bool {
        match event {
            Event::TxBroadcast { .. } => true,
            Event::TxConfirmed { txid, .. } => !self.broadcast.contains(txid),
            _ => false,
        }
    }

    /// Whether the rounds the transaction covers are all sealed.
    fn check_broadcast(&mut self, seq: u64, txid: &[u8; 32], last_round: u64) -> bool {
        self.report.broadcasts += 1;
        self.broadcast.insert(*txid);
        if last_round >= self.view.next_round() {
            let detail = format!(
                "TxBroadcast of {} covers round {last_round}, but only {} rounds are sealed",
                txid_hex(txid),
                self.view.next_round()
            );
            self.problem(seq, "tx", detail);
            return false;
        }
        true
    }

    /// The log head is a point of this log's chain, and the tip commits to it and the rounds.
    fn check_self_stamp(
        &mut self,
        seq: u64,
        rounds: (u64, u64),
        head: Option<&LogHead>,
        tip: &[u8; 32],
    ) {
        if let Some(head) = head {
            match self.points.check(head) {
                Ok(()) => self.report.heads_checked += u64::from(self.range.contains(seq)),
                Err(why) => self.problem(seq, "head", why),
            }
        }
        if let Err(why) = check_tip(&self.view, rounds, head, tip) {
            self.problem(seq, "tip", why);
        }
    }

    /// Every confirmation still standing, against the node's best chain (skipped after a gap).
    fn check_node(&mut self, node: &Node) -> Result<(), ToolError> {
        if self.gap {
            return Ok(());
        }
        let (good, bad) = check_confirmations(node, &self.confirmed, &self.view)?;
        self.report.node_confirmations_checked = Some(good);
        for (seq, why) in bad {
            self.problem(seq, "node", why);
        }
        let (good, bad) = check_attested_roots(node, &self.imported_roots)?;
        self.report.node_imported_roots_checked = Some(good);
        for (seq, why) in bad {
            self.problem(seq, "node", why);
        }
        Ok(())
    }

    fn check_seal(
        &mut self,
        seq: u64,
        round: u64,
        leaves: Vec<Hash>,
        (time, root, mac): (u32, &[u8; 32], &[u8; 8]),
        commitment: &[u8],
    ) {
        match MerkleTree::new(leaves) {
            _ if std::mem::take(&mut self.skip_next_root) => {}
            Some(tree) if tree.root() == root => self.report.roots_checked += 1,
            Some(tree) => {
                let detail = format!(
                    "round {round}: root {} recorded, {} recomputed from its digests",
                    hex(root),
                    hex(tree.root())
                );
                self.problem(seq, "root", detail);
            }
            None => self.problem(seq, "root", format!("round {round} seals no digests")),
        }
        if join_commitment(time, root, mac)[..] != commitment[..] {
            let detail = format!("round {round}: commitment is not time || root || mac");
            self.problem(seq, "commitment", detail);
        }
        self.check_mac(seq, round, commitment);
    }

    fn check_readmitted(&mut self, seq: u64, round: u64, commitment: &[u8]) {
        self.check_mac(seq, round, commitment);
        if self.gap {
            return;
        }
        let known = match self.view.status(commitment) {
            // The forensic fold is in memory, which has no history to fail.
            Status::Unknown | Status::Unavailable(_) => return,
            Status::Pending { round }
            | Status::Mined { round, .. }
            | Status::Complete { round, .. }
            | Status::Imported { round, .. } => round,
        };
        let detail = format!(
            "round {round}: readmitted commitment {} was already round {known}",
            hex(commitment)
        );
        self.problem(seq, "readmit", detail);
    }

    fn check_imported(&mut self, seq: u64, round: u64, commitment: &[u8], proof: Option<&[u8]>) {
        if commitment.len() == crate::calendar::commitment::COMMITMENT_LEN
            && !crate::calendar::legacy::is_legacy(commitment)
        {
            if let (Some(mac), Ok(c)) = (self.mac.as_mut(), commitment.try_into()) {
                if mac.verify(c) {
                    self.report.macs_checked += 1;
                } else {
                    self.report.imported_bad_macs += 1;
                }
            }
        } else if commitment.len() != crate::calendar::legacy::LEGACY_LEN {
            let detail = format!(
                "round {round}: imported commitment of {} bytes",
                commitment.len()
            );
            return self.problem(seq, "import", detail);
        }
        let Some(proof) = proof else {
            return;
        };
        self.report.imported_complete += 1;
        match imported_roots(commitment, proof) {
            Ok(roots) => {
                self.report.proofs_checked += 1;
                for (height, root) in roots {
                    let (known, _) = *self.imported_roots.entry(height).or_insert((root, seq));
                    if known != root {
                        let detail = format!(
                            "round {round}: proof attests root {} for block {height}, another proof {}",
                            hex(&root),
                            hex(&known)
                        );
                        self.problem(seq, "proof", detail);
                    }
                }
            }
            Err(why) => self.problem(seq, "proof", format!("round {round}: {why}")),
        }
    }

    fn check_mac(&mut self, seq: u64, round: u64, commitment: &[u8]) {
        let (Some(mac), Ok(c)) = (self.mac.as_mut(), <&Commitment>::try_from(commitment)) else {
            return;
        };
        if mac.verify(c) {
            self.report.macs_checked += 1;
        } else {
            let detail = format!("round {round}: commitment {} has a wrong MAC", hex(c));
            self.problem(seq, "mac", detail);
        }
    }

    /// Every proof the projection would serve as complete, recomputed (skipped after a gap).
    fn check_proofs(&mut self) {
        if self.gap {
            return;
        }
        let (good, bad) = check_complete_proofs(&self.view, &self.block_roots);
        self.report.proofs_checked = good;
        for (round, why) in bad {
            let seq = self.seal_seqs.get(round as usize).copied().unwrap_or(0);
            self.problem(seq, "proof", format!("round {round}: {why}"));
        }
    }

    /// The read stopped at damage: name it as precisely as the log did, and say where reading can
    /// resume (the segment after the damaged one, if any).
    fn log_damage(&mut self, e: LogError) -> Option<u64> {
        let (segment, offset) = match &e {
            LogError::Corrupt {
                segment, offset, ..
            }
            | LogError::UnknownRecordType {
                segment, offset, ..
            } => (file_name(segment), Some(*offset)),
            LogError::UnsupportedVersion { segment, .. } => (file_name(segment), None),
            _ => (None, None),
        };
        self.report.next_seq = self.next_seq;
        let resume = segment.as_deref().and_then(|s| self.segment_after(s));
        self.report.push(Problem {
            check: "log",
            segment,
            offset,
            seq: Some(self.next_seq),
            detail: e.to_string(),
        });
        if let Some(first_seq) = resume {
            self.resume(first_seq);
        }
        resume
    }

    /// The first sequence number of the segment after the one named `name`.
    fn segment_after(&self, name: &str) -> Option<u64> {
        let i = self
            .segments
            .iter()
            .position(|&s| segment_name(s) == name)?;
        self.segments.get(i + 1).copied()
    }

    /// Reading goes on at segment `first_seq`, trusting its header's chain values. The events in
    /// between are lost to the fold, so order and transaction checks stop, and the first round
    /// read has an incomplete set of leaves: its root is not checked.
    fn resume(&mut self, first_seq: u64) {
        self.report.resumed_at.push(first_seq);
        self.next_seq = first_seq;
        self.gap = true;
        self.leaves.clear();
        self.skip_next_root = true;
    }
}

/// The (height, Merkle root) pairs an imported proof attests: it must parse, re-encode to the same
/// bytes (the Python server's canonical encoding), and end only in Bitcoin attestations.
fn imported_roots(commitment: &[u8], proof: &[u8]) -> Result<Vec<(u32, [u8; 32])>, String> {
    let ts = crate::ots::Timestamp::from_bytes(proof, commitment.to_vec())
        .map_err(|e| format!("imported proof does not parse: {e}"))?;
    if ts.to_bytes().ok().as_deref() != Some(proof) {
        return Err("imported proof is not in canonical encoding".into());
    }
    let mut roots = Vec::new();
    for (msg, att) in ts.all_attestations() {
        let crate::ots::Attestation::Bitcoin { height } = att else {
            return Err(format!(
                "imported proof ends in a non-Bitcoin attestation {att:?}"
            ));
        };
        let height = u32::try_from(*height).map_err(|_| format!("height {height} out of range"))?;
        let root: [u8; 32] = msg
            .try_into()
            .map_err(|_| format!("block {height}: attested message is not 32 bytes"))?;
        roots.push((height, root));
    }
    if roots.is_empty() {
        return Err("imported proof has no attestation".into());
    }
    Ok(roots)
}

fn file_name(path: &std::path::Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// A txid as Bitcoin shows it (reversed byte order).
pub(crate) fn txid_hex(txid: &[u8; 32]) -> String {
    let mut t = *txid;
    t.reverse();
    hex(&t)
}

/// The human report.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for p in &report.problems {
        out.push_str(&render_problem(p));
        out.push('\n');
    }
    if !report.resumed_at.is_empty() {
        let segs: Vec<String> = report.resumed_at.iter().map(|&s| segment_name(s)).collect();
        out.push_str(&format!(
            "reading resumed after damage at {}; order checks stopped at the first damage\n",
            segs.join(", ")
        ));
    }
    if report.problems_omitted > 0 {
        out.push_str(&format!(
            "... and {} more problems\n",
            report.problems_omitted
        ));
    }
    out.push_str(&format!(
        "{} events read ({} checked, next seq {}), {} digests, {} rounds{}: {} roots and {} MACs recomputed{}, {} broadcasts ({} log heads on this chain), {} confirmations{}, {} complete proofs recomputed, in {:.2}s\n",
        report.events,
        report.checked,
        report.next_seq,
        report.digests,
        report.rounds,
        readmitted_note(report.readmitted),
        report.roots_checked,
        report.macs_checked,
        if report.keyed { "" } else { " (no key: HMAC chain and MACs not checked)" },
        report.broadcasts,
        report.heads_checked,
        report.confirmations,
        match report.node_confirmations_checked {
            Some(n) => format!(" ({n} in the node's best chain)"),
            None => String::new(),
        },
        report.proofs_checked,
        report.seconds,
    ));
    out.push_str(&imported_note(report));
    let problems = report.problems.len() as u64 + report.problems_omitted;
    if problems == 0 {
        out.push_str("OK: no problems found\n");
    } else {
        out.push_str(&format!("FAILED: {problems} problems\n"));
    }
    out
}

fn readmitted_note(readmitted: u64) -> String {
    match readmitted {
        0 => String::new(),
        n => format!(" and {n} readmitted commitments"),
    }
}

fn imported_note(report: &Report) -> String {
    if report.imported == 0 {
        return String::new();
    }
    let node = match report.node_imported_roots_checked {
        Some(n) => format!(", {n} attested block roots in the node's best chain"),
        None => String::new(),
    };
    format!(
        "imported from a Python calendar: {} commitments, {} with complete proofs ({} distinct blocks attested{node}), {} with a MAC that does not verify\n",
        report.imported,
        report.imported_complete,
        report.imported_roots_len,
        report.imported_bad_macs
    )
}

fn render_problem(p: &Problem) -> String {
    let mut at = Vec::new();
    if let Some(s) = &p.segment {
        at.push(format!("segment {s}"));
    }
    if let Some(o) = p.offset {
        at.push(format!("offset {o}"));
    }
    if let Some(s) = p.seq {
        at.push(format!("seq {s}"));
    }
    format!("[{}] {}: {}", p.check, at.join(", "), p.detail)
}
