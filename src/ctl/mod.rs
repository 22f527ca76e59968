//! Operator tools behind `otsctl`: forensic verification, inspection and replay of the event log.
//!
//! Each tool reads the log through [`crate::log::Reader`] (which verifies CRCs, both chains and
//! segment seals as it goes) and folds events with [`crate::projection::Projection`], so the tools
//! see exactly what otsd sees. Three tools write to the calendar directory: `recover` swaps in a
//! rebuilt log and moves the old one aside; `readmit` appends through the log writer, holding its
//! lock; `replay` rewrites the projection checkpoint (a rebuildable cache). The binaries only
//! parse arguments, call these functions and print.
//!
//! - [`verify`]: every problem in the log and its events, by segment, offset and sequence number.
//! - [`proofs`]: complete proofs recomputed from the events, for `verify`.
//! - [`inspect`]: dump events, and find where a digest or commitment is.
//! - [`replay`]: rebuild the projection checkpoint from the log alone and report the throughput.
//! - [`ship`]: copy the log's segments into a mirror directory, incrementally (reads only).
//! - [`recover`]: rebuild a lost or damaged log from an untrusted replica ([`merge`] keeps the
//!   longest authentic prefix; [`replica`] reads mirrors from a directory or over plain HTTP).
//! - [`readmit`]: put commitments that clients hold back after a loss, if their MAC verifies.
//! - [`node`]: confirmations checked against Bitcoin Core, for `verify --btc-rpc`.
//! - [`prove_head`]: a standard `.ots` proof that the log's history up to a point existed then.
mod heads;
pub mod http_get;
pub mod inspect;
pub mod merge;
pub mod node;
mod progress;
pub mod proofs;
pub mod prove_head;
pub mod readmit;
pub mod recover;
pub mod replay;
pub mod replica;
pub mod ship;
mod source;
pub mod verify;

pub use progress::Progress;
pub use source::{parse_hex, CtlError, LogSource};

/// Sequence-number range selected by `--from` / `--to` (both inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    pub from: u64,
    pub to: u64,
}

impl SeqRange {
    /// From `--from` and `--to`, each optional.
    pub fn new(from: Option<u64>, to: Option<u64>) -> SeqRange {
        SeqRange {
            from: from.unwrap_or(0),
            to: to.unwrap_or(u64::MAX),
        }
    }

    pub fn contains(&self, seq: u64) -> bool {
        (self.from..=self.to).contains(&seq)
    }
}

impl Default for SeqRange {
    fn default() -> Self {
        SeqRange::new(None, None)
    }
}

/// Lower-case hex, for reports.
pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
