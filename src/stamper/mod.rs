//! The stamper: commits the calendar's rounds into Bitcoin.
//!
//! Split so that every decision is testable without a node or a clock:
//! - [`crate::anchor::state`]: the stamper's knowledge as a pure fold over its log events (cycles of
//!   replace-by-fee transactions, their confirmations, the recent best chain, reorgs);
//! - [`policy`]: the pure decision (send, bump, wait, or blocked by fees or money) from that state,
//!   the flags and the observations passed in (time, height, fee estimates, sealed rounds).
//!
//! The state fold and the proof shapes live in [`crate::anchor`], below both the projection and
//! the stamper, so neither imports the other. The driver that talks to Bitcoin Core and appends the events lives at the edge and only carries
//! out these decisions.
pub mod driver;
pub mod key;
pub mod policy;
pub mod wallet;

#[cfg(test)]
mod tests;

pub use crate::anchor::state::{Confirmation, Cycle, SentTx, StamperState};
pub use policy::{decide, Blocked, Decision, Observation, StamperConfig, TxPlan, Wait};
