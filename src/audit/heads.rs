//! The calendar's self-timestamping, checked by `otsctl verify`: every stamping transaction that
//! records a [`LogHead`] must name a point of *this* log's public hash chain, and its tip must be
//! the Merkle tip over the covered rounds' commitments followed by that head.
//!
//! The stamper takes the head of the last durable record just before it builds a transaction, so
//! the head is at most a few records behind the `TxBroadcast` naming it. The checker therefore
//! keeps only the chain values after the last [`MAX_HEAD_LAG_RECORDS`] records (a few MiB), not
//! one per record of the whole log; a head older than that is reported as not checkable.
use std::collections::VecDeque;

use super::hex;
use crate::anchor::proof::stamp_tip;
use crate::events::LogHead;
use crate::log::ChainState;
use crate::projection::Projection;

/// Records kept behind the newest one for matching heads (18 hours of one-second rounds).
pub const MAX_HEAD_LAG_RECORDS: usize = 65_536;

/// The public chain values after the most recent records: `(next_seq, hash)`, oldest first. A
/// seal record keeps `next_seq` and moves the chain, so one `next_seq` may have two values; both
/// are points of the chain a writer may have reported as its head.
#[derive(Debug)]
pub(crate) struct ChainPoints {
    points: VecDeque<(u64, [u8; 32])>,
}

impl Default for ChainPoints {
    fn default() -> Self {
        ChainPoints {
            points: VecDeque::from([(0, ChainState::GENESIS.hash)]),
        }
    }
}

impl ChainPoints {
    /// The chain is at `hash` after a record ending before `next_seq`.
    pub(crate) fn record(&mut self, next_seq: u64, hash: [u8; 32]) {
        if self.points.len() == MAX_HEAD_LAG_RECORDS {
            self.points.pop_front();
        }
        self.points.push_back((next_seq, hash));
    }

    /// Whether `head` is a point of the chain read so far; the reason if not.
    pub(crate) fn check(&self, head: &LogHead) -> Result<(), String> {
        let at: Vec<&[u8; 32]> = self
            .points
            .iter()
            .filter(|(n, _)| *n == head.next_seq)
            .map(|(_, h)| h)
            .collect();
        if at.contains(&&head.hash) {
            return Ok(());
        }
        let oldest = self.points.front().map_or(0, |p| p.0);
        let newest = self.points.back().map_or(0, |p| p.0);
        match at.first() {
            Some(chain) => Err(format!(
                "log_head at seq {} has hash {}, but this log's public chain there is {}",
                head.next_seq,
                hex(&head.hash),
                hex(*chain)
            )),
            None if head.next_seq > newest => Err(format!(
                "log_head at seq {} is ahead of the log written before it (seq {newest})",
                head.next_seq
            )),
            None if head.next_seq < oldest => Err(format!(
                "log_head at seq {} is more than {MAX_HEAD_LAG_RECORDS} records old: not checked",
                head.next_seq
            )),
            None => Err(format!(
                "log_head at seq {} is not at a record boundary of this log",
                head.next_seq
            )),
        }
    }
}

/// Whether `tip` is the Merkle tip over the commitments of rounds `first..=last` (as folded in
/// `view`) and `head`.
pub(crate) fn check_tip(
    view: &Projection,
    (first, last): (u64, u64),
    head: Option<&LogHead>,
    tip: &[u8; 32],
) -> Result<(), String> {
    let commitments = view
        .round_commitments(first, last)
        .map_err(|e| e.to_string())?;
    let expected = stamp_tip(commitments.iter().map(|c| &c[..]), head.map(|h| &h.hash));
    match expected {
        Some(t) if &t == tip => Ok(()),
        Some(t) => Err(format!(
            "tip {} recorded, {} recomputed from rounds {first}..={last}{}",
            hex(tip),
            hex(&t),
            if head.is_some() {
                " and the log head"
            } else {
                ""
            }
        )),
        None => Err(format!("rounds {first}..={last} hold no commitments")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(next_seq: u64, b: u8) -> LogHead {
        LogHead {
            next_seq,
            hash: [b; 32],
        }
    }

    #[test]
    fn heads_match_only_chain_points_in_the_window() {
        let mut points = ChainPoints::default();
        assert_eq!(points.check(&head(0, 0)), Ok(()));
        points.record(3, [3; 32]);
        points.record(3, [4; 32]); // a seal after the record ending at 3
        points.record(5, [5; 32]);
        assert_eq!(points.check(&head(3, 3)), Ok(()));
        assert_eq!(points.check(&head(3, 4)), Ok(()));
        assert!(points
            .check(&head(5, 9))
            .unwrap_err()
            .contains("public chain there is"));
        assert!(points
            .check(&head(4, 4))
            .unwrap_err()
            .contains("record boundary"));
        assert!(points.check(&head(6, 4)).unwrap_err().contains("ahead"));
        for n in 0..MAX_HEAD_LAG_RECORDS as u64 {
            points.record(10 + n, [1; 32]);
        }
        assert!(points
            .check(&head(5, 5))
            .unwrap_err()
            .contains("not checked"));
    }
}
