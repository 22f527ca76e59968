//! Reading a calendar's log as an auditor: forensic verification, inspection, replay of the
//! projection, and proofs of the log's own history.
//!
//! Every tool reads the log through [`crate::log::Reader`] (which verifies CRCs, both chains and
//! segment seals as it goes) and folds events with [`crate::projection::Projection`], so the tools
//! see exactly what otsd sees. Only `replay` writes: it rewrites the projection checkpoint (a
//! rebuildable cache).
//!
//! - [`source`]: [`LogSource`], a calendar's log opened with or without its key; [`ToolError`].
//! - [`verify`]: every problem in the log and its events, by segment, offset and sequence number.
//! - [`proofs`]: complete proofs recomputed from the events, for `verify`.
//! - [`heads`]: the calendar's self-timestamping (log heads committed in stamping tips), for `verify`.
//! - [`node`]: confirmations checked against Bitcoin Core, for `verify --btc-rpc`.
//! - [`inspect`]: dump events, and find where a digest or commitment is.
//! - [`replay`]: rebuild the projection checkpoint from the log alone and report the throughput.
//! - [`prove_head`]: a standard `.ots` proof that the log's history up to a point existed then.
mod heads;
pub mod inspect;
pub mod node;
pub mod proofs;
pub mod prove_head;
pub mod replay;
mod source;
pub mod verify;

pub use source::{parse_hex, LogSource, ToolError};

/// Sequence numbers selected by `--from` / `--to` (both inclusive). Not to be confused with
/// [`crate::log::SeqRange`], the sequence numbers a batch was written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqFilter {
    pub from: u64,
    pub to: u64,
}

impl SeqFilter {
    /// From `--from` and `--to`, each optional.
    pub fn new(from: Option<u64>, to: Option<u64>) -> SeqFilter {
        SeqFilter {
            from: from.unwrap_or(0),
            to: to.unwrap_or(u64::MAX),
        }
    }

    pub fn contains(&self, seq: u64) -> bool {
        (self.from..=self.to).contains(&seq)
    }
}

impl Default for SeqFilter {
    fn default() -> Self {
        SeqFilter::new(None, None)
    }
}

/// Lower-case hex, for reports.
pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
