//! The stamper: commits the calendar's rounds into Bitcoin.
//!
//! Split so that every decision is testable without a node or a clock:
//! - [`state`]: the stamper's knowledge as a pure fold over its log events (cycles of
//!   replace-by-fee transactions, their confirmations, the recent best chain, reorgs);
//! - [`policy`]: the pure decision (send, bump, wait, or blocked by fees or money) from that state,
//!   the flags and the observations passed in (time, height, fee estimates, sealed rounds).
//!
//! The driver that talks to Bitcoin Core and appends the events lives at the edge and only carries
//! out these decisions.
pub mod driver;
pub mod key;
pub mod policy;
pub mod proof;
pub mod state;
pub mod wallet;

#[cfg(test)]
mod tests;

pub use policy::{decide, Blocked, Decision, Observation, StamperConfig, TxPlan, Wait};
pub use state::{Confirmation, Cycle, SentTx, StamperState};
