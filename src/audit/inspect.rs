//! `otsctl inspect`: a dump of events, and where one digest or commitment is in the history.
//!
//! The dump verifies as it reads (the log reader checks CRCs and chains) and stops with the log's
//! error at damage. A look-up folds the whole log with [`Projection`], so it answers with what
//! otsd would serve: the round, its commitment, and the stamping transaction and block if any.
use serde::Serialize;
use serde_json::{json, Value};

use super::verify::txid_hex;
use super::{hex, LogSource, SeqFilter, ToolError};
use crate::events::codec;
use crate::events::Event;
use crate::projection::{Projection, Status};

/// Event type names accepted by `--type`.
pub const EVENT_TYPES: [&str; 9] = [
    "DigestSubmitted",
    "RoundSealed",
    "TxBroadcast",
    "TxConfirmed",
    "BlockSeen",
    "Reorg",
    "CommitmentReadmitted",
    "CommitmentImported",
    "ProofSuffixImported",
];

pub fn type_name(event: &Event) -> &'static str {
    match event {
        Event::DigestSubmitted { .. } => EVENT_TYPES[0],
        Event::RoundSealed { .. } => EVENT_TYPES[1],
        Event::TxBroadcast { .. } => EVENT_TYPES[2],
        Event::TxConfirmed { .. } => EVENT_TYPES[3],
        Event::BlockSeen { .. } => EVENT_TYPES[4],
        Event::Reorg { .. } => EVENT_TYPES[5],
        Event::CommitmentReadmitted { .. } => EVENT_TYPES[6],
        Event::CommitmentImported { .. } => EVENT_TYPES[7],
        Event::ProofSuffixImported { .. } => EVENT_TYPES[8],
    }
}

/// An event as JSON, byte strings in hex and txids / block hashes as Bitcoin shows them.
pub fn event_json(seq: u64, event: &Event) -> Value {
    let fields = match event {
        Event::DigestSubmitted { digest, nonce } => {
            json!({"digest": hex(digest), "nonce": hex(nonce)})
        }
        Event::RoundSealed {
            round,
            time,
            root,
            mac,
            commitment,
            digests,
        } => json!({"round": round, "time": time, "root": hex(root), "mac": hex(mac),
                    "commitment": hex(commitment), "digests": digests}),
        Event::TxBroadcast {
            txid,
            tip,
            first_round,
            last_round,
            fee_sat,
            feerate_sat_per_kvb,
            input_sat,
            height,
            replaces,
            raw_tx,
            log_head,
        } => json!({"txid": txid_hex(txid), "tip": hex(tip), "first_round": first_round,
                    "last_round": last_round, "fee_sat": fee_sat,
                    "feerate_sat_per_kvb": feerate_sat_per_kvb, "input_sat": input_sat,
                    "height": height, "replaces": replaces.as_ref().map(txid_hex),
                    "raw_tx": hex(raw_tx),
                    "log_head": log_head.map(|h| json!({"next_seq": h.next_seq,
                                                         "hash": hex(&h.hash)}))}),
        Event::TxConfirmed {
            txid,
            block_hash,
            height,
            block_txids,
        } => json!({"txid": txid_hex(txid), "block_hash": txid_hex(block_hash),
                    "height": height, "block_txs": block_txids.len() / 32}),
        Event::BlockSeen { height, hash } => json!({"height": height, "hash": txid_hex(hash)}),
        Event::Reorg {
            fork_height,
            old_tip,
            new_tip,
        } => json!({"fork_height": fork_height, "old_tip": txid_hex(old_tip),
                    "new_tip": txid_hex(new_tip)}),
        Event::CommitmentReadmitted { round, commitment } => {
            json!({"round": round, "commitment": hex(commitment)})
        }
        Event::CommitmentImported {
            round,
            commitment,
            proof,
            suffix_seq,
        } => json!({"round": round, "commitment": hex(commitment),
                    "proof": proof.as_deref().map(hex), "suffix_seq": suffix_seq}),
        Event::ProofSuffixImported { bytes } => json!({"bytes": hex(bytes)}),
    };
    json!({"seq": seq, "type": type_name(event), "event": fields})
}

/// One line: `seq TYPE key=value ...` (the raw transaction left out).
pub fn event_line(seq: u64, event: &Event) -> String {
    let mut line = format!("{seq} {}", type_name(event));
    if let Value::Object(fields) = &event_json(seq, event)["event"] {
        for (k, v) in fields.iter().filter(|(k, _)| *k != "raw_tx") {
            match v {
                Value::String(s) => line.push_str(&format!(" {k}={s}")),
                other => line.push_str(&format!(" {k}={other}")),
            }
        }
    }
    line
}

/// Which events a dump shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub range: SeqFilter,
    /// Only events of this type (one of [`EVENT_TYPES`], case-insensitive).
    pub event_type: Option<String>,
}

impl Filter {
    fn admits(&self, seq: u64, event: &Event) -> bool {
        self.range.contains(seq)
            && self
                .event_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case(type_name(event)))
    }
}

/// Calls `f` with every event the filter admits; an event that does not decode is an error.
pub fn dump(
    source: &LogSource,
    filter: &Filter,
    mut f: impl FnMut(u64, &Event),
) -> Result<u64, ToolError> {
    if let Some(t) = &filter.event_type {
        if !EVENT_TYPES.iter().any(|n| n.eq_ignore_ascii_case(t)) {
            return Err(ToolError::BadType(t.clone()));
        }
    }
    let mut undecodable: Option<(u64, String)> = None;
    source
        .reader
        .for_each_from(filter.range.from, |seq, payload| {
            if seq > filter.range.to || undecodable.is_some() {
                return;
            }
            match codec::decode::<Event>(payload) {
                Ok(event) if filter.admits(seq, &event) => f(seq, &event),
                Ok(_) => {}
                Err(e) => undecodable = Some((seq, e.to_string())),
            }
        })?;
    match undecodable {
        Some((seq, detail)) => Err(ToolError::Replay(super::replay::ReplayStopped {
            seq,
            detail,
        })),
        None => Ok(filter.range.to),
    }
}

/// What to look for.
#[derive(Debug, Clone)]
pub enum Target {
    Commitment(Vec<u8>),
    Digest(Vec<u8>),
}

/// Where a digest or commitment is.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Location {
    pub found: bool,
    /// The DigestSubmitted event (digest look-ups).
    pub digest_seq: Option<u64>,
    pub round: Option<u64>,
    /// The RoundSealed (or CommitmentReadmitted) event.
    pub seal_seq: Option<u64>,
    /// The round is a commitment put back by `otsctl readmit`, not a sealed round of digests.
    pub readmitted: bool,
    pub commitment: Option<String>,
    /// `pending`, `mined` or `complete`, as otsd would serve it (unknown if not found).
    pub status: String,
    /// Stamping transactions whose tip covers the round, in broadcast order.
    pub broadcasts: Vec<String>,
    /// The transaction mined for the round and its block, if confirmed.
    pub txid: Option<String>,
    pub block_hash: Option<String>,
    pub block_height: Option<u32>,
}

/// Folds the whole log and says where `target` is.
pub fn locate(source: &LogSource, target: &Target) -> Result<Location, ToolError> {
    let mut finder = Finder {
        view: Projection::default(),
        target,
        loc: Location::default(),
        bad: None,
    };
    source
        .reader
        .for_each_from(0, |seq, payload| finder.event(seq, payload))?;
    if let Some(stopped) = finder.bad {
        return Err(ToolError::Replay(stopped));
    }
    Ok(finder.finish())
}

struct Finder<'a> {
    view: Projection,
    target: &'a Target,
    loc: Location,
    bad: Option<super::replay::ReplayStopped>,
}

impl Finder<'_> {
    fn event(&mut self, seq: u64, payload: &[u8]) {
        if self.bad.is_some() {
            return;
        }
        let event = match codec::decode::<Event>(payload) {
            Ok(e) => e,
            Err(e) => return self.stop(seq, e.to_string()),
        };
        self.note(seq, &event);
        if let Err(e) = self.view.apply(seq, &event) {
            self.stop(seq, e.to_string());
        }
    }

    fn stop(&mut self, seq: u64, detail: String) {
        self.bad = Some(super::replay::ReplayStopped { seq, detail });
    }

    fn note(&mut self, seq: u64, event: &Event) {
        match (event, self.target) {
            (Event::DigestSubmitted { digest, .. }, Target::Digest(d))
                if digest == d && self.loc.digest_seq.is_none() =>
            {
                self.loc.digest_seq = Some(seq);
            }
            (
                Event::RoundSealed {
                    round, commitment, ..
                }
                | Event::CommitmentReadmitted { round, commitment }
                | Event::CommitmentImported {
                    round, commitment, ..
                },
                target,
            ) if self.loc.round.is_none() => {
                let ours = match target {
                    Target::Commitment(c) => c == commitment,
                    Target::Digest(_) => self.loc.digest_seq.is_some(),
                };
                if ours {
                    self.loc.readmitted = matches!(event, Event::CommitmentReadmitted { .. });
                    self.loc.round = Some(*round);
                    self.loc.seal_seq = Some(seq);
                    self.loc.commitment = Some(hex(commitment));
                }
            }
            _ => self.note_tx(event),
        }
    }

    /// Transactions covering the round found so far, and where they were mined.
    fn note_tx(&mut self, event: &Event) {
        let Some(round) = self.loc.round else {
            return;
        };
        match event {
            Event::TxBroadcast {
                txid,
                first_round,
                last_round,
                ..
            } if (*first_round..=*last_round).contains(&round) => {
                self.loc.broadcasts.push(txid_hex(txid));
            }
            Event::TxConfirmed {
                txid,
                block_hash,
                height,
                ..
            } if self.loc.broadcasts.contains(&txid_hex(txid)) => {
                self.loc.txid = Some(txid_hex(txid));
                self.loc.block_hash = Some(txid_hex(block_hash));
                self.loc.block_height = Some(*height);
            }
            _ => {}
        }
    }

    fn finish(mut self) -> Location {
        let commitment = self
            .loc
            .commitment
            .as_deref()
            .and_then(|c| hex::decode(c).ok());
        self.loc.status = match commitment.map(|c| self.view.status(&c)) {
            None | Some(Status::Unknown) => "unknown",
            Some(Status::Pending { .. }) => "pending",
            Some(Status::Mined { .. }) => "mined",
            Some(Status::Complete { .. }) => "complete",
            Some(Status::Unavailable(_)) => "unavailable",
            Some(Status::Imported { .. }) => "imported",
        }
        .to_owned();
        self.loc.found = self.loc.round.is_some() || self.loc.digest_seq.is_some();
        self.loc
    }
}

/// The human answer to a look-up.
pub fn render_location(loc: &Location) -> String {
    if !loc.found {
        return "not found in this calendar's log\n".to_owned();
    }
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<12} {v}\n"));
    if let Some(s) = loc.digest_seq {
        line("digest seq", s.to_string());
    }
    match (loc.round, loc.seal_seq, &loc.commitment) {
        (Some(r), Some(s), Some(c)) => {
            let how = if loc.readmitted {
                "readmitted"
            } else {
                "sealed"
            };
            line("round", format!("{r} ({how} at seq {s})"));
            line("commitment", c.clone());
        }
        _ => line("round", "not sealed yet".to_owned()),
    }
    line("status", loc.status.clone());
    for b in &loc.broadcasts {
        line("broadcast", b.clone());
    }
    if let (Some(t), Some(b), Some(h)) = (&loc.txid, &loc.block_hash, loc.block_height) {
        line("mined in", format!("{t} in block {b} at height {h}"));
    }
    out
}
